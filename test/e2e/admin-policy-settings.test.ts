// Black-box, on a real server and database: the password policy's minimum length and the default
// sign-in policy changed at runtime through PATCH /admin/api/v1/settings (super_admin only,
// audited), taking effect without a restart: a longer password is asked of a person choosing one,
// and a password-only sign-in to an app without its own policy is asked for a second factor.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClientsOfEachRole, type AdminClient } from '../helpers/admin.ts';
import { Browser, canSignIn } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let sql: pg.Client;
let server: RunningServer;
let env: Record<string, string>;
let superAdmin: AdminClient;
let userAdmin: AdminClient;
let appAdmin: AdminClient;
let auditor: AdminClient;
let app: { clientId: string; redirect: string };

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  // An app without its own sign-in policy: the default decides.
  const created = await runCli(['apps', 'create', '--name', 'Wiki', '--redirect-uri', REDIRECT, '--first-party'], env);
  expect(created.code).toBe(0);
  app = { clientId: created.json.client_id, redirect: REDIRECT };
  server = await startServer(env);
  [superAdmin, userAdmin, appAdmin, auditor] = await adminClientsOfEachRole(server.url, env);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

const ENVIRONMENT = {
  passwordPolicy: { minLength: 8, maxLength: 256, rejectsCommonPasswords: true, source: 'environment', environment: { variable: 'PASSWORD_MIN_LENGTH', minLength: 8 } },
  signInPolicyDefault: { level: 'password', source: 'environment', environment: { variable: 'SIGNIN_POLICY_DEFAULT', level: 'password' } },
};

const storedRows = async () => (await sql.query("select key, value from instance_settings where key like 'policy.%' order by key")).rows;
const settingsEvents = async (): Promise<any[]> => (await auditor.call('GET', '/audit-events?action=settings.updated&limit=100')).body.items;

async function reset(): Promise<void> {
  const res = await superAdmin.call('PATCH', '/settings', { passwordMinLength: null, signInPolicyDefault: null });
  expect(res.status).toBe(200);
  expect(res.body).toEqual(ENVIRONMENT);
}

let seq = 0;
/** A person without a password, and a one-time link (made through the admin API) to choose one. */
async function personWithLink(): Promise<{ username: string; url: string }> {
  seq += 1;
  const username = `chooser${seq}`;
  const created = await superAdmin.call('POST', '/users', { username });
  expect(created.status).toBe(201);
  const link = await superAdmin.call('POST', `/users/${created.body.id}/setup-link`, {});
  expect(link.status).toBe(201);
  return { username, url: link.body.url };
}

/** Chooses `password` at the link's page: the status and the page. */
async function choose(url: string, password: string): Promise<{ status: number; html: string }> {
  const browser = new Browser();
  const form = await browser.navigate(url);
  expect(form.status).toBe(200);
  const done = await browser.submit(form, '/password-setup', { password, confirm: password });
  return { status: done.status, html: done.html };
}

describe('PATCH /admin/api/v1/settings', () => {
  afterEach(reset);

  it('stores values a super_admin gives, shows where each comes from, and goes back to the environment with null (audited with before and after)', async () => {
    expect((await auditor.call('GET', '/settings')).body).toEqual(ENVIRONMENT);

    const raised = await superAdmin.call('PATCH', '/settings', { passwordMinLength: 12 });
    expect(raised.status).toBe(200);
    expect(raised.body.passwordPolicy).toMatchObject({ minLength: 12, source: 'console', environment: { minLength: 8 } });
    expect(raised.body.signInPolicyDefault).toEqual(ENVIRONMENT.signInPolicyDefault);
    const both = await superAdmin.call('PATCH', '/settings', { signInPolicyDefault: 'mfa' });
    expect(both.body.passwordPolicy.minLength).toBe(12);
    expect(both.body.signInPolicyDefault).toEqual({ level: 'mfa', source: 'console', environment: { variable: 'SIGNIN_POLICY_DEFAULT', level: 'password' } });
    // Every admin role reads what is in force.
    for (const who of [auditor, userAdmin, appAdmin]) expect((await who.call('GET', '/settings')).body).toEqual(both.body);
    expect(await storedRows()).toEqual([{ key: 'policy.password_min_length', value: '12' }, { key: 'policy.signin_default', value: 'mfa' }]);

    const back = await superAdmin.call('PATCH', '/settings', { passwordMinLength: null });
    expect(back.body.passwordPolicy).toEqual(ENVIRONMENT.passwordPolicy);
    expect(back.body.signInPolicyDefault.level).toBe('mfa');
    expect(await storedRows()).toEqual([{ key: 'policy.signin_default', value: 'mfa' }]);

    const events = (await settingsEvents()).reverse();
    expect(events.map((e) => [e.before, e.changes])).toEqual([
      [{ passwordMinLength: null }, { passwordMinLength: 12 }],
      [{ signInPolicyDefault: null }, { signInPolicyDefault: 'mfa' }],
      [{ passwordMinLength: 12 }, { passwordMinLength: null }],
    ]);
    expect(events[0]).toMatchObject({ actorType: 'admin_client', actorId: superAdmin.clientId, targetType: 'settings', targetId: 'policies' });
  });

  it('refuses user_admin, app_admin and auditor with 403, and changes nothing', async () => {
    const eventsBefore = (await settingsEvents()).length;
    for (const who of [userAdmin, appAdmin, auditor]) {
      const res = await who.call('PATCH', '/settings', { passwordMinLength: 20, signInPolicyDefault: 'phishing_resistant' });
      expect(res.status).toBe(403);
    }
    expect(await storedRows()).toEqual([]);
    expect((await auditor.call('GET', '/settings')).body).toEqual(ENVIRONMENT);
    expect(await settingsEvents()).toHaveLength(eventsBefore);
    // The refusals themselves are on record.
    const refused = (await auditor.call('GET', '/audit-events?action=write.refused&limit=100')).body.items;
    expect(refused.filter((e: any) => JSON.stringify(e).includes('/settings')).length).toBeGreaterThanOrEqual(3);
    expect((await fetch(`${server.url}/admin/api/v1/settings`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"passwordMinLength":12}' })).status).toBe(401);
  });

  it('refuses values out of range or of the wrong kind with 400 naming the field, and changes nothing', async () => {
    const eventsBefore = (await settingsEvents()).length;
    const bad: [unknown, string][] = [
      [{ passwordMinLength: 7 }, 'passwordMinLength'],
      [{ passwordMinLength: 257 }, 'passwordMinLength'],
      [{ passwordMinLength: 12.5 }, 'passwordMinLength'],
      [{ passwordMinLength: '12' }, 'passwordMinLength'],
      [{ signInPolicyDefault: 'strong' }, 'signInPolicyDefault'],
      [{ signInPolicyDefault: 'MFA', passwordMinLength: 12 }, 'signInPolicyDefault'],
      [{ sessionTtl: 5 }, 'sessionTtl'],
      [{}, 'body'],
    ];
    for (const [body, field] of bad) {
      const res = await superAdmin.call('PATCH', '/settings', body);
      expect([JSON.stringify(body), res.status]).toEqual([JSON.stringify(body), 400]);
      expect(res.body.field).toBe(field);
    }
    expect(await storedRows()).toEqual([]);
    expect(await settingsEvents()).toHaveLength(eventsBefore);
  });

  it('is in the OpenAPI document', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as any;
    const patch = doc.paths['/settings'].patch;
    expect(Object.keys(patch.requestBody.content['application/json'].schema.properties).sort()).toEqual(['passwordMinLength', 'signInPolicyDefault']);
    expect(doc.paths['/settings'].get.responses['200'].content['application/json'].schema.properties.passwordPolicy.required).toContain('source');
  });
});

describe('the policies in force, without a restart', () => {
  afterEach(reset);

  it('asks a person choosing a password for the raised minimum length, and no more once it goes back', async () => {
    const before = await personWithLink();
    expect((await choose(before.url, 'tenletters')).status).toBe(200);

    await superAdmin.call('PATCH', '/settings', { passwordMinLength: 12 });
    const after = await personWithLink();
    const refused = await choose(after.url, 'tenletters');
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('12');
    expect(await canSignIn(server.url, app, after.username, 'tenletters')).toBe(false);
    // The link is still good: a long enough password is taken.
    expect((await choose(after.url, 'twelveletter')).status).toBe(200);
    expect(await canSignIn(server.url, app, after.username, 'twelveletter')).toBe(true);

    await superAdmin.call('PATCH', '/settings', { passwordMinLength: null });
    expect((await choose((await personWithLink()).url, 'tenletters')).status).toBe(200);
  });

  it('asks a password-only sign-in to an app without its own policy for a second factor once the default is mfa', async () => {
    const { url, username } = await personWithLink();
    expect((await choose(url, 'signs-in-with-this')).status).toBe(200);
    expect(await canSignIn(server.url, app, username, 'signs-in-with-this')).toBe(true);

    await superAdmin.call('PATCH', '/settings', { signInPolicyDefault: 'mfa' });
    const browser = new Browser();
    const start = new URL(`${server.url}/auth`);
    start.search = new URLSearchParams({
      client_id: app.clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 'state-1',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    }).toString();
    const page = await browser.navigate(start.toString(), REDIRECT);
    const next = await browser.submit(page, '/login', { login: username, password: 'signs-in-with-this' }, REDIRECT);
    // No code for the app: the flow goes on to a second factor (here: setting one up).
    expect(next.url.startsWith(REDIRECT)).toBe(false);
    expect(next.url).toContain('/login/');
    expect(next.status).toBe(200);

    await superAdmin.call('PATCH', '/settings', { signInPolicyDefault: null });
    expect(await canSignIn(server.url, app, username, 'signs-in-with-this')).toBe(true);
  });

  it('follows a value another node stored within a few seconds', async () => {
    // Another node's change is a row this node has not written: it shows once its cache expires.
    await sql.query("insert into instance_settings (key, value) values ('policy.password_min_length', '14')");
    const deadline = Date.now() + 6000;
    let seen = (await auditor.call('GET', '/settings')).body.passwordPolicy;
    while (seen.minLength !== 14 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      seen = (await auditor.call('GET', '/settings')).body.passwordPolicy;
    }
    expect(seen).toMatchObject({ minLength: 14, source: 'console' });
  }, 15000);
});
