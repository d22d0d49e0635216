// Issue "one directory and one permission model", end to end, as an admin would do it with
// only the admin API, and as employees and a relying party (openid-client) would notice it.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['user_admin', 'app_admin']);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function ok(method: string, path: string, body?: unknown): Promise<any> {
  const res = await admin.call(method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

it('departments, people, groups, an app with two roles, assignments, sign-in, suspension, audit', async () => {
  // Directory: Engineering > Platform > SRE ; a group "On-call".
  const eng = await ok('POST', '/departments', { name: 'Engineering' });
  const platform = await ok('POST', '/departments', { name: 'Platform', parentId: eng.id });
  const sre = await ok('POST', '/departments', { name: 'SRE', parentId: platform.id });
  const sales = await ok('POST', '/departments', { name: 'Sales' });
  const oncall = await ok('POST', '/groups', { name: 'On-call' });
  const mk = (username: string) => ok('POST', '/users', { username, email: `${username}@example.com`, password: 'correct-horse-battery', name: `${username} Example` });
  const both = await mk('both');
  const outsider = await mk('outsider');
  await ok('POST', `/departments/${sre.id}/members`, { userId: both.id, primary: true });
  await ok('POST', `/departments/${sales.id}/members`, { userId: outsider.id, primary: true });
  await ok('POST', `/groups/${oncall.id}/members`, { userId: both.id });

  // The app, with two roles, assigned to the Engineering subtree (viewer) and the group (pager).
  const app = await ok('POST', '/apps', { name: 'Runbooks', redirectUris: [REDIRECT], firstParty: true });
  expect(app.access).toBe('assigned');
  await ok('POST', `/apps/${app.id}/roles`, { key: 'runbooks.viewer', name: 'Viewer' });
  await ok('POST', `/apps/${app.id}/roles`, { key: 'runbooks.pager', name: 'Pager' });
  await ok('POST', `/apps/${app.id}/assignments`, { principalType: 'department', principalId: eng.id, includeSubdepartments: true, roleKeys: ['runbooks.viewer'] });
  await ok('POST', `/apps/${app.id}/assignments`, { principalType: 'group', principalId: oncall.id, roleKeys: ['runbooks.pager'] });

  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  client.enableNonRepudiationChecks(config);
  const signIn = async (login: string, browser = new Browser()) => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile roles groups offline_access', state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const form = await browser.navigate(url.toString(), REDIRECT);
    const after = await browser.submit(form, '/login', { login, password: 'correct-horse-battery' }, REDIRECT);
    return { browser, after, verifier, state };
  };

  // A member of both gets both roles in the ID token.
  const member = await signIn('both');
  expect(member.after.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(config, new URL(member.after.url), { pkceCodeVerifier: member.verifier, expectedState: member.state });
  const claims = tokens.claims()!;
  expect(claims.sub).toBe(both.id);
  expect([...(claims.roles as string[])].sort()).toEqual(['runbooks.pager', 'runbooks.viewer']);
  expect(claims.groups).toEqual(['On-call']);

  // Someone outside both is refused with the access page, and the app gets access_denied.
  const refused = await signIn('outsider');
  expect(refused.after.status).toBe(403);
  expect(refused.after.html).toContain('Runbooks');
  const back = await refused.browser.submit(refused.after, '/abort', {}, REDIRECT);
  expect(new URL(back.url).searchParams.get('error')).toBe('access_denied');

  // Suspending the member cuts them off everywhere at once.
  await ok('POST', `/users/${both.id}/suspend`);
  await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  await expect(client.fetchUserInfo(config, tokens.access_token, both.id)).rejects.toBeDefined();
  const silent = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
  const silentPage = await member.browser.navigate(silent.toString(), REDIRECT);
  expect(new URL(silentPage.url).searchParams.get('error')).toBe('login_required');

  // Every step is in the audit log, and the log verifies.
  const auditor = await adminClient(server.url, env, ['auditor']);
  const events = await auditor.call('GET', '/audit-events?limit=500');
  const actions = new Set(events.body.items.map((e: { action: string }) => e.action));
  for (const action of ['department.created', 'user.created', 'group.created', 'group.member_added', 'app.created', 'app_role.created',
    'assignment.created', 'signin.succeeded', 'signin.denied', 'user.suspended']) {
    expect(actions).toContain(action);
  }
  const verify = await runCli(['audit', 'verify'], env);
  expect(verify.code).toBe(0);
  expect(verify.json.ok).toBe(true);
});
