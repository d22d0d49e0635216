// Flat groups of users. Membership is one row per (group, user): adding or removing a member
// touches that row only, so a 100,000-member group costs the same as a small one.
import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { runQuery } from '../db/prepared.ts';
import { subtreePattern } from './departments.repo.ts';
import { isUuid, toUser, USER_LABEL_SQL, type DbUserRow, type User, type UserStatus } from './users.repo.ts';

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

/** The filter's conditions (not the cursor), shared by the page and its total count. */
function filterGroups(db: Tx, q: Knex.QueryBuilder, f: Omit<GroupFilter, 'afterName' | 'limit'>): Knex.QueryBuilder {
  if (f.name !== undefined) q.whereRaw('lower(g.name) = ?', [f.name.toLowerCase()]);
  if (f.q) q.whereRaw("lower(g.name) like ? escape '\\'", [likePrefix(f.q)]);
  if (f.externalId !== undefined) q.where('g.external_id', f.externalId);
  if (f.memberId) q.whereExists((e) => e.select(db.raw('1')).from('group_members as gm').whereRaw('gm.group_id = g.id and gm.user_id = ?', [f.memberId!]));
  return q;
}

/** Ordered by lower(name) (the groups__name index), filtered and paged in SQL. */
export async function findGroups(db: Tx, f: GroupFilter): Promise<Group[]> {
  const q = filterGroups(db, db<DbGroupRow>('groups as g').select('g.*').orderByRaw('lower(g.name)').limit(f.limit), f);
  if (f.afterName !== undefined) q.whereRaw('lower(g.name) > lower(?)', [f.afterName]);
  return ((await q) as DbGroupRow[]).map((r) => toGroup(r));
}

/** How many groups the filter matches (all pages). */
export async function countGroups(db: Tx, f: Omit<GroupFilter, 'afterName' | 'limit'>): Promise<number> {
  const [row] = await filterGroups(db, db('groups as g'), f).count<{ count: number }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

export async function insertGroup(db: Tx, row: Pick<DbGroupRow, 'id' | 'name' | 'description' | 'external_id'>): Promise<Group> {
  const [inserted] = await db('groups').insert(row).returning('*');
  return toGroup(inserted as DbGroupRow);
}

/**
 * Updates columns and bumps the version; with expectedVersion only if still at it. `alongside`:
 * other writes of the same change (users' versions, audit events) sent in the same statement,
 * as WITH clauses, so that the group's row lock this update takes is held for one round trip
 * and the commit. They run whether or not the group row is updated: the caller rolls back when
 * it is not.
 */
export async function updateGroupById(
  db: Tx, id: string, changes: Partial<Pick<DbGroupRow, 'name' | 'description' | 'external_id'>>, expectedVersion?: number,
  alongside: readonly (Knex.QueryBuilder | Knex.Raw)[] = [],
): Promise<Group | undefined> {
  const q = db('groups').where({ id }).update({ ...changes, version: db.raw('version + 1'), updated_at: db.fn.now() }).returning('*');
  if (expectedVersion !== undefined) q.andWhere({ version: expectedVersion });
  alongside.forEach((write, i) => q.with(`alongside_${i}`, write));
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

/**
 * A user's groups are part of the user as SCIM shows it (the read-only `groups` attribute), so
 * a membership change is a change of the user too: their version (the SCIM ETag) moves on.
 * Not yet run (see updateGroupById's `alongside`): these users, and with `membersOf` every
 * member of that group (its name, shown in their `groups`, changes).
 */
export function userVersionsBump(db: Tx, userIds: readonly string[], membersOf?: string): Knex.Raw {
  // One set of ids (not `id = any(...) or id in (...)`: an OR with a subquery is a scan of every user).
  return membersOf
    ? db.raw('update users set version = version + 1 where id in (select unnest(?::uuid[]) union all select user_id from group_members where group_id = ?)', [[...userIds], membersOf])
    : db.raw('update users set version = version + 1 where id = any(?::uuid[])', [[...userIds]]);
}

/** Runs userVersionsBump for these users (none: nothing is sent). */
export async function bumpUserVersions(db: Tx, userIds: readonly string[]): Promise<void> {
  if (!userIds.length) return;
  await userVersionsBump(db, userIds);
}

/** As bumpUserVersions, for every member of a group (its name, shown in their `groups`, changes, or it goes). */
export async function bumpMemberVersions(db: Tx, groupId: string): Promise<void> {
  await userVersionsBump(db, [], groupId);
}

/** Deletes one membership row; false when there was none. */
export async function deleteGroupMember(db: Tx, groupId: string, userId: string): Promise<boolean> {
  // returning(): the embedded PGlite driver does not report a plain delete's row count.
  return (await db('group_members').where({ group_id: groupId, user_id: userId }).delete().returning('user_id')).length > 0;
}

export async function countGroupMembers(db: Tx, groupId: string, status?: UserStatus): Promise<number> {
  const q = db('group_members as gm').where('gm.group_id', groupId);
  if (status) q.join('users as u', 'u.id', 'gm.user_id').where('u.status', status);
  const [row] = await q.count<{ count: number }[]>({ count: '*' });
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

// --- Set-based membership changes (SCIM PATCH/PUT/Bulk): each statement touches only the rows
// that change, whatever the size of the group. "Visible" users are those not deprovisioned; with
// a scope (a department path), only users with a department in that subtree count as visible.

/** SQL condition "user `alias` is visible": not deprovisioned and, with a scope, in the subtree. */
function visibleUser(alias: string, scopePath: string | null | undefined): { sql: string; bindings: string[] } {
  const active = `${alias}.status <> 'deprovisioned'`;
  if (!scopePath) return { sql: active, bindings: [] };
  const scope = inScope(`${alias}.id`, scopePath);
  return { sql: `${active} and ${scope.sql}`, bindings: scope.bindings };
}

/** SQL condition "the user whose id is `userId` (an SQL expression) has a department in the subtree `scopePath`". */
function inScope(userId: string, scopePath: string): { sql: string; bindings: string[] } {
  return {
    sql: `exists (select 1 from user_departments scope_ud join departments scope_d on scope_d.id = scope_ud.department_id
      where scope_ud.user_id = ${userId} and scope_d.path like ? escape '\\')`,
    bindings: [subtreePattern(scopePath)],
  };
}

/** Which of `ids` are visible users (see above). Non-uuid strings are simply not found. */
export async function findVisibleUserIds(db: Tx, ids: readonly string[], scopePath?: string | null): Promise<Set<string>> {
  const wanted = [...new Set(ids.filter(isUuid).map((id) => id.toLowerCase()))];
  if (!wanted.length) return new Set();
  const visible = visibleUser('u', scopePath);
  const rows: { id: string }[] = await db('users as u').select('u.id').whereRaw('u.id = any(?::uuid[])', [wanted]).andWhereRaw(visible.sql, visible.bindings);
  return new Set(rows.map((r) => r.id));
}

/**
 * Inserts the membership rows that do not exist yet, with the label a client gave a member
 * (`labels`, by lower-cased user id) where there is one; returns the user ids actually inserted.
 * Existing rows, and their labels, are left alone.
 */
export async function insertGroupMembers(db: Tx, groupId: string, userIds: readonly string[], labels?: ReadonlyMap<string, string>): Promise<string[]> {
  if (!userIds.length) return [];
  const ids = [...new Set(userIds)];
  const rows: { user_id: string }[] = (await db.raw(
    `insert into group_members (group_id, user_id, display_label)
       select ?::uuid, wanted.id, wanted.label from unnest(?::uuid[], ?::text[]) as wanted(id, label)
     on conflict (group_id, user_id) do nothing
     returning user_id`,
    // null labels are bound as SQL nulls inside the text[] (knex's types only know arrays of one type).
    [groupId, ids, ids.map((id) => labels?.get(id) ?? null) as unknown as string[]],
  )).rows;
  return rows.map((r) => r.user_id);
}

/**
 * insertGroupMembers for the visible users among `userIds` (see above), in one statement: returns
 * which of the ids are visible users and which of those were inserted (the others were members).
 * Ids that are not uuids are not looked up.
 */
export async function insertVisibleGroupMembers(
  db: Tx, groupId: string, userIds: readonly string[], labels?: ReadonlyMap<string, string>, scopePath?: string | null,
): Promise<{ visible: Set<string>; added: string[] }> {
  const ids = [...new Set(userIds.filter(isUuid).map((id) => id.toLowerCase()))];
  if (!ids.length) return { visible: new Set(), added: [] };
  const visible = visibleUser('u', scopePath);
  const rows: { id: string; added: boolean }[] = (await db.raw(
    `with visible as (
       select wanted.id, wanted.label from unnest(?::uuid[], ?::text[]) as wanted(id, label) join users u on u.id = wanted.id
        where ${visible.sql}),
     inserted as (
       insert into group_members (group_id, user_id, display_label) select ?::uuid, id, label from visible
       on conflict (group_id, user_id) do nothing
       returning user_id)
     select visible.id, inserted.user_id is not null as added from visible left join inserted on inserted.user_id = visible.id`,
    [ids, ids.map((id) => labels?.get(id) ?? null) as unknown as string[], ...visible.bindings, groupId],
  )).rows;
  return { visible: new Set(rows.map((r) => r.id)), added: rows.filter((r) => r.added).map((r) => r.id) };
}

export interface MembersChangedAtOnce {
  /** false: an id to add is no visible user; nothing was written (see changeMembersAtOnce). */
  complete: boolean;
  /** The users whose membership changed. */
  changed: string[];
  /** The group after the change (before it when nothing changed); undefined when there is none. */
  group: Group | undefined;
}

/**
 * Adds or removes members of one group in one statement, outside any transaction: the membership
 * rows, the changed users' versions, the audit events of the changed members (the candidates
 * `events`, one per user id, `changes.userId`) and the group's version bump, which happens only
 * when a membership changed. Nothing waits on OneID while the group's row is locked: the lock is
 * taken by this statement and released by its commit.
 *
 * `userIds`: distinct, lower-cased uuids. An add writes nothing unless every one of them is a
 * visible user (see visibleUser), and says so with complete: false. A remove skips ids that are
 * no member. An add to a group that does not exist fails its foreign key.
 */
export async function changeMembersAtOnce(
  db: Tx, groupId: string, kind: 'add' | 'remove', userIds: readonly string[],
  opts: { labels?: ReadonlyMap<string, string>; scopePath?: string | null; events: (changedSql: string) => Knex.Raw },
): Promise<MembersChangedAtOnce> {
  // The ids come as JSON rows, not an array: PostgreSQL counts the elements of an array parameter
  // when it plans for the values at hand, finds that cheaper than its plan for any values, and
  // would then plan the statement anew on every execution (json_to_recordset it never counts).
  const ids = JSON.stringify(userIds.map((id) => ({ id, label: opts.labels?.get(id) ?? null })));
  let change: Knex.Raw;
  if (kind === 'add') {
    const visible = visibleUser('u', opts.scopePath);
    change = db.raw(
      `visible as (
         select wanted.id, wanted.label from json_to_recordset(?::json) as wanted(id uuid, label text) join users u on u.id = wanted.id
          where ${visible.sql}),
       complete as (select count(*) = ? as ok from visible),
       changed as (
         insert into group_members (group_id, user_id, display_label)
         select ?::uuid, id, label from visible where (select ok from complete)
         on conflict (group_id, user_id) do nothing
         returning user_id)`,
      [ids, ...visible.bindings, userIds.length, groupId],
    );
  } else {
    const scope = opts.scopePath ? inScope('gm.user_id', opts.scopePath) : { sql: 'true', bindings: [] };
    change = db.raw(
      `complete as (select true as ok),
       changed as (
         delete from group_members gm
          where gm.group_id = ? and gm.user_id in (select id from json_to_recordset(?::json) as wanted(id uuid)) and ${scope.sql}
         returning gm.user_id)`,
      [groupId, ids, ...scope.bindings],
    );
  }
  // Prepared (runQuery): planning this statement costs PostgreSQL more than running it.
  const [row] = await runQuery<DbGroupRow & { complete: boolean; changed: string[] }>(db, db.raw(
    `with ?,
     versions as (update users set version = version + 1 where id in (select user_id from changed) returning id),
     events as (?),
     bumped as (
       update groups set version = version + 1, updated_at = current_timestamp
        where id = ? and exists (select 1 from changed)
          -- Written before the group's row is locked (these run first), so that the lock is held
          -- for the bump and the commit only.
          and (select count(*) from versions) >= 0 and (select count(*) from events) >= 0
       returning *)
     select (select ok from complete) as complete, array(select user_id from changed) as changed, g.*
       from (select 1) one
       left join (select * from bumped union all select * from groups where id = ? and not exists (select 1 from bumped)) g on true`,
    [change, opts.events("(e.changes->>'userId')::uuid in (select user_id from changed)"), groupId, groupId],
  ));
  return { complete: row!.complete, changed: row!.changed, group: row!.id ? toGroup(row!) : undefined };
}

/** Sets the labels of existing members where they differ (a SCIM PUT may); returns the user ids relabelled. */
export async function relabelGroupMembers(db: Tx, groupId: string, labels: ReadonlyMap<string, string>): Promise<string[]> {
  if (!labels.size) return [];
  const rows: { user_id: string }[] = (await db.raw(
    `update group_members gm set display_label = l.label
       from unnest(?::uuid[], ?::text[]) as l(id, label)
      where gm.group_id = ? and gm.user_id = l.id and gm.display_label is distinct from l.label
      returning gm.user_id`,
    [[...labels.keys()], [...labels.values()], groupId],
  )).rows;
  return rows.map((r) => r.user_id);
}

/**
 * Deletes the membership rows of `userIds` (any status; with a scope, only users in the
 * subtree); returns the user ids actually deleted.
 */
export async function deleteGroupMembers(db: Tx, groupId: string, userIds: readonly string[], scopePath?: string | null): Promise<string[]> {
  const ids = [...new Set(userIds.filter(isUuid))];
  if (!ids.length) return [];
  const q = db('group_members as gm').where('gm.group_id', groupId).whereRaw('gm.user_id = any(?::uuid[])', [ids]);
  if (scopePath) {
    const scope = inScope('gm.user_id', scopePath);
    q.whereRaw(scope.sql, scope.bindings);
  }
  const rows: { user_id: string }[] = await q.delete().returning('gm.user_id');
  return rows.map((r) => r.user_id);
}

/**
 * Deletes every membership of a visible user (see above) whose id is not in `keepIds`, with an
 * anti-join on the given set (hashed, not a per-row scan of the list); returns the deleted ids.
 * Memberships of deprovisioned users, and with a scope those of users outside it, are kept.
 */
export async function deleteGroupMembersExcept(db: Tx, groupId: string, keepIds: readonly string[], scopePath?: string | null): Promise<string[]> {
  const visible = visibleUser('u', scopePath);
  const rows: { user_id: string }[] = (await db.raw(
    `delete from group_members gm using users u
      where gm.group_id = ? and u.id = gm.user_id and ${visible.sql}
        and not exists (select 1 from unnest(?::uuid[]) as keep(id) where keep.id = gm.user_id)
      returning gm.user_id`,
    [groupId, ...visible.bindings, [...new Set(keepIds.filter(isUuid))]],
  )).rows;
  return rows.map((r) => r.user_id);
}

export interface GroupMemberView {
  groupId: string;
  userId: string;
  /** The label a SCIM client gave the membership, else the user's display name, else "given family", else the username. */
  display: string;
}

/**
 * The visible members (not deprovisioned; with a scope, only users with a department in that
 * subtree) of several groups in ONE query, ordered by group and user id: a page of groups costs
 * one query, never one per group.
 */
export async function findMembersOfGroups(db: Tx, groupIds: readonly string[], scopePath?: string | null): Promise<GroupMemberView[]> {
  if (!groupIds.length) return [];
  const visible = visibleUser('u', scopePath);
  const rows: { group_id: string; user_id: string; display: string }[] = await db('group_members as gm')
    .join('users as u', 'u.id', 'gm.user_id')
    .select('gm.group_id', 'gm.user_id', db.raw(`coalesce(nullif(gm.display_label, ''), ${USER_LABEL_SQL('u')}) as display`))
    .whereRaw('gm.group_id = any(?::uuid[])', [[...groupIds]])
    .andWhereRaw(visible.sql, visible.bindings)
    .orderBy([{ column: 'gm.group_id' }, { column: 'gm.user_id' }]);
  return rows.map((r) => ({ groupId: r.group_id, userId: r.user_id, display: r.display }));
}
