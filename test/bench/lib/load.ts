// The load generator. run.ts starts it as a separate process pinned to the load core
// (taskset -c 1), sends one job as JSON on stdin and reads one JSON result from stdout.
//
//   kind 'http'    one request shape, hammered by autocannon over N keep-alive connections
//                  (client_credentials, userinfo, discovery, JWKS and every ceiling server)
//   kind 'steps'   requests built afresh each time from templates: each connection sends the steps in
//                  order, again and again ({value} and {unique} in a path or body, see StepsJob)
//   kind 'refresh' refresh token rotation with autocannon: every response's new refresh token
//                  goes back into a queue and is the next request's token (a used one never again)
//   kind 'signin'  N virtual users, each doing complete browser sign-ins in a loop
//   kind 'prepare' K sign-ins to collect tokens (refresh pool, userinfo access tokens)
//   kind 'passkey-signin' N virtual users, each with its own passkey, doing passkey sign-ins in a loop
//   kind 'code-flow' N virtual users doing the bare library's code flow (login accepts anyone) in a loop
//   kind 'saml-sso' autocannon, each connection a browser already signed in to OneID (its own
//                  session) sending an SP's new AuthnRequest (Redirect binding) again and again;
//                  only a 200 auto-post page with a SAMLResponse counts
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import { signIn, type Tokens, type WebApp } from './signin.ts';
import { basicAuth, FORM } from './http.ts';
import { authenticatorOf, bareCodeFlow, passkeySignIn, type PasskeyJSON } from './passkey-signin.ts';
import type { SignInResult, StepHook } from './signin.ts';
import { authnRequestQuery, type BenchSp } from './saml.ts';

const require = createRequire(import.meta.url);
// autocannon ships no types; the little used here is typed below.
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<AutocannonResult>;

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches: number;
  '2xx': number;
  requests: { total: number; average: number };
  latency: { p50: number; p99: number; average: number; max: number };
  statusCodeStats: Record<string, { count: number }>;
}

export interface LoadResult {
  /** Successful operations per second over the measured window. */
  rps: number;
  ok: number;
  errors: number;
  p50: number;
  p99: number;
  durationS: number;
  /** For sign-ins: HTTP requests per sign-in. */
  requestsPerOp?: number;
  /** For sign-ins: mean milliseconds per step (HTTP request) of the flow, in order. */
  stepsMs?: Record<string, number>;
  statusCodes?: Record<string, number>;
  firstError?: string;
}

interface Common { base: string; connections: number; durationS: number; warmupS: number }
export type Job =
  | (Common & {
    kind: 'http'; method: 'GET' | 'POST'; path: string; headers?: Record<string, string>; body?: string;
    /** Each request takes the next value of this header in turn (e.g. several users' access tokens). */
    rotateHeader?: { name: string; values: string[] };
  })
  | StepsJob
  | (Common & { kind: 'refresh'; client: { clientId: string; clientSecret: string }; refreshTokens: string[] })
  | (Common & { kind: 'signin'; app: WebApp; users: { login: string; password: string }[] })
  | { kind: 'prepare'; base: string; app: WebApp; users: { login: string; password: string }[]; count: number; connections: number }
  /** One passkey per connection (virtual user): a device-bound key's counter must not be shared. */
  | (Common & { kind: 'passkey-signin'; app: WebApp; passkeys: PasskeyJSON[] })
  | (Common & { kind: 'code-flow'; app: WebApp })
  /** One browser's cookies (a signed-in OneID session) per connection. */
  | (Common & { kind: 'saml-sso'; sp: BenchSp; cookies: string[] });

/**
 * Each connection sends `steps` in order, again and again, each step waiting for the previous
 * one's response. In a step's path and body, `{value}` becomes the value the connection took
 * for this round (the next of `values` in turn, shared by all connections, so with more values
 * than connections no two connections hold the same one at once) and `{unique}` a string no
 * other request of this run has (lower-case: a prefix random per run, then a counter).
 */
export interface StepsJob extends Common {
  kind: 'steps';
  headers: Record<string, string>;
  steps: { method: 'GET' | 'POST' | 'PATCH'; path: string; body?: string }[];
  values?: string[];
  /** The one status that counts as success (e.g. 201 for creates); default any 2xx. */
  okStatus?: number;
}

function fromAutocannon(r: AutocannonResult, okStatus?: number): LoadResult {
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
  const responses = Object.values(statusCodes).reduce((a, b) => a + b, 0);
  const ok = okStatus === undefined ? r['2xx'] : statusCodes[String(okStatus)] ?? 0;
  return {
    rps: ok / r.duration,
    ok,
    errors: okStatus === undefined ? r.errors + r.non2xx + r.mismatches : r.errors + r.mismatches + responses - ok,
    p50: r.latency.p50,
    p99: r.latency.p99,
    durationS: r.duration,
    statusCodes,
  };
}

async function runHttp(job: Extract<Job, { kind: 'http' }>): Promise<LoadResult> {
  const rotate = job.rotateHeader;
  let turn = 0;
  const opts = {
    url: job.base + job.path, method: job.method, headers: job.headers, body: job.body,
    connections: job.connections, pipelining: 1,
    ...(rotate ? {
      requests: [{
        setupRequest: (req: { headers?: Record<string, string> }) => ({
          ...req, headers: { ...req.headers, [rotate.name]: rotate.values[turn++ % rotate.values.length]! },
        }),
      }],
    } : {}),
  };
  if (job.warmupS > 0) await autocannon({ ...opts, duration: job.warmupS });
  mark('start');
  const result = await autocannon({ ...opts, duration: job.durationS });
  mark('end');
  return fromAutocannon(result);
}

async function runSteps(job: StepsJob): Promise<LoadResult> {
  const values = job.values ?? [];
  const prefix = randomBytes(4).toString('hex');
  let turn = 0;
  let unique = 0;
  let firstError: string | undefined;
  /** autocannon's per-connection context, emptied each time the connection starts the steps over. */
  interface Round { value?: string }
  const fill = (template: string, round: Round, id: string): string => template.replaceAll('{value}', round.value ?? '').replaceAll('{unique}', id);
  const opts = {
    url: job.base, headers: job.headers, connections: job.connections, pipelining: 1,
    requests: job.steps.map((step, i) => ({
      method: step.method,
      setupRequest: (req: Record<string, unknown>, round: Round) => {
        if (i === 0 && values.length) round.value = values[turn++ % values.length]!;
        const id = `${prefix}${(unique++).toString(36)}`;
        return { ...req, path: fill(step.path, round, id), ...(step.body !== undefined ? { body: fill(step.body, round, id) } : {}) };
      },
      onResponse: (status: number, body: string) => {
        const ok = job.okStatus === undefined ? status >= 200 && status < 300 : status === job.okStatus;
        if (!ok) firstError ??= `${step.method} ${status}: ${body.slice(0, 300)}`;
      },
    })),
  };
  if (job.warmupS > 0) await autocannon({ ...opts, duration: job.warmupS });
  mark('start');
  const result = fromAutocannon(await autocannon({ ...opts, duration: job.durationS }), job.okStatus);
  mark('end');
  return firstError ? { ...result, firstError } : result;
}

async function runRefresh(job: Extract<Job, { kind: 'refresh' }>): Promise<LoadResult> {
  // More tokens than connections: a request cut off when a run stops takes its token with it.
  const free = [...job.refreshTokens];
  let lost = 0;
  const opts = {
    url: `${job.base}/token`,
    connections: job.connections,
    pipelining: 1,
    requests: [{
      method: 'POST',
      path: '/token',
      headers: { 'content-type': FORM, accept: 'application/json', authorization: basicAuth(job.client.clientId, job.client.clientSecret) },
      setupRequest: (req: Record<string, unknown>) => {
        const token = free.shift() ?? 'pool-exhausted';
        return { ...req, body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(token)}` };
      },
      onResponse: (status: number, body: string) => {
        if (status !== 200) { lost += 1; return; }
        const next = (JSON.parse(body) as Tokens).refresh_token;
        if (next) free.push(next); else lost += 1;
      },
    }],
  };
  if (job.warmupS > 0) await autocannon({ ...opts, duration: job.warmupS });
  mark('start');
  const result = fromAutocannon(await autocannon({ ...opts, duration: job.durationS }));
  mark('end');
  return lost ? { ...result, firstError: `${lost} refresh responses without a new refresh token` } : result;
}

/** Row 7: each connection is one signed-in browser asking for a Response again and again. */
async function runSamlSso(job: Extract<Job, { kind: 'saml-sso' }>): Promise<LoadResult> {
  if (job.cookies.length < job.connections) throw new Error(`${job.connections} connections need as many signed-in browsers, got ${job.cookies.length}`);
  let nextBrowser = 0;
  let bad = 0;
  let firstError: string | undefined;
  /** autocannon's per-connection context: which browser this connection is. */
  interface Conn { cookie?: string }
  const opts = {
    url: job.base, connections: job.connections, pipelining: 1,
    requests: [{
      method: 'GET',
      setupRequest: (req: Record<string, unknown>, conn: Conn) => {
        conn.cookie ??= job.cookies[nextBrowser++ % job.cookies.length]!;
        return {
          ...req, path: `/saml/sso?${authnRequestQuery(job.base, job.sp)}`,
          headers: { accept: 'text/html', 'accept-language': 'en', cookie: conn.cookie },
        };
      },
      onResponse: (status: number, body: string) => {
        if (status === 200 && body.includes('name="SAMLResponse" value="')) return;
        if (status >= 200 && status < 300) bad += 1; // other statuses autocannon counts itself
        firstError ??= `GET /saml/sso ${status}: ${body.slice(0, 300)}`;
      },
    }],
  };
  if (job.warmupS > 0) await autocannon({ ...opts, duration: job.warmupS });
  bad = 0;
  mark('start');
  const r = fromAutocannon(await autocannon({ ...opts, duration: job.durationS }));
  mark('end');
  // A 200 without a Response (an error page) is no sign-on.
  const ok = Math.max(0, r.ok - bad);
  return { ...r, ok, rps: ok / r.durationS, errors: r.errors + bad, ...(firstError ? { firstError } : {}) };
}

/** Tells run.ts when the measured window starts and ends (it reads the server's CPU then). */
const mark = (what: 'start' | 'end'): void => { process.stderr.write(`@measure-${what}\n`); };

/** Marks the measured window of a continuous run by the clock. */
const markWindow = (warmupS: number, durationS: number): void => {
  setTimeout(() => mark('start'), warmupS * 1000);
  setTimeout(() => mark('end'), (warmupS + durationS) * 1000);
};

const percentile = (sorted: number[], p: number): number => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : 0;

/** Row 2: each virtual user signs the next bench person in with a password, again and again. */
function runSignin(job: Extract<Job, { kind: 'signin' }>): Promise<LoadResult> {
  let next = 0;
  return runFlowLoop(job, (_vu, agent, onStep) => {
    const user = job.users[next++ % job.users.length]!;
    return signIn(job.base, agent, job.app, user.login, user.password, onStep);
  });
}

/**
 * The sign-in loop of rows 2 and 6 and row 6's ceiling: N virtual users, each doing `signInOnce`
 * again and again on its own keep-alive socket; only sign-ins that finish inside the measured
 * window count.
 */
async function runFlowLoop(job: Common, signInOnce: (vu: number, agent: http.Agent, onStep: StepHook) => Promise<SignInResult>): Promise<LoadResult> {
  const start = performance.now();
  const measureFrom = start + job.warmupS * 1000;
  const end = measureFrom + job.durationS * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let requests = 0;
  let firstError: string | undefined;
  const stepTotals = new Map<string, number>();
  markWindow(job.warmupS, job.durationS);
  const vu = async (index: number): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (performance.now() < end) {
      const t0 = performance.now();
      const steps: [string, number][] = [];
      const onStep = async (step: string): Promise<void> => { steps.push([step, performance.now()]); };
      try {
        const r = await signInOnce(index, agent, onStep);
        const t1 = performance.now();
        if (t1 >= measureFrom && t1 <= end) {
          latencies.push(t1 - t0);
          requests += r.requests;
          steps.forEach(([step, at], i) => {
            const key = `${i + 1}. ${step}`;
            stepTotals.set(key, (stepTotals.get(key) ?? 0) + ((steps[i + 1]?.[1] ?? t1) - at));
          });
        }
      } catch (err) {
        const t1 = performance.now();
        if (t1 >= measureFrom && t1 <= end) errors += 1;
        firstError ??= (err as Error).message;
      }
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: job.connections }, (_, i) => vu(i)));
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / job.durationS,
    ok: latencies.length,
    errors,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    durationS: job.durationS,
    requestsPerOp: latencies.length ? requests / latencies.length : 0,
    stepsMs: Object.fromEntries([...stepTotals].map(([k, v]) => [k, latencies.length ? v / latencies.length : 0])),
    ...(firstError ? { firstError } : {}),
  };
}

function runPasskeySignin(job: Extract<Job, { kind: 'passkey-signin' }>): Promise<LoadResult> {
  if (job.passkeys.length < job.connections) throw new Error(`${job.connections} virtual users need as many passkeys, got ${job.passkeys.length}`);
  const origin = new URL(job.base).origin;
  const authenticators = job.passkeys.map((p) => authenticatorOf(origin, p));
  return runFlowLoop(job, (vu, agent, onStep) => passkeySignIn(job.base, agent, job.app, authenticators[vu]!, onStep));
}

async function runPrepare(job: Extract<Job, { kind: 'prepare' }>): Promise<{ tokens: Tokens[] }> {
  const tokens: Tokens[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (next < job.count) {
      const user = job.users[next++ % job.users.length]!;
      tokens.push((await signIn(job.base, agent, job.app, user.login, user.password)).tokens);
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: job.connections }, worker));
  return { tokens };
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Job;
  let out: unknown;
  switch (job.kind) {
    case 'http': out = await runHttp(job); break;
    case 'steps': out = await runSteps(job); break;
    case 'refresh': out = await runRefresh(job); break;
    case 'signin': out = await runSignin(job); break;
    case 'prepare': out = await runPrepare(job); break;
    case 'passkey-signin': out = await runPasskeySignin(job); break;
    case 'saml-sso': out = await runSamlSso(job); break;
    case 'code-flow': out = await runFlowLoop(job, (_vu, agent, onStep) => bareCodeFlow(job.base, agent, job.app, onStep)); break;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`load: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
