// `npm start` builds (prestart: `npm run build`) and runs the compiled server from dist/, with
// no TypeScript loader in the production process. This runs `npm start` itself and checks what
// it serves: migrations at start, the setup page (views found from dist/), discovery and a token.
import fs from 'node:fs';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ROOT, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

let database: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_build');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env, { command: { file: 'npm', args: ['start', '--silent'] }, timeoutMs: 150000 });
}, 180000);

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

describe('the compiled build (npm start)', () => {
  it('was built into dist/', () => {
    expect(fs.existsSync(`${ROOT}/dist/src/main.js`)).toBe(true);
    expect(fs.existsSync(`${ROOT}/dist/src/login/views.js`)).toBe(true);
  });

  it('starts, migrates, and prints a setup link whose page renders', async () => {
    const link = /(http:\/\/localhost:\d+\/setup\?token=[\w-]+)/.exec(server.output())?.[1];
    expect(link).toBeDefined();
    const res = await fetch(link!.replace('localhost', '127.0.0.1'));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<form');
  });

  it('serves discovery and issues a client_credentials token', async () => {
    const discovery = await (await fetch(`http://127.0.0.1:${server.port}/.well-known/openid-configuration`)).json() as { issuer: string; token_endpoint: string };
    expect(discovery.issuer).toBe(server.url);
    const app = (await runCli(['apps', 'create', '--name', 'build check', '--grant-types', 'client_credentials'], env)).json as { client_id: string; client_secret: string };
    const token = await fetch(`http://127.0.0.1:${server.port}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(200);
    expect(await token.json()).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String) });
  });
});
