// Black-box: a password set by someone else (an admin through the admin API, a provisioning
// client through SCIM PATCH, PUT or /Bulk) ends every session and grant of that person: their
// old refresh token gets invalid_grant and their old browser session must sign in again. Other
// changes and other people's sessions are left alone. A person changing their own password
// (UsersService.setPassword with the session to keep) stays signed in there only.
import * as client from 'openid-client';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser } from '../helpers/browser.ts';
import { createDb } from '../../src/db/knex.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { sha256 } from '../../src/shared/ids.ts';

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'first-password-1';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let scimToken: string;
let admin: AdminClient;
let config: client.Configuration;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [hr, app] = await Promise.all([
    runCli(['scim-tokens', 'create', '--name', 'HR'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party', '--admin-role', 'auditor'], env),
  ]);
  scimToken = hr.json.token;
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['super_admin']);
  config = await client.discovery(new URL(server.url), app.json.client_id, undefined, client.ClientSecretBasic(app.json.client_secret), { execute: [client.allowInsecureRequests] });
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function scim(method: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/scim/v2${path}`, {
    method,
    headers: { accept: 'application/scim+json', 'content-type': 'application/scim+json', authorization: `Bearer ${scimToken}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

let counter = 0;
async function newPerson(): Promise<{ id: string; username: string }> {
  counter += 1;
  const username = `person${counter}`;
  const created = await scim('POST', '/Users', { schemas: [CORE], userName: username, password: PASSWORD, emails: [{ value: `${username}@example.com`, primary: true }] });
  expect(created.status).toBe(201);
  return { id: created.body.id, username };
}

function authUrl(verifier: string, state: string) {
  return client.calculatePKCECodeChallenge(verifier).then((challenge) => client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid offline_access', state, prompt: 'consent',
    code_challenge: challenge, code_challenge_method: 'S256',
  }));
}

/** Signs in in a browser of its own: the browser (with its session) and the tokens (with a refresh token). */
async function signIn(username: string, password = PASSWORD) {
  const browser = new Browser();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const page = await browser.navigate((await authUrl(verifier, state)).toString(), REDIRECT);
  const done = await browser.submit(page, '/login', { login: username, password }, REDIRECT);
  expect(done.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state });
  expect(tokens.refresh_token).toBeTruthy();
  return { browser, tokens };
}

/** Whether the browser's session still gets a code without a password (no sign-in form shown). */
async function sessionAlive(browser: Browser): Promise<boolean> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const page = await browser.navigate((await authUrl(verifier, state)).toString(), REDIRECT);
  if (page.url.startsWith(REDIRECT)) {
    expect(new URL(page.url).searchParams.has('code')).toBe(true);
    return true;
  }
  expect(page.html).toContain('name="password"');
  return false;
}

async function refreshWorks(refreshToken: string): Promise<boolean> {
  try {
    await client.refreshTokenGrant(config, refreshToken);
    return true;
  } catch (err) {
    expect(err).toMatchObject({ error: 'invalid_grant' });
    return false;
  }
}

const ways: [string, (id: string, password: string) => Promise<number>][] = [
  ['the admin API (PATCH /users/:id)', async (id, password) => (await admin.call('PATCH', `/users/${id}`, { password })).status],
  ['SCIM PATCH', async (id, password) => (await scim('PATCH', `/Users/${id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'password', value: password }] })).status],
  ['SCIM PUT', async (id, password) => {
    const current = (await fetch(`${server.url}/scim/v2/Users/${id}`, { headers: { authorization: `Bearer ${scimToken}` } }).then((r) => r.json())) as Record<string, unknown>;
    return (await scim('PUT', `/Users/${id}`, { ...current, password })).status;
  }],
  ['SCIM /Bulk', async (id, password) => {
    const r = await scim('POST', '/Bulk', { schemas: [BULK], Operations: [{ method: 'PATCH', path: `/Users/${id}`, data: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'password', value: password }] } }] });
    expect(r.status).toBe(200);
    return Number(r.body.Operations[0].status);
  }],
];

describe('a password set by someone else', () => {
  it.each(ways)('through %s ends the person\'s sessions and refresh tokens, and no one else\'s', async (_way, setPassword) => {
    const person = await newPerson();
    const bystander = await newPerson();
    const [first, second, theirs] = [await signIn(person.username), await signIn(person.username), await signIn(bystander.username)];

    expect([200, 204]).toContain(await setPassword(person.id, 'second-password-2'));

    expect(await refreshWorks(first.tokens.refresh_token!)).toBe(false);
    expect(await refreshWorks(second.tokens.refresh_token!)).toBe(false);
    expect(await sessionAlive(first.browser)).toBe(false);
    expect(await sessionAlive(second.browser)).toBe(false);
    // Someone else's sign-in is untouched; the new password signs in.
    expect(await refreshWorks(theirs.tokens.refresh_token!)).toBe(true);
    expect(await sessionAlive(theirs.browser)).toBe(true);
    await signIn(person.username, 'second-password-2');
  }, 60000);

  it('is audited with the number of ended records', async () => {
    const person = await newPerson();
    await signIn(person.username);
    expect((await admin.call('PATCH', `/users/${person.id}`, { password: 'third-password-3' })).status).toBe(200);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query("select changes from audit_events where target_id = $1 and action = 'user.updated' order by seq desc limit 1", [person.id])
      .finally(() => c.end());
    expect(rows[0].changes.endedOidcRecords).toBeGreaterThan(0);
    expect(JSON.stringify(rows[0].changes)).not.toContain('third-password-3');
  });

  it("also ends the person's admin API access tokens (JWTs issued before the change)", async () => {
    const created = await admin.call('POST', '/users', { username: 'reader', password: PASSWORD, adminRoles: ['auditor'] });
    expect(created.status).toBe(201);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const browser = new Browser();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid', state, resource: `${server.url}/api`,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const done = await browser.submit(await browser.navigate(url.toString(), REDIRECT), '/login', { login: 'reader', password: PASSWORD }, REDIRECT);
    const { access_token: token } = await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state });
    const listUsers = () => fetch(`${server.url}/admin/api/v1/users`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    expect(await listUsers()).toBe(200);
    // iat has whole seconds: the change must fall in a later second than the token's issue.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await admin.call('PATCH', `/users/${created.body.id}`, { password: 'reset-by-admin-5' })).status).toBe(200);
    expect(await listUsers()).toBe(401);
  });

  it('other changes leave sessions and refresh tokens alone', async () => {
    const person = await newPerson();
    const signedIn = await signIn(person.username);
    expect((await admin.call('PATCH', `/users/${person.id}`, { title: 'Engineer' })).status).toBe(200);
    expect(await refreshWorks(signedIn.tokens.refresh_token!)).toBe(true);
    expect(await sessionAlive(signedIn.browser)).toBe(true);
  });
});

describe('UsersService.setPassword with the session to keep (a person changing their own password)', () => {
  it('keeps that session and its refresh token, and ends every other', async () => {
    const person = await newPerson();
    const here = await signIn(person.username);
    const elsewhere = await signIn(person.username);
    const sessionId = here.browser.cookies.get(new URL(server.url).host)!.get('oneid.session')!;
    const handle = createDb({ databaseUrl: db.url, databasePoolMax: 2, dataDir: '/nonexistent/unused' });
    try {
      const row = await handle.db('oidc_payloads').where({ model: 'Session', id: sessionId }).first('uid');
      expect(row?.uid).toBeTruthy();
      // And OneID's own session of that browser (cookie oneid.sso), which oidc-provider's follows.
      const token = here.browser.cookies.get(new URL(server.url).host)!.get('oneid.sso')!;
      const kept = await handle.db('sessions').where({ token_hash: sha256(token) }).first('id');
      expect(kept?.id).toBeTruthy();
      const users = new UsersService(handle.db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
      await users.setPassword(person.id, 'changed-by-me-4', { type: 'user', id: person.id }, row.uid, kept.id);
    } finally {
      await handle.close();
    }
    expect(await sessionAlive(here.browser)).toBe(true);
    expect(await refreshWorks(here.tokens.refresh_token!)).toBe(true);
    expect(await sessionAlive(elsewhere.browser)).toBe(false);
    expect(await refreshWorks(elsewhere.tokens.refresh_token!)).toBe(false);
  }, 60000);
});

// A sign-in in flight when the password is set: its password checked before, its session, grant,
// code or tokens written after. The test holds one oidc_payloads row locked (FOR UPDATE) so that
// the sign-in's write waits exactly there, sets the password meanwhile, then lets it go on.
describe('a password set while a sign-in of the old password is in flight', () => {
  async function holdRow(model: string, id: string) {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query('begin');
    // A sign-in flow is a row of login_flows (OneID's sign-in); the rest are oidc-provider's.
    const { rowCount } = model === 'LoginFlow'
      ? await c.query('select 1 from login_flows where id = $1 for update', [id])
      : await c.query('select 1 from oidc_payloads where model = $1 and id = $2 for update', [model, id]);
    expect(rowCount).toBe(1);
    return {
      /** Until `n` statements of this database wait for a lock (the held write, and any other). */
      waiters: async (n: number) => {
        for (let i = 0; i < 200; i += 1) {
          const { rows } = await c.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'");
          if (rows[0].n >= n) return;
          await new Promise((r) => setTimeout(r, 25));
        }
        throw new Error(`fewer than ${n} statements waited for the lock`);
      },
      release: async () => { await c.query('rollback'); await c.end(); },
    };
  }

  /** Starts a sign-in: the browser, its PKCE verifier and state, and the sign-in page. */
  async function startSignIn() {
    const browser = new Browser();
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const page = await browser.navigate((await authUrl(verifier, state)).toString(), REDIRECT);
    expect(page.html).toContain('name="password"');
    return { browser, verifier, state, page };
  }

  const resetPassword = (id: string) => admin.call('PATCH', `/users/${id}`, { password: 'reset-during-sign-in-6' });

  it('ends a sign-in whose session is written after the reset: the browser must sign in again', async () => {
    const person = await newPerson();
    const { browser, page } = await startSignIn();
    const flow = new URL(page.url).pathname.split('/')[2]!;
    // The password POST checks the password, then records it on the sign-in flow: held there.
    const held = await holdRow('LoginFlow', flow);
    const posting = browser.submit(page, '/login', { login: person.username, password: PASSWORD }, REDIRECT);
    await held.waiters(1);
    expect((await resetPassword(person.id)).status).toBe(200);
    // The session is written in a later second than the reset: its sign-in time must still be
    // that of the password check, not of the write.
    await new Promise((r) => setTimeout(r, 1100));
    await held.release();
    const done = await posting;
    // Asked to sign in again (before the fix: a code at the app, and a live session).
    expect(done.url.startsWith(REDIRECT)).toBe(false);
    expect(done.html).toContain('name="password"');
    expect(await sessionAlive(browser)).toBe(false);
  }, 60000);

  it('refuses the code of a sign-in resumed across the reset, and ends its session', async () => {
    const person = await newPerson();
    const { browser, verifier, state, page } = await startSignIn();
    // The password POST ends OneID's sign-in; the interaction answers with the way back to the
    // authorization endpoint (the resume).
    const posted = await browser.submit(page, '/login', { login: person.username, password: PASSWORD }, `${server.url}/auth/`);
    const uid = new URL(posted.url).pathname.split('/')[2]!;
    // The resume checks the session, then writes the session, grant and code in one go, which
    // also deletes the interaction: held there.
    const held = await holdRow('Interaction', uid);
    const resuming = browser.navigate(posted.url, REDIRECT);
    await held.waiters(1);
    expect((await resetPassword(person.id)).status).toBe(200);
    await held.release();
    const done = await resuming;
    // Wherever the resume waited (its first write may come before its checks), no usable code:
    // either it asks to sign in again, or the code it gave is refused.
    if (done.url.startsWith(REDIRECT)) {
      await expect(client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state }))
        .rejects.toMatchObject({ error: 'invalid_grant' });
    } else {
      expect(done.html).toContain('name="password"');
    }
    expect(await sessionAlive(browser)).toBe(false);
  }, 60000);

  it("refuses a code and a refresh token of a sign-in older than the reset even if the reset's delete missed them", async () => {
    // Where the reset's delete ran before a sign-in's code and tokens were written (the race the
    // tests above force), they are still in the store: set only the time the sessions ended.
    const person = await newPerson();
    const { browser, tokens } = await signIn(person.username);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const again = await browser.navigate((await authUrl(verifier, state)).toString(), REDIRECT);
    expect(again.url.startsWith(REDIRECT)).toBe(true);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query('update users set sessions_ended_at = now() where id = $1', [person.id]).finally(() => c.end());
    await expect(client.authorizationCodeGrant(config, new URL(again.url), { pkceCodeVerifier: verifier, expectedState: state }))
      .rejects.toMatchObject({ error: 'invalid_grant' });
    expect(await refreshWorks(tokens.refresh_token!)).toBe(false);
    expect(await sessionAlive(browser)).toBe(false);
  }, 60000);

  it('lets a sign-in that starts after the reset in, with the new password', async () => {
    const person = await newPerson();
    const old = await signIn(person.username);
    expect((await resetPassword(person.id)).status).toBe(200);
    // At once, in the same second as the reset: the new password was checked, so it counts as after.
    const fresh = await signIn(person.username, 'reset-during-sign-in-6');
    expect(await sessionAlive(fresh.browser)).toBe(true);
    expect(await refreshWorks(fresh.tokens.refresh_token!)).toBe(true);
    expect(await sessionAlive(old.browser)).toBe(false);
  }, 60000);
});
