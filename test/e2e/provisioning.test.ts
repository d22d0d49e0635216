// Black-box: outbound SCIM provisioning on a real OneID server (PostgreSQL, the job queue with
// fast retries) into two real downstream SCIM servers on ports: a third-party-style app built on
// SCIMMY (with fault injection) and a second OneID with its own database. Everything is set up
// and observed the way an administrator would: the admin API on one side, the apps' own stores
// or SCIM API on the other.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { ScimmyApp, type StoredResource } from '../helpers/scim-app.ts';
import { startDownstreamOneId, type DownstreamOneId } from '../helpers/downstream-oneid.ts';
import { ScimClient, type ScimUser } from '../../src/provisioning/scim-client.ts';

const JOBS = { JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_RETRY_LIMIT: '30', JOBS_HEARTBEAT_SECONDS: '10' };
const NO_ENTERPRISE = { 'enterprise.employeeNumber': null, 'enterprise.department': null, 'enterprise.manager': null };

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let appAdmin: AdminClient;
let auditor: AdminClient;
let userAdmin: AdminClient;
let scimmy: ScimmyApp;
let downstream: DownstreamOneId;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), LOG_LEVEL: 'debug', ...JOBS };
  scimmy = new ScimmyApp();
  [downstream, server] = await Promise.all([startDownstreamOneId(), startServer(env), scimmy.start()]) as [DownstreamOneId, RunningServer, string];
  [admin, appAdmin, auditor, userAdmin] = await Promise.all([
    adminClient(server.url, env, ['super_admin']),
    adminClient(server.url, env, ['app_admin']),
    adminClient(server.url, env, ['auditor']),
    adminClient(server.url, env, ['user_admin']),
  ]);
}, 180000);

afterAll(async () => {
  await server?.stop();
  await scimmy?.stop();
  await downstream?.stop();
  await db?.drop();
});

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 45000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const unique = (label: string) => `${label}${Math.random().toString(36).slice(2, 8)}`;

async function ok(res: Promise<{ status: number; body: any }>, status = [200, 201, 204]): Promise<any> {
  const r = await res;
  if (!status.includes(r.status)) throw new Error(`unexpected ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function createUser(fields: Record<string, unknown> = {}): Promise<{ id: string; username: string }> {
  const username = unique('p');
  return ok(admin.call('POST', '/users', { username, email: `${username}@example.com`, givenName: 'Pat', familyName: username, ...fields }));
}

async function createApp(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  return (await ok(admin.call('POST', '/apps', { name: unique(name), redirectUris: ['https://app.example/cb'], ...extra }))).id;
}

const scimmyUsers = (): StoredResource[] => [...scimmy.users.values()];
const inScimmy = (username: string) => scimmyUsers().filter((u) => String(u.userName).toLowerCase() === username.toLowerCase());

async function status(appId: string): Promise<any> {
  return (await ok(admin.call('GET', `/apps/${appId}/provisioning`))).status;
}

describe('provisioning into a third-party SCIM app (SCIMMY)', () => {
  let appId: string;
  let eng: string;
  let editors: string;
  const people: { id: string; username: string }[] = [];

  beforeAll(async () => {
    appId = await createApp('Wiki');
    await ok(admin.call('POST', `/apps/${appId}/roles`, { key: 'viewer', name: 'Viewer' }));
    await ok(admin.call('POST', `/apps/${appId}/roles`, { key: 'editor', name: 'Editor' }));
    eng = (await ok(admin.call('POST', '/departments', { name: unique('Engineering') }))).id;
    editors = (await ok(admin.call('POST', '/groups', { name: unique('Editors') }))).id;
    for (let i = 0; i < 3; i++) {
      const p = await createUser({ title: 'Engineer' });
      people.push(p);
      await ok(admin.call('POST', `/departments/${eng}/members`, { userId: p.id, primary: true }));
    }
    const set = await appAdmin.call('PUT', `/apps/${appId}/provisioning`, {
      baseUrl: scimmy.url, token: scimmy.token, rolesAs: 'roles', onUnassign: 'deactivate', attributeMapping: NO_ENTERPRISE,
    });
    expect(set.status).toBe(200);
    expect(JSON.stringify(set.body)).not.toContain(scimmy.token);
  });

  it('assigning the app to a department provisions its members, with the role the assignment gives', async () => {
    await ok(admin.call('POST', `/apps/${appId}/assignments`, { principalType: 'department', principalId: eng, roleKeys: ['viewer'] }));
    for (const p of people) {
      const [u] = await until(`${p.username} in the app`, () => inScimmy(p.username).length === 1 && inScimmy(p.username));
      expect(u).toMatchObject({ externalId: p.id, active: true, title: 'Engineer', name: { givenName: 'Pat', familyName: p.username } });
      expect(u!.emails).toEqual([{ value: `${p.username}@example.com`, type: 'work', primary: true }]);
      expect(u!.roles).toEqual([{ value: 'viewer', display: 'Viewer' }]);
    }
    const s = await until('all synced', async () => { const st = await status(appId); return st.counts.synced >= 3 && st; });
    expect(s.failed).toEqual([]);
    expect(s.lastSuccessAt).toEqual(expect.any(String));
  });

  it("a mover who joins a group that gives a role gets the new role in the app", async () => {
    await ok(admin.call('POST', `/apps/${appId}/assignments`, { principalType: 'group', principalId: editors, roleKeys: ['editor'] }));
    await ok(admin.call('POST', `/groups/${editors}/members`, { userId: people[0]!.id }));
    await until('editor role downstream', () => {
      const roles = inScimmy(people[0]!.username)[0]?.roles?.map((r: { value: string }) => r.value).sort();
      return JSON.stringify(roles) === JSON.stringify(['editor', 'viewer']);
    });
    // The others keep only the department's role.
    expect(inScimmy(people[1]!.username)[0]!.roles).toEqual([{ value: 'viewer', display: 'Viewer' }]);
  });

  it('a suspended person becomes active false in the app, and active again when reactivated', async () => {
    const p = people[1]!;
    await ok(userAdmin.call('POST', `/users/${p.id}/suspend`));
    await until('inactive downstream', () => inScimmy(p.username)[0]?.active === false);
    await ok(userAdmin.call('POST', `/users/${p.id}/reactivate`));
    await until('active again downstream', () => inScimmy(p.username)[0]?.active === true);
    expect(inScimmy(p.username)).toHaveLength(1);
  });

  it('falls back to PUT when the app refuses PATCH', async () => {
    const p = people[2]!;
    scimmy.refusePatch(true);
    try {
      const before = scimmy.requests.length;
      await ok(admin.call('PATCH', `/users/${p.id}`, { title: 'Staff Engineer' }));
      await until('new title downstream', () => inScimmy(p.username)[0]?.title === 'Staff Engineer');
      const calls = scimmy.requests.slice(before).map((r) => `${r.method} ${r.status}`);
      expect(calls).toContain('PATCH 501');
      expect(calls).toContain('PUT 200');
    } finally {
      scimmy.refusePatch(false);
    }
  });

  it('an app down for a while catches up after it returns: nothing duplicated, nothing lost', async () => {
    await scimmy.down();
    const joiners: { id: string; username: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await createUser();
      joiners.push(p);
      await ok(admin.call('POST', `/departments/${eng}/members`, { userId: p.id }));
    }
    // Retries fail while it is down, and the status says so with the reason.
    const failing = await until('failures recorded', async () => { const st = await status(appId); return st.failed.length > 0 && st; });
    expect(failing.failed[0].error).toMatch(/ECONNREFUSED|network|fetch/i);
    await scimmy.up();
    for (const p of [...people, ...joiners]) await until(`${p.username} downstream once`, () => inScimmy(p.username).length === 1);
    await until('no failure left', async () => (await status(appId)).failed.length === 0);
    for (const p of [...people, ...joiners]) expect(inScimmy(p.username)).toHaveLength(1);
    people.push(...joiners);
  });

  it('a change made behind OneID\'s back shows in the drift report, and a full sync repairs it', async () => {
    const [changed, removed] = [people[0]!, people[2]!];
    const suspended = people[1]!;
    await ok(userAdmin.call('POST', `/users/${suspended.id}/suspend`));
    await until('inactive downstream', () => inScimmy(suspended.username)[0]?.active === false);

    // Behind OneID's back: a new display name, a deleted person, a suspended person active again, and a stranger.
    inScimmy(changed.username)[0]!.displayName = 'Someone Else';
    scimmy.users.delete(inScimmy(removed.username)[0]!.id);
    inScimmy(suspended.username)[0]!.active = true;
    const stranger = await new ScimClient({ baseUrl: scimmy.url, token: scimmy.token }).createUser({ userName: unique('stranger') });

    const requestsBefore = scimmy.requests.filter((r) => r.method !== 'GET').length;
    const drift = await appAdmin.call('GET', `/apps/${appId}/provisioning/drift`);
    expect(drift.status).toBe(200);
    // A dry run: nothing was written to the app.
    expect(scimmy.requests.filter((r) => r.method !== 'GET').length).toBe(requestsBefore);
    expect(drift.body.complete).toBe(true);
    expect(drift.body.different).toEqual([expect.objectContaining({ userId: changed.id, attributes: ['displayName'] })]);
    expect(drift.body.missing).toEqual([expect.objectContaining({ userId: removed.id, userName: removed.username })]);
    expect(drift.body.unexpected).toEqual([expect.objectContaining({ userId: suspended.id, active: true, expected: 'inactive' })]);
    expect(drift.body.counts).toMatchObject({ missing: 1, unexpected: 1, different: 1, unmanaged: 1 });

    const sync = await appAdmin.call('POST', `/apps/${appId}/provisioning/sync`);
    expect(sync.status).toBe(202);
    await until('repaired', async () => {
      const d = (await ok(admin.call('GET', `/apps/${appId}/provisioning/drift`)));
      return d.counts.missing === 0 && d.counts.unexpected === 0 && d.counts.different === 0 && d;
    });
    expect(inScimmy(changed.username)[0]!.displayName).not.toBe('Someone Else');
    expect(inScimmy(removed.username)).toHaveLength(1);
    expect(inScimmy(suspended.username)[0]!.active).toBe(false);
    // OneID leaves alone what it does not manage.
    expect(scimmy.users.has(stranger.id)).toBe(true);
    const st = await until('full sync recorded', async () => { const s = await status(appId); return s.lastFullSyncAt && s; });
    expect(st.lastFullSync).toMatchObject({ full: true });
  });
  it('offboarding a provisioned person: the app holds them inactive, and the receipt says the app acknowledged it', async () => {
    const p = await createUser();
    await ok(admin.call('POST', `/departments/${eng}/members`, { userId: p.id, primary: true }));
    await until(`${p.username} active in the app`, () => inScimmy(p.username)[0]?.active === true);
    const receipt = await ok(userAdmin.call('POST', `/users/${p.id}/offboard`), [201]);
    await until('inactive in the app', () => inScimmy(p.username)[0]?.active === false);
    const line = await until('the app acknowledged on the receipt', async () => {
      const r = await ok(userAdmin.call('GET', `/offboardings/${receipt.id}`));
      const app = r.apps.find((a: { appId: string }) => a.appId === appId);
      const action = app?.actions.find((a: { action: string }) => a.action === 'provisioning_deactivate');
      return action?.state === 'acknowledged' && action;
    });
    expect(line.detail).toContain('active false');
    expect(inScimmy(p.username)).toHaveLength(1);
  });
});

describe('app roles as downstream groups, and a refusal the app gives', () => {
  let appId: string;
  let roleName: string;
  let roleId: string;

  beforeAll(async () => {
    appId = await createApp('Roles');
    roleName = unique('Admins');
    roleId = (await ok(admin.call('POST', `/apps/${appId}/roles`, { key: 'admin', name: roleName }))).id;
    await ok(appAdmin.call('PUT', `/apps/${appId}/provisioning`, { baseUrl: scimmy.url, token: scimmy.token, rolesAs: 'groups', attributeMapping: NO_ENTERPRISE }));
  });

  const roleGroup = () => [...scimmy.groups.values()].find((g) => g.displayName === roleName);
  const memberNames = () => (roleGroup()?.members ?? []).map((m: { value: string }) => scimmy.users.get(m.value)?.userName).sort();

  it('puts the holders of a role in the role\'s group, and takes out who loses it', async () => {
    const [a, b] = [await createUser(), await createUser()];
    const withRole = await ok(admin.call('POST', `/apps/${appId}/assignments`, { principalType: 'user', principalId: a.id, roleKeys: ['admin'] }));
    await ok(admin.call('POST', `/apps/${appId}/assignments`, { principalType: 'user', principalId: b.id }));
    await until('a in the role group', () => JSON.stringify(memberNames()) === JSON.stringify([a.username]));
    await until('b provisioned', () => inScimmy(b.username).length === 1);
    // No roles attribute when roles go out as groups.
    expect(inScimmy(a.username)[0]!.roles).toBeUndefined();

    await ok(admin.call('PATCH', `/apps/${appId}/assignments/${withRole.id}`, { roleKeys: [] }));
    await until('a out of the role group', () => roleGroup() !== undefined && memberNames().length === 0);
    expect([...scimmy.groups.values()].filter((g) => g.displayName === roleName)).toHaveLength(1);

    // A deleted role's group goes too.
    await ok(admin.call('DELETE', `/apps/${appId}/roles/${roleId}`));
    await until('the role group deleted', () => roleGroup() === undefined);
  });

  it("records a refusal (4xx) with the app's own error in the status, does not retry it, and pushes once the cause is fixed", async () => {
    const quiet = await createApp('Refusing');
    const refusals = () => scimmy.requests.filter((r) => r.status === 401).length;
    await ok(appAdmin.call('PUT', `/apps/${quiet}/provisioning`, { baseUrl: scimmy.url, token: 'a-token-the-app-does-not-know', attributeMapping: NO_ENTERPRISE }));
    await ok(appAdmin.call('POST', `/apps/${quiet}/provisioning/sync`), [202]);
    const first = await until('first full sync refused', async () => (await status(quiet)).lastFullSync);
    expect(first.interrupted).toContain('401');
    const p = await createUser();
    await ok(admin.call('POST', `/apps/${quiet}/assignments`, { principalType: 'user', principalId: p.id }));
    const st = await until('failure in the status', async () => {
      const s = await status(quiet);
      return s.failed.find((f: { localId: string }) => f.localId === p.id) && s;
    });
    expect(st.failed.find((f: { localId: string }) => f.localId === p.id).error).toContain('A valid bearer token is required');
    // Not retried: with retries every 1-2 s, more refusals would come in this time.
    await new Promise((r) => setTimeout(r, 1500));
    const seen = refusals();
    await new Promise((r) => setTimeout(r, 4000));
    expect(refusals()).toBe(seen);
    expect(inScimmy(p.username)).toHaveLength(0);

    await ok(appAdmin.call('PUT', `/apps/${quiet}/provisioning`, { baseUrl: scimmy.url, token: scimmy.token, attributeMapping: NO_ENTERPRISE }));
    await until('pushed with the right token', () => inScimmy(p.username).length === 1);
    await until('failure cleared', async () => !(await status(quiet)).failed.some((f: { localId: string }) => f.localId === p.id));
  });
});

describe('provisioning into a second OneID, with groups and deletion', () => {
  let appId: string;
  let ops: string;
  let client: ScimClient;
  const members: { id: string; username: string }[] = [];

  const remoteUser = (username: string): Promise<ScimUser | undefined> => client.findUserBy('userName', username);

  beforeAll(async () => {
    client = new ScimClient({ baseUrl: downstream.scimUrl, token: downstream.token });
    appId = await createApp('HR');
    ops = (await ok(admin.call('POST', '/groups', { name: unique('Ops') }))).id;
    for (let i = 0; i < 3; i++) {
      const p = await createUser({ title: 'Operator' });
      members.push(p);
      await ok(admin.call('POST', `/groups/${ops}/members`, { userId: p.id }));
    }
    await ok(appAdmin.call('PUT', `/apps/${appId}/provisioning`, { baseUrl: downstream.scimUrl, token: downstream.token, pushGroups: true, onUnassign: 'delete', rolesAs: 'none' }));
  });

  it('a group assigned to the app goes out with its members', async () => {
    await ok(admin.call('POST', `/apps/${appId}/assignments`, { principalType: 'group', principalId: ops }));
    const ids = await until('members downstream', async () => {
      const found = await Promise.all(members.map((m) => remoteUser(m.username)));
      return found.every(Boolean) && found.map((u) => u!.id);
    });
    const group = await until('group downstream', async () => {
      const g = await client.findGroupBy('externalId', ops);
      if (!g) return undefined;
      const full = await client.getGroup(g.id);
      return (full.members?.length ?? 0) === 3 && full;
    });
    expect(group.members!.map((m) => m.value).sort()).toEqual([...ids].sort());
    expect((await remoteUser(members[0]!.username))).toMatchObject({ externalId: members[0]!.id, title: 'Operator', active: true });
  });

  it('a membership change reaches the app: a newcomer joins the group, a leaver is deleted (on_unassign delete)', async () => {
    const newcomer = await createUser();
    await ok(admin.call('POST', `/groups/${ops}/members`, { userId: newcomer.id }));
    await ok(admin.call('DELETE', `/groups/${ops}/members/${members[0]!.id}`));
    const group = await until('group updated downstream', async () => {
      const g = await client.findGroupBy('externalId', ops);
      const full = g && await client.getGroup(g.id);
      const newId = (await remoteUser(newcomer.username))?.id;
      return full && newId && full.members?.some((m) => m.value === newId) && full.members.length === 3 ? full : undefined;
    });
    expect(group.members).toHaveLength(3);
    await until('leaver deleted downstream', async () => (await remoteUser(members[0]!.username)) === undefined);
  });

  it('a change made in the downstream OneID through its SCIM API shows in the drift report and a full sync repairs it', async () => {
    const target = members[1]!;
    const remote = (await remoteUser(target.username))!;
    await client.patchUser(remote.id, [{ op: 'replace', path: 'title', value: 'Changed downstream' }]);
    const drift = await ok(admin.call('GET', `/apps/${appId}/provisioning/drift`));
    expect(drift.different).toEqual([expect.objectContaining({ userId: target.id, attributes: ['title'] })]);
    await ok(appAdmin.call('POST', `/apps/${appId}/provisioning/sync`), [202]);
    await until('title repaired', async () => (await remoteUser(target.username))?.title === 'Operator');
  });

  it('a renamed group is renamed in the app; a deleted group is deleted there with the people it entitled', async () => {
    const renamed = unique('Operations');
    await ok(admin.call('PATCH', `/groups/${ops}`, { name: renamed }));
    await until('renamed downstream', async () => (await client.findGroupBy('externalId', ops))?.displayName === renamed);
    const holder = members[1]!;
    expect(await remoteUser(holder.username)).toBeDefined();
    await ok(admin.call('DELETE', `/groups/${ops}`));
    await until('group deleted downstream', async () => (await client.findGroupBy('externalId', ops)) === undefined);
    await until('its people deleted downstream', async () => (await remoteUser(holder.username)) === undefined);
  });
});

describe('the provisioning admin API refuses what it must', () => {
  let appId: string;

  beforeAll(async () => {
    appId = await createApp('Refusals');
  });

  it('is described in the OpenAPI document, with the token write-only', async () => {
    const doc = await fetch(`${server.url}/admin/api/v1/openapi.json`).then((r) => r.json()) as any;
    expect(Object.keys(doc.paths['/apps/{id}/provisioning'])).toEqual(expect.arrayContaining(['get', 'put', 'delete']));
    expect(doc.paths['/apps/{id}/provisioning/sync']).toHaveProperty('post');
    expect(doc.paths['/apps/{id}/provisioning/drift']).toHaveProperty('get');
    expect(doc.paths['/apps/{id}/provisioning'].put.requestBody.content['application/json'].schema.required).toEqual(expect.arrayContaining(['baseUrl', 'token']));
    expect(JSON.stringify(doc.paths['/apps/{id}/provisioning'].get.responses)).not.toContain('"token"');
  });

  it('answers 404 for an unknown app and for an app without a target', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await admin.call('GET', `/apps/${unknown}/provisioning`)).status).toBe(404);
    expect((await admin.call('PUT', `/apps/${unknown}/provisioning`, { baseUrl: scimmy.url, token: 'x' })).status).toBe(404);
    const none = await admin.call('GET', `/apps/${appId}/provisioning`);
    expect(none.status).toBe(404);
    expect(none.body.code).toBe('provisioning.no_target');
  });

  it.each([
    ['ftp://app.example/scim', 'a scheme other than http(s)'],
    ['https://user:pass@app.example/scim', 'credentials in the URL'],
    ['not a url', 'not a URL'],
  ])('refuses %s (%s) with 400', async (baseUrl) => {
    const res = await appAdmin.call('PUT', `/apps/${appId}/provisioning`, { baseUrl, token: 'secret-token-1' });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('provisioning.scim_bad_url');
  });

  it('refuses an unknown attribute mapping with 400 naming it', async () => {
    const res = await appAdmin.call('PUT', `/apps/${appId}/provisioning`, { baseUrl: scimmy.url, token: 'secret-token-1', attributeMapping: { password: 'username' } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('provisioning.mapping_unknown_attribute');
  });

  it('lets readers read but only app_admin write (403 for auditor and user_admin)', async () => {
    const token = `never-shown-${unique('t')}`;
    expect((await appAdmin.call('PUT', `/apps/${appId}/provisioning`, { baseUrl: scimmy.url, token, enabled: false })).status).toBe(200);
    for (const c of [auditor, userAdmin]) {
      expect((await c.call('PUT', `/apps/${appId}/provisioning`, { baseUrl: scimmy.url, token })).status).toBe(403);
      expect((await c.call('POST', `/apps/${appId}/provisioning/sync`)).status).toBe(403);
      expect((await c.call('DELETE', `/apps/${appId}/provisioning`)).status).toBe(403);
      const read = await c.call('GET', `/apps/${appId}/provisioning`);
      expect(read.status).toBe(200);
      expect(read.body.target).toMatchObject({ baseUrl: scimmy.url, enabled: false });
    }
    // The token is in no answer, audit record or log line.
    const audit = await admin.call('GET', `/audit-events?targetId=${appId}`);
    expect(JSON.stringify(audit.body)).toContain('provisioning.target_set');
    expect(JSON.stringify(audit.body)).not.toContain(token);
    expect(JSON.stringify((await admin.call('GET', `/apps/${appId}/provisioning`)).body)).not.toContain(token);
    expect(server.output()).not.toContain(token);
    expect(server.output()).not.toContain(scimmy.token);
    expect(server.output()).not.toContain(downstream.token);

    // An app that holds admin roles the app_admin lacks is not theirs to point elsewhere.
    const privileged = await createApp('Privileged', { grantTypes: ['client_credentials'], redirectUris: [], adminRoles: ['user_admin'] });
    const refused = await appAdmin.call('PUT', `/apps/${privileged}/provisioning`, { baseUrl: scimmy.url, token });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('app.admin_roles_forbidden');

    expect((await appAdmin.call('DELETE', `/apps/${appId}/provisioning`)).status).toBe(204);
    expect((await admin.call('GET', `/apps/${appId}/provisioning`)).status).toBe(404);
  });
});

describe('a OneID node killed in the middle of a full sync', () => {
  let dbK: TestDatabase;
  let envK: Record<string, string>;
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;

  afterAll(async () => {
    await nodeA?.stop('SIGKILL');
    await nodeB?.stop();
    await dbK?.drop();
  });

  it('loses nothing: a second node on the same database finishes it, and every person arrives once', async () => {
    dbK = await createTestDatabase();
    envK = { DATABASE_URL: dbK.url, ONEID_MASTER_KEY: testMasterKey(), LOG_LEVEL: 'warn', ...JOBS };
    nodeA = await startServer(envK);
    const adminA = await adminClient(nodeA.url, envK, ['super_admin']);
    const prefix = unique('k');
    const total = 300;
    const names = Array.from({ length: total }, (_, i) => `${prefix}.${String(i).padStart(3, '0')}`);
    // Ten at a time; a 503 (the node shedding load) is tried again, as a client should.
    const create = async (username: string) => {
      for (let attempt = 0; ; attempt++) {
        const r = await adminA.call('POST', '/users', { username, email: `${username}@example.com`, givenName: 'K', familyName: username });
        if (r.status === 201) return;
        if (r.status !== 503 || attempt > 5) throw new Error(`POST /users: ${r.status} ${JSON.stringify(r.body)}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    };
    for (let i = 0; i < total; i += 10) await Promise.all(names.slice(i, i + 10).map(create));
    const app = (await ok(adminA.call('POST', '/apps', { name: 'Everyone app', redirectUris: ['https://app.example/cb'], access: 'everyone' }))).id;
    const client = new ScimClient({ baseUrl: downstream.scimUrl, token: downstream.token });
    const downstreamNames = async (): Promise<string[]> => {
      const out: string[] = [];
      for await (const u of client.listUsers({ pageSize: 500, filter: `userName sw ${JSON.stringify(prefix)}` })) out.push(u.userName);
      return out;
    };

    // A full sync on node A (as an admin starts one after setting the target); A is killed once part of it has arrived.
    await ok(adminA.call('PUT', `/apps/${app}/provisioning`, { baseUrl: downstream.scimUrl, token: downstream.token, rolesAs: 'none' }));
    await ok(adminA.call('POST', `/apps/${app}/provisioning/sync`), [202]);
    const partial = await until('part of the sync downstream', async () => {
      const n = (await downstreamNames()).length;
      return n >= 20 && n;
    }, 60000);
    await nodeA.stop('SIGKILL');
    nodeA = undefined;
    const afterKill = (await downstreamNames()).length;
    expect(partial).toBeLessThan(total);
    expect(afterKill).toBeLessThan(total);

    nodeB = await startServer(envK);
    const got = await until('everyone downstream', async () => {
      const list = await downstreamNames();
      return list.length >= total && list;
    }, 120000);
    expect(got).toHaveLength(total);
    expect(new Set(got.map((n) => n.toLowerCase())).size).toBe(total);
    expect([...got].map((n) => n.toLowerCase()).sort()).toEqual(names.map((n) => n.toLowerCase()).sort());

    const adminB = await adminClient(nodeB.url, envK, ['auditor']);
    const st = await until('all recorded as synced after a full sync', async () => {
      const s = (await ok(adminB.call('GET', `/apps/${app}/provisioning`))).status;
      return s.counts.synced === total && s.lastFullSync?.entitled === total && s;
    });
    expect(st.failed).toEqual([]);
    expect(st.lastFullSync).toMatchObject({ full: true, entitled: total });
  }, 300000);
});
