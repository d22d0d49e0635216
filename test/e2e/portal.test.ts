// The employee portal in a real browser: a person assigned to one app through a group and to
// another through a department signs in at `/` and sees exactly those two (not a third app
// they are not entitled to), searches, opens the OIDC app (its initiate_login_uri hears OneID's
// issuer) and the SAML app (OneID's IdP-initiated Response is posted to the app's ACS URL);
// /launch of an app they may not use is refused, of an unknown one is "not found"; only an
// administrator sees the admin console; the person changes their language on their profile and
// the portal follows; both languages and a phone's width.
import http from 'node:http';
import type net from 'node:net';
import { mkdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { startTestbed, watchProblems, type ConsoleTestbed } from '../helpers/console.ts';

const PASSWORD = 'correct-horse-battery';
/** A 1x1 transparent PNG: the OIDC app's logo, served by the app itself (another origin). */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

let bed: ConsoleTestbed;
let sql: pg.Client;
let appSite: AppSite;
const ids = { ada: '', grace: '', wiki: '', payroll: '', secret: '' };

/** The apps' own web server: what reached it (OIDC third-party-initiated logins, SAML Responses). */
interface AppSite {
  origin: string;
  initiated: URL[];
  samlPosts: Record<string, string>[];
  close(): Promise<void>;
}

async function startAppSite(): Promise<AppSite> {
  const initiated: URL[] = [];
  const samlPosts: Record<string, string>[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const page = (id: string) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!doctype html><title>App</title><p id="${id}">${id}</p>`);
    };
    if (url.pathname === '/logo.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(PNG);
    } else if (req.method === 'POST' && url.pathname === '/acs') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        samlPosts.push(Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
        page('app-acs');
      });
    } else if (url.pathname === '/initiate') {
      initiated.push(url);
      page('app-initiate');
    } else {
      page('app-home');
    }
  });
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`, initiated, samlPosts,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const cli = async (args: string[]) => {
  const r = await bed.cli(args);
  if (r.code !== 0) throw new Error(`oneid ${args.join(' ')}: ${r.stderr}`);
  return r.json;
};

beforeAll(async () => {
  bed = await startTestbed('oneid_test_portal');
  appSite = await startAppSite();
  sql = new pg.Client({ connectionString: bed.database.url });
  await sql.connect();
  const [ada, grace, wiki, payroll, secret] = await Promise.all([
    cli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--name', 'Ada Lovelace', '--password', PASSWORD]),
    cli(['users', 'create', '--username', 'grace', '--email', 'grace@example.com', '--name', 'Grace Hopper', '--password', PASSWORD, '--admin']),
    cli(['apps', 'create', '--name', 'Wiki', '--redirect-uri', `${appSite.origin}/callback`, '--access', 'assigned']),
    cli(['apps', 'create', '--type', 'saml', '--name', 'Payroll', '--entity-id', `${appSite.origin}/saml`, '--acs-url', `${appSite.origin}/acs`, '--access', 'assigned']),
    cli(['apps', 'create', '--name', 'Secret plans', '--redirect-uri', 'https://secret.example/callback', '--access', 'assigned']),
  ]);
  Object.assign(ids, { ada: ada.id, grace: grace.id, wiki: wiki.id, payroll: payroll.id, secret: secret.id });
  // Arranged as an admin would in the console: Wiki for the group Writers, Payroll for the
  // department Finance (ada is in both), Secret plans for grace alone. The Wiki registered its
  // third-party-initiated login address and a logo.
  await sql.query(`with g as (insert into groups (id, name) values (gen_random_uuid(), 'Writers') returning id),
      gm as (insert into group_members (group_id, user_id) select id, $1 from g),
      d as (insert into departments (id, name, path) select x.id, 'Finance', '/' || x.id || '/' from (select gen_random_uuid() as id) x returning id),
      ud as (insert into user_departments (user_id, department_id, is_primary) select $1, id, true from d)
    insert into assignments (id, app_id, principal_type, principal_id)
      select gen_random_uuid(), $2::uuid, 'group', id from g
      union all select gen_random_uuid(), $3::uuid, 'department', id from d
      union all select gen_random_uuid(), $4::uuid, 'user', $5::uuid`, [ids.ada, ids.wiki, ids.payroll, ids.secret, ids.grace]);
  await sql.query(`update apps set oidc = oidc || jsonb_build_object('initiate_login_uri', $1::text), logo_url = $2, description = 'Team notes and how-tos'
    where id = $3`, [`${appSite.origin}/initiate?tenant=acme`, `${appSite.origin}/logo.png`, ids.wiki]);
}, 60000);

afterAll(async () => {
  await closeAllBrowsers();
  await sql?.end();
  await appSite?.close();
  await bed?.stop();
});

/** From the signed-out portal, through OneID's sign-in, back to the portal. */
async function signInFromPortal(page: Page, login: string): Promise<void> {
  await page.goto(`${bed.url}/`);
  await page.click('#sign-in');
  await page.waitForURL(/\/login\//);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('form button[type=submit]');
  await page.waitForURL(`${bed.url}/`);
}

const appNames = async (page: Page): Promise<string[]> => page.locator('#apps .app-name').allTextContents();

describe('the employee portal', () => {
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page } = await openBrowser());
    problems = watchProblems(page);
  }, 60000);

  it('signed out: says so and offers the sign-in, which comes back to the portal', async () => {
    await page.goto(`${bed.url}/`);
    expect(await page.textContent('#signed-out')).toContain('You are not signed in.');
    expect(await page.getAttribute('#sign-in', 'href')).toBe('/login/start?return_to=%2F');
    expect(await page.locator('#apps').count()).toBe(0);
    await signInFromPortal(page, 'ada');
    expect(await page.textContent('#signed-in')).toContain('You are signed in as Ada Lovelace (ada).');
  }, 30000);

  it('shows exactly the apps the person is entitled to (through a group and a department), not the console', async () => {
    expect(await appNames(page)).toEqual(['Payroll', 'Wiki']);
    expect(await page.textContent('#app-count')).toBe('2 apps');
    expect(await page.locator('#admin-console').count()).toBe(0);
    expect(await page.locator('#apps').textContent()).not.toContain('Secret plans');
    // The Wiki's logo comes from the app's own site and is allowed to load.
    expect(await page.locator('.app img').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(1);
  });

  it('searches by name and description as the person types', async () => {
    await page.fill('#app-search', 'pay');
    await page.waitForFunction(() => document.querySelectorAll('#apps .app-name').length === 1);
    expect(await appNames(page)).toEqual(['Payroll']);
    await page.fill('#app-search', 'HOW-TO');
    await page.waitForFunction(() => document.querySelector('#apps .app-name')?.textContent === 'Wiki');
    expect(await appNames(page)).toEqual(['Wiki']);
    await page.fill('#app-search', 'zz%');
    await page.locator('#no-match').waitFor();
    expect(await page.textContent('#no-match')).toBe('No app matches "zz%".');
    await page.fill('#app-search', '');
    await page.waitForFunction(() => document.querySelectorAll('#apps .app-name').length === 2);
    // Without scripts, the form asks the same page.
    await page.goto(`${bed.url}/?q=wik`);
    expect(await appNames(page)).toEqual(['Wiki']);
  });

  it('opens the OIDC app at its initiate_login_uri with OneID as the issuer', async () => {
    await page.goto(`${bed.url}/`);
    await page.click(`a[href="/launch/${ids.wiki}"]`);
    await page.waitForURL((u) => u.pathname === '/initiate');
    expect(await page.textContent('#app-initiate')).toBe('app-initiate');
    const hit = appSite.initiated.at(-1)!;
    expect(hit.searchParams.get('iss')).toBe(bed.url);
    expect(hit.searchParams.get('tenant')).toBe('acme');
    const audit = await sql.query("select actor_id, changes from audit_events where action = 'app.launched' and target_id = $1", [ids.wiki]);
    expect(audit.rows).toEqual([{ actor_id: ids.ada, changes: { protocol: 'oidc' } }]);
  }, 30000);

  it('opens the SAML app: OneID posts a signed Response for the person to the app\'s ACS URL', async () => {
    await page.goto(`${bed.url}/`);
    await page.click(`a[href="/launch/${ids.payroll}"]`);
    await page.waitForURL((u) => u.pathname === '/acs');
    const posted = appSite.samlPosts.at(-1)!;
    const xml = Buffer.from(posted.SAMLResponse!, 'base64').toString('utf8');
    expect(xml).toContain(`Destination="${appSite.origin}/acs"`);
    expect(xml).toContain('ada@example.com');
    expect(xml).toContain('<ds:Signature');
    expect(xml).not.toContain('InResponseTo');
  }, 30000);

  it('refuses an app the person may not use (403) and says an unknown one is not there (404)', async () => {
    const denied = await page.goto(`${bed.url}/launch/${ids.secret}`);
    expect(denied!.status()).toBe(403);
    expect(await page.textContent('#launch-denied')).toContain('You do not have access to Secret plans.');
    for (const id of [randomUUID(), 'not-an-id']) {
      const missing = await page.goto(`${bed.url}/launch/${id}`);
      expect(missing!.status()).toBe(404);
      expect(await page.textContent('#launch-not-found')).toContain('There is no app at this address.');
    }
    // The console is not an app for someone without an admin role.
    const consoleApp = await sql.query("select id from apps where client_id = 'oneid-console'");
    expect((await page.goto(`${bed.url}/launch/${consoleApp.rows[0].id}`))!.status()).toBe(403);
    expect(appSite.initiated.length).toBe(1);
  }, 30000);

  it('shows the profile read-only but the language, which the person changes and the portal follows', async () => {
    await page.goto(`${bed.url}/account`);
    expect(await page.textContent('#profile-username')).toBe('ada');
    expect(await page.textContent('#profile-departments')).toBe('Finance');
    expect(await page.textContent('#profile-groups')).toBe('Writers');
    expect(await page.locator('#sign-in-activity .sign-in').count()).toBeGreaterThanOrEqual(1);
    expect(await page.textContent('#sign-in-activity .sign-in-methods')).toContain('Password');
    expect(await page.getAttribute('#profile-security', 'href')).toBe('/account/security');
    await page.selectOption('#profile-locale', 'zh-CN');
    await page.click('#profile-save');
    await page.waitForURL(`${bed.url}/account?saved=1`);
    expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');
    expect(await page.textContent('#profile-saved')).toBe('你的个人资料已保存。');
    await page.goto(`${bed.url}/`);
    expect(await page.textContent('h1')).toBe('我的应用');
    expect(await page.textContent('#app-count')).toBe('2 个应用');
    const stored = await sql.query('select locale from users where id = $1', [ids.ada]);
    expect(stored.rows[0].locale).toBe('zh-CN');
    const audit = await sql.query("select actor_type, actor_id, changes from audit_events where action = 'user.updated' and target_id = $1", [ids.ada]);
    expect(audit.rows).toEqual([{ actor_type: 'user', actor_id: ids.ada, changes: { locale: 'zh-CN' } }]);
  }, 30000);

  it('refuses a language it does not offer and a post without the form\'s token, changing nothing', async () => {
    await page.goto(`${bed.url}/account`);
    const csrf = await page.getAttribute('meta[name=csrf-token]', 'content');
    const results = await page.evaluate(async (token) => {
      const post = async (body: Record<string, string>) => {
        const res = await fetch('/account', { method: 'POST', body: new URLSearchParams(body), redirect: 'manual' });
        return { status: res.status, text: await res.text() };
      };
      return [await post({ _csrf: token!, locale: 'xx-<b>' }), await post({ locale: 'en' })];
    }, csrf);
    expect(results[0]!.status).toBe(400);
    expect(results[0]!.text).toContain('请从列表中选择一种语言。');
    expect(results[1]!.status).toBe(403);
    const stored = await sql.query('select locale from users where id = $1', [ids.ada]);
    expect(stored.rows[0].locale).toBe('zh-CN');
    // Back to the browser's language, which is English here.
    await page.selectOption('#profile-locale', '');
    await page.click('#profile-save');
    await page.waitForURL(`${bed.url}/account?saved=1`);
    expect(await page.getAttribute('html', 'lang')).toBe('en');
  }, 30000);

  it('fits a phone\'s width and works by keyboard', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${bed.url}/`);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/portal-phone.png', fullPage: true });
    await page.goto(`${bed.url}/account`);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await page.screenshot({ path: 'test-artifacts/portal-account-phone.png', fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${bed.url}/`);
    await page.screenshot({ path: 'test-artifacts/portal-desktop.png', fullPage: true });
    // Tab from the search box reaches the first app, and Enter opens it.
    await page.focus('#app-search');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('href'))).toBe(`/launch/${ids.payroll}`);
  }, 30000);

  it('had no unexpected problem on any page', () => {
    // The refusals above, each also reported by Chromium's console as a resource that failed to load.
    const expected = [/^403 .*\/launch\//, /^404 .*\/launch\//, /^400 .*\/account$/, /^403 .*\/account$/];
    const refusals = problems.filter((p) => expected.some((e) => e.test(p)));
    const echoes = problems.filter((p) => /^console: Failed to load resource: the server responded with a status of 40[034]/.test(p));
    expect(refusals.length).toBe(6);
    expect(echoes.length).toBe(refusals.length);
    expect(problems.filter((p) => !refusals.includes(p) && !echoes.includes(p))).toEqual([]);
  });
});

describe('an administrator in the portal', () => {
  it('sees the admin console among their apps, in Chinese for a Chinese browser', async () => {
    const { page } = await openBrowser({ locale: 'zh-CN' });
    const problems = watchProblems(page);
    await page.goto(`${bed.url}/`);
    expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');
    expect(await page.textContent('#sign-in')).toBe('登录 OneID');
    await signInFromPortal(page, 'grace');
    expect(await appNames(page)).toEqual(['Secret plans', '管理控制台']);
    expect(await page.getAttribute('#admin-console', 'href')).toBe('/admin');
    await page.click('#admin-console');
    await page.waitForURL(`${bed.url}/admin`);
    expect(await page.textContent('#signed-in-as')).toBe('Grace Hopper');
    expect(problems).toEqual([]);
  }, 60000);
});
