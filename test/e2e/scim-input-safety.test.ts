// Black-box, against a OneID server on a port: input the audit found answered with 500 or
// written where it should not be.
// - A department-scoped SCIM token cannot delete or rename a group with members outside its
//   subtree (403, RFC 7644 3.12 body), over HTTP and inside /Bulk.
// - A SearchRequest with fields of the wrong type is a 400 (invalidFilter for the filter).
// - Text PostgreSQL cannot store (a NUL character, an unpaired surrogate) anywhere in a SCIM or
//   admin API request is a 400 in the protocol's format, writes nothing and logs no error; normal
//   non-ASCII text (accents, emoji: surrogate pairs) is stored as sent.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const SEARCH = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';
const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

let database: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let sql: pg.Client;
let okta: string;
let scoped: string;
let dept: { id: string };
let elsewhere: { id: string };

interface Res { status: number; body: any; headers: Headers }

async function scim(token: string, method: string, path: string, body?: unknown): Promise<Res> {
  const r = await fetch(`${server.url}/scim/v2${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/scim+json', ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
  return { status: r.status, body: parsed, headers: r.headers };
}

function expectScimError(res: Res, status: number, scimType?: string, detail?: RegExp): void {
  expect({ status: res.status, body: res.body }).toMatchObject({ status, body: { schemas: [ERROR], status: String(status), ...(scimType ? { scimType } : {}) } });
  expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json/);
  expect(typeof res.body.detail).toBe('string');
  if (detail) expect(res.body.detail).toMatch(detail);
}

const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH], Operations });
const counts = async () => (await sql.query(`select (select count(*) from users) as users, (select count(*) from groups) as groups,
  (select count(*) from group_members) as members,
  (select count(*) from audit_events where action <> 'write.refused') as audit,
  (select count(*) from audit_events where action = 'write.refused') as refused`)).rows[0];
/** Error-level (50) and fatal (60) lines the server logged since `from`. */
const errorLogs = (from: number) => server.output().slice(from).split('\n').filter((l) => /"level":(50|60)/.test(l));

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_scim_input_safety');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['user_admin']);
  okta = (await runCli(['scim-tokens', 'create', '--name', 'Okta'], env)).json.token;
  dept = (await admin.call('POST', '/departments', { name: 'Sales' })).body;
  elsewhere = (await admin.call('POST', '/departments', { name: 'Finance' })).body;
  scoped = (await runCli(['scim-tokens', 'create', '--name', 'Sales HR', '--department', dept.id], env)).json.token;
  sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
}, 120000);

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await database?.drop();
});

let n = 0;
async function person(department?: { id: string }): Promise<string> {
  n += 1;
  const res = await admin.call('POST', '/users', { username: `safety-person${n}`, email: `safety-person${n}@example.com` });
  expect(res.status).toBe(201);
  if (department) expect((await admin.call('POST', `/departments/${department.id}/members`, { userId: res.body.id, primary: true })).status).toBeLessThan(300);
  return res.body.id;
}

describe('a department-scoped token and a group with members outside its subtree', () => {
  it('cannot DELETE it, rename it by PUT or PATCH, or do either inside /Bulk (403); the group stays for everyone', async () => {
    const [inside, outside] = [await person(dept), await person(elsewhere)];
    const g = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Shared', externalId: 'shared-1', members: [{ value: inside }, { value: outside }] })).body;
    const before = await counts();

    expectScimError(await scim(scoped, 'DELETE', `/Groups/${g.id}`), 403, undefined, /cannot be deleted.*members outside the department of this SCIM token/);
    expectScimError(await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'replace', path: 'displayName', value: 'Hijacked' })), 403, undefined, /displayName and externalId/);
    expectScimError(await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'replace', path: 'externalId', value: 'x' })), 403);
    expectScimError(await scim(scoped, 'PUT', `/Groups/${g.id}`, { schemas: [GROUP], displayName: 'Hijacked', externalId: 'shared-1' }), 403);
    const bulk = await scim(scoped, 'POST', '/Bulk', { schemas: [BULK], Operations: [
      { method: 'PATCH', path: `/Groups/${g.id}`, data: patchOp({ op: 'replace', path: 'displayName', value: 'Bulk hijack' }) },
      { method: 'DELETE', path: `/Groups/${g.id}` },
    ] });
    expect(bulk.status).toBe(200);
    expect(bulk.body.Operations.map((o: { status: string }) => o.status)).toEqual(['403', '403']);
    expect(bulk.body.Operations[1].response).toMatchObject({ schemas: [ERROR], status: '403' });

    // Nothing changed; each of the six refusals is recorded as one write.refused event.
    expect(await counts()).toEqual({ ...before, refused: String(Number(before.refused) + 6) });
    const seen = await scim(okta, 'GET', `/Groups/${g.id}`);
    expect(seen.status).toBe(200);
    expect(seen.body).toMatchObject({ displayName: 'Shared', externalId: 'shared-1' });
    expect(seen.body.members.map((m: { value: string }) => m.value).sort()).toEqual([inside, outside].sort());
  });

  it('still adds and removes its own people (also with a PUT that keeps the name); an unscoped token still renames and deletes', async () => {
    const [inside, newcomer, outside] = [await person(dept), await person(dept), await person(elsewhere)];
    const g = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Shared 2', members: [{ value: inside }, { value: outside }] })).body;
    expect((await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: newcomer }] }))).status).toBe(204);
    expect((await scim(scoped, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'remove', path: `members[value eq "${inside}"]` }))).status).toBe(204);
    const put = await scim(scoped, 'PUT', `/Groups/${g.id}`, { schemas: [GROUP], displayName: 'Shared 2', members: [{ value: inside }] });
    expect(put.status).toBe(200);
    const all = (await scim(okta, 'GET', `/Groups/${g.id}`)).body.members.map((m: { value: string }) => m.value).sort();
    expect(all).toEqual([inside, outside].sort());
    expect((await scim(okta, 'PATCH', `/Groups/${g.id}`, patchOp({ op: 'replace', path: 'displayName', value: 'Renamed by Okta' }))).status).toBe(204);
    expect((await scim(okta, 'DELETE', `/Groups/${g.id}`)).status).toBe(204);
    expect((await scim(okta, 'GET', `/Groups/${g.id}`)).status).toBe(404);
  });

  it('may rename and delete a group whose members are all its own, and an empty one', async () => {
    const [a, b] = [await person(dept), await person(dept)];
    const own = (await scim(scoped, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Sales only', members: [{ value: a }, { value: b }] })).body;
    expect((await scim(scoped, 'PATCH', `/Groups/${own.id}`, patchOp({ op: 'replace', path: 'displayName', value: 'Sales only, renamed' }))).status).toBe(204);
    expect((await scim(scoped, 'DELETE', `/Groups/${own.id}`)).status).toBe(204);
    const empty = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Nobody yet' })).body;
    expect((await scim(scoped, 'DELETE', `/Groups/${empty.id}`)).status).toBe(204);
  });
});

describe('a SearchRequest with fields of the wrong type', () => {
  it.each(['/Users/.search', '/Groups/.search'])('%s: a filter that is not a string is a 400 invalidFilter', async (path) => {
    const from = server.output().length;
    for (const filter of [5, true, {}, ['x'], { op: 'eq' }, 0, false]) {
      const res = await scim(okta, 'POST', path, { schemas: [SEARCH], filter });
      try {
        expectScimError(res, 400, 'invalidFilter', /filter must be/);
      } catch (e) {
        throw new Error(`filter ${JSON.stringify(filter)}: ${(e as Error).message}`);
      }
    }
    expect(errorLogs(from)).toEqual([]);
  });

  it.each(['/Users/.search', '/Groups/.search'])('%s: other fields of the wrong type are 400 invalidValue, never 500', async (path) => {
    const from = server.output().length;
    const bad: Record<string, unknown>[] = [
      { attributes: 5 }, { attributes: {} }, { attributes: [1] }, { attributes: [['userName']] }, { attributes: true },
      { excludedAttributes: 5 }, { excludedAttributes: [{}] }, { excludedAttributes: false },
      { sortBy: 5 }, { sortBy: {} }, { sortBy: ['userName'] }, { sortBy: true },
      { sortOrder: 1 }, { sortOrder: true }, { sortOrder: {} }, { sortOrder: 'sideways' },
      { startIndex: 'one' }, { startIndex: {} }, { startIndex: [1] }, { startIndex: true }, { startIndex: 1.5 }, { startIndex: 1e300 },
      { count: 'ten' }, { count: {} }, { count: [10] }, { count: false }, { count: 2.5 }, { count: -1e300 },
    ];
    for (const fields of bad) {
      const res = await scim(okta, 'POST', path, { schemas: [SEARCH], ...fields });
      try {
        expectScimError(res, 400, 'invalidValue');
      } catch (e) {
        throw new Error(`${JSON.stringify(fields)}: ${(e as Error).message}`);
      }
    }
    expectScimError(await scim(okta, 'POST', path, { schemas: 'nope' }), 400, 'invalidSyntax');
    expect(errorLogs(from)).toEqual([]);
  });

  it.each(['/Users/.search', '/Groups/.search'])('%s: a well-typed SearchRequest still works', async (path) => {
    const res = await scim(okta, 'POST', path, {
      schemas: [SEARCH], filter: path.startsWith('/Users') ? 'userName sw "safety"' : 'displayName pr',
      attributes: ['id'], sortBy: 'id', sortOrder: 'descending', startIndex: 1, count: '2',
    });
    expect(res.status).toBe(200);
    expect(res.body.itemsPerPage).toBeLessThanOrEqual(2);
    const filterNull = await scim(okta, 'POST', path, { schemas: [SEARCH], filter: null, count: 1 });
    expect(filterNull.status).toBe(200);
  });
});

describe('text PostgreSQL cannot store, in SCIM requests', () => {
  const NUL = 'a\u0000b';
  const LONE = 'a\ud800b';

  it('is a 400 invalidValue naming where, in every kind of SCIM body and in /Bulk; nothing is written, no error is logged', async () => {
    const g = (await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Text target' })).body;
    const u = (await scim(okta, 'POST', '/Users', { schemas: [USER], userName: 'text-target' })).body;
    expect([g.id, u.id].every(Boolean)).toBe(true);
    const before = await counts();
    const from = server.output().length;
    const attempts: [string, string, unknown, RegExp][] = [];
    for (const [bad, why] of [[NUL, /NUL character/], [LONE, /unpaired UTF-16 surrogate/]] as const) {
      attempts.push(
        ['POST', '/Users', { schemas: [USER], userName: bad }, /^userName: /],
        ['POST', '/Users', { schemas: [USER], userName: 'fine', name: { givenName: bad } }, /^name\.givenName: /],
        ['POST', '/Users', { schemas: [USER], userName: 'fine', emails: [{ value: 'x@example.com', type: bad }] }, /^emails\[0\]\.type: /],
        ['POST', '/Users', { schemas: [USER], userName: 'fine', [`x${bad}`]: 'v' }, /^an attribute name in the request body: /],
        ['PUT', `/Users/${u.id}`, { schemas: [USER], userName: 'text-target', displayName: bad }, /^displayName: /],
        ['PATCH', `/Users/${u.id}`, patchOp({ op: 'replace', path: 'displayName', value: bad }), /^Operations\[0\]\.value: /],
        ['PATCH', `/Users/${u.id}`, patchOp({ op: 'replace', value: { [`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`]: bad } }), /department/],
        ['POST', '/Groups', { schemas: [GROUP], displayName: bad }, /^displayName: /],
        ['PUT', `/Groups/${g.id}`, { schemas: [GROUP], displayName: 'Text target', externalId: bad }, /^externalId: /],
        ['PATCH', `/Groups/${g.id}`, patchOp({ op: 'add', path: 'members', value: [{ value: u.id, display: bad }] }), /^Operations\[0\]\.value\[0\]\.display: /],
        ['PATCH', `/Groups/${g.id}`, patchOp({ op: 'remove', path: `members[display eq "${bad}"]` }), /^Operations\[0\]\.path: /],
        ['POST', '/Users/.search', { schemas: [SEARCH], filter: `userName eq "${bad}"` }, /^filter: /],
        ['POST', '/Groups/.search', { schemas: [SEARCH], filter: `displayName eq "${bad}"` }, /^filter: /],
        ['POST', '/Bulk', { schemas: [BULK], Operations: [
          { method: 'POST', bulkId: 'ok', path: '/Users', data: { schemas: [USER], userName: 'bulk-fine' } },
          { method: 'POST', bulkId: 'bad', path: '/Groups', data: { schemas: [GROUP], displayName: bad, members: [{ value: 'bulkId:ok' }] } },
        ] }, /^Operations\[1\]\.data\.displayName: /],
      );
      for (const [method, path, body, where] of attempts.splice(0)) {
        const res = await scim(okta, method, path, body);
        try {
          expectScimError(res, 400, 'invalidValue', where);
          expect(res.body.detail).toMatch(why);
        } catch (e) {
          throw new Error(`${method} ${path} ${JSON.stringify(body)}: ${(e as Error).message}`);
        }
      }
    }
    expect(await counts()).toEqual(before);
    expect(errorLogs(from)).toEqual([]);
  });

  it('is a 400 invalidValue in query parameters (filter, attributes, anything), with no error logged', async () => {
    const from = server.output().length;
    for (const query of ['filter=userName%20eq%20%22a%00b%22', 'filter=%00', 'attributes=userName%00', 'excludedAttributes=%00', 'sortBy=%00', 'x%00=1', 'count=1%00']) {
      for (const path of ['/Users', '/Groups']) {
        const res = await scim(okta, 'GET', `${path}?${query}`);
        try {
          expectScimError(res, 400, 'invalidValue', /NUL character/);
        } catch (e) {
          throw new Error(`GET ${path}?${query}: ${(e as Error).message}`);
        }
      }
    }
    expectScimError(await scim(okta, 'GET', `/Users/${'0'.repeat(8)}-0000-0000-0000-000000000000?attributes=%00`), 400, 'invalidValue');
    // An escaped lone surrogate or NUL inside a filter string is the filter's own problem.
    expectScimError(await scim(okta, 'GET', `/Users?filter=${encodeURIComponent('userName eq "a\\ud800"')}`), 400, 'invalidFilter', /unpaired UTF-16 surrogate/);
    expectScimError(await scim(okta, 'GET', `/Groups?filter=${encodeURIComponent('displayName eq "a\\u0000"')}`), 400, 'invalidFilter', /NUL/);
    expect(errorLogs(from)).toEqual([]);
  });

  it('leaves well-formed non-ASCII text alone: accents and emoji (surrogate pairs) are stored and found', async () => {
    const user = await scim(okta, 'POST', '/Users', { schemas: [USER], userName: 'jose.nunez', name: { givenName: 'José', familyName: 'Nuñez 😀' }, displayName: 'José 😀' });
    expect(user.status).toBe(201);
    expect(user.body).toMatchObject({ userName: 'jose.nunez', displayName: 'José 😀', name: { givenName: 'José', familyName: 'Nuñez 😀' } });
    const found = await scim(okta, 'GET', `/Users?filter=${encodeURIComponent('displayName eq "José 😀"')}`);
    expect(found.body.totalResults).toBe(1);
    const escaped = await scim(okta, 'POST', '/Users/.search', { schemas: [SEARCH], filter: 'displayName eq "Jos\\u00e9 \\ud83d\\ude00"' });
    expect(escaped.body.totalResults).toBe(1);
    const group = await scim(okta, 'POST', '/Groups', { schemas: [GROUP], displayName: 'Café 😀', members: [{ value: user.body.id, display: 'Señor 😀' }] });
    expect(group.status).toBe(201);
    expect(group.body).toMatchObject({ displayName: 'Café 😀', members: [{ value: user.body.id, display: 'Señor 😀' }] });
  });
});

describe('text PostgreSQL cannot store, in admin API requests', () => {
  async function expectProblem(res: { status: number; body: any; headers: Headers }, field: string, why: RegExp): Promise<void> {
    expect({ status: res.status, code: res.body?.code }).toEqual({ status: 400, code: 'request.invalid_text' });
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 400, title: 'request.invalid_text', field });
    expect(res.body.detail).toMatch(why);
  }

  it('is a 400 request.invalid_text problem for query parameters, bodies and keys; nothing is written, no error is logged', async () => {
    const target = await person();
    const before = await counts();
    const from = server.output().length;
    await expectProblem(await admin.call('GET', '/users?q=%00'), 'q', /^q: text must not contain the NUL character/);
    await expectProblem(await admin.call('GET', '/users?q=a%00b&limit=5'), 'q', /NUL/);
    await expectProblem(await admin.call('GET', '/groups?q=%00'), 'q', /NUL/);
    for (const [bad, why] of [['a\u0000b', /NUL character/], ['a\ud800b', /unpaired UTF-16 surrogate/], ['\udc00', /unpaired/]] as const) {
      await expectProblem(await admin.call('POST', '/users', { username: `x${bad}` }), 'username', why);
      await expectProblem(await admin.call('POST', '/users', { username: 'fine-name', name: bad }), 'name', why);
      await expectProblem(await admin.call('PATCH', `/users/${target}`, { title: bad }), 'title', why);
      await expectProblem(await admin.call('PATCH', `/users/${target}`, { customAttributes: { [`k${bad}`]: 'v' } }), 'customAttributes', why);
      await expectProblem(await admin.call('PATCH', `/users/${target}`, { customAttributes: { k: [bad] } }), 'customAttributes.k[0]', why);
      await expectProblem(await admin.call('POST', '/groups', { name: bad }), 'name', why);
      await expectProblem(await admin.call('POST', '/departments', { name: bad }), 'name', why);
    }
    expect(await counts()).toEqual(before);
    expect(errorLogs(from)).toEqual([]);
  });

  it('accepts accents and emoji', async () => {
    const res = await admin.call('POST', '/users', { username: 'maría.josé', name: 'María José 😀' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ username: 'maría.josé', name: 'María José 😀' });
    const found = await admin.call('GET', `/users?q=${encodeURIComponent('María')}`);
    expect(found.status).toBe(200);
    const dept2 = await admin.call('POST', '/departments', { name: 'Ventas 😀' });
    expect(dept2.status).toBe(201);
  });
});
