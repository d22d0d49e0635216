// Black-box: who may give admin roles to people and change people who hold them, through the
// admin API (/admin/api/v1/users), on a real server and database. A person's admin roles are what
// their tokens can do in the admin API, so the rule is the one apps follow: a caller gives only
// roles it holds, and changes only users whose every admin role it holds; super_admin does all.
import * as client from 'openid-client';
import { createTestDatabase, storedPasswordHash, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser, canSignIn as signInWorks } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let userAdmin: AdminClient;
let appUserAdmin: AdminClient;
let superAdmin: AdminClient;
let auditor: AdminClient;
let portal: { client_id: string; client_secret: string };

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  // The admin console people reach the admin API through: it holds every admin role, so a
  // person's token through it acts with all of the person's roles.
  const app = await runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party',
    '--admin-role', 'super_admin', '--admin-role', 'user_admin', '--admin-role', 'app_admin', '--admin-role', 'auditor'], env);
  expect(app.code).toBe(0);
  portal = app.json;
  server = await startServer(env);
  [userAdmin, appUserAdmin, superAdmin, auditor] = await Promise.all([
    adminClient(server.url, env, ['user_admin']),
    adminClient(server.url, env, ['app_admin', 'user_admin']),
    adminClient(server.url, env, ['super_admin']),
    adminClient(server.url, env, ['auditor']),
  ]);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

let seq = 0;
/** A user created by the super_admin (who may give any role), with a password. */
async function person(adminRoles: string[], extra: Record<string, unknown> = {}) {
  seq += 1;
  const username = `person${seq}.${adminRoles.join('-') || 'plain'}`.replace(/_/g, '');
  const res = await superAdmin.call('POST', '/users', { username, password: `original-pass-${seq}`, adminRoles, ...extra });
  expect(res.status).toBe(201);
  return { ...res.body as { id: string; version: number; adminRoles: string[]; status: string }, username, password: `original-pass-${seq}` };
}

const passwordHash = (userId: string): Promise<string | undefined> => storedPasswordHash(db.url, userId);

const canSignIn = (login: string, password: string): Promise<boolean> =>
  signInWorks(server.url, { clientId: portal.client_id, redirect: REDIRECT }, login, password);

/** An admin API access token of a person (authorization code flow with resource=<issuer>/api). */
async function personToken(login: string, password: string, through = portal): Promise<string> {
  const config = await client.discovery(new URL(server.url), through.client_id, undefined, client.ClientSecretBasic(through.client_secret), { execute: [client.allowInsecureRequests] });
  const browser = new Browser();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid', state, resource: `${server.url}/api`,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const page = await browser.navigate(url.toString(), REDIRECT);
  const done = await browser.submit(page, '/login', { login, password }, REDIRECT);
  expect(done.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state });
  return tokens.access_token;
}

async function callAs(accessToken: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/admin/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

async function expectUnchanged(before: { id: string; version: number; adminRoles: string[]; status: string }, hash: string | undefined) {
  const now = await superAdmin.call('GET', `/users/${before.id}`);
  expect(now.status).toBe(200);
  expect(now.body).toMatchObject({ version: before.version, adminRoles: before.adminRoles, status: before.status });
  expect(await passwordHash(before.id)).toBe(hash);
}

function expectRefused(res: { status: number; body: any }, missing: string) {
  expect(res.status).toBe(403);
  expect(res.body).toMatchObject({ status: 403, code: 'user.admin_roles_forbidden' });
  expect(res.body.detail).toContain(missing);
}

describe('giving admin roles', () => {
  it('refuses a user_admin creating a user with super_admin (or any role it lacks), and creates nothing', async () => {
    for (const adminRoles of [['super_admin'], ['user_admin', 'app_admin'], ['auditor']]) {
      const res = await userAdmin.call('POST', '/users', { username: `would.be.${adminRoles.join('.')}`.replace(/_/g, ''), password: 'escalate-me-now', adminRoles });
      expectRefused(res, adminRoles.find((r) => r !== 'user_admin')!);
      expect(res.body.field).toBe('adminRoles');
      const found = await superAdmin.call('GET', `/users?username=${encodeURIComponent(`would.be.${adminRoles.join('.')}`.replace(/_/g, ''))}`);
      expect(found.body.items).toEqual([]);
    }
  });

  it('refuses an app_admin+user_admin caller giving roles it lacks, at creation and by PATCH, and lets it give the ones it holds', async () => {
    const lacking = await appUserAdmin.call('POST', '/users', { username: 'two.roles.lacking', adminRoles: ['app_admin', 'auditor'] });
    expectRefused(lacking, 'auditor');
    expect(lacking.body.detail).not.toContain('app_admin');
    expect((await appUserAdmin.call('POST', '/users', { username: 'two.roles.super', adminRoles: ['super_admin'] })).status).toBe(403);

    const plain = await person([]);
    const hash = await passwordHash(plain.id);
    expectRefused(await appUserAdmin.call('PATCH', `/users/${plain.id}`, { adminRoles: ['super_admin'] }), 'super_admin');
    expectRefused(await appUserAdmin.call('PATCH', `/users/${plain.id}`, { adminRoles: ['app_admin', 'auditor'], name: 'Renamed' }), 'auditor');
    await expectUnchanged(plain, hash);

    const held = await appUserAdmin.call('POST', '/users', { username: 'two.roles.held', adminRoles: ['app_admin', 'user_admin'] });
    expect(held.status).toBe(201);
    expect(held.body.adminRoles).toEqual(['app_admin', 'user_admin']);
    const granted = await appUserAdmin.call('PATCH', `/users/${plain.id}`, { adminRoles: ['app_admin'] });
    expect(granted.status).toBe(200);
    expect(granted.body.adminRoles).toEqual(['app_admin']);
  });

  it('refuses a user_admin promoting a plain user to super_admin or app_admin by PATCH', async () => {
    const plain = await person([]);
    const hash = await passwordHash(plain.id);
    expectRefused(await userAdmin.call('PATCH', `/users/${plain.id}`, { adminRoles: ['super_admin'] }), 'super_admin');
    expectRefused(await userAdmin.call('PATCH', `/users/${plain.id}`, { adminRoles: ['user_admin', 'app_admin'] }), 'app_admin');
    await expectUnchanged(plain, hash);
  });
});

describe('changing a user who holds admin roles', () => {
  it("refuses a user_admin changing a super_admin's password, admin roles, profile and status; nothing changes and the old password still signs in", async () => {
    const root = await person(['super_admin']);
    const hash = await passwordHash(root.id);
    expect(hash).toBeTruthy();

    expectRefused(await userAdmin.call('PATCH', `/users/${root.id}`, { password: 'taken-over-now' }), 'super_admin');
    expectRefused(await userAdmin.call('PATCH', `/users/${root.id}`, { adminRoles: [] }), 'super_admin');
    expectRefused(await userAdmin.call('PATCH', `/users/${root.id}`, { adminRoles: ['user_admin'] }), 'super_admin');
    expectRefused(await userAdmin.call('PATCH', `/users/${root.id}`, { email: 'attacker@example.com' }), 'super_admin');
    expectRefused(await userAdmin.call('PATCH', `/users/${root.id}`, { name: 'Renamed' }, { 'if-match': `W/"${root.version}"` }), 'super_admin');
    expectRefused(await userAdmin.call('POST', `/users/${root.id}/suspend`), 'super_admin');
    expectRefused(await userAdmin.call('POST', `/users/${root.id}/deprovision`), 'super_admin');
    await expectUnchanged(root, hash);

    expect(await canSignIn(root.username, root.password)).toBe(true);
    expect(await canSignIn(root.username, 'taken-over-now')).toBe(false);

    // No audit event claims a change of the super_admin (only its creation).
    const events = await auditor.call('GET', `/audit-events?targetId=${root.id}&action=user.*`);
    expect(events.status).toBe(200);
    expect(events.body.items.map((e: { action: string }) => e.action)).toEqual(['user.created']);

    // Reading stays as it was.
    expect((await userAdmin.call('GET', `/users/${root.id}`)).status).toBe(200);
  });

  it('refuses a user_admin reactivating a suspended super_admin; an unknown id stays 404', async () => {
    const suspended = await person(['super_admin'], { status: 'suspended' });
    expectRefused(await userAdmin.call('POST', `/users/${suspended.id}/reactivate`), 'super_admin');
    await expectUnchanged(suspended, await passwordHash(suspended.id));
    expect((await userAdmin.call('PATCH', '/users/00000000-0000-4000-8000-000000000000', { name: 'Nobody' })).status).toBe(404);
    expect((await userAdmin.call('POST', '/users/00000000-0000-4000-8000-000000000000/suspend')).status).toBe(404);
  });

  it('refuses a user_admin changing a user who holds any role it lacks (app_admin, auditor), and an app_admin+user_admin changing an auditor', async () => {
    const appAdminPerson = await person(['app_admin']);
    const auditorPerson = await person(['auditor', 'user_admin']);
    for (const target of [appAdminPerson, auditorPerson]) {
      const hash = await passwordHash(target.id);
      const missing = target.adminRoles.find((r) => r !== 'user_admin')!;
      expectRefused(await userAdmin.call('PATCH', `/users/${target.id}`, { password: 'taken-over-now' }), missing);
      expectRefused(await userAdmin.call('PATCH', `/users/${target.id}`, { adminRoles: ['user_admin'] }), missing);
      expectRefused(await userAdmin.call('POST', `/users/${target.id}/suspend`), missing);
      await expectUnchanged(target, hash);
    }
    const hash = await passwordHash(auditorPerson.id);
    const refused = await appUserAdmin.call('PATCH', `/users/${auditorPerson.id}`, { password: 'taken-over-now' });
    expectRefused(refused, 'auditor');
    expect(refused.body.detail).not.toContain('user_admin');
    await expectUnchanged(auditorPerson, hash);
    // Holding every role of the target is enough.
    expect((await appUserAdmin.call('PATCH', `/users/${appAdminPerson.id}`, { title: 'Release manager' })).status).toBe(200);
  });

});

describe('a person who holds user_admin (their own access token)', () => {
  it('cannot become super_admin: not by promoting themselves, nor by creating one, nor by taking over one', async () => {
    const helpdesk = await person(['user_admin']);
    const root = await person(['super_admin']);
    const rootHash = await passwordHash(root.id);
    const token = await personToken(helpdesk.username, helpdesk.password);
    expect((await callAs(token, 'GET', `/users/${root.id}`)).status).toBe(200);

    expectRefused(await callAs(token, 'PATCH', `/users/${helpdesk.id}`, { adminRoles: ['user_admin', 'super_admin'] }), 'super_admin');
    expectRefused(await callAs(token, 'POST', '/users', { username: 'helpdesk.alt', password: 'alt-account-pass', adminRoles: ['super_admin'] }), 'super_admin');
    expectRefused(await callAs(token, 'PATCH', `/users/${root.id}`, { password: 'taken-over-now' }), 'super_admin');
    expectRefused(await callAs(token, 'POST', `/users/${root.id}/suspend`), 'super_admin');
    await expectUnchanged(root, rootHash);
    expect((await superAdmin.call('GET', `/users/${helpdesk.id}`)).body.adminRoles).toEqual(['user_admin']);

    // Changing themselves within their own roles is fine.
    const own = await callAs(token, 'PATCH', `/users/${helpdesk.id}`, { title: 'Help desk lead' });
    expect(own.status).toBe(200);
  });
});

describe("people's admin API tokens, through apps", () => {
  it('give an app registered by an app_admin none of the powers of the administrators who sign in through it', async () => {
    const root = await person(['super_admin']);
    // An app_admin registers a first-party app (no consent screen) with a redirect URI it controls.
    const rogue = await appUserAdmin.call('POST', '/apps', {
      name: 'Harmless', firstParty: true, access: 'everyone', redirectUris: [REDIRECT], grantTypes: ['authorization_code'],
    });
    expect(rogue.status).toBe(201);
    const stolen = await personToken(root.username, root.password, rogue.body as { client_id: string; client_secret: string });
    // The token is genuine, but it acts with the roles both the person and the app hold: none.
    expect((await callAs(stolen, 'GET', '/audit-events')).status).toBe(403);
    expect((await callAs(stolen, 'POST', '/apps', { name: 'Backdoor', grantTypes: ['client_credentials'], adminRoles: ['super_admin'] })).status).toBe(403);
    expect((await callAs(stolen, 'PATCH', `/users/${root.id}`, { title: 'owned' })).status).toBe(403);
    // Through the admin console, which holds every role, the same person acts as super_admin.
    const genuine = await personToken(root.username, root.password);
    expect((await callAs(genuine, 'GET', '/audit-events')).status).toBe(200);
  });

  it('a token issued before a suspension stays refused after the reactivation', async () => {
    const helpdesk = await person(['user_admin']);
    const before = await personToken(helpdesk.username, helpdesk.password);
    expect((await callAs(before, 'GET', '/users?limit=1')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // iat counts whole seconds
    expect((await superAdmin.call('POST', `/users/${helpdesk.id}/suspend`)).status).toBe(200);
    expect((await callAs(before, 'GET', '/users?limit=1')).status).toBe(401);
    expect((await superAdmin.call('POST', `/users/${helpdesk.id}/reactivate`)).status).toBe(200);
    expect((await callAs(before, 'GET', '/users?limit=1')).status).toBe(401);
    const after = await personToken(helpdesk.username, helpdesk.password);
    expect((await callAs(after, 'GET', '/users?limit=1')).status).toBe(200);
  });

  it("an app's tokens issued before its secret is rotated are refused after, as the old secret is", async () => {
    const bot = await adminClient(server.url, env, ['auditor']);
    expect((await bot.call('GET', '/audit-events?limit=1')).status).toBe(200);
    const listed = await superAdmin.call('GET', `/apps?clientId=${bot.clientId}`);
    const appId = (listed.body.items as { id: string }[])[0]!.id;
    await new Promise((resolve) => setTimeout(resolve, 1100)); // iat counts whole seconds
    const rotated = await superAdmin.call('POST', `/apps/${appId}/secret`);
    expect(rotated.status).toBe(200);
    expect((await bot.call('GET', '/audit-events?limit=1')).status).toBe(401);
    const fresh = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${bot.clientId}:${rotated.body.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    const { access_token: token } = await fresh.json() as { access_token: string };
    expect((await callAs(token, 'GET', '/audit-events?limit=1')).status).toBe(200);
  });

  it('SCIM tokens, which change administrators too, are made by a super_admin only', async () => {
    const refused = await userAdmin.call('POST', '/scim-tokens', { name: 'HR feed' });
    expect(refused.status).toBe(403);
    expect(refused.body).not.toHaveProperty('token');
    const made = await superAdmin.call('POST', '/scim-tokens', { name: 'HR feed' });
    expect(made.status).toBe(201);
    expect(typeof made.body.token).toBe('string');
    // A user_admin may still list and revoke them.
    expect((await userAdmin.call('GET', '/scim-tokens')).status).toBe(200);
    expect((await userAdmin.call('POST', `/scim-tokens/${made.body.id}/revoke`)).status).toBe(200);
  });
});

describe('what stays allowed', () => {
  it('lets a user_admin manage non-admin users and give user_admin (a role it holds), but not super_admin', async () => {
    const created = await userAdmin.call('POST', '/users', { username: 'helpdesk.new', password: 'first-password', adminRoles: ['user_admin'] });
    expect(created.status).toBe(201);
    expect(created.body.adminRoles).toEqual(['user_admin']);
    // A user holding only user_admin may be changed by a user_admin in every way.
    const deputy = created.body as { id: string };
    expect((await userAdmin.call('PATCH', `/users/${deputy.id}`, { name: 'Help Desk', password: 'second-password' })).status).toBe(200);
    expect(await canSignIn('helpdesk.new', 'second-password')).toBe(true);
    const stripped = await userAdmin.call('PATCH', `/users/${deputy.id}`, { adminRoles: [] });
    expect(stripped.status).toBe(200);
    expect(stripped.body.adminRoles).toEqual([]);

    const plain = await person([]);
    const hash = await passwordHash(plain.id);
    const renamed = await userAdmin.call('PATCH', `/users/${plain.id}`, { name: 'New Name', password: 'reset-by-helpdesk' });
    expect(renamed.status).toBe(200);
    expect(await passwordHash(plain.id)).not.toBe(hash);
    expect(await canSignIn(plain.username, 'reset-by-helpdesk')).toBe(true);
    const promoted = await userAdmin.call('PATCH', `/users/${plain.id}`, { adminRoles: ['user_admin'] });
    expect(promoted.status).toBe(200);
    expect(promoted.body.adminRoles).toEqual(['user_admin']);
    expect((await userAdmin.call('POST', `/users/${plain.id}/suspend`)).body.status).toBe('suspended');
    expect((await userAdmin.call('POST', `/users/${plain.id}/reactivate`)).body.status).toBe('active');
    expect((await userAdmin.call('POST', `/users/${plain.id}/deprovision`)).body.status).toBe('deprovisioned');

    // ...but never beyond its own roles.
    const other = await person([]);
    expectRefused(await userAdmin.call('PATCH', `/users/${other.id}`, { adminRoles: ['user_admin', 'super_admin'] }), 'super_admin');
  });

  it('lets a super_admin do all of it, where a user_admin is refused', async () => {
    const root = await person(['super_admin']);
    expectRefused(await userAdmin.call('PATCH', `/users/${root.id}`, { password: 'new-root-password' }), 'super_admin');

    const created = await superAdmin.call('POST', '/users', { username: 'second.root', adminRoles: ['super_admin', 'auditor'] });
    expect(created.status).toBe(201);
    const changed = await superAdmin.call('PATCH', `/users/${root.id}`, { password: 'new-root-password', name: 'Root' });
    expect(changed.status).toBe(200);
    expect(await canSignIn(root.username, 'new-root-password')).toBe(true);
    const demoted = await superAdmin.call('PATCH', `/users/${root.id}`, { adminRoles: ['app_admin'] });
    expect(demoted.status).toBe(200);
    expect(demoted.body.adminRoles).toEqual(['app_admin']);
    expect((await superAdmin.call('POST', `/users/${root.id}/suspend`)).body.status).toBe('suspended');
    expect((await superAdmin.call('POST', `/users/${root.id}/reactivate`)).body.status).toBe('active');
    expect((await superAdmin.call('POST', `/users/${root.id}/deprovision`)).body.status).toBe('deprovisioned');
  });
});
