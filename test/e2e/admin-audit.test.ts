// Black-box: what the audit log tells an auditor through the admin API (/admin/api/v1/audit-events)
// on a real server and database: the app a person's token was issued to, the old values of an
// update beside the new, and the writes that were refused (403) in the admin API and SCIM, each
// one small row that changes nothing else.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let portal: { client_id: string; client_secret: string };
let scimToken: { id: string; token: string };
let superAdmin: AdminClient;
let userAdmin: AdminClient;
let auditor: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [app, hr] = await Promise.all([
    runCli(['apps', 'create', '--name', 'Console', '--redirect-uri', REDIRECT, '--first-party',
      '--admin-role', 'super_admin', '--admin-role', 'user_admin', '--admin-role', 'app_admin', '--admin-role', 'auditor'], env),
    runCli(['scim-tokens', 'create', '--name', 'HR'], env),
  ]);
  expect(app.code).toBe(0);
  expect(hr.code).toBe(0);
  portal = app.json;
  scimToken = hr.json;
  server = await startServer(env);
  [superAdmin, userAdmin, auditor] = await Promise.all([
    adminClient(server.url, env, ['super_admin']),
    adminClient(server.url, env, ['user_admin']),
    adminClient(server.url, env, ['auditor']),
  ]);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** An admin API access token of a person, through the console app (authorization code + PKCE). */
async function personToken(login: string, password: string): Promise<string> {
  const config = await client.discovery(new URL(server.url), portal.client_id, undefined, client.ClientSecretBasic(portal.client_secret), { execute: [client.allowInsecureRequests] });
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
  return (await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state })).access_token;
}

async function callAs(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/admin/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

async function scim(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { accept: 'application/scim+json', authorization: `Bearer ${scimToken.token}` };
  if (body !== undefined) headers['content-type'] = 'application/scim+json';
  const res = await fetch(`${server.url}/scim/v2${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Every event, newest first, as the auditor reads them. */
async function allEvents(query = ''): Promise<any[]> {
  const res = await auditor.call('GET', `/audit-events?limit=500${query}`);
  expect(res.status).toBe(200);
  return res.body.items;
}

let seq = 0;
async function person(adminRoles: string[] = []) {
  seq += 1;
  const username = `audited${seq}`;
  const password = `audited-pass-${seq}`;
  const res = await superAdmin.call('POST', '/users', { username, password, title: 'Engineer', adminRoles });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, version: res.body.version as number, username, password };
}

describe('who made a change', () => {
  it("names the app a person's token was issued to, and the auditor finds the changes made through it", async () => {
    const admin = await person(['super_admin']);
    const target = await person();
    const token = await personToken(admin.username, admin.password);
    expect((await callAs(token, 'PATCH', `/users/${target.id}`, { title: 'Lead Engineer' })).status).toBe(200);

    const through = await allEvents(`&clientId=${encodeURIComponent(portal.client_id)}`);
    expect(through).toHaveLength(1);
    expect(through[0]).toMatchObject({
      action: 'user.updated', actorType: 'user', actorId: admin.id, clientId: portal.client_id, targetId: target.id,
      changes: { title: 'Lead Engineer' }, before: { title: 'Engineer' },
    });
    // An admin client's own changes name it too, so one filter finds everything done through an app.
    const byClient = await allEvents(`&clientId=${encodeURIComponent(superAdmin.clientId)}`);
    expect(byClient.length).toBeGreaterThan(0);
    expect(byClient.every((e) => e.actorType === 'admin_client' && e.actorId === superAdmin.clientId && e.clientId === superAdmin.clientId)).toBe(true);
  });
});

describe('old values', () => {
  it('returns the old values beside the new for updates of users, groups, departments, apps, roles and assignments', async () => {
    const user = await person();
    await superAdmin.call('PATCH', `/users/${user.id}`, { title: 'Staff Engineer', name: 'Ada L' });
    const group = (await superAdmin.call('POST', '/groups', { name: 'Writers' })).body;
    await superAdmin.call('PATCH', `/groups/${group.id}`, { name: 'Tech Writers' });
    const dept = (await superAdmin.call('POST', '/departments', { name: 'Support' })).body;
    await superAdmin.call('PATCH', `/departments/${dept.id}`, { name: 'Customer Support' });
    const app = (await superAdmin.call('POST', '/apps', { name: 'Docs', redirectUris: ['https://docs.example/cb'] })).body;
    await superAdmin.call('PATCH', `/apps/${app.id}`, { name: 'Docs 2', redirectUris: ['https://docs.example/cb2'] });
    const role = (await superAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'docs.editor', name: 'Editor' })).body;
    await superAdmin.call('PATCH', `/apps/${app.id}/roles/${role.id}`, { name: 'Editors' });
    const assignment = (await superAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'group', principalId: group.id })).body;
    expect((await superAdmin.call('PATCH', `/apps/${app.id}/assignments/${assignment.id}`, { roleKeys: ['docs.editor'] })).status).toBe(200);

    const updates = await allEvents();
    const find = (action: string, targetId: string) => updates.find((e) => e.action === action && e.targetId === targetId);
    expect(find('user.updated', user.id)).toMatchObject({ changes: { title: 'Staff Engineer', name: 'Ada L' }, before: { title: 'Engineer', name: null } });
    expect(find('group.updated', group.id).before).toEqual({ name: 'Writers' });
    expect(find('department.updated', dept.id).before).toEqual({ name: 'Support' });
    expect(find('app.updated', app.id)).toMatchObject({ changes: { name: 'Docs 2' }, before: { name: 'Docs', redirectUris: ['https://docs.example/cb'] } });
    expect(find('app_role.updated', app.id)).toMatchObject({ changes: { roleId: role.id, name: 'Editors' }, before: { name: 'Editor' } });
    expect(find('assignment.updated', app.id).before).toEqual({ roles: [] });
  });

  it('shows a password set as changed, with no password or hash on either side', async () => {
    const user = await person();
    expect((await superAdmin.call('PATCH', `/users/${user.id}`, { password: 'a-brand-new-pass' })).status).toBe(200);
    const [event] = await allEvents(`&action=user.updated&targetId=${user.id}`);
    // It also counts the sessions and tokens the new password ended (none here).
    expect(event.changes).toEqual({ passwordChanged: true, endedOidcRecords: 0 });
    expect(event.before).toBeNull();
    expect(JSON.stringify(event)).not.toMatch(/a-brand-new-pass|audited-pass|\$argon2/);
  });
});

describe('refused writes', () => {
  it('records a write refused by role: who, what, on which target and the code; nothing else changes', async () => {
    const app = (await superAdmin.call('POST', '/apps', { name: 'Guarded', redirectUris: ['https://guarded.example/cb'] })).body;
    const before = await allEvents();
    const refused = await userAdmin.call('PATCH', `/apps/${app.id}`, { name: 'Taken over', redirectUris: ['https://evil.example/cb'] }, { 'user-agent': 'attacker/1.0' });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('admin.forbidden');

    const after = await allEvents();
    expect(after).toHaveLength(before.length + 1);
    expect(after[0]).toMatchObject({
      action: 'write.refused', actorType: 'admin_client', actorId: userAdmin.clientId, clientId: userAdmin.clientId,
      targetType: 'app', targetId: app.id, userAgent: 'attacker/1.0',
      changes: { operation: 'PATCH /admin/api/v1/apps/:id', code: 'admin.forbidden' },
    });
    expect(after[0].changes.reason).toContain('app_admin');
    const now = await superAdmin.call('GET', `/apps/${app.id}`);
    expect(now.body).toMatchObject({ name: 'Guarded', version: app.version, redirectUris: ['https://guarded.example/cb'] });
  });

  it("records a refusal by a service's own check, made with a person's token, with that check's code", async () => {
    const admin = await person(['user_admin']);
    const superUser = await person(['super_admin']);
    const token = await personToken(admin.username, admin.password);
    const refused = await callAs(token, 'PATCH', `/users/${superUser.id}`, { title: 'Intern' });
    expect(refused.status).toBe(403);
    const [event] = await allEvents(`&action=write.refused&targetId=${superUser.id}`);
    expect(event).toMatchObject({
      actorType: 'user', actorId: admin.id, clientId: portal.client_id, targetType: 'user',
      changes: { operation: 'PATCH /admin/api/v1/users/:id', code: refused.body.code, fields: ['title'] },
    });
    expect((await superAdmin.call('GET', `/users/${superUser.id}`)).body).toMatchObject({ title: 'Engineer', version: superUser.version });
  });

  it('keeps each refusal one small row whatever the request sent, and records neither refused reads nor unauthenticated writes', async () => {
    const group = (await superAdmin.call('POST', '/groups', { name: 'Flooded' })).body;
    const before = (await allEvents()).length;
    const huge = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`field${i}-${'x'.repeat(100)}`, 'y'.repeat(50)]));
    expect((await auditor.call('PATCH', `/groups/${group.id}`, huge)).status).toBe(403);
    expect((await userAdmin.call('GET', '/audit-events')).status).toBe(403);
    const anonymous = await fetch(`${server.url}/admin/api/v1/groups/${group.id}`, {
      method: 'PATCH', headers: { authorization: 'Bearer not-a-token', 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x' }),
    });
    expect(anonymous.status).toBe(401);

    const after = await allEvents();
    expect(after).toHaveLength(before + 1);
    expect(after[0]).toMatchObject({ action: 'write.refused', actorId: auditor.clientId, targetId: group.id });
    // Refused by role before its body was read (the API checks the caller first), so no field names.
    expect(after[0].changes.fields).toBeUndefined();
    expect(JSON.stringify(after[0]).length).toBeLessThan(6000);
    expect((await superAdmin.call('GET', `/groups/${group.id}`)).body.name).toBe('Flooded');
  });

  it('records SCIM writes refused with 403, also each one inside /Bulk, and writes nothing else', async () => {
    const admin = await person(['super_admin']);
    const refused = await scim('PATCH', `/Users/${admin.id}`, { schemas: [PATCH], Operations: [{ op: 'replace', path: 'password', value: 'scim-takeover-1' }] });
    expect(refused.status).toBe(403);
    const bulk = await scim('POST', '/Bulk', {
      schemas: [BULK],
      Operations: [{ method: 'PUT', path: `/Users/${admin.id}`, data: { schemas: [CORE], userName: admin.username, password: 'scim-takeover-2' } }],
    });
    expect(bulk.status).toBe(200);
    expect(bulk.body.Operations[0].status).toBe('403');

    const events = await allEvents(`&targetId=${admin.id}&actorType=scim_client`);
    expect(events.map((e) => e.action)).toEqual(['write.refused', 'write.refused']);
    expect(events[1]).toMatchObject({
      actorId: scimToken.id, clientId: null, targetType: 'user',
      changes: { operation: 'PATCH /scim/v2/Users/:id', code: 'user.admin_password_not_scim', fields: ['password'] },
    });
    expect(events[0]).toMatchObject({ changes: { operation: 'PUT /scim/v2/Users/:id', code: 'user.admin_password_not_scim', fields: ['userName', 'password'] } });
    expect(JSON.stringify(events)).not.toContain('scim-takeover');
    expect((await superAdmin.call('GET', `/users/${admin.id}`)).body.version).toBe(admin.version);
  });

  it('leaves a chain that verifies', async () => {
    const verify = await runCli(['audit', 'verify'], env);
    expect(verify.code).toBe(0);
  });
});
