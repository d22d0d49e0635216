// Black-box: admin API list cursors are opaque; anything a client forges is a 400 problem with
// a stable code (never a 500), and a cursor from one list is refused by another.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

let db: TestDatabase;
let server: RunningServer;
let admin: AdminClient;
let groupId: string;
let departmentId: string;
let appId: string;

const b64 = (text: string): string => Buffer.from(text).toString('base64url');
const UUID = '2b0c7f5e-8a4d-4c1e-9f0a-3d2e1c0b9a87';

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['super_admin']);
  for (const name of ['ada', 'brian', 'cleo']) {
    expect((await admin.call('POST', '/users', { username: name, email: `${name}@example.com` })).status).toBe(201);
  }
  const g = await admin.call('POST', '/groups', { name: 'paging' });
  groupId = g.body.id;
  const d = await admin.call('POST', '/departments', { name: 'Paging' });
  departmentId = d.body.id;
  const a = await admin.call('POST', '/apps', { name: 'Paging', redirectUris: ['https://paging.example/cb'] });
  appId = a.body.id;
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('GET /admin/api/v1/* ?cursor=', () => {
  const lists = () => [
    '/users', '/apps', `/apps/${appId}/assignments`, '/groups', '/departments', '/audit-events',
    `/groups/${groupId}/members`, `/departments/${departmentId}/members`, `/departments/${departmentId}/descendants`,
  ];
  const forged = [
    'garbage',
    b64('\x00\xff\xfe random bytes \x01'),
    b64('['), b64('{"a":1}'), b64('"x"'), b64('null'), b64('[]'),
    b64('[1,2]'), b64('[null,null]'), b64('[{"a":1},[1]]'),
    b64(`["0000-01-01T00:00:00Z","${UUID}"]`),
    b64(`["users","0000-01-01T00:00:00Z","${UUID}"]`),
    b64(`["users","2026-01-01T00:00:00Z","not-a-uuid"]`),
    b64('["groups","a\\u0000b"]'),
    b64(`["departments","a\\u0000b","${UUID}"]`),
    b64('["groups","\\ud800"]'),
    b64('["audit",1e300]'),
    b64('["audit",-1]'),
  ];

  it('returns 400 request.invalid_cursor as a JSON problem for forged cursors on every list, never 500', async () => {
    const seen: unknown[] = [];
    for (const path of lists()) {
      for (const cursor of forged) {
        const res = await admin.call('GET', `${path}?cursor=${encodeURIComponent(cursor)}`);
        seen.push({ path, cursor, status: res.status, code: res.body?.code, field: res.body?.field, type: res.headers.get('content-type')?.split(';')[0] });
      }
    }
    expect(seen).toEqual(seen.map((s: any) => ({ path: s.path, cursor: s.cursor, status: 400, code: 'request.invalid_cursor', field: 'cursor', type: 'application/problem+json' })));
  });

  it("refuses a cursor from another list, even one whose key has the same shape", async () => {
    const users = await admin.call('GET', '/users?limit=1');
    expect(users.status).toBe(200);
    const cursor = users.body.next_cursor as string;
    expect(cursor).toBeTruthy();
    // The same cursor pages on the list that issued it...
    expect((await admin.call('GET', `/users?limit=1&cursor=${cursor}`)).status).toBe(200);
    // ...and is refused by lists with the same [createdAt, id] key.
    for (const path of ['/apps', `/apps/${appId}/assignments`]) {
      const res = await admin.call('GET', `${path}?limit=1&cursor=${cursor}`);
      expect({ path, status: res.status, code: res.body?.code }).toEqual({ path, status: 400, code: 'request.invalid_cursor' });
    }
    const groupMembers = await admin.call('GET', `/departments/${departmentId}/members?cursor=${b64(JSON.stringify(['groups.members', UUID]))}`);
    expect(groupMembers.status).toBe(400);
  });
});
