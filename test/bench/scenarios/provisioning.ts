// Scenarios 10 and 11: keeping apps in step (#21).
//
// 10: a full sync of 10,000 entitled people (one department assigned to the app) into a second
// OneID (the downstream app, on the load core, with a database of its own). Figures: people per
// second, and each side's CPU per person from /proc. Goal: the sync is limited by the receiving
// side (OneID's CPU per pushed person below the receiving OneID's CPU per created person), with
// OneID's peak RSS <= 300 MB (the entitled people are streamed in pages).
//
// 11: offboarding a person who is provisioned into 20 apps (each its own SCIM app: the SCIMMY test
// app, 20 of them in this process on the load core) and signed in to none: time from
// POST /users/{id}/offboard until the receipt shows every app's deactivation acknowledged.
// Goal: within 5 s.
//
// People, department, apps and assignments are written with SQL (no events: nothing is pushed
// before the measured window); targets and the sync go through the admin API as an admin would.
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import type { BenchContext, Downstream, Row, Scenario } from '../lib/scenario.ts';
import { cpuSeconds, peakRssMb, resetPeakRss } from '../lib/proc.ts';
import { ScimmyApp } from '../../helpers/scim-app.ts';

const PEOPLE = 10_000;
const OFFBOARD_APPS = 20;
const API = '/admin/api/v1';

async function adminToken(ctx: BenchContext, name: string, roles: string[]): Promise<string> {
  const app = await ctx.cli(['apps', 'create', '--name', name, '--grant-types', 'client_credentials', ...roles.flatMap((r) => ['--admin-role', r])]);
  const res = await fetch(`${ctx.oneid.base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  const { access_token: token } = await res.json() as { access_token?: string };
  if (!token) throw new Error(`no admin token (${res.status})`);
  return token;
}

async function api(ctx: BenchContext, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${ctx.oneid.base}${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/** An app (SQL) assigned to `departmentId`; returns its id. */
async function insertApp(db: pg.Client, name: string, departmentId: string): Promise<string> {
  const id = randomUUID();
  await db.query(
    `insert into apps (id, name, protocol, client_id, access, oidc) values ($1, $2, 'oidc', $3, 'assigned', $4)`,
    [id, name, `bench-${id}`, JSON.stringify({
      redirect_uris: ['https://prov.bench.example/callback'], post_logout_redirect_uris: [], grant_types: ['authorization_code'],
      response_types: ['code'], token_endpoint_auth_method: 'none', application_type: 'web',
    })],
  );
  await db.query(`insert into assignments (id, app_id, principal_type, principal_id) values ($1, $2, 'department', $3)`, [randomUUID(), id, departmentId]);
  return id;
}

async function insertDepartment(db: pg.Client, name: string): Promise<string> {
  const id = randomUUID();
  await db.query(`insert into departments (id, name, path, depth) values ($1, $2, $3, 0)`, [id, name, `/${id}/`]);
  return id;
}

const target = (down: Downstream) => ({ baseUrl: down.scimUrl, token: down.token });

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const syncedCount = async (db: pg.Client, appId: string): Promise<number> => (await db.query<{ n: number }>(
  `select count(*)::int as n from provisioned_objects where app_id = $1 and kind = 'user' and state = 'synced' and remote_id is not null`, [appId],
)).rows[0]!.n;

async function fullSync(ctx: BenchContext, db: pg.Client, token: string, down: Downstream): Promise<Row> {
  ctx.log(`10: seeding ${PEOPLE} people in one department (SQL)`);
  const department = await insertDepartment(db, 'provisioning bench');
  await db.query(`
    insert into users (id, username, email, email_verified, emails, given_name, family_name, display_name, employee_number, status, version, created_at, updated_at)
    select gen_random_uuid(), 'sync.' || i, 'sync.' || i || '@bench.example', true,
           jsonb_build_array(jsonb_build_object('value', 'sync.' || i || '@bench.example', 'type', 'work', 'primary', true)),
           'Given' || i, 'Family' || i, 'Given' || i || ' Family' || i, 'S' || lpad(i::text, 6, '0'), 'active', 1, now(), now()
      from generate_series(1, $1::int) i`, [PEOPLE]);
  await db.query(`insert into user_departments (user_id, department_id, is_primary) select id, $1, true from users where username like 'sync.%'`, [department]);
  await db.query('analyze users; analyze user_departments');
  const appId = await insertApp(db, 'provisioning bench app', department);

  ctx.log('10: full sync into the second OneID');
  const canReset = resetPeakRss(ctx.oneid.pid);
  const cpu0 = cpuSeconds(ctx.oneid.pid);
  const down0 = cpuSeconds(down.pid);
  const t0 = performance.now();
  await api(ctx, token, 'PUT', `/apps/${appId}/provisioning`, target(down));
  await api(ctx, token, 'POST', `/apps/${appId}/provisioning/sync`);
  let peak = 0;
  await until('10,000 people in the second OneID', async () => {
    peak = Math.max(peak, peakRssMb(ctx.oneid.pid));
    return (await syncedCount(db, appId)) >= PEOPLE;
  }, 30 * 60_000, 500);
  const seconds = (performance.now() - t0) / 1000;
  const oneidMs = ((cpuSeconds(ctx.oneid.pid) - cpu0) * 1000) / PEOPLE;
  const downMs = ((cpuSeconds(down.pid) - down0) * 1000) / PEOPLE;
  const rss = canReset ? Math.max(peak, peakRssMb(ctx.oneid.pid)) : peak;
  const pass = oneidMs < downMs && rss <= 300;
  return {
    id: '10', scenario: `full sync of ${PEOPLE.toLocaleString('en')} entitled people into a second OneID`,
    value: `${Math.round(PEOPLE / seconds)} people/s; CPU ${oneidMs.toFixed(2)} ms/person (receiver ${downMs.toFixed(2)}); peak RSS ${Math.round(rss)} MB`,
    goal: 'OneID CPU/person < receiver\'s; RSS <= 300 MB', pass,
    oneid: { rps: PEOPLE / seconds, p50: NaN, p99: NaN, errors: 0, serverCpu: NaN, peakRssMb: rss },
  };
}

async function offboarding(ctx: BenchContext, db: pg.Client, token: string): Promise<Row> {
  ctx.log(`11: a person provisioned into ${OFFBOARD_APPS} apps`);
  const department = await insertDepartment(db, 'offboarding bench');
  const userId = randomUUID();
  await db.query(
    `insert into users (id, username, email, emails, given_name, family_name, display_name, status) values ($1, 'leaver.bench', 'leaver.bench@bench.example', $2, 'Lea', 'Ver', 'Lea Ver', 'active')`,
    [userId, JSON.stringify([{ value: 'leaver.bench@bench.example', type: 'work', primary: true }])],
  );
  await db.query(`insert into user_departments (user_id, department_id, is_primary) values ($1, $2, true)`, [userId, department]);
  const apps: string[] = [];
  const scimApps = Array.from({ length: OFFBOARD_APPS }, () => new ScimmyApp());
  try {
    for (let i = 0; i < OFFBOARD_APPS; i += 1) {
      const appId = await insertApp(db, `offboarding bench app ${i}`, department);
      apps.push(appId);
      // Setting the target starts a sync of the app's people (the leaver).
      await api(ctx, token, 'PUT', `/apps/${appId}/provisioning`, { baseUrl: await scimApps[i]!.start(), token: scimApps[i]!.token });
    }
    return await offboardingMeasured(ctx, db, token, userId);
  } finally {
    for (const app of scimApps) await app.stop().catch(() => undefined);
  }
}

async function offboardingMeasured(ctx: BenchContext, db: pg.Client, token: string, userId: string): Promise<Row> {
  await until(`the leaver in ${OFFBOARD_APPS} apps`, async () => (await db.query<{ n: number }>(
    `select count(*)::int as n from provisioned_objects where kind = 'user' and local_id = $1 and state = 'synced' and active`, [userId],
  )).rows[0]!.n >= OFFBOARD_APPS, 120_000);

  ctx.log('11: offboarding');
  const t0 = performance.now();
  const receipt = await api(ctx, token, 'POST', `/users/${userId}/offboard`);
  const id = receipt.id as string;
  let last: any;
  await until('every app acknowledged', async () => {
    last = await api(ctx, token, 'GET', `/offboardings/${id}`);
    const lines = last.apps as { actions: { action: string; state: string }[] }[];
    // Apps open to everyone (the bench's own apps, the console) are on the receipt too, as not applicable.
    const provisioning = lines.flatMap((l) => l.actions.filter((a) => a.action === 'provisioning_deactivate' && a.state !== 'not_applicable'));
    return provisioning.length >= OFFBOARD_APPS && provisioning.every((a) => a.state === 'acknowledged');
  }, 60_000, 50);
  const seconds = (performance.now() - t0) / 1000;
  return {
    id: '11', scenario: `offboarding a person provisioned into ${OFFBOARD_APPS} apps, until every app acknowledged`,
    value: `${seconds.toFixed(2)} s`, goal: '<= 5 s', pass: seconds <= 5,
  };
}

export const provisioning: Scenario = {
  id: '10',
  title: 'provisioning: full sync of 10,000 people (10) and offboarding across 20 apps (11)',
  goal: 'see rows 10 and 11',
  measure: async (ctx): Promise<Row[]> => {
    const down = await ctx.downstream();
    const db = new pg.Client({ connectionString: ctx.env.DATABASE_URL });
    await db.connect();
    try {
      const token = await adminToken(ctx, 'bench provisioning admin', ['app_admin', 'user_admin']);
      // Each row on its own: a failure of one still prints the other.
      const rows: Row[] = [];
      for (const [id, run] of [['10', () => fullSync(ctx, db, token, down)], ['11', () => offboarding(ctx, db, token)]] as const) {
        try {
          rows.push(await run());
        } catch (err) {
          ctx.log(`${id}: ${(err as Error).message}`);
          rows.push({ id, scenario: id === '10' ? 'full sync into a second OneID' : 'offboarding across 20 apps', goal: 'see docs/performance.md', pass: false, note: (err as Error).message.slice(0, 200) });
        }
      }
      return rows;
    } finally {
      await db.end();
    }
  },
};
