// Black-box: the embedded default. No DATABASE_URL and no ONEID_MASTER_KEY, only a DATA_DIR:
// OneID creates its PGlite database and its master key there, keeps the CLI out while the
// server runs, signs a user in, stops cleanly on SIGTERM, and hands the data back to the CLI.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as client from 'openid-client';
import { runCli, startServer, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const SLOW = 180000; // PGlite's first creation takes 10-20 s, more on a busy machine

let dataDir: string;
let env: Record<string, string>;
let server: RunningServer | undefined;
let user: { id: string; username: string; email: string };
let portal: { client_id: string; client_secret: string };

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-embedded-'));
  env = { DATA_DIR: dataDir };
  const created = await runCli(['users', 'create', '--username', 'linus', '--email', 'linus@example.com', '--password', 'just-for-fun-1991', '--name', 'Linus Torvalds'], env);
  expect(created).toMatchObject({ code: 0 });
  user = created.json;
  // One at a time: the embedded database admits a single process.
  const app = await runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env);
  expect(app).toMatchObject({ code: 0 });
  portal = app.json;
  server = await startServer(env, { timeoutMs: SLOW });
}, SLOW * 2);

afterAll(async () => {
  await server?.stop('SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('embedded database (no DATABASE_URL)', () => {
  it('generates DATA_DIR/master.key readable by its owner only', () => {
    const stat = fs.statSync(path.join(dataDir, 'master.key'));
    expect(stat.isFile()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(server!.output()).toContain('"embedded":true');
  });

  it('refuses the CLI quickly with a one-line reason while the server runs', async () => {
    const started = Date.now();
    const res = await runCli(['users', 'create', '--username', 'intruder', '--email', 'intruder@example.com', '--password', 'not-while-running'], env);
    const elapsed = Date.now() - started;
    expect(res.code).not.toBe(0);
    expect(elapsed).toBeLessThan(15000);
    expect(res.stdout).toBe('');
    const lines = res.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('in use');
    expect(lines[0]).toContain(dataDir);
    // The server is unharmed.
    expect((await fetch(`http://127.0.0.1:${server!.port}/readyz`)).status).toBe(200);
  }, SLOW);

  it('signs a user in with code + PKCE and serves userinfo', async () => {
    const config = await client.discovery(new URL(server!.url), portal.client_id, undefined,
      client.ClientSecretBasic(portal.client_secret), { execute: [client.allowInsecureRequests] });
    client.enableNonRepudiationChecks(config);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile email', state, nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const browser = new Browser();
    const page = await browser.navigate(url.toString(), REDIRECT);
    expect(page.status).toBe(200);
    const done = await browser.submit(page, '/login', { login: 'linus@example.com', password: 'just-for-fun-1991' }, REDIRECT);
    expect(done.url.startsWith(REDIRECT)).toBe(true);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.url), {
      pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce,
    });
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ iss: server!.url, sub: user.id, aud: portal.client_id, preferred_username: 'linus', email: 'linus@example.com', name: 'Linus Torvalds' });
    const info = await client.fetchUserInfo(config, tokens.access_token, user.id);
    expect(info).toMatchObject({ sub: user.id, email: 'linus@example.com', preferred_username: 'linus' });
  }, SLOW);

  it('exits 0 on SIGTERM and lets the CLI use the same data afterwards', async () => {
    const jwks = (await (await fetch(`http://127.0.0.1:${server!.port}/jwks`)).json()) as { keys: { kid: string }[] };
    const code = await server!.stop('SIGTERM');
    expect(code).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'oneid.lock'))).toBe(false);

    const created = await runCli(['users', 'create', '--username', 'margaret', '--email', 'margaret@example.com', '--password', 'apollo-guidance-1969'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.json).toMatchObject({ username: 'margaret', email: 'margaret@example.com' });

    // Same database: the keys the server published are the ones the CLI finds.
    const keys = await runCli(['keys', 'list'], env);
    expect(keys.code).toBe(0);
    const kids = (keys.json as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
    expect(kids).toEqual(jwks.keys.map((k) => k.kid).sort());
  }, SLOW);
});
