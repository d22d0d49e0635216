// `oneid apps provisioning ...` as an operator meets it: a subprocess against a real database and
// a real SCIM app (SCIMMY) on a port. The app's token goes in through stdin or a file, never an
// argument, and is never printed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, testMasterKey, type CliResult, runCliWithInput } from '../helpers/server.ts';
import { ScimmyApp } from '../helpers/scim-app.ts';

let database: TestDatabase;
let env: Record<string, string>;
let scimmy: ScimmyApp;
let appId: string;
let userId: string;
const NO_ENTERPRISE = JSON.stringify({ 'enterprise.employeeNumber': null, 'enterprise.department': null, 'enterprise.manager': null });

const cliWithInput = (args: string[], input: string): Promise<CliResult> => runCliWithInput(args, input, env);

const cli = (...args: string[]) => runCli(args, env);

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_cli');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  scimmy = new ScimmyApp();
  await scimmy.start();
  const user = await cli('users', 'create', '--username', 'lin', '--email', 'lin@example.com', '--name', 'Lin Wu', '--password', 'a-long-password-1');
  expect(user.code).toBe(0);
  userId = user.json.id;
  const app = await cli('apps', 'create', '--name', 'Tracker', '--redirect-uri', 'https://tracker.example/cb');
  expect(app.code).toBe(0);
  appId = app.json.id;
  expect((await cli('assignments', 'create', '--app', appId, '--user', userId)).code).toBe(0);
}, 120000);

afterAll(async () => {
  await scimmy?.stop();
  await database?.drop();
});

describe('oneid apps provisioning', () => {
  it('sets a target with the token from stdin and never prints it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-prov-'));
    const mapping = path.join(dir, 'mapping.json');
    fs.writeFileSync(mapping, NO_ENTERPRISE);
    const set = await cliWithInput(['apps', 'provisioning', 'set', '--app', appId, '--base-url', scimmy.url, '--token-file', '-', '--mapping-file', mapping], `${scimmy.token}\n`);
    expect(set.code).toBe(0);
    expect(set.json).toMatchObject({ appId, baseUrl: scimmy.url, enabled: true, rolesAs: 'roles', onUnassign: 'deactivate' });
    expect(set.stdout + set.stderr).not.toContain(scimmy.token);

    const show = await cli('apps', 'provisioning', 'show', '--app', appId);
    expect(show.code).toBe(0);
    expect(show.json.target.baseUrl).toBe(scimmy.url);
    expect(show.json.status.counts).toEqual({ pending: 0, synced: 0, failed: 0 });
    expect(show.stdout).not.toContain(scimmy.token);
  });

  it('reports drift against the real app (no server ran, so the person is missing), and accepts a sync request', async () => {
    const drift = await cli('apps', 'provisioning', 'drift', '--app', appId);
    expect(drift.code).toBe(0);
    expect(drift.json).toMatchObject({ complete: true, counts: { missing: 1, unexpected: 0, different: 0 } });
    expect(drift.json.missing).toEqual([expect.objectContaining({ userId, userName: 'lin' })]);
    expect(scimmy.users.size).toBe(0); // a dry run
    const sync = await cli('apps', 'provisioning', 'sync', '--app', appId);
    expect(sync.code).toBe(0);
    expect(sync.json).toEqual({ accepted: true });
  });

  it('refuses a token on the command line, a bad URL and an unknown app with one line', async () => {
    const asArgument = await cli('apps', 'provisioning', 'set', '--app', appId, '--base-url', scimmy.url, '--token', 'secret-in-argv');
    expect(asArgument.code).toBe(2);
    const bad = await cliWithInput(['apps', 'provisioning', 'set', '--app', appId, '--base-url', 'ftp://tracker.example/scim', '--token-file', '-'], 'tok');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^oneid: .*http or https/);
    const unknown = await cli('apps', 'provisioning', 'show', '--app', '00000000-0000-4000-8000-000000000000');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^oneid: no app with this id/);
  });

  it('removes the target', async () => {
    expect((await cli('apps', 'provisioning', 'remove', '--app', appId)).code).toBe(0);
    const show = await cli('apps', 'provisioning', 'show', '--app', appId);
    expect(show.code).toBe(1);
    expect(show.stderr).toMatch(/no provisioning target/);
  });
});
