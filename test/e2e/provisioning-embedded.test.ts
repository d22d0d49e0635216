// Black-box: outbound provisioning on the embedded default (PGlite, one connection shared by the
// server's requests and the job queue). The target is set with the CLI while no server runs; the
// server, once started, pushes the entitled people into a SCIMMY app and follows a suspension.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { childEnv, ROOT, runCli, startServer, type CliResult, type RunningServer } from '../helpers/server.ts';
import { ScimmyApp } from '../helpers/scim-app.ts';
import { until as waitUntil } from '../helpers/until.ts';

const SLOW = 180000; // PGlite's first creation takes 10-20 s, more on a busy machine

let dataDir: string;
let env: Record<string, string>;
let server: RunningServer | undefined;
let scimmy: ScimmyApp;
let people: { id: string; username: string }[];
let adminApp: { client_id: string; client_secret: string };

function cliWithInput(args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['src/bin/oneid.js', ...args], { cwd: ROOT, env: childEnv(env), timeout: SLOW }, (err, stdout, stderr) => {
      let json: unknown;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, json });
    });
    child.stdin!.end(input);
  });
}

const until = async (what: string, fn: () => boolean, ms = 60000): Promise<void> => { await waitUntil(what, fn, ms, 250); };

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-prov-embedded-'));
  env = { DATA_DIR: dataDir, JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_HEARTBEAT_SECONDS: '10' };
  scimmy = new ScimmyApp();
  await scimmy.start();
  // One process at a time on the embedded database: everything is prepared before the server starts.
  people = [];
  for (const username of ['mei', 'ravi']) {
    const made = await runCli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', 'long-enough-pw-1', '--name', `${username} Example`], env);
    expect(made.code).toBe(0);
    people.push(made.json);
  }
  const app = await runCli(['apps', 'create', '--name', 'Chat', '--redirect-uri', 'https://chat.example/cb'], env);
  expect(app.code).toBe(0);
  for (const p of people) expect((await runCli(['assignments', 'create', '--app', app.json.id, '--user', p.id], env)).code).toBe(0);
  const admin = await runCli(['apps', 'create', '--name', 'ops', '--grant-types', 'client_credentials', '--admin-role', 'user_admin'], env);
  expect(admin.code).toBe(0);
  adminApp = admin.json;
  const mapping = path.join(dataDir, 'mapping.json');
  fs.writeFileSync(mapping, JSON.stringify({ 'enterprise.employeeNumber': null, 'enterprise.department': null, 'enterprise.manager': null }));
  const ok = await cliWithInput(['apps', 'provisioning', 'set', '--app', app.json.id, '--base-url', scimmy.url, '--token-file', '-', '--mapping-file', mapping], scimmy.token);
  expect(ok.code).toBe(0);
  server = await startServer(env, { timeoutMs: SLOW });
}, SLOW * 2);

afterAll(async () => {
  await server?.stop('SIGKILL');
  await scimmy?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const inScimmy = (username: string) => [...scimmy.users.values()].filter((u) => u.userName === username);

describe('provisioning on the embedded database', () => {
  it('pushes the entitled people once the server runs, and a suspension after', async () => {
    for (const p of people) await until(`${p.username} in the app`, () => inScimmy(p.username).length === 1);
    expect(inScimmy('mei')[0]).toMatchObject({ externalId: people[0]!.id, active: true });

    const res = await fetch(`${server!.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${adminApp.client_id}:${adminApp.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    const { access_token: token } = await res.json() as { access_token: string };
    const suspended = await fetch(`${server!.url}/admin/api/v1/users/${people[1]!.id}/suspend`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(suspended.status).toBe(200);
    await until('ravi inactive in the app', () => inScimmy('ravi')[0]?.active === false);
    expect(inScimmy('ravi')).toHaveLength(1);
  }, SLOW);
});
