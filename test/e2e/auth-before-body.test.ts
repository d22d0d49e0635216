// Black-box: SCIM and the admin API check the caller before they read a request body, so an
// anonymous client cannot make OneID receive and buffer uploads. A request whose body never
// finishes arriving is answered at once (401 in each protocol's format, 403 for a caller
// without the role), and the connection is closed instead of reading the rest.
import http from 'node:http';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

let db: TestDatabase;
let server: RunningServer;
let scimToken: string;
let auditor: AdminClient;
let userAdmin: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  scimToken = (await runCli(['scim-tokens', 'create', '--name', 'HR'], env)).json.token;
  server = await startServer(env);
  auditor = await adminClient(server.url, env, ['auditor']);
  userAdmin = await adminClient(server.url, env, ['user_admin']);
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: any; bytesSent: number }

/**
 * Announces a body of `announced` bytes, sends the first KiB and then nothing more: the
 * answer, if it comes within `withinMs`, or undefined.
 */
function stalledUpload(path: string, headers: Record<string, string>, announced: number, withinMs = 5000): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    const req = http.request(`${server.url}${path}`, { method: 'POST', headers: { ...headers, 'content-length': String(announced) } });
    const timer = setTimeout(() => {
      req.destroy();
      resolve(undefined);
    }, withinMs);
    req.on('error', () => undefined);
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined, bytesSent: req.socket?.bytesWritten ?? 0 });
      });
    });
    req.write(`{"userName":"${'a'.repeat(1000)}`);
  });
}

describe('SCIM: the token before the body', () => {
  it.each([
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer not-a-real-token' }],
  ])('answers 401 in the SCIM error format at once to %s, without waiting for a body that never finishes', async (_what, auth: Record<string, string>) => {
    const answer = await stalledUpload('/scim/v2/Users', { ...auth, 'content-type': 'application/scim+json' }, 900 * 1024);
    expect(answer).toBeDefined();
    expect(answer!.status).toBe(401);
    expect(answer!.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
    expect(answer!.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(answer!.headers.connection).toBe('close');
  });

  it('still waits for, and reads, the body of an authenticated request', async () => {
    expect(await stalledUpload('/scim/v2/Users', { authorization: `Bearer ${scimToken}`, 'content-type': 'application/scim+json' }, 64 * 1024, 1500)).toBeUndefined();
  });
});

describe('admin API: the token before the body', () => {
  it.each([
    ['no token', {}],
    ['a wrong token', { authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln' }],
  ])('answers 401 as a JSON problem at once to %s, without waiting for a body that never finishes', async (_what, auth: Record<string, string>) => {
    const answer = await stalledUpload('/admin/api/v1/users', { ...auth, 'content-type': 'application/json' }, 90 * 1024);
    expect(answer).toBeDefined();
    expect(answer!.status).toBe(401);
    expect(answer!.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(answer!.body).toMatchObject({ status: 401 });
    expect(answer!.headers.connection).toBe('close');
  });

  it('answers 401, not 413, to a wrong token announcing a body over the limit', async () => {
    const answer = await stalledUpload('/admin/api/v1/users', { authorization: 'Bearer wrong', 'content-type': 'application/json' }, 50 * 1024 * 1024);
    expect(answer?.status).toBe(401);
  });

  it('answers 403 at once to a caller without the role, and 413 to one with it who announces too much', async () => {
    const forbidden = await stalledUpload('/admin/api/v1/users', { authorization: `Bearer ${auditor.token}`, 'content-type': 'application/json' }, 90 * 1024);
    expect(forbidden?.status).toBe(403);
    expect(forbidden!.body).toMatchObject({ status: 403, code: 'admin.forbidden' });
    const tooLarge = await stalledUpload('/admin/api/v1/users', { authorization: `Bearer ${userAdmin.token}`, 'content-type': 'application/json' }, 50 * 1024 * 1024);
    expect(tooLarge?.status).toBe(413);
    expect(tooLarge!.body).toMatchObject({ status: 413, code: 'request.too_large' });
    // And with the role and a whole body, the request works.
    expect((await userAdmin.call('POST', '/users', { username: 'whole-body' })).status).toBe(201);
  });
});
