// Issue #20's "done when", as people would do it in a real Chromium against OneID on PostgreSQL:
// from the setup page into the console, a department and a person made there, an OpenID Connect
// app registered with a role and assigned to the department; the person sets their password from
// a one-time link, signs in at `/`, sees the app, opens it, and the app (an openid-client relying
// party on a port, started by OneID's launch link through its initiate_login_uri) receives the
// role. A user_admin cannot register apps and an auditor cannot change anything (hidden, and a
// forged post is refused); both languages; no page shows a console error or a failed request;
// screenshots of the portal and the console at desktop and phone width go to test-artifacts/.
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import knex, { type Knex } from 'knex';
import type { Page } from 'playwright-core';
import * as client from 'openid-client';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { setupFirstAdmin, signInAt, startTestbed, watchProblems, type ConsoleTestbed, searchFor } from '../helpers/console.ts';
import { ROOT } from '../helpers/server.ts';

const PASSWORD = 'correct-horse-battery';
const ARTIFACTS = `${ROOT}/test-artifacts`;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let bed: ConsoleTestbed;
let db: Knex;

/**
 * A relying party as an app's developer writes one: third-party-initiated login at /start (it
 * checks `iss` and starts the code flow with PKCE), the callback at /callback (openid-client
 * checks the ID token's signature, issuer, audience, nonce), and a page naming the person's roles.
 */
interface RelyingParty { origin: string; startUri: string; redirectUri: string; received: Record<string, unknown>[]; use(clientId: string, secret: string): Promise<void>; close(): Promise<void> }

async function startRelyingParty(issuer: string): Promise<RelyingParty> {
  let config: client.Configuration | undefined;
  const pending = new Map<string, { verifier: string; nonce: string }>();
  const received: Record<string, unknown>[] = [];
  let origin = '';
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', origin);
      if (url.pathname === '/start' && config) {
        if (url.searchParams.get('iss') !== issuer) {
          res.writeHead(400).end('unknown issuer');
          return;
        }
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const nonce = client.randomNonce();
        pending.set(state, { verifier, nonce });
        const target = client.buildAuthorizationUrl(config, {
          redirect_uri: `${origin}/callback`, scope: 'openid profile roles', state, nonce,
          code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        });
        res.writeHead(302, { location: target.href }).end();
        return;
      }
      if (url.pathname === '/callback' && config) {
        const state = url.searchParams.get('state') ?? '';
        const expected = pending.get(state);
        if (!expected) {
          res.writeHead(400).end('unknown state');
          return;
        }
        pending.delete(state);
        const tokens = await client.authorizationCodeGrant(config, url, { pkceCodeVerifier: expected.verifier, expectedState: state, expectedNonce: expected.nonce });
        const claims = tokens.claims()!;
        received.push(claims as Record<string, unknown>);
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end(`<!DOCTYPE html><title>Docs</title><p id="rp-user">${String(claims.preferred_username)}</p><p id="rp-roles">${(claims.roles as string[] ?? []).join(',')}</p>`);
        return;
      }
      res.writeHead(404).end();
    })().catch((err: Error) => {
      res.writeHead(500).end(err.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin, startUri: `${origin}/start`, redirectUri: `${origin}/callback`, received,
    use: async (clientId, secret) => {
      config = await client.discovery(new URL(issuer), clientId, secret, undefined, { execute: [client.allowInsecureRequests] });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function person(username: string, adminRoles: string[]): Promise<void> {
  const made = await bed.cli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', PASSWORD]);
  if (made.code !== 0) throw new Error(made.stderr);
  // Arranging the test: giving admin roles in the console needs a two-factor sign-in.
  await db('users').where({ id: made.json.id }).update({ admin_roles: db.raw('?::text[]', [adminRoles]) });
}

async function screenshot(page: Page, name: string): Promise<void> {
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: `${ARTIFACTS}/${name}-${size}.png`, fullPage: true });
    // Nothing is cut off at a phone's width: the page does not scroll sideways.
    if (size === 'phone') expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
  }
  await page.setViewportSize(DESKTOP);
}

let rp: RelyingParty;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  bed = await startTestbed('oneid_test_console_journey');
  db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 2 } });
  rp = await startRelyingParty(bed.url);
  await Promise.all([person('uma', ['user_admin']), person('audrey', ['auditor'])]);
}, 60000);

afterAll(async () => {
  await closeAllBrowsers();
  await rp?.close();
  await db?.destroy();
  await bed?.stop();
});

describe('from npm start to a signed-in app, in the browser alone', () => {
  let admin: Page;
  let adminProblems: string[];
  let setupLink = '';

  beforeAll(async () => {
    ({ page: admin } = await openBrowser());
    adminProblems = watchProblems(admin);
    admin.on('dialog', (d) => void d.accept());
  });

  it('the first administrator goes from setup into the console, makes a department and a person', async () => {
    await setupFirstAdmin(admin, bed);
    await screenshot(admin, 'console-home');

    await admin.click('#nav-departments');
    await admin.fill('#new-dept-name', 'Research');
    await admin.click('#create-department button[type=submit]');
    await admin.waitForURL(/\/admin\/departments\?open=.*done=created/);
    const research = /open=([0-9a-f-]{36})/.exec(admin.url())![1]!;

    await admin.click('#nav-people');
    await admin.click('#people-new');
    await admin.fill('#f-username', 'ada');
    await admin.fill('#f-name', 'Ada Lovelace');
    await admin.fill('#f-email', 'ada@example.com');
    await admin.click('#person-save');
    await admin.waitForURL(/\/admin\/people\/[0-9a-f-]{36}/);
    await admin.click('#person-setup-link');
    setupLink = await admin.inputValue('#setup-link-url');
    expect(setupLink).toMatch(new RegExp(`^${bed.url}/password-setup\\?token=`));

    await admin.goto(`${bed.url}/admin/departments/${research}`);
    await admin.fill('#member-q', 'ada');
    await admin.click('#member-results button[data-user="ada"]');
    await admin.waitForSelector('#members tr[data-username="ada"]');
    await screenshot(admin, 'console-department');
    expect(adminProblems).toEqual([]);
  }, 60000);

  it('registers an OpenID Connect app with a role and assigns it to the department', async () => {
    await admin.click('#nav-apps');
    await admin.click('#new-oidc');
    await admin.fill('#name', 'Docs');
    await admin.fill('#description', 'Team documents');
    await admin.fill('#redirectUris', rp.redirectUri);
    await admin.fill('#initiateLoginUri', rp.startUri);
    await admin.click('#register');
    await admin.waitForSelector('#client-secret');
    await rp.use(await admin.inputValue('#client-id'), (await admin.textContent('#client-secret'))!.trim());
    await screenshot(admin, 'console-app-secret');

    await admin.reload();
    await admin.fill('#role-key', 'docs.editor');
    await admin.fill('#role-name', 'Editor');
    await admin.click('#add-role');
    await admin.waitForURL((url) => url.searchParams.get('notice') === 'role_added');
    await admin.check('#assign-type-department');
    // The picker lists on focus, then searches what was typed: choose from the search's answer.
    await searchFor(admin, '#principal-q', 'Resea', '/principals?q=Resea');
    await admin.locator('#principal-options label', { hasText: 'Research' }).locator('input').check();
    await admin.check('#assign-role-docs\\.editor');
    await admin.click('#assign');
    await admin.waitForURL((url) => url.searchParams.get('notice') === 'assigned');
    expect(await admin.locator('#assignment-table tr.assignment', { hasText: 'Research' }).textContent()).toContain('Editor');
    expect(adminProblems).toEqual([]);
  }, 60000);

  it('the person sets a password, signs in at /, sees the app, opens it, and the app receives the role', async () => {
    const { page: ada } = await openBrowser();
    const problems = watchProblems(ada);
    await ada.goto(setupLink);
    await ada.fill('#password', 'ada-analytical-engine');
    await ada.fill('#confirm', 'ada-analytical-engine');
    await ada.click('#password-setup-submit');
    await ada.waitForSelector('#password-setup-done');

    await ada.goto(`${bed.url}/`);
    await ada.click('#sign-in');
    await ada.waitForURL(/\/login\//);
    await ada.fill('input[name=login]', 'ada');
    await ada.fill('input[name=password]', 'ada-analytical-engine');
    await ada.click('form button[type=submit]');
    await ada.waitForURL(`${bed.url}/`);
    const card = ada.locator('a', { hasText: 'Docs' });
    expect(await card.count()).toBe(1);
    expect(await ada.locator('a', { hasText: 'OneID console' }).count()).toBe(0);
    await screenshot(ada, 'portal');

    await card.click();
    // A third-party app: the person is asked once whether it may see their profile and roles.
    await ada.waitForURL(/\/interaction\//);
    expect(await ada.textContent('main')).toContain('Docs');
    await ada.click('#allow');
    await ada.waitForURL(`${rp.origin}/callback?**`);
    expect(await ada.textContent('#rp-roles')).toBe('docs.editor');
    expect(rp.received.at(-1)).toMatchObject({ preferred_username: 'ada', roles: ['docs.editor'] });
    // What the RP's own page does is not OneID's: only OneID's pages are watched.
    expect(problems.filter((p) => p.includes(bed.url))).toEqual([]);

    await ada.goto(`${bed.url}/locale?to=zh-CN&return_to=%2F`);
    expect(await ada.getAttribute('html', 'lang')).toBe('zh-CN');
    expect(await ada.textContent('main')).toContain('Docs');
    await screenshot(ada, 'portal-zh');
  }, 60000);

  it('a user_admin cannot register apps: the console hides it and the server refuses a forged post', async () => {
    const { page } = await openBrowser();
    await signInAt(page, bed, '/admin', 'uma', PASSWORD);
    expect(await page.locator('#nav-people').count()).toBe(1);
    expect(await page.locator('#nav-apps').count()).toBe(0);
    const before = await db('apps').count<{ n: string }[]>('* as n');
    const status = await page.evaluate(async () => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const body = new URLSearchParams({ _csrf: token, name: 'Forged', redirectUris: 'https://forged.example/cb' });
      return (await fetch('/admin/apps/new', { method: 'POST', body })).status;
    });
    expect(status).toBe(403);
    expect(await db('apps').count<{ n: string }[]>('* as n')).toEqual(before);
  }, 40000);

  it('an auditor sees but cannot change anything, and a forged change is refused', async () => {
    const { page } = await openBrowser();
    await signInAt(page, bed, '/admin', 'audrey', PASSWORD);
    await page.click('#nav-people');
    expect(await page.locator('text=ada').count()).toBeGreaterThan(0);
    expect(await page.locator('#people-new').count()).toBe(0);
    await page.goto(`${bed.url}/admin/apps`);
    expect(await page.locator('#new-oidc').count()).toBe(0);
    const before = await db('users').count<{ n: string }[]>('* as n');
    const status = await page.evaluate(async () => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      return (await fetch('/admin/people/new', { method: 'POST', body: new URLSearchParams({ _csrf: token, username: 'forged' }) })).status;
    });
    expect(status).toBe(403);
    expect(await db('users').count<{ n: string }[]>('* as n')).toEqual(before);
    const refusals = await db('audit_events').where({ actor_id: (await db('users').where({ username: 'audrey' }).first('id')).id }).where('action', 'like', '%refused%').count<{ n: string }[]>('* as n');
    expect(Number(refusals[0]!.n)).toBeGreaterThan(0);
  }, 40000);

  it('refuses a console post without the form token, and renders the console in Chinese', async () => {
    const status = await admin.evaluate(async () => (await fetch('/admin/people/new', { method: 'POST', body: new URLSearchParams({ username: 'forged' }) })).status);
    expect(status).toBe(403);
    await admin.goto(`${bed.url}/locale?to=zh-CN&return_to=%2Fadmin%2Fpeople`);
    expect(await admin.getAttribute('html', 'lang')).toBe('zh-CN');
    expect(await admin.textContent('#nav-people')).toBe('人员');
    await screenshot(admin, 'console-people-zh');
    // The refused post itself is what this test provoked.
    expect(adminProblems.filter((p) => !/\/admin\/people\/new|status of 403/.test(p))).toEqual([]);
  }, 40000);
});
