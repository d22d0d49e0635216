// Black-box, on a real server: a suite's sign-in policy is inherited by its apps unless their own
// is stronger, for OIDC at once (every node's client cache is told). A person with only a password
// signs in to an app of a suite that needs two factors: they are taken to set one up instead of
// being sent back with a code; once the app leaves the suite, the same password sign-in returns a
// code; an app whose own policy is stronger keeps it inside a weaker suite.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClientsOfEachRole, type AdminClient } from '../helpers/admin.ts';
import { Browser } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let appAdmin: AdminClient;
let superAdmin: AdminClient;
let app: { id: string; client_id: string; client_secret: string };

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await runCli(['apps', 'create', '--name', 'Ledger', '--redirect-uri', REDIRECT, '--first-party'], env);
  expect(created.code).toBe(0);
  app = created.json;
  server = await startServer(env);
  [superAdmin, , appAdmin] = await adminClientsOfEachRole(server.url, env);
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function ok(admin: AdminClient, method: string, path: string, body?: unknown) {
  const res = await admin.call(method, path, body);
  expect(res.status).toBeLessThan(300);
  return res.body;
}

let seq = 0;
async function person() {
  seq += 1;
  const username = `ledger${seq}`;
  const password = `ledger-pass-${seq}`;
  await ok(superAdmin, 'POST', '/users', { username, password });
  return { username, password };
}

/** A password sign-in to the app in a fresh browser: where the browser ends up after the password. */
async function signInWithPassword(who: { username: string; password: string }): Promise<string> {
  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid', state: client.randomState(),
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  const browser = new Browser();
  const done = await browser.submit(await browser.navigate(url.toString(), REDIRECT), '/login', { login: who.username, password: who.password }, REDIRECT);
  return done.url;
}

describe('a suite\'s sign-in policy', () => {
  it('applies to its OIDC apps at once, and stops applying when the app leaves the suite', async () => {
    const ada = await person();
    expect(await signInWithPassword(ada)).toMatch(new RegExp(`^${REDIRECT}\\?code=`));

    const suite = await ok(appAdmin, 'POST', '/suites', { name: 'Finance', signInPolicy: 'mfa' });
    await ok(appAdmin, 'PUT', `/suites/${suite.id}/apps/${app.id}`, {});
    expect((await ok(appAdmin, 'GET', `/apps/${app.id}`)).suiteSignInPolicy).toBe('mfa');
    // Two factors are needed now: a person with a password only is asked to set up a second one.
    const held = await signInWithPassword(await person());
    expect(held.startsWith(REDIRECT)).toBe(false);
    expect(held).toContain('/login/');

    expect((await appAdmin.call('DELETE', `/suites/${suite.id}/apps/${app.id}`)).status).toBe(204);
    expect((await ok(appAdmin, 'GET', `/apps/${app.id}`)).suiteSignInPolicy).toBeNull();
    expect(await signInWithPassword(await person())).toMatch(new RegExp(`^${REDIRECT}\\?code=`));
    await appAdmin.call('DELETE', `/suites/${suite.id}`);
  });

  it('leaves an app its own stronger policy inside a weaker suite', async () => {
    const suite = await ok(appAdmin, 'POST', '/suites', { name: 'Everyday', signInPolicy: 'password' });
    await ok(appAdmin, 'PUT', `/suites/${suite.id}/apps/${app.id}`, {});
    await ok(appAdmin, 'PATCH', `/apps/${app.id}`, { signInPolicy: 'mfa' });
    const held = await signInWithPassword(await person());
    expect(held.startsWith(REDIRECT)).toBe(false);
    await ok(appAdmin, 'PATCH', `/apps/${app.id}`, { signInPolicy: null });
    expect(await signInWithPassword(await person())).toMatch(new RegExp(`^${REDIRECT}\\?code=`));
  });
});
