// Black-box: departments and groups through the admin API (bearer tokens from OneID itself)
// and the `oneid` CLI, against a server listening on a port.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const UNKNOWN = '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f';

let database: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let auditor: AdminClient;
let appAdmin: AdminClient;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_admin_directory');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  [admin, auditor, appAdmin] = await Promise.all([
    adminClient(server.url, env, ['user_admin']),
    adminClient(server.url, env, ['auditor']),
    adminClient(server.url, env, ['app_admin']),
  ]);
}, 120000);

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

let n = 0;
async function createUser(): Promise<{ id: string; username: string }> {
  n += 1;
  const res = await admin.call('POST', '/users', { username: `person${n}`, email: `person${n}@example.com` });
  expect(res.status).toBe(201);
  return res.body;
}

async function createDepartment(name: string, parentId?: string): Promise<{ id: string; path: string; version: number }> {
  const res = await admin.call('POST', '/departments', { name, ...(parentId ? { parentId } : {}) });
  expect(res.status).toBe(201);
  return res.body;
}

const auditActions = async (targetType: string, targetId: string): Promise<{ action: string; actorType: string; actorId: string }[]> => {
  const res = await auditor.call('GET', `/audit-events?targetType=${targetType}&targetId=${targetId}&limit=100`);
  expect(res.status).toBe(200);
  return [...res.body.items].reverse();
};

describe('authentication and roles', () => {
  it('returns 401 without a token', async () => {
    for (const [method, path] of [['GET', '/departments'], ['POST', '/departments'], ['GET', '/groups'], ['POST', '/groups']]) {
      const res = await fetch(`${server.url}/admin/api/v1${path}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{"name":"x"}' : undefined });
      expect(res.status).toBe(401);
    }
    expect(await fetch(`${server.url}/admin/api/v1/groups`, { headers: { authorization: 'Bearer not.a.token' } }).then((r) => r.status)).toBe(401);
  });

  it('lets an auditor and an app admin read, and refuses their writes with 403', async () => {
    const d = await createDepartment('Readable');
    const g = (await admin.call('POST', '/groups', { name: 'Readable group' })).body;
    const u = await createUser();
    for (const reader of [auditor, appAdmin]) {
      expect((await reader.call('GET', '/departments')).status).toBe(200);
      expect((await reader.call('GET', `/departments/${d.id}/members?recursive=true`)).status).toBe(200);
      expect((await reader.call('GET', `/groups/${g.id}`)).status).toBe(200);
      const writes: [string, string, unknown?][] = [
        ['POST', '/departments', { name: 'Nope' }],
        ['PATCH', `/departments/${d.id}`, { name: 'Nope' }],
        ['DELETE', `/departments/${d.id}`],
        ['POST', `/departments/${d.id}/members`, { userId: u.id }],
        ['POST', '/groups', { name: 'Nope' }],
        ['PATCH', `/groups/${g.id}`, { name: 'Nope' }],
        ['DELETE', `/groups/${g.id}`],
        ['POST', `/groups/${g.id}/members`, { userId: u.id }],
        ['DELETE', `/groups/${g.id}/members/${u.id}`],
      ];
      for (const [method, path, body] of writes) {
        const res = await reader.call(method, path, body);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 403 });
        expect(res.body).toMatchObject({ status: 403, code: 'admin.forbidden' });
      }
    }
    expect((await admin.call('GET', `/departments/${d.id}`)).body.name).toBe('Readable');
    expect((await admin.call('GET', `/groups/${g.id}/members`)).body.items).toEqual([]);
  });
});

describe('departments API', () => {
  it('creates a department: 201, Location, ETag and the resource', async () => {
    const res = await admin.call('POST', '/departments', { name: 'Engineering', externalId: 'HR-ENG' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'Engineering', parentId: null, depth: 0, managerId: null, externalId: 'HR-ENG', version: 1 });
    expect(res.body.path).toBe(`/${res.body.id}/`);
    expect(res.headers.get('location')).toBe(`/admin/api/v1/departments/${res.body.id}`);
    expect(res.headers.get('etag')).toBe('W/"1"');
    const got = await admin.call('GET', `/departments/${res.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
    expect(got.headers.get('etag')).toBe('W/"1"');
  });

  it('returns 400 naming the field for bad bodies, queries and ids, never 500', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/departments', { name: 'X', colour: 'blue' }, 'colour'],
      ['POST', '/departments', { name: '' }, 'name'],
      ['POST', '/departments', { name: 'X', parentId: 'not-a-uuid' }, 'parentId'],
      ['POST', '/departments', { name: 'X', parentId: UNKNOWN }, 'parentId'],
      ['POST', '/departments', { name: 'X', managerId: UNKNOWN }, 'managerId'],
      ['POST', '/departments', ['not', 'an', 'object'], 'body'],
      ['PATCH', `/departments/${UNKNOWN}`, { parent: null }, 'parent'],
      ['GET', '/departments/not-a-uuid', undefined, 'id'],
      ['GET', '/departments?parentId=nope', undefined, 'parentId'],
      ['GET', '/departments?limit=0', undefined, 'limit'],
      ['GET', '/departments?cursor=garbage', undefined, 'cursor'],
      ['GET', `/departments?cursor=${Buffer.from('["x","not-a-uuid"]').toString('base64url')}`, undefined, 'cursor'],
      ['GET', `/departments/${UNKNOWN}/members?recursive=yes`, undefined, 'recursive'],
      ['GET', `/departments/${UNKNOWN}/descendants?cursor=${Buffer.from('["/x/"]').toString('base64url')}`, undefined, 'cursor'],
      ['POST', `/departments/${UNKNOWN}/members`, { userId: 'x' }, 'userId'],
      ['POST', `/departments/${UNKNOWN}/members`, { userId: UNKNOWN, role: 'boss' }, 'role'],
      ['DELETE', `/departments/${UNKNOWN}/members/not-a-uuid`, undefined, 'userId'],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await admin.call(method, path, body);
      expect({ method, path, status: res.status, field: res.body?.field }).toEqual({ method, path, status: 400, field });
    }
    const raw = await fetch(`${server.url}/admin/api/v1/departments`, {
      method: 'POST', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' }, body: '{"name": ',
    });
    expect(raw.status).toBe(400);
  });

  it('returns 409 department.name_taken for a sibling with the same name in another case', async () => {
    const parent = await createDepartment('Sales');
    await createDepartment('EMEA', parent.id);
    const res = await admin.call('POST', '/departments', { name: 'emea', parentId: parent.id });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'department.name_taken', field: 'name' });
  });

  it('returns 404 for an unknown department id', async () => {
    for (const [method, path, body] of [
      ['GET', `/departments/${UNKNOWN}`], ['PATCH', `/departments/${UNKNOWN}`, { name: 'x' }], ['DELETE', `/departments/${UNKNOWN}`],
      ['GET', `/departments/${UNKNOWN}/members`], ['GET', `/departments/${UNKNOWN}/descendants`],
    ] as [string, string, unknown?][]) {
      const res = await admin.call(method, path, body);
      expect({ method, path, status: res.status }).toEqual({ method, path, status: 404 });
      expect(res.body.code).toBe('department.not_found');
    }
  });

  it('updates with If-Match: 200 and a new ETag with the current version, 412 with a stale one', async () => {
    const d = await createDepartment('Support');
    const ok = await admin.call('PATCH', `/departments/${d.id}`, { name: 'Customer Support' }, { 'if-match': 'W/"1"' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ name: 'Customer Support', version: 2 });
    expect(ok.headers.get('etag')).toBe('W/"2"');
    const stale = await admin.call('PATCH', `/departments/${d.id}`, { name: 'Stale' }, { 'if-match': 'W/"1"' });
    expect(stale.status).toBe(412);
    expect(stale.body.code).toBe('department.version_mismatch');
    expect((await admin.call('DELETE', `/departments/${d.id}`, undefined, { 'if-match': '"1"' })).status).toBe(412);
    expect((await admin.call('GET', `/departments/${d.id}`)).body.name).toBe('Customer Support');
  });

  it('moves a subtree with PATCH parentId, refuses cycles, and lists descendants', async () => {
    const a = await createDepartment('Move A');
    const b = await createDepartment('Move B', a.id);
    const c = await createDepartment('Move C', b.id);
    const x = await createDepartment('Move X');

    const cycle = await admin.call('PATCH', `/departments/${a.id}`, { parentId: c.id });
    expect(cycle.status).toBe(400);
    expect(cycle.body).toMatchObject({ code: 'department.move_cycle', field: 'parentId' });
    expect((await admin.call('PATCH', `/departments/${a.id}`, { parentId: a.id })).body.code).toBe('department.move_cycle');

    const moved = await admin.call('PATCH', `/departments/${b.id}`, { parentId: x.id });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ parentId: x.id, path: `/${x.id}/${b.id}/`, depth: 1 });
    const below = await admin.call('GET', `/departments/${x.id}/descendants`);
    expect(below.status).toBe(200);
    expect(below.body.items.map((d: { id: string; path: string; depth: number }) => [d.id, d.path, d.depth])).toEqual([
      [b.id, `/${x.id}/${b.id}/`, 1], [c.id, `/${x.id}/${b.id}/${c.id}/`, 2],
    ]);
    expect((await admin.call('GET', `/departments/${a.id}/descendants`)).body.items).toEqual([]);

    const toTop = await admin.call('PATCH', `/departments/${c.id}`, { parentId: null });
    expect(toTop.body).toMatchObject({ parentId: null, path: `/${c.id}/`, depth: 0 });
    const actions = (await auditActions('department', b.id)).map((e) => e.action);
    expect(actions).toEqual(['department.created', 'department.moved']);
  });

  it('lists departments filtered and paged in SQL', async () => {
    const top = await createDepartment('Paging top');
    for (const name of ['Alpha', 'beta', 'Gamma']) await createDepartment(name, top.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await admin.call('GET', `/departments?parentId=${top.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((d: { name: string }) => d.name));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(['Alpha', 'beta', 'Gamma']);
    expect((await admin.call('GET', '/departments?q=PAGING')).body.items.map((d: { id: string }) => d.id)).toEqual([top.id]);
    expect((await admin.call('GET', '/departments?name=paging%20TOP')).body.items).toHaveLength(1);
    const roots = (await admin.call('GET', '/departments?parentId=root&limit=500')).body.items;
    expect(roots.every((d: { parentId: string | null }) => d.parentId === null)).toBe(true);
    expect(roots.map((d: { id: string }) => d.id)).toContain(top.id);
  });

  it('manages members: primary replaces primary, recursive listing, idempotent adds, 404 for unknown users', async () => {
    const org = await createDepartment('Org');
    const team = await createDepartment('Team', org.id);
    const ada = await createUser();
    const bob = await createUser();

    expect((await admin.call('POST', `/departments/${org.id}/members`, { userId: ada.id, primary: true })).status).toBe(204);
    expect((await admin.call('POST', `/departments/${team.id}/members`, { userId: ada.id, primary: true })).status).toBe(204);
    expect((await admin.call('POST', `/departments/${team.id}/members`, { userId: ada.id, primary: true })).status).toBe(204);
    expect((await admin.call('POST', `/departments/${team.id}/members`, { userId: bob.id })).status).toBe(204);
    const unknown = await admin.call('POST', `/departments/${team.id}/members`, { userId: UNKNOWN });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 'user.not_found', field: 'userId' });

    const direct = await admin.call('GET', `/departments/${org.id}/members`);
    expect(direct.body.items.map((m: { id: string; primary: boolean }) => [m.id, m.primary])).toEqual([[ada.id, false]]);
    const all = await admin.call('GET', `/departments/${org.id}/members?recursive=true`);
    expect(new Map(all.body.items.map((m: { id: string; primary: boolean }) => [m.id, m.primary]))).toEqual(new Map([[ada.id, true], [bob.id, false]]));
    expect(all.body.items[0]).toMatchObject({ username: expect.any(String), status: 'active' });
    // The users list agrees.
    const viaUsers = await admin.call('GET', `/users?departmentId=${org.id}&recursive=true`);
    expect(viaUsers.body.items.map((u: { id: string }) => u.id).sort()).toEqual([ada.id, bob.id].sort());

    const blocked = await admin.call('DELETE', `/departments/${org.id}`);
    expect(blocked.status).toBe(409);
    expect(blocked.body).toMatchObject({ code: 'department.not_empty', detail: 'the department still has 1 person and 1 sub-department; move or remove them first' });

    expect((await admin.call('DELETE', `/departments/${team.id}/members/${ada.id}`)).status).toBe(204);
    expect((await admin.call('DELETE', `/departments/${team.id}/members/${ada.id}`)).status).toBe(404);
    expect((await admin.call('DELETE', `/departments/${team.id}/members/${bob.id}`)).status).toBe(204);
    expect((await admin.call('DELETE', `/departments/${team.id}`)).status).toBe(204);
    expect((await admin.call('GET', `/departments/${team.id}`)).status).toBe(404);
    expect((await admin.call('DELETE', `/departments/${org.id}/members/${ada.id}`)).status).toBe(204);
    expect((await admin.call('DELETE', `/departments/${org.id}`)).status).toBe(204);

    const events = await auditActions('department', team.id);
    expect(events.map((e) => e.action)).toEqual([
      'department.created', 'department.member_added', 'department.member_added', 'department.member_removed', 'department.member_removed', 'department.deleted',
    ]);
    expect(events.every((e) => e.actorType === 'admin_client' && e.actorId === admin.clientId)).toBe(true);
  });
});

describe('groups API', () => {
  it('creates (201), refuses duplicates (409 group.name_taken) and unknown fields (400)', async () => {
    const res = await admin.call('POST', '/groups', { name: 'Engineers', description: 'People who ship' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'Engineers', description: 'People who ship', externalId: null, version: 1 });
    expect(res.headers.get('etag')).toBe('W/"1"');
    expect(res.headers.get('location')).toBe(`/admin/api/v1/groups/${res.body.id}`);
    const dup = await admin.call('POST', '/groups', { name: 'ENGINEERS' });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ code: 'group.name_taken', field: 'name' });
    const unknownField = await admin.call('POST', '/groups', { name: 'X', members: [] });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body).toMatchObject({ field: 'members' });
    expect((await admin.call('GET', `/groups/${UNKNOWN}`)).status).toBe(404);
    expect((await admin.call('GET', '/groups/not-a-uuid')).status).toBe(400);
  });

  it('adds and removes members one at a time; the ETag changes with membership', async () => {
    const g = (await admin.call('POST', '/groups', { name: 'Oncall' })).body;
    const u1 = await createUser();
    const u2 = await createUser();
    expect((await admin.call('POST', `/groups/${g.id}/members`, { userId: u1.id })).status).toBe(204);
    expect((await admin.call('POST', `/groups/${g.id}/members`, { userId: u1.id })).status).toBe(204);
    expect((await admin.call('POST', `/groups/${g.id}/members`, { userId: u2.id })).status).toBe(204);
    const missing = await admin.call('POST', `/groups/${g.id}/members`, { userId: UNKNOWN });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ code: 'user.not_found', field: 'userId' });
    expect((await admin.call('POST', `/groups/${UNKNOWN}/members`, { userId: u1.id })).status).toBe(404);
    expect((await admin.call('POST', `/groups/${g.id}/members`, { userId: u1.id, admin: true })).body).toMatchObject({ field: 'admin' });

    const after = await admin.call('GET', `/groups/${g.id}`);
    expect(after.headers.get('etag')).toBe('W/"3"');
    const members = await admin.call('GET', `/groups/${g.id}/members?limit=1`);
    expect(members.body.items).toHaveLength(1);
    const next = await admin.call('GET', `/groups/${g.id}/members?limit=1&cursor=${members.body.next_cursor}`);
    expect([members.body.items[0].id, next.body.items[0].id]).toEqual([u1.id, u2.id].sort());
    expect(next.body.next_cursor).toBeNull();
    expect((await admin.call('GET', `/groups?memberId=${u2.id}`)).body.items.map((x: { id: string }) => x.id)).toEqual([g.id]);
    expect((await admin.call('GET', `/users?groupId=${g.id}`)).body.items).toHaveLength(2);

    expect((await admin.call('DELETE', `/groups/${g.id}/members/${u1.id}`)).status).toBe(204);
    const again = await admin.call('DELETE', `/groups/${g.id}/members/${u1.id}`);
    expect(again.status).toBe(404);
    expect(again.body.code).toBe('group.member_not_found');
    expect((await admin.call('GET', `/groups/${g.id}/members`)).body.items.map((x: { id: string }) => x.id)).toEqual([u2.id]);
    expect((await admin.call('GET', `/groups/${g.id}`)).headers.get('etag')).toBe('W/"4"');

    expect((await auditActions('group', g.id)).map((e) => e.action)).toEqual([
      'group.created', 'group.member_added', 'group.member_added', 'group.member_removed',
    ]);
  });

  it('updates with If-Match (412 when stale) and deletes (204, then 404)', async () => {
    const g = (await admin.call('POST', '/groups', { name: 'Temp' })).body;
    const ok = await admin.call('PATCH', `/groups/${g.id}`, { description: 'short-lived' }, { 'if-match': 'W/"1"' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('W/"2"');
    expect((await admin.call('PATCH', `/groups/${g.id}`, { name: 'Stale' }, { 'if-match': 'W/"1"' })).status).toBe(412);
    expect((await admin.call('PATCH', `/groups/${g.id}`, { name: 'x' }, { 'if-match': 'three' })).status).toBe(400);
    expect((await admin.call('PATCH', `/groups/${g.id}`, { name: 'engineers' })).status).toBe(409);
    expect((await admin.call('DELETE', `/groups/${g.id}`)).status).toBe(204);
    expect((await admin.call('GET', `/groups/${g.id}`)).status).toBe(404);
    expect((await admin.call('DELETE', `/groups/${g.id}`)).status).toBe(404);
    expect((await auditActions('group', g.id)).map((e) => e.action)).toEqual(['group.created', 'group.updated', 'group.deleted']);
  });

  it('lists groups by name with cursor paging', async () => {
    for (const name of ['team-a', 'Team-B', 'team-c']) expect((await admin.call('POST', '/groups', { name })).status).toBe(201);
    const first = await admin.call('GET', '/groups?q=team-&limit=2');
    const second = await admin.call('GET', `/groups?q=team-&limit=2&cursor=${first.body.next_cursor}`);
    expect([...first.body.items, ...second.body.items].map((g: { name: string }) => g.name)).toEqual(['team-a', 'Team-B', 'team-c']);
    expect(second.body.next_cursor).toBeNull();
  });

  it('documents the routes in the OpenAPI document', async () => {
    const doc = await fetch(`${server.url}/admin/api/v1/openapi.json`).then((r) => r.json()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/departments/{id}']!)).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
    expect(doc.paths['/departments/{id}/members/{userId}']).toHaveProperty('delete');
    expect(doc.paths['/groups/{id}/members']).toHaveProperty('post');
  });
});

describe('oneid CLI', () => {
  // Each command is a fresh process (about 3 s each, more on a busy machine).
  const CLI_TIMEOUT = 180000;
  const cli = async (...args: string[]) => {
    const res = await runCli(args, env);
    expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
    return res.json;
  };

  it('creates, lists and moves departments and adds members, printing JSON', async () => {
    const hq = await cli('departments', 'create', '--name', 'CLI HQ');
    expect(hq).toMatchObject({ name: 'CLI HQ', parentId: null, depth: 0 });
    const [ops, lab] = await Promise.all([
      cli('departments', 'create', '--name', 'CLI Ops', '--parent', hq.id),
      cli('departments', 'create', '--name', 'CLI Lab'),
    ]);
    expect(ops).toMatchObject({ parentId: hq.id, path: `/${hq.id}/${ops.id}/`, depth: 1 });
    const [children, everything] = await Promise.all([cli('departments', 'list', '--parent', hq.id), cli('departments', 'list')]);
    expect(children.items.map((d: { id: string }) => d.id)).toEqual([ops.id]);
    expect(everything.items.map((d: { id: string }) => d.id)).toEqual(expect.arrayContaining([hq.id, ops.id, lab.id]));

    const moved = await cli('departments', 'move', '--id', ops.id, '--parent', lab.id);
    expect(moved).toMatchObject({ parentId: lab.id, path: `/${lab.id}/${ops.id}/` });
    expect(await cli('departments', 'move', '--id', ops.id, '--root')).toMatchObject({ parentId: null, depth: 0 });

    const user = await createUser();
    expect(await cli('departments', 'add-member', '--id', ops.id, '--user', user.id, '--primary')).toMatchObject({ departmentId: ops.id, userId: user.id, primary: true, changed: true });
    const members = await admin.call('GET', `/departments/${ops.id}/members`);
    expect(members.body.items.map((m: { id: string; primary: boolean }) => [m.id, m.primary])).toEqual([[user.id, true]]);

    const events = await auditActions('department', ops.id);
    expect(events.map((e) => e.action)).toEqual(['department.created', 'department.moved', 'department.moved', 'department.member_added']);
    expect(events.every((e) => e.actorType === 'system' && e.actorId.startsWith('cli'))).toBe(true);
  }, CLI_TIMEOUT);

  it('creates and lists groups and adds and removes members', async () => {
    const g = await cli('groups', 'create', '--name', 'CLI group', '--description', 'made by a script');
    expect(g).toMatchObject({ name: 'CLI group', description: 'made by a script', version: 1 });
    expect((await cli('groups', 'list')).items.map((x: { id: string }) => x.id)).toContain(g.id);
    const user = await createUser();
    expect(await cli('groups', 'add-member', '--id', g.id, '--user', user.id)).toEqual({ groupId: g.id, userId: user.id, changed: true });
    expect((await admin.call('GET', `/groups/${g.id}/members`)).body.items.map((u: { id: string }) => u.id)).toEqual([user.id]);
    expect(await cli('groups', 'remove-member', '--id', g.id, '--user', user.id)).toEqual({ groupId: g.id, userId: user.id, removed: true });
    expect((await admin.call('GET', `/groups/${g.id}/members`)).body.items).toEqual([]);
    const events = await auditActions('group', g.id);
    expect(events.map((e) => e.action)).toEqual(['group.created', 'group.member_added', 'group.member_removed']);
    expect(events.every((e) => e.actorType === 'system' && e.actorId.startsWith('cli'))).toBe(true);
  }, CLI_TIMEOUT);

  it('exits non-zero with a one-line reason for bad input', async () => {
    const [duplicate, unknown, badId, usage, unknownFlag] = await Promise.all([
      runCli(['groups', 'create', '--name', 'cli GROUP'], env),
      runCli(['departments', 'move', '--id', UNKNOWN, '--root'], env),
      runCli(['groups', 'add-member', '--id', 'nope', '--user', UNKNOWN], env),
      runCli(['departments', 'move', '--id', UNKNOWN], env),
      runCli(['departments', 'create', '--name', 'X', '--colour', 'blue'], env),
    ]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/^oneid: --name: a group with this name already exists\n$/);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no department with this id');
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('--id must be an id');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--parent ID or --root');
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain('unknown option --colour');
  }, CLI_TIMEOUT);
});

describe('sign-in names in the admin API and the CLI', () => {
  it('refuses a username that is another person\'s email and an email that is another\'s username (409, stable codes)', async () => {
    const owner = await admin.call('POST', '/users', { username: 'ns.admin.owner', email: 'ns.admin.owner@example.com' });
    expect(owner.status).toBe(201);
    const other = await admin.call('POST', '/users', { username: 'ns.admin.other' });
    expect(other.status).toBe(201);
    const username = await admin.call('POST', '/users', { username: 'NS.Admin.Owner@example.com' });
    expect(username.status).toBe(409);
    expect(username.body).toMatchObject({ code: 'user.username_taken', field: 'username' });
    const renamed = await admin.call('PATCH', `/users/${other.body.id}`, { username: 'ns.admin.owner@example.com' });
    expect(renamed.status).toBe(409);
    expect(renamed.body).toMatchObject({ code: 'user.username_taken' });
    const email = await admin.call('PATCH', `/users/${other.body.id}`, { email: 'ns.admin.owner@example.com' });
    expect(email.status).toBe(409);
    expect(email.body).toMatchObject({ code: 'user.email_taken', field: 'email' });
    // A person's own username and email may be the same name.
    const self = await admin.call('POST', '/users', { username: 'ns.admin.self@example.com', email: 'ＮＳ.Admin.Self@example.com' });
    expect(self.status).toBe(201);
    expect(self.body).toMatchObject({ username: 'ns.admin.self@example.com', email: 'ns.admin.self@example.com' });
    const list = await admin.call('POST', '/users', { username: 'ns.admin.fourth', emails: [{ value: 'ns.admin.owner@example.com', primary: true }] });
    expect(list.status).toBe(409);
    expect(list.body).toMatchObject({ code: 'user.email_taken' });
    expect((await admin.call('GET', `/users/${other.body.id}`)).body.username).toBe('ns.admin.other');
  });

  it('refuses the same over the CLI, with a message and no SQL', async () => {
    expect((await admin.call('POST', '/users', { username: 'cli.owner', email: 'cli.owner@example.com' })).status).toBe(201);
    const res = await runCli(['users', 'create', '--username', 'CLI.Owner@example.com', '--email', 'cli.thief@example.com', '--password', 'cli-thief-password'], env);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/username/);
    expect(res.stderr).not.toMatch(/sign_in_names|insert into|select /i);
    expect((await admin.call('GET', '/users?email=cli.thief@example.com')).body.items).toEqual([]);
  });

  it('searches usernames and emails by the folding rule of sign-in (NFKC, not the database\'s lower())', async () => {
    const alice = await admin.call('POST', '/users', { username: 'alice.admin', email: 'alice.admin@example.com' });
    const dotted = await admin.call('POST', '/users', { username: 'ALİCE.admin' });
    expect([alice.status, dotted.status]).toEqual([201, 201]);
    const ids = async (query: string): Promise<string[]> => (await admin.call('GET', `/users?${query}`)).body.items.map((u: { id: string }) => u.id);
    expect(await ids(`username=${encodeURIComponent('ALİCE.admin')}`)).toEqual([dotted.body.id]);
    expect(await ids(`username=${encodeURIComponent('ＡＬＩＣＥ.admin')}`)).toEqual([alice.body.id]);
    expect(await ids(`q=${encodeURIComponent('ALİCE.ad')}`)).toEqual([dotted.body.id]);
    expect(await ids(`email=${encodeURIComponent('ＡＬＩＣＥ.ADMIN@example.com')}`)).toEqual([alice.body.id]);
  });

  it('clears emailVerified when the email changes, unless the same write says it is verified', async () => {
    const created = await admin.call('POST', '/users', { username: 'verified.admin', email: 'verified.admin@example.com', emailVerified: true });
    expect(created.body.emailVerified).toBe(true);
    const id = created.body.id;
    expect((await admin.call('PATCH', `/users/${id}`, { title: 'Kept' })).body.emailVerified).toBe(true);
    const changed = await admin.call('PATCH', `/users/${id}`, { email: 'chosen.by.someone@example.com' });
    expect(changed.body).toMatchObject({ email: 'chosen.by.someone@example.com', emailVerified: false });
    const vouched = await admin.call('PATCH', `/users/${id}`, { email: 'vouched@example.com', emailVerified: true });
    expect(vouched.body).toMatchObject({ email: 'vouched@example.com', emailVerified: true });
    const listed = await admin.call('PATCH', `/users/${id}`, { emails: [{ value: 'from.list@example.com', primary: true }] });
    expect(listed.body).toMatchObject({ email: 'from.list@example.com', emailVerified: false });
  });
});
