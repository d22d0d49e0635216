// Black-box: suites in the admin API over HTTP, on a real server and database: a suite assigned to
// a department reaches its people in every member app, who may do what, bad input, OpenAPI.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const REDIRECT = 'https://crm.example/callback';

let db: TestDatabase;
let server: RunningServer;
let appAdmin: AdminClient;
let auditor: AdminClient;
let superAdmin: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  [appAdmin, auditor, superAdmin] = await Promise.all([
    adminClient(server.url, env, ['app_admin']),
    adminClient(server.url, env, ['auditor']),
    adminClient(server.url, env, ['super_admin']),
  ]);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

let n = 0;
async function ok(client: AdminClient, method: string, path: string, body?: unknown, status = method === 'POST' ? 201 : 200) {
  const res = await client.call(method, path, body);
  if (res.status !== status) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
async function newApp(roles: string[] = [], extra: Record<string, unknown> = {}, by = appAdmin): Promise<string> {
  n += 1;
  const app = await ok(by, 'POST', '/apps', { name: `App ${n}`, redirectUris: [REDIRECT], ...extra });
  for (const key of roles) await ok(by, 'POST', `/apps/${app.id}/roles`, { key });
  return app.id;
}
async function newPerson(extra: Record<string, unknown> = {}): Promise<string> {
  n += 1;
  return (await ok(superAdmin, 'POST', '/users', { username: `person${n}`, email: `person${n}@example.com`, ...extra })).id;
}
const entitlement = async (userId: string, appId: string) => ok(auditor, 'GET', `/users/${userId}/entitlements?appId=${appId}`);

describe('/admin/api/v1/suites', () => {
  it('assigns a suite to a department: its people get every member app with the mapped roles, and a later app too', async () => {
    const crm = await newApp(['crm.sales']);
    const erp = await newApp(['erp.viewer']);
    const created = await appAdmin.call('POST', '/suites', { name: 'Back office', description: 'Sales tools', iconUrl: 'https://cdn.example/bo.png', position: 2, signInPolicy: 'mfa' });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toMatch(new RegExp(`/suites/${created.body.id}$`));
    const suiteId = created.body.id as string;
    expect(created.body).toMatchObject({ name: 'Back office', iconUrl: 'https://cdn.example/bo.png', position: 2, signInPolicy: 'mfa', suiteSignout: false, apps: [], roles: [], version: 1 });

    await ok(appAdmin, 'POST', `/suites/${suiteId}/roles`, { key: 'sales', name: 'Sales' });
    await ok(appAdmin, 'PUT', `/suites/${suiteId}/apps/${crm}`, { position: 1, roleMap: { sales: ['crm.sales'] } });
    const dept = await ok(superAdmin, 'POST', '/departments', { name: 'Sales' });
    const person = await newPerson();
    await ok(superAdmin, 'POST', `/departments/${dept.id}/members`, { userId: person, primary: true }, 204);

    const assigned = await ok(appAdmin, 'POST', `/suites/${suiteId}/assignments`, { principalType: 'department', principalId: dept.id, roleKeys: ['sales'] });
    expect(assigned).toMatchObject({ suiteId, principalType: 'department', principalId: dept.id, principalName: 'Sales', roles: [{ key: 'sales' }] });
    expect(await entitlement(person, crm)).toMatchObject({ allowed: true, roles: ['crm.sales'] });
    expect((await entitlement(person, erp)).allowed).toBe(false);

    const withErp = await ok(appAdmin, 'PUT', `/suites/${suiteId}/apps/${erp}`, { roleMap: { sales: ['erp.viewer'] } });
    expect(withErp.apps.map((a: { appId: string }) => a.appId)).toEqual([erp, crm]);
    expect(withErp.apps[1]).toMatchObject({ appId: crm, protocol: 'oidc', position: 1, roleMap: { sales: ['crm.sales'] } });
    expect(await entitlement(person, erp)).toMatchObject({ allowed: true, roles: ['erp.viewer'] });
    // The suites an app is in, for its page.
    const ofErp = await ok(auditor, 'GET', `/suites?appId=${erp}`);
    expect(ofErp).toMatchObject({ total: 1, items: [{ id: suiteId }] });
    expect(await ok(auditor, 'GET', `/suites?appId=${await newApp([])}`)).toMatchObject({ total: 0, items: [] });

    // The app rows show where they come from, and cannot be changed directly.
    const rows = await ok(auditor, 'GET', `/apps/${erp}/assignments`);
    expect(rows.items).toEqual([expect.objectContaining({ principalId: dept.id, suiteId, suiteAssignmentId: assigned.id })]);
    const rowId = rows.items[0].id as string;
    for (const [method, body] of [['PATCH', { roleKeys: [] }], ['DELETE', undefined]] as const) {
      const refused = await appAdmin.call(method, `/apps/${erp}/assignments/${rowId}`, body);
      expect(refused.status).toBe(412);
      expect(refused.body).toMatchObject({ code: 'assignment.from_suite', status: 412 });
      expect(refused.body.detail).toContain('Back office');
    }
    expect((await ok(auditor, 'GET', `/apps/${erp}/assignments`)).items).toHaveLength(1);

    // Removing the suite assignment removes what it gave.
    expect((await appAdmin.call('DELETE', `/suites/${suiteId}/assignments/${assigned.id}`)).status).toBe(204);
    expect((await entitlement(person, crm)).allowed).toBe(false);
    expect((await ok(auditor, 'GET', `/apps/${erp}/assignments`)).items).toHaveLength(0);
  });

  it('lists suites in portal order with paging, and honours If-Match', async () => {
    for (const [name, position] of [['Zeta', 0], ['alpha', 0], ['Last', 9]] as const) await ok(appAdmin, 'POST', '/suites', { name: `${name} list`, position });
    const first = await ok(auditor, 'GET', '/suites?limit=2');
    expect(first.total).toBeGreaterThanOrEqual(3);
    const names: string[] = first.items.map((s: { name: string }) => s.name);
    let cursor = first.next_cursor as string | null;
    while (cursor) {
      const page = await ok(auditor, 'GET', `/suites?limit=2&cursor=${encodeURIComponent(cursor)}`);
      names.push(...page.items.map((s: { name: string }) => s.name));
      cursor = page.next_cursor;
    }
    const ours = names.filter((x) => x.endsWith(' list'));
    expect(ours).toEqual(['alpha list', 'Zeta list', 'Last list']);

    const suite = (await ok(auditor, 'GET', '/suites?limit=500')).items.find((s: { name: string }) => s.name === 'alpha list');
    const stale = await appAdmin.call('PATCH', `/suites/${suite.id}`, { position: 5 }, { 'if-match': 'W/"0"' });
    expect(stale.status).toBe(412);
    const fresh = await appAdmin.call('PATCH', `/suites/${suite.id}`, { position: 5, suiteSignout: true }, { 'if-match': `W/"${suite.version}"` });
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('etag')).toBe(`W/"${suite.version + 1}"`);
    expect(fresh.body).toMatchObject({ position: 5, suiteSignout: true });
  });

  it('answers bad input with 4xx problems and changes nothing', async () => {
    const suite = await ok(appAdmin, 'POST', '/suites', { name: 'Strict' });
    const cases: [string, string, unknown, number, string][] = [
      ['POST', '/suites', { name: 'strict' }, 409, 'suite.name_taken'],
      ['POST', '/suites', { name: 'Icon', iconUrl: 'javascript:alert(1)' }, 400, 'request.invalid'],
      ['POST', '/suites', { name: 'Extra', colour: 'red' }, 400, 'request.invalid'],
      ['POST', '/suites', { name: 'Policy', signInPolicy: 'retina' }, 400, 'request.invalid'],
      ['POST', `/suites/${suite.id}/roles`, { key: 'Not A Key', name: 'x' }, 400, 'request.invalid'],
      ['PUT', `/suites/${suite.id}/apps/00000000-0000-4000-8000-000000000000`, {}, 404, 'app.not_found'],
      ['PUT', `/suites/${suite.id}/apps/not-a-uuid`, {}, 400, 'request.invalid'],
      ['GET', '/suites/00000000-0000-4000-8000-000000000000', undefined, 404, 'suite.not_found'],
      ['GET', '/suites?cursor=bm90LWEtY3Vyc29y', undefined, 400, 'request.invalid_cursor'],
      ['POST', `/suites/${suite.id}/assignments`, { principalType: 'user', principalId: '00000000-0000-4000-8000-000000000000' }, 404, 'suite_assignment.user_not_found'],
      ['POST', `/suites/${suite.id}/assignments`, { principalType: 'team', principalId: '00000000-0000-4000-8000-000000000000' }, 400, 'request.invalid'],
      ['POST', `/suites/${suite.id}/grants`, { clientAppId: '00000000-0000-4000-8000-000000000001', audienceAppId: '00000000-0000-4000-8000-000000000002', scopes: [] }, 412, 'suite_grant.not_member'],
      ['DELETE', `/suites/${suite.id}/apps/00000000-0000-4000-8000-000000000000`, undefined, 404, 'suite_app.not_found'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const res = await appAdmin.call(method, path, body);
      expect([method, path, res.status, res.body?.code]).toEqual([method, path, status, code]);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(JSON.stringify(res.body)).not.toMatch(/select |insert |stack/i);
    }
    const suspended = await newPerson({ status: 'suspended' });
    const refused = await appAdmin.call('POST', `/suites/${suite.id}/assignments`, { principalType: 'user', principalId: suspended });
    expect([refused.status, refused.body.code]).toEqual([412, 'suite_assignment.user_not_active']);
    expect(await ok(auditor, 'GET', `/suites/${suite.id}`)).toMatchObject({ version: 1, apps: [], roles: [] });
    expect((await ok(auditor, 'GET', `/suites/${suite.id}/assignments`)).total).toBe(0);
  });

  it('manages grants: the admin approves once, changes and revokes', async () => {
    const client = await newApp();
    const api = await newApp(['api.read']);
    const spa = await newApp([], { public: true });
    const suite = await ok(appAdmin, 'POST', '/suites', { name: 'Grants' });
    for (const id of [client, api, spa]) await ok(appAdmin, 'PUT', `/suites/${suite.id}/apps/${id}`, {});
    const grant = await ok(appAdmin, 'POST', `/suites/${suite.id}/grants`, { clientAppId: client, audienceAppId: api, scopes: ['orders:read'], roles: ['api.read'], minSignInPolicy: 'mfa', maxAgeSeconds: 600 });
    expect(grant).toMatchObject({ suiteId: suite.id, clientAppId: client, audienceAppId: api, scopes: ['orders:read'], roles: ['api.read'], minSignInPolicy: 'mfa', maxAgeSeconds: 600 });
    const publicClient = await appAdmin.call('POST', `/suites/${suite.id}/grants`, { clientAppId: spa, audienceAppId: api, scopes: [] });
    expect([publicClient.status, publicClient.body.code]).toEqual([412, 'suite_grant.client_public']);
    const badRole = await appAdmin.call('POST', `/suites/${suite.id}/grants`, { clientAppId: api, audienceAppId: client, scopes: [], roles: ['api.read'] });
    expect([badRole.status, badRole.body.code]).toEqual([404, 'app_role.not_found']);
    const badScope = await appAdmin.call('POST', `/suites/${suite.id}/grants`, { clientAppId: api, audienceAppId: client, scopes: ['a b'] });
    expect([badScope.status, badScope.body.field]).toEqual([400, 'scopes.0']);

    expect(await ok(appAdmin, 'PATCH', `/suites/${suite.id}/grants/${grant.id}`, { roles: null, maxAgeSeconds: null })).toMatchObject({ roles: null, maxAgeSeconds: null });
    expect((await ok(auditor, 'GET', `/suites/${suite.id}/grants`)).items).toHaveLength(1);
    expect((await appAdmin.call('DELETE', `/suites/${suite.id}/grants/${grant.id}`)).status).toBe(204);
    expect((await auditor.call('GET', `/suites/${suite.id}/grants/${grant.id}`)).status).toBe(404);
    const audit = await ok(auditor, 'GET', `/audit-events?action=suite_grant.*&targetType=suite&targetId=${suite.id}&limit=100`);
    expect(audit.items.map((e: { action: string }) => e.action).sort()).toEqual(['suite_grant.created', 'suite_grant.deleted', 'suite_grant.updated']);
  });

  it('lets auditors read but not write, and keeps an app_admin off apps holding roles they lack', async () => {
    const suite = await ok(appAdmin, 'POST', '/suites', { name: 'Perms' });
    expect((await auditor.call('GET', `/suites/${suite.id}`)).status).toBe(200);
    expect((await auditor.call('GET', '/suites')).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/suites', { name: 'Auditor suite' }],
      ['PATCH', `/suites/${suite.id}`, { name: 'Renamed' }],
      ['POST', `/suites/${suite.id}/roles`, { key: 'r', name: 'R' }],
      ['DELETE', `/suites/${suite.id}`, undefined],
    ] as const) {
      const res = await auditor.call(method, path, body);
      expect([method, path, res.status, res.body.code]).toEqual([method, path, 403, 'admin.forbidden']);
    }

    // An app holding user_admin is out of an app_admin's reach, through a suite too.
    const powerful = await newApp([], { adminRoles: ['user_admin'] }, superAdmin);
    const refused = await appAdmin.call('PUT', `/suites/${suite.id}/apps/${powerful}`, {});
    expect([refused.status, refused.body.code]).toEqual([403, 'app.admin_roles_forbidden']);
    await ok(superAdmin, 'PUT', `/suites/${suite.id}/apps/${powerful}`, {});
    const person = await newPerson();
    const viaSuite = await appAdmin.call('POST', `/suites/${suite.id}/assignments`, { principalType: 'user', principalId: person });
    expect([viaSuite.status, viaSuite.body.code]).toEqual([403, 'app.admin_roles_forbidden']);
    expect((await entitlement(person, powerful)).allowed).toBe(false);
    expect((await ok(auditor, 'GET', `/suites/${suite.id}`)).name).toBe('Perms');
  });

  it("shows each app the suite sign-in policy in force, read-only", async () => {
    const app = await newApp();
    const suite = await ok(appAdmin, 'POST', '/suites', { name: 'Policy suite', signInPolicy: 'phishing_resistant' });
    await ok(appAdmin, 'PUT', `/suites/${suite.id}/apps/${app}`, {});
    const shown = await ok(auditor, 'GET', `/apps/${app}`);
    expect(shown).toMatchObject({ signInPolicy: null, suiteSignInPolicy: 'phishing_resistant', version: 1 });
    const readOnly = await appAdmin.call('PATCH', `/apps/${app}`, { suiteSignInPolicy: null });
    expect([readOnly.status, readOnly.body.field]).toEqual([400, 'suiteSignInPolicy']);
    await ok(appAdmin, 'PATCH', `/suites/${suite.id}`, { signInPolicy: null });
    expect((await ok(auditor, 'GET', `/apps/${app}`)).suiteSignInPolicy).toBeNull();
  });

  it('keeps apps\' API audience and authorization server, unique and well-formed', async () => {
    const created = await ok(appAdmin, 'POST', '/apps', {
      name: 'CRM API', redirectUris: [REDIRECT], apiAudience: 'https://crm.example/api', authorizationServer: 'https://as.crm.example',
    });
    expect(created).toMatchObject({ apiAudience: 'https://crm.example/api', authorizationServer: 'https://as.crm.example' });
    const taken = await appAdmin.call('POST', '/apps', { name: 'Other', redirectUris: [REDIRECT], apiAudience: 'https://crm.example/api' });
    expect([taken.status, taken.body.code, taken.body.field]).toEqual([409, 'app.api_audience_taken', 'apiAudience']);
    for (const [field, value] of <[string, string][]>[['apiAudience', 'crm-api'], ['apiAudience', 'https://crm.example/api#x'], ['authorizationServer', 'http://as.example'], ['authorizationServer', 'https://as.example/?q=1']]) {
      const bad = await appAdmin.call('PATCH', `/apps/${created.id}`, { [field]: value });
      expect([value, bad.status, bad.body.field]).toEqual([value, 400, field]);
    }
    const local = await ok(appAdmin, 'PATCH', `/apps/${created.id}`, { authorizationServer: 'http://127.0.0.1:9999', apiAudience: 'http://crm.internal/api' });
    expect(local).toMatchObject({ authorizationServer: 'http://127.0.0.1:9999', apiAudience: 'http://crm.internal/api' });
    const other = await newApp();
    const clash = await appAdmin.call('PATCH', `/apps/${other}`, { apiAudience: 'http://crm.internal/api' });
    expect([clash.status, clash.body.code]).toEqual([409, 'app.api_audience_taken']);
    expect(await ok(appAdmin, 'PATCH', `/apps/${created.id}`, { apiAudience: null, authorizationServer: null })).toMatchObject({ apiAudience: null, authorizationServer: null });

    const saml = await ok(appAdmin, 'POST', '/apps/saml', {
      name: 'SAML API', entityId: 'https://sp.example/saml', acsUrls: [{ location: 'https://sp.example/acs' }], apiAudience: 'https://sp.example/api',
    });
    expect(saml.apiAudience).toBe('https://sp.example/api');
    expect((await ok(appAdmin, 'PATCH', `/apps/${saml.id}/saml`, { authorizationServer: 'https://as.sp.example' })).authorizationServer).toBe('https://as.sp.example');
  });

  it('documents every suite route in OpenAPI', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as { paths: Record<string, Record<string, { description: string; requestBody?: unknown }>> };
    const expected: [string, string[]][] = [
      ['/suites', ['get', 'post']],
      ['/suites/{id}', ['get', 'patch', 'delete']],
      ['/suites/{id}/apps/{appId}', ['put', 'delete']],
      ['/suites/{id}/roles', ['post']],
      ['/suites/{id}/roles/{roleId}', ['patch', 'delete']],
      ['/suites/{id}/assignments', ['get', 'post']],
      ['/suites/{id}/assignments/{assignmentId}', ['get', 'patch', 'delete']],
      ['/suites/{id}/grants', ['get', 'post']],
      ['/suites/{id}/grants/{grantId}', ['get', 'patch', 'delete']],
    ];
    for (const [path, methods] of expected) expect(Object.keys(doc.paths[path] ?? {}).sort()).toEqual([...methods].sort());
    expect(doc.paths['/suites']!.post!.description).toBe('Roles: super_admin, app_admin');
    expect(doc.paths['/suites']!.get!.description).toBe('Roles: super_admin, app_admin, auditor');
    expect(JSON.stringify(doc.paths['/suites/{id}/apps/{appId}']!.put!.requestBody)).toContain('roleMap');
    const appsPost = JSON.stringify(doc.paths['/apps']!.post!.requestBody);
    expect(appsPost).toContain('apiAudience');
    expect(appsPost).toContain('authorizationServer');
    expect(JSON.stringify(doc.paths['/apps/{id}']!.get)).toContain('suiteSignInPolicy');
  });
});
