// Offboarding in one action (#21): a real OneID server, real relying parties (openid-client) with a
// back-channel logout endpoint on a port, and HR deactivating a person over SCIM.
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { startBackchannelReceiver, type BackchannelReceiver } from '../helpers/backchannel-receiver.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';
import knex from 'knex';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { until } from '../helpers/until.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';



let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let receiver: BackchannelReceiver;
let userAdmin: AdminClient;
let appAdmin: AdminClient;
let auditor: AdminClient;
let scimToken: string;
const users: Record<string, string> = {};
const apps: Record<string, { id: string; client_id: string; client_secret: string }> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  receiver = await startBackchannelReceiver();
  env = {
    DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(),
    JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_HEARTBEAT_SECONDS: '10', JOBS_RETRY_LIMIT: '5',
  };
  const created = await Promise.all([
    runCli(['users', 'create', '--username', 'alice', '--email', 'alice@example.com', '--password', 'correct horse battery'], env),
    runCli(['users', 'create', '--username', 'bob', '--email', 'bob@example.com', '--password', 'correct horse battery'], env),
    runCli(['users', 'create', '--username', 'root', '--email', 'root@example.com', '--password', 'correct horse battery', '--admin'], env),
    runCli(['scim-tokens', 'create', '--name', 'HR'], env),
  ]);
  for (const r of created) expect(r.code).toBe(0);
  users.alice = created[0]!.json.id;
  users.bob = created[1]!.json.id;
  users.root = created[2]!.json.id;
  scimToken = created[3]!.json.token;
  server = await startServer(env);
  [userAdmin, appAdmin, auditor] = await Promise.all([
    adminClient(server.url, env, ['user_admin']), adminClient(server.url, env, ['app_admin']), adminClient(server.url, env, ['auditor']),
  ]);
  const register = async (name: string, extra: Record<string, unknown>) => {
    const res = await appAdmin.call('POST', '/apps', { name, redirectUris: [REDIRECT], firstParty: true, access: 'everyone', ...extra });
    expect(res.status).toBe(201);
    apps[name] = { id: res.body.id, client_id: res.body.client_id, client_secret: res.body.client_secret };
    return res.body;
  };
  const wiki = await register('Wiki', { backchannelLogoutUri: `${receiver.origin}/wiki`, backchannelLogoutSessionRequired: true });
  expect(wiki).toMatchObject({ backchannelLogoutUri: `${receiver.origin}/wiki`, backchannelLogoutSessionRequired: true });
  await register('Chat', { backchannelLogoutUri: `${receiver.origin}/chat`, idTokenSigningAlg: 'ES256' });
  await register('Legacy', {});
}, 120000);

afterAll(async () => {
  await server?.stop();
  await receiver?.close();
  await db?.drop();
});

async function rp(name: string): Promise<client.Configuration> {
  const app = apps[name]!;
  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  client.enableNonRepudiationChecks(config);
  return config;
}

/** Signs `username` in to the app in `browser` (a password the first time, single sign-on after). */
async function signIn(name: string, browser: Browser, username: string) {
  const config = await rp(name);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid profile offline_access', state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  let page = await browser.navigate(url.toString(), REDIRECT);
  if (!page.url.startsWith(REDIRECT)) page = await browser.submit(page, '/login', { login: username, password: 'correct horse battery' }, REDIRECT);
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: state });
  return { config, tokens, sid: tokens.claims()!.sid as string };
}

/** Verifies a logout token the way a relying party must (Back-Channel Logout 1.0 section 2.6). */
async function verifyLogoutToken(token: string, audience: string) {
  const discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json() as { jwks_uri: string; issuer: string };
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: discovery.issuer, audience, typ: 'logout+jwt', maxTokenAge: '2m' });
  expect(payload.events).toEqual({ [BACKCHANNEL_EVENT]: {} });
  expect(payload.nonce).toBeUndefined();
  expect(typeof payload.jti).toBe('string');
  expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
  return { payload, protectedHeader };
}

type Line = { action: string; state: string; detail: string | null; attempts: number };
type ReceiptApp = { appId: string; appName: string; state: string; actions: Line[] };
const lineOf = (receipt: { apps: ReceiptApp[] }, appName: string, action: string): Line | undefined =>
  receipt.apps.find((a) => a.appName === appName)?.actions.find((l) => l.action === action);

describe('OIDC Back-Channel Logout discovery and registration', () => {
  it('announces back-channel logout in discovery', async () => {
    const discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    expect(discovery.backchannel_logout_supported).toBe(true);
    expect(discovery.backchannel_logout_session_supported).toBe(true);
  });

  it('refuses a backchannel_logout_uri that is not an http(s) URL without a fragment', async () => {
    for (const uri of ['javascript:alert(1)', 'https://rp.example/logout#x', 'http://rp.example/logout', 'not a url']) {
      const res = await appAdmin.call('POST', '/apps', { name: 'Bad', redirectUris: [REDIRECT], backchannelLogoutUri: uri });
      expect(res.status).toBe(400);
      expect(res.body.field).toBe('backchannelLogoutUri');
    }
  });

  it('lets an app add, change and remove its backchannel_logout_uri', async () => {
    const created = await appAdmin.call('POST', '/apps', { name: 'Later', redirectUris: [REDIRECT] });
    expect(created.body.backchannelLogoutUri).toBeNull();
    const set = await appAdmin.call('PATCH', `/apps/${created.body.id}`, { backchannelLogoutUri: 'https://later.example/bc', backchannelLogoutSessionRequired: true });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ backchannelLogoutUri: 'https://later.example/bc', backchannelLogoutSessionRequired: true });
    const cleared = await appAdmin.call('PATCH', `/apps/${created.body.id}`, { backchannelLogoutUri: null });
    expect(cleared.body.backchannelLogoutUri).toBeNull();
    expect((await appAdmin.call('DELETE', `/apps/${created.body.id}`)).status).toBe(204);
  });
});

describe('POST /admin/api/v1/users/:id/offboard', () => {
  it('refuses callers without user_admin (403), unknown people (404) and malformed ids (400), changing nothing', async () => {
    for (const caller of [appAdmin, auditor]) {
      const res = await caller.call('POST', `/users/${users.alice}/offboard`);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('admin.forbidden');
    }
    const unknown = await userAdmin.call('POST', `/users/${randomUUID()}/offboard`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('user.not_found');
    expect(JSON.stringify(unknown.body)).not.toMatch(/select|offboarding_lines|at .*\.ts/i);
    expect((await userAdmin.call('POST', '/users/not-a-uuid/offboard')).status).toBe(400);
    // A user_admin cannot offboard a super_admin (they could not suspend one either).
    const boss = await userAdmin.call('POST', `/users/${users.root}/offboard`);
    expect(boss.status).toBe(403);
    expect(boss.body.code).toBe('user.admin_roles_forbidden');
    expect((await userAdmin.call('GET', `/users/${users.root}`)).body.status).toBe('active');
    expect((await userAdmin.call('GET', `/users/${users.root}/offboardings`)).body.items).toEqual([]);
    expect((await userAdmin.call('GET', `/users/${users.alice}/offboardings`)).body.items).toEqual([]);
    expect((await userAdmin.call('GET', `/offboardings/${randomUUID()}`)).status).toBe(404);
    expect((await appAdmin.call('GET', `/users/${users.alice}/offboardings`)).status).toBe(403);
  });

  it('cuts the person off everywhere and returns a receipt with a line per app, updated as apps answer', async () => {
    const browser = new Browser();
    const wiki = await signIn('Wiki', browser, 'alice');
    const chat = await signIn('Chat', browser, 'alice');
    expect(wiki.sid).toBeTruthy();
    expect(wiki.tokens.refresh_token).toBeTruthy();
    receiver.failNext.set('/chat', 2); // the Chat app is down for its first two deliveries

    const res = await userAdmin.call('POST', `/users/${users.alice}/offboard`);
    expect(res.status).toBe(201);
    const receipt = res.body;
    expect(res.headers.get('location')).toBe(`/admin/api/v1/offboardings/${receipt.id}`);
    expect(receipt).toMatchObject({ userId: users.alice, source: 'admin', actor: { type: 'admin_client' } });
    expect((await userAdmin.call('GET', `/users/${users.alice}`)).body.status).toBe('suspended');

    // Every app she could use is on the receipt (she has no assignments: the apps open to everyone).
    const all = (await appAdmin.call('GET', '/apps?limit=500')).body.items as { id: string; access: string }[];
    expect(receipt.apps.map((a: ReceiptApp) => a.appId).sort()).toEqual(all.filter((a) => a.access === 'everyone').map((a) => a.id).sort());
    expect(lineOf(receipt, 'Wiki', 'tokens_revoked')).toMatchObject({ state: 'done', detail: 'grants and tokens deleted' });
    expect(lineOf(receipt, 'Legacy', 'tokens_revoked')).toMatchObject({ state: 'done' });
    expect(lineOf(receipt, 'Legacy', 'oidc_backchannel_logout')).toMatchObject({ state: 'not_applicable', detail: expect.stringContaining('backchannel_logout_uri') });
    expect(lineOf(receipt, 'Wiki', 'provisioning_deactivate')).toMatchObject({ state: 'not_applicable', detail: 'the app has no provisioning target' });
    expect(['pending', 'acknowledged']).toContain(lineOf(receipt, 'Wiki', 'oidc_backchannel_logout')!.state);

    // Her tokens stop working at once.
    await expect(client.refreshTokenGrant(wiki.config, wiki.tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    await expect(client.refreshTokenGrant(chat.config, chat.tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await client.tokenIntrospection(wiki.config, wiki.tokens.access_token)).active).toBe(false);
    await expect(client.fetchUserInfo(wiki.config, wiki.tokens.access_token, users.alice!)).rejects.toBeDefined();

    // Wiki gets a logout token that verifies against OneID's JWKS, naming her and her session.
    const got = await until('the Wiki logout token', async () => receiver.received.find((r) => r.path === '/wiki' && decodeJwt(r.token).sub === users.alice));
    const { payload, protectedHeader } = await verifyLogoutToken(got.token, apps.Wiki!.client_id);
    expect(payload.sub).toBe(users.alice);
    expect(payload.sid).toBe(wiki.sid);
    expect(protectedHeader.alg).toBe('RS256');
    const acked = await until('Wiki acknowledged', async () => {
      const r = (await auditor.call('GET', `/offboardings/${receipt.id}`)).body;
      return lineOf(r, 'Wiki', 'oidc_backchannel_logout')?.state === 'acknowledged' && r;
    });
    expect(lineOf(acked, 'Wiki', 'oidc_backchannel_logout')).toMatchObject({ detail: 'HTTP 200', attempts: 1 });

    // Chat was down: its line says so while the queue retries, then acknowledged.
    const retrying = await until('Chat failed_retrying', async () => {
      const r = (await auditor.call('GET', `/offboardings/${receipt.id}`)).body;
      const line = lineOf(r, 'Chat', 'oidc_backchannel_logout');
      return (line?.state === 'failed_retrying' || line?.state === 'acknowledged') && line;
    });
    expect(retrying).toMatchObject({ state: 'failed_retrying', detail: 'HTTP 503' });
    const done = await until('Chat acknowledged', async () => {
      const r = (await auditor.call('GET', `/offboardings/${receipt.id}`)).body;
      return r.status === 'complete' && r;
    });
    expect(lineOf(done, 'Chat', 'oidc_backchannel_logout')).toMatchObject({ state: 'acknowledged', attempts: 3 });
    expect(done.apps.find((a: ReceiptApp) => a.appName === 'Chat').state).toBe('acknowledged');
    const chatToken = receiver.received.find((r) => r.path === '/chat' && decodeJwt(r.token).sub === users.alice)!;
    const chatVerified = await verifyLogoutToken(chatToken.token, apps.Chat!.client_id);
    expect(chatVerified.protectedHeader.alg).toBe('ES256'); // the app's ID token algorithm
    expect(chatVerified.payload.sid).toBeUndefined(); // Chat does not require sid

    // Kept and viewable later from the person.
    const list = await auditor.call('GET', `/users/${users.alice}/offboardings`);
    expect(list.status).toBe(200);
    expect(list.body.items.map((r: { id: string }) => r.id)).toEqual([receipt.id]);
    const audit = await auditor.call('GET', `/audit-events?targetId=${users.alice}&limit=100`);
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['user.offboarded', 'user.suspended']));
  }, 90000);

  it('offboarding again writes a new receipt and tells the apps again', async () => {
    const before = receiver.received.filter((r) => r.path === '/wiki' && decodeJwt(r.token).sub === users.alice).length;
    const again = await userAdmin.call('POST', `/users/${users.alice}/offboard`);
    expect(again.status).toBe(201);
    await until('a second Wiki logout token', async () => receiver.received.filter((r) => r.path === '/wiki' && decodeJwt(r.token).sub === users.alice).length > before);
    const list = (await auditor.call('GET', `/users/${users.alice}/offboardings?limit=1`)).body;
    expect(list.items[0].id).toBe(again.body.id);
    expect(list.next_cursor).toEqual(expect.any(String));
    const next = (await auditor.call('GET', `/users/${users.alice}/offboardings?limit=1&cursor=${list.next_cursor}`)).body;
    expect(next.items).toHaveLength(1);
    expect(next.items[0].id).not.toBe(again.body.id);
    expect(next.next_cursor).toBeNull();
  }, 60000);
});

describe('HR deactivates a person over SCIM', () => {
  it('runs the same fan-out: a receipt, and a logout token for the session the person had', async () => {
    const wiki = await signIn('Wiki', new Browser(), 'bob');
    const res = await fetch(`${server.url}/scim/v2/Users/${users.bob}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${scimToken}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] }),
    });
    expect([200, 204]).toContain(res.status);
    await expect(client.refreshTokenGrant(wiki.config, wiki.tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    const got = await until('the Wiki logout token for bob', async () => receiver.received.find((r) => r.path === '/wiki' && decodeJwt(r.token).sub === users.bob));
    const { payload } = await verifyLogoutToken(got.token, apps.Wiki!.client_id);
    expect(payload.sid).toBe(wiki.sid);
    const receipt = await until('the SCIM receipt', async () => {
      const items = (await auditor.call('GET', `/users/${users.bob}/offboardings`)).body.items;
      return items[0]?.status === 'complete' && items[0];
    });
    expect(receipt).toMatchObject({ source: 'scim', actor: { type: 'scim_client' } });
    expect(lineOf(receipt, 'Wiki', 'oidc_backchannel_logout')).toMatchObject({ state: 'acknowledged' });
    expect(lineOf(receipt, 'Legacy', 'oidc_backchannel_logout')).toMatchObject({ state: 'not_applicable' });
  }, 60000);
});

describe('the provisioning and refused lines', () => {
  // The provisioning engine (another part of #21) keeps provisioned_objects; these rows stand in
  // for what it writes, so that the receipt is shown to read them as the engine leaves them.
  it('reads the provisioning outcome from provisioned_objects and marks a refused logout token failed', async () => {
    const carol = await runCli(['users', 'create', '--username', 'carol', '--email', 'carol@example.com', '--password', 'correct horse battery'], env);
    expect(carol.code).toBe(0);
    const carolId = carol.json.id as string;
    const hris = await appAdmin.call('POST', '/apps', { name: 'HRIS', redirectUris: [REDIRECT] });
    const crm = await appAdmin.call('POST', '/apps', { name: 'CRM', redirectUris: [REDIRECT] });
    const strict = await appAdmin.call('POST', '/apps', { name: 'Strict', redirectUris: [REDIRECT], backchannelLogoutUri: `${receiver.origin}/strict` });
    for (const app of [hris, crm]) {
      expect((await appAdmin.call('POST', `/apps/${app.body.id}/assignments`, { principalType: 'user', principalId: carolId })).status).toBe(201);
    }
    expect((await appAdmin.call('POST', `/apps/${strict.body.id}/assignments`, { principalType: 'user', principalId: carolId })).status).toBe(201);
    const sql = knex({ client: 'pg', connection: db.url, pool: { min: 0, max: 1 } });
    try {
      for (const app of [hris, crm]) {
        await sql('provisioning_targets').insert({ app_id: app.body.id, base_url: 'https://scim.example/v2', token_ciphertext: 'x' });
      }
      // HRIS holds her, deactivated before this offboarding (that acknowledgement does not count).
      await sql('provisioned_objects').insert({
        app_id: hris.body.id, kind: 'user', local_id: carolId, remote_id: 'h-1', state: 'synced', active: false,
        last_attempt_at: sql.raw("now() - interval '1 day'"), last_success_at: sql.raw("now() - interval '1 day'"),
      });
      const res = await userAdmin.call('POST', `/users/${carolId}/offboard`);
      expect(res.status).toBe(201);
      const id = res.body.id as string;
      expect(lineOf(res.body, 'HRIS', 'provisioning_deactivate')).toMatchObject({ state: 'pending' });
      expect(lineOf(res.body, 'CRM', 'provisioning_deactivate')).toMatchObject({ state: 'not_applicable', detail: 'OneID has not created this person in the app' });

      // The app refuses the push: failed_retrying with its own error.
      await sql('provisioned_objects').where({ app_id: hris.body.id, local_id: carolId })
        .update({ state: 'failed', last_attempt_at: sql.fn.now(), last_error: 'HTTP 503 Service Unavailable' });
      let receipt = (await auditor.call('GET', `/offboardings/${id}`)).body;
      expect(lineOf(receipt, 'HRIS', 'provisioning_deactivate')).toMatchObject({ state: 'failed_retrying', detail: 'HTTP 503 Service Unavailable' });
      expect(receipt.status).toBe('in_progress');

      // Strict refuses the logout token with 400: failed for good, with its answer made printable.
      receipt = await until('Strict failed', async () => {
        const r = (await auditor.call('GET', `/offboardings/${id}`)).body;
        return lineOf(r, 'Strict', 'oidc_backchannel_logout')?.state === 'failed' && r;
      });
      expect(lineOf(receipt, 'Strict', 'oidc_backchannel_logout')).toMatchObject({ detail: 'HTTP 400 invalid_request: unknown sid', attempts: 1 });

      // Then the app acknowledges active=false: acknowledged.
      await sql('provisioned_objects').where({ app_id: hris.body.id, local_id: carolId })
        .update({ state: 'synced', active: false, last_success_at: sql.fn.now(), last_error: null });
      receipt = (await auditor.call('GET', `/offboardings/${id}`)).body;
      expect(lineOf(receipt, 'HRIS', 'provisioning_deactivate')).toMatchObject({ state: 'acknowledged' });
      expect(receipt.status).toBe('failed');
      expect(receipt.apps.find((a: ReceiptApp) => a.appName === 'Strict').state).toBe('failed');
    } finally {
      await sql.destroy();
    }
  }, 60000);
});
