// The one knex factory: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise.
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import ClientPgLite from 'knex-pglite';
import pg from 'pg';
import type { Config } from '../config.ts';

// Return int8 and numeric columns as JS numbers (counts), timestamps stay Date.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * knex-pglite reports the command of a delete as "DEL" (from knex's method name), so knex
 * returns the driver's response instead of the row count. Same SQL, same results: fix it here.
 */
class PgLiteClient extends (ClientPgLite as unknown as new (config: Knex.Config) => { processResponse(obj: unknown, runner: unknown): unknown }) {
  override processResponse(obj: { method?: string; returning?: unknown; output?: unknown; response?: { affectedRows?: number } }, runner: unknown): unknown {
    if ((obj.method === 'del' || obj.method === 'counter') && !obj.returning && !obj.output) return obj.response?.affectedRows ?? 0;
    return super.processResponse(obj, runner);
  }
}

export type Db = Knex;
export type Tx = Knex | Knex.Transaction;

export interface DbHandle {
  db: Knex;
  embedded: boolean;
  close(): Promise<void>;
}

/**
 * knex's own warnings (e.g. "Acquire connection error" with a stack) go to the console unless
 * given a logger; the CLI passes one so that a person sees its one-line error, not the stack.
 */
export type KnexLog = Knex.Config['log'];

export function createDb(config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir'>, log?: KnexLog): DbHandle {
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
      ...(log ? { log } : {}),
    });
    return { db, embedded: false, close: () => db.destroy() };
  }
  const dir = path.join(config.dataDir, 'pglite');
  fs.mkdirSync(dir, { recursive: true });
  const db = knexFactory({
    client: PgLiteClient as unknown as typeof Knex.Client,
    dialect: 'postgres',
    connection: { filename: dir } as unknown as Knex.StaticConnectionConfig,
    ...(log ? { log } : {}),
  });
  return { db, embedded: true, close: () => db.destroy() };
}
