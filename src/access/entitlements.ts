// "What may this user do in this app": the one answer every protocol asks (OIDC claims and
// sign-in enforcement now; SAML attributes, SCIM pushes and the portal later).
//
// A user reaches an app through assignments to
//   - the user directly,
//   - a group the user is a member of,
//   - a department the user belongs to (primary or secondary), exactly, or
//   - an ancestor of such a department, when that assignment includes sub-departments.
// The user's roles in the app are the union of the roles of every matching assignment.
// Only active users are entitled to anything. An app with access 'everyone' lets any active
// user in; roles still come from assignments.
//
// Everything is one SQL statement. The ancestors of a department are the ids in its
// materialised path ('/root/.../self/'), so "assigned to an ancestor with sub-departments"
// is a primary-key lookup per path element, never a walk of the tree in JavaScript.
import type { Tx } from '../db/knex.ts';
import { toUser, type DbUserRow, type User } from '../directory/users.repo.ts';
import { run, statement } from '../db/prepared.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface Entitlements {
  /** May the user sign in to the app? */
  allowed: boolean;
  /** Does at least one assignment reach the user? */
  assigned: boolean;
  /** The app's role keys the user holds, sorted. */
  roles: string[];
}

export interface AppEntitlements extends Entitlements { appId: string }

interface Row { app_id: string; active: boolean; access: string | null; assigned: boolean; roles: string[] | null }

/**
 * The CTEs `principals` and `matching` for the user of a CTE `usr` (one row, or none when the user
 * is not active): everything the user is, and the assignments that reach them, of the one app
 * `appIdSql` when given (`reaching`: each way an assignment reaches them; `matching`: each assignment once).
 */
function assignmentCtes(appIdSql?: string): string {
  // via: for a department, the person's own department the principal is (or is an ancestor of).
  return `principals as (
      select 'user'::text as type, usr.id as id, false as inherited, null::uuid as via from usr
      union all
      select 'group', gm.group_id, false, null::uuid
        from group_members gm join usr on usr.id = gm.user_id
      union all
      select 'department', anc.id::uuid, anc.id <> d.id::text, d.id
        from user_departments ud
        join usr on usr.id = ud.user_id
        join departments d on d.id = ud.department_id
        cross join lateral unnest(string_to_array(trim(both '/' from d.path), '/')) as anc(id)
    ), reaching as (
      select a.id, a.app_id, p.type, p.id as principal_id, p.inherited, p.via
        from assignments a
        join principals p on a.principal_type = p.type and a.principal_id = p.id
       where (not p.inherited or a.include_subdepartments)
       ${appIdSql ? `and a.app_id = ${appIdSql}` : ''}
    ), matching as (
      select distinct id, app_id from reaching
    )`;
}

/**
 * The users row with id `idSql`, as a subquery to select from (then filter on status). Kept apart
 * (`offset 0`) so that PostgreSQL can only find it by its primary key: with `status = 'active'`
 * beside the id, a plan made while the table was small (a prepared statement keeps it for its
 * connection) went through the status index and read every active user.
 */
const userByKey = (idSql: string): string => `(select * from users where id = ${idSql} offset 0)`;

/**
 * The SQL for one user and either one app or every app. `?` bindings, in order: userId,
 * then appId twice when one app is asked for. With `account`, one row only when the user is
 * active: the user's columns and the entitlement as ent_access, ent_assigned, ent_roles.
 */
function entitlementSql(oneApp: boolean, account = false): string {
  const tail = account
    ? `select usr.*, ap.access as ent_access,
           exists (select 1 from matching m where m.app_id = ap.id) as ent_assigned,
           ${ROLES_SQL} as ent_roles
      from usr left join apps ap on ap.id = ?`
    : `select ap.id as app_id,
           ap.access,
           exists (select 1 from usr) as active,
           exists (select 1 from matching m where m.app_id = ap.id) as assigned,
           ${ROLES_SQL} as roles
      from apps ap
     where ${oneApp ? 'ap.id = ?' : "ap.access = 'everyone' or exists (select 1 from matching m where m.app_id = ap.id)"}
     order by ap.name, ap.id`;
  return `
    with usr as (
      select ${account ? 'u.*' : 'u.id'} from ${userByKey('?')} u where u.status = 'active'
    ), ${assignmentCtes(oneApp ? '?' : undefined)}
    ${tail}`;
}

/** The app's role keys among the matching assignments (for the app row `ap`). */
const ROLES_SQL = `(select array_agg(distinct r.key order by r.key)
              from matching m
              join assignment_roles ar on ar.assignment_id = m.id
              join app_roles r on r.id = ar.app_role_id
             where m.app_id = ap.id)`;

/**
 * For a statement that reads an oidc-provider token as the CTE `tok` (an oidc_payloads row), the
 * token's account in the app of its client, read with it: CTEs to put after `tok`, and columns
 * account_app_id, account_user (the active user as JSON, else null), account_access,
 * account_assigned and account_roles. Read back with accountFromTokenRow.
 *
 * The user and the app are found by key through scalar subqueries, so that even a plan made
 * while the tables were small (a prepared statement's plan lives as long as its connection) is
 * a primary-key lookup, not a scan joined with the token.
 */
export const TOKEN_ACCOUNT_SQL = {
  ctes: `usr as (
      -- Account ids are user ids (uuid); anything else finds nobody.
      select u.* from ${userByKey(`(select case when tok.account_id ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' then tok.account_id::uuid end from tok)`)} u
       where u.status = 'active'
    ), ap as (
      select a.id, a.access from apps a where a.client_id = (select tok.payload->>'clientId' from tok)
    ), ${assignmentCtes('(select ap.id from ap)')}`,
  columns: `(select ap.id from ap) as account_app_id,
      (select to_jsonb(usr) from usr) as account_user,
      (select ap.access from ap) as account_access,
      exists (select 1 from matching) as account_assigned,
      (select ${ROLES_SQL} from ap) as account_roles`,
};

/**
 * For a statement about one person and some apps (each an `ap` row of the apps table): a CTE `usr`
 * (the person's id and sessions_ended_at, no row when not active) and the assignments reaching
 * them in any app, to put first in a WITH; one `?` binding, the user id (a uuid, or null: nobody).
 * Columns for the row `ap`: person_active, person_sessions_ended_at, person_access,
 * person_assigned, person_roles; read back with personAtAppFromRow.
 */
export const PERSON_AT_APP_SQL = {
  ctes: `usr as (
      select u.id, u.sessions_ended_at from ${userByKey('?::uuid')} u where u.status = 'active'
    ), ${assignmentCtes()}`,
  columns: `exists (select 1 from usr) as person_active,
      (select usr.sessions_ended_at from usr) as person_sessions_ended_at,
      ap.access as person_access,
      exists (select 1 from matching m where m.app_id = ap.id) as person_assigned,
      ${ROLES_SQL} as person_roles`,
};

export interface PersonAtAppColumns {
  person_active: boolean;
  person_sessions_ended_at: Date | null;
  person_access: string | null;
  person_assigned: boolean;
  person_roles: string[] | null;
}

/** A person at one app (PERSON_AT_APP_SQL): undefined when not active. */
export function personAtAppFromRow(row: PersonAtAppColumns & { id: string }): { entitlements: Entitlements; sessionsEndedAt: Date | null } | undefined {
  if (!row.person_active) return undefined;
  const { appId: _id, ...granted } = toEntitlements({ app_id: row.id, active: true, access: row.person_access, assigned: row.person_assigned, roles: row.person_roles });
  return { entitlements: granted, sessionsEndedAt: row.person_sessions_ended_at ?? null };
}

export interface TokenAccountColumns {
  account_app_id: string | null;
  account_user: (Omit<DbUserRow, 'created_at' | 'updated_at' | 'status_changed_at' | 'sessions_ended_at'> & Record<'created_at' | 'updated_at' | 'status_changed_at', string | null> & { sessions_ended_at?: string | null }) | null;
  account_access: string | null;
  account_assigned: boolean;
  account_roles: string[] | null;
}

/** The account read with a token (TOKEN_ACCOUNT_SQL): the active user and their entitlements in the app, if any. */
export function accountFromTokenRow(row: TokenAccountColumns): { appId: string; user: User; entitlements: Entitlements; sessionsEndedAt: Date | null } | undefined {
  if (!row.account_app_id || !row.account_user) return undefined;
  const u = row.account_user;
  const date = (v: string | null) => (v === null ? null : new Date(v));
  const user = toUser({ ...u, created_at: date(u.created_at)!, updated_at: date(u.updated_at)!, status_changed_at: date(u.status_changed_at), sessions_ended_at: date(u.sessions_ended_at ?? null) });
  const { appId, ...granted } = toEntitlements({
    app_id: row.account_app_id, active: true, access: row.account_access, assigned: row.account_assigned, roles: row.account_roles,
  });
  return { appId, user, entitlements: granted, sessionsEndedAt: date(u.sessions_ended_at ?? null) };
}

const toEntitlements = (r: Row): AppEntitlements => {
  const active = Boolean(r.active);
  const assigned = active && Boolean(r.assigned);
  return {
    appId: r.app_id,
    allowed: active && (r.access === 'everyone' || assigned),
    assigned,
    roles: active ? (r.roles ?? []) : [],
  };
};

// Planning this query costs PostgreSQL about ten times more than running it: the one-app forms,
// asked at every sign-in, token and userinfo call, are prepared statements (see db/prepared.ts).
const ONE_APP = statement('entitlements_one_app', entitlementSql(true));
const ACCOUNT_ONE_APP = statement('account_entitlements_one_app', entitlementSql(true, true));

const NONE: Entitlements = { allowed: false, assigned: false, roles: [] };

/** The user's entitlements in one app. Unknown users and apps are entitled to nothing. */
export async function entitlements(db: Tx, userId: string, appId: string): Promise<Entitlements> {
  if (!UUID.test(userId) || !UUID.test(appId)) return { ...NONE };
  const [row] = await run<Row>(db, ONE_APP, [userId, appId, appId]);
  if (!row) return { ...NONE };
  const { appId: _id, ...rest } = toEntitlements(row);
  return rest;
}

/**
 * An active user and their entitlements in one app, in one statement (what every token
 * redemption asks: the token endpoint and userinfo). Undefined when the user is unknown or not
 * active. With the last time every session of the user was ended (users.sessions_ended_at).
 */
export async function activeUserWithEntitlements(db: Tx, userId: string, appId: string): Promise<{ user: User; entitlements: Entitlements; sessionsEndedAt: Date | null } | undefined> {
  if (!UUID.test(userId) || !UUID.test(appId)) return undefined;
  const [row] = await run<DbUserRow & { ent_access: string | null; ent_assigned: boolean; ent_roles: string[] | null }>(db, ACCOUNT_ONE_APP, [userId, appId, appId]);
  if (!row) return undefined;
  const { appId: _id, ...granted } = toEntitlements({ app_id: appId, active: true, access: row.ent_access, assigned: row.ent_assigned, roles: row.ent_roles });
  return { user: toUser(row), entitlements: granted, sessionsEndedAt: row.sessions_ended_at ?? null };
}

/**
 * Every app the user may be entitled to, for callers that read more of each app in the same
 * statement (the portal's launcher): columns app_id, access, active, assigned, roles; one `?`
 * binding, the user id. The user may sign in to a row's app when `active and (access =
 * 'everyone' or assigned)`.
 */
export const ENTITLED_APPS_SQL = entitlementSql(false);

/** Every app the user may sign in to, with the user's roles in each; by app name. */
export async function entitledApps(db: Tx, userId: string): Promise<AppEntitlements[]> {
  if (!UUID.test(userId)) return [];
  const result = await db.raw(entitlementSql(false), [userId]);
  return (result.rows as Row[]).map(toEntitlements).filter((e) => e.allowed);
}

/**
 * The ids of the apps the person could use were they active: reached by an assignment, or open to
 * everyone. Whatever the person's status, so that an offboarding that follows a suspension (HR
 * over SCIM) still finds every app they had. By app name.
 */
export async function appsReachingPerson(db: Tx, userId: string): Promise<string[]> {
  if (!UUID.test(userId)) return [];
  const result = await db.raw(`
    with usr as (select u.id from ${userByKey('?')} u), ${assignmentCtes()}
    select ap.id from apps ap
     where ap.access = 'everyone' or exists (select 1 from matching m where m.app_id = ap.id)
     order by ap.name, ap.id`, [userId]);
  return (result.rows as { id: string }[]).map((r) => r.id);
}

/** Names of the groups the user is a member of, sorted (the `groups` claim). */
export async function groupNamesOf(db: Tx, userId: string): Promise<string[]> {
  if (!UUID.test(userId)) return [];
  const rows: { name: string }[] = await db('groups as g')
    .join('group_members as gm', 'gm.group_id', 'g.id')
    .where('gm.user_id', userId)
    .orderBy('g.name')
    .select('g.name');
  return rows.map((r) => r.name);
}

/** One way an assignment reaches a person: the person, a group of theirs, or a department (theirs, or an ancestor of it). */
export interface EntitlementPath {
  assignmentId: string;
  principalType: 'user' | 'group' | 'department';
  principalId: string;
  /** The group's or department's name (null for the person). */
  principalName: string | null;
  /** For an ancestor's assignment with its sub-departments: the person's own department below it. */
  via: { id: string; name: string } | null;
  /** The app's role keys this assignment gives, sorted. */
  roles: string[];
}

export interface ExplainedEntitlements extends AppEntitlements {
  appName: string;
  /** Every path that reaches the person (none when the app lets everyone in and nothing assigns it). */
  paths: EntitlementPath[];
}

interface PathRow { app_id: string; assignment_id: string; type: EntitlementPath['principalType']; principal_id: string; principal_name: string | null; via_id: string | null; via_name: string | null; roles: string[] | null }

/**
 * Every app the user may sign in to (as entitledApps) and why: each assignment path that reaches
 * them, with the roles it gives. The paths come from the same CTEs as the entitlements, so the
 * explanation cannot disagree with the answer.
 */
export async function explainedEntitledApps(db: Tx, userId: string): Promise<ExplainedEntitlements[]> {
  const apps = await entitledApps(db, userId);
  if (!apps.length) return [];
  const result = await db.raw(`
    with usr as (
      select u.id from ${userByKey('?')} u where u.status = 'active'
    ), ${assignmentCtes()}
    select r.app_id, r.id as assignment_id, r.type, r.principal_id,
           coalesce(g.name, dp.name) as principal_name,
           case when r.inherited then r.via end as via_id, case when r.inherited then vd.name end as via_name,
           (select array_agg(ro.key order by ro.key) from assignment_roles ar join app_roles ro on ro.id = ar.app_role_id where ar.assignment_id = r.id) as roles
      from reaching r
      left join groups g on r.type = 'group' and g.id = r.principal_id
      left join departments dp on r.type = 'department' and dp.id = r.principal_id
      left join departments vd on r.inherited and vd.id = r.via
     order by case r.type when 'user' then 0 when 'group' then 1 else 2 end, principal_name, via_name, r.id`, [userId]);
  const byApp = new Map<string, EntitlementPath[]>();
  const seen = new Set<string>();
  for (const r of result.rows as PathRow[]) {
    // A department reached through two of the person's departments is one path per department.
    const key = `${r.assignment_id}/${r.via_id ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const list = byApp.get(r.app_id) ?? [];
    list.push({
      assignmentId: r.assignment_id, principalType: r.type, principalId: r.principal_id, principalName: r.principal_name,
      via: r.via_id ? { id: r.via_id, name: r.via_name ?? '' } : null, roles: r.roles ?? [],
    });
    byApp.set(r.app_id, list);
  }
  const names = new Map((await db('apps').whereIn('id', apps.map((a) => a.appId)).select<{ id: string; name: string }[]>('id', 'name')).map((a) => [a.id, a.name]));
  return apps.map((a) => ({ ...a, appName: names.get(a.appId) ?? '', paths: byApp.get(a.appId) ?? [] }));
}
