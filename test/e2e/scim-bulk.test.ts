// Black-box: POST /scim/v2/Bulk (RFC 7644 section 3.7) against a OneID server on a port:
// bulkId cross-references resolved in dependency order, failOnErrors, the advertised limits
// (413), circular references (409), and per-operation results.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

const BULK_REQUEST = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const BULK_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

let database: TestDatabase;
let server: RunningServer;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_scim_bulk');
  const env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  token = (await runCli(['scim-tokens', 'create', '--name', 'HR bulk'], env)).json.token;
}, 120000);

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

async function scim(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${server.url}/scim/v2${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

const bulk = (Operations: unknown[], extra: Record<string, unknown> = {}) => scim('POST', '/Bulk', { schemas: [BULK_REQUEST], ...extra, Operations });
const userOp = (bulkId: string, userName: string) => ({ method: 'POST', path: '/Users', bulkId, data: { schemas: [USER], userName, name: { givenName: userName } } });

describe('POST /Bulk', () => {
  it('creates a user and a group that references it by bulkId, even when the group comes first', async () => {
    const res = await bulk([
      { method: 'POST', path: '/Groups', bulkId: 'team', data: { schemas: [GROUP], displayName: 'Bulk Team', members: [{ value: 'bulkId:ada' }, { value: 'bulkId:bob' }] } },
      userOp('ada', 'bulk.ada'),
      userOp('bob', 'bulk.bob'),
      { method: 'PATCH', path: '/Groups/bulkId:team', data: { schemas: [PATCH], Operations: [{ op: 'remove', path: 'members[value eq "bulkId:bob"]' }] } },
    ]);
    expect(res.status).toBe(200);
    expect(res.body.schemas).toEqual([BULK_RESPONSE]);
    const [group, ada, bob, patch] = res.body.Operations;
    expect(ada).toMatchObject({ method: 'POST', bulkId: 'ada', status: '201', location: expect.stringMatching(/\/scim\/v2\/Users\/[0-9a-f-]{36}$/), version: expect.stringMatching(/^W\/"/) });
    expect(bob).toMatchObject({ method: 'POST', bulkId: 'bob', status: '201' });
    expect(group).toMatchObject({ method: 'POST', bulkId: 'team', status: '201', location: expect.stringMatching(/\/scim\/v2\/Groups\/[0-9a-f-]{36}$/), version: 'W/"1"' });
    expect(patch).toMatchObject({ method: 'PATCH', status: '204', location: group.location, version: 'W/"2"' });
    const adaId = ada.location.split('/').pop();
    const g = await scim('GET', `/Groups/${group.location.split('/').pop()}`);
    expect(g.body.members.map((m: { value: string }) => m.value)).toEqual([adaId]);
  });

  it('runs every operation in its own transaction and reports each result', async () => {
    const existing = await bulk([{ method: 'POST', path: '/Groups', bulkId: 'x', data: { schemas: [GROUP], displayName: 'Already there' } }]);
    const gid = existing.body.Operations[0].location.split('/').pop();
    const res = await bulk([
      { method: 'POST', path: '/Groups', bulkId: 'dup', data: { schemas: [GROUP], displayName: 'already THERE' } },
      { method: 'PUT', path: `/Groups/${gid}`, version: 'W/"7"', data: { schemas: [GROUP], displayName: 'Stale put' } },
      { method: 'PATCH', path: `/Groups/${gid}`, data: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'displayName', value: 'Renamed in bulk' }] } },
      { method: 'DELETE', path: '/Groups/7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f' },
      { method: 'GET', path: `/Groups/${gid}` },
      { method: 'POST', path: '/Groups', data: { schemas: [GROUP], displayName: 'No bulkId' } },
      { method: 'POST', path: '/Teams', bulkId: 't', data: {} },
    ]);
    expect(res.status).toBe(200);
    const statuses = res.body.Operations.map((o: { status: string }) => o.status);
    expect(statuses).toEqual(['409', '412', '204', '404', '400', '400', '400']);
    expect(res.body.Operations[0].response).toMatchObject({ schemas: [ERROR], status: '409', scimType: 'uniqueness' });
    for (const op of res.body.Operations.filter((o: { status: string }) => o.status !== '204')) expect(typeof op.response.detail).toBe('string');
    expect((await scim('GET', `/Groups/${gid}`)).body.displayName).toBe('Renamed in bulk');
  });

  it('stops after failOnErrors errors and lists only what ran', async () => {
    const res = await bulk([
      userOp('f1', 'fail.one'),
      userOp('f2', 'fail.one'),
      { method: 'POST', path: '/Groups', bulkId: 'g', data: { schemas: [GROUP] } },
      userOp('f3', 'fail.three'),
    ], { failOnErrors: 2 });
    expect(res.status).toBe(200);
    expect(res.body.Operations.map((o: { bulkId: string; status: string }) => [o.bulkId, o.status])).toEqual([['f1', '201'], ['f2', '409'], ['g', '400']]);
    const list = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "fail.three"')}`);
    expect(list.body.totalResults).toBe(0);
    expect((await bulk([userOp('bad', '')], { failOnErrors: 0 })).status).toBe(400);
  });

  it('refuses circular bulkId references with 409, and references to unknown or failed bulkIds with 400', async () => {
    const res = await bulk([
      { method: 'POST', path: '/Groups', bulkId: 'a', data: { schemas: [GROUP], displayName: 'Cycle A', members: [{ value: 'bulkId:b' }] } },
      { method: 'POST', path: '/Groups', bulkId: 'b', data: { schemas: [GROUP], displayName: 'Cycle B', members: [{ value: 'bulkId:a' }] } },
      { method: 'POST', path: '/Groups', bulkId: 'c', data: { schemas: [GROUP], displayName: 'Waits on the cycle', members: [{ value: 'bulkId:a' }] } },
      { method: 'POST', path: '/Groups', bulkId: 'd', data: { schemas: [GROUP], displayName: 'Unknown ref', members: [{ value: 'bulkId:nobody' }] } },
      { method: 'POST', path: '/Groups', bulkId: 'e', data: { schemas: [GROUP], displayName: 'Independent' } },
    ]);
    expect(res.status).toBe(200);
    const byId = Object.fromEntries(res.body.Operations.map((o: { bulkId: string }) => [o.bulkId, o]));
    expect(byId.a).toMatchObject({ status: '409', response: { status: '409', detail: expect.stringContaining('circular bulkId references: "a" -> "b" -> "a"') } });
    expect(byId.b).toMatchObject({ status: '409', response: { detail: expect.stringContaining('circular bulkId references: "b" -> "a" -> "b"') } });
    expect(byId.c).toMatchObject({ status: '409', response: { detail: expect.stringContaining('caught in circular references') } });
    expect(byId.d).toMatchObject({ status: '400', response: { scimType: 'invalidValue', detail: expect.stringContaining('"nobody"') } });
    expect(byId.e).toMatchObject({ status: '201' });
    // Results come back in request order.
    expect(res.body.Operations.map((o: { bulkId: string }) => o.bulkId)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const names = (await scim('GET', `/Groups?filter=${encodeURIComponent('displayName sw "Cycle"')}`)).body;
    expect(names.totalResults).toBe(0);
  });

  it('answers a ring of 1,000 bulkId references with a short 409 per operation and a bounded response', async () => {
    const n = 1000;
    const id = (i: number) => `ring-${String(i).padStart(4, '0')}-${'x'.repeat(60)}`;
    const ops = Array.from({ length: n }, (_, i) => ({
      method: 'POST', path: '/Groups', bulkId: id(i), data: { schemas: [GROUP], displayName: `Ring ${i}`, members: [{ value: `bulkId:${id((i + 1) % n)}` }] },
    }));
    const r = await fetch(`${server.url}/scim/v2/Bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify({ schemas: [BULK_REQUEST], Operations: ops }),
    });
    const text = await r.text();
    expect(r.status).toBe(200);
    // Each result echoes its bulkId (RFC 7644 3.7.3); the rest is a short error, not the whole ring.
    expect(text.length).toBeLessThan(500_000);
    const body = JSON.parse(text);
    expect(body.Operations).toHaveLength(n);
    for (const [i, o] of (body.Operations as { bulkId: string; status: string; response: { status: string; detail: string } }[]).entries()) {
      expect(o).toMatchObject({ bulkId: id(i), status: '409', response: { status: '409' } });
      expect(o.response.detail.length).toBeLessThan(250);
    }
    expect(body.Operations[0].response.detail).toContain(`circular bulkId references: "${id(0).slice(0, 32)}..." -> "${id(1).slice(0, 32)}..." -> ... -> "${id(0).slice(0, 32)}..." (1000 operations)`);
    expect(body.Operations[0].response.detail).toContain('(1000 operations)');
    expect((await scim('GET', `/Groups?filter=${encodeURIComponent('displayName sw "Ring "')}`)).body.totalResults).toBe(0);
  });

  it('answers an operation with a malformed percent-encoded path with 400 for that operation only', async () => {
    const res = await bulk([
      { method: 'PATCH', path: '/Users/%E0%A4%A', data: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'displayName', value: 'x' }] } },
      { method: 'DELETE', path: '/Groups/%E0%A4%A' },
      { method: 'PUT', path: '/Users/%', data: { schemas: [USER], userName: 'nobody' } },
      userOp('fine', 'bulk.fine'),
    ]);
    expect(res.status).toBe(200);
    const [patch, del, put, fine] = res.body.Operations;
    for (const o of [patch, del, put]) {
      expect(o).toMatchObject({ status: '400', response: { schemas: [ERROR], status: '400', scimType: 'invalidValue', detail: expect.stringContaining('percent-encoded') } });
    }
    expect(fine).toMatchObject({ bulkId: 'fine', status: '201' });
  });

  it('answers an operation whose data nests 200,000 levels deep with 400 for that operation only', async () => {
    const depth = 200_000;
    const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const raw = `{"schemas":["${BULK_REQUEST}"],"Operations":[`
      + `{"method":"POST","path":"/Groups","bulkId":"deep","data":{"schemas":["${GROUP}"],"displayName":"Deep","members":${deep}}},`
      + `{"method":"PATCH","path":"/Groups/bulkId:deep","data":${deep}},`
      + `${JSON.stringify(userOp('shallow', 'bulk.shallow'))}]}`;
    const res = await scim('POST', '/Bulk', raw);
    expect(res.status).toBe(200);
    const [post, patch, shallow] = res.body.Operations;
    expect(post).toMatchObject({ bulkId: 'deep', status: '400', response: { schemas: [ERROR], status: '400', detail: expect.stringContaining('levels deep') } });
    expect(patch).toMatchObject({ status: '400', response: { status: '400' } });
    expect(shallow).toMatchObject({ bulkId: 'shallow', status: '201' });
    // The same body outside Bulk is a 400 for the request.
    const direct = await scim('POST', '/Groups', `{"schemas":["${GROUP}"],"displayName":"Deep","members":${deep}}`);
    expect(direct).toMatchObject({ status: 400, body: { schemas: [ERROR], scimType: 'invalidSyntax', detail: expect.stringContaining('levels deep') } });
    expect((await scim('GET', '/ServiceProviderConfig')).status).toBe(200);
  });

  it('answers more than maxOperations operations, and a body over maxPayloadSize, with 413', async () => {
    const config = (await scim('GET', '/ServiceProviderConfig')).body;
    expect(config.bulk).toMatchObject({ supported: true, maxOperations: 1000, maxPayloadSize: 1048576 });
    const tooMany = await bulk(Array.from({ length: 1001 }, (_, i) => ({ method: 'DELETE', path: `/Groups/${i}` })));
    expect(tooMany.status).toBe(413);
    expect(tooMany.body).toMatchObject({ schemas: [ERROR], status: '413', detail: expect.stringContaining('1000') });
    const big = await bulk([{ method: 'POST', path: '/Groups', bulkId: 'big', data: { schemas: [GROUP], displayName: 'Big', description: 'x'.repeat(1048576) } }]);
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ schemas: [ERROR], status: '413' });
    expect(typeof big.body.detail).toBe('string');
    expect((await scim('GET', `/Groups?filter=${encodeURIComponent('displayName eq "Big"')}`)).body.totalResults).toBe(0);
  });

  it('answers a malformed bulk request with 400', async () => {
    expect(await scim('POST', '/Bulk', { Operations: [] })).toMatchObject({ status: 400, body: { scimType: 'invalidSyntax' } });
    expect(await scim('POST', '/Bulk', { schemas: [BULK_REQUEST], Operations: 'all of them' })).toMatchObject({ status: 400, body: { scimType: 'invalidSyntax' } });
    expect(await scim('POST', '/Bulk', '{"schemas": [')).toMatchObject({ status: 400, body: { scimType: 'invalidSyntax' } });
    expect(await bulk([userOp('same', 'same.one'), userOp('same', 'same.two')])).toMatchObject({ status: 400, body: { scimType: 'invalidValue' } });
    expect(await bulk([])).toMatchObject({ status: 200, body: { schemas: [BULK_RESPONSE], Operations: [] } });
  });
});
