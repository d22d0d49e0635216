// Real browser, #19: SAML single sign-on the way people meet it. Chromium (Debian's, through
// playwright-core) goes from a service provider written with @node-saml/node-saml
// (test/helpers/saml-sp-app.ts over node-saml-sp.ts, on 127.0.0.1: another site than OneID's localhost) to OneID's own
// pages and back; every Response is checked by node-saml (signatures, issuer, audience,
// InResponseTo, times) before the SP page shows who signed in. The tests read that page.
//
// Scenarios (issue #19, "Tests with parts nobody here wrote"): a full SP-initiated sign-in
// through the sign-in page (Redirect and POST bindings), a person already signed in through an
// OIDC app (no second prompt), step-up to an mfa SAML app (only the authenticator code is asked
// for), a person without access (the no-access page, and the SP hears RequestDenied), and an
// SP-initiated single logout that ends the OIDC session of the same browser too.
import { randomUUID } from 'node:crypto';
import { generateSecret, generateSync } from 'otplib';
import pg from 'pg';
import type { Page, Request } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { closeAllBrowsers, describePage, openBrowser } from '../helpers/chromium.ts';
import { oidcApp, startCallbackServer, type CallbackServer, type OidcApp } from '../helpers/oidc-app.ts';
import { startSamlSpApp, type SamlSpApp } from '../helpers/saml-sp-app.ts';
import { MasterKey } from '../../src/keys/master-key.ts';

const ACR_MFA = 'urn:oneid:acr:mfa';
const STATUS_RESPONDER = 'urn:oasis:names:tc:SAML:2.0:status:Responder';
const STATUS_REQUEST_DENIED = 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied';

let db: TestDatabase;
let sql: pg.Client;
let server: RunningServer;
let callbacks: CallbackServer;
let env: Record<string, string>;
/** An OIDC app with the default policy (password), to be signed in to before a SAML app. */
let notebook: OidcApp;
/** SAML app "Expenses": access 'assigned', app role 'approver'; the SP sends node-saml's default RequestedAuthnContext. */
let expensesSp: SamlSpApp;
/** SAML app "Ledger": sign-in policy mfa, everyone has access; the SP relies on the app's policy (no RequestedAuthnContext). */
let ledgerSp: SamlSpApp;
let expensesAppId: string;
const PEOPLE = ['ada', 'alan', 'grace', 'hedy', 'joan', 'mary'] as const;
type Person = { id: string; login: string; email: string; password: string };
const people = {} as Record<(typeof PEOPLE)[number], Person>;

/** Registers a SAML app for `sp` as an operator does (`oneid apps create --type saml`); returns its id. */
async function registerSamlApp(name: string, sp: SamlSpApp, opts: { access: 'everyone' | 'assigned'; signInPolicy?: 'mfa' }): Promise<string> {
  const created = await runCli(['apps', 'create', '--type', 'saml', '--name', name, '--entity-id', sp.entityId, '--acs-url', sp.acsUrl,
    '--slo-url', sp.sloUrl, '--access', opts.access, ...(opts.signInPolicy ? ['--signin-policy', opts.signInPolicy] : [])], env);
  expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  return created.json.id;
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  callbacks = await startCallbackServer();
  const created = await Promise.all(PEOPLE.map((login) => runCli(['users', 'create', '--username', login, '--email', `${login}@example.com`,
    '--password', `${login}-correct-horse-battery`, '--name', login], env)));
  created.forEach((c, i) => {
    expect({ code: c.code, stderr: c.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    const login = PEOPLE[i]!;
    people[login] = { id: c.json.id, login, email: `${login}@example.com`, password: `${login}-correct-horse-battery` };
  });
  const registered = await runCli(['apps', 'create', '--name', 'Notebook', '--redirect-uri', callbacks.redirectUri, '--first-party'], env);
  expect(registered.code).toBe(0);
  server = await startServer(env);
  notebook = await oidcApp(server.url, registered.json, callbacks.redirectUri);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();

  // node-saml asks for PasswordProtectedTransport by default: Expenses keeps that default.
  [expensesSp, ledgerSp] = await Promise.all([startSamlSpApp(server.url), startSamlSpApp(server.url, { disableRequestedAuthnContext: true })]);
  [expensesAppId] = await Promise.all([
    registerSamlApp('Expenses', expensesSp, { access: 'assigned' }),
    registerSamlApp('Ledger', ledgerSp, { access: 'everyone', signInPolicy: 'mfa' }),
  ]);
  // The app role and who holds it, the way an admin gives them (the CLI).
  const role = await runCli(['app-roles', 'create', '--app', expensesAppId, '--key', 'approver', '--name', 'Approver'], env);
  expect({ code: role.code, stderr: role.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  for (const who of [people.ada, people.alan, people.grace, people.mary]) {
    const assigned = await runCli(['assignments', 'create', '--app', expensesAppId, '--user', who.id, '--role', 'approver'], env);
    expect({ code: assigned.code, stderr: assigned.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  }
}, 180000);

// Each Chromium is a few hundred MB: none outlives its test.
afterEach(() => closeAllBrowsers());

afterAll(async () => {
  await closeAllBrowsers();
  await Promise.all([expensesSp?.close(), ledgerSp?.close(), callbacks?.close()]);
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

// ---- page steps ---------------------------------------------------------------------------

/** Every URL the tab asked for as a page (redirect hops included, each is its own request). */
function recordNavigations(page: Page): Array<{ method: string; url: URL }> {
  const seen: Array<{ method: string; url: URL }> = [];
  page.on('request', (r: Request) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) seen.push({ method: r.method(), url: new URL(r.url()) });
  });
  return seen;
}

/** Types the person's username and password into OneID's identify step and submits it. */
async function enterPassword(page: Page, who: Person): Promise<void> {
  await page.fill('input[name="login"]', who.login);
  await page.fill('input[name="password"]', who.password);
  await page.locator('form:has(input[name="password"]) button[type="submit"]').click();
}

/**
 * Opens the SP's login URL. Only the start is awaited ('commit'): what follows (redirects, OneID's
 * auto-submitting pages) navigates on by itself, and each test waits for the page it expects.
 */
async function openSp(page: Page, sp: SamlSpApp, binding: 'redirect' | 'post' = 'redirect'): Promise<void> {
  await page.goto(sp.loginUrl(binding), { waitUntil: 'commit' });
}

/** Waits for a page the SP shows (signed in or refused) and returns what it shows. */
async function atSp(page: Page, sp: SamlSpApp): Promise<{ signedIn: true; profile: any } | { signedIn: false; refusal: string; status: string[] }> {
  await page.locator('#sp-signed-in, #sp-refused').first().waitFor().catch(async (err: Error) => {
    throw new Error(`the SP did not show a result (${err.message.split('\n')[0]}); the browser is at ${await describePage(page)}`);
  });
  expect(page.url()).toBe(sp.acsUrl);
  if (await page.locator('#sp-signed-in').count()) {
    return { signedIn: true, profile: JSON.parse(await page.locator('#sp-profile').innerText()) };
  }
  return { signedIn: false, refusal: await page.locator('#sp-refused').innerText(), status: JSON.parse(await page.locator('#sp-status').innerText()) };
}

/** Signs in to the OIDC app Notebook with a password (a fresh OneID session in this browser). */
async function signInToNotebook(page: Page, who: Person): Promise<void> {
  const request = await notebook.authorizationUrl();
  await page.goto(request.url.href);
  await enterPassword(page, who);
  await page.waitForURL((u) => u.href.startsWith(notebook.redirectUri));
  const { claims } = await notebook.handleCallback(request, page.url());
  expect(claims.sub).toBe(who.id);
  expect(claims.amr).toContain('pwd');
}

const isOneIdSignInPage = (u: URL) => u.origin === server.url && u.pathname.startsWith('/login');

/** Gives a person an authenticator app (a confirmed TOTP credential, seed sealed with the master key as OneID stores it); returns its seed. */
async function giveAuthenticatorApp(who: Person): Promise<string> {
  const secret = generateSecret();
  const sealed = MasterKey.parse(env.ONEID_MASTER_KEY!).encrypt(secret);
  await sql.query(`insert into credentials (id, user_id, type, data) values ($1, $2, 'totp', $3)`,
    [randomUUID(), who.id, JSON.stringify({ secret: sealed, confirmed: true, lastStep: 0 })]);
  return secret;
}

// ---- the scenarios ------------------------------------------------------------------------

describe('#19 SAML sign-in in Chromium', () => {
  it.each([
    ['redirect', 'ada'],
    ['post', 'alan'],
  ] as const)('SP-initiated over the %s binding: the sign-in page, the password, the auto-post page, and the SP shows the email and the app role', async (binding, login) => {
    const who = people[login];
    const { page } = await openBrowser();
    const navigations = recordNavigations(page);
    await openSp(page, expensesSp, binding);
    await page.locator('input[name="password"]').waitFor();
    expect(isOneIdSignInPage(new URL(page.url()))).toBe(true);
    await enterPassword(page, who);

    const shown = await atSp(page, expensesSp);
    expect(shown).toMatchObject({
      signedIn: true,
      profile: {
        nameID: who.email,
        nameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
        issuer: `${server.url}/saml/metadata`,
        attributes: { email: who.email, roles: 'approver' },
      },
    });
    expect((shown as { profile: any }).profile.relayState).toMatch(/^sp-\d+$/);
    // The request went in by the chosen binding, and the Response reached the ACS by a POST the
    // OneID page made by itself (the test never clicked #saml-continue).
    const toOneId = navigations.find((n) => n.url.origin === server.url)!;
    expect(toOneId).toMatchObject({ method: binding === 'post' ? 'POST' : 'GET', url: expect.objectContaining({ pathname: '/saml/sso' }) });
    expect(navigations.at(-1)).toMatchObject({ method: 'POST', url: new URL(expensesSp.acsUrl) });
  });

  it.each(['redirect', 'post'] as const)('reuses an OIDC sign-in (%s binding): the SP is signed in without OneID\'s sign-in page ever showing', async (binding) => {
    const who = people.grace;
    const { page } = await openBrowser();
    await signInToNotebook(page, who);

    const navigations = recordNavigations(page);
    await openSp(page, expensesSp, binding);
    const shown = await atSp(page, expensesSp);
    expect(shown).toMatchObject({ signedIn: true, profile: { nameID: who.email, attributes: { email: who.email, roles: 'approver' } } });
    const pages = navigations.map((n) => n.url);
    expect(pages.some((u) => u.origin === server.url && u.pathname === '/saml/sso')).toBe(true);
    expect(pages.filter(isOneIdSignInPage).map((u) => u.href)).toEqual([]);
  });

  it('steps up for an mfa SAML app: only the authenticator code is asked for, and the assertion says urn:oneid:acr:mfa', async () => {
    const who = people.hedy;
    const seed = await giveAuthenticatorApp(who);
    const { page } = await openBrowser();
    await signInToNotebook(page, who);

    await openSp(page, ledgerSp);
    await page.locator('[data-step="second-factor"]').waitFor().catch(async (err: Error) => {
      throw new Error(`no step-up page (${err.message.split('\n')[0]}); the browser is at ${await describePage(page)}`);
    });
    expect(await page.locator('input[name="password"]').count()).toBe(0);
    await page.locator('form[action$="/totp"] input[name="code"]').fill(generateSync({ secret: seed }));
    await page.locator('form[action$="/totp"] button[type="submit"]').click();

    const shown = await atSp(page, ledgerSp);
    expect(shown).toMatchObject({ signedIn: true, profile: { nameID: who.email, authnContextClassRef: ACR_MFA } });
  });

  it('refuses a person the app is not assigned to: OneID\'s no-access page, and its button brings the SP a RequestDenied Response', async () => {
    const who = people.joan;
    const { page } = await openBrowser();
    await openSp(page, expensesSp);
    await enterPassword(page, who);
    await page.locator('#no-access').waitFor().catch(async (err: Error) => {
      throw new Error(`no no-access page (${err.message.split('\n')[0]}); the browser is at ${await describePage(page)}`);
    });
    expect(new URL(page.url()).origin).toBe(server.url);
    expect(await page.locator('#no-access').innerText()).toContain('Expenses');

    await page.click('#back-to-app');
    const shown = await atSp(page, expensesSp);
    expect(shown).toMatchObject({ signedIn: false, status: [STATUS_RESPONDER, STATUS_REQUEST_DENIED] });
    expect((shown as { refusal: string }).refusal).toMatch(/Responder/);
  });
});

describe('#19 SAML single logout in Chromium', () => {
  it('an SP-initiated logout ends the OneID session and the OIDC one: the SP gets a signed Success LogoutResponse, prompt=none gets login_required, the SP must sign in again', async () => {
    const who = people.mary;
    const { page } = await openBrowser();
    await signInToNotebook(page, who);
    await openSp(page, expensesSp);
    expect(await atSp(page, expensesSp)).toMatchObject({ signedIn: true, profile: { nameID: who.email } });

    // The SP's LogoutRequest (Redirect binding) goes to OneID, which answers at the SP's SLO URL;
    // the SP page appears only once node-saml has checked the answer (signed, Success, InResponseTo).
    const navigations = recordNavigations(page);
    await page.goto(expensesSp.logoutUrl, { waitUntil: 'commit' });
    await page.locator('#sp-logged-out, #sp-logout-refused').first().waitFor().catch(async (err: Error) => {
      throw new Error(`the SP did not show the logout's outcome (${err.message.split('\n')[0]}); the browser is at ${await describePage(page)}`);
    });
    expect(await page.locator('#sp-logout-refused').count()).toBe(0);
    expect(new URL(page.url()).origin + new URL(page.url()).pathname).toBe(expensesSp.sloUrl);
    expect(navigations.some((n) => n.url.origin === server.url && n.url.pathname === '/saml/slo' && n.url.searchParams.has('SAMLRequest'))).toBe(true);

    // The OIDC app in the same browser: no session any more.
    const silent = await notebook.authorizationUrl({ prompt: 'none' });
    await page.goto(silent.url.href);
    await page.waitForURL((u) => u.href.startsWith(notebook.redirectUri));
    expect(new URL(page.url()).searchParams.get('error')).toBe('login_required');

    // And the SAML app asks for a password again.
    await openSp(page, expensesSp);
    await page.locator('input[name="password"]').waitFor();
    expect(isOneIdSignInPage(new URL(page.url()))).toBe(true);
  });
});
