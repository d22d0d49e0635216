// Black-box: the authorization endpoint bounds what an anonymous browser can make OneID store.
// Oversized parameters get invalid_request on an error page (never a redirect, not even to a
// registered redirect_uri, and nothing stored); authorization requests are counted per client
// address in PostgreSQL, and past the limit get a 429 page with Retry-After.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
const PER_IP = 12;

let db: TestDatabase;
let server: RunningServer;
let clientId: string;
let clientSecret: string;
let publicClientId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), TRUST_PROXY: 'true', AUTHORIZE_MAX_PER_IP: String(PER_IP) };
  const [portal, mobile] = await Promise.all([
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
    runCli(['apps', 'create', '--name', 'Mobile', '--redirect-uri', REDIRECT, '--public'], env),
  ]);
  clientId = portal.json.client_id;
  clientSecret = portal.json.client_secret;
  publicClientId = mobile.json.client_id;
  server = await startServer(env);
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

let nextIp = 0;
/** A client address of its own for each test, so that the per-address count starts at 0. */
const freshIp = (): string => `198.51.100.${(nextIp += 1)}`;

function authorize(params: Record<string, string>, ip: string, init: { method?: string; body?: string } = {}): Promise<Response> {
  const query = new URLSearchParams({
    client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...params,
  });
  const post = init.method === 'POST';
  return fetch(`${server.url}/auth${post ? '' : `?${query}`}`, {
    method: init.method ?? 'GET', redirect: 'manual',
    headers: { 'x-forwarded-for': ip, accept: 'text/html', ...(post ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    body: post ? (init.body ?? query.toString()) : undefined,
  });
}

async function storedInteractions(model = 'Interaction'): Promise<number> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const { rows } = await c.query('select count(*)::int as n from oidc_payloads where model = $1', [model]);
    return rows[0].n;
  } finally {
    await c.end();
  }
}

async function expectInvalidRequestPage(res: Response): Promise<void> {
  expect(res.status).toBe(400);
  expect(res.headers.get('location')).toBeNull();
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  const html = await res.text();
  expect(html).toContain('invalid_request');
  expect(html).toContain('The sign-in request from the application is too large.');
}

describe('GET and POST /auth parameter sizes', () => {
  it('accepts a request with long but sensible parameters', async () => {
    const res = await authorize({ state: 's'.repeat(2000), login_hint: 'someone@example.com' }, freshIp());
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(/\/interaction\//);
  });

  it('refuses 12 KB parameters with invalid_request on a page, to a registered redirect_uri too, and stores nothing', async () => {
    const before = await storedInteractions();
    await expectInvalidRequestPage(await authorize({ state: 'x'.repeat(12 * 1024) }, freshIp()));
    await expectInvalidRequestPage(await authorize({ nonce: 'n'.repeat(3000), state: 's'.repeat(3000), login_hint: 'h'.repeat(3000) }, freshIp()));
    await expectInvalidRequestPage(await authorize({ redirect_uri: 'https://attacker.example/cb', state: 'x'.repeat(5000) }, freshIp()));
    await expectInvalidRequestPage(await authorize({ state: 'x'.repeat(12 * 1024) }, freshIp(), { method: 'POST' }));
    expect(await storedInteractions()).toBe(before);
  });

  it('answers in the browser\'s language', async () => {
    const res = await fetch(`${server.url}/auth?client_id=${clientId}&state=${'x'.repeat(9000)}`, { headers: { 'accept-language': 'zh-CN', 'x-forwarded-for': freshIp() } });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('应用发来的登录请求过大');
  });
});

describe('POST /request (pushed authorization requests)', () => {
  const push = (extra: Record<string, string>) => fetch(`${server.url}/request`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      client_id: publicClientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra,
    }).toString(),
  });

  it('takes a sensible request from a public app and refuses an oversized one with the OAuth error', async () => {
    const ok = await push({ state: 's'.repeat(1000) });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ request_uri: expect.stringMatching(/^urn:ietf:params:oauth:request_uri:/) });
    const before = await storedInteractions('PushedAuthorizationRequest');
    expect(before).toBeGreaterThan(0);
    const big = await push({ state: 'x'.repeat(30 * 1024) });
    expect(big.status).toBe(400);
    expect(await big.json()).toMatchObject({ error: 'invalid_request' });
    expect(await storedInteractions('PushedAuthorizationRequest')).toBe(before);
  });
});

describe('authorization requests per client address', () => {
  it('allows the limit per address and window, then answers 429 with Retry-After and stores nothing more; other addresses go on', async () => {
    const ip = freshIp();
    const answers = await Promise.all(Array.from({ length: PER_IP + 8 }, () => authorize({}, ip)));
    expect(answers.filter((r) => r.status === 303)).toHaveLength(PER_IP);
    const refused = answers.filter((r) => r.status === 429);
    expect(refused).toHaveLength(8);
    for (const r of refused) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(r.headers.get('location')).toBeNull();
      expect(await r.text()).toContain('Too many sign-in requests came from your network.');
    }
    const before = await storedInteractions();
    expect((await authorize({}, ip)).status).toBe(429);
    expect(await storedInteractions()).toBe(before);
    expect((await authorize({}, freshIp())).status).toBe(303);
  });

  it('counts the address the proxy saw, not one the client wrote into X-Forwarded-For before it', async () => {
    // A reverse proxy appends the address it received the connection from; whatever stands
    // left of it was written by the client and cannot be trusted.
    const ip = freshIp();
    const answers = await Promise.all(Array.from({ length: PER_IP + 4 }, (_, i) => authorize({}, `203.0.113.${i + 1}, ${ip}`)));
    expect(answers.filter((r) => r.status === 303)).toHaveLength(PER_IP);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(4);
  });

  it('counts an IPv6 client by its /64 network, which one subscriber holds whole', async () => {
    const n = (nextIp += 1).toString(16);
    const net = `2001:db8:${n}:7`;
    const answers = await Promise.all(Array.from({ length: PER_IP + 4 }, (_, i) => authorize({}, `${net}::${(i + 1).toString(16)}`)));
    expect(answers.filter((r) => r.status === 303)).toHaveLength(PER_IP);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(4);
    // Written in full, it is the same network; the next /64 is another client.
    expect((await authorize({}, `2001:0db8:${n}:0007:0:0:0:ffff`)).status).toBe(429);
    expect((await authorize({}, `2001:db8:${n}:8::1`)).status).toBe(303);
  });

  it('bounds and counts the endpoints under every spelling oidc-provider routes to them (case, trailing slash)', async () => {
    // oidc-provider's router matches paths case-insensitively and with a trailing slash: the
    // limits must hold at /AUTH, /auth/ and /Request/ as well, or they are one letter away.
    const query = new URLSearchParams({
      client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    });
    const before = await storedInteractions();
    for (const path of ['/AUTH', '/auth/', '/Auth/']) {
      const big = await fetch(`${server.url}${path}?${query}&state=${'x'.repeat(12 * 1024)}`, { redirect: 'manual', headers: { 'x-forwarded-for': freshIp(), accept: 'text/html' } });
      await expectInvalidRequestPage(big);
    }
    expect(await storedInteractions()).toBe(before);
    const ip = freshIp();
    const answers = await Promise.all(Array.from({ length: PER_IP + 4 }, (_, i) => fetch(`${server.url}${['/AUTH', '/auth/'][i % 2]}?${query}`, {
      redirect: 'manual', headers: { 'x-forwarded-for': ip, accept: 'text/html' },
    })));
    expect(answers.filter((r) => r.status === 303)).toHaveLength(PER_IP);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(4);
    const pushed = await fetch(`${server.url}/Request/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'x-forwarded-for': ip },
      body: new URLSearchParams({ client_id: publicClientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString(),
    });
    expect(pushed.status).toBe(429);
  });

  it('bounds and counts HEAD requests, which oidc-provider serves as GET and which store an interaction as well', async () => {
    const query = new URLSearchParams({
      client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    });
    const before = await storedInteractions();
    const big = await fetch(`${server.url}/auth?${query}&state=${'x'.repeat(12 * 1024)}`, { method: 'HEAD', redirect: 'manual', headers: { 'x-forwarded-for': freshIp() } });
    expect(big.status).toBe(400);
    expect(await storedInteractions()).toBe(before);
    const ip = freshIp();
    const answers = await Promise.all(Array.from({ length: PER_IP + 4 }, () => fetch(`${server.url}/auth?${query}`, {
      method: 'HEAD', redirect: 'manual', headers: { 'x-forwarded-for': ip },
    })));
    expect(answers.filter((r) => r.status === 303)).toHaveLength(PER_IP);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(4);
  });

  it('counts pushed authorization requests (POST /request) per address too: past the limit 429 with the OAuth JSON error, nothing stored', async () => {
    const ip = freshIp();
    const push = () => fetch(`${server.url}/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'x-forwarded-for': ip },
      body: new URLSearchParams({
        client_id: publicClientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      }).toString(),
    });
    const answers = await Promise.all(Array.from({ length: PER_IP + 5 }, push));
    expect(answers.filter((r) => r.status === 201)).toHaveLength(PER_IP);
    const refused = answers.filter((r) => r.status === 429);
    expect(refused).toHaveLength(5);
    for (const r of refused) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await r.json()).toMatchObject({ error: 'invalid_request' });
    }
    const before = await storedInteractions('PushedAuthorizationRequest');
    expect((await push()).status).toBe(429);
    expect(await storedInteractions('PushedAuthorizationRequest')).toBe(before);
    // The same address's browser is refused at /auth as well: one count per address.
    expect((await authorize({}, ip)).status).toBe(429);
  });

  it('does not count pushes a confidential app authenticates with HTTP Basic (its back end pushes for all its users); a wrong or borrowed Basic header stores nothing', async () => {
    const ip = freshIp();
    const push = (id: string, secret: string) => fetch(`${server.url}/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'x-forwarded-for': ip,
        authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({
        client_id: id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      }).toString(),
    });
    const answers = await Promise.all(Array.from({ length: PER_IP + 3 }, () => push(clientId, clientSecret)));
    expect(answers.map((r) => r.status)).toEqual(Array(PER_IP + 3).fill(201));
    const before = await storedInteractions('PushedAuthorizationRequest');
    for (const [id, secret] of [[clientId, 'not-the-secret'], [publicClientId, 'anything']] as const) {
      const res = await push(id, secret);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'invalid_client' });
    }
    expect(await storedInteractions('PushedAuthorizationRequest')).toBe(before);
  });
});
