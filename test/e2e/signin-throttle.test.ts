// Password guessing is slowed down per account name, shared through PostgreSQL.
import * as client from 'openid-client';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, type Page } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
let db: TestDatabase;
let server: RunningServer;
let config: client.Configuration;
let targetId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), SIGNIN_MAX_FAILURES: '3', SIGNIN_LOCK_SECONDS: '600' };
  const [target, , , app] = await Promise.all([
    runCli(['users', 'create', '--username', 'target', '--email', 'target@example.com', '--password', 'right-password'], env),
    runCli(['users', 'create', '--username', 'bystander', '--email', 'bystander@example.com', '--password', 'right-password'], env),
    runCli(['users', 'create', '--username', 'aliased', '--email', 'Aliased@Example.com', '--password', 'right-password'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
  ]);
  targetId = target.json.id;
  server = await startServer(env);
  config = await client.discovery(new URL(server.url), app.json.client_id, undefined, client.ClientSecretBasic(app.json.client_secret), { execute: [client.allowInsecureRequests] });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function loginPage(): Promise<{ browser: Browser; page: Page }> {
  const browser = new Browser();
  const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
  return { browser, page: await browser.navigate(url.toString(), REDIRECT) };
}

async function attempt(login: string, password: string): Promise<Page> {
  const { browser, page } = await loginPage();
  return browser.submit(page, '/login', { login, password }, REDIRECT);
}

describe('POST /interaction/:uid/login throttling', () => {
  it('locks an account name after too many failures, even for the right password, and not its neighbours', async () => {
    for (let i = 0; i < 3; i += 1) {
      const failed = await attempt('target', `guess-${i}`);
      expect(failed.html).toContain('The username or password is incorrect.');
    }
    const locked = await attempt('TARGET', 'right-password');
    expect(locked.status).toBe(429);
    expect(locked.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(locked.html).toContain('Too many failed sign-ins');
    expect(locked.url.startsWith(REDIRECT)).toBe(false);

    const neighbour = await attempt('bystander', 'right-password');
    expect(neighbour.url.startsWith(REDIRECT)).toBe(true);

    // The counters live in PostgreSQL, where every node sees them.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query("select key, points from rate_limits where key like 'signin_login%'");
    await c.end();
    expect(rows).toEqual([expect.objectContaining({ key: `signin_login:user:${targetId}` })]);
  });

  it('counts the failures of all of an account\'s names together, so another name gets no fresh guesses', async () => {
    await attempt('aliased', 'guess-1');
    await attempt('aliased@example.com', 'guess-2');
    await attempt(' ALIASED@EXAMPLE.COM', 'guess-3');
    for (const name of ['aliased', 'Aliased@Example.com']) {
      const locked = await attempt(name, 'right-password');
      expect(locked.status).toBe(429);
      expect(locked.url.startsWith(REDIRECT)).toBe(false);
    }
  });

  it('locks a name that finds no account as well, with the same answer', async () => {
    for (let i = 0; i < 3; i += 1) expect((await attempt('nobody-here', `guess-${i}`)).status).toBe(200);
    const locked = await attempt('Nobody-Here', 'right-password');
    expect(locked.status).toBe(429);
    expect(locked.html).toContain('Too many failed sign-ins');
  });

  it('answers a long name, or one that NFKC folding lengthens, like any other failure and counts it', async () => {
    // The form takes names up to 254 characters; U+FDFA folds to 18 characters.
    for (const name of ['n'.repeat(254), '\uFDFA'.repeat(200)]) {
      for (let i = 0; i < 3; i += 1) {
        const failed = await attempt(name, `guess-${i}`);
        expect(failed.status).toBe(200);
        expect(failed.html).toContain('The username or password is incorrect.');
      }
      expect((await attempt(name, 'guess-4')).status).toBe(429);
    }
  });

  it('forgets earlier failures after a successful sign-in, through any of the account\'s names', async () => {
    await attempt('bystander', 'wrong-1');
    await attempt('bystander', 'wrong-2');
    expect((await attempt('bystander', 'right-password')).url.startsWith(REDIRECT)).toBe(true);
    await attempt('bystander', 'wrong-3');
    await attempt('bystander', 'wrong-4');
    expect((await attempt('bystander', 'right-password')).url.startsWith(REDIRECT)).toBe(true);
    // Two failures by the username, a success by the email: the count starts again.
    await attempt('bystander', 'wrong-5');
    await attempt('bystander', 'wrong-6');
    expect((await attempt('bystander@example.com', 'right-password')).url.startsWith(REDIRECT)).toBe(true);
    await attempt('bystander', 'wrong-7');
    await attempt('bystander', 'wrong-8');
    expect((await attempt('bystander', 'right-password')).url.startsWith(REDIRECT)).toBe(true);
  });
});
