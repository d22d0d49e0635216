// The one repository over `credentials`: one row per sign-in method a person set up (a password,
// each passkey, an authenticator app, a set of recovery codes), its per-type data in `data`.
// Strategies read and write their rows only through here.
import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { newId } from '../shared/ids.ts';
// An id from a URL or a form that is not a uuid names no row (and must not reach a uuid column).
import { isUuid } from '../directory/users.repo.ts';

export type CredentialType = 'password' | 'webauthn' | 'totp' | 'recovery';

export interface DbCredentialRow {
  id: string;
  user_id: string;
  type: CredentialType;
  data: Record<string, unknown>;
  external_id: string | null;
  name: string | null;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
}

export interface Credential<D = Record<string, unknown>> {
  id: string;
  userId: string;
  type: CredentialType;
  data: D;
  /** A passkey's credential id (base64url); null for the other types. */
  externalId: string | null;
  name: string | null;
  createdAt: Date;
  updatedAt: Date;
  lastUsedAt: Date | null;
}

export const toCredential = <D = Record<string, unknown>>(r: DbCredentialRow): Credential<D> => ({
  id: r.id,
  userId: r.user_id,
  type: r.type,
  data: r.data as D,
  externalId: r.external_id,
  name: r.name,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastUsedAt: r.last_used_at,
});


/** A person's credentials, oldest first; of one type when given. */
export async function findCredentialsOfUser<D = Record<string, unknown>>(db: Tx, userId: string, type?: CredentialType): Promise<Credential<D>[]> {
  if (!isUuid(userId)) return [];
  const q = db<DbCredentialRow>('credentials').where({ user_id: userId });
  if (type) q.andWhere({ type });
  const rows = await q.orderBy([{ column: 'created_at', order: 'asc' }, { column: 'id', order: 'asc' }]);
  return (rows as DbCredentialRow[]).map((r) => toCredential<D>(r));
}

/** Whether a person has at least one credential of a type (without loading them). */
export async function hasCredentialOfUser(db: Tx, userId: string, type: CredentialType): Promise<boolean> {
  if (!isUuid(userId)) return false;
  const row = await db('credentials').where({ user_id: userId, type }).first(db.raw('1 as one'));
  return Boolean(row);
}

export async function findCredentialById<D = Record<string, unknown>>(db: Tx, id: string): Promise<Credential<D> | undefined> {
  if (!isUuid(id)) return undefined;
  const row = await db<DbCredentialRow>('credentials').where({ id }).first();
  return row ? toCredential<D>(row as DbCredentialRow) : undefined;
}

/** The credential of a type with this outside id (a passkey by its credential id). */
export async function findCredentialByExternalId<D = Record<string, unknown>>(db: Tx, type: CredentialType, externalId: string): Promise<Credential<D> | undefined> {
  const row = await db<DbCredentialRow>('credentials').where({ type, external_id: externalId }).first();
  return row ? toCredential<D>(row as DbCredentialRow) : undefined;
}

/**
 * As findCredentialByExternalId, with its owner's status (active, suspended, deprovisioned), in
 * one statement: a sign-in by credential id needs both.
 */
export async function findCredentialByExternalIdWithOwner<D = Record<string, unknown>>(db: Tx, type: CredentialType, externalId: string): Promise<{ credential: Credential<D>; ownerStatus: string } | undefined> {
  const row = await db('credentials as c').join('users as u', 'u.id', 'c.user_id')
    .where({ 'c.type': type, 'c.external_id': externalId })
    .first<(DbCredentialRow & { owner_status: string }) | undefined>('c.*', 'u.status as owner_status');
  return row ? { credential: toCredential<D>(row), ownerStatus: row.owner_status } : undefined;
}

export interface NewCredential {
  id?: string;
  userId: string;
  type: CredentialType;
  data: Record<string, unknown>;
  externalId?: string | null;
  name?: string | null;
}

/** Inserts one credential; a passkey already stored (same type and external id) is a 23505. */
export async function insertCredential<D = Record<string, unknown>>(db: Tx, c: NewCredential): Promise<Credential<D>> {
  const [row] = await db('credentials').insert({
    id: c.id ?? newId(),
    user_id: c.userId,
    type: c.type,
    data: JSON.stringify(c.data),
    external_id: c.externalId ?? null,
    name: c.name ?? null,
  }).returning('*');
  return toCredential<D>(row as DbCredentialRow);
}

export interface CredentialPatch {
  data?: Record<string, unknown>;
  name?: string | null;
  lastUsedAt?: Date | null;
}

/**
 * Which rows an update or delete by id may reach: with `userId`, only that person's; with
 * `type`, only that type (so that an id taken from a request cannot reach someone else's row, or
 * a passkey action a password).
 */
export interface CredentialScope { userId?: string; type?: CredentialType }

function scoped(db: Tx, id: string, scope: CredentialScope): Knex.QueryBuilder | undefined {
  if (!isUuid(id) || (scope.userId !== undefined && !isUuid(scope.userId))) return undefined;
  const q = db('credentials').where({ id });
  if (scope.userId !== undefined) q.andWhere({ user_id: scope.userId });
  if (scope.type !== undefined) q.andWhere({ type: scope.type });
  return q;
}

/** Updates one credential within `scope`; returns the row as updated, or undefined. */
export async function updateCredentialById<D = Record<string, unknown>>(db: Tx, id: string, patch: CredentialPatch, scope: CredentialScope = {}): Promise<Credential<D> | undefined> {
  const q = scoped(db, id, scope);
  if (!q) return undefined;
  const set: Record<string, unknown> = { updated_at: db.fn.now() };
  if (patch.data !== undefined) set.data = JSON.stringify(patch.data);
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.lastUsedAt !== undefined) set.last_used_at = patch.lastUsedAt;
  const [row] = await q.update(set).returning('*');
  return row ? toCredential<D>(row as DbCredentialRow) : undefined;
}

/** Deletes one credential within `scope`; returns the row deleted, or undefined. */
export async function deleteCredentialById<D = Record<string, unknown>>(db: Tx, id: string, scope: CredentialScope = {}): Promise<Credential<D> | undefined> {
  const q = scoped(db, id, scope);
  if (!q) return undefined;
  const [row] = await q.delete().returning('*');
  return row ? toCredential<D>(row as DbCredentialRow) : undefined;
}

/** Deletes every credential of one type of a person; returns how many. */
export async function deleteCredentialsOfUser(db: Tx, userId: string, type: CredentialType): Promise<number> {
  if (!isUuid(userId)) return 0;
  const rows = await db('credentials').where({ user_id: userId, type }).delete().returning('id');
  return rows.length;
}
