// Migrations are listed here explicitly so that they load the same way under tsx, jest and the CLI.
import type { Knex } from 'knex';
import * as m20261129090000 from '../../migrations/20261129090000_create_foundation.ts';

interface Migration { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> }

const MIGRATIONS: Record<string, Migration> = {
  '20261129090000_create_foundation': m20261129090000,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name]!,
};

export const migratorConfig: Knex.MigratorConfig = { migrationSource, tableName: 'knex_migrations' };

export async function migrateLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migratorConfig)) as [number, string[]];
  return applied;
}

/** True when every known migration has been applied. */
export async function migrationsCurrent(db: Knex): Promise<boolean> {
  const [, pending] = (await db.migrate.list(migratorConfig)) as [unknown[], unknown[]];
  return pending.length === 0;
}
