// Black-box: SCIM Groups over HTTP against a OneID server listening on a port, with the request
// sequences Okta and Microsoft Entra ID send, a 5,000-member group, ETags, department-scoped
// tokens and bad input. People are created with the admin API (the Users part of SCIM is tested
// on its own); the database is read directly only to count membership rows.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const UNKNOWN = '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f';

let database: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let auditor: AdminClient;
let sql: pg.Client;
let okta: string;
let entra: string;

interface Res { status: number; body: any; headers: Headers; text: string }

async function scim(token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  const r = await fetch(`${server.url}/scim/v2${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`, accept: 'application/scim+json',
      ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}), ...headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  return { status: r.status, body: parsed, headers: r.headers, text };
}

const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH], Operations });

function expectScimError(res: Res, status: number, scimType?: string): void {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json/);
  expect(res.body).toMatchObject({ schemas: [ERROR], status: String(status), ...(scimType ? { scimType } : {}) });
  expect(typeof res.body.detail).toBe('string');
  expect(res.body.detail.length).toBeGreaterThan(0);
}

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_scim_groups_e2e');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  [admin, auditor] = await Promise.all([adminClient(server.url, env, ['user_admin']), adminClient(server.url, env, ['auditor'])]);
  const [o, e] = await Promise.all([runCli(['scim-tokens', 'create', '--name', 'Okta'], env), runCli(['scim-tokens', 'create', '--name', 'Entra ID'], env)]);
  okta = o.json.token;
  entra = e.json.token;
  sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
}, 120000);

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await database?.drop();
});

let n = 0;
async function person(name?: string): Promise<{ id: string; username: string }> {
  n += 1;
  const res = await admin.call('POST', '/users', { username: `scim-person${n}`, email: `scim-person${n}@example.com`, ...(name ? { name } : {}) });
  expect(res.status).toBe(201);
  return res.body;
}

const memberIds = (group: { members?: { value: string }[] }) => (group.members ?? []).map((m) => m.value).sort();

describe('the sequence Okta sends for groups', () => {
  it('creates, finds by displayName, adds and removes a member, renames and deletes a group', async () => {
    const [ann, bob] = [await person('Ann Okta'), await person('Bob Okta')];

    // Okta looks the group up first, then pushes it.
    const lookup = await scim(okta, 'GET', `/Groups?filter=${encodeURIComponent('displayName eq "Okta Engineers"')}&startIndex=1&count=100`);
    expect(lookup.status).toBe(200);
    expect(lookup.body).toMatchObject({ schemas: [LIST], totalResults: 0, Resources: [] });

    const created = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Okta Engineers', members: [{ value: ann.id, display: 'ann' }] });
    expect(created.status).toBe(201);
    expect(created.headers.get('content-type')).toMatch(/^application\/scim\+json/);
    const id = created.body.id as string;
    expect(created.headers.get('location')).toBe(`${server.url}/scim/v2/Groups/${id}`);
    expect(created.headers.get('etag')).toBe('W/"1"');
    expect(created.body).toMatchObject({
      schemas: [GROUP], displayName: 'Okta Engineers',
      // The label Okta sent with the member is kept (RFC 7643 2.4: a member's display may be set when it is added).
      members: [{ value: ann.id, display: 'ann', $ref: `${server.url}/scim/v2/Users/${ann.id}`, type: 'User' }],
      meta: { resourceType: 'Group', location: `${server.url}/scim/v2/Groups/${id}`, version: 'W/"1"' },
    });
    expect(Date.parse(created.body.meta.created)).not.toBeNaN();

    const found = await scim(okta, 'GET', `/Groups?filter=${encodeURIComponent('displayName eq "okta engineers"')}`);
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0].id).toBe(id);

    const add = await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'add', path: 'members', value: [{ value: bob.id, display: 'bob' }] }));
    expect(add.status).toBe(204);
    expect(add.text).toBe('');
    expect(add.headers.get('etag')).toBe('W/"2"');
    expect(memberIds((await scim(okta, 'GET', `/Groups/${id}`)).body)).toEqual([ann.id, bob.id].sort());

    const remove = await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'remove', path: `members[value eq "${ann.id}"]` }));
    expect(remove.status).toBe(204);
    expect(memberIds((await scim(okta, 'GET', `/Groups/${id}`)).body)).toEqual([bob.id]);

    const rename = await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'replace', value: { id, displayName: 'Okta Platform' } }));
    expect(rename.status).toBe(204);
    // Okta's older integrations rename with PUT and the full member list.
    const put = await scim(okta, 'PUT', `/Groups/${id}`, { schemas: [GROUP], id, displayName: 'Okta Platform Team', members: [{ value: bob.id }] });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ id, displayName: 'Okta Platform Team', meta: { version: 'W/"5"' } });
    expect(memberIds(put.body)).toEqual([bob.id]);

    const dup = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'OKTA PLATFORM TEAM' });
    expectScimError(dup, 409, 'uniqueness');

    expect((await scim(okta, 'DELETE', `/Groups/${id}`)).status).toBe(204);
    expectScimError(await scim(okta, 'GET', `/Groups/${id}`), 404);
    expectScimError(await scim(okta, 'DELETE', `/Groups/${id}`), 404);
  });
});

describe('the sequence Microsoft Entra ID sends for groups', () => {
  it('filters by externalId and displayName without members, patches with Add/Remove/Replace, and audits the client', async () => {
    const [cy, di, ed] = [await person('Cy Entra'), await person('Di Entra'), await person('Ed Entra')];
    const ext = '0f7b8f6e-1111-4c44-9a3b-entra-group';
    const query = (f: string) => `/Groups?excludedAttributes=members&filter=${encodeURIComponent(f)}`;
    expect((await scim(entra, 'GET', query(`externalId eq "${ext}"`))).body.totalResults).toBe(0);

    const created = await scim(entra, 'POST', '/Groups', { schemas: [GROUP], externalId: ext, displayName: 'Entra Sales', members: [] });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    for (const f of [`externalId eq "${ext}"`, 'displayName eq "Entra Sales"']) {
      const list = await scim(entra, 'GET', query(f));
      expect(list.body).toMatchObject({ totalResults: 1, itemsPerPage: 1, startIndex: 1 });
      expect(list.body.Resources[0]).toMatchObject({ id, externalId: ext, displayName: 'Entra Sales' });
      expect(list.body.Resources[0]).not.toHaveProperty('members');
    }

    const steps: [unknown, string[]][] = [
      [{ op: 'Add', path: 'members', value: [{ value: cy.id }, { value: di.id }, { value: ed.id }] }, [cy.id, di.id, ed.id]],
      // Entra's remove names the member in "value", not in the path.
      [{ op: 'Remove', path: 'members', value: [{ value: cy.id }] }, [di.id, ed.id]],
      [{ op: 'remove', path: `members[value eq "${di.id}"]` }, [ed.id]],
      [{ op: 'Replace', path: 'displayName', value: 'Entra Sales EMEA' }, [ed.id]],
    ];
    for (const [op, expected] of steps) {
      const res = await scim(entra, 'PATCH', `/Groups/${id}`, patchOp(op));
      expect(res.status).toBe(204);
      expect(memberIds((await scim(entra, 'GET', `/Groups/${id}`)).body)).toEqual([...expected].sort());
    }
    const slim = await scim(entra, 'GET', `/Groups/${id}?excludedAttributes=members`);
    expect(slim.body).toMatchObject({ id, displayName: 'Entra Sales EMEA', externalId: ext });
    expect(slim.body).not.toHaveProperty('members');

    // Asked for attributes, PATCH answers 200 with (that part of) the resource.
    const withBody = await scim(entra, 'PATCH', `/Groups/${id}?attributes=displayName`, patchOp({ op: 'Replace', path: 'externalId', value: `${ext}-2` }));
    expect(withBody.status).toBe(200);
    expect(withBody.body).toEqual({ schemas: [GROUP], id, displayName: 'Entra Sales EMEA', meta: expect.objectContaining({ version: withBody.headers.get('etag') }) });

    // The audit log names the SCIM client as the actor of every change.
    const tokens = (await runCli(['scim-tokens', 'list'], env)).json as { items: { id: string; name: string }[] };
    const tokenId = tokens.items.find((t) => t.name === 'Entra ID')!.id;
    const events = await auditor.call('GET', `/audit-events?targetType=group&targetId=${id}&limit=100`);
    expect(events.status).toBe(200);
    const actions = (events.body.items as { action: string; actorType: string; actorId: string }[]).reverse();
    expect(actions.map((e) => e.action)).toEqual([
      'group.created', 'group.member_added', 'group.member_added', 'group.member_added', 'group.member_removed', 'group.member_removed', 'group.updated', 'group.updated',
    ]);
    for (const e of actions) expect(e).toMatchObject({ actorType: 'scim_client', actorId: tokenId });
  });
});

describe('a group of 5,000 members', () => {
  it('adds and removes one member by writing exactly one membership row', async () => {
    const created = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Everyone (big)' });
    const id = created.body.id as string;
    await sql.query(`insert into users (id, username) select gen_random_uuid(), 'big-' || n from generate_series(1, 5000) n`);
    await sql.query(`insert into group_members (group_id, user_id, created_at)
      select $1, id, '2020-01-01T00:00:00Z' from users where username like 'big-%'`, [id]);
    const newcomer = await person('Newcomer');
    const rows = async () => (await sql.query<{ total: string; untouched: string }>(
      `select count(*) as total, count(*) filter (where created_at = '2020-01-01T00:00:00Z') as untouched from group_members where group_id = $1`, [id],
    )).rows[0]!;
    expect(await rows()).toEqual({ total: '5000', untouched: '5000' });

    expect((await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'add', path: 'members', value: [{ value: newcomer.id }] }))).status).toBe(204);
    expect(await rows()).toEqual({ total: '5001', untouched: '5000' });

    const leaver = (await sql.query<{ user_id: string }>('select user_id from group_members where group_id = $1 and user_id <> $2 limit 1', [id, newcomer.id])).rows[0]!.user_id;
    expect((await scim(entra, 'PATCH', `/Groups/${id}`, patchOp({ op: 'Remove', path: 'members', value: [{ value: leaver }] }))).status).toBe(204);
    expect(await rows()).toEqual({ total: '5000', untouched: '4999' });
    expect((await sql.query('select 1 from group_members where group_id = $1 and user_id = $2', [id, leaver])).rowCount).toBe(0);

    const full = await scim(okta, 'GET', `/Groups/${id}`);
    expect(full.body.members).toHaveLength(5000);
    const slim = await scim(entra, 'GET', `/Groups?filter=${encodeURIComponent(`id eq "${id}"`)}&excludedAttributes=members`);
    expect(slim.body.Resources[0]).not.toHaveProperty('members');
    expect((await scim(okta, 'DELETE', `/Groups/${id}`)).status).toBe(204);
  });
});

describe('PATCH /Groups/{id} with Prefer (RFC 7644 3.5.2, RFC 7240)', () => {
  it('answers 200 with the group for Prefer: return=representation, and 204 without it or with return=minimal', async () => {
    const a = await person('Ann Prefer');
    const created = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Preferred' });
    const id = created.body.id as string;

    const full = await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'add', path: 'members', value: [{ value: a.id }] }), { prefer: 'return=representation' });
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toMatch(/^application\/scim\+json/);
    expect(full.body).toMatchObject({ schemas: [GROUP], id, displayName: 'Preferred', members: [{ value: a.id, display: 'Ann Prefer' }], meta: { version: 'W/"2"' } });
    expect(full.headers.get('etag')).toBe('W/"2"');
    expect(full.body).toEqual((await scim(okta, 'GET', `/Groups/${id}`)).body);

    const quoted = await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'replace', path: 'displayName', value: 'Preferred 2' }), { prefer: 'respond-async, RETURN="representation"' });
    expect(quoted.status).toBe(200);
    expect(quoted.body.displayName).toBe('Preferred 2');

    const plain = await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'replace', path: 'displayName', value: 'Preferred 3' }));
    expect(plain.status).toBe(204);
    expect(plain.text).toBe('');
    const minimal = await scim(okta, 'PATCH', `/Groups/${id}?attributes=displayName`, patchOp({ op: 'replace', path: 'displayName', value: 'Preferred 4' }), { prefer: 'return=minimal' });
    expect(minimal.status).toBe(204);
    expect(minimal.headers.get('etag')).toBe('W/"5"');
  });
});

describe('ETags', () => {
  it('answers If-None-Match with 304 and a stale If-Match with 412 on PUT, PATCH and DELETE', async () => {
    const a = await person();
    const created = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Versioned' });
    const id = created.body.id as string;
    const got = await scim(okta, 'GET', `/Groups/${id}`);
    expect(got.headers.get('etag')).toBe('W/"1"');
    const notModified = await scim(okta, 'GET', `/Groups/${id}`, undefined, { 'if-none-match': 'W/"1"' });
    expect(notModified.status).toBe(304);
    expect(notModified.text).toBe('');
    expect(notModified.headers.get('etag')).toBe('W/"1"');

    expect((await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'add', path: 'members', value: [{ value: a.id }] }), { 'if-match': 'W/"1"' })).status).toBe(204);
    expect((await scim(okta, 'GET', `/Groups/${id}`, undefined, { 'if-none-match': 'W/"1"' })).status).toBe(200);

    expectScimError(await scim(okta, 'PATCH', `/Groups/${id}`, patchOp({ op: 'remove', path: 'members' }), { 'if-match': 'W/"1"' }), 412);
    expectScimError(await scim(okta, 'PUT', `/Groups/${id}`, { schemas: [GROUP], displayName: 'Stale' }, { 'if-match': 'W/"1"' }), 412);
    expectScimError(await scim(okta, 'DELETE', `/Groups/${id}`, undefined, { 'if-match': 'W/"1"' }), 412);
    const after = await scim(okta, 'GET', `/Groups/${id}`);
    expect(after.body).toMatchObject({ displayName: 'Versioned', meta: { version: 'W/"2"' } });
    expect(memberIds(after.body)).toEqual([a.id]);

    expect((await scim(okta, 'PUT', `/Groups/${id}`, { schemas: [GROUP], displayName: 'Fresh' }, { 'if-match': 'W/"2"' })).status).toBe(200);
    expect((await scim(okta, 'DELETE', `/Groups/${id}`, undefined, { 'if-match': 'W/"3"' })).status).toBe(204);
  });
});

describe("a user's ETag", () => {
  it('changes when their groups change (a member added, removed, the group renamed), so If-None-Match never hides new groups', async () => {
    const ann = await person('Ann Etag');
    const etagOf = async () => {
      const res = await scim(okta, 'GET', `/Users/${ann.id}`);
      expect(res.status).toBe(200);
      return { etag: res.headers.get('etag')!, groups: (res.body.groups ?? []).map((g: { display: string }) => g.display) };
    };
    const before = await etagOf();
    const g = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Etag watchers' })).body;
    expect((await scim(okta, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: ann.id }] }))).status).toBe(204);
    const added = await etagOf();
    expect(added.etag).not.toBe(before.etag);
    expect(added.groups).toEqual(['Etag watchers']);
    const stale = await scim(okta, 'GET', `/Users/${ann.id}`, undefined, { 'if-none-match': before.etag });
    expect(stale.status).toBe(200);
    expect((await scim(okta, 'GET', `/Users/${ann.id}`, undefined, { 'if-none-match': added.etag })).status).toBe(304);

    expect((await scim(okta, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'replace', path: 'displayName', value: 'Etag renamed' }))).status).toBe(204);
    const renamed = await etagOf();
    expect(renamed.etag).not.toBe(added.etag);
    expect(renamed.groups).toEqual(['Etag renamed']);

    expect((await scim(okta, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'remove', path: `members[value eq "${ann.id}"]` }))).status).toBe(204);
    const removed = await etagOf();
    expect(removed.etag).not.toBe(renamed.etag);
    expect(removed.groups).toEqual([]);
  });
});

describe('a department-scoped token', () => {
  it('sees, adds and removes only people of its subtree; anyone else is skipped like an unknown user', async () => {
    const dept = (await admin.call('POST', '/departments', { name: 'Scoped Sales' })).body;
    const [inside, outside, already] = [await person(), await person(), await person()];
    expect((await admin.call('POST', `/departments/${dept.id}/members`, { userId: inside.id, primary: true })).status).toBeLessThan(300);
    const scoped = (await runCli(['scim-tokens', 'create', '--name', 'Sales HR', '--department', dept.id], env)).json.token as string;
    const g = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Mixed', members: [{ value: already.id }] })).body;

    expect((await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: inside.id }] }))).status).toBe(204);
    // Someone outside its subtree is answered exactly like someone who does not exist: skipped.
    const outsider = await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: outside.id }] }));
    const unknown = await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: UNKNOWN }] }));
    expect([outsider.status, unknown.status]).toEqual([204, 204]);
    expect(outsider.headers.get('etag')).toBe(unknown.headers.get('etag'));
    // Nor can it remove a member outside its subtree.
    expect((await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'remove', path: `members[value eq "${already.id}"]` }))).status).toBe(204);
    // It sees only its own people as members; an unscoped client sees everyone.
    expect(memberIds((await scim(scoped, 'GET', `/Groups/${g.id}`)).body)).toEqual([inside.id]);
    expect(memberIds((await scim(okta, 'GET', `/Groups/${g.id}`)).body)).toEqual([inside.id, already.id].sort());
    // Its PUT manages its own people and leaves the others in place.
    const put = await scim(scoped, 'PUT', `/Groups/${g.id}`, { schemas: [GROUP], displayName: 'Mixed', members: [] });
    expect(put.status).toBe(200);
    expect(memberIds(put.body)).toEqual([]);
    expect(memberIds((await scim(okta, 'GET', `/Groups/${g.id}`)).body)).toEqual([already.id]);
  });
});

describe('POST /Groups/.search', () => {
  it('searches with a SearchRequest body, with sorting and paging', async () => {
    for (const name of ['Search Zeta', 'Search Alpha', 'Search Mid']) {
      expect((await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: name })).status).toBe(201);
    }
    const res = await scim(okta, 'POST', '/Groups/.search', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: 'displayName sw "Search "', sortBy: 'displayName', sortOrder: 'descending', startIndex: 2, count: 1, excludedAttributes: ['members'],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ schemas: [LIST], totalResults: 3, startIndex: 2, itemsPerPage: 1 });
    expect(res.body.Resources.map((r: { displayName: string }) => r.displayName)).toEqual(['Search Mid']);
    expectScimError(await scim(okta, 'POST', '/Groups/.search', { filter: 'displayName pr' }), 400, 'invalidSyntax');
  });
});

describe('bad input', () => {
  it('answers every kind of bad input with a SCIM error and writes nothing', async () => {
    const groupsBefore = (await sql.query('select count(*) from groups')).rows[0].count;
    const m = await person();
    expectScimError(await scim(okta, 'POST', '/Groups', '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": '), 400, 'invalidSyntax');
    expectScimError(await scim(okta, 'POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], displayName: 'Wrong schema' }), 400, 'invalidSyntax');
    expectScimError(await scim(okta, 'POST', '/Groups', { displayName: 'No schema' }), 400, 'invalidSyntax');
    expectScimError(await scim(okta, 'POST', '/Groups', { schemas: [GROUP] }), 400, 'invalidValue');
    expectScimError(await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Nested', members: [{ value: m.id, type: 'Group' }] }), 400, 'invalidValue');
    expectScimError(await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'x'.repeat(5000) }), 400, 'invalidValue');
    expectScimError(await scim(okta, 'POST', '/Groups', [1, 2, 3]), 400, 'invalidSyntax');
    expect((await sql.query('select count(*) from groups')).rows[0].count).toBe(groupsBefore);
    // Not bad input: a member id that names nobody is skipped, the rest is created.
    const ghost = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Ghost members', members: [{ value: m.id, display: 'Lead' }, { value: UNKNOWN }] });
    expect(ghost.status).toBe(201);
    expect(ghost.body.members).toEqual([expect.objectContaining({ value: m.id, display: 'Lead' })]);

    const g = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Target of bad patches', members: [{ value: m.id }] })).body;
    const bad: [unknown, string][] = [
      [patchOp({ op: 'replace', path: 'displayName', value: 'Renamed' }, { op: 'add', path: 'members', value: [{ value: m.id, type: 'Group' }] }), 'invalidValue'],
      [patchOp({ op: 'add', path: 'members', value: [{ value: m.id, display: { html: '<b>' } }] }), 'invalidValue'],
      [patchOp({ op: 'remove', path: 'members[value eq "x" and (]' }), 'invalidPath'],
      [patchOp({ op: 'replace', path: 'meta.version', value: 'W/"9"' }), 'mutability'],
      [patchOp({ op: 'frobnicate', path: 'members' }), 'invalidSyntax'],
      [{ Operations: [{ op: 'remove', path: 'members' }] }, 'invalidSyntax'],
      // Removes every member, then fails: the removal must not survive.
      [patchOp({ op: 'remove', path: 'members[display co "\\\\" or value pr]' }, { op: 'add', path: 'members', value: [{ value: UNKNOWN, type: 'Group' }] }), 'invalidValue'],
      ['"members"', 'invalidSyntax'],
    ];
    for (const [body, scimType] of bad) expectScimError(await scim(okta, 'PATCH', `/Groups/${g.id}`, body), 400, scimType);
    // Harmless: ids that name no user are skipped and removing a non-member is a no-op; an
    // injection attempt in a member filter is just an id that matches nobody.
    for (const body of [
      patchOp({ op: 'add', path: 'members', value: [{ value: UNKNOWN }] }),
      patchOp({ op: 'add', path: 'members', value: 'string id 1' }),
      patchOp({ op: 'remove', path: `members[value eq "${UNKNOWN}"]` }),
      patchOp({ op: 'remove', path: `members[value eq "x'); delete from group_members; --"]` }),
    ]) expect((await scim(okta, 'PATCH', `/Groups/${g.id}`, body)).status).toBe(204);
    const after = (await scim(okta, 'GET', `/Groups/${g.id}`)).body;
    expect(after).toMatchObject({ displayName: 'Target of bad patches', meta: { version: 'W/"1"' } });
    expect(memberIds(after)).toEqual([m.id]);

    for (const f of ['displayName eq', 'nickName eq "x"', `displayName eq "x" or ${'('.repeat(500)}`, 'displayName eq "\' or 1=1 --"']) {
      const res = await scim(okta, 'GET', `/Groups?filter=${encodeURIComponent(f)}`);
      if (res.status === 200) expect(res.body.totalResults).toBe(0);
      else expectScimError(res, 400, 'invalidFilter');
    }
    expectScimError(await scim(okta, 'GET', '/Groups?count=many'), 400, 'invalidValue');
    expectScimError(await scim(okta, 'GET', '/Groups?sortBy=members.value'), 400, 'invalidValue');
    expectScimError(await scim(okta, 'GET', `/Groups/${UNKNOWN}`), 404);
    expectScimError(await scim(okta, 'GET', '/Groups/not-a-uuid'), 404);
    expectScimError(await scim(okta, 'PUT', `/Groups/${UNKNOWN}`, { schemas: [GROUP], displayName: 'Nobody' }), 404);
    expectScimError(await scim('oneid_scim_not-a-real-token', 'GET', '/Groups'), 401);
  });
});
