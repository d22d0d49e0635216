// Black-box: what the admin API gained for the console's apps pages (#20): an app's sign-in start
// URL (OIDC initiate_login_uri) for the portal, total counts on the app and assignment lists,
// assignments naming their principal, and the console's own app kept from being deleted or locked.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const REDIRECT = 'https://docs.example/callback';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let appAdmin: AdminClient;
let superAdmin: AdminClient;
let userId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const user = await runCli(['users', 'create', '--username', 'hopper', '--email', 'hopper@example.com', '--password', 'compilers-first', '--name', 'Grace Hopper'], env);
  expect(user.code).toBe(0);
  userId = user.json.id;
  server = await startServer(env);
  [appAdmin, superAdmin] = await Promise.all([adminClient(server.url, env, ['app_admin']), adminClient(server.url, env, ['super_admin'])]);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('initiateLoginUri (OIDC initiate_login_uri)', () => {
  it('is kept with the app, shown, changed and cleared', async () => {
    const created = await appAdmin.call('POST', '/apps', { name: 'Launchable', redirectUris: [REDIRECT], initiateLoginUri: 'https://docs.example/login' });
    expect(created.status).toBe(201);
    expect(created.body.initiateLoginUri).toBe('https://docs.example/login');
    const id = created.body.id as string;
    expect((await appAdmin.call('GET', `/apps/${id}`)).body.initiateLoginUri).toBe('https://docs.example/login');

    const local = await appAdmin.call('PATCH', `/apps/${id}`, { initiateLoginUri: 'http://localhost:3000/start' });
    expect(local.status).toBe(200);
    expect(local.body.initiateLoginUri).toBe('http://localhost:3000/start');
    // Changing another setting keeps it.
    expect((await appAdmin.call('PATCH', `/apps/${id}`, { redirectUris: [REDIRECT, 'https://docs.example/cb2'] })).body.initiateLoginUri).toBe('http://localhost:3000/start');
    const cleared = await appAdmin.call('PATCH', `/apps/${id}`, { initiateLoginUri: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.initiateLoginUri).toBeNull();
    const plain = await appAdmin.call('POST', '/apps', { name: 'Plain', redirectUris: [REDIRECT] });
    expect(plain.body.initiateLoginUri).toBeNull();
  });

  it('refuses a URI that is not https (http only for localhost) with 400 naming the field, and changes nothing', async () => {
    for (const bad of ['http://docs.example/login', 'javascript:alert(1)', 'https://docs.example/login#x', 'https://user:pw@docs.example/', 'docs.example/login']) {
      const res = await appAdmin.call('POST', '/apps', { name: 'Bad', redirectUris: [REDIRECT], initiateLoginUri: bad });
      expect(res.status).toBe(400);
      expect(res.body.field).toBe('initiateLoginUri');
    }
    const app = await appAdmin.call('POST', '/apps', { name: 'Kept', redirectUris: [REDIRECT], initiateLoginUri: 'https://kept.example/login' });
    const refused = await appAdmin.call('PATCH', `/apps/${app.body.id}`, { initiateLoginUri: 'http://kept.example/login' });
    expect(refused.status).toBe(400);
    expect(refused.body.field).toBe('initiateLoginUri');
    const after = await appAdmin.call('GET', `/apps/${app.body.id}`);
    expect(after.body).toMatchObject({ initiateLoginUri: 'https://kept.example/login', version: 1 });
  });

  it("does not stop the app's clients from working (OneID's own setting, not oidc-provider's)", async () => {
    const app = await appAdmin.call('POST', '/apps', {
      name: 'Worker', grantTypes: ['client_credentials'], initiateLoginUri: 'http://127.0.0.1:8080/start',
    });
    expect(app.status).toBe(201);
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.body.client_id}:${app.body.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    expect(res.status).toBe(200);
  });

  it('is refused on a SAML app', async () => {
    const saml = await appAdmin.call('POST', '/apps/saml', { name: 'SAML thing', entityId: 'https://sp.example/saml', acsUrls: [{ location: 'https://sp.example/acs' }] });
    expect(saml.status).toBe(201);
    const res = await appAdmin.call('PATCH', `/apps/${saml.body.id}`, { initiateLoginUri: 'https://sp.example/start' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'app.oidc_only_field', field: 'initiateLoginUri' });
  });
});

describe('GET /admin/api/v1/apps and /apps/:id/assignments', () => {
  it('count every match over all pages', async () => {
    for (const name of ['Zeta one', 'Zeta two', 'Zeta three']) {
      expect((await appAdmin.call('POST', '/apps', { name, redirectUris: [REDIRECT] })).status).toBe(201);
    }
    const first = await appAdmin.call('GET', '/apps?q=zeta&limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    expect(first.body.total).toBe(3);
    const second = await appAdmin.call('GET', `/apps?q=zeta&limit=2&cursor=${first.body.next_cursor}`);
    expect(second.body).toMatchObject({ total: 3, next_cursor: null });
    expect(second.body.items).toHaveLength(1);
  });

  it('name the person, group or department of each assignment', async () => {
    const app = await appAdmin.call('POST', '/apps', { name: 'Named', redirectUris: [REDIRECT] });
    const id = app.body.id as string;
    const group = await superAdmin.call('POST', '/groups', { name: 'Compilers' });
    const department = await superAdmin.call('POST', '/departments', { name: 'Navy' });
    for (const [principalType, principalId] of [['user', userId], ['group', group.body.id], ['department', department.body.id]]) {
      expect((await appAdmin.call('POST', `/apps/${id}/assignments`, { principalType, principalId })).status).toBe(201);
    }
    const listed = await appAdmin.call('GET', `/apps/${id}/assignments?limit=2`);
    expect(listed.body.total).toBe(3);
    const all = await appAdmin.call('GET', `/apps/${id}/assignments`);
    expect(all.body.items.map((a: { principalType: string; principalName: string }) => [a.principalType, a.principalName])).toEqual([
      ['user', 'Grace Hopper'], ['group', 'Compilers'], ['department', 'Navy'],
    ]);
  });
});

describe("the console's own app", () => {
  it('cannot be deleted, nor have its access, admin roles or redirect URIs changed, even by a super_admin', async () => {
    const found = await superAdmin.call('GET', '/apps?clientId=oneid-console');
    expect(found.body.items).toHaveLength(1);
    const consoleApp = found.body.items[0];
    expect(consoleApp.managedByOneId).toBe(true);
    const id = consoleApp.id as string;

    const deleted = await superAdmin.call('DELETE', `/apps/${id}`);
    expect(deleted.status).toBe(412);
    expect(deleted.body.code).toBe('app.managed_by_oneid');
    for (const change of [{ access: 'assigned' }, { adminRoles: [] }, { redirectUris: ['https://evil.example/cb'] }, { postLogoutRedirectUris: [] }]) {
      const res = await superAdmin.call('PATCH', `/apps/${id}`, change);
      expect(res.status).toBe(412);
      expect(res.body).toMatchObject({ code: 'app.managed_by_oneid', field: Object.keys(change)[0] });
    }
    // An app_admin is refused before that: the app holds roles it lacks.
    expect((await appAdmin.call('DELETE', `/apps/${id}`)).status).toBe(403);

    const after = await superAdmin.call('GET', `/apps/${id}`);
    expect(after.body).toMatchObject({ access: consoleApp.access, adminRoles: consoleApp.adminRoles, redirectUris: consoleApp.redirectUris, version: consoleApp.version });
    // Its name and sign-in policy are the admins' to choose.
    const renamed = await superAdmin.call('PATCH', `/apps/${id}`, { name: 'Admin console', signInPolicy: 'mfa' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: 'Admin console', signInPolicy: 'mfa' });
    // Other apps are not managed by OneID.
    const other = await appAdmin.call('POST', '/apps', { name: 'Ordinary', redirectUris: [REDIRECT] });
    expect(other.body.managedByOneId).toBe(false);
    expect((await appAdmin.call('DELETE', `/apps/${other.body.id}`)).status).toBe(204);
  });
});
