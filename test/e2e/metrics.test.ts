// Black-box: Prometheus scrapes /metrics from OneID on a port, after real traffic (a password
// sign-in through the browser form and openid-client, SCIM calls), and finds it counted.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef0123456789';

let db: TestDatabase;
let env: Record<string, string>;
/** METRICS_TOKEN set: /metrics on the public port and on METRICS_PORT, both behind the token. */
let server: RunningServer;
let metricsPort: number;
/** METRICS_PORT set, no token: /metrics on that port only. */
let portOnly: RunningServer;
let portOnlyMetrics: number;
let app: { client_id: string; client_secret: string };
let scimToken: string;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [user, portal, scim] = await Promise.all([
    runCli(['users', 'create', '--username', 'grace', '--email', 'grace@example.com', '--password', 'compiler-1952', '--name', 'Grace Hopper'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
    runCli(['scim-tokens', 'create', '--name', 'HR'], env),
  ]);
  for (const r of [user, portal, scim]) expect(r.code).toBe(0);
  app = portal.json;
  scimToken = scim.json.token;
  [metricsPort, portOnlyMetrics] = [await freePort(), await freePort()];
  [server, portOnly] = await Promise.all([
    startServer({ ...env, METRICS_TOKEN, METRICS_PORT: String(metricsPort), SIGNIN_MAX_FAILURES: '2', TRUST_PROXY: 'true', AUTHORIZE_MAX_PER_IP: '20' }),
    startServer({ ...env, METRICS_PORT: String(portOnlyMetrics) }),
  ]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), portOnly?.stop()]);
  await db?.drop();
});

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Prometheus text exposition format, samples only. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(url = `${server.url}/metrics`, token: string | undefined = METRICS_TOKEN): Promise<Sample[]> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** The sum of the samples named `name` whose labels include `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const rp = () => client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });

async function signIn(config: client.Configuration, login: string, password: string) {
  const browser = new Browser();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid profile', state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const page = await browser.navigate(url.toString(), REDIRECT);
  const done = await browser.submit(page, '/login', { login, password }, REDIRECT);
  return { done, verifier, state };
}

const scim = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${server.url}/scim/v2${path}`, {
    method,
    headers: { authorization: `Bearer ${scimToken}`, 'content-type': 'application/scim+json', accept: 'application/scim+json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => undefined) as any };
};

describe('GET /metrics on the public port (METRICS_TOKEN)', () => {
  it('answers 401 with a Bearer challenge without the token or with another one, and gives nothing away', async () => {
    const none = await fetch(`${server.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="oneid-metrics"');
    const noneText = await none.text();
    expect(noneText).not.toContain('oneid_http_requests_total');
    expect(JSON.parse(noneText)).toMatchObject({ status: 401, code: 'metrics.unauthenticated' });

    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(await wrong.text()).not.toContain('oneid_');

    const basic = await fetch(`${server.url}/metrics`, { headers: { authorization: `Basic ${Buffer.from(`x:${METRICS_TOKEN}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
  });

  it('counts a password sign-in by result and the tokens its code was exchanged for, by grant type', async () => {
    const before = await scrape();
    const config = await rp();
    const ok = await signIn(config, 'grace', 'compiler-1952');
    expect(ok.done.url.startsWith(REDIRECT)).toBe(true);
    const tokens = await client.authorizationCodeGrant(config, new URL(ok.done.url), { pkceCodeVerifier: ok.verifier, expectedState: ok.state });
    expect(tokens.access_token).toBeTruthy();
    const failed = await signIn(config, 'grace', 'wrong-password');
    expect(failed.done.html).toContain('The username or password is incorrect.');
    const after = await scrape();

    const delta = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
    expect(delta('oneid_signins_total', { method: 'password', result: 'success' })).toBe(1);
    expect(delta('oneid_signins_total', { method: 'password', result: 'failure' })).toBe(1);
    expect(delta('oneid_tokens_issued_total', { grant_type: 'authorization_code', token: 'access_token' })).toBe(1);
    expect(delta('oneid_tokens_issued_total', { grant_type: 'authorization_code', token: 'id_token' })).toBe(1);
    expect(delta('oneid_http_requests_total', { method: 'POST', route: '/token', status: '200' })).toBe(1);
    expect(delta('oneid_http_requests_total', { method: 'POST', route: '/login/:flow/password', status: '303' })).toBe(1);
    // Latency histogram: the sign-in POSTs were observed, in buckets and in the count.
    expect(delta('oneid_http_request_duration_seconds_count', { method: 'POST', route: '/login/:flow/password' })).toBe(2);
    expect(delta('oneid_http_request_duration_seconds_bucket', { method: 'POST', route: '/login/:flow/password', status: '303', le: '+Inf' })).toBe(1);
  });

  it('counts a refused token request by grant type and OAuth error', async () => {
    const before = await scrape();
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'no-such-code', redirect_uri: REDIRECT, code_verifier: 'v'.repeat(43) }),
    });
    expect(res.status).toBe(400);
    const after = await scrape();
    const labels = { grant_type: 'authorization_code', error: 'invalid_grant' };
    expect(total(after, 'oneid_token_errors_total', labels) - total(before, 'oneid_token_errors_total', labels)).toBe(1);
  });

  it('counts throttled sign-in attempts', async () => {
    const config = await rp();
    const before = await scrape();
    // SIGNIN_MAX_FAILURES=2 on this server: the third attempt for the name is refused with 429.
    for (let i = 0; i < 2; i += 1) await signIn(config, 'nobody-here', `guess-${i}`);
    const third = await signIn(config, 'nobody-here', 'guess-2');
    expect(third.done.status).toBe(429);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
    expect(delta('oneid_signins_total', { method: 'password', result: 'failure' })).toBe(2);
    expect(delta('oneid_signins_total', { method: 'password', result: 'throttled' })).toBe(1);
    expect(delta('oneid_throttled_requests_total', { route: '/login/:flow/password' })).toBe(1);
  });

  it('counts refused authorization requests under their endpoint: oversized (400) and throttled per address (429)', async () => {
    const before = await scrape();
    const auth = (query: string, ip: string) => fetch(`${server.url}/auth?client_id=${app.client_id}&${query}`, { redirect: 'manual', headers: { 'x-forwarded-for': ip } });
    expect((await auth(`state=${'x'.repeat(9000)}`, '198.51.100.200')).status).toBe(400);
    const answers = await Promise.all(Array.from({ length: 21 }, () => auth(`response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT)}&code_challenge=${'x'.repeat(43)}&code_challenge_method=S256`, '198.51.100.201')));
    expect(answers.filter((r) => r.status === 429)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 303)).toHaveLength(20);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
    expect(delta('oneid_http_requests_total', { method: 'GET', route: '/auth', status: '400' })).toBe(1);
    expect(delta('oneid_http_requests_total', { method: 'GET', route: '/auth', status: '429' })).toBe(1);
    expect(delta('oneid_throttled_requests_total', { route: '/auth' })).toBe(1);
    expect(delta('oneid_http_requests_total', { route: 'unmatched' })).toBe(0);
  });

  it('counts SCIM operations by resource, operation and result, each operation of a Bulk request included', async () => {
    const before = await scrape();
    const created = await scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'ada', emails: [{ value: 'ada@example.com', primary: true }] });
    expect(created.status).toBe(201);
    const taken = await scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'ada' });
    expect(taken.status).toBe(409);
    expect((await scim('GET', `/Users/${created.body.id}`)).status).toBe(200);
    const bulk = await scim('POST', '/Bulk', {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
      Operations: [
        { method: 'POST', path: '/Groups', bulkId: 'g1', data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Compilers' } },
        { method: 'POST', path: '/Users', bulkId: 'u1', data: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'ada' } },
      ],
    });
    expect(bulk.status).toBe(200);
    expect(bulk.body.Operations.map((o: { status: string }) => o.status)).toEqual(['201', '409']);
    const after = await scrape();

    const delta = (labels: Record<string, string>) => total(after, 'oneid_scim_operations_total', labels) - total(before, 'oneid_scim_operations_total', labels);
    expect(delta({ resource: 'Users', operation: 'create', result: 'success', status: '201' })).toBe(1);
    expect(delta({ resource: 'Users', operation: 'create', result: 'failure', status: '409' })).toBe(2); // one direct, one in Bulk
    expect(delta({ resource: 'Users', operation: 'get', result: 'success' })).toBe(1);
    expect(delta({ resource: 'Groups', operation: 'create', result: 'success', status: '201' })).toBe(1);
    expect(delta({ resource: 'Bulk', operation: 'bulk', result: 'success', status: '200' })).toBe(1);

    // Requests are labelled by route template: never a user's id.
    const routes = new Set(after.filter((s) => s.name === 'oneid_http_requests_total').map((s) => s.labels.route));
    expect(routes).toContain('/scim/v2/Users/:id');
    expect([...routes].filter((r) => r!.includes(created.body.id))).toEqual([]);
  });

  it('labels requests no route serves as unmatched, whatever their path', async () => {
    const path = `/no/such/${Date.now()}`;
    expect((await fetch(`${server.url}${path}`)).status).toBe(404);
    const samples = await scrape();
    expect(total(samples, 'oneid_http_requests_total', { route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    expect(samples.some((s) => Object.values(s.labels).some((v) => v.includes(path)))).toBe(false);
  });

  it('reports the database pool, event-loop lag and the process defaults', async () => {
    const samples = await scrape();
    expect(total(samples, 'oneid_db_pool_max')).toBe(10);
    for (const state of ['used', 'free', 'pending_acquires', 'pending_creates']) {
      expect(samples.some((s) => s.name === 'oneid_db_pool_connections' && s.labels.state === state)).toBe(true);
    }
    expect(total(samples, 'oneid_db_pool_connections', { state: 'used' }) + total(samples, 'oneid_db_pool_connections', { state: 'free' })).toBeGreaterThan(0);
    for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
      expect(samples.some((s) => s.name === name)).toBe(true);
    }
  });

  it('requires the token on METRICS_PORT as well', async () => {
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(401);
    const samples = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(total(samples, 'oneid_signins_total', { method: 'password', result: 'success' })).toBeGreaterThanOrEqual(1);
  });
});

describe('GET /metrics on METRICS_PORT (no METRICS_TOKEN)', () => {
  it('serves the figures on METRICS_PORT and nothing at /metrics on the public port', async () => {
    const pub = await fetch(`${portOnly.url}/metrics`);
    expect(pub.status).toBe(404);
    expect(await pub.text()).not.toContain('oneid_');
    expect((await fetch(`${portOnly.url}/healthz`)).status).toBe(200);
    const samples = await scrape(`http://127.0.0.1:${portOnlyMetrics}/metrics`, undefined);
    expect(total(samples, 'oneid_http_requests_total', { method: 'GET', route: '/healthz', status: '200' })).toBe(1);
    expect(total(samples, 'oneid_http_requests_total', { route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    expect((await fetch(`http://127.0.0.1:${portOnlyMetrics}/other`)).status).toBe(404);
  });
});
