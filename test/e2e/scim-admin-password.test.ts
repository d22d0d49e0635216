// Black-box: a SCIM client may not set or change the password of a user who holds OneID admin
// roles (that would be an administrator's account in the hands of whoever holds the SCIM token),
// whether by PATCH (with or without path), PUT or /Bulk; every other attribute of such a user is
// still the client's to change, and passwords of other users work as before.
import { createTestDatabase, storedPasswordHash, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { canSignIn as signInWorks } from '../helpers/browser.ts';

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let token: string;
let portal: { client_id: string; client_secret: string };
let superAdmin: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [hr, app] = await Promise.all([
    runCli(['scim-tokens', 'create', '--name', 'HR'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
  ]);
  expect(hr.code).toBe(0);
  expect(app.code).toBe(0);
  token = hr.json.token;
  portal = app.json;
  server = await startServer(env);
  superAdmin = await adminClient(server.url, env, ['super_admin']);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

interface Reply { status: number; headers: Headers; body: any }

async function scim(method: string, path: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/scim+json', authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/scim+json';
  const res = await fetch(`${server.url}/scim/v2${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  return { status: res.status, headers: res.headers, body: parsed };
}

const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH], Operations });

function expectAdminPasswordRefused(status: string | number, body: any): void {
  expect(String(status)).toBe('403');
  expect(body).toMatchObject({ schemas: [ERROR], status: '403' });
  expect(body.detail).toMatch(/admin roles/);
  expect(body.detail).toMatch(/admin API/);
}

let seq = 0;
/** A person provisioned by SCIM with a password, then given admin roles in the admin API. */
async function provisioned(adminRoles: string[]) {
  seq += 1;
  const userName = `person${seq}@example.com`;
  const password = `hr-initial-pass-${seq}`;
  const created = await scim('POST', '/Users', {
    schemas: [CORE], userName, name: { givenName: 'Ada', familyName: `Person${seq}` }, title: 'Engineer',
    emails: [{ value: userName, type: 'work', primary: true }], password, active: true,
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  if (adminRoles.length) {
    const granted = await superAdmin.call('PATCH', `/users/${id}`, { adminRoles });
    expect(granted.status).toBe(200);
  }
  return { id, userName, password };
}

const passwordHash = (userId: string): Promise<string | undefined> => storedPasswordHash(db.url, userId);

/** The stored user (SCIM view) and password hash, to show a refused write changed nothing. */
async function snapshot(id: string) {
  const r = await scim('GET', `/Users/${id}`);
  expect(r.status).toBe(200);
  return { resource: r.body as Record<string, any>, hash: await passwordHash(id) };
}

const canSignIn = (login: string, password: string): Promise<boolean> =>
  signInWorks(server.url, { clientId: portal.client_id, redirect: REDIRECT }, login, password);

describe("SCIM and the passwords of users who hold admin roles", () => {
  it("refuses PATCH of an admin's password with a path, without a path, URN-qualified and mixed with other attributes; nothing is written and the old password still signs in", async () => {
    const admin = await provisioned(['super_admin']);
    const before = await snapshot(admin.id);
    expect(before.hash).toBeTruthy();

    const bodies = [
      patchOp({ op: 'replace', path: 'password', value: 'taken-over-pass' }),
      patchOp({ op: 'Replace', value: { password: 'taken-over-pass' } }),
      patchOp({ op: 'add', path: `${CORE}:password`, value: 'taken-over-pass' }),
      patchOp({ op: 'add', value: { [`${CORE}:password`]: 'taken-over-pass' } }),
      patchOp({ op: 'replace', value: { title: 'Changed along', password: 'taken-over-pass' } }),
      patchOp({ op: 'replace', path: 'title', value: 'Changed first' }, { op: 'replace', path: 'password', value: 'taken-over-pass' }),
    ];
    for (const body of bodies) {
      const r = await scim('PATCH', `/Users/${admin.id}`, body);
      expect(r.headers.get('content-type')).toContain('application/scim+json');
      expectAdminPasswordRefused(r.status, r.body);
    }
    expect(await snapshot(admin.id)).toEqual(before);
    expect(await canSignIn(admin.userName, admin.password)).toBe(true);
    expect(await canSignIn(admin.userName, 'taken-over-pass')).toBe(false);
  });

  it("refuses PUT with a password for a user who holds an admin role; nothing is written", async () => {
    const admin = await provisioned(['user_admin']);
    const before = await snapshot(admin.id);
    const { meta: _meta, ...resource } = before.resource;
    for (const body of [
      { ...resource, password: 'taken-over-pass' },
      { ...resource, title: 'Changed along', password: 'taken-over-pass' },
      { ...resource, [`${CORE}:password`]: 'taken-over-pass' },
    ]) {
      const r = await scim('PUT', `/Users/${admin.id}`, body);
      expectAdminPasswordRefused(r.status, r.body);
    }
    expect(await snapshot(admin.id)).toEqual(before);
  });

  it("refuses /Bulk PUT and PATCH of an admin's password per operation, while the other operations run", async () => {
    const admin = await provisioned(['auditor']);
    const plain = await provisioned([]);
    const before = await snapshot(admin.id);
    const { meta: _meta, ...resource } = before.resource;
    const r = await scim('POST', '/Bulk', {
      schemas: [BULK],
      Operations: [
        { method: 'PATCH', path: `/Users/${admin.id}`, data: patchOp({ op: 'replace', value: { password: 'taken-over-pass' } }) },
        { method: 'PUT', path: `/Users/${admin.id}`, data: { ...resource, password: 'taken-over-pass' } },
        { method: 'PATCH', path: `/Users/${admin.id}`, data: patchOp({ op: 'replace', path: 'password', value: 'taken-over-pass' }) },
        { method: 'PATCH', path: `/Users/${plain.id}`, data: patchOp({ op: 'replace', path: 'title', value: 'Bulk title' }) },
      ],
    });
    expect(r.status).toBe(200);
    const ops = r.body.Operations as { status: string; response?: any }[];
    expect(ops).toHaveLength(4);
    for (const op of ops.slice(0, 3)) expectAdminPasswordRefused(op.status, op.response);
    expect(ops[3]!.status).toBe('200');
    expect(await snapshot(admin.id)).toEqual(before);
    expect((await scim('GET', `/Users/${plain.id}`)).body.title).toBe('Bulk title');
  });

  it("still changes an admin's other attributes and deactivates and reactivates them, but never their password", async () => {
    const admin = await provisioned(['super_admin']);
    const hash = await passwordHash(admin.id);
    const refused = await scim('PATCH', `/Users/${admin.id}`, patchOp({ op: 'replace', path: 'password', value: 'taken-over-pass' }));
    expectAdminPasswordRefused(refused.status, refused.body);

    const patched = await scim('PATCH', `/Users/${admin.id}`, patchOp(
      { op: 'replace', path: 'title', value: 'Head of IT' },
      { op: 'replace', value: { 'name.familyName': 'Lovelace', displayName: 'Ada Lovelace' } },
    ));
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ title: 'Head of IT', displayName: 'Ada Lovelace', name: { familyName: 'Lovelace' } });

    const { meta: _meta, ...resource } = patched.body as Record<string, any>;
    const replaced = await scim('PUT', `/Users/${admin.id}`, { ...resource, title: 'CIO', phoneNumbers: [{ value: '+1 555 0100' }] });
    expect(replaced.status).toBe(200);
    expect(replaced.body.title).toBe('CIO');

    const deactivated = await scim('PATCH', `/Users/${admin.id}`, patchOp({ op: 'replace', value: { active: false } }));
    expect(deactivated.status).toBe(200);
    expect(deactivated.body.active).toBe(false);
    expect((await superAdmin.call('GET', `/users/${admin.id}`)).body).toMatchObject({ status: 'suspended', adminRoles: ['super_admin'] });
    const reactivated = await scim('PATCH', `/Users/${admin.id}`, patchOp({ op: 'replace', path: 'active', value: true }));
    expect(reactivated.body.active).toBe(true);

    expect(await passwordHash(admin.id)).toBe(hash);
    expect(await canSignIn(admin.userName, admin.password)).toBe(true);
  });

  it('still creates users with a password and sets passwords of users without admin roles, until they are given one', async () => {
    const person = await provisioned([]);
    expect(await canSignIn(person.userName, person.password)).toBe(true);
    const hash = await passwordHash(person.id);
    const patched = await scim('PATCH', `/Users/${person.id}`, patchOp({ op: 'replace', path: 'password', value: 'hr-second-pass' }));
    expect(patched.status).toBe(200);
    expect(await passwordHash(person.id)).not.toBe(hash);
    expect(await canSignIn(person.userName, 'hr-second-pass')).toBe(true);

    // Made an administrator in the admin API: from now on, SCIM keeps its hands off the password.
    expect((await superAdmin.call('PATCH', `/users/${person.id}`, { adminRoles: ['user_admin'] })).status).toBe(200);
    const before = await snapshot(person.id);
    const refused = await scim('PATCH', `/Users/${person.id}`, patchOp({ op: 'replace', path: 'password', value: 'hr-third-pass' }));
    expectAdminPasswordRefused(refused.status, refused.body);
    expect(await snapshot(person.id)).toEqual(before);

    // And again once the role is gone.
    expect((await superAdmin.call('PATCH', `/users/${person.id}`, { adminRoles: [] })).status).toBe(200);
    const again = await scim('PATCH', `/Users/${person.id}`, patchOp({ op: 'replace', path: 'password', value: 'hr-third-pass' }));
    expect(again.status).toBe(200);
    expect(await canSignIn(person.userName, 'hr-third-pass')).toBe(true);
  });
});
