// `npm start` runs the compiled build (dist/, from `npm run build`): the TypeScript loader is
// not in the production process. This checks that the build compiles and that what it produces
// serves: migrations at start, the setup page (views found from dist/), discovery and a token.
import { execFile } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { ROOT, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

let database: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;

beforeAll(async () => {
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`npm run build failed:\n${stdout}${stderr}`));
      else resolve();
    });
  });
  database = await createTestDatabase('oneid_test_build');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env, { entry: ['dist/src/main.js'] });
}, 180000);

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

describe('the compiled build (npm start)', () => {
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
