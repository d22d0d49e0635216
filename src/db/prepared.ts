// Prepared statements for the hot paths (token, userinfo, sign-in): PostgreSQL parses and plans
// a named statement once per connection and afterwards only executes it. The entitlement query
// costs PostgreSQL far more to plan than to run, and even a primary-key read is cheaper prepared.
//
// knex cannot name a statement, so on PostgreSQL `run` borrows a connection from knex's own pool
// and sends the named query itself. Inside a transaction, and on the embedded database (PGlite,
// one connection, no plan cache worth the name), it goes through knex as any other query.
//
// Statements are written with `?` placeholders, like the rest of the code's raw SQL. Selects
// built with knex (SCIM lists, whose filters give them many shapes) go through `runQuery`, which
// names each shape after its text and keeps the most recent ones prepared on each connection.
import { createHash } from 'node:crypto';
import createDebug from 'debug';
import type pg from 'pg';
import type { Knex } from 'knex';
import type { Tx } from './knex.ts';

/** Every statement sent here, like knex's own `knex:query` (DEBUG=oneid:sql). */
const debug = createDebug('oneid:sql');

export interface Statement {
  /** Unique among statements: the name PostgreSQL knows the prepared statement by. */
  readonly name: string;
  /** With `?` placeholders (for knex). */
  readonly sql: string;
  /** With `$1, $2, ...` (for PostgreSQL). */
  readonly text: string;
}

const names = new Set<string>();

/** Declares a statement once, at module load. The SQL must not contain a literal `?`. */
export function statement(name: string, sql: string): Statement {
  if (names.has(name)) throw new Error(`prepared statement ${name} is declared twice`);
  names.add(name);
  let n = 0;
  return { name, sql, text: sql.replace(/\?/g, () => `$${++n}`) };
}

interface KnexClientInternals {
  config: { client?: unknown };
  listenerCount(event: string): number;
  emit(event: string, data: unknown): boolean;
  acquireConnection(): Promise<pg.Client>;
  releaseConnection(connection: pg.Client): Promise<void>;
}

/** After a migration adds a column, a prepared `select *` fails once per connection with this. */
const CACHED_PLAN_CHANGED = '0A000';

interface Result<R> { rows: R[]; rowCount: number }

type Parsed = { connection: { parsedStatements: Record<string, unknown> } };

/** The pool's client when a statement can be sent past knex: PostgreSQL, outside a transaction. */
function directClient(db: Tx): KnexClientInternals | undefined {
  const client = db.client as unknown as KnexClientInternals;
  return client.config.client === 'pg' && !(db as { isTransaction?: boolean }).isTransaction ? client : undefined;
}

async function deallocate(connection: pg.Client, name: string): Promise<void> {
  const parsed = (connection as unknown as Parsed).connection.parsedStatements;
  if (!(name in parsed)) return;
  await connection.query(`deallocate "${name}"`);
  delete parsed[name];
}

/** Sends a named statement on a connection of knex's pool (borrowed for this one statement). */
async function sendNamed<R>(client: KnexClientInternals, name: string, text: string, values: readonly unknown[],
  beforeSend?: (connection: pg.Client) => Promise<void>): Promise<Result<R>> {
  // Seen by knex's 'query' listeners (db.on('query')), as the statements knex sends itself.
  if (client.listenerCount('query') > 0) client.emit('query', { method: 'raw', sql: text, bindings: values, name });
  if (debug.enabled) debug('%s %s', name, text.replace(/\s+/g, ' ').trim());
  const connection = await client.acquireConnection();
  const send = async (): Promise<Result<R>> => {
    const result = await connection.query<R & pg.QueryResultRow>({ name, text, values: values as unknown[] });
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  };
  try {
    await beforeSend?.(connection);
    try {
      return await send();
    } catch (err) {
      if ((err as { code?: string }).code !== CACHED_PLAN_CHANGED) throw err;
      // Forget the stale plan on this connection, then prepare the statement again.
      await deallocate(connection, name);
      return await send();
    }
  } finally {
    await client.releaseConnection(connection);
  }
}

async function execute<R>(db: Tx, st: Statement, values: readonly unknown[]): Promise<Result<R>> {
  const client = directClient(db);
  if (!client) {
    // pg answers rowCount, PGlite affectedRows.
    const result = await db.raw(st.sql, values as Knex.RawBinding[]) as { rows: R[]; rowCount?: number | null; affectedRows?: number };
    return { rows: result.rows, rowCount: result.rowCount ?? result.affectedRows ?? 0 };
  }
  return sendNamed<R>(client, st.name, st.text, values);
}

/**
 * Statements named after their SQL text that each connection keeps prepared: the most recently
 * used ones, so that filters of every shape (SCIM) cannot fill a database session's memory.
 */
const QUERY_STATEMENTS_PER_CONNECTION = 100;
const preparedQueries = new WeakMap<pg.Client, Map<string, true>>();

/**
 * Runs a statement built with knex (a query builder, or raw SQL whose text comes in a few
 * shapes) as a prepared statement named after its SQL text: statements of the same shape (SCIM
 * lists and filters, group member changes) are planned once per connection. Resolves to the rows.
 */
export async function runQuery<R>(db: Tx, query: Knex.QueryBuilder | Knex.Raw, limit = QUERY_STATEMENTS_PER_CONNECTION): Promise<R[]> {
  const client = directClient(db);
  if (!client) {
    const result = await query;
    return (Array.isArray(result) ? result : (result as { rows: R[] }).rows) as R[];
  }
  const { sql, bindings } = query.toSQL().toNative();
  const name = `q_${createHash('sha1').update(sql).digest('base64url')}`;
  const result = await sendNamed<R>(client, name, sql, bindings, async (connection) => {
    let recent = preparedQueries.get(connection);
    if (!recent) preparedQueries.set(connection, recent = new Map());
    if (recent.delete(name)) {
      recent.set(name, true);
      return;
    }
    while (recent.size >= limit) {
      const oldest = recent.keys().next().value!;
      recent.delete(oldest);
      await deallocate(connection, oldest);
    }
    recent.set(name, true);
  });
  return result.rows;
}

/** Runs a statement; resolves to its rows. */
export async function run<R>(db: Tx, st: Statement, values: readonly unknown[]): Promise<R[]> {
  return (await execute<R>(db, st, values)).rows;
}

/** Runs a statement that changes rows; resolves to how many. */
export async function runCount(db: Tx, st: Statement, values: readonly unknown[]): Promise<number> {
  return (await execute(db, st, values)).rowCount;
}
