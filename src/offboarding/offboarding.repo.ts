// Offboarding receipts in the database: `offboardings` (one per offboarding of a person) and
// `offboarding_lines` (one per app and action). See migrations/20261209130000_create_offboardings.ts.
import type { Tx } from '../db/knex.ts';

export const LINE_ACTIONS = ['tokens_revoked', 'oidc_backchannel_logout', 'saml_logout', 'provisioning_deactivate'] as const;
export type LineAction = (typeof LINE_ACTIONS)[number];
export const LINE_STATES = ['pending', 'done', 'acknowledged', 'failed_retrying', 'failed', 'not_applicable'] as const;
export type LineState = (typeof LINE_STATES)[number];
export type OffboardingSource = 'admin' | 'scim';

export interface DbOffboardingRow {
  id: string;
  user_id: string;
  source: OffboardingSource;
  actor_type: string;
  actor_id: string | null;
  started_at: Date;
}

export interface DbOffboardingLineRow {
  offboarding_id: string;
  app_id: string;
  app_name: string;
  protocol: string;
  action: LineAction;
  state: LineState;
  detail: string | null;
  attempts: number;
  data: { sids?: string[] } | null;
  updated_at: Date;
}

/** A line as written at the offboarding. */
export type NewLine = Pick<DbOffboardingLineRow, 'app_id' | 'app_name' | 'protocol' | 'action' | 'state' | 'detail'> & { data?: DbOffboardingLineRow['data'] };

export async function insertOffboarding(db: Tx, row: Omit<DbOffboardingRow, 'started_at'>, lines: NewLine[]): Promise<DbOffboardingRow> {
  const [inserted] = await db('offboardings').insert(row).returning('*') as DbOffboardingRow[];
  if (lines.length) {
    await db('offboarding_lines').insert(lines.map((l) => ({
      ...l, offboarding_id: row.id, data: l.data ? JSON.stringify(l.data) : null,
    })));
  }
  return inserted!;
}

export async function findOffboardingById(db: Tx, id: string): Promise<DbOffboardingRow | undefined> {
  return db<DbOffboardingRow>('offboardings').where({ id }).first();
}

/** A person's offboardings, newest first, keyset-paged on (started_at, id). */
export async function findOffboardingsOfUser(db: Tx, userId: string, limit: number, before?: { startedAt: string; id: string }): Promise<DbOffboardingRow[]> {
  const q = db<DbOffboardingRow>('offboardings').where({ user_id: userId });
  if (before) q.whereRaw('(started_at, id) < (?::timestamptz, ?::uuid)', [before.startedAt, before.id]);
  return q.orderBy([{ column: 'started_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(limit);
}

/** The person's user provisioning record in the app, as the provisioning engine keeps it. */
export interface ProvisionedUser {
  app_id: string;
  active: boolean | null;
  deleted_at: Date | null;
  last_attempt_at: Date | null;
  last_success_at: Date | null;
  last_error: string | null;
}

/** The lines of some offboardings, by app name, and the provisioning record of their person in each app. */
export async function findLines(db: Tx, offboardingIds: string[]): Promise<(DbOffboardingLineRow & { po: ProvisionedUser | null })[]> {
  if (!offboardingIds.length) return [];
  const rows = await db('offboarding_lines as l')
    .join('offboardings as o', 'o.id', 'l.offboarding_id')
    .leftJoin('provisioned_objects as po', (j) => {
      j.on('po.app_id', 'l.app_id').andOn('po.local_id', db.raw('o.user_id::text')).andOn('po.kind', db.raw("'user'"))
        .andOn('l.action', db.raw("'provisioning_deactivate'"));
    })
    .whereIn('l.offboarding_id', offboardingIds)
    .orderBy([{ column: 'l.app_name' }, { column: 'l.app_id' }, { column: 'l.action' }])
    .select('l.*', db.raw(`case when po.app_id is null then null else json_build_object(
      'app_id', po.app_id, 'active', po.active, 'deleted_at', po.deleted_at, 'last_attempt_at', po.last_attempt_at,
      'last_success_at', po.last_success_at, 'last_error', po.last_error) end as po`));
  return rows as (DbOffboardingLineRow & { po: ProvisionedUser | null })[];
}

export async function findLine(db: Tx, offboardingId: string, appId: string, action: LineAction): Promise<DbOffboardingLineRow | undefined> {
  return db<DbOffboardingLineRow>('offboarding_lines').where({ offboarding_id: offboardingId, app_id: appId, action }).first();
}

/** Records an attempt's outcome; returns the attempts so far. */
export async function updateLine(db: Tx, offboardingId: string, appId: string, action: LineAction, state: LineState, detail: string | null, attempted: boolean): Promise<number> {
  const [row] = await db('offboarding_lines').where({ offboarding_id: offboardingId, app_id: appId, action })
    .update({ state, detail, updated_at: db.fn.now(), ...(attempted ? { attempts: db.raw('attempts + 1') } : {}) })
    .returning('attempts') as { attempts: number }[];
  return row?.attempts ?? 0;
}
