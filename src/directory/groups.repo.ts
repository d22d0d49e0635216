// Flat groups of users. Membership is one row per (group, user): adding or removing a member
// touches that row only, so a 100,000-member group costs the same as a small one.
import type { Tx } from '../db/knex.ts';
import { isUuid, toUser, type DbUserRow, type User, type UserStatus } from './users.repo.ts';

export interface DbGroupRow {
  id: string;
  name: string;
  description: string | null;
  external_id: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface Group {
  id: string;
  name: string;
  description: string | null;
  externalId: string | null;
  /** Changes on every update and every membership change (the SCIM ETag). */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export const toGroup = (r: DbGroupRow): Group => ({
  id: r.id,
  name: r.name,
  description: r.description,
  externalId: r.external_id,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const likePrefix = (s: string): string => `${s.toLowerCase().replace(/[\\%_]/g, '\\$&')}%`;

export async function findGroupById(db: Tx, id: string, lock?: 'update' | 'key share'): Promise<Group | undefined> {
  if (!isUuid(id)) return undefined;
  const q = db<DbGroupRow>('groups').where({ id }).first();
  if (lock === 'update') q.forUpdate();
  if (lock === 'key share') q.forKeyShare();
  const row = await q;
  return row ? toGroup(row) : undefined;
}

export interface GroupFilter {
  /** Exact name, case-insensitive. */
  name?: string;
  /** Name prefix, case-insensitive. */
  q?: string;
  externalId?: string;
  /** Groups this user is a member of. */
  memberId?: string;
  /** Keyset cursor: the last row's name (lower(name) is unique, see groups__name). */
  afterName?: string;
  limit: number;
}

/** Ordered by lower(name) (the groups__name index), filtered and paged in SQL. */
export async function findGroups(db: Tx, f: GroupFilter): Promise<Group[]> {
  const q = db<DbGroupRow>('groups as g').select('g.*').orderByRaw('lower(g.name)').limit(f.limit);
  if (f.name !== undefined) q.whereRaw('lower(g.name) = ?', [f.name.toLowerCase()]);
  if (f.q) q.whereRaw("lower(g.name) like ? escape '\\'", [likePrefix(f.q)]);
  if (f.externalId !== undefined) q.where('g.external_id', f.externalId);
  if (f.memberId) q.whereExists((e) => e.select(db.raw('1')).from('group_members as gm').whereRaw('gm.group_id = g.id and gm.user_id = ?', [f.memberId!]));
  if (f.afterName !== undefined) q.whereRaw('lower(g.name) > lower(?)', [f.afterName]);
  return (await q).map((r) => toGroup(r as DbGroupRow));
}

export async function insertGroup(db: Tx, row: Pick<DbGroupRow, 'id' | 'name' | 'description' | 'external_id'>): Promise<Group> {
  const [inserted] = await db('groups').insert(row).returning('*');
  return toGroup(inserted as DbGroupRow);
}

/** Updates columns and bumps the version; with expectedVersion only if still at it. */
export async function updateGroupById(
  db: Tx, id: string, changes: Partial<Pick<DbGroupRow, 'name' | 'description' | 'external_id'>>, expectedVersion?: number,
): Promise<Group | undefined> {
  const q = db('groups').where({ id }).update({ ...changes, version: db.raw('version + 1'), updated_at: db.fn.now() }).returning('*');
  if (expectedVersion !== undefined) q.andWhere({ version: expectedVersion });
  const [row] = await q;
  return row ? toGroup(row as DbGroupRow) : undefined;
}

/** Deletes the group; its group_members rows go with it (ON DELETE CASCADE). */
export async function deleteGroupById(db: Tx, id: string): Promise<number> {
  return (await db('groups').where({ id }).delete().returning('id')).length;
}

/** Inserts one membership row; false when it was already there. */
export async function insertGroupMember(db: Tx, groupId: string, userId: string): Promise<boolean> {
  const rows = await db('group_members').insert({ group_id: groupId, user_id: userId }).onConflict(['group_id', 'user_id']).ignore().returning('user_id');
  return rows.length > 0;
}

/** Deletes one membership row; false when there was none. */
export async function deleteGroupMember(db: Tx, groupId: string, userId: string): Promise<boolean> {
  // returning(): the embedded PGlite driver does not report a plain delete's row count.
  return (await db('group_members').where({ group_id: groupId, user_id: userId }).delete().returning('user_id')).length > 0;
}

export async function countGroupMembers(db: Tx, groupId: string): Promise<number> {
  const [row] = await db('group_members').where({ group_id: groupId }).count<{ count: number }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

export interface GroupMembersQuery {
  groupId: string;
  status?: UserStatus;
  /** Keyset cursor: the last user id (walks the group_members primary key). */
  afterUserId?: string;
  limit: number;
}

export async function findGroupMembers(db: Tx, m: GroupMembersQuery): Promise<User[]> {
  const q = db('group_members as gm').join('users as u', 'u.id', 'gm.user_id').select('u.*')
    .where('gm.group_id', m.groupId).orderBy('gm.user_id').limit(m.limit);
  if (m.status) q.where('u.status', m.status);
  if (m.afterUserId) q.where('gm.user_id', '>', m.afterUserId);
  return ((await q) as DbUserRow[]).map(toUser);
}
