// Microsoft's SCIM reference test collection (../shared/conformance/scim, MIT) run with newman
// against OneID: `npm run conformance:scim`.
//
// Without SCIM_URL, it creates a fresh PostgreSQL database (on TEST_DATABASE_URL, DATABASE_URL or
// postgres://postgres@127.0.0.1:5432/postgres), starts OneID on a free port, creates a SCIM
// token with the CLI, runs the folders "Endpoint tests" through "Teardown garbage" ("Get Token"
// is skipped: OneID issues tokens with `oneid scim-tokens create`), prints newman's summary, then
// stops the server and drops the database. With SCIM_URL (e.g. http://localhost:3000/scim/v2)
// and SCIM_TOKEN it runs against that server instead.
//
// Exit code: 0 only when every assertion passes and every request got an answer; 1 otherwise.
// `--report FILE` writes the run as JSON (used by test/e2e/scim-conformance.test.ts). Where OneID
// reads the collection's requests leniently (member ids as bare strings, `displayName` as a
// member's label, ids that name no user), the README says so and why.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { freePort } from '../helpers/server.ts';

/** The part of newman's API used here (newman ships no types). */
interface NewmanRunSummary { run: { stats: Record<'requests' | 'assertions', { total?: number; failed?: number }> } }
interface Newman {
  run(options: Record<string, unknown>, callback: (err: Error | null, summary: NewmanRunSummary) => void): EventEmitter;
}
const newman = createRequire(import.meta.url)('newman') as Newman;

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const COLLECTION = path.resolve(ROOT, '../shared/conformance/scim/ms-scim-reference.postman.json');
export const FOLDERS = [
  'Endpoint tests', 'User tests', 'Group tests', 'ComplexAttribute tests',
  'User tests with garbage', 'Group tests with garbage', 'Teardown garbage',
];

export interface AssertionFailure {
  folder: string;
  request: string;
  assertion: string;
  message: string;
}

export interface ExecutedRequest {
  folder: string;
  name: string;
  method: string;
  url: string;
  status?: number;
  body?: string;
  error?: string;
}

export interface ConformanceReport {
  target: string;
  assertions: { total: number; failed: number };
  requests: { total: number; failed: number };
  failures: AssertionFailure[];
  executed: ExecutedRequest[];
}

// -- a OneID to test, unless SCIM_URL is given ---------------------------------------------------


interface Target { scimUrl: string; token: string; stop(): Promise<void> }

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', LOG_LEVEL: 'warn', ...env };
}

async function startOneId(log: (line: string) => void): Promise<Target> {
  const adminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `oneid_conformance_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try { await admin.query(`create database ${dbName}`); } finally { await admin.end(); }
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${dbName}`;
  const dropDatabase = async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try { await c.query(`drop database if exists ${dbName} with (force)`); } finally { await c.end(); }
  };

  const port = await freePort();
  const env = { DATABASE_URL: dbUrl.toString(), ONEID_MASTER_KEY: randomBytes(32).toString('base64url') };
  let child: ChildProcess | undefined;
  let output = '';
  try {
    child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT, env: childEnv({ ...env, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://localhost:${port}` }), stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const deadline = Date.now() + 60000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`OneID exited with ${child.exitCode}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`OneID did not become ready:\n${output}`);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) break;
      await new Promise((r) => setTimeout(r, 150));
    }
    const token = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['src/bin/oneid.js', 'scim-tokens', 'create', '--name', 'Microsoft SCIM conformance'], { cwd: ROOT, env: childEnv(env) }, (err, stdout, stderr) => {
        if (err) reject(new Error(`oneid scim-tokens create failed: ${stderr}`));
        else resolve((JSON.parse(stdout) as { token: string }).token);
      });
    });
    log(`OneID started on port ${port} with a fresh database (${dbName})`);
    const proc = child;
    return {
      scimUrl: `http://localhost:${port}/scim/v2`,
      token,
      stop: async () => {
        if (proc.exitCode === null) {
          const exited = new Promise((r) => proc.once('exit', r));
          proc.kill('SIGTERM');
          await exited;
        }
        await dropDatabase();
      },
    };
  } catch (err) {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await dropDatabase();
    throw err;
  }
}

// -- the run -------------------------------------------------------------------------------------

/** newman's variables from a SCIM base URL: {{Protocol}}://{{Server}}{{Port}}/{{Api}} (Port includes the colon). */
export function collectionVariables(scimUrl: string, token: string): Record<string, string> {
  const u = new URL(scimUrl);
  return {
    token,
    Protocol: u.protocol.replace(/:$/, ''),
    Server: u.hostname,
    Port: u.port ? `:${u.port}` : '',
    Api: u.pathname.replace(/^\/+|\/+$/g, ''),
  };
}

export async function runConformance(opts: { scimUrl: string; token: string; reporters?: string[] }): Promise<ConformanceReport> {
  const collection = JSON.parse(fs.readFileSync(COLLECTION, 'utf8')) as { item: { name: string; item?: { name: string }[] }[] };
  const folderOf = new Map<string, string>();
  for (const folder of collection.item) for (const item of folder.item ?? []) if (!folderOf.has(item.name)) folderOf.set(item.name, folder.name);
  const variables = collectionVariables(opts.scimUrl, opts.token);
  const asList = Object.entries(variables).map(([key, value]) => ({ key, value, enabled: true }));
  const executed: ExecutedRequest[] = [];
  const failures: AssertionFailure[] = [];

  const summary = await new Promise<NewmanRunSummary>((resolve, reject) => {
    const run = newman.run({
      collection,
      environment: { name: 'OneID', values: asList },
      globals: { name: 'OneID', values: asList },
      folder: FOLDERS,
      reporters: opts.reporters ?? [],
      timeoutRequest: 30000,
    }, (err, s) => (err ? reject(err) : resolve(s)));
    run.on('request', (err: Error | null, args: any) => {
      const name = String(args?.item?.name ?? '?');
      const response = args?.response;
      executed.push({
        folder: folderOf.get(name) ?? '?',
        name,
        method: String(args?.request?.method ?? ''),
        url: String(args?.request?.url?.toString?.() ?? ''),
        ...(response ? { status: response.code as number, body: String(response.stream?.toString?.('utf8') ?? '').slice(0, 4000) } : {}),
        ...(err ? { error: err.message } : {}),
      });
    });
    run.on('assertion', (err: (Error & { test?: string }) | null, args: any) => {
      if (!err) return;
      const request = String(args?.item?.name ?? '?');
      failures.push({ folder: folderOf.get(request) ?? '?', request, assertion: String(args?.assertion ?? err.test ?? '?'), message: err.message });
    });
  });

  const stats = summary.run.stats;
  return {
    target: opts.scimUrl,
    assertions: { total: stats.assertions.total ?? 0, failed: stats.assertions.failed ?? 0 },
    requests: { total: stats.requests.total ?? 0, failed: stats.requests.failed ?? 0 },
    failures,
    executed,
  };
}

export async function runScimConformance(opts: { reporters?: string[]; log?: (line: string) => void } = {}): Promise<ConformanceReport> {
  const log = opts.log ?? (() => {});
  const given = process.env.SCIM_URL;
  if (given && !process.env.SCIM_TOKEN) throw new Error('SCIM_URL needs SCIM_TOKEN (a token from `oneid scim-tokens create`)');
  const target: Target = given ? { scimUrl: given, token: process.env.SCIM_TOKEN!, stop: async () => {} } : await startOneId(log);
  try {
    return await runConformance({ scimUrl: target.scimUrl, token: target.token, ...(opts.reporters ? { reporters: opts.reporters } : {}) });
  } finally {
    await target.stop();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const reportAt = args.indexOf('--report');
  const reportFile = reportAt >= 0 ? args[reportAt + 1] : undefined;
  const quiet = args.includes('--quiet');
  const report = await runScimConformance({ reporters: quiet ? [] : ['cli'], log: (l) => console.log(l) });
  if (reportFile) fs.writeFileSync(reportFile, JSON.stringify(report, null, 2));
  console.log(`\nSCIM conformance against ${report.target}: ${report.assertions.total} assertions, ${report.assertions.failed} failed; `
    + `${report.requests.total} requests, ${report.requests.failed} failed`);
  if (report.failures.length) {
    console.log(`\n${report.failures.length} failed assertion(s):`);
    for (const f of report.failures) console.log(`  - ${f.folder} / ${f.request} / "${f.assertion}": ${f.message}`);
  }
  const failed = report.requests.failed > 0 || report.assertions.failed > 0 || report.failures.length > 0;
  process.exitCode = failed ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
