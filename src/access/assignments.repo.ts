import type { Tx } from '../db/knex.ts';
import { isUuid } from '../apps/apps.repo.ts';

export const PRINCIPAL_TYPES = ['user', 'group', 'department'] as const;
export type PrincipalType = (typeof PRINCIPAL_TYPES)[number];

export interface DbAssignmentRow {
  id: string;
  app_id: string;
  principal_type: PrincipalType;
  principal_id: string;
  include_subdepartments: boolean;
  /** Set on a row a suite assignment keeps (see apps/suites.service.ts); null for a direct assignment. */
  suite_assignment_id?: string | null;
  created_at: Date;
}

export interface AssignmentRole { id: string; key: string; name: string }

export interface Assignment {
  id: string;
  appId: string;
  principalType: PrincipalType;
  principalId: string;
  includeSubdepartments: boolean;
  roles: AssignmentRole[];
  /** The user's display name (else username), the group's or the department's name; null if it is gone. */
  principalName: string | null;
  /** The suite and suite assignment that keep this row; null for a direct assignment. */
  suiteId: string | null;
  suiteAssignmentId: string | null;
  /** The keeping suite's name (for the message refusing a direct change). */
  suiteName: string | null;
  createdAt: Date;
}

type RowWithRoles = DbAssignmentRow & { roles: AssignmentRole[] | null; principal_name: string | null; suite_id: string | null; suite_name: string | null };

const toAssignment = (r: RowWithRoles): Assignment => ({
  id: r.id,
  appId: r.app_id,
  principalType: r.principal_type,
  principalId: r.principal_id,
  includeSubdepartments: r.include_subdepartments,
  roles: r.roles ?? [],
  principalName: r.principal_name ?? null,
  suiteId: r.suite_id ?? null,
  suiteAssignmentId: r.suite_assignment_id ?? null,
  suiteName: r.suite_name ?? null,
  createdAt: r.created_at,
});

/** The name of the principal of the row `a` (an app's or a suite's assignment): the person's, the group's or the department's. */
export const PRINCIPAL_NAME_SQL = `case a.principal_type
      when 'user' then (select coalesce(nullif(u.display_name, ''), u.username) from users u where u.id = a.principal_id)
      when 'group' then (select g.name from groups g where g.id = a.principal_id)
      when 'department' then (select d.name from departments d where d.id = a.principal_id)
    end as principal_name`;

/** Assignment rows with their roles aggregated, and the principal's name, in the same statement. */
function selectWithRoles(db: Tx) {
  return db('assignments as a').select('a.*', db.raw(`(
    select json_agg(json_build_object('id', r.id, 'key', r.key, 'name', r.name) order by r.key)
      from assignment_roles ar join app_roles r on r.id = ar.app_role_id
     where ar.assignment_id = a.id) as roles`), db.raw(PRINCIPAL_NAME_SQL), 'sa.suite_id', 's.name as suite_name')
    .leftJoin('suite_assignments as sa', 'sa.id', 'a.suite_assignment_id')
    .leftJoin('suites as s', 's.id', 'sa.suite_id');
}

export async function findAssignmentById(db: Tx, id: string): Promise<Assignment | undefined> {
  if (!isUuid(id)) return undefined;
  const row = await selectWithRoles(db).where('a.id', id).first();
  return row ? toAssignment(row as RowWithRoles) : undefined;
}

export interface AssignmentFilter {
  appId: string;
  principalType?: PrincipalType;
  principalId?: string;
  after?: { createdAt: string; id: string };
  limit: number;
}

/** Filtering, ordering (created_at, id) and keyset paging, all in SQL. */
export async function findAssignments(db: Tx, f: AssignmentFilter): Promise<Assignment[]> {
  const q = selectWithRoles(db).where('a.app_id', f.appId).orderBy([{ column: 'a.created_at' }, { column: 'a.id' }]).limit(f.limit);
  if (f.principalType) q.where('a.principal_type', f.principalType);
  if (f.principalId) q.where('a.principal_id', f.principalId);
  if (f.after) q.whereRaw('(a.created_at, a.id) > (?::timestamptz, ?::uuid)', [f.after.createdAt, f.after.id]);
  return ((await q) as RowWithRoles[]).map(toAssignment);
}

/** How many assignments match the filter (paging aside). */
export async function countAssignments(db: Tx, f: Omit<AssignmentFilter, 'after' | 'limit'>): Promise<number> {
  const q = db('assignments').where('app_id', f.appId).count<{ count: string }[]>('* as count');
  if (f.principalType) q.where('principal_type', f.principalType);
  if (f.principalId) q.where('principal_id', f.principalId);
  const [row] = await q;
  return Number(row?.count ?? 0);
}

export async function insertAssignment(db: Tx, row: Omit<DbAssignmentRow, 'created_at'>): Promise<void> {
  await db('assignments').insert(row);
}

export async function updateAssignmentById(db: Tx, id: string, changes: Partial<Pick<DbAssignmentRow, 'include_subdepartments'>>): Promise<void> {
  if (Object.keys(changes).length) await db('assignments').where({ id }).update(changes);
}

/** Replaces the assignment's roles with exactly these. */
export async function replaceAssignmentRoles(db: Tx, assignmentId: string, roleIds: string[]): Promise<void> {
  await db('assignment_roles').where({ assignment_id: assignmentId }).delete();
  if (roleIds.length) {
    await db('assignment_roles').insert([...new Set(roleIds)].map((roleId) => ({ assignment_id: assignmentId, app_role_id: roleId })));
  }
}

export async function deleteAssignmentById(db: Tx, id: string): Promise<boolean> {
  return (await db('assignments').where({ id }).delete()) > 0;
}

const PRINCIPAL_TABLES: Record<PrincipalType, string> = { user: 'users', group: 'groups', department: 'departments' };

export async function principalExists(db: Tx, type: PrincipalType, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  return Boolean(await db(PRINCIPAL_TABLES[type]).where({ id }).first('id'));
}
