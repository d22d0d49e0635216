// The one knex factory: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise.
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import type { Config } from '../config.ts';

// Return int8 and numeric columns as JS numbers (counts), timestamps stay Date.
pg.types.setTypeParser(20, (v) => Number(v));

export type Db = Knex;
export type Tx = Knex | Knex.Transaction;

export interface DbHandle {
  db: Knex;
  embedded: boolean;
  close(): Promise<void>;
}

export function createDb(config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir'>): DbHandle {
  if (config.databaseUrl) {
    const db = knexFactory({
      client: 'pg',
      connection: { connectionString: config.databaseUrl, connectionTimeoutMillis: 5000, application_name: 'oneid' } as Knex.PgConnectionConfig,
      pool: {
        min: 0,
        max: config.databasePoolMax,
        // Fail fast (503) instead of queueing forever when the database is gone.
        acquireTimeoutMillis: 5000,
      } as Knex.PoolConfig,
      acquireConnectionTimeout: 5000,
    });
    return { db, embedded: false, close: () => db.destroy() };
  }
  const dir = path.join(config.dataDir, 'pglite');
  fs.mkdirSync(dir, { recursive: true });
  const db = knexFactory({
    client: ClientPgLite as unknown as typeof Knex.Client,
    dialect: 'postgres',
    connection: { filename: dir } as unknown as Knex.StaticConnectionConfig,
  });
  return { db, embedded: true, close: () => db.destroy() };
}
