// Scenario 9: the employee portal's launcher (GET / with a OneID session) for a person entitled to
// 50 apps through groups and departments: 20 through three of their five groups, 15 through
// their department, 10 through its parent department (assigned with its sub-departments) and 5
// through a second department; 10 more apps are assigned to a group they are not in. The rows
// are written as the services write them; the session is a sessions row whose token the
// connections send as the browser's cookie.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { loadConfig } from '../../../src/config.ts';
import { createDb } from '../../../src/db/knex.ts';
import { sha256 } from '../../../src/shared/ids.ts';
import type { BenchContext, Row, Scenario } from '../lib/scenario.ts';

const MAX_P99_MS = 50;
/** A latency goal: measured with few connections (as SCIM's latency rows), not at saturation. */
const CONNECTIONS = 4;

/** The person, their groups and departments, 60 apps and their assignments; returns the session cookie. */
async function seed(db: Knex): Promise<string> {
  const userId = randomUUID();
  await db('users').insert({ id: userId, username: 'portal-bench', email: 'portal-bench@example.com', display_name: 'Portal Bench', status: 'active' });
  const groups = Array.from({ length: 5 }, (_, i) => ({ id: randomUUID(), name: `portal bench group ${i}` }));
  await db('groups').insert(groups);
  await db('group_members').insert(groups.slice(0, 3).map((g) => ({ group_id: g.id, user_id: userId })));
  const parent = randomUUID();
  const child = randomUUID();
  const other = randomUUID();
  await db('departments').insert([
    { id: parent, name: 'portal bench division', path: `/${parent}/`, depth: 0 },
    { id: child, name: 'portal bench team', parent_id: parent, path: `/${parent}/${child}/`, depth: 1 },
    { id: other, name: 'portal bench project', path: `/${other}/`, depth: 0 },
  ]);
  await db('user_departments').insert([{ user_id: userId, department_id: child, is_primary: true }, { user_id: userId, department_id: other, is_primary: false }]);

  const apps = Array.from({ length: 60 }, (_, i) => {
    const id = randomUUID();
    return {
      id, name: `Bench app ${String(i).padStart(2, '0')}`, description: `App number ${i} of the portal bench`, protocol: 'oidc',
      client_id: `portal-bench-${i}`, access: 'assigned',
      oidc: JSON.stringify({
        redirect_uris: [`https://app${i}.bench.example/callback`], post_logout_redirect_uris: [], grant_types: ['authorization_code'],
        response_types: ['code'], token_endpoint_auth_method: 'none', application_type: 'web',
        ...(i % 2 ? { initiate_login_uri: `https://app${i}.bench.example/login` } : {}),
      }),
    };
  });
  await db('apps').insert(apps);
  const principal = (i: number): { principal_type: string; principal_id: string; include_subdepartments?: boolean } => {
    if (i < 20) return { principal_type: 'group', principal_id: groups[i % 3]!.id };
    if (i < 35) return { principal_type: 'department', principal_id: child };
    if (i < 45) return { principal_type: 'department', principal_id: parent, include_subdepartments: true };
    if (i < 50) return { principal_type: 'department', principal_id: other };
    return { principal_type: 'group', principal_id: groups[3 + (i % 2)]!.id };
  };
  await db('assignments').insert(apps.map((app, i) => ({ id: randomUUID(), app_id: app.id, ...principal(i) })));

  const token = randomBytes(32).toString('base64url');
  const now = new Date();
  await db('sessions').insert({
    id: randomUUID(), token_hash: sha256(token), user_id: userId, auth_time: now,
    methods: JSON.stringify([{ method: 'password', at: Math.floor(now.getTime() / 1000), amr: ['pwd'] }]),
    acr: 'urn:oneid:acr:password', amr: db.raw('?::text[]', [['pwd']]), user_agent: 'bench', ip: '127.0.0.1',
    expires_at: new Date(now.getTime() + 24 * 3600 * 1000),
  });
  return `oneid.sso=${token}`;
}

export const portalLauncher: Scenario = {
  id: '9',
  title: 'portal launcher for a person entitled to 50 apps through groups and departments',
  goal: `p99 < ${MAX_P99_MS} ms`,
  measure: async (ctx: BenchContext): Promise<Row[]> => {
    ctx.log('9: portal launcher, 50 apps through groups and departments');
    const handle = createDb(loadConfig(ctx.env));
    let cookie: string;
    try {
      cookie = await seed(handle.db as Knex);
    } finally {
      await handle.close();
    }
    const headers = { cookie, accept: 'text/html', 'accept-language': 'en' };
    // The page must be the launcher with the 50 apps (and those open to everyone), not the sign-in.
    const page = await fetch(new URL('/', ctx.oneid.base), { headers });
    const html = await page.text();
    const cards = html.match(/href="\/launch\/[0-9a-f-]{36}"/g)?.length ?? 0;
    const benchCards = html.match(/>Bench app \d\d</g)?.length ?? 0;
    if (page.status !== 200 || benchCards !== 50) throw new Error(`GET /: ${page.status}, ${benchCards} of the 50 entitled apps shown`);
    const oneid = await ctx.load(ctx.oneid, {
      kind: 'http', method: 'GET', path: '/', headers, base: ctx.oneid.base, connections: CONNECTIONS, durationS: ctx.durationS, warmupS: ctx.warmupS,
    });
    return [{
      id: '9', scenario: `portal launcher (GET / signed in) for a person entitled to 50 apps through groups and departments (${cards} cards)`,
      oneid, goal: `p99 < ${MAX_P99_MS} ms`, pass: oneid.p99 < MAX_P99_MS && oneid.errors === 0, note: `${CONNECTIONS} connections`,
    }];
  },
};
