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

/**
 * What PostgreSQL estimates for a statement prepared on this connection (found by a part of its
 * text), planned for any values (generic) and for sample values of its parameters' types
 * (custom). When the generic plan looks dearer, PostgreSQL plans the statement on every call.
 * `db` must have one connection: prepared statements belong to a connection.
 */
export async function planCostsOf(db: Knex, statementLike: string): Promise<{ generic: number; custom: number }> {
  const rows = (await db.raw('select name, parameter_types::text[] as types from pg_prepared_statements where statement like ?', [`%${statementLike}%`])).rows as { name: string; types: string[] }[];
  if (rows.length !== 1) throw new Error(`${rows.length} prepared statements match ${statementLike}`);
  const { name, types } = rows[0]!;
  const sample: Record<string, string> = {
    bigint: '1', integer: '1', text: "''", json: "'[]'::json", jsonb: "'[]'::jsonb", uuid: "'00000000-0000-4000-8000-000000000001'::uuid",
    'uuid[]': "'{00000000-0000-4000-8000-000000000001}'::uuid[]", 'text[]': "'{x}'::text[]", 'bigint[]': "'{1}'::bigint[]", boolean: 'true',
  };
  const args = types.map((t) => {
    if (!(t in sample)) throw new Error(`no sample value for a parameter of type ${t}`);
    return sample[t]!;
  });
  const cost = async (mode: string): Promise<number> => {
    await db.raw(`set plan_cache_mode = ${mode}`);
    const plan = (await db.raw(`explain (format json) execute "${name}"${args.length ? `(${args.join(', ')})` : ''}`)).rows[0]['QUERY PLAN'][0].Plan;
    return Number(plan['Total Cost']);
  };
  try {
    return { generic: await cost('force_generic_plan'), custom: await cost('force_custom_plan') };
  } finally {
    await db.raw('reset plan_cache_mode');
  }
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
}

/**
 * Runs a statement prepared on this connection (found by name) once with `args` (SQL literals)
 * under EXPLAIN ANALYZE, with the plan it has cached, and reports how many rows the busiest plan
 * node went through (kept and filtered out, over all its loops) and the plan as text lines
 * "Node Type on relation using index". `db` must have one connection.
 */
export async function rowsReadBy(db: Knex, name: string, args: string[]): Promise<{ mostRowsInOneNode: number; plan: string }> {
  const result = await db.raw(`explain (analyze, format json) execute "${name}"(${args.join(', ')})`);
  const root = result.rows[0]['QUERY PLAN'][0].Plan as PlanNode;
  let most = 0;
  const lines: string[] = [];
  const walk = (node: PlanNode): void => {
    const loops = node['Actual Loops'] ?? 1;
    const rows = ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)
      + (node['Rows Removed by Join Filter'] ?? 0)) * loops;
    if (node['Relation Name'] || node['Index Name']) most = Math.max(most, rows);
    lines.push(`${node['Node Type']}${node['Relation Name'] ? ` on ${node['Relation Name']}` : ''}${node['Index Name'] ? ` using ${node['Index Name']}` : ''} (${rows} rows)`);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(root);
  return { mostRowsInOneNode: most, plan: lines.join('\n') };
}
