// Black-box first run: a server on an empty database prints a one-time link; a person opens it
// in a browser, creates the first administrator, and signs in to an app with that account.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, type Page } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const INVALID_LINK = 'This setup link is invalid, expired or already used.';
const PASSWORD = 'correct-horse-battery';

let database: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let link: string;

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 10000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const SETUP_LINK = /(\S+\/setup\?token=[A-Za-z0-9_-]+)/;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_setup');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey(), PORT: String(await freePort()) };
  server = await startServer(env);
  // The link is printed just after the server starts listening.
  link = await waitFor(() => SETUP_LINK.exec(server.output())?.[1], 'the setup link');
});

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

const tokenOf = (url: string) => new URL(url).searchParams.get('token')!;

describe('first run', () => {
  it('prints a one-time setup link on the issuer, and nowhere else in the output', () => {
    expect(link.startsWith(`${server.url}/setup?token=`)).toBe(true);
    const token = tokenOf(link);
    expect(token.length).toBeGreaterThanOrEqual(43);
    expect(server.output().split(token).length - 1).toBe(1);
  });
});

describe('GET /setup', () => {
  it('shows the form with a CSRF field for a valid link', async () => {
    const page = await new Browser().navigate(link);
    expect(page.status).toBe(200);
    expect(page.html).toMatch(/name="_csrf" value="[^"]+"/);
    expect(page.html).toContain('Create the first administrator account');
    expect(page.headers.get('cache-control')).toBe('no-store');
  });

  it('returns 404 with the invalid-link text for a made-up token', async () => {
    const page = await new Browser().navigate(`${server.url}/setup?token=${'A'.repeat(43)}`);
    expect(page.status).toBe(404);
    expect(page.html).toContain(INVALID_LINK);
    expect(page.html).not.toContain('name="password"');
  });

  it('returns 404 without a token', async () => {
    const page = await new Browser().navigate(`${server.url}/setup`);
    expect(page.status).toBe(404);
    expect(page.html).toContain(INVALID_LINK);
  });
});

describe('POST /setup', () => {
  let browser: Browser;
  let form: Page;

  beforeAll(async () => {
    browser = new Browser();
    form = await browser.navigate(link);
    expect(form.status).toBe(200);
  });

  it('returns 403 without the CSRF token and creates nobody', async () => {
    const res = await browser.request(`${server.url}/setup`, {
      method: 'POST',
      body: new URLSearchParams({ token: tokenOf(link), username: 'mallory', email: 'mallory@example.com', password: PASSWORD }),
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('Your form has expired');
    // The link still works: nobody was created and it was not used up.
    expect((await new Browser().navigate(link)).status).toBe(200);
  });

  it('returns 400 for a too-short password, keeps what was typed, and does not burn the link', async () => {
    const page = await browser.submit(form, '/setup', { username: 'Grace', email: 'Grace@Example.com', name: 'Grace Hopper', password: 'short' });
    expect(page.status).toBe(400);
    expect(page.html).toContain('Choose a password of 8 to 256 characters.');
    expect(page.html).not.toContain('password: at least 8 characters');
    expect(page.html).toContain('value="Grace@Example.com"');
    expect(page.html).not.toContain('has been created');
    expect((await new Browser().navigate(link)).status).toBe(200);
    form = page; // the person corrects the form on the page they were shown
  });

  it('returns 400 for one of the most common passwords, whatever its case', async () => {
    const page = await browser.submit(form, '/setup', { username: 'Grace', email: 'Grace@Example.com', name: 'Grace Hopper', password: 'Password123' });
    expect(page.status).toBe(400);
    expect(page.html).toContain('This password is too common');
    expect(page.html).not.toContain('has been created');
    expect((await new Browser().navigate(link)).status).toBe(200);
    form = page;
  });

  it('creates the administrator with valid data and takes them, signed in, straight into the console', async () => {
    const page = await browser.submit(form, '/setup', { username: 'Grace', email: 'Grace@Example.com', name: 'Grace Hopper', password: PASSWORD });
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${server.url}/admin?welcome=1`);
    expect(page.html).toContain('You are the first administrator.');
    expect(page.html).toContain('Super admin');
    expect(server.output()).not.toContain(PASSWORD);
  });

  it('returns 404 when the link was used', async () => {
    const page = await new Browser().navigate(link);
    expect(page.status).toBe(404);
    expect(page.html).toContain(INVALID_LINK);
    expect(page.html).not.toContain('name="password"');

    // Posting the old form again does not create a second administrator.
    const again = await browser.submit(form, '/setup', { username: 'mallory', email: 'mallory@example.com', password: PASSWORD });
    expect(again.status).toBe(404);
    expect(again.html).toContain(INVALID_LINK);
  });
});

describe('the first administrator', () => {
  it('signs in to a first-party app through the authorization code flow', async () => {
    const created = await runCli(['apps', 'create', '--name', 'Console', '--redirect-uri', REDIRECT, '--first-party'], env);
    expect(created.code).toBe(0);
    const app = created.json as { client_id: string; client_secret: string };
    const config = await client.discovery(new URL(server.url), app.client_id, undefined,
      client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });

    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile email', state, nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const browser = new Browser();
    const signInPage = await browser.navigate(url.toString(), REDIRECT);
    expect(signInPage.status).toBe(200);
    const wrong = await browser.submit(signInPage, '/login', { login: 'grace', password: 'short' }, REDIRECT);
    expect(wrong.html).toContain('The username or password is incorrect.');
    const done = await browser.submit(wrong, '/login', { login: 'grace@example.com', password: PASSWORD }, REDIRECT);
    expect(done.url.startsWith(REDIRECT)).toBe(true);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.url), {
      pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce,
    });
    const claims = tokens.claims()!;
    expect(claims.preferred_username).toBe('grace');
    expect(claims.email).toBe('grace@example.com');
    expect(claims.name).toBe('Grace Hopper');
  });
});

describe('restart with an administrator', () => {
  it('prints no new setup link', async () => {
    await server.stop();
    server = await startServer(env);
    await waitFor(() => (server.output().includes('OneID is listening') ? true : undefined), 'the listening log line');
    // The link would follow the listening line within milliseconds; give it ample time.
    await new Promise((r) => setTimeout(r, 1500));
    expect(server.output()).not.toContain('/setup?token=');
    expect(server.output()).not.toContain('No administrator exists yet');
    const page = await new Browser().navigate(link);
    expect(page.status).toBe(404);
  });
});
