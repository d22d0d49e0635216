// When PostgreSQL goes away, OneID says so quickly (503, not a hang) and serves again on its
// own within seconds of the database returning.
import { createTestDatabase, ADMIN_DATABASE_URL, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

let db: TestDatabase;
let proxy: TcpProxy;
let server: RunningServer;
let basic: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(ADMIN_DATABASE_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  const viaProxy = new URL(db.url);
  viaProxy.host = `127.0.0.1:${proxy.port}`;
  const env = { DATABASE_URL: viaProxy.toString(), ONEID_MASTER_KEY: testMasterKey() };
  const app = await runCli(['apps', 'create', '--name', 'Svc', '--grant-types', 'client_credentials'], env);
  basic = `Basic ${Buffer.from(`${app.json.client_id}:${app.json.client_secret}`).toString('base64')}`;
  server = await startServer(env);
});

afterAll(async () => {
  await server?.stop();
  await proxy?.close();
  await db?.drop();
});

const token = () => fetch(`${server.url}/token`, {
  method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials',
});

describe('database outage', () => {
  it('answers 503 quickly while the database is gone and recovers by itself', async () => {
    expect((await token()).status).toBe(200);
    await proxy.cut();

    const started = Date.now();
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    const during = await token();
    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toBeTruthy();
    expect(((await during.json()) as { error: string }).error).toBe('temporarily_unavailable');
    const admin = await fetch(`${server.url}/admin/api/v1/users`, { headers: { authorization: 'Bearer x.y.z' } });
    expect([401, 503]).toContain(admin.status);
    expect(Date.now() - started).toBeLessThan(15000);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    await proxy.restore();
    const back = Date.now();
    let recovered = false;
    while (Date.now() - back < 5000) {
      if ((await token()).status === 200) { recovered = true; break; }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(recovered).toBe(true);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });
});
