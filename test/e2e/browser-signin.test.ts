// Real browser: Chromium (Debian's, driven by playwright-core) signs in to an app written with
// openid-client, through OneID's own pages, the way a person does: the app's authorization URL,
// OneID's sign-in page, a username and password typed in, back at the app with a code whose ID
// token the app checks.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { oidcApp, startCallbackServer, type CallbackServer, type OidcApp } from '../helpers/oidc-app.ts';

let db: TestDatabase;
let server: RunningServer;
let callbacks: CallbackServer;
let env: Record<string, string>;
let ada: { id: string };
let app: OidcApp;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  callbacks = await startCallbackServer();
  const [user, registered] = await Promise.all([
    runCli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'analytical-engine', '--name', 'Ada Lovelace'], env),
    runCli(['apps', 'create', '--name', 'Notebook', '--redirect-uri', callbacks.redirectUri, '--first-party'], env),
  ]);
  expect([user.code, registered.code]).toEqual([0, 0]);
  ada = user.json;
  // http://localhost:<port>: a secure context for the browser, and a name WebAuthn accepts as an RP ID.
  server = await startServer(env);
  expect(server.url).toMatch(/^http:\/\/localhost:\d+$/);
  app = await oidcApp(server.url, registered.json, callbacks.redirectUri);
}, 120000);

// Each Chromium is a few hundred MB: none outlives its test.
afterEach(() => closeAllBrowsers());

afterAll(async () => {
  await closeAllBrowsers();
  await callbacks?.close();
  await server?.stop();
  await db?.drop();
});

describe('sign-in in Chromium with a password', () => {
  it('takes a person from the app to OneID and back, and the app gets a checked ID token with amr pwd', async () => {
    const { page } = await openBrowser();
    const request = await app.authorizationUrl();
    await page.goto(request.url.href);
    expect(new URL(page.url()).origin).toBe(server.url);
    await page.fill('input[name="login"]', 'ada');
    await page.fill('input[name="password"]', 'analytical-engine');
    await page.locator('form:has(input[name="password"]) button[type="submit"]').click();
    await page.waitForURL((u) => u.href.startsWith(app.redirectUri));

    const { claims } = await app.handleCallback(request, page.url());
    expect(claims.sub).toBe(ada.id);
    expect(claims.amr).toContain('pwd');
    expect(claims.amr).not.toContain('hwk');
  });

  it('keeps a person with a wrong password on the sign-in page, with an error, and no code reaches the app', async () => {
    const { page } = await openBrowser();
    const request = await app.authorizationUrl();
    await page.goto(request.url.href);
    await page.fill('input[name="login"]', 'ada');
    await page.fill('input[name="password"]', 'difference-engine');
    await page.locator('form:has(input[name="password"]) button[type="submit"]').click();
    await page.locator('#signin-error').waitFor();
    expect(new URL(page.url()).origin).toBe(server.url);
    expect(await page.locator('#signin-error').innerText()).toMatch(/incorrect/i);
    expect(await page.inputValue('input[name="password"]')).toBe('');
  });
});
