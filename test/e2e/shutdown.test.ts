// Black-box: how OneID stops and how it refuses to start. On SIGTERM it stops accepting
// connections, finishes every request already in flight, and exits 0. A bad setting stops
// it before it listens, with a message naming the key.
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { childEnv, ROOT, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

let db: TestDatabase;
let env: Record<string, string>;
let batch: { client_id: string; client_secret: string };

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await runCli(['apps', 'create', '--name', 'Batch', '--grant-types', 'client_credentials'], env);
  expect(created.code).toBe(0);
  batch = created.json;
});

afterAll(async () => {
  await db?.drop();
});

/** Resolves 'refused' or 'connected' for a fresh TCP connection to the port. */
function tryConnect(port: number): Promise<'refused' | 'connected'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve('connected'); });
    socket.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? resolve('refused') : reject(err)));
  });
}

interface Pending {
  /** Sends the rest of the body. */
  finish(): void;
  response: Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>;
  /** Resolves once the headers and the first half of the body are on the wire. */
  sent: Promise<void>;
}

/**
 * A client_credentials token request held in flight on purpose: headers and half the body
 * are sent now, the rest only when `finish()` is called. Kept-alive, like a real client.
 */
function tokenRequestInFlight(port: number, agent: http.Agent): Pending {
  const body = 'grant_type=client_credentials';
  const split = 'grant_type=client_'.length;
  const req = http.request({
    host: '127.0.0.1', port, method: 'POST', path: '/token', agent,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
      authorization: `Basic ${Buffer.from(`${batch.client_id}:${batch.client_secret}`).toString('base64')}`,
    },
  });
  const response = new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.once('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  response.catch(() => undefined); // inspected later; no unhandled rejection meanwhile
  req.flushHeaders();
  const sent = new Promise<void>((resolve, reject) => {
    req.write(body.slice(0, split), (err) => (err ? reject(err) : resolve()));
  });
  return { finish: () => req.end(body.slice(split)), response, sent };
}

describe('SIGTERM', () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer(env);
  });

  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('finishes every in-flight request, refuses new connections, and exits 0', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    // Warm up (and prove the app can get tokens at all) on kept-alive connections.
    const warm = tokenRequestInFlight(server.port, agent);
    warm.finish();
    expect((await warm.response).status).toBe(200);

    const inFlight = Array.from({ length: 20 }, () => tokenRequestInFlight(server.port, agent));
    await Promise.all(inFlight.map((p) => p.sent));
    // Give the server time to read the request lines: from then on these are active requests.
    await new Promise((r) => setTimeout(r, 1000));

    const exited = new Promise<number | null>((resolve) => server.process.once('exit', (code) => resolve(code)));
    server.process.kill('SIGTERM');

    // The listener goes away while the 20 requests are still waiting for the rest of their bodies.
    const deadline = Date.now() + 10000;
    let outcome = await tryConnect(server.port);
    while (outcome === 'connected' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      outcome = await tryConnect(server.port);
    }
    expect(outcome).toBe('refused');
    expect(server.process.exitCode).toBeNull(); // still draining

    let settled = 0;
    for (const p of inFlight) void p.response.then(() => { settled += 1; }, () => { settled += 1; });
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(0);

    // Now the clients finish uploading, a few at a time.
    for (const [i, p] of inFlight.entries()) {
      p.finish();
      if (i % 5 === 4) await new Promise((r) => setTimeout(r, 50));
    }
    const results = await Promise.allSettled(inFlight.map((p) => p.response));
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    for (const r of results) {
      const { status, body, headers } = (r as PromiseFulfilledResult<{ status: number; body: string; headers: http.IncomingHttpHeaders }>).value;
      expect(status).toBe(200);
      expect(Buffer.byteLength(body)).toBe(Number(headers['content-length']));
      // A kept-alive client (or load balancer) is told not to reuse its connection to this node.
      expect(headers.connection).toBe('close');
      const json = JSON.parse(body) as { access_token?: string; token_type?: string; expires_in?: number };
      expect(json.token_type).toBe('Bearer');
      expect(json.access_token?.split('.')).toHaveLength(3);
    }

    const code = await exited;
    agent.destroy();
    expect(code).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
    expect(server.output()).not.toContain('grace period over'); // drained, not cut off

    expect(await tryConnect(server.port)).toBe('refused');
  }, 60000);
});

/** Runs the server entry point with exactly `env`, expecting it to stop by itself. */
function startExpectingExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`still running after 60 s:\n${stdout}${stderr}`)); }, 60000);
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stderr, stdout }); });
  });
}

describe('configuration errors at start', () => {
  let dataDir: string;

  beforeAll(() => { dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-config-')); });
  afterAll(() => { fs.rmSync(dataDir, { recursive: true, force: true }); });

  it.each([
    ['PORT', { PORT: 'notaport' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
  ])('exits non-zero and names %s', async (key, bad) => {
    const res = await startExpectingExit({ DATA_DIR: dataDir, ...bad });
    expect(res.code).not.toBe(0);
    expect(res.code).not.toBeNull();
    expect(res.stderr).toMatch(new RegExp(`^oneid: invalid configuration: ${key}: .+$`, 'm'));
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(res.stdout).not.toContain('OneID is listening');
    expect(fs.readdirSync(dataDir)).toEqual([]); // refused before touching any data
  }, 60000);
});
