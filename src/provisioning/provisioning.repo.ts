// Rows of outbound provisioning: the per-app target (where and how an app is kept in step) and
// the provisioned objects (what the app holds for each person and group, and the last outcome).
import type { Tx } from '../db/knex.ts';
import type { AttributeMapping } from './mapping.ts';

export type OnUnassign = 'deactivate' | 'delete';
export type RolesAs = 'roles' | 'entitlements' | 'groups' | 'none';
export type ObjectKind = 'user' | 'group';
export type ObjectState = 'pending' | 'synced' | 'failed';

export interface DbTargetRow {
  app_id: string;
  enabled: boolean;
  base_url: string;
  token_ciphertext: string;
  push_users: boolean;
  push_groups: boolean;
  on_unassign: OnUnassign;
  roles_as: RolesAs;
  attribute_mapping: AttributeMapping | null;
  version: number;
  created_at: Date;
  updated_at: Date;
  last_full_sync_at: Date | null;
  last_full_sync: Record<string, unknown> | null;
  full_sync_requested_at: Date | null;
}

/** A target as the domain sees it: the token stays encrypted until a client is built. */
export interface Target {
  appId: string;
  enabled: boolean;
  baseUrl: string;
  tokenCiphertext: string;
  pushUsers: boolean;
  pushGroups: boolean;
  onUnassign: OnUnassign;
  rolesAs: RolesAs;
  attributeMapping: AttributeMapping;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  lastFullSyncAt: Date | null;
  lastFullSync: Record<string, unknown> | null;
  /** A full sync was asked for and has not started since. */
  fullSyncRequestedAt: Date | null;
}

const toTarget = (r: DbTargetRow): Target => ({
  appId: r.app_id,
  enabled: r.enabled,
  baseUrl: r.base_url,
  tokenCiphertext: r.token_ciphertext,
  pushUsers: r.push_users,
  pushGroups: r.push_groups,
  onUnassign: r.on_unassign,
  rolesAs: r.roles_as,
  attributeMapping: r.attribute_mapping ?? {},
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastFullSyncAt: r.last_full_sync_at,
  lastFullSync: r.last_full_sync,
  fullSyncRequestedAt: r.full_sync_requested_at ?? null,
});

export async function findTargetByAppId(db: Tx, appId: string): Promise<Target | undefined> {
  const row = await db('provisioning_targets').where({ app_id: appId }).first<DbTargetRow | undefined>();
  return row ? toTarget(row) : undefined;
}

/** App ids with an enabled target, optionally only among `appIds`. */
export async function findEnabledTargetAppIds(db: Tx, appIds?: readonly string[]): Promise<string[]> {
  const q = db('provisioning_targets').where({ enabled: true }).select<{ app_id: string }[]>('app_id');
  if (appIds) q.whereIn('app_id', appIds);
  return (await q).map((r) => r.app_id);
}

/** What a write of a target sets: the target without its key and version, the mapping optional. */
export type TargetWrite = Pick<Target, 'enabled' | 'baseUrl' | 'tokenCiphertext' | 'pushUsers' | 'pushGroups' | 'onUnassign' | 'rolesAs'> & { attributeMapping: AttributeMapping | null };

/** Inserts or replaces the app's target; returns it. */
export async function upsertTarget(db: Tx, appId: string, t: TargetWrite): Promise<Target> {
  const values = {
    enabled: t.enabled, base_url: t.baseUrl, token_ciphertext: t.tokenCiphertext, push_users: t.pushUsers, push_groups: t.pushGroups,
    on_unassign: t.onUnassign, roles_as: t.rolesAs, attribute_mapping: t.attributeMapping === null ? null : JSON.stringify(t.attributeMapping),
  };
  const [row] = await db('provisioning_targets')
    .insert({ app_id: appId, ...values })
    .onConflict('app_id')
    .merge({ ...values, version: db.raw('provisioning_targets.version + 1'), updated_at: db.fn.now() })
    .returning<DbTargetRow[]>('*');
  return toTarget(row!);
}

export async function deleteTargetByAppId(db: Tx, appId: string): Promise<boolean> {
  return (await db('provisioning_targets').where({ app_id: appId }).delete()) > 0;
}

/** Stores a full sync's summary and clears a request for one made before it started. */
export async function recordFullSync(db: Tx, appId: string, startedAt: Date, summary: Record<string, unknown>): Promise<void> {
  await db('provisioning_targets').where({ app_id: appId }).update({
    last_full_sync_at: db.fn.now(), last_full_sync: JSON.stringify(summary),
    full_sync_requested_at: db.raw('case when full_sync_requested_at <= ? then null else full_sync_requested_at end', [startedAt]),
  });
}

/** Remembers that a full sync was asked for (see migration 20261209110000). */
export async function requestFullSync(db: Tx, appId: string): Promise<void> {
  await db('provisioning_targets').where({ app_id: appId }).update({ full_sync_requested_at: db.fn.now() });
}

/** The app's provisioned objects belong to another app once the base URL changes: forget them. */
export async function deleteObjectsOfApp(db: Tx, appId: string): Promise<void> {
  await db('provisioned_objects').where({ app_id: appId }).delete();
}

// Provisioned objects

export interface DbObjectRow {
  app_id: string;
  kind: ObjectKind;
  local_id: string;
  remote_id: string | null;
  state: ObjectState;
  active: boolean | null;
  deleted_at: Date | null;
  pushed_hash: string | null;
  last_attempt_at: Date | null;
  last_success_at: Date | null;
  last_error: string | null;
}

export async function findObject(db: Tx, appId: string, kind: ObjectKind, localId: string): Promise<DbObjectRow | undefined> {
  return db('provisioned_objects').where({ app_id: appId, kind, local_id: localId }).first<DbObjectRow | undefined>();
}

/** The app's ids of these people (those it holds and has not deleted), by OneID id. */
export async function remoteIdsOf(db: Tx, appId: string, userIds: readonly string[]): Promise<Map<string, string>> {
  if (!userIds.length) return new Map();
  const rows: { local_id: string; remote_id: string }[] = await db('provisioned_objects')
    .where({ app_id: appId, kind: 'user' }).whereIn('local_id', userIds).whereNotNull('remote_id').whereNull('deleted_at')
    .select('local_id', 'remote_id');
  return new Map(rows.map((r) => [r.local_id, r.remote_id]));
}

/** Who holds these remote ids in this app (for the drift report and full syncs). */
export async function objectsByRemoteIds(db: Tx, appId: string, kind: ObjectKind, remoteIds: readonly string[]): Promise<DbObjectRow[]> {
  if (!remoteIds.length) return [];
  return db('provisioned_objects').where({ app_id: appId, kind }).whereIn('remote_id', remoteIds).select('*');
}

/** Notes an attempt (a pending row when there was none). */
export async function markAttempt(db: Tx, appId: string, kind: ObjectKind, localId: string): Promise<void> {
  await db('provisioned_objects')
    .insert({ app_id: appId, kind, local_id: localId, state: 'pending', last_attempt_at: db.fn.now() })
    .onConflict(['app_id', 'kind', 'local_id'])
    .merge({ last_attempt_at: db.fn.now() });
}

export interface SuccessWrite { remoteId: string | null; active: boolean | null; deleted: boolean; pushedHash: string | null }

export async function markSuccess(db: Tx, appId: string, kind: ObjectKind, localId: string, s: SuccessWrite): Promise<void> {
  const values = {
    remote_id: s.remoteId, active: s.active, deleted_at: s.deleted ? db.fn.now() : null, pushed_hash: s.pushedHash,
    state: 'synced', last_error: null, last_attempt_at: db.fn.now(), last_success_at: db.fn.now(),
  };
  await db('provisioned_objects').insert({ app_id: appId, kind, local_id: localId, ...values }).onConflict(['app_id', 'kind', 'local_id']).merge(values);
}

/** Records the app's own error (bounded); the remote id learnt so far is kept. */
export async function markFailure(db: Tx, appId: string, kind: ObjectKind, localId: string, error: string, remoteId?: string): Promise<void> {
  const values: Record<string, unknown> = { state: 'failed', last_error: error.slice(0, 1000), last_attempt_at: db.fn.now() };
  if (remoteId) values.remote_id = remoteId;
  await db('provisioned_objects').insert({ app_id: appId, kind, local_id: localId, ...values }).onConflict(['app_id', 'kind', 'local_id']).merge(values);
}

/** Forgets what was pushed, so that the next sync sends the object again (a full sync found it differs). */
export async function forgetPushedHash(db: Tx, appId: string, kind: ObjectKind, localIds: readonly string[]): Promise<void> {
  if (!localIds.length) return;
  await db('provisioned_objects').where({ app_id: appId, kind }).whereIn('local_id', localIds).update({ pushed_hash: null });
}

/** Adopts a remote object found in the app for a local one that has no remote id yet. */
export async function linkRemote(db: Tx, appId: string, kind: ObjectKind, localId: string, remoteId: string, active: boolean | null): Promise<void> {
  await db('provisioned_objects')
    .insert({ app_id: appId, kind, local_id: localId, remote_id: remoteId, active, state: 'pending' })
    .onConflict(['app_id', 'kind', 'local_id'])
    .merge({ remote_id: remoteId, active, deleted_at: null, pushed_hash: null });
}

/** The app no longer has this remote object: forget its id, so it is created again if still wanted. */
export async function unlinkRemote(db: Tx, appId: string, kind: ObjectKind, localId: string): Promise<void> {
  await db('provisioned_objects').where({ app_id: appId, kind, local_id: localId }).update({ remote_id: null, pushed_hash: null, active: null });
}

/**
 * A page of the app's objects of one kind the app still holds (remote id, not deleted), by local
 * id after `after`: the keyset walk of reconcile and full syncs.
 */
export async function heldObjectsPage(db: Tx, appId: string, kind: ObjectKind, after: string, limit: number): Promise<DbObjectRow[]> {
  return db('provisioned_objects')
    .where({ app_id: appId, kind }).whereNotNull('remote_id').whereNull('deleted_at').andWhere('local_id', '>', after)
    .orderBy('local_id').limit(limit).select('*');
}

export interface ObjectStatus {
  counts: Record<ObjectState, number>;
  held: number;
  lastSuccessAt: Date | null;
  failed: { kind: ObjectKind; localId: string; remoteId: string | null; lastError: string | null; lastAttemptAt: Date | null }[];
}

/** Per-state counts, the last success and the first failed objects with the app's error. */
export async function objectStatus(db: Tx, appId: string, failedLimit: number): Promise<ObjectStatus> {
  const rows: { state: ObjectState; n: string | number; last: Date | null; held: string | number }[] = await db('provisioned_objects')
    .where({ app_id: appId }).groupBy('state')
    .select('state', db.raw('count(*) as n'), db.raw('max(last_success_at) as last'),
      db.raw('count(*) filter (where remote_id is not null and deleted_at is null) as held'));
  const counts: Record<ObjectState, number> = { pending: 0, synced: 0, failed: 0 };
  let lastSuccessAt: Date | null = null;
  let held = 0;
  for (const r of rows) {
    counts[r.state] = Number(r.n);
    held += Number(r.held);
    if (r.last && (!lastSuccessAt || new Date(r.last) > lastSuccessAt)) lastSuccessAt = new Date(r.last);
  }
  const failed: DbObjectRow[] = await db('provisioned_objects').where({ app_id: appId, state: 'failed' })
    .orderBy('last_attempt_at', 'desc').limit(failedLimit).select('*');
  return {
    counts, held, lastSuccessAt,
    failed: failed.map((f) => ({ kind: f.kind, localId: f.local_id, remoteId: f.remote_id, lastError: f.last_error, lastAttemptAt: f.last_attempt_at })),
  };
}
