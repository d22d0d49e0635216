// What the employee portal reads about the signed-in person: the apps they may open (one
// statement over the entitlement query of access/, so the portal and every protocol agree on who
// may use what), where they belong in the directory, and their recent sign-ins.
import type { Tx } from '../db/knex.ts';
import { run, statement } from '../db/prepared.ts';
import { ENTITLED_APPS_SQL } from '../access/entitlements.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface LauncherApp {
  id: string;
  name: string;
  description: string | null;
  logoUrl: string | null;
  protocol: string;
  clientId: string;
  /** OIDC third-party-initiated login (Core 4), when the app registered one. */
  initiateLoginUri: string | null;
  firstRedirectUri: string | null;
  applicationType: string | null;
  /** An OIDC app people sign in to (the code flow), not a service that only calls APIs. */
  interactive: boolean;
}

interface DbLauncherRow {
  id: string;
  name: string;
  description: string | null;
  logo_url: string | null;
  protocol: string;
  client_id: string;
  initiate_login_uri: string | null;
  first_redirect_uri: string | null;
  application_type: string | null;
  interactive: boolean;
}

const toLauncherApp = (r: DbLauncherRow): LauncherApp => ({
  id: r.id, name: r.name, description: r.description, logoUrl: r.logo_url, protocol: r.protocol, clientId: r.client_id,
  initiateLoginUri: r.initiate_login_uri, firstRedirectUri: r.first_redirect_uri, applicationType: r.application_type,
  interactive: Boolean(r.interactive),
});

const launcherSql = (search: boolean): string => `
  select ap.id, ap.name, ap.description, ap.logo_url, ap.protocol, ap.client_id,
         ap.oidc->>'initiate_login_uri' as initiate_login_uri,
         ap.oidc->'redirect_uris'->>0 as first_redirect_uri,
         ap.oidc->>'application_type' as application_type,
         coalesce(ap.oidc->'grant_types' @> '["authorization_code"]'::jsonb, false) as interactive
    from (${ENTITLED_APPS_SQL}) e
    join apps ap on ap.id = e.app_id
   where e.active and (e.access = 'everyone' or e.assigned)
   ${search ? "and (ap.name ilike ? escape '\\' or coalesce(ap.description, '') ilike ? escape '\\')" : ''}
   order by lower(ap.name), ap.id`;

// Asked at every visit of the portal: prepared, as the entitlement query costs more to plan than to run.
const LAUNCHER = statement('portal_launcher', launcherSql(false));
const LAUNCHER_SEARCH = statement('portal_launcher_search', launcherSql(true));

/** `%text%` for ILIKE, with the pattern's own characters taken literally. */
const containing = (text: string): string => `%${text.replace(/[\\%_]/g, '\\$&')}%`;

/**
 * The apps the user may sign in to, by name; with `search`, those whose name or description
 * contains it (any case). One statement.
 */
export async function findLauncherApps(db: Tx, userId: string, search = ''): Promise<LauncherApp[]> {
  if (!UUID.test(userId)) return [];
  const rows = search
    ? await run<DbLauncherRow>(db, LAUNCHER_SEARCH, [userId, containing(search), containing(search)])
    : await run<DbLauncherRow>(db, LAUNCHER, [userId]);
  return rows.map(toLauncherApp);
}

/** One app as the launcher sees it (whoever asks), or undefined. */
export async function findLauncherAppById(db: Tx, appId: string): Promise<LauncherApp | undefined> {
  if (!UUID.test(appId)) return undefined;
  const row = await db('apps as ap').where('ap.id', appId).first<DbLauncherRow | undefined>(db.raw(`ap.id, ap.name, ap.description, ap.logo_url, ap.protocol, ap.client_id,
    ap.oidc->>'initiate_login_uri' as initiate_login_uri, ap.oidc->'redirect_uris'->>0 as first_redirect_uri,
    ap.oidc->>'application_type' as application_type,
    coalesce(ap.oidc->'grant_types' @> '["authorization_code"]'::jsonb, false) as interactive`));
  return row ? toLauncherApp(row) : undefined;
}

export interface Placement {
  departments: { name: string; primary: boolean }[];
  groups: string[];
  manager: { name: string; email: string | null } | null;
}

/** The person's departments (primary first), groups and manager, for their profile page. */
export async function findPlacement(db: Tx, userId: string, managerId: string | null): Promise<Placement> {
  const [departments, groups, manager] = await Promise.all([
    db('user_departments as ud').join('departments as d', 'd.id', 'ud.department_id').where('ud.user_id', userId)
      .orderBy([{ column: 'ud.is_primary', order: 'desc' }, { column: 'd.name' }]).select('d.name', 'ud.is_primary'),
    db('groups as g').join('group_members as gm', 'gm.group_id', 'g.id').where('gm.user_id', userId).orderBy('g.name').select('g.name'),
    managerId ? db('users').where({ id: managerId }).first('display_name', 'username', 'email') : undefined,
  ]) as [{ name: string; is_primary: boolean }[], { name: string }[], { display_name: string | null; username: string; email: string | null } | undefined];
  return {
    departments: departments.map((d) => ({ name: d.name, primary: d.is_primary })),
    groups: groups.map((g) => g.name),
    manager: manager ? { name: manager.display_name ?? manager.username, email: manager.email } : null,
  };
}

export interface SignInRecord {
  at: Date;
  userAgent: string | null;
  ip: string | null;
  methods: string[];
  endedAt: Date | null;
  endedReason: string | null;
  expiresAt: Date;
}

/** The person's last sign-ins (OneID sessions, ended ones too, kept for 30 days), newest first. */
export async function findRecentSignIns(db: Tx, userId: string, limit: number): Promise<SignInRecord[]> {
  const rows: { created_at: Date; user_agent: string | null; ip: string | null; methods: { method: string }[]; ended_at: Date | null; ended_reason: string | null; expires_at: Date }[] =
    await db('sessions').where({ user_id: userId }).orderBy('created_at', 'desc').limit(limit)
      .select('created_at', 'user_agent', 'ip', 'methods', 'ended_at', 'ended_reason', 'expires_at');
  return rows.map((r) => ({
    at: r.created_at, userAgent: r.user_agent, ip: r.ip, methods: [...new Set((r.methods ?? []).map((m) => m.method))],
    endedAt: r.ended_at, endedReason: r.ended_reason, expiresAt: r.expires_at,
  }));
}
