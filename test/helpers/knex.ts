// For integration tests of services: a fresh PostgreSQL database with every migration applied,
// opened through the same knex factory the server uses.
import type { Knex } from 'knex';
import { createDb } from '../../src/db/knex.ts';
import { migrateLatest, migratorConfig } from '../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export interface MigratedDatabase {
  db: Knex;
  database: TestDatabase;
  /** Closes the pool and drops the database. */
  close(): Promise<void>;
}

export async function createMigratedDatabase(prefix?: string, poolMax = 2): Promise<MigratedDatabase> {
  const database = await createTestDatabase(prefix);
  const handle = createDb({ databaseUrl: database.url, databasePoolMax: poolMax, dataDir: '/nonexistent/unused' });
  try {
    await migrateLatest(handle.db);
  } catch (err) {
    await handle.close();
    await database.drop();
    throw err;
  }
  return {
    db: handle.db,
    database,
    close: async () => {
      await handle.close();
      await database.drop();
    },
  };
}

/**
 * For migration tests: runs `fn` on a fresh database migrated up to `version` (the test then
 * migrates on, down and up as it likes), and drops the database afterwards.
 */
export async function withDatabaseAt(prefix: string, version: string, fn: (db: Knex) => Promise<void>): Promise<void> {
  const database = await createTestDatabase(prefix);
  const handle = createDb({ databaseUrl: database.url, databasePoolMax: 2, dataDir: '/nonexistent/unused' });
  try {
    while ((await handle.db.migrate.currentVersion(migratorConfig)) !== version) await handle.db.migrate.up(migratorConfig);
    await fn(handle.db);
  } finally {
    await handle.close();
    await database.drop();
  }
}
