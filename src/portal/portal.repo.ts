// What the employee portal reads about the signed-in person: the apps they may open (one
// statement over the entitlement query of access/, so the portal and every protocol agree on who
// may use what) with the suites they are in, where they belong in the directory, and their
// recent sign-ins.
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

/** A suite as the portal shows it: a section of the launcher. */
export interface LauncherSuite { id: string; name: string; iconUrl: string | null }

/** The launcher's apps in the order they are shown: each suite's apps, then those in no suite. */
export interface LauncherSection { suite: LauncherSuite | null; apps: LauncherApp[] }

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

interface DbLauncherSuiteRow extends DbLauncherRow { suite_id: string | null; suite_name: string | null; suite_icon_url: string | null }

const toLauncherApp = (r: DbLauncherRow): LauncherApp => ({
  id: r.id, name: r.name, description: r.description, logoUrl: r.logo_url, protocol: r.protocol, clientId: r.client_id,
  initiateLoginUri: r.initiate_login_uri, firstRedirectUri: r.first_redirect_uri, applicationType: r.application_type,
  interactive: Boolean(r.interactive),
});

// One row per app and suite it is in (an app in two suites comes twice; an app in none once,
// with no suite), already in the launcher's order: suites by position then name, their apps by
// their position in the suite then name, and last the apps in no suite, by name.
const launcherSql = (search: boolean): string => `
  select ap.id, ap.name, ap.description, ap.logo_url, ap.protocol, ap.client_id,
         ap.oidc->>'initiate_login_uri' as initiate_login_uri,
         ap.oidc->'redirect_uris'->>0 as first_redirect_uri,
         ap.oidc->>'application_type' as application_type,
         coalesce(ap.oidc->'grant_types' @> '["authorization_code"]'::jsonb, false) as interactive,
         s.id as suite_id, s.name as suite_name, s.icon_url as suite_icon_url
    from (${ENTITLED_APPS_SQL}) e
    join apps ap on ap.id = e.app_id
    left join suite_apps sa on sa.app_id = ap.id
    left join suites s on s.id = sa.suite_id
   where e.active and (e.access = 'everyone' or e.assigned)
   ${search ? "and (ap.name ilike ? escape '\\' or coalesce(ap.description, '') ilike ? escape '\\')" : ''}
   order by s.id is null, s.position, lower(s.name), s.id, sa.position, lower(ap.name), ap.id`;

// Asked at every visit of the portal: prepared, as the entitlement query costs more to plan than to run.
const LAUNCHER = statement('portal_launcher', launcherSql(false));
const LAUNCHER_SEARCH = statement('portal_launcher_search', launcherSql(true));

/** `%text%` for ILIKE, with the pattern's own characters taken literally. */
const containing = (text: string): string => `%${text.replace(/[\\%_]/g, '\\$&')}%`;

/**
 * The apps the user may sign in to, in sections: one per suite that holds at least one of them,
 * then one (suite null) for the apps in no suite. With `search`, only the apps whose name or
 * description contains it (any case). One statement.
 */
export async function findLauncherSections(db: Tx, userId: string, search = ''): Promise<LauncherSection[]> {
  if (!UUID.test(userId)) return [];
  const rows = search
    ? await run<DbLauncherSuiteRow>(db, LAUNCHER_SEARCH, [userId, containing(search), containing(search)])
    : await run<DbLauncherSuiteRow>(db, LAUNCHER, [userId]);
  // The rows come sorted by section: a new section starts where the suite changes.
  const sections: LauncherSection[] = [];
  for (const row of rows) {
    const last = sections.at(-1);
    if (last && (last.suite?.id ?? null) === row.suite_id) {
      last.apps.push(toLauncherApp(row));
      continue;
    }
    const suite = row.suite_id ? { id: row.suite_id, name: row.suite_name ?? '', iconUrl: row.suite_icon_url } : null;
    sections.push({ suite, apps: [toLauncherApp(row)] });
  }
  return sections;
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
