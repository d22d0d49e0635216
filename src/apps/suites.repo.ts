// Suites (#22) in SQL: the suite rows with their members and roles, suite assignments, suite
// grants, and the two statements the suites service derives from them (a suite assignment's
// rows in `assignments`, an app's suite_signin_policy).
import type { Tx } from '../db/knex.ts';
import type { SignInPolicy } from '../access/signin-policy.ts';
import { PRINCIPAL_NAME_SQL, type PrincipalType } from '../access/assignments.repo.ts';
import { isUuid } from './apps.repo.ts';
import { appChanged } from './client-cache.ts';

export interface DbSuiteRow {
  id: string;
  name: string;
  description: string | null;
  icon_url: string | null;
  position: number;
  signin_policy: SignInPolicy | null;
  suite_signout: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface SuiteMember {
  appId: string;
  name: string;
  protocol: string;
  position: number;
  /** Suite role key -> the keys of this app's roles it gives, both sorted. */
  roleMap: Record<string, string[]>;
}

export interface SuiteRole { id: string; key: string; name: string; description: string | null }

export interface Suite {
  id: string;
  name: string;
  description: string | null;
  iconUrl: string | null;
  position: number;
  signInPolicy: SignInPolicy | null;
  suiteSignout: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  apps: SuiteMember[];
  roles: SuiteRole[];
}

type SuiteRowWithParts = DbSuiteRow & { apps: SuiteMember[] | null; roles: SuiteRole[] | null };

const toSuite = (r: SuiteRowWithParts): Suite => ({
  id: r.id,
  name: r.name,
  description: r.description,
  iconUrl: r.icon_url,
  position: r.position,
  signInPolicy: r.signin_policy,
  suiteSignout: r.suite_signout,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  apps: (r.apps ?? []).map((m) => ({ ...m, roleMap: m.roleMap ?? {} })),
  roles: r.roles ?? [],
});

/** Suite rows with their members (each with its role map) and roles, in one statement. */
function selectSuites(db: Tx) {
  return db('suites as s').select('s.*', db.raw(`(
      select json_agg(json_build_object('appId', ap.id, 'name', ap.name, 'protocol', ap.protocol, 'position', sa.position,
               'roleMap', (select json_object_agg(m.key, m.app_roles) from (
                   select sr.key, json_agg(ar.key order by ar.key) as app_roles
                     from suite_role_app_roles srar
                     join suite_roles sr on sr.id = srar.suite_role_id
                     join app_roles ar on ar.id = srar.app_role_id
                    where srar.suite_id = sa.suite_id and srar.app_id = sa.app_id
                    group by sr.key order by sr.key) m))
             order by sa.position, lower(ap.name), ap.id)
        from suite_apps sa join apps ap on ap.id = sa.app_id
       where sa.suite_id = s.id) as apps`), db.raw(`(
      select json_agg(json_build_object('id', r.id, 'key', r.key, 'name', r.name, 'description', r.description) order by r.key)
        from suite_roles r where r.suite_id = s.id) as roles`));
}

export async function findSuiteById(db: Tx, id: string, opts: { forUpdate?: boolean } = {}): Promise<Suite | undefined> {
  if (!isUuid(id)) return undefined;
  if (opts.forUpdate) {
    // Locks the suite row alone (an aggregate cannot be locked): every write to a suite takes it first.
    if (!(await db('suites').where({ id }).forUpdate().first('id'))) return undefined;
  }
  const row = await selectSuites(db).where('s.id', id).first();
  return row ? toSuite(row as SuiteRowWithParts) : undefined;
}

export interface SuiteFilter {
  after?: { position: number; name: string; id: string };
  limit: number;
  /** Only the suites this app is a member of. */
  appId?: string;
}

/** Suites that have the app as a member. */
const withMember = (db: Tx, appId: string) => db('suite_apps as m').whereRaw('m.suite_id = s.id').where('m.app_id', appId).select(db.raw('1'));

/** Suites in portal order (position, then name), keyset-paged in SQL. */
export async function findSuites(db: Tx, f: SuiteFilter): Promise<Suite[]> {
  const q = selectSuites(db).orderBy([{ column: 's.position' }, { column: db.raw('lower(s.name)') as never }, { column: 's.id' }]).limit(f.limit);
  if (f.after) q.whereRaw('(s.position, lower(s.name), s.id) > (?, lower(?), ?::uuid)', [f.after.position, f.after.name, f.after.id]);
  if (f.appId) q.whereExists(withMember(db, f.appId));
  return ((await q) as SuiteRowWithParts[]).map(toSuite);
}

export async function countSuites(db: Tx, appId?: string): Promise<number> {
  const q = db('suites as s');
  if (appId) q.whereExists(withMember(db, appId));
  const [row] = await q.count<{ count: string }[]>('* as count');
  return Number(row?.count ?? 0);
}

export async function insertSuite(db: Tx, row: Omit<DbSuiteRow, 'created_at' | 'updated_at' | 'version'>): Promise<void> {
  await db('suites').insert(row);
}

export type SuiteChanges = Partial<Pick<DbSuiteRow, 'name' | 'description' | 'icon_url' | 'position' | 'signin_policy' | 'suite_signout'>>;

/** Updates columns and bumps the version (with no columns, only bumps it): the ETag follows members and roles too. */
export async function updateSuiteById(db: Tx, id: string, changes: SuiteChanges): Promise<void> {
  await db('suites').where({ id }).update({ ...changes, version: db.raw('version + 1'), updated_at: db.fn.now() });
}

export async function deleteSuiteById(db: Tx, id: string): Promise<boolean> {
  return (await db('suites').where({ id }).delete().returning('id')).length > 0;
}

// ---- members ------------------------------------------------------------------------------

export async function memberAppIds(db: Tx, suiteId: string): Promise<string[]> {
  return (await db('suite_apps').where({ suite_id: suiteId }).orderBy('app_id').select('app_id')).map((r: { app_id: string }) => r.app_id);
}

/** Adds the app, or changes its position when given; true when it was added. */
export async function upsertSuiteApp(db: Tx, suiteId: string, appId: string, position: number | undefined): Promise<boolean> {
  const existing = await db('suite_apps').where({ suite_id: suiteId, app_id: appId }).first('app_id');
  if (existing) {
    if (position !== undefined) await db('suite_apps').where({ suite_id: suiteId, app_id: appId }).update({ position });
    return false;
  }
  await db('suite_apps').insert({ suite_id: suiteId, app_id: appId, position: position ?? 0 });
  return true;
}

/** Removes the member; its role mappings and the grants naming it go with it (cascades). */
export async function deleteSuiteApp(db: Tx, suiteId: string, appId: string): Promise<boolean> {
  return (await db('suite_apps').where({ suite_id: suiteId, app_id: appId }).delete().returning('app_id')).length > 0;
}

/** Replaces what the suite's roles give in one member app: pairs of suite role id and app role id. */
export async function replaceRoleMap(db: Tx, suiteId: string, appId: string, pairs: { suiteRoleId: string; appRoleId: string }[]): Promise<void> {
  await db('suite_role_app_roles').where({ suite_id: suiteId, app_id: appId }).delete();
  if (pairs.length) {
    await db('suite_role_app_roles').insert(pairs.map((p) => ({ suite_role_id: p.suiteRoleId, suite_id: suiteId, app_id: appId, app_role_id: p.appRoleId })))
      .onConflict(['suite_role_id', 'app_role_id']).ignore();
  }
}

// ---- suite roles --------------------------------------------------------------------------

export async function findSuiteRoles(db: Tx, suiteId: string): Promise<SuiteRole[]> {
  return db('suite_roles').where({ suite_id: suiteId }).orderBy('key').select('id', 'key', 'name', 'description');
}

export async function findSuiteRoleById(db: Tx, suiteId: string, id: string): Promise<SuiteRole | undefined> {
  if (!isUuid(id)) return undefined;
  return db('suite_roles').where({ suite_id: suiteId, id }).first('id', 'key', 'name', 'description');
}

export async function insertSuiteRole(db: Tx, row: { id: string; suite_id: string; key: string; name: string; description: string | null }): Promise<void> {
  await db('suite_roles').insert(row);
}

export async function updateSuiteRoleById(db: Tx, suiteId: string, id: string, changes: Partial<Pick<SuiteRole, 'key' | 'name' | 'description'>>): Promise<void> {
  if (Object.keys(changes).length) await db('suite_roles').where({ suite_id: suiteId, id }).update(changes);
}

export async function deleteSuiteRoleById(db: Tx, suiteId: string, id: string): Promise<boolean> {
  return (await db('suite_roles').where({ suite_id: suiteId, id }).delete().returning('id')).length > 0;
}

// ---- suite assignments --------------------------------------------------------------------

export interface SuiteAssignment {
  id: string;
  suiteId: string;
  principalType: PrincipalType;
  principalId: string;
  /** The user's display name (else username), the group's or the department's name. */
  principalName: string | null;
  includeSubdepartments: boolean;
  /** Suite roles, by key. */
  roles: { id: string; key: string; name: string }[];
  createdAt: Date;
}

interface DbSuiteAssignmentRow {
  id: string; suite_id: string; principal_type: PrincipalType; principal_id: string; include_subdepartments: boolean; created_at: Date;
  roles: SuiteAssignment['roles'] | null; principal_name: string | null;
}

const toSuiteAssignment = (r: DbSuiteAssignmentRow): SuiteAssignment => ({
  id: r.id,
  suiteId: r.suite_id,
  principalType: r.principal_type,
  principalId: r.principal_id,
  principalName: r.principal_name ?? null,
  includeSubdepartments: r.include_subdepartments,
  roles: r.roles ?? [],
  createdAt: r.created_at,
});

function selectSuiteAssignments(db: Tx) {
  return db('suite_assignments as a').select('a.*', db.raw(`(
    select json_agg(json_build_object('id', r.id, 'key', r.key, 'name', r.name) order by r.key)
      from suite_assignment_roles sar join suite_roles r on r.id = sar.suite_role_id
     where sar.suite_assignment_id = a.id) as roles`), db.raw(PRINCIPAL_NAME_SQL));
}

export async function findSuiteAssignmentById(db: Tx, suiteId: string, id: string): Promise<SuiteAssignment | undefined> {
  if (!isUuid(id)) return undefined;
  const row = await selectSuiteAssignments(db).where({ 'a.id': id, 'a.suite_id': suiteId }).first();
  return row ? toSuiteAssignment(row as DbSuiteAssignmentRow) : undefined;
}

export interface SuiteAssignmentFilter {
  suiteId: string;
  after?: { createdAt: string; id: string };
  limit: number;
}

export async function findSuiteAssignments(db: Tx, f: SuiteAssignmentFilter): Promise<SuiteAssignment[]> {
  const q = selectSuiteAssignments(db).where('a.suite_id', f.suiteId).orderBy([{ column: 'a.created_at' }, { column: 'a.id' }]).limit(f.limit);
  if (f.after) q.whereRaw('(a.created_at, a.id) > (?::timestamptz, ?::uuid)', [f.after.createdAt, f.after.id]);
  return ((await q) as DbSuiteAssignmentRow[]).map(toSuiteAssignment);
}

export async function countSuiteAssignments(db: Tx, suiteId: string): Promise<number> {
  const [row] = await db('suite_assignments').where({ suite_id: suiteId }).count<{ count: string }[]>('* as count');
  return Number(row?.count ?? 0);
}

export async function insertSuiteAssignment(db: Tx, row: { id: string; suite_id: string; principal_type: PrincipalType; principal_id: string; include_subdepartments: boolean }): Promise<void> {
  await db('suite_assignments').insert(row);
}

export async function updateSuiteAssignmentById(db: Tx, id: string, changes: { include_subdepartments?: boolean }): Promise<void> {
  if (Object.keys(changes).length) await db('suite_assignments').where({ id }).update(changes);
}

export async function replaceSuiteAssignmentRoles(db: Tx, id: string, suiteRoleIds: string[]): Promise<void> {
  await db('suite_assignment_roles').where({ suite_assignment_id: id }).delete();
  if (suiteRoleIds.length) {
    await db('suite_assignment_roles').insert([...new Set(suiteRoleIds)].map((roleId) => ({ suite_assignment_id: id, suite_role_id: roleId })));
  }
}

export async function deleteSuiteAssignmentById(db: Tx, id: string): Promise<boolean> {
  return (await db('suite_assignments').where({ id }).delete().returning('id')).length > 0;
}

// ---- materialization ----------------------------------------------------------------------

/** One row in `assignments` that a suite assignment gives (wanted) or gave (existing). */
export interface SuiteRow {
  suiteAssignmentId: string;
  appId: string;
  principalType: PrincipalType;
  principalId: string;
  includeSubdepartments: boolean;
  /** App role ids, sorted. */
  roleIds: string[];
}

export interface ExistingSuiteRow extends SuiteRow { id: string }

/**
 * What the suite's assignments should give: one row per suite assignment and member app, with the
 * app roles that the assignment's suite roles map to in that app. `without` leaves suite
 * assignments out (one about to be deleted; every one when the suite is).
 */
export async function wantedSuiteRows(db: Tx, suiteId: string, without: 'all' | string[] = []): Promise<SuiteRow[]> {
  if (without === 'all') return [];
  const rows = await db.raw(`
    select sa.id as "suiteAssignmentId", m.app_id as "appId", sa.principal_type as "principalType", sa.principal_id as "principalId",
           sa.include_subdepartments as "includeSubdepartments",
           array(select distinct srar.app_role_id::text
                   from suite_assignment_roles sar
                   join suite_role_app_roles srar on srar.suite_role_id = sar.suite_role_id
                  where sar.suite_assignment_id = sa.id and srar.suite_id = m.suite_id and srar.app_id = m.app_id
                  order by 1) as "roleIds"
      from suite_assignments sa
      join suite_apps m on m.suite_id = sa.suite_id
     where sa.suite_id = ? and not (sa.id::text = any(?::text[]))`, [suiteId, without]);
  return rows.rows as SuiteRow[];
}

/** The rows the suite's assignments have in `assignments` now. */
export async function existingSuiteRows(db: Tx, suiteId: string): Promise<ExistingSuiteRow[]> {
  const rows = await db.raw(`
    select a.id, a.suite_assignment_id as "suiteAssignmentId", a.app_id as "appId", a.principal_type as "principalType",
           a.principal_id as "principalId", a.include_subdepartments as "includeSubdepartments",
           array(select ar.app_role_id::text from assignment_roles ar where ar.assignment_id = a.id order by 1) as "roleIds"
      from assignments a
      join suite_assignments sa on sa.id = a.suite_assignment_id
     where sa.suite_id = ?`, [suiteId]);
  return rows.rows as ExistingSuiteRow[];
}

/** The keys of app roles by id (for audit records). */
export async function appRoleKeys(db: Tx, roleIds: string[]): Promise<Map<string, string>> {
  if (!roleIds.length) return new Map();
  const rows: { id: string; key: string }[] = await db('app_roles').whereIn('id', [...new Set(roleIds)]).select('id', 'key');
  return new Map(rows.map((r) => [r.id, r.key]));
}

/** Ranks policies in SQL: the strongest of an app's suites wins. */
const POLICY_ORDER = "array['password','mfa','phishing_resistant']";

/**
 * Sets apps.suite_signin_policy of these apps to the strongest policy among their suites (null
 * when none). Only rows whose value changes are written; the version is not bumped (the app's own
 * settings did not change), and the apps trigger tells every node's client cache.
 */
export async function refreshSuiteSignInPolicy(db: Tx, appIds: string[]): Promise<void> {
  if (!appIds.length) return;
  const result = await db.raw(`
    update apps a set suite_signin_policy = x.policy
      from (select ap.id, (select s.signin_policy
                             from suite_apps sa join suites s on s.id = sa.suite_id
                            where sa.app_id = ap.id and s.signin_policy is not null
                            order by array_position(${POLICY_ORDER}, s.signin_policy) desc
                            limit 1) as policy
              from apps ap where ap.id::text = any(?::text[])) x
     where a.id = x.id and a.suite_signin_policy is distinct from x.policy
     returning a.client_id`, [[...new Set(appIds)]]);
  for (const { client_id: clientId } of result.rows as { client_id: string }[]) appChanged(db, clientId);
}

// ---- suite grants -------------------------------------------------------------------------

export interface SuiteGrant {
  id: string;
  suiteId: string;
  clientAppId: string;
  audienceAppId: string;
  scopes: string[];
  roles: string[] | null;
  minSignInPolicy: SignInPolicy | null;
  maxAgeSeconds: number | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface DbSuiteGrantRow {
  id: string;
  suite_id: string;
  client_app_id: string;
  audience_app_id: string;
  scopes: string[];
  roles: string[] | null;
  min_signin_policy: SignInPolicy | null;
  max_age_seconds: number | null;
  created_at: Date;
  updated_at: Date;
}

export const toSuiteGrant = (r: DbSuiteGrantRow): SuiteGrant => ({
  id: r.id,
  suiteId: r.suite_id,
  clientAppId: r.client_app_id,
  audienceAppId: r.audience_app_id,
  scopes: r.scopes ?? [],
  roles: r.roles,
  minSignInPolicy: r.min_signin_policy,
  maxAgeSeconds: r.max_age_seconds,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function findSuiteGrants(db: Tx, suiteId: string): Promise<SuiteGrant[]> {
  return (await db<DbSuiteGrantRow>('suite_grants').where({ suite_id: suiteId }).orderBy([{ column: 'created_at' }, { column: 'id' }])).map(toSuiteGrant);
}

export async function findSuiteGrantById(db: Tx, suiteId: string, id: string): Promise<SuiteGrant | undefined> {
  if (!isUuid(id)) return undefined;
  const row = await db<DbSuiteGrantRow>('suite_grants').where({ suite_id: suiteId, id }).first();
  return row ? toSuiteGrant(row) : undefined;
}

/** The grants (one per suite the two apps share) that let the client app act at the audience app. */
export async function findSuiteGrantsBetween(db: Tx, clientAppId: string, audienceAppId: string): Promise<SuiteGrant[]> {
  if (!isUuid(clientAppId) || !isUuid(audienceAppId)) return [];
  return (await db<DbSuiteGrantRow>('suite_grants').where({ client_app_id: clientAppId, audience_app_id: audienceAppId }).orderBy('created_at')).map(toSuiteGrant);
}

export async function insertSuiteGrant(db: Tx, row: Omit<DbSuiteGrantRow, 'created_at' | 'updated_at'>): Promise<void> {
  await db('suite_grants').insert({
    ...row, scopes: db.raw('?::text[]', [row.scopes]), roles: row.roles === null ? null : db.raw('?::text[]', [row.roles]),
  });
}

export async function updateSuiteGrantById(db: Tx, id: string, changes: Partial<Pick<DbSuiteGrantRow, 'scopes' | 'roles' | 'min_signin_policy' | 'max_age_seconds'>>): Promise<void> {
  const values: Record<string, unknown> = { ...changes };
  if (changes.scopes) values.scopes = db.raw('?::text[]', [changes.scopes]);
  if (changes.roles) values.roles = db.raw('?::text[]', [changes.roles]);
  await db('suite_grants').where({ id }).update({ ...values, updated_at: db.fn.now() });
}

export async function deleteSuiteGrantById(db: Tx, id: string): Promise<boolean> {
  return (await db('suite_grants').where({ id }).delete().returning('id')).length > 0;
}
