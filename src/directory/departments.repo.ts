// Departments are a tree stored as a materialised path of ids ('/root/.../self/').
// "Everything under X" is `path LIKE '<X.path>%'`, served by the departments__path index
// (text_pattern_ops); a move rewrites the path prefix of the whole subtree in one UPDATE.
import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { isUuid, toUser, type DbUserRow, type User, type UserStatus } from './users.repo.ts';

export interface DbDepartmentRow {
  id: string;
  name: string;
  parent_id: string | null;
  path: string;
  depth: number;
  manager_id: string | null;
  external_id: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface Department {
  id: string;
  name: string;
  parentId: string | null;
  /** Ids from the root down to this department: '/rootId/.../thisId/'. */
  path: string;
  /** 0 for a top-level department. */
  depth: number;
  managerId: string | null;
  externalId: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  /** Only when asked for (DepartmentFilter.withCounts): direct members and sub-departments. */
  memberCount?: number;
  subDepartmentCount?: number;
}

export const toDepartment = (r: DbDepartmentRow): Department => ({
  id: r.id,
  name: r.name,
  parentId: r.parent_id,
  path: r.path,
  depth: r.depth,
  managerId: r.manager_id,
  externalId: r.external_id,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const pathOf = (parentPath: string | null, id: string): string => `${parentPath ?? '/'}${id}/`;

/** LIKE pattern matching every path that starts with `prefix` (paths hold only uuids and '/'; escaped anyway). */
export const subtreePattern = (prefix: string): string => `${prefix.replace(/[\\%_]/g, '\\$&')}%`;

const likePrefix = (s: string): string => `${s.toLowerCase().replace(/[\\%_]/g, '\\$&')}%`;

/** lock 'update' for the row being changed; 'key share' keeps a referenced row from being deleted meanwhile. */
export async function findDepartmentById(db: Tx, id: string, lock?: 'update' | 'key share'): Promise<Department | undefined> {
  if (!isUuid(id)) return undefined;
  const q = db<DbDepartmentRow>('departments').where({ id }).first();
  if (lock === 'update') q.forUpdate();
  if (lock === 'key share') q.forKeyShare();
  const row = await q;
  return row ? toDepartment(row) : undefined;
}

export interface DepartmentFilter {
  /** A parent id, or null for top-level departments only. */
  parentId?: string | null;
  /** Exact name, case-insensitive. */
  name?: string;
  /** Name prefix, case-insensitive. */
  q?: string;
  externalId?: string;
  /** Departments this user belongs to. */
  memberId?: string;
  /** Keyset cursor: the last row's name and id (compared as (lower(name), id) in SQL). */
  after?: { name: string; id: string };
  limit: number;
  /** Each row with its direct member and sub-department counts. */
  withCounts?: boolean;
}

/** The filter's conditions (not the cursor), shared by the page and its total count. */
function filterDepartments(db: Tx, q: Knex.QueryBuilder, f: Omit<DepartmentFilter, 'after' | 'limit' | 'withCounts'>): Knex.QueryBuilder {
  if (f.parentId === null) q.whereNull('d.parent_id');
  else if (f.parentId !== undefined) q.where('d.parent_id', f.parentId);
  if (f.name !== undefined) q.whereRaw('lower(d.name) = ?', [f.name.toLowerCase()]);
  if (f.q) q.whereRaw("lower(d.name) like ? escape '\\'", [likePrefix(f.q)]);
  if (f.externalId !== undefined) q.where('d.external_id', f.externalId);
  if (f.memberId) q.whereExists((e) => e.select(db.raw('1')).from('user_departments as ud').whereRaw('ud.department_id = d.id and ud.user_id = ?', [f.memberId!]));
  return q;
}

/**
 * Per row, its direct members and sub-departments (each an index-only count on
 * user_departments__department_id and departments__parent_id): for a page of a tree.
 */
const COUNTS_SQL = `(select count(*) from user_departments ud where ud.department_id = d.id)::int as member_count,
  (select count(*) from departments c where c.parent_id = d.id)::int as sub_department_count`;

const withCountsOf = (r: DbDepartmentRow & { member_count?: number; sub_department_count?: number }): Department => ({
  ...toDepartment(r),
  ...(r.member_count !== undefined ? { memberCount: Number(r.member_count), subDepartmentCount: Number(r.sub_department_count) } : {}),
});

/** Ordered by (lower(name), id), filtered and paged in SQL. */
export async function findDepartments(db: Tx, f: DepartmentFilter): Promise<Department[]> {
  const q = filterDepartments(db, db<DbDepartmentRow>('departments as d').select('d.*').orderByRaw('lower(d.name), d.id').limit(f.limit), f);
  if (f.withCounts) q.select(db.raw(COUNTS_SQL));
  if (f.after) q.whereRaw('(lower(d.name), d.id) > (lower(?), ?::uuid)', [f.after.name, f.after.id]);
  return ((await q) as DbDepartmentRow[]).map((r) => withCountsOf(r));
}

/** How many departments the filter matches (all pages). */
export async function countDepartments(db: Tx, f: Omit<DepartmentFilter, 'after' | 'limit' | 'withCounts'>): Promise<number> {
  const [row] = await filterDepartments(db, db('departments as d'), f).count<{ count: number }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

/** How many people departmentMembersQuery lists (all pages). */
export async function countDepartmentMembers(db: Tx, m: Omit<MembersQuery, 'afterUserId' | 'limit'>): Promise<number> {
  let q: Knex.QueryBuilder;
  if (m.subtreePath) {
    q = db('user_departments as ud').join('departments as d', 'd.id', 'ud.department_id')
      .whereRaw("d.path like ? escape '\\'", [subtreePattern(m.subtreePath)]);
    if (m.status) q.join('users as u', 'u.id', 'ud.user_id').where('u.status', m.status);
    const [row] = await q.countDistinct<{ count: number }[]>({ count: 'ud.user_id' });
    return Number(row?.count ?? 0);
  }
  q = db('user_departments as ud').where('ud.department_id', m.departmentId);
  if (m.status) q.join('users as u', 'u.id', 'ud.user_id').where('u.status', m.status);
  const [row] = await q.count<{ count: number }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

/**
 * Every department strictly below the one at `path`, all levels down, in tree order
 * (a parent before its children). Index range scan on departments__path.
 */
export function descendantsQuery(db: Tx, path: string, opts: { afterPath?: string; maxDepth?: number; limit: number }): Knex.QueryBuilder {
  const q = db('departments')
    .select('*')
    .whereRaw("path like ? escape '\\'", [subtreePattern(path)])
    .whereNot('path', path)
    .orderByRaw('path collate "C"')
    .limit(opts.limit);
  if (opts.afterPath) q.whereRaw('path collate "C" > ?', [opts.afterPath]);
  if (opts.maxDepth !== undefined) q.where('depth', '<=', opts.maxDepth);
  return q;
}

export async function findDescendants(db: Tx, path: string, opts: { afterPath?: string; maxDepth?: number; limit: number }): Promise<Department[]> {
  return ((await descendantsQuery(db, path, opts)) as DbDepartmentRow[]).map(toDepartment);
}

export type InsertableDepartment = Pick<DbDepartmentRow, 'id' | 'name' | 'parent_id' | 'path' | 'depth' | 'manager_id' | 'external_id'>;

export async function insertDepartment(db: Tx, row: InsertableDepartment): Promise<Department> {
  const [inserted] = await db('departments').insert(row).returning('*');
  return toDepartment(inserted as DbDepartmentRow);
}

/**
 * Updates columns of one department and bumps its version; with expectedVersion, only if the
 * row is still at that version. Returns undefined when nothing matched.
 */
export async function updateDepartmentById(
  db: Tx, id: string, changes: Partial<Pick<DbDepartmentRow, 'name' | 'parent_id' | 'manager_id' | 'external_id'>>, expectedVersion?: number,
): Promise<Department | undefined> {
  const q = db('departments').where({ id }).update({ ...changes, version: db.raw('version + 1'), updated_at: db.fn.now() }).returning('*');
  if (expectedVersion !== undefined) q.andWhere({ version: expectedVersion });
  const [row] = await q;
  return row ? toDepartment(row as DbDepartmentRow) : undefined;
}

/**
 * Re-roots a subtree in ONE statement: every row whose path starts with `fromPath` gets the
 * prefix replaced by `toPath` and its depth shifted. Descendants' versions are bumped (their
 * path changed); the root's version is bumped by its own update. Returns the rows changed.
 */
export async function moveSubtree(db: Tx, rootId: string, fromPath: string, toPath: string): Promise<number> {
  const depthDelta = (toPath.split('/').length - fromPath.split('/').length);
  return db('departments')
    .whereRaw("path like ? escape '\\'", [subtreePattern(fromPath)])
    .update({
      path: db.raw('? || substr(path, ?)', [toPath, fromPath.length + 1]),
      depth: db.raw('depth + ?', [depthDelta]),
      version: db.raw('version + (case when id = ? then 0 else 1 end)', [rootId]),
      updated_at: db.fn.now(),
    });
}

/** What stops a department from being deleted. */
export async function countDepartmentDependents(db: Tx, id: string): Promise<{ people: number; subDepartments: number }> {
  const [row] = await db.select(
    db.raw('(select count(*) from user_departments where department_id = ?)::int as people', [id]),
    db.raw('(select count(*) from departments where parent_id = ?)::int as "subDepartments"', [id]),
  ) as { people: number; subDepartments: number }[];
  return { people: Number(row?.people ?? 0), subDepartments: Number(row?.subDepartments ?? 0) };
}

export async function deleteDepartmentById(db: Tx, id: string, expectedVersion?: number): Promise<number> {
  const q = db('departments').where({ id }).delete().returning('id');
  if (expectedVersion !== undefined) q.andWhere({ version: expectedVersion });
  return (await q).length;
}

/**
 * App assignments whose principal no longer exists are removed with it, and so are its suite
 * assignments (whose rows are among the former): left behind, a suite would give them back.
 */
export async function deleteAssignmentsOfPrincipal(db: Tx, principalType: 'department' | 'group', principalId: string): Promise<number> {
  // returning(): the embedded PGlite driver does not report a plain delete's row count.
  const removed = (await db('assignments').where({ principal_type: principalType, principal_id: principalId }).delete().returning('id')).length;
  await db('suite_assignments').where({ principal_type: principalType, principal_id: principalId }).delete();
  return removed;
}

// ---- memberships ----

export interface DbUserDepartmentRow { user_id: string; department_id: string; is_primary: boolean; created_at: Date }

export async function findMembership(db: Tx, departmentId: string, userId: string): Promise<DbUserDepartmentRow | undefined> {
  return db<DbUserDepartmentRow>('user_departments').where({ department_id: departmentId, user_id: userId }).first();
}

export async function findPrimaryDepartmentId(db: Tx, userId: string): Promise<string | undefined> {
  const row = await db<DbUserDepartmentRow>('user_departments').where({ user_id: userId, is_primary: true }).first('department_id');
  return row?.department_id;
}

/** Clears the user's primary flag everywhere except `keepDepartmentId` (at most one row). */
export async function demotePrimary(db: Tx, userId: string, keepDepartmentId: string): Promise<number> {
  return db('user_departments').where({ user_id: userId, is_primary: true }).whereNot({ department_id: keepDepartmentId }).update({ is_primary: false });
}

/** Inserts or updates one membership row. */
export async function upsertMembership(db: Tx, departmentId: string, userId: string, primary: boolean): Promise<void> {
  await db('user_departments')
    .insert({ department_id: departmentId, user_id: userId, is_primary: primary })
    .onConflict(['user_id', 'department_id'])
    .merge({ is_primary: primary });
}

export async function deleteMembership(db: Tx, departmentId: string, userId: string): Promise<DbUserDepartmentRow | undefined> {
  const [row] = await db('user_departments').where({ department_id: departmentId, user_id: userId }).delete().returning('*');
  return row as DbUserDepartmentRow | undefined;
}

export interface DepartmentMember extends User {
  /** Direct listing: this is the person's primary department. Recursive: their primary department is in the subtree. */
  primary: boolean;
}

export interface MembersQuery {
  departmentId: string;
  /** The department's path; with it, everyone in the subtree (all levels down) is listed. */
  subtreePath?: string;
  status?: UserStatus;
  /** Keyset cursor: the last user id. */
  afterUserId?: string;
  limit: number;
}

/**
 * People in a department, or (with subtreePath) in it and every department below it. The
 * subtree is an index range scan on departments__path joined to user_departments by
 * department id; a person in several of those departments appears once. Ordered by user id.
 * A page costs one pass over the subtree's memberships, however small or large the subtree.
 */
export function departmentMembersQuery(db: Tx, m: MembersQuery): Knex.QueryBuilder {
  let q: Knex.QueryBuilder;
  if (m.subtreePath) {
    // Materialised, so the plan always starts from the subtree (an index range scan on the
    // path) instead of walking every membership in user-id order hoping to fill a page.
    q = db.withMaterialized('subtree', (s) => s.from('departments').select('id').whereRaw("path like ? escape '\\'", [subtreePattern(m.subtreePath!)]))
      .from('subtree as d')
      .join('user_departments as ud', 'ud.department_id', 'd.id')
      .join('users as u', 'u.id', 'ud.user_id')
      .select('u.*', db.raw('bool_or(ud.is_primary) as member_is_primary'))
      .groupBy('u.id');
  } else {
    q = db('user_departments as ud')
      .join('users as u', 'u.id', 'ud.user_id')
      .select('u.*', 'ud.is_primary as member_is_primary')
      .where('ud.department_id', m.departmentId);
  }
  if (m.status) q.where('u.status', m.status);
  if (m.afterUserId) q.where('u.id', '>', m.afterUserId);
  return q.orderBy('u.id').limit(m.limit);
}

export async function findDepartmentMembers(db: Tx, m: MembersQuery): Promise<DepartmentMember[]> {
  const rows = (await departmentMembersQuery(db, m)) as (DbUserRow & { member_is_primary: boolean })[];
  return rows.map((r) => ({ ...toUser(r), primary: r.member_is_primary }));
}
