// PostgreSQL settings OneID relies on, checked when a node starts (not on the embedded database).
//
// OneID's hot statements are prepared: each connection plans them once and keeps the plan until
// the tables it reads are analyzed again. PostgreSQL analyzes them as they grow only when
// autovacuum runs (its default). With it off, a plan made while a table was small (on a new
// installation, every table is) stays, and a lookup can read the whole table where an index
// would read one row; dead rows are never cleaned up either. Most lookups are written so that
// their plans do not depend on it (the bench prints their plans: test/bench/lib/plans.ts), not
// every one can be.
import type { Knex } from 'knex';

export interface ServerSettings {
  autovacuum: string;
  track_counts: string;
}

export async function readServerSettings(db: Knex): Promise<ServerSettings> {
  const result = await db.raw("select current_setting('autovacuum') as autovacuum, current_setting('track_counts') as track_counts");
  return result.rows[0] as ServerSettings;
}

/** What an operator should change, as log messages; none when all is well. */
export function serverSettingsWarnings(s: ServerSettings): string[] {
  const off = (['autovacuum', 'track_counts'] as const).filter((name) => s[name] !== 'on');
  if (!off.length) return [];
  return [`PostgreSQL runs with ${off.map((name) => `${name} = off`).join(' and ')}: tables are never analyzed or vacuumed, `
    + 'so query plans made while they were small stay as they grow and dead rows pile up. Turn it on (the default) in postgresql.conf.'];
}
