// Black-box: the admin API for apps, app roles and assignments, on a real server and database.
import { createHash } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const REDIRECT = 'https://docs.example/callback';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let appAdmin: AdminClient;
let userAdmin: AdminClient;
let superAdmin: AdminClient;
let userId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const user = await runCli(['users', 'create', '--username', 'hopper', '--email', 'hopper@example.com', '--password', 'compilers-first'], env);
  expect(user.code).toBe(0);
  userId = user.json.id;
  server = await startServer(env);
  [appAdmin, userAdmin, superAdmin] = await Promise.all([
    adminClient(server.url, env, ['app_admin']),
    adminClient(server.url, env, ['user_admin']),
    adminClient(server.url, env, ['super_admin']),
  ]);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64url');

async function createApp(body: Record<string, unknown> = {}) {
  const res = await appAdmin.call('POST', '/apps', { name: 'Docs', redirectUris: [REDIRECT], ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; client_id: string; client_secret: string; version: number; [k: string]: unknown };
}

async function tokenStatus(clientId: string, secret: string): Promise<{ status: number; error?: string }> {
  const res = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  const body = await res.json() as { error?: string };
  return { status: res.status, error: body.error };
}

describe('POST /admin/api/v1/apps', () => {
  it("registers an app open to assigned users only by default and shows the secret once", async () => {
    const created = await createApp({ description: 'Team documents', logoUrl: 'https://docs.example/logo.png' });
    expect(created).toMatchObject({
      name: 'Docs', description: 'Team documents', access: 'assigned', firstParty: false, public: false,
      redirectUris: [REDIRECT], grantTypes: ['authorization_code', 'refresh_token'], adminRoles: [], idTokenSigningAlg: 'RS256', version: 1,
    });
    expect(created.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.clientId).toBe(created.client_id);

    const fetched = await appAdmin.call('GET', `/apps/${created.id}`);
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get('etag')).toBe('W/"1"');
    const text = JSON.stringify(fetched.body);
    expect(text).not.toContain(created.client_secret);
    expect(text).not.toContain(sha256(created.client_secret));
    expect(fetched.body).not.toHaveProperty('client_secret');
    expect(fetched.body).not.toHaveProperty('clientSecretHash');

    const listed = await appAdmin.call('GET', '/apps?limit=500');
    const listedText = JSON.stringify(listed.body);
    expect(listedText).not.toContain(created.client_secret);
    expect(listedText).not.toContain(sha256(created.client_secret));
  });

  it('refuses unknown fields and bad values with 400 naming the field', async () => {
    const unknown = await appAdmin.call('POST', '/apps', { name: 'X', redirectUris: [REDIRECT], colour: 'blue' });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ field: 'colour' });
    const badAccess = await appAdmin.call('POST', '/apps', { name: 'X', redirectUris: [REDIRECT], access: 'nobody' });
    expect(badAccess.status).toBe(400);
    expect(badAccess.body.field).toBe('access');
    const badUri = await appAdmin.call('POST', '/apps', { name: 'X', redirectUris: ['not a url'] });
    expect(badUri.status).toBe(400);
    expect(badUri.body.field).toBe('redirectUris.0');
    const noUri = await appAdmin.call('POST', '/apps', { name: 'X' });
    expect(noUri.status).toBe(400);
    expect(noUri.body.field).toBe('redirectUris');
    const notJson = await appAdmin.call('POST', '/apps', '{"name":');
    expect(notJson.status).toBe(400);
  });

  it('answers 401 without a token and 403 to a user_admin writing apps, roles or assignments', async () => {
    const anonymous = await fetch(`${server.url}/admin/api/v1/apps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"X"}' });
    expect(anonymous.status).toBe(401);
    expect((await fetch(`${server.url}/admin/api/v1/apps`)).status).toBe(401);

    const app = await createApp();
    expect((await userAdmin.call('POST', '/apps', { name: 'Nope', redirectUris: [REDIRECT] })).status).toBe(403);
    expect((await userAdmin.call('PATCH', `/apps/${app.id}`, { name: 'Renamed' })).status).toBe(403);
    expect((await userAdmin.call('DELETE', `/apps/${app.id}`)).status).toBe(403);
    expect((await userAdmin.call('POST', `/apps/${app.id}/secret`)).status).toBe(403);
    expect((await userAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'x', name: 'X' })).status).toBe(403);
    expect((await userAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'user', principalId: userId })).status).toBe(403);
    const forbidden = await userAdmin.call('POST', '/apps', { name: 'Nope', redirectUris: [REDIRECT] });
    expect(forbidden.body).toMatchObject({ status: 403, code: 'admin.forbidden' });
    // Reading is fine for user_admin.
    expect((await userAdmin.call('GET', `/apps/${app.id}`)).status).toBe(200);
    expect((await userAdmin.call('GET', `/apps/${app.id}/roles`)).status).toBe(200);
    expect((await userAdmin.call('GET', `/apps/${app.id}/assignments`)).status).toBe(200);
  });

  it('does not let an app_admin give an app admin roles it does not hold, nor take such an app over', async () => {
    const escalate = await appAdmin.call('POST', '/apps', { name: 'Backdoor', grantTypes: ['client_credentials'], adminRoles: ['super_admin'] });
    expect(escalate.status).toBe(403);
    expect(escalate.body.field).toBe('adminRoles');
    const own = await appAdmin.call('POST', '/apps', { name: 'Automation', grantTypes: ['client_credentials'], adminRoles: ['app_admin'] });
    expect(own.status).toBe(201);
    expect((await appAdmin.call('PATCH', `/apps/${own.body.id}`, { adminRoles: ['user_admin'] })).status).toBe(403);

    const powerful = await superAdmin.call('POST', '/apps', { name: 'Root automation', grantTypes: ['client_credentials'], adminRoles: ['super_admin'] });
    expect(powerful.status).toBe(201);
    expect((await appAdmin.call('POST', `/apps/${powerful.body.id}/secret`)).status).toBe(403);
    expect((await appAdmin.call('DELETE', `/apps/${powerful.body.id}`)).status).toBe(403);
    expect((await appAdmin.call('PATCH', `/apps/${powerful.body.id}`, { name: 'Mine now' })).status).toBe(403);
  });

  it("does not let an app_admin change the roles or assignments of an app holding admin roles it does not hold", async () => {
    // People signing in to this app act in the admin API with the user_admin role they share with it.
    const console_ = await superAdmin.call('POST', '/apps', { name: 'HR console', redirectUris: [REDIRECT], adminRoles: ['user_admin'] });
    expect(console_.status).toBe(201);
    const id = console_.body.id as string;
    const role = await superAdmin.call('POST', `/apps/${id}/roles`, { key: 'console.viewer' });
    expect(role.status).toBe(201);
    const assignment = await superAdmin.call('POST', `/apps/${id}/assignments`, { principalType: 'user', principalId: userId, roleKeys: ['console.viewer'] });
    expect(assignment.status).toBe(201);
    const mallory = await superAdmin.call('POST', '/users', { username: 'mallory', email: 'mallory@example.com' });
    expect(mallory.status).toBe(201);
    const before = [(await superAdmin.call('GET', `/apps/${id}/roles`)).body, (await superAdmin.call('GET', `/apps/${id}/assignments`)).body];

    const attempts: [string, string, unknown][] = [
      ['POST', `/apps/${id}/roles`, { key: 'console.admin' }],
      ['PATCH', `/apps/${id}/roles/${role.body.id}`, { key: 'console.owner' }],
      ['DELETE', `/apps/${id}/roles/${role.body.id}`, undefined],
      ['POST', `/apps/${id}/assignments`, { principalType: 'user', principalId: mallory.body.id, roleKeys: ['console.viewer'] }],
      ['PATCH', `/apps/${id}/assignments/${assignment.body.id}`, { roleKeys: [] }],
      ['DELETE', `/apps/${id}/assignments/${assignment.body.id}`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const res = await appAdmin.call(method, path, body);
      expect({ method, path, status: res.status, code: res.body?.code }).toEqual({ method, path, status: 403, code: 'app.admin_roles_forbidden' });
    }
    expect([(await superAdmin.call('GET', `/apps/${id}/roles`)).body, (await superAdmin.call('GET', `/apps/${id}/assignments`)).body]).toEqual(before);

    // An app holding only roles the app_admin holds stays the app_admin's to manage; unknown apps stay 404.
    const own = await superAdmin.call('POST', '/apps', { name: 'App console', redirectUris: [REDIRECT], adminRoles: ['app_admin'] });
    expect((await appAdmin.call('POST', `/apps/${own.body.id}/roles`, { key: 'console.viewer' })).status).toBe(201);
    expect((await appAdmin.call('POST', `/apps/${own.body.id}/assignments`, { principalType: 'user', principalId: userId })).status).toBe(201);
    expect((await appAdmin.call('POST', '/apps/00000000-0000-4000-8000-000000000000/roles', { key: 'x.y' })).status).toBe(404);
  });
});

describe('GET /admin/api/v1/apps', () => {
  it('pages with a cursor without repeating or skipping apps, and filters by name prefix', async () => {
    for (const name of ['Paging A', 'Paging B', 'Paging C']) await createApp({ name });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: { items: { name: string }[]; next_cursor: string | null } } =
        await appAdmin.call('GET', `/apps?q=paging&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((a) => a.name));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(['Paging A', 'Paging B', 'Paging C']);
    expect((await appAdmin.call('GET', '/apps?cursor=garbage')).status).toBe(400);
    expect((await appAdmin.call('GET', '/apps?access=nobody')).status).toBe(400);
  });
});

describe('PATCH /admin/api/v1/apps/:id', () => {
  it('updates with If-Match and refuses a stale version with 412', async () => {
    const app = await createApp();
    const updated = await appAdmin.call('PATCH', `/apps/${app.id}`, {
      name: 'Docs 2', access: 'everyone', firstParty: true, redirectUris: [REDIRECT, 'https://docs.example/cb2'], description: null,
    }, { 'if-match': 'W/"1"' });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ name: 'Docs 2', access: 'everyone', firstParty: true, version: 2, description: null });
    expect(updated.body.redirectUris).toEqual([REDIRECT, 'https://docs.example/cb2']);
    expect(updated.headers.get('etag')).toBe('W/"2"');

    const stale = await appAdmin.call('PATCH', `/apps/${app.id}`, { name: 'Lost update' }, { 'if-match': 'W/"1"' });
    expect(stale.status).toBe(412);
    expect((await appAdmin.call('GET', `/apps/${app.id}`)).body.name).toBe('Docs 2');

    const unknown = await appAdmin.call('PATCH', `/apps/${app.id}`, { clientSecret: 'mine' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.field).toBe('clientSecret');
    expect((await appAdmin.call('PATCH', `/apps/${app.id}`, { redirectUris: [] })).status).toBe(400);
    expect((await appAdmin.call('PATCH', '/apps/00000000-0000-4000-8000-000000000000', { name: 'Ghost' })).status).toBe(404);
  });

  it('changes how ID tokens are signed, together with other settings, and refuses algorithms OneID does not offer', async () => {
    const app = await createApp();
    const changed = await appAdmin.call('PATCH', `/apps/${app.id}`, { idTokenSigningAlg: 'ES256', redirectUris: [REDIRECT, 'https://docs.example/cb3'] });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ idTokenSigningAlg: 'ES256', redirectUris: [REDIRECT, 'https://docs.example/cb3'] });
    for (const alg of ['HS256', 'none', 'es256']) {
      const refused = await appAdmin.call('PATCH', `/apps/${app.id}`, { idTokenSigningAlg: alg });
      expect(refused.status).toBe(400);
      expect(refused.body.field).toBe('idTokenSigningAlg');
    }
    expect((await appAdmin.call('GET', `/apps/${app.id}`)).body.idTokenSigningAlg).toBe('ES256');
  });
});

describe('POST /admin/api/v1/apps/:id/secret', () => {
  it('rotates the client secret: the old one gets invalid_client, the new one works', async () => {
    const app = await createApp({ name: 'Batch job', grantTypes: ['client_credentials'], redirectUris: [] });
    expect(await tokenStatus(app.client_id, app.client_secret)).toEqual({ status: 200, error: undefined });

    const rotated = await appAdmin.call('POST', `/apps/${app.id}/secret`);
    expect(rotated.status).toBe(200);
    const fresh = rotated.body.client_secret as string;
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fresh).not.toBe(app.client_secret);
    expect(rotated.body.version).toBe(2);

    expect(await tokenStatus(app.client_id, app.client_secret)).toEqual({ status: 401, error: 'invalid_client' });
    expect(await tokenStatus(app.client_id, fresh)).toEqual({ status: 200, error: undefined });
    expect(JSON.stringify((await appAdmin.call('GET', `/apps/${app.id}`)).body)).not.toContain(fresh);

    const publicApp = await createApp({ name: 'Mobile', public: true });
    expect((await appAdmin.call('POST', `/apps/${publicApp.id}/secret`)).status).toBe(400);
    expect((await appAdmin.call('POST', '/apps/00000000-0000-4000-8000-000000000000/secret')).status).toBe(404);
  });
});

describe('app roles', () => {
  it('creates, lists, updates and deletes roles; 409 for a duplicate key, 400 for a bad key', async () => {
    const app = await createApp();
    const editor = await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'docs.editor', name: 'Editor', description: 'Can edit' });
    expect(editor.status).toBe(201);
    expect(editor.body).toMatchObject({ appId: app.id, key: 'docs.editor', name: 'Editor', description: 'Can edit' });
    const viewer = await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'docs.viewer', name: 'Viewer' });
    expect(viewer.status).toBe(201);

    const duplicate = await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'docs.editor', name: 'Again' });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toMatchObject({ code: 'app_role.key_taken', field: 'key' });
    for (const key of ['Docs.Editor', 'docs editor', '', '1docs', 'x'.repeat(101)]) {
      const bad = await appAdmin.call('POST', `/apps/${app.id}/roles`, { key, name: 'Bad' });
      expect(bad.status).toBe(400);
      expect(bad.body.field).toBe('key');
    }
    expect((await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'ok', name: 'Ok', extra: 1 })).body.field).toBe('extra');

    // The same key in another app is fine.
    const other = await createApp({ name: 'Other' });
    expect((await appAdmin.call('POST', `/apps/${other.id}/roles`, { key: 'docs.editor', name: 'Editor' })).status).toBe(201);

    const list = await appAdmin.call('GET', `/apps/${app.id}/roles`);
    expect(list.body.items.map((r: { key: string }) => r.key)).toEqual(['docs.editor', 'docs.viewer']);

    const renamed = await appAdmin.call('PATCH', `/apps/${app.id}/roles/${viewer.body.id}`, { name: 'Reader', key: 'docs.reader' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ key: 'docs.reader', name: 'Reader' });
    expect((await appAdmin.call('PATCH', `/apps/${app.id}/roles/${viewer.body.id}`, { key: 'docs.editor' })).status).toBe(409);
    // A role is addressed through its own app only.
    expect((await appAdmin.call('GET', `/apps/${other.id}/roles/${viewer.body.id}`)).status).toBe(404);

    expect((await appAdmin.call('DELETE', `/apps/${app.id}/roles/${viewer.body.id}`)).status).toBe(204);
    expect((await appAdmin.call('DELETE', `/apps/${app.id}/roles/${viewer.body.id}`)).status).toBe(404);
    expect((await appAdmin.call('GET', '/apps/00000000-0000-4000-8000-000000000000/roles')).status).toBe(404);
  });
});

describe('assignments', () => {
  it('assigns a user with roles by key, lists, changes and removes the assignment; entitlements follow', async () => {
    const app = await createApp();
    const role = await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'docs.editor', name: 'Editor' });
    await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'docs.viewer', name: 'Viewer' });

    const before = await appAdmin.call('GET', `/users/${userId}/entitlements?appId=${app.id}`);
    expect(before.body).toEqual({ userId, appId: app.id, allowed: false, assigned: false, roles: [] });

    const created = await appAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'user', principalId: userId, roleKeys: ['docs.viewer'], roleIds: [role.body.id] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ appId: app.id, principalType: 'user', principalId: userId, includeSubdepartments: false });
    expect(created.body.roles.map((r: { key: string }) => r.key)).toEqual(['docs.editor', 'docs.viewer']);

    const duplicate = await appAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'user', principalId: userId });
    expect(duplicate.status).toBe(409);

    const after = await appAdmin.call('GET', `/users/${userId}/entitlements?appId=${app.id}`);
    expect(after.body).toEqual({ userId, appId: app.id, allowed: true, assigned: true, roles: ['docs.editor', 'docs.viewer'] });
    const everywhere = await appAdmin.call('GET', `/users/${userId}/entitlements`);
    expect(everywhere.body.items.map((e: { appId: string }) => e.appId)).toContain(app.id);

    const listed = await appAdmin.call('GET', `/apps/${app.id}/assignments?principalType=user`);
    expect(listed.body.items.map((a: { id: string }) => a.id)).toEqual([created.body.id]);

    const changed = await appAdmin.call('PATCH', `/apps/${app.id}/assignments/${created.body.id}`, { roleKeys: ['docs.viewer'] });
    expect(changed.status).toBe(200);
    expect(changed.body.roles.map((r: { key: string }) => r.key)).toEqual(['docs.viewer']);
    expect((await appAdmin.call('PATCH', `/apps/${app.id}/assignments/${created.body.id}`, { includeSubdepartments: true })).status).toBe(400);

    expect((await appAdmin.call('DELETE', `/apps/${app.id}/assignments/${created.body.id}`)).status).toBe(204);
    expect((await appAdmin.call('DELETE', `/apps/${app.id}/assignments/${created.body.id}`)).status).toBe(404);
    expect((await appAdmin.call('GET', `/users/${userId}/entitlements?appId=${app.id}`)).body.allowed).toBe(false);
  });

  it('answers 404 for unknown apps, principals and roles and 400 for bad bodies, never 500', async () => {
    const app = await createApp();
    const ghost = '00000000-0000-4000-8000-000000000000';
    expect((await appAdmin.call('POST', `/apps/${ghost}/assignments`, { principalType: 'user', principalId: userId })).status).toBe(404);
    const noGroup = await appAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'group', principalId: ghost });
    expect(noGroup.status).toBe(404);
    expect(noGroup.body.field).toBe('principalId');
    const noRole = await appAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'user', principalId: userId, roleKeys: ['nope'] });
    expect(noRole.status).toBe(404);
    expect(noRole.body.field).toBe('roleKeys');
    const cases: [unknown, string][] = [
      [{ principalType: 'robot', principalId: userId }, 'principalType'],
      [{ principalType: 'user', principalId: 'not-a-uuid' }, 'principalId'],
      [{ principalType: 'user' }, 'principalId'],
      [{ principalType: 'user', principalId: userId, roleIds: ['x'] }, 'roleIds.0'],
      [{ principalType: 'user', principalId: userId, includeSubdepartments: 'yes' }, 'includeSubdepartments'],
      [{ principalType: 'user', principalId: userId, role: 'x' }, 'role'],
    ];
    for (const [body, field] of cases) {
      const res = await appAdmin.call('POST', `/apps/${app.id}/assignments`, body);
      expect(res.status).toBe(400);
      expect(res.body.field).toBe(field);
    }
    expect((await appAdmin.call('GET', `/apps/${app.id}/assignments/${ghost}`)).status).toBe(404);
    expect((await appAdmin.call('GET', `/users/${ghost}/entitlements?appId=${app.id}`)).status).toBe(404);
    expect((await appAdmin.call('GET', `/users/${userId}/entitlements?appId=${ghost}`)).status).toBe(404);
    expect((await appAdmin.call('GET', `/users/${userId}/entitlements?appId=nope`)).status).toBe(400);
  });
});

describe('DELETE /admin/api/v1/apps/:id', () => {
  it('deletes the app with its roles and assignments, and its credentials stop working', async () => {
    const app = await createApp({ name: 'Doomed', grantTypes: ['client_credentials'], redirectUris: [] });
    await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'r', name: 'R' });
    await appAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'user', principalId: userId, roleKeys: ['r'] });
    expect((await appAdmin.call('DELETE', `/apps/${app.id}`, undefined, { 'if-match': 'W/"9"' })).status).toBe(412);
    expect((await appAdmin.call('DELETE', `/apps/${app.id}`)).status).toBe(204);
    expect((await appAdmin.call('GET', `/apps/${app.id}`)).status).toBe(404);
    expect((await appAdmin.call('GET', `/apps/${app.id}/roles`)).status).toBe(404);
    expect((await tokenStatus(app.client_id, app.client_secret)).error).toBe('invalid_client');
  });
});

describe('audit', () => {
  it('records every app, role and assignment change with its actor, and no secret', async () => {
    const app = await createApp({ name: 'Audited' });
    await appAdmin.call('POST', `/apps/${app.id}/secret`);
    await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'r', name: 'R' });
    const a = await appAdmin.call('POST', `/apps/${app.id}/assignments`, { principalType: 'user', principalId: userId });
    await appAdmin.call('DELETE', `/apps/${app.id}/assignments/${a.body.id}`);
    await appAdmin.call('PATCH', `/apps/${app.id}`, { name: 'Audited 2' });
    const events = await superAdmin.call('GET', `/audit-events?targetType=app&targetId=${app.id}`);
    expect(events.status).toBe(200);
    const actions = (events.body.items as { action: string; actorId: string }[]).map((e) => e.action).reverse();
    expect(actions).toEqual(['app.created', 'app.secret_rotated', 'app_role.created', 'assignment.created', 'assignment.deleted', 'app.updated']);
    expect(events.body.items.every((e: { actorType: string; actorId: string }) => e.actorType === 'admin_client' && e.actorId === appAdmin.clientId)).toBe(true);
    expect(JSON.stringify(events.body)).not.toContain(app.client_secret);
    const verify = await runCli(['audit', 'verify'], env);
    expect(verify.code).toBe(0);
  });
});
