// Black-box: password guesses sent all at once, to one node or to two nodes sharing one
// PostgreSQL database, check no more passwords than the throttle's limits allow.
// The nodes trust X-Forwarded-For (TRUST_PROXY=true, as behind a load balancer), so each test
// chooses the client address its requests come from.
import * as client from 'openid-client';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, type Page } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
const PER_LOGIN = 5;
const PER_IP = 8;
const INCORRECT = 'The username or password is incorrect.';

let db: TestDatabase;
let issuer: string;
let nodeA: RunningServer;
let nodeB: RunningServer;
let config: client.Configuration;
let targetId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = {
    DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), TRUST_PROXY: 'true',
    SIGNIN_MAX_FAILURES: String(PER_LOGIN), SIGNIN_MAX_FAILURES_PER_IP: String(PER_IP), SIGNIN_LOCK_SECONDS: '600',
  };
  const [portA, portB] = [await freePort(), await freePort()];
  issuer = `http://localhost:${portA}`;
  [nodeA, nodeB] = await Promise.all([
    startServer({ ...env, PORT: String(portA), ISSUER: issuer }),
    startServer({ ...env, PORT: String(portB), ISSUER: issuer }),
  ]);
  const [app, target] = await Promise.all([
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
    ...['target', 'spread', 'office', 'roamer'].map((name) => runCli(['users', 'create', '--username', name, '--email', `${name}@example.com`, '--password', 'right-password'], env)),
  ]);
  targetId = target!.json.id;
  config = await client.discovery(new URL(issuer), app.json.client_id, undefined, client.ClientSecretBasic(app.json.client_secret), { execute: [client.allowInsecureRequests] });
}, 120000);

afterAll(async () => {
  await nodeA?.stop();
  await nodeB?.stop();
  await db?.drop();
});

/** A browser whose requests reach `node` through a load balancer that reports `ip` as the client. */
function browserAt(node: RunningServer, ip: string): Browser {
  const browser = new Browser();
  const u = new URL(issuer);
  browser.route = (url) => {
    const to = new URL(url);
    to.host = `127.0.0.1:${node.port}`;
    return { url: to, headers: { 'x-forwarded-for': ip, 'x-forwarded-host': u.host, 'x-forwarded-proto': 'http' } };
  };
  return browser;
}

/** A sign-in form, opened in its own browser: submitted later, all together. */
async function openForm(node: RunningServer, ip: string): Promise<{ browser: Browser; page: Page }> {
  const browser = browserAt(node, ip);
  const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
  const page = await browser.navigate(url.toString(), REDIRECT);
  expect(page.status).toBe(200);
  return { browser, page };
}

/** Waits (up to 10 s) until the shared count under `key` reaches `points`. */
async function untilCounted(key: string, points: number): Promise<void> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    for (const deadline = Date.now() + 10000; Date.now() < deadline;) {
      const { rows } = await c.query('select points from rate_limits where key = $1', [key]);
      if ((rows[0]?.points ?? 0) >= points) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await c.end();
  }
}

const submit = (form: { browser: Browser; page: Page }, login: string, password: string): Promise<Page> =>
  form.browser.submit(form.page, '/login', { login, password }, REDIRECT);

const signedIn = (page: Page): boolean => page.url.startsWith(REDIRECT) && new URL(page.url).searchParams.has('code');
/** A response that shows the password was checked (and was wrong). */
const checked = (page: Page): boolean => page.status === 200 && page.html.includes(INCORRECT);
const refused = (page: Page): boolean => page.status === 429 && /^\d+$/.test(page.headers.get('retry-after') ?? '') && !signedIn(page);

describe('POST /interaction/:uid/login, many at once', () => {
  it('checks at most the account limit of 30 simultaneous guesses from many addresses and two nodes; the right password among the excess does not sign in', async () => {
    // Each guess from its own address, so only the account's limit applies.
    const forms = await Promise.all(Array.from({ length: 30 }, (_, i) => openForm(i % 2 ? nodeB : nodeA, `198.51.100.${i + 1}`)));
    const wrong = forms.slice(0, 29).map((form, i) => submit(form, 'target', `guess-${i}`));
    // The right password leaves just after the wrong ones, once the account's limit is taken
    // (the count every node shares), so that it is one of the excess on a slow machine too.
    await new Promise((r) => setTimeout(r, 100));
    await untilCounted(`signin_login:user:${targetId}`, PER_LOGIN);
    const right = submit(forms[29]!, 'target', 'right-password');
    const answers = await Promise.all([...wrong, right]);
    expect(answers.filter(checked).length).toBeLessThanOrEqual(PER_LOGIN);
    expect(answers.filter((a) => checked(a) || refused(a))).toHaveLength(30);
    expect(signedIn(await right)).toBe(false);
    expect((await right).status).toBe(429);
  }, 120000);

  it('checks at most the address limit of 30 simultaneous guesses for different names from one address on two nodes', async () => {
    const forms = await Promise.all(Array.from({ length: 30 }, (_, i) => openForm(i % 2 ? nodeB : nodeA, '203.0.113.7')));
    const answers = await Promise.all(forms.map((form, i) => submit(form, i === 29 ? 'spread' : `nobody-${i}`, i === 29 ? 'right-password' : 'guess')));
    // Wrong passwords checked: at most the limit (a right one, if checked, gives its place back).
    expect(answers.filter(checked).length).toBeLessThanOrEqual(PER_IP);
    expect(answers.filter((a) => checked(a) || signedIn(a) || refused(a))).toHaveLength(30);
    // The address stays refused, whichever node it asks and whatever it sends.
    expect(refused(await submit(await openForm(nodeA, '203.0.113.7'), 'spread', 'right-password'))).toBe(true);
    expect(signedIn(await submit(await openForm(nodeB, '203.0.113.8'), 'spread', 'right-password'))).toBe(true);
  }, 120000);

  it('does not count right passwords against the address: a whole office signs in behind one address', async () => {
    for (let i = 0; i < PER_IP + 4; i += 1) {
      expect(signedIn(await submit(await openForm(i % 2 ? nodeB : nodeA, '192.0.2.50'), 'office', 'right-password'))).toBe(true);
    }
    // Wrong guesses from that address still count.
    for (let i = 0; i < PER_IP; i += 1) expect(checked(await submit(await openForm(nodeA, '192.0.2.50'), `nobody-office-${i}`, 'guess'))).toBe(true);
    expect(refused(await submit(await openForm(nodeB, '192.0.2.50'), 'office', 'right-password'))).toBe(true);
  }, 120000);
  it('counts guesses by the address the proxy saw, an IPv6 client by its /64: neither a forged X-Forwarded-For entry nor a new interface id gives a new budget', async () => {
    // The balancer appends the address it saw; the client wrote the entry before it.
    const from = (i: number) => `203.0.113.${i + 1}, 2001:db8:50:1::${(i + 1).toString(16)}`;
    for (let i = 0; i < PER_IP; i += 1) expect(checked(await submit(await openForm(i % 2 ? nodeB : nodeA, from(i)), `nobody-roamer-${i}`, 'guess'))).toBe(true);
    expect(refused(await submit(await openForm(nodeA, from(100)), 'roamer', 'right-password'))).toBe(true);
    expect(signedIn(await submit(await openForm(nodeB, '2001:db8:50:2::1'), 'roamer', 'right-password'))).toBe(true);
  }, 120000);
});
