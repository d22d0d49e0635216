// Real browser, #18: passkeys, authenticator codes, recovery codes, per-app sign-in policies and
// OneID's one session, the way people meet them. Chromium (Debian's, through playwright-core) with
// a DevTools virtual authenticator (a platform passkey with user verification) signs in to apps
// written with openid-client; every ID token is checked (signature, nonce, PKCE) before its amr
// and acr are read.
//
// Pages used (design18.md): the sign-in flow (`/login/:flow`: identify form with `login` and
// `password`, `#passkey-signin`, conditional UI on the `login` field; second factor
// `[data-step="second-factor"]` with the `/totp` and `/recovery` forms), the home page's
// `#sign-out`, and /account/security (`#passkey-register`, the authenticator-app set-up with
// `#totp-secret`, recovery codes `.recovery-code`, `#sign-out-everywhere`).
import { createHmac } from 'node:crypto';
import { jest } from '@jest/globals';
import type { Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import {
  addVirtualAuthenticator, closeAllBrowsers, describePage, ignorePasskeyAutofill, openBrowser,
  type OpenBrowser, type VirtualAuthenticator, type VirtualCredential,
} from '../helpers/chromium.ts';
import { oidcApp, startCallbackServer, type CallbackServer, type OidcApp, type SignInOptions, type SignedIn } from '../helpers/oidc-app.ts';

const ACR = {
  password: 'urn:oneid:acr:password',
  mfa: 'urn:oneid:acr:mfa',
  phishing_resistant: 'urn:oneid:acr:phishing_resistant',
};

let db: TestDatabase;
let server: RunningServer;
let callbacks: CallbackServer;
let env: Record<string, string>;
let admin: AdminClient;
/** An app with the default policy (password), one that needs two factors, one that needs a passkey. */
let passwordApp: OidcApp;
let mfaApp: OidcApp;
let passkeyApp: OidcApp;
const users: Record<string, { id: string; login: string; password: string }> = {};
const PEOPLE = ['ada', 'grace', 'hedy', 'joan', 'mary', 'katherine', 'radia', 'frances'];

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  callbacks = await startCallbackServer();
  // One person per scenario, so that no scenario depends on what another enrolled or ended.
  const created = await Promise.all(PEOPLE.map((login) => runCli(['users', 'create', '--username', login, '--email', `${login}@example.com`,
    '--password', `${login}-correct-horse-battery`, '--name', login], env)));
  created.forEach((c, i) => {
    expect(c.code).toBe(0);
    users[PEOPLE[i]!] = { id: c.json.id, login: PEOPLE[i]!, password: `${PEOPLE[i]}-correct-horse-battery` };
  });
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['app_admin']);
  const register = async (name: string, signInPolicy: string | undefined) => {
    const res = await admin.call('POST', '/apps', { name, redirectUris: [callbacks.redirectUri], firstParty: true, access: 'everyone', ...(signInPolicy ? { signInPolicy } : {}) });
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 201, body: signInPolicy ? { signInPolicy } : {} });
    return oidcApp(server.url, res.body, callbacks.redirectUri);
  };
  [passwordApp, mfaApp, passkeyApp] = await Promise.all([
    register('Wiki', undefined), register('Payroll', 'mfa'), register('Vault', 'phishing_resistant'),
  ]);
}, 180000);

// Each Chromium is a few hundred MB: none outlives its test.
afterEach(() => closeAllBrowsers());

afterAll(async () => {
  await closeAllBrowsers();
  await callbacks?.close();
  await server?.stop();
  await db?.drop();
});

// ---- page steps ---------------------------------------------------------------------------

const passwordInput = (page: Page) => page.locator('input[name="password"]');

/** Types the person's username and password into the identify step and submits it. */
async function enterPassword(page: Page, who: { login: string; password: string }): Promise<void> {
  await page.fill('input[name="login"]', who.login);
  await passwordInput(page).fill(who.password);
  await page.locator('form:has(input[name="password"]) button[type="submit"]').click();
}

/** Waits for the browser to reach the app's redirect URI and redeems the code there. */
async function backAtApp(page: Page, app: OidcApp, request: Awaited<ReturnType<OidcApp['authorizationUrl']>>): Promise<SignedIn> {
  await page.waitForURL((u) => u.href.startsWith(app.redirectUri)).catch(async (err: Error) => {
    throw new Error(`the browser did not get back to the app (${err.message.split('\n')[0]}); it is at ${await describePage(page)}`);
  });
  return app.handleCallback(request, page.url());
}

/** The app's authorization request in `page`; resolves once OneID's page (or the app) has loaded. */
async function openApp(page: Page, app: OidcApp, opts: SignInOptions = {}) {
  const request = await app.authorizationUrl(opts);
  await page.goto(request.url.href);
  return request;
}

/** A silent authorization request (prompt=none): the ID token, or the error the app is sent. */
async function silently(page: Page, app: OidcApp): Promise<{ error: string | null; signedIn?: SignedIn }> {
  const request = await openApp(page, app, { prompt: 'none' });
  await page.waitForURL((u) => u.href.startsWith(app.redirectUri));
  const error = new URL(page.url()).searchParams.get('error');
  return error ? { error } : { error: null, signedIn: await app.handleCallback(request, page.url()) };
}

/** Opens /account/security, signing in with the password on the way when needed. */
async function openSecurityPage(page: Page, who: { login: string; password: string }): Promise<void> {
  await page.goto(`${server.url}/account/security`);
  if (!new URL(page.url()).pathname.startsWith('/account/security')) {
    await enterPassword(page, who);
    await page.waitForURL((u) => u.pathname === '/account/security');
  }
}

/** Signs this browser out of OneID from the home page. */
async function signOut(page: Page): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.click('#sign-out');
  await page.locator('#signed-out').waitFor();
}

/** Registers a passkey on /account/security with the page's authenticator; returns it as the authenticator holds it. */
async function registerPasskey(page: Page, authenticator: VirtualAuthenticator, who: { login: string; password: string }): Promise<VirtualCredential> {
  await openSecurityPage(page, who);
  const before = await page.locator('.passkey').count();
  await page.click('#passkey-register');
  await page.waitForFunction((n) => document.querySelectorAll('.passkey').length > n, before);
  const [credential] = await authenticator.credentials();
  if (!credential) throw new Error('the authenticator holds no credential after registration');
  return credential;
}

/** A browser whose authenticator holds `credential` (the same passkey, on another device session). */
async function browserWithPasskey(credential: VirtualCredential | undefined, opts: { ignoreAutofill: boolean }): Promise<OpenBrowser & { authenticator: VirtualAuthenticator }> {
  const browser = await openBrowser();
  if (opts.ignoreAutofill) await ignorePasskeyAutofill(browser.context);
  const authenticator = await addVirtualAuthenticator(browser.page);
  if (credential) await authenticator.addCredential(credential);
  return { ...browser, authenticator };
}

/** A person with a passkey registered through the security page (in a browser closed afterwards). */
async function personWithPasskey(who: { login: string; password: string }): Promise<VirtualCredential> {
  const browser = await browserWithPasskey(undefined, { ignoreAutofill: true });
  try {
    return await registerPasskey(browser.page, browser.authenticator, who);
  } finally {
    await browser.close();
  }
}

// ---- authenticator codes (RFC 4226 / RFC 6238), computed here as a phone app would ----------

function base32Decode(input: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = input.replace(/[\s=-]/g, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of clean) {
    const idx = alphabet.indexOf(ch);
    if (idx < 0) throw new Error(`not base32: ${input}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function hotp(secret: Buffer, counter: number, digits = 6): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', secret).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(code).padStart(digits, '0');
}

/** An authenticator app: codes for the current 30 s step, never one whose step was already used (OneID refuses a step twice). */
class AuthenticatorApp {
  #lastStep = -1;
  constructor(private readonly secret: Buffer) {}
  static fromKey(key: string): AuthenticatorApp { return new AuthenticatorApp(base32Decode(key)); }
  async nextCode(): Promise<string> {
    let step = Math.floor(Date.now() / 30000);
    if (step <= this.#lastStep) {
      await new Promise((r) => setTimeout(r, (this.#lastStep + 1) * 30000 - Date.now() + 200));
      step = Math.floor(Date.now() / 30000);
    }
    this.#lastStep = step;
    return hotp(this.secret, step);
  }
  /** A code this app would not show now nor in the neighbouring steps. */
  wrongCode(): string {
    const step = Math.floor(Date.now() / 30000);
    const near = new Set([-2, -1, 0, 1, 2].map((d) => hotp(this.secret, step + d)));
    for (let n = 0; ; n += 1) {
      const candidate = String(n).padStart(6, '0');
      if (!near.has(candidate)) return candidate;
    }
  }
}

/** Sets up an authenticator app on /account/security; returns it, and any recovery codes the page shows. */
async function setUpTotp(page: Page, who: { login: string; password: string }): Promise<{ app: AuthenticatorApp; recoveryCodes: string[] }> {
  await openSecurityPage(page, who);
  await page.locator('form[action$="/totp/setup"] button[type="submit"]').click();
  const key = (await page.locator('#totp-secret').innerText()).trim();
  const app = AuthenticatorApp.fromKey(key);
  await page.locator('form[action$="/totp/confirm"] input[name="code"]').fill(await app.nextCode());
  await page.locator('form[action$="/totp/confirm"] button[type="submit"]').click();
  await page.waitForLoadState();
  const recoveryCodes = await page.locator('.recovery-code').allInnerTexts();
  return { app, recoveryCodes: recoveryCodes.map((c) => c.trim()) };
}

/** Recovery codes from /account/security (new ones: the old are void). */
async function newRecoveryCodes(page: Page, who: { login: string; password: string }): Promise<string[]> {
  await openSecurityPage(page, who);
  await page.locator('form[action$="/recovery-codes"] button[type="submit"]').click();
  await page.locator('.recovery-code').first().waitFor();
  return (await page.locator('.recovery-code').allInnerTexts()).map((c) => c.trim());
}

const secondFactorStep = (page: Page) => page.locator('[data-step="second-factor"]');

// ---- the scenarios ------------------------------------------------------------------------

// A scenario may wait for the next 30 s authenticator-code step (a step is accepted once).
jest.setTimeout(150000);

describe('#18 passkeys in Chromium', () => {
  it('registers a passkey on /account/security after a password sign-in: the page lists it, the authenticator holds a discoverable key for localhost', async () => {
    const { page, authenticator } = await browserWithPasskey(undefined, { ignoreAutofill: true });
    await openSecurityPage(page, users.ada!);
    expect(await page.locator('.passkey').count()).toBe(0);
    const credential = await registerPasskey(page, authenticator, users.ada!);
    expect(credential.isResidentCredential).toBe(true);
    expect(credential.rpId).toBe('localhost');
    expect(await page.locator('.passkey').count()).toBe(1);
    // Still there after a reload: stored, not only drawn by the page script.
    await page.reload();
    expect(await page.locator('.passkey').count()).toBe(1);
  });

  it('signs out, then signs in to an app with the passkey alone, no username typed (#passkey-signin): amr hwk + user, no pwd', async () => {
    const credential = await personWithPasskey(users.grace!);
    const { page, authenticator } = await browserWithPasskey(credential, { ignoreAutofill: true });
    // Signed in once (password, at OneID's home page) then signed out: the next sign-in starts
    // from nothing. (The security page would ask a person with a passkey for it: see below.)
    await page.goto(`${server.url}/login/start?return_to=%2F`);
    await enterPassword(page, users.grace!);
    await page.waitForURL((u) => u.pathname === '/');
    await signOut(page);

    const request = await openApp(page, passwordApp);
    expect(await page.inputValue('input[name="login"]')).toBe('');
    await page.click('#passkey-signin');
    const { claims } = await backAtApp(page, passwordApp, request);
    expect(claims.sub).toBe(users.grace!.id);
    expect(claims.amr).toEqual(expect.arrayContaining(['hwk', 'user']));
    expect(claims.amr).not.toContain('pwd');
    expect((await authenticator.credentials())[0]!.signCount).toBeGreaterThan(credential.signCount);
  });

  it('refuses a passkey the person does not have: a browser without one stays on the sign-in page with an error', async () => {
    const { page } = await browserWithPasskey(undefined, { ignoreAutofill: true });
    await openApp(page, passwordApp);
    await page.click('#passkey-signin');
    await page.locator('[data-passkey-error]').waitFor({ state: 'visible' });
    expect(new URL(page.url()).origin).toBe(server.url);
    expect(await passwordInput(page).isVisible()).toBe(true);
  });

  it('signs in through the username field\'s passkey autofill (conditional UI): the authenticator answers, the app is signed in', async () => {
    const credential = await personWithPasskey(users.hedy!);
    const { page } = await browserWithPasskey(credential, { ignoreAutofill: false });
    const request = await passwordApp.authorizationUrl();
    await page.goto(request.url.href, { waitUntil: 'commit' });
    // The person focuses the username field; the autofill suggestion is the passkey. (The virtual
    // authenticator may answer before the focus, and the page may already be on its way to the app.)
    await Promise.race([
      page.locator('input[name="login"]').focus(),
      page.waitForURL((u) => u.href.startsWith(passwordApp.redirectUri)),
    ]).catch(() => undefined);
    const { claims } = await backAtApp(page, passwordApp, request);
    expect(claims.sub).toBe(users.hedy!.id);
    expect(claims.amr).toEqual(expect.arrayContaining(['hwk', 'user']));
    expect(claims.amr).not.toContain('pwd');
  });
});

describe('#18 per-app sign-in policies in Chromium', () => {
  it('a phishing_resistant app refuses a password-only session and steps it up with the passkey, without asking for the password again', async () => {
    const credential = await personWithPasskey(users.joan!);
    const { page } = await browserWithPasskey(credential, { ignoreAutofill: true });
    // A password sign-in to an ordinary app: acr password.
    const first = await openApp(page, passwordApp);
    await enterPassword(page, users.joan!);
    const wiki = await backAtApp(page, passwordApp, first);
    expect(wiki.claims.amr).toContain('pwd');
    expect(wiki.claims.acr).toBe(ACR.password);

    // The passkey-only app: not silently ...
    expect((await silently(page, passkeyApp)).error).toMatch(/^(login_required|interaction_required)$/);
    // ... and interactively, a step-up page that asks for the passkey only.
    const request = await openApp(page, passkeyApp);
    await secondFactorStep(page).waitFor();
    expect(await passwordInput(page).count()).toBe(0);
    await page.click('#passkey-signin');
    const vault = await backAtApp(page, passkeyApp, request);
    expect(vault.claims.sub).toBe(users.joan!.id);
    expect(vault.claims.acr).toBe(ACR.phishing_resistant);
    expect(vault.claims.amr).toEqual(expect.arrayContaining(['pwd', 'hwk']));
  });

  it('sets up an authenticator app on /account/security, then signs in to an mfa app with password + code (a wrong code is refused)', async () => {
    const { page } = await openBrowser();
    const { app: phone } = await setUpTotp(page, users.mary!);
    await signOut(page);

    const request = await openApp(page, mfaApp);
    await enterPassword(page, users.mary!);
    await secondFactorStep(page).waitFor();
    await page.locator('form[action$="/totp"] input[name="code"]').fill(phone.wrongCode());
    await page.locator('form[action$="/totp"] button[type="submit"]').click();
    await page.locator('#code-error').waitFor();
    expect(new URL(page.url()).origin).toBe(server.url);

    await page.locator('form[action$="/totp"] input[name="code"]').fill(await phone.nextCode());
    await page.locator('form[action$="/totp"] button[type="submit"]').click();
    const { claims } = await backAtApp(page, mfaApp, request);
    expect(claims.sub).toBe(users.mary!.id);
    expect(claims.acr).toBe(ACR.mfa);
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));
  });

  it('signs in to an mfa app with a recovery code, which works once only', async () => {
    const { page } = await openBrowser();
    const { recoveryCodes: shown } = await setUpTotp(page, users.katherine!);
    const codes = shown.length ? shown : await newRecoveryCodes(page, users.katherine!);
    expect(codes.length).toBeGreaterThanOrEqual(8);
    await signOut(page);

    const request = await openApp(page, mfaApp);
    await enterPassword(page, users.katherine!);
    await secondFactorStep(page).waitFor();
    await page.locator('form[action$="/recovery"] input[name="code"]').fill(codes[0]!);
    await page.locator('form[action$="/recovery"] button[type="submit"]').click();
    // The person is told how many codes are left, then goes on to the app.
    await page.locator('#recovery-left').waitFor();
    expect(await page.locator('#recovery-left').innerText()).toContain(`You have ${codes.length - 1} left`);
    await page.locator('form[action$="/continue"] button[type="submit"]').click();
    const { claims } = await backAtApp(page, mfaApp, request);
    expect(claims.sub).toBe(users.katherine!.id);
    expect(claims.acr).toBe(ACR.mfa);
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));

    // The same code a second time: refused, the app gets nothing.
    await signOut(page);
    await openApp(page, mfaApp);
    await enterPassword(page, users.katherine!);
    await secondFactorStep(page).waitFor();
    await page.locator('form[action$="/recovery"] input[name="code"]').fill(codes[0]!);
    await page.locator('form[action$="/recovery"] button[type="submit"]').click();
    await page.locator('#code-error').waitFor();
    expect(new URL(page.url()).origin).toBe(server.url);
  });

  it('shares one session between two apps with different policies: the mfa app asks only for the step-up, the first app stays signed in', async () => {
    const { page } = await openBrowser();
    const { app: phone } = await setUpTotp(page, users.radia!);
    await signOut(page);

    const first = await openApp(page, passwordApp, { max_age: 3600 });
    await enterPassword(page, users.radia!);
    const wiki = await backAtApp(page, passwordApp, first);
    expect(wiki.claims.acr).toBe(ACR.password);
    expect(typeof wiki.claims.auth_time).toBe('number');

    const request = await openApp(page, mfaApp, { max_age: 3600 });
    await secondFactorStep(page).waitFor();
    expect(await passwordInput(page).count()).toBe(0); // only the step-up
    await page.locator('form[action$="/totp"] input[name="code"]').fill(await phone.nextCode());
    await page.locator('form[action$="/totp"] button[type="submit"]').click();
    const payroll = await backAtApp(page, mfaApp, request);
    expect(payroll.claims.sub).toBe(users.radia!.id);
    expect(payroll.claims.acr).toBe(ACR.mfa);
    expect(payroll.claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp']));

    // Both apps now sign in silently from the one session.
    const again = await silently(page, passwordApp);
    expect(again.error).toBeNull();
    expect(again.signedIn!.claims.sub).toBe(users.radia!.id);
    expect((await silently(page, mfaApp)).error).toBeNull();
  });
});

describe('#18 sign out everywhere, across two browsers', () => {
  it('ends the other browser\'s session: its apps must sign in again', async () => {
    const [laptop, phone] = await Promise.all([openBrowser(), openBrowser()]);
    for (const b of [laptop, phone]) {
      const request = await openApp(b.page, passwordApp);
      await enterPassword(b.page, users.frances!);
      expect((await backAtApp(b.page, passwordApp, request)).claims.sub).toBe(users.frances!.id);
    }
    // Two browsers, two sessions: signing out one alone would leave the other signed in.
    expect((await silently(phone.page, passwordApp)).error).toBeNull();

    await openSecurityPage(laptop.page, users.frances!);
    await laptop.page.click('#sign-out-everywhere');
    await laptop.page.waitForLoadState();

    expect((await silently(phone.page, passwordApp)).error).toBe('login_required');
    await phone.page.goto(`${server.url}/account/security`);
    expect(new URL(phone.page.url()).pathname).not.toBe('/account/security');
    expect(await passwordInput(phone.page).isVisible()).toBe(true);
  });
});
