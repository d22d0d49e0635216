// `npm run bench`: OneID's speed on one core, beside the library's own ceiling, in one run.
//
// A fresh PostgreSQL database is created (and dropped at the end); OneID runs pinned to the server
// core (taskset -c 0) with NODE_ENV=production and LOG_LEVEL=warn; every load generator and this
// script run on the load core (taskset -c 1). Each scenario is measured next to its ceiling
// (bare oidc-provider, argon2id one hash at a time, bare koa, xml-crypto signing alone) so the machine's noise cancels in
// the ratio. Goals guard against regressions and sit below this machine's noise. Prints one table
// and diagnostics (CPU split, statements per operation, sign-in CPU per step, query plans of the
// hot paths), writes test/bench/results/latest.json. Not part of `npm test`: CI times nothing.
//
// Settings (env): BENCH_DURATION_S (10) and BENCH_WARMUP_S (2) per measurement,
// BENCH_ROUNDS (3) OneID/ceiling pairs for rows 1-3, 6 and 7 (the median ratio counts),
// BENCH_CONNECTIONS (16) for fixed-request scenarios, BENCH_SIGNIN_USERS (8) virtual users signing in (rows 2 and 6),
// BENCH_ONLY=1,3 to run some scenarios only, BENCH_ID_TOKEN_ALG (ES256) for the web app's ID tokens,
// BENCH_ADMIN_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres), BENCH_KEEP_DB=1 to keep
// the database, BENCH_LOG_LEVEL (warn), BENCH_SERVER_CPU (0) / BENCH_LOAD_CPU (1),
// BENCH_PIN_POSTGRES=0 to leave a local PostgreSQL where the scheduler puts it (by default its
// processes join the load core for the run), BENCH_UV_THREADPOOL_SIZE (1, as npm start sizes it
// for one core), BENCH_NODE_FLAGS (extra node flags for OneID), BENCH_CPU_PROF=1 to write V8 CPU
// profiles into test/bench/results/ (slows OneID down: for diagnosis only). OneID runs as
// `npm start` runs it, the compiled build (built first); BENCH_ONEID_ENTRY=path/to/main.js
// measures another entry point instead.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { createDb } from '../../src/db/knex.ts';
import { createServices } from '../../src/services.ts';
import {
  cpuSeconds, cpuTimes, freePort, machine, memoryBreakdown, machineCpu, peakRssMb, pinPostgres, postgresCpu, postgresCpuDelta, resetPeakRss, rssMb,
  spawnPinned, waitFor200, waitForLine,
} from './lib/proc.ts';
import type { BenchContext, Downstream, Job, LoadResult, Measured, Row, Scenario, Server } from './lib/scenario.ts';
import { countQueries, type QueryCount } from './lib/queries.ts';
import { planDiagnostics, type PlanCheck } from './lib/plans.ts';
import { stepCpu, type StepCpu } from './lib/step-cpu.ts';
import { serverSettingsWarnings, type ServerSettings } from '../../src/db/server-settings.ts';
import { clientCredentials, passwordSignIn, readEndpoints, refreshRotation } from './scenarios/oidc.ts';
import { scim, SCIM_OPERATIONS } from './scenarios/scim.ts';
import { passkeySignIn } from './scenarios/passkey.ts';
import { bareCodeFlow, passkeySignIn as passkeySignInOnce, authenticatorOf } from './lib/passkey-signin.ts';
import { registerPasskeys, type PasskeyUser } from './lib/passkeys.ts';
import { samlSso } from './scenarios/saml.ts';
import { setupSaml, type SamlSetup } from './lib/saml-setup.ts';
import { portalLauncher } from './scenarios/portal.ts';
import { consolePeopleSearch } from './scenarios/console.ts';
import { provisioning } from './scenarios/provisioning.ts';
import { suiteTokenExchange } from './scenarios/suites.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RESULTS = path.join(ROOT, 'test', 'bench', 'results');

/** In order. Scenario 5 (SCIM) is the extension point: see test/bench/scenarios/scim.ts. */
const SCENARIOS: Scenario[] = [clientCredentials, passwordSignIn, refreshRotation, readEndpoints, scim, passkeySignIn, samlSso, consolePeopleSearch, portalLauncher, provisioning, suiteTokenExchange];

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return n;
};

const settings = {
  durationS: num('BENCH_DURATION_S', 10),
  rounds: Math.max(1, Math.round(num('BENCH_ROUNDS', 3))),
  warmupS: num('BENCH_WARMUP_S', 2),
  connections: num('BENCH_CONNECTIONS', 16),
  signinUsers: num('BENCH_SIGNIN_USERS', 8),
  serverCpu: num('BENCH_SERVER_CPU', 0),
  loadCpu: num('BENCH_LOAD_CPU', 1),
  logLevel: process.env.BENCH_LOG_LEVEL || 'warn',
  userPool: 16,
  cpuProfile: process.env.BENCH_CPU_PROF === '1',
  /** Extra node flags for OneID's process (A/B of runtime settings), e.g. --max-semi-space-size=32. */
  nodeFlags: (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
  only: process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',').map((s) => s.trim()) : undefined,
  idTokenAlg: process.env.BENCH_ID_TOKEN_ALG || 'ES256',
  pinPostgres: process.env.BENCH_PIN_POSTGRES !== '0',
  oneidEntry: process.env.BENCH_ONEID_ENTRY ? [process.env.BENCH_ONEID_ENTRY] : ['dist/src/main.js'],
};
const ADMIN_DATABASE_URL = process.env.BENCH_ADMIN_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

const log = (message: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------------------------------------
// Cleanup: whatever happens, stop what we started and drop the database.
const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;
const cleanup = (): Promise<void> => {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
  })();
  return cleaning;
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function adminQuery<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

const nodeEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', ...extra,
});

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['src/bin/oneid.js', ...args], { cwd: ROOT, env, timeout: 120000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`oneid ${args.slice(0, 2).join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(JSON.parse(stdout) as Record<string, string>);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Measuring: a pinned child on the load core (or the server core for the argon2 ceiling) that
// marks its measured window on stderr (@measure-start / @measure-end); we read /proc then.

interface Window { cpu: number; sys: number; main: number; wall: number; us: number; loadGen: number; machine: { busy: number; steal: number }; pg?: Map<number, number> }

/** OneID's measured windows on the monotonic clock (µs), the clock V8 CPU profiles use. */
const profileWindows: { pid: number; what: string; fromUs: number; toUs: number }[] = [];
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
/** CPU seconds of a process's main thread (its tid is its pid). */
const mainThreadCpu = (pid: number): number => {
  const t = cpuTimes(pid, pid);
  return t.user + t.sys;
};

/**
 * Runs `script` pinned to `cpu`, feeding `input`; reads /proc at the window the script marks.
 * `watch.pid`: the server under load (default: the script itself, as for the argon2 ceiling);
 * `watch.oneidPid`: set when that server is OneID (RSS, PostgreSQL CPU).
 */
async function runMeasured(cpu: number, script: string, env: NodeJS.ProcessEnv, input: string, watch: { pid?: number; oneidPid?: number; database?: string; what?: string }): Promise<{ result: LoadResult; measured: Measured }> {
  const p = spawnPinned(cpu, ['--import', 'tsx', script], { cwd: ROOT, env, stdin: true });
  const watched = watch.pid;
  const oneid = watch.oneidPid;
  const canReset = oneid !== undefined && resetPeakRss(oneid);
  let sampledPeak = oneid !== undefined ? rssMb(oneid) : 0;
  const sampler = oneid !== undefined ? setInterval(() => { sampledPeak = Math.max(sampledPeak, rssMb(oneid)); }, 100) : undefined;
  const snap = (pid: number): Window => ({
    cpu: cpuSeconds(pid), sys: cpuTimes(pid).sys, main: mainThreadCpu(pid),
    wall: performance.now(), us: monotonicUs(), loadGen: cpuSeconds(p.pid), machine: machineCpu(),
    ...(oneid !== undefined && watch.database ? { pg: postgresCpu(watch.database) } : {}),
  });
  let start: Window | undefined;
  let end: Window | undefined;
  let stdout = '';
  let buffered = '';
  p.child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  p.child.stderr!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === '@measure-start') start = snap(watched ?? p.pid);
      else if (line === '@measure-end') end = snap(watched ?? p.pid);
    }
  });
  p.child.stdin!.end(input);
  const code = await p.exited;
  if (sampler) clearInterval(sampler);
  if (code !== 0) throw new Error(`${path.basename(script)} exited with ${code}:\n${p.output().slice(-3000)}`);
  const result = JSON.parse(stdout.trim().split('\n').pop() ?? '') as LoadResult;

  const measured: Measured = {
    rps: result.rps, p50: result.p50, p99: result.p99, errors: result.errors, serverCpu: NaN,
    ...(result.requestsPerOp ? { requestsPerOp: result.requestsPerOp } : {}),
    ...(result.stepsMs ? { stepsMs: result.stepsMs } : {}),
    ...(result.statusCodes ? { statusCodes: result.statusCodes } : {}),
    ...(result.firstError ? { firstError: result.firstError } : {}),
  };
  if (oneid !== undefined) measured.peakRssMb = canReset ? Math.max(peakRssMb(oneid), sampledPeak) : sampledPeak;
  if (start && end) {
    profileWindows.push({ pid: watched ?? p.pid, what: watch.what ?? '', fromUs: start.us, toUs: end.us });
    const seconds = (end.wall - start.wall) / 1000;
    measured.serverCpu = (end.cpu - start.cpu) / seconds;
    measured.serverSysCpu = (end.sys - start.sys) / seconds;
    measured.serverMainThreadCpu = (end.main - start.main) / seconds;
    if (start.pg && end.pg) measured.dbCpu = postgresCpuDelta(start.pg, end.pg) / seconds;
    // Server and load generator are one process for the argon2 ceiling.
    if (watched !== undefined) measured.loadGenCpu = (end.loadGen - start.loadGen) / seconds;
    // Everything else that ran meanwhile: the machine's busy time minus ours.
    const ours = measured.serverCpu + (measured.loadGenCpu ?? 0) + (measured.dbCpu ?? 0);
    measured.otherCpu = Math.max(0, (end.machine.busy - start.machine.busy) / seconds - ours);
    measured.steal = (end.machine.steal - start.machine.steal) / seconds;
  }
  return { result, measured };
}

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (n: number | undefined, digits = 0): string => (n === undefined || Number.isNaN(n) ? '' : n.toFixed(digits));

function table(rows: Row[]): string {
  const head = ['#', 'scenario', 'req/s (1 core)', 'p50 ms', 'p99 ms', 'errors', 'peak RSS MB', 'ceiling', 'ceiling req/s', 'ratio', 'goal', 'result'];
  const body = rows.map((r) => [
    r.id,
    r.scenario,
    r.oneid ? fmt(r.oneid.rps, r.oneid.rps < 100 ? 1 : 0) : (r.pass === null ? 'not yet measured' : ''),
    r.oneid ? fmt(r.oneid.p50, 1) : '',
    r.oneid ? fmt(r.oneid.p99, 1) : '',
    r.oneid ? String(r.oneid.errors) : '',
    r.value ?? (r.oneid?.peakRssMb !== undefined ? fmt(r.oneid.peakRssMb) : ''),
    r.ceiling?.name ?? '',
    r.ceiling?.rps !== undefined ? fmt(r.ceiling.rps, r.ceiling.rps < 100 ? 1 : 0) : '',
    r.ratio !== undefined ? `${fmt(r.ratio * 100)}%` : '',
    r.goal,
    r.pass === null ? '-' : r.pass ? 'PASS' : 'FAIL',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

function diagnostics(rows: Row[]): string {
  const out: string[] = [];
  for (const r of rows) {
    if (!r.oneid) continue;
    const parts = [`OneID CPU ${fmt(r.oneid.serverCpu * 100)}% of its core (main thread ${fmt((r.oneid.serverMainThreadCpu ?? NaN) * 100)}%, kernel ${fmt((r.oneid.serverSysCpu ?? NaN) * 100)}%)`];
    if (r.oneid.dbCpu !== undefined) parts.push(`PostgreSQL ${fmt(r.oneid.dbCpu * 100)}% of a core`);
    parts.push(`other work on the machine ${fmt((r.oneid.otherCpu ?? NaN) * 100)}% of a core (ceiling run: ${fmt((r.ceiling?.otherCpu ?? NaN) * 100)}%), steal ${fmt((r.oneid.steal ?? NaN) * 100)}%`);
    if (r.oneid.requestsPerOp) parts.push(`${fmt(r.oneid.requestsPerOp, 1)} HTTP requests per operation`);
    if (r.oneid.stepsMs) parts.push(`mean ms per step: ${Object.entries(r.oneid.stepsMs).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    if (r.oneid.loadGenCpu !== undefined) parts.push(`load generator ${fmt(r.oneid.loadGenCpu * 100)}% of its core`);
    if (r.ceiling?.serverCpu !== undefined) {
      parts.push(`ceiling: CPU ${fmt(r.ceiling.serverCpu * 100)}%, p50 ${fmt(r.ceiling.p50, 1)} ms${r.ceiling.loadGenCpu !== undefined ? `, load generator ${fmt(r.ceiling.loadGenCpu * 100)}%` : ''}`);
    }
    if (r.reference?.rps !== undefined) {
      // A further comparison beside the goal (row 3: OneID's refresh against the bare library's
      // client_credentials; 4b/4c: the bare library on the same path).
      const ceilingShare = r.ceiling?.rps && r.ceiling.name.startsWith('bare oidc-provider')
        ? `; the ceiling ${fmt(r.ceiling.rps / r.reference.rps * 100)}% of it` : '';
      parts.push(`${r.reference.name}: ${fmt(r.reference.rps)} req/s (OneID ${fmt(r.oneid.rps / r.reference.rps * 100)}% of it${ceilingShare})`);
    }
    if (r.oneid.firstError) parts.push(`first error: ${r.oneid.firstError}`);
    if (r.oneid.statusCodes && Object.keys(r.oneid.statusCodes).some((c) => !c.startsWith('2'))) parts.push(`status codes ${JSON.stringify(r.oneid.statusCodes)}`);
    if (r.note) parts.push(r.note);
    out.push(`  ${r.id}: ${parts.join('; ')}`);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const cores = os.availableParallelism();
  if (cores < 2 || Math.max(settings.serverCpu, settings.loadCpu) >= cores || settings.serverCpu === settings.loadCpu) {
    throw new Error(`needs two distinct CPUs (server ${settings.serverCpu}, load ${settings.loadCpu}); this machine has ${cores}`);
  }
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    throw new Error('taskset (util-linux) is required to pin processes to cores');
  }
  // This script, its load generators and the CLI stay off the server core.
  execFileSync('taskset', ['-a', '-cp', String(settings.loadCpu), String(process.pid)], { stdio: 'ignore' });

  if (!process.env.BENCH_ONEID_ENTRY) {
    log('building (npm run build): OneID is measured as npm start runs it');
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }

  const startedAt = new Date();
  const machineAtStart = machine();
  log(`machine: ${machineAtStart.cores} x ${machineAtStart.cpus}, load average ${machineAtStart.load1}; ${settings.durationS} s per measurement after ${settings.warmupS} s warm-up`);
  if (machineAtStart.load1 > 1) log(`warning: load average ${machineAtStart.load1}: other work on this machine will lower every figure (the ratios less so)`);

  // A fresh database.
  const databaseName = `oneid_bench_${randomBytes(5).toString('hex')}`;
  await adminQuery(`create database ${databaseName}`);
  if (process.env.BENCH_KEEP_DB === '1') log(`BENCH_KEEP_DB=1: keeping database ${databaseName}; drop it yourself`);
  else cleanups.push(() => adminQuery(`drop database if exists ${databaseName} with (force)`));
  const dbUrl = new URL(ADMIN_DATABASE_URL);
  dbUrl.pathname = `/${databaseName}`;
  log(`database ${databaseName}`);
  // What a OneID node on this server logs at start (src/db/server-settings.ts), noted for the run.
  const [settingsRow] = await adminQuery<ServerSettings>("select current_setting('autovacuum') as autovacuum, current_setting('track_counts') as track_counts");
  for (const warning of settingsRow ? serverSettingsWarnings(settingsRow) : []) log(`note: ${warning}`);
  // PostgreSQL stands for the database server an installation runs elsewhere: its processes join
  // the load generator on the other core, so that OneID's core is OneID's alone (left to the
  // scheduler, the backends that OneID's queries wake may run on OneID's core).
  let postgresPlacement = 'PostgreSQL unpinned on the same machine';
  if (settings.pinPostgres) {
    // A process the server keeps for its lifetime (a backend would exit with its connection).
    const [backend] = await adminQuery<{ pid: number }>("select pid from pg_stat_activity where backend_type = 'checkpointer'");
    const restore = backend && pinPostgres(backend.pid, settings.loadCpu);
    if (restore) {
      postgresPlacement = `PostgreSQL on CPU ${settings.loadCpu} with the load generator (taskset, for the run)`;
      cleanups.unshift(async () => restore()); // run last: after the servers stop and the database is dropped
    } else {
      log('warning: could not pin PostgreSQL to the load core (not a local process taskset may move); it shares OneID\'s core');
    }
  }
  log(postgresPlacement);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = nodeEnv({
    DATABASE_URL: dbUrl.toString(), ONEID_MASTER_KEY: randomBytes(32).toString('base64url'),
    ISSUER: base, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: settings.logLevel,
    // As `npm start` sizes it for a process on one core (the CPUs it may use): one thread, so
    // one argon2id hash at a time (src/credentials/password.ts), the most one core does.
    UV_THREADPOOL_SIZE: process.env.BENCH_UV_THREADPOOL_SIZE ?? '1',
    // Every virtual user comes from 127.0.0.1: the per-address limit on authorization requests
    // would measure itself, not the sign-in.
    AUTHORIZE_MAX_PER_IP: '100000000',
  });
  fs.mkdirSync(RESULTS, { recursive: true });
  // A diagnostic report on SIGUSR2 (nothing happens until the signal): the V8 heap's share of M1.
  const reports = path.join(RESULTS, 'reports');
  fs.mkdirSync(reports, { recursive: true });
  const oneidArgs = [
    '--expose-gc', // as npm start runs it: the idle collection (src/shared/idle-gc.ts)
    '--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reports}`,
    ...(settings.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${RESULTS}`] : []),
    ...settings.nodeFlags,
    ...settings.oneidEntry,
  ];

  // First start: migrations and signing keys, not part of the start-up figure.
  log('OneID first start (migrations, keys)');
  const first = spawnPinned(settings.serverCpu, settings.oneidEntry, { cwd: ROOT, env });
  cleanups.push(() => first.stop());
  const firstReadyMs = await waitFor200(`${base}/readyz`, first, performance.now());
  await first.stop();

  // Second start: this is the one measured, and the one every scenario runs against.
  const t0 = performance.now();
  const server = spawnPinned(settings.serverCpu, oneidArgs, { cwd: ROOT, env });
  cleanups.push(() => server.stop());
  const readyMs = await waitFor200(`${base}/readyz`, server, t0);
  log(`OneID ready ${round(readyMs, 0)} ms after spawn (first start with migrations: ${round(firstReadyMs, 0)} ms)`);
  await sleep(2000);
  const idleRssAfterStart = rssMb(server.pid);

  // Apps through the CLI, as an operator would; the user pool through the users service.
  log('seeding apps (CLI) and users (users service)');
  const service = await cli(['apps', 'create', '--name', 'bench service', '--grant-types', 'client_credentials'], env);
  const redirectUri = 'https://app.bench.example/callback';
  // ID tokens signed as the ceilings sign their tokens (ES256); BENCH_ID_TOKEN_ALG=RS256 measures
  // the default instead (an RS256 signature costs about 1 ms of CPU here, ES256 about 0.06 ms).
  const web = await cli(['apps', 'create', '--name', 'bench web', '--redirect-uri', redirectUri, '--first-party',
    '--grant-types', 'authorization_code,refresh_token', '--id-token-alg', settings.idTokenAlg], env);
  const users = await seedUsers(env, settings.userPool);

  const ceilings = new Map<string, Promise<Server>>();
  const startCeiling = (name: string, script: string, extra: Record<string, string> = {}): Promise<Server> => {
    if (!ceilings.has(name)) {
      ceilings.set(name, (async () => {
        const cport = await freePort();
        const prof = settings.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${RESULTS}`] : [];
        const p = spawnPinned(settings.serverCpu, [...prof, '--import', 'tsx', script], {
          cwd: ROOT, env: nodeEnv({ PORT: String(cport), ISSUER: `http://127.0.0.1:${cport}`, ...extra }),
        });
        cleanups.push(() => p.stop());
        await waitForLine(p, /listening \d+/);
        if (settings.cpuProfile) log(`ceiling ${name}: pid ${p.pid} (its CPU profile: test/bench/results/CPU.*.${p.pid}.0.*.cpuprofile)`);
        return { base: `http://127.0.0.1:${cport}`, pid: p.pid };
      })());
    }
    return ceilings.get(name)!;
  };

  const loadEnv = nodeEnv({});
  // Scenario 6's client on the bare library: the same redirect URI as OneID's web app.
  const bareCodeFlowApp = { clientId: 'bench-web', clientSecret: 'bench-web-secret', redirectUri };
  let passkeyUsers: Promise<PasskeyUser[]> | undefined;
  let samlSetup: Promise<SamlSetup> | undefined;
  let downstream: Promise<Downstream> | undefined;
  // A second OneID on the load core, with a database of its own: the app OneID provisions into.
  const startDownstream = async (): Promise<Downstream> => {
    const name = `${databaseName}_downstream`;
    await adminQuery(`create database ${name}`);
    cleanups.push(() => adminQuery(`drop database if exists ${name} with (force)`));
    const url = new URL(ADMIN_DATABASE_URL);
    url.pathname = `/${name}`;
    const downPort = await freePort();
    const downBase = `http://127.0.0.1:${downPort}`;
    const downEnv = nodeEnv({
      DATABASE_URL: url.toString(), ONEID_MASTER_KEY: randomBytes(32).toString('base64url'),
      ISSUER: downBase, PORT: String(downPort), HOST: '127.0.0.1', LOG_LEVEL: settings.logLevel, UV_THREADPOOL_SIZE: '1',
    });
    const p = spawnPinned(settings.loadCpu, ['--expose-gc', ...settings.oneidEntry], { cwd: ROOT, env: downEnv });
    cleanups.unshift(() => p.stop());
    await waitFor200(`${downBase}/readyz`, p, performance.now());
    const token = await cli(['scim-tokens', 'create', '--name', 'bench provisioning'], downEnv);
    return { base: downBase, pid: p.pid, scimUrl: `${downBase}/scim/v2`, token: token.token!, databaseUrl: url.toString() };
  };
  const ctx: BenchContext = {
    root: ROOT,
    durationS: settings.durationS,
    warmupS: settings.warmupS,
    rounds: settings.rounds,
    connections: settings.connections,
    signinUsers: settings.signinUsers,
    oneid: { base, pid: server.pid },
    env,
    databaseName,
    apps: {
      service: { clientId: service.client_id!, clientSecret: service.client_secret! },
      web: { clientId: web.client_id!, clientSecret: web.client_secret!, redirectUri },
    },
    users,
    cli: (args) => cli(args, env),
    log,
    load: async (target: Server, job: Job) => (await runMeasured(settings.loadCpu, 'test/bench/lib/load.ts', loadEnv, JSON.stringify(job), {
      pid: target.pid,
      what: job.kind === 'http' ? `${job.method} ${job.path}` : job.kind === 'steps' ? job.steps.map((st) => `${st.method} ${st.path}`).join(', ') : job.kind,
      ...(target.pid === server.pid ? { oneidPid: server.pid, database: databaseName } : {}),
    })).measured,
    prepareTokens: async (count: number) => {
      const job: Job = { kind: 'prepare', base, app: ctx.apps.web, users, count, connections: settings.signinUsers };
      const p = await runMeasured(settings.loadCpu, 'test/bench/lib/load.ts', loadEnv, JSON.stringify(job), {});
      return (p.result as unknown as { tokens: { access_token: string; refresh_token?: string }[] }).tokens;
    },
    bareProvider: () => startCeiling('oidc-provider', 'test/bench/baselines/oidc-provider.ts', { BENCH_CLIENT_ID: 'bench', BENCH_CLIENT_SECRET: 'bench-secret' }),
    koaHello: () => startCeiling('koa', 'test/bench/baselines/koa-hello.ts'),
    bareCodeFlow: () => startCeiling('oidc-code-flow', 'test/bench/baselines/oidc-code-flow.ts', {
      BENCH_WEB_CLIENT_ID: bareCodeFlowApp.clientId, BENCH_WEB_CLIENT_SECRET: bareCodeFlowApp.clientSecret, BENCH_REDIRECT_URI: redirectUri,
    }),
    bareCodeFlowApp,
    passkeyUsers: () => (passkeyUsers ??= registerPasskeys(env, Math.max(1, settings.signinUsers))),
    samlSetup: () => (samlSetup ??= setupSaml(env, users, Math.max(1, settings.connections))),
    downstream: () => (downstream ??= startDownstream()),
    samlSignCeiling: async (input) => (await runMeasured(settings.serverCpu, 'test/bench/baselines/saml-sign.ts', nodeEnv({
      BENCH_DURATION_S: String(settings.durationS), BENCH_WARMUP_S: String(settings.warmupS),
    }), JSON.stringify(input), { what: 'xml-crypto signEnveloped of the assertion' })).measured,
    argon2Ceiling: async (concurrency: number) => (await runMeasured(settings.serverCpu, 'test/bench/baselines/argon2.ts', nodeEnv({
      BENCH_CONCURRENCY: String(concurrency), BENCH_DURATION_S: String(settings.durationS), BENCH_WARMUP_S: String(settings.warmupS),
      // One hash at a time: the best one core does (see baselines/argon2.ts).
      UV_THREADPOOL_SIZE: '1',
    }), '', { what: 'argon2id verify' })).measured,
  };

  const rows: Row[] = [];
  for (const scenario of SCENARIOS) {
    if (settings.only && !settings.only.includes(scenario.id)) continue;
    if (!scenario.measure) {
      const ops = scenario.id === scim.id ? SCIM_OPERATIONS : [{ id: scenario.id, scenario: scenario.title }];
      for (const op of ops) rows.push({ id: op.id, scenario: op.scenario, goal: scenario.goal, pass: null, note: 'not yet measured' });
      continue;
    }
    try {
      rows.push(...await scenario.measure(ctx));
    } catch (err) {
      log(`scenario ${scenario.id} failed: ${(err as Error).stack ?? String(err)}`);
      rows.push({ id: scenario.id, scenario: scenario.title, goal: scenario.goal, pass: false, note: `failed: ${(err as Error).message.split('\n')[0]}` });
    }
  }

  // An idle node after the load: V8 gives its grown heap back only after some quiet time (its
  // memory reducer), so the figure that counts is the one a minute later; the 5 s one is shown too.
  log('idle after load (60 s)');
  await sleep(5000);
  const rssSoonAfterLoad = rssMb(server.pid);
  await sleep(55_000);
  const idleRssAfterLoad = rssMb(server.pid);
  const idleMemory = await memoryBreakdown(server.pid, reports);
  const peakUnderLoad = Math.max(0, ...rows.map((r) => r.oneid?.peakRssMb ?? 0));
  rows.push(
    { id: 'M1', scenario: `idle RSS (after start ${fmt(idleRssAfterStart)} MB / 60 s after load ${fmt(idleRssAfterLoad)} MB; 5 s after: ${fmt(rssSoonAfterLoad)} MB)`, value: fmt(Math.max(idleRssAfterStart, idleRssAfterLoad)), goal: '<= 150 MB', pass: Math.max(idleRssAfterStart, idleRssAfterLoad) <= 150 },
    { id: 'M2', scenario: 'peak RSS under load (all scenarios)', value: fmt(peakUnderLoad), goal: '<= 300 MB', pass: peakUnderLoad > 0 && peakUnderLoad <= 300 },
    { id: 'S1', scenario: `ready after start on PostgreSQL: ${fmt(readyMs)} ms`, goal: '<= 2000 ms', pass: readyMs <= 2000 },
  );

  // Row 2's non-hash work, step by step (after M1, so that it does not touch the idle figures).
  let signInCpu: StepCpu | undefined;
  if (!settings.only || settings.only.includes(passwordSignIn.id)) {
    try {
      log('2: main-thread CPU per sign-in step (one sign-in at a time)');
      signInCpu = await stepCpu({ base, pid: server.pid, web: ctx.apps.web, users, signIns: 150, warmup: 10 });
      // Printed beside row 2's ratio: the sign-in's own work, which the ratio alone hides.
      const row2 = rows.find((r) => r.id === passwordSignIn.id);
      if (row2) row2.scenario += `; OneID main thread ${fmt(signInCpu.mainMs, 1)} ms per sign-in`;
    } catch (err) {
      log(`step CPU failed: ${(err as Error).message}`);
    }
  }

  // Row 6's sign-in, step by step, the same way (one passkey sign-in at a time).
  let passkeyCpu: StepCpu | undefined;
  let bareCpu: StepCpu | undefined;
  if (passkeyUsers && (!settings.only || settings.only.includes(passkeySignIn.id))) {
    try {
      log('6: main-thread CPU per passkey sign-in step (one sign-in at a time), and the bare code flow\'s');
      const authenticator = authenticatorOf(new URL(base).origin, (await passkeyUsers)[0]!.passkey);
      passkeyCpu = await stepCpu({
        base, pid: server.pid, web: ctx.apps.web, users, signIns: 150, warmup: 10,
        signInOnce: (agent, onStep) => passkeySignInOnce(base, agent, ctx.apps.web, authenticator, onStep),
      });
      const bare = await ctx.bareCodeFlow();
      bareCpu = await stepCpu({
        base: bare.base, pid: bare.pid, web: bareCodeFlowApp, users, signIns: 150, warmup: 10,
        signInOnce: (agent, onStep) => bareCodeFlow(bare.base, agent, bareCodeFlowApp, onStep),
      });
      const row6 = rows.find((r) => r.id === passkeySignIn.id);
      // One sign-in at a time, so each figure includes what a busy server shares between requests
      // (wake-ups, timers): for the steps, not for the ratio (see scenarios/passkey.ts for that).
      if (row6) row6.scenario += `; main thread per sign-in, one at a time: OneID ${fmt(passkeyCpu.mainMs, 1)} ms, bare library ${fmt(bareCpu.mainMs, 1)} ms`;
    } catch (err) {
      log(`step CPU (6) failed: ${(err as Error).message}`);
    }
  }

  const machineAtEnd = machine();
  await server.stop();

  let queryCounts: QueryCount[] = [];
  try {
    log('database queries per operation (a OneID with DEBUG=knex:query, one operation at a time)');
    queryCounts = await countQueries({
      root: ROOT, cpu: settings.serverCpu, env, base, service: ctx.apps.service, web: ctx.apps.web, user: users[0]!,
      ...(passkeyUsers ? { passkey: (await passkeyUsers)[0]!.passkey } : {}),
      ...(samlSetup ? { saml: { sp: (await samlSetup).assertionSigned, cookie: (await samlSetup).cookies[0]! } } : {}),
    });
  } catch (err) {
    log(`query count failed: ${(err as Error).message}`);
  }
  let planChecks: PlanCheck[] = [];
  try {
    log('query plans and statement shapes of the hot paths (fresh databases)');
    planChecks = await planDiagnostics(ADMIN_DATABASE_URL);
  } catch (err) {
    log(`plan diagnostics failed: ${(err as Error).message}`);
  }
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: OneID's main thread (0), not tsx's loader thread.
  const profile = settings.cpuProfile ? fs.readdirSync(RESULTS).filter((f) => f.startsWith(`CPU.`) && f.includes(`.${server.pid}.0.`)).pop() : undefined;

  const tbl = table(rows);
  process.stdout.write(`\nOneID bench — ${startedAt.toISOString()} — ${machineAtStart.cores} x ${machineAtStart.cpus}, ${machineAtStart.memoryGb} GB, Linux ${machineAtStart.kernel}, Node ${process.version}\n`);
  process.stdout.write(`OneID on CPU ${settings.serverCpu} (taskset), load generator on CPU ${settings.loadCpu}; ${postgresPlacement}; ${settings.durationS} s per measurement after ${settings.warmupS} s warm-up; load average ${machineAtStart.load1} at start, ${machineAtEnd.load1} at end; the web app's ID tokens ${settings.idTokenAlg}\n\n`);
  process.stdout.write(`${tbl}\n\nDiagnostics:\n${diagnostics(rows)}\n`);
  process.stdout.write(`  M1: of the ${fmt(idleRssAfterLoad)} MB a minute after load: files (node, libraries) ${fmt(idleMemory.fileMb)} MB; anonymous ${fmt(idleMemory.anonMb)} MB, `
    + `of it the V8 heap ${fmt(idleMemory.heapTotalMb ?? NaN)} MB (${fmt(idleMemory.heapUsedMb ?? NaN)} MB in use) and native memory (malloc: buffers, argon2id work areas, libraries) the rest\n`);
  if (signInCpu) {
    const steps = Object.entries(signInCpu.steps).map(([step, ms]) => `${step} ${fmt(ms, 2)}`).join(', ');
    process.stdout.write(`  2, one sign-in at a time (${signInCpu.signIns}): OneID's main thread ${fmt(signInCpu.mainMs, 2)} ms per sign-in (${steps}); `
      + `the whole process ${fmt(signInCpu.processMs, 2)} ms, argon2id and signatures on libuv's pool included\n`);
  }
  for (const [label, cpu] of [['6, one passkey sign-in at a time', passkeyCpu], ['6, the bare code flow, one at a time', bareCpu]] as const) {
    if (!cpu) continue;
    const steps = Object.entries(cpu.steps).map(([step, ms]) => `${step} ${fmt(ms, 2)}`).join(', ');
    process.stdout.write(`  ${label} (${cpu.signIns}): main thread ${fmt(cpu.mainMs, 2)} ms per sign-in (${steps}); the whole process ${fmt(cpu.processMs, 2)} ms\n`);
  }
  if (queryCounts.length) {
    process.stdout.write('\nDatabase statements per operation (BEGIN/COMMIT included):\n');
    for (const q of queryCounts) {
      const steps = q.steps ? ` = ${q.steps.map((st) => `${st.queries} ${st.step}`).join(' + ')}` : '';
      process.stdout.write(`  ${q.operation}: ${q.queries}${steps}\n`);
    }
  }
  if (planChecks.length) {
    // Diagnostics, not goals: a PostgreSQL upgrade may change a plan without a fault a user sees.
    process.stdout.write('\nQuery plans and statement shapes (diagnostics, not goals; measured / expected):\n');
    for (const c of planChecks) process.stdout.write(`  ${c.asExpected ? 'as expected' : 'DIFFERS    '}  ${c.what}: ${c.measured} / ${c.expected}\n`);
  }
  const failed = rows.filter((r) => r.pass === false).map((r) => r.id);
  process.stdout.write(failed.length ? `\nFAIL: ${failed.join(', ')}\n` : '\nAll measured goals met.\n');
  if (profile) {
    process.stdout.write(`CPU profile of OneID: test/bench/results/${profile}; per measured window:\n`);
    for (const w of profileWindows) {
      const file = w.pid === server.pid ? `test/bench/results/${profile}` : `test/bench/results/CPU.*.${w.pid}.0.*.cpuprofile`;
      process.stdout.write(`  node --import tsx test/bench/profile.ts ${file} 25 ${w.fromUs} ${w.toUs}   # ${w.pid === server.pid ? 'OneID' : `pid ${w.pid}`}: ${w.what}\n`);
    }
  }

  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machineAtStart, node: process.version, loadAtEnd: machineAtEnd.load1 },
    settings: { ...settings, oneid: { NODE_ENV: 'production', LOG_LEVEL: settings.logLevel, databasePoolMax: 10 } },
    startup: { readyMs, firstStartWithMigrationsMs: firstReadyMs },
    memory: { idleRssAfterStartMb: idleRssAfterStart, rss5sAfterLoadMb: rssSoonAfterLoad, idleRssAfterLoadMb: idleRssAfterLoad, idleAfterLoad: idleMemory, peakUnderLoadMb: peakUnderLoad },
    rows,
    databaseStatementsPerOperation: queryCounts,
    queryPlans: planChecks,
    signInCpuPerStep: signInCpu,
    ...(passkeyCpu ? { passkeySignInCpuPerStep: passkeyCpu, bareCodeFlowCpuPerStep: bareCpu } : {}),
    table: tbl,
    ...(profile ? { cpuProfile: `test/bench/results/${profile}`, profileWindows } : {}),
  };
  fs.writeFileSync(path.join(RESULTS, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write('Written: test/bench/results/latest.json\n');
}

async function seedUsers(env: NodeJS.ProcessEnv, count: number): Promise<{ login: string; password: string }[]> {
  const config = loadConfig(env);
  const handle = createDb(config);
  try {
    const { users } = createServices(handle.db as Knex, config);
    const out: { login: string; password: string }[] = [];
    for (let i = 0; i < count; i += 1) {
      const password = randomBytes(15).toString('base64url');
      const username = `bench.user${i}`;
      await users.createUser({ username, email: `${username}@bench.example`, password, name: `Bench User ${i}` });
      out.push({ login: username, password });
    }
    return out;
  } finally {
    await handle.close();
  }
}

main()
  .then(() => cleanup())
  .catch(async (err: unknown) => {
    log(`failed: ${(err as Error)?.stack ?? String(err)}`);
    await cleanup();
    process.exitCode = 1;
  });
