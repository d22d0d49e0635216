// Suspending a user cuts them off everywhere at once; reactivating restores sign-in only.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let userId: string;
let app: { client_id: string; client_secret: string };
let admin: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [u, a] = await Promise.all([
    runCli(['users', 'create', '--username', 'linus', '--email', 'linus@example.com', '--password', 'penguins-rule'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
  ]);
  userId = u.json.id;
  app = a.json;
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['user_admin']);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function rp() {
  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  client.enableNonRepudiationChecks(config);
  return config;
}

async function authorize(config: client.Configuration, browser: Browser, extra: Record<string, string> = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid profile offline_access', state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
  });
  return { page: await browser.navigate(url.toString(), REDIRECT), verifier, state };
}

async function signIn(config: client.Configuration, browser: Browser) {
  const { page, verifier, state } = await authorize(config, browser);
  const done = await browser.submit(page, '/login', { login: 'linus', password: 'penguins-rule' }, REDIRECT);
  if (!done.url.startsWith(REDIRECT)) return { refused: done };
  return { tokens: await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state }) };
}

describe('POST /admin/api/v1/users/:id/suspend', () => {
  it('ends the live session and the refresh token within the same second', async () => {
    const config = await rp();
    const browser = new Browser();
    const { tokens } = await signIn(config, browser);
    expect(tokens!.refresh_token).toBeTruthy();

    const suspended = await admin.call('POST', `/users/${userId}/suspend`);
    expect(suspended.status).toBe(200);
    expect(suspended.body.status).toBe('suspended');
    const at = Date.now();

    await expect(client.refreshTokenGrant(config, tokens!.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.fetchUserInfo(config, tokens!.access_token, userId)).rejects.toBeDefined();
    expect((await client.tokenIntrospection(config, tokens!.access_token)).active).toBe(false);
    const silent = await authorize(config, browser, { prompt: 'none' });
    expect(new URL(silent.page.url).searchParams.get('error')).toBe('login_required');
    expect(Date.now() - at).toBeLessThan(1000);

    // The password no longer works either, with the same message as a wrong password.
    const attempt = await signIn(config, new Browser());
    expect(attempt.refused!.html).toContain('The username or password is incorrect.');
  });

  it('reactivation restores sign-in but not the old session or tokens', async () => {
    const config = await rp();
    const browser = new Browser();
    // a session from before suspension would have been ended; create state now, suspend, reactivate
    await admin.call('POST', `/users/${userId}/reactivate`);
    const first = await signIn(config, browser);
    await admin.call('POST', `/users/${userId}/suspend`);
    const back = await admin.call('POST', `/users/${userId}/reactivate`);
    expect(back.body.status).toBe('active');

    const silent = await authorize(config, browser, { prompt: 'none' });
    expect(new URL(silent.page.url).searchParams.get('error')).toBe('login_required');
    await expect(client.refreshTokenGrant(config, first.tokens!.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const again = await signIn(config, browser);
    expect(again.tokens!.claims()!.sub).toBe(userId);
  });

  it('deprovisioning keeps the id and the history, and cannot be undone by reactivate', async () => {
    const gone = await admin.call('POST', `/users/${userId}/deprovision`);
    expect(gone.body).toMatchObject({ id: userId, status: 'deprovisioned' });
    const undo = await admin.call('POST', `/users/${userId}/reactivate`);
    expect(undo.status).toBe(412);
    expect((await admin.call('GET', `/users/${userId}`)).body.status).toBe('deprovisioned');
    // Nor can it be edited back into use (a password, roles, a profile).
    const before = (await admin.call('GET', `/users/${userId}`)).body;
    for (const change of [{ password: 'a fresh password' }, { adminRoles: ['user_admin'] }, { title: 'Returned' }]) {
      const edited = await admin.call('PATCH', `/users/${userId}`, change);
      expect(edited.status).toBe(412);
      expect(edited.body.code).toBe('user.deprovisioned');
    }
    expect((await admin.call('GET', `/users/${userId}`)).body).toEqual(before);
    const auditor = await adminClient(server.url, env, ['auditor']);
    const history = await auditor.call('GET', `/audit-events?targetId=${userId}&limit=100`);
    expect(history.status).toBe(200);
    const actions = history.body.items.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['user.created', 'user.suspended', 'user.reactivated', 'user.deprovisioned']));
  });
});

describe('admin API authorization for people', () => {
  it('gives 401 without a token, 403 with the wrong role, and lets each role do its part', async () => {
    const anonymous = await fetch(`${server.url}/admin/api/v1/users`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toContain('Bearer');
    expect(anonymous.headers.get('content-type')).toContain('application/problem+json');

    const forged = await fetch(`${server.url}/admin/api/v1/users`, { headers: { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' } });
    expect(forged.status).toBe(401);

    const [appAdmin, auditor, nobody, superAdmin] = await Promise.all([
      adminClient(server.url, env, ['app_admin']),
      adminClient(server.url, env, ['auditor']),
      adminClient(server.url, env, []),
      adminClient(server.url, env, ['super_admin']),
    ]);
    const body = { username: 'newbie', email: 'newbie@example.com' };
    for (const denied of [appAdmin, auditor, nobody]) {
      const res = await denied.call('POST', '/users', body);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('admin.forbidden');
    }
    expect((await nobody.call('GET', '/users')).status).toBe(403);
    expect((await auditor.call('GET', '/users')).status).toBe(200);
    expect((await admin.call('GET', '/audit-events')).status).toBe(403);
    expect((await auditor.call('GET', '/audit-events')).status).toBe(200);
    expect((await superAdmin.call('POST', '/users', body)).status).toBe(201);
    expect((await admin.call('POST', '/users', body)).status).toBe(409);
  });
});

describe('admin API input handling for people', () => {
  it('validates bodies, refuses unknown fields, and enforces If-Match', async () => {
    const bad = await admin.call('POST', '/users', { username: 'x y', email: 'x@example.com' });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('username');
    const unknown = await admin.call('POST', '/users', { username: 'xy', isRoot: true });
    expect(unknown.status).toBe(400);
    expect(unknown.body.field).toBe('isRoot');
    const notJson = await fetch(`${server.url}/admin/api/v1/users`, { method: 'POST', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' }, body: '{"username":' });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { code: string }).code).toBe('request.invalid');
    expect((await admin.call('GET', '/users/not-a-uuid')).status).toBe(400);
    expect((await admin.call('GET', '/users/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await admin.call('GET', '/users?cursor=garbage')).status).toBe(400);

    const created = await admin.call('POST', '/users', { username: 'etag', email: 'etag@example.com' });
    expect(created.headers.get('etag')).toBe('W/"1"');
    const ok = await admin.call('PATCH', `/users/${created.body.id}`, { title: 'Engineer' }, { 'if-match': 'W/"1"' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('W/"2"');
    const stale = await admin.call('PATCH', `/users/${created.body.id}`, { title: 'Manager' }, { 'if-match': 'W/"1"' });
    expect(stale.status).toBe(412);
    expect((await admin.call('GET', `/users/${created.body.id}`)).body.title).toBe('Engineer');
  });

  it('pages with a cursor and filters in SQL', async () => {
    for (let i = 0; i < 5; i += 1) await admin.call('POST', '/users', { username: `pager${i}`, email: `pager${i}@example.com` });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { items: { username: string }[]; next_cursor: string | null } } = await admin.call('GET', `/users?q=pager&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...res.body.items.map((u) => u.username));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(['pager0', 'pager1', 'pager2', 'pager3', 'pager4']);
  });

  it('publishes an OpenAPI 3.1 document generated from the same schemas', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as any;
    expect(doc.openapi).toBe('3.1.0');
    const post = doc.paths['/users'].post;
    expect(post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
    expect(post.requestBody.content['application/json'].schema.required).toContain('username');
    expect(doc.paths['/users/{id}/suspend'].post).toBeDefined();
  });
});
