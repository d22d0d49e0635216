// Black-box: apps open to assigned users only refuse everyone else at sign-in (a clear page for
// people, access_denied for the app), and the tokens of entitled users carry their groups and
// this app's roles. Apps, roles, groups and assignments are made through the admin API.
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser, startSignIn, type Started } from '../helpers/browser.ts';
import { discover, redeem } from '../helpers/oidc-app.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const SCOPE = 'openid profile groups roles offline_access';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let grace: { id: string };
let docs: { id: string; client_id: string; client_secret: string; access: string };
let crm: { id: string; client_id: string; client_secret: string };

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await runCli(['users', 'create', '--username', 'grace', '--email', 'grace@example.com', '--password', 'cobol-forever', '--name', 'Grace Hopper'], env);
  expect(created.code).toBe(0);
  grace = created.json;
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['app_admin', 'user_admin', 'auditor']);
  // A third-party app (consent screen) and a first-party one, both registered through the admin API.
  const [d, c] = await Promise.all([
    admin.call('POST', '/apps', { name: 'Docs', redirectUris: [REDIRECT] }),
    admin.call('POST', '/apps', { name: 'CRM', redirectUris: [REDIRECT], firstParty: true }),
  ]);
  expect([d.status, c.status]).toEqual([201, 201]);
  docs = d.body;
  crm = c.body;
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const rp = (app: { client_id: string; client_secret: string }) => discover(server.url, app);

/** This file's authorization request (REDIRECT, SCOPE) with `extra` parameters, in `browser`. */
const authorize = (config: client.Configuration, browser = new Browser(), extra: Record<string, string> = {}): Promise<Started> =>
  startSignIn(config, { redirect_uri: REDIRECT, scope: SCOPE, ...extra }, browser);

const login = (s: Started) => s.browser.submit(s.page, '/login', { login: 'grace', password: 'cobol-forever' }, REDIRECT);

/** Signs in (password if needed, consent if asked) and redeems the code. */
async function signIn(config: client.Configuration, browser = new Browser(), extra: Record<string, string> = {}) {
  const started = await authorize(config, browser, extra);
  let page = started.page;
  if (page.html.includes('/password"')) page = await started.browser.submit(page, '/password', { login: 'grace', password: 'cobol-forever' }, REDIRECT);
  if (page.html.includes('/confirm"')) page = await started.browser.submit(page, '/confirm', {}, REDIRECT);
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await redeem(config, started, page.url);
  return { browser: started.browser, tokens };
}

describe('an app registered through the admin API', () => {
  it('is open to assigned users only', () => {
    expect(docs.access).toBe('assigned');
  });

  it('shows an unassigned user a 403 "no access" page, and its button returns access_denied to the app', async () => {
    const config = await rp(docs);
    const started = await authorize(config);
    const refused = await login(started);
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('You have no access to Docs. Ask your administrator.');
    expect(refused.html).toContain('grace');
    expect(refused.html).not.toContain('Allow access'); // no consent for an app the user cannot use
    const back = await started.browser.submit(refused, '/abort', {}, REDIRECT);
    const callback = new URL(back.url);
    expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(started.state);
    expect(callback.searchParams.get('code')).toBeNull();

    // Signed in to OneID, but still refused: silently with prompt=none, with the page otherwise.
    const silent = await authorize(config, started.browser, { prompt: 'none' });
    expect(new URL(silent.page.url).searchParams.get('error')).toBe('access_denied');
    expect(new URL(silent.page.url).searchParams.get('code')).toBeNull();
    const again = await authorize(config, started.browser);
    expect(again.page.status).toBe(403);
    expect(again.page.html).toContain('You have no access to Docs.');
  });

  it('says so in Simplified Chinese with ui_locales=zh-CN', async () => {
    const config = await rp(docs);
    const started = await authorize(config, new Browser(), { ui_locales: 'zh-CN' });
    expect(started.page.html).toContain('用户名或邮箱');
    const refused = await login(started);
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('<html lang="zh-CN">');
    expect(refused.html).toContain('您无权访问 Docs。请联系您的管理员。');
    expect(refused.html).toContain('返回 Docs');
    const back = await started.browser.submit(refused, '/abort', {}, REDIRECT);
    expect(new URL(back.url).searchParams.get('error')).toBe('access_denied');
  });

  it('records the refusal in the audit log', async () => {
    const events = await admin.call('GET', `/audit-events?action=signin.denied&targetId=${docs.id}`);
    expect(events.status).toBe(200);
    expect(events.body.items.length).toBeGreaterThanOrEqual(1);
    expect(events.body.items[0]).toMatchObject({ actorType: 'user', actorId: grace.id, targetType: 'app' });
  });
});

describe('an assigned user', () => {
  let writersGroup: string;
  let docsAssignment: string;

  beforeAll(async () => {
    const group = await admin.call('POST', '/groups', { name: 'Technical writers' });
    expect(group.status).toBe(201);
    writersGroup = group.body.id;
    expect((await admin.call('POST', `/groups/${writersGroup}/members`, { userId: grace.id })).status).toBe(204);
    const other = await admin.call('POST', '/groups', { name: 'Navy' });
    expect((await admin.call('POST', `/groups/${other.body.id}/members`, { userId: grace.id })).status).toBe(204);

    for (const key of ['docs.editor', 'docs.viewer']) {
      expect((await admin.call('POST', `/apps/${docs.id}/roles`, { key, name: key })).status).toBe(201);
    }
    expect((await admin.call('POST', `/apps/${crm.id}/roles`, { key: 'crm.admin', name: 'CRM admin' })).status).toBe(201);

    const assignment = await admin.call('POST', `/apps/${docs.id}/assignments`, { principalType: 'group', principalId: writersGroup, roleKeys: ['docs.editor'] });
    expect(assignment.status).toBe(201);
    docsAssignment = assignment.body.id;
    // Another app's role for the same user must never show up in Docs' tokens.
    expect((await admin.call('POST', `/apps/${crm.id}/assignments`, { principalType: 'user', principalId: grace.id, roleKeys: ['crm.admin'] })).status).toBe(201);
  });

  it("signs in and gets their groups and only this app's roles in the ID token and userinfo", async () => {
    const config = await rp(docs);
    const { tokens } = await signIn(config);
    const claims = tokens.claims()!;
    expect(claims.sub).toBe(grace.id);
    expect(claims.groups).toEqual(['Navy', 'Technical writers']);
    expect(claims.roles).toEqual(['docs.editor']);
    const info = await client.fetchUserInfo(config, tokens.access_token, grace.id);
    expect(info.groups).toEqual(['Navy', 'Technical writers']);
    expect(info.roles).toEqual(['docs.editor']);

    const crmSignIn = await signIn(await rp(crm));
    expect(crmSignIn.tokens.claims()!.roles).toEqual(['crm.admin']);
  });

  it('gets neither claim when the app does not ask for the scopes', async () => {
    const config = await rp(docs);
    const { tokens } = await signIn(config, new Browser(), { scope: 'openid profile' });
    const claims = tokens.claims()!;
    expect(claims.preferred_username).toBe('grace');
    expect(claims).not.toHaveProperty('groups');
    expect(claims).not.toHaveProperty('roles');
    const info = await client.fetchUserInfo(config, tokens.access_token, grace.id);
    expect(info).not.toHaveProperty('roles');
    expect(info).not.toHaveProperty('groups');
  });

  it('gets groups and roles in JWT access tokens for OneID\'s API, when granted', async () => {
    const config = await rp(docs);
    const jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
    const withScopes = await signIn(config, new Browser(), { resource: `${server.url}/api` });
    const { payload } = await jwtVerify(withScopes.tokens.access_token, jwks, { issuer: server.url, audience: `${server.url}/api`, typ: 'at+jwt' });
    expect(payload.sub).toBe(grace.id);
    expect(payload.groups).toEqual(['Navy', 'Technical writers']);
    expect(payload.roles).toEqual(['docs.editor']);
    expect(withScopes.tokens.claims()!.roles).toEqual(['docs.editor']);

    const refreshed = await client.refreshTokenGrant(config, withScopes.tokens.refresh_token!);
    const again = await jwtVerify(refreshed.access_token, jwks, { issuer: server.url, audience: `${server.url}/api`, typ: 'at+jwt' });
    expect(again.payload.roles).toEqual(['docs.editor']);

    const without = await signIn(config, new Browser(), { resource: `${server.url}/api`, scope: 'openid profile' });
    const plain = await jwtVerify(without.tokens.access_token, jwks, { issuer: server.url, audience: `${server.url}/api`, typ: 'at+jwt' });
    expect(plain.payload.sub).toBe(grace.id);
    expect(plain.payload).not.toHaveProperty('roles');
    expect(plain.payload).not.toHaveProperty('groups');
  });

  it('loses access when the assignment is removed: the next refresh, code redemption and silent sign-in fail', async () => {
    const config = await rp(docs);
    const { browser, tokens } = await signIn(config);
    expect(tokens.refresh_token).toBeTruthy();
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.claims()!.roles).toEqual(['docs.editor']);

    // A code issued just before the assignment goes cannot be redeemed after.
    const pending = await authorize(config, browser);
    expect(pending.page.url.startsWith(REDIRECT)).toBe(true);

    expect((await admin.call('DELETE', `/apps/${docs.id}/assignments/${docsAssignment}`)).status).toBe(204);

    await expect(client.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.authorizationCodeGrant(config, new URL(pending.page.url), {
      pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce,
    })).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.fetchUserInfo(config, refreshed.access_token, grace.id)).rejects.toBeDefined();

    const silent = await authorize(config, browser, { prompt: 'none' });
    expect(new URL(silent.page.url).searchParams.get('error')).toBe('access_denied');
    const interactive = await authorize(config, browser);
    expect(interactive.page.status).toBe(403);

    // The other app is untouched.
    const crmAgain = await signIn(await rp(crm), browser);
    expect(crmAgain.tokens.claims()!.roles).toEqual(['crm.admin']);
  });

  it("lets everyone in once the app is opened to everyone, with no roles", async () => {
    expect((await admin.call('PATCH', `/apps/${docs.id}`, { access: 'everyone' })).status).toBe(200);
    const { tokens } = await signIn(await rp(docs));
    expect(tokens.claims()!.roles).toEqual([]);
    expect(tokens.claims()!.groups).toEqual(['Navy', 'Technical writers']);
  });
});

describe('discovery', () => {
  it('advertises the groups and roles scopes and claims', async () => {
    const meta = (await rp(docs)).serverMetadata();
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['groups', 'roles']));
    expect(meta.claims_supported).toEqual(expect.arrayContaining(['groups', 'roles']));
  });
});
