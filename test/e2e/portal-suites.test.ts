// The portal groups a person's apps by suite (#22), black-box against OneID on a port: people sign
// in through OneID's own sign-in form (a test browser over HTTP, and once in Chromium), apps and
// assignments are made through the admin API, suites with plain inserts (their admin API is built
// elsewhere). A suite is shown only when the person has one of its apps; suites follow their
// position, apps inside their position in the suite; an app in two suites is in both; the apps in
// no suite come last under their own heading; a person with no suite sees the flat list of before.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser, decodeHtml, type Page } from '../helpers/browser.ts';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';

const PASSWORD = 'correct-horse-battery';

let database: MigratedDatabase;
let db: Knex;
let server: RunningServer;
let admin: AdminClient;
const ids: Record<string, string> = {};

/** A suite and its members (app id and position), as the suites admin API will make them. */
async function insertSuite(suite: { name: string; position: number; iconUrl?: string }, members: [string, number][]): Promise<string> {
  const id = randomUUID();
  await db('suites').insert({ id, name: suite.name, position: suite.position, icon_url: suite.iconUrl ?? null });
  if (members.length) await db('suite_apps').insert(members.map(([appId, position]) => ({ suite_id: id, app_id: appId, position })));
  return id;
}

async function createApp(name: string, origin: string): Promise<string> {
  const res = await admin.call('POST', '/apps', { name, redirectUris: [`${origin}/callback`], access: 'assigned' });
  if (res.status !== 201) throw new Error(`app ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

async function assign(appId: string, userId: string): Promise<void> {
  const res = await admin.call('POST', `/apps/${appId}/assignments`, { principalType: 'user', principalId: userId });
  if (res.status !== 201) throw new Error(`assignment: ${res.status} ${JSON.stringify(res.body)}`);
}

beforeAll(async () => {
  database = await createMigratedDatabase('oneid_test_portal_suites');
  db = database.db;
  const env = { DATABASE_URL: database.database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['super_admin']);
  const users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
  for (const name of ['ada', 'bob']) ids[name] = (await users.createUser({ username: name, password: PASSWORD, name: name.toUpperCase() })).id;
  for (const [name, origin] of [['Calendar', 'https://calendar.example'], ['Quotes', 'https://quotes.example'], ['CRM', 'https://crm.example'],
    ['Wiki', 'https://wiki.example'], ['Payroll', 'https://payroll.example']] as const) ids[name] = await createApp(name, origin);
  for (const app of ['Calendar', 'Quotes', 'CRM', 'Wiki']) await assign(ids[app]!, ids.ada!);
  await assign(ids.Wiki!, ids.bob!);
  // Sales after Office (position), Quotes before CRM inside Sales (position, not name); Quotes in
  // both suites; HR holds only an app ada may not use; Wiki is in no suite.
  ids.sales = await insertSuite({ name: 'Sales', position: 2, iconUrl: 'https://icons.example/sales.png' }, [[ids.CRM!, 5], [ids.Quotes!, 1]]);
  ids.office = await insertSuite({ name: 'Office', position: 1 }, [[ids.Calendar!, 0], [ids.Quotes!, 3]]);
  ids.hr = await insertSuite({ name: 'HR', position: 0 }, [[ids.Payroll!, 0]]);
}, 120000);

afterAll(async () => {
  await closeAllBrowsers();
  if (process.env.DEBUG_SERVER) console.log(server?.output().slice(-3000));
  await server?.stop();
  await database?.close();
});

/** A test browser signed in as `login` through OneID's sign-in form, started from the portal. */
async function signedIn(login: string, language = 'en'): Promise<Browser> {
  const browser = new Browser();
  browser.acceptLanguage = language;
  const form = await browser.navigate(`${server.url}/login/start?return_to=%2F`);
  const done = await browser.submit(form, '/login', { login, password: PASSWORD });
  expect(new URL(done.url).pathname).toBe('/');
  expect(done.html).toContain('id="apps"');
  return browser;
}

interface Shown { suite: string; suiteId: string | null; icon: string | null; apps: string[] }

const appNamesIn = (html: string): string[] => [...html.matchAll(/<strong class="app-name">([^<]*)<\/strong>/g)].map((m) => decodeHtml(m[1]!));

/** The sections of the launcher as a person reads them: heading, icon and app names, in order. */
function sectionsOf(page: Page): Shown[] {
  return [...page.html.matchAll(/<section class="suite[^"]*"([^>]*)>([\s\S]*?)<\/section>/g)].map((m) => ({
    suite: decodeHtml(/<span class="suite-title">([^<]*)<\/span>/.exec(m[2]!)?.[1] ?? ''),
    suiteId: /data-suite-id="([^"]*)"/.exec(m[1]!)?.[1] ?? null,
    icon: /<img class="suite-icon" src="([^"]*)"/.exec(m[2]!)?.[1] ?? (m[2]!.includes('suite-mark') ? 'mark' : null),
    apps: appNamesIn(m[2]!),
  }));
}

describe('GET / with suites', () => {
  it('shows each suite the person has an app of, by position, its apps by their position, then the other apps', async () => {
    const browser = await signedIn('ada');
    const page = await browser.navigate(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(sectionsOf(page)).toEqual([
      { suite: 'Office', suiteId: ids.office, icon: 'mark', apps: ['Calendar', 'Quotes'] },
      { suite: 'Sales', suiteId: ids.sales, icon: 'https://icons.example/sales.png', apps: ['Quotes', 'CRM'] },
      { suite: 'Other apps', suiteId: null, icon: null, apps: ['Wiki'] },
    ]);
    // HR holds no app of hers: not shown, nor its app.
    expect(page.html).not.toContain('HR');
    expect(page.html).not.toContain('Payroll');
    // Quotes is one app, in two suites.
    expect(/id="app-count">([^<]*)</.exec(page.html)?.[1]).toBe('4 apps');
    // The suite's icon is on another origin: the page allows it as an image.
    expect(page.headers.get('content-security-policy')).toMatch(/img-src [^;]*https:\/\/icons\.example/);
  });

  it('follows a change of positions and names at the next visit', async () => {
    await db('suites').where({ id: ids.sales }).update({ position: 0 });
    await db('suite_apps').where({ suite_id: ids.office, app_id: ids.Quotes }).update({ position: -1 });
    try {
      const page = await (await signedIn('ada')).navigate(`${server.url}/`);
      expect(sectionsOf(page).map((s) => [s.suite, s.apps])).toEqual([
        ['Sales', ['Quotes', 'CRM']], ['Office', ['Quotes', 'Calendar']], ['Other apps', ['Wiki']],
      ]);
      // Equal positions: by name.
      await db('suites').where({ id: ids.sales }).update({ position: 1 });
      const tie = await (await signedIn('ada')).navigate(`${server.url}/`);
      expect(sectionsOf(tie).map((s) => s.suite)).toEqual(['Office', 'Sales', 'Other apps']);
    } finally {
      await db('suites').where({ id: ids.sales }).update({ position: 2 });
      await db('suite_apps').where({ suite_id: ids.office, app_id: ids.Quotes }).update({ position: 3 });
    }
  });

  it('groups search results the same way, without an empty heading', async () => {
    const browser = await signedIn('ada');
    const page = await browser.navigate(`${server.url}/?q=quo`);
    expect(sectionsOf(page).map((s) => [s.suite, s.apps])).toEqual([['Office', ['Quotes']], ['Sales', ['Quotes']]]);
    expect(page.html).not.toContain('Other apps');
    // The search box's own request (htmx) gets the list alone, grouped.
    const grouped = await browser.request(`${server.url}/?q=r`, { headers: { 'hx-request': 'true' } });
    const fragment = await grouped.text();
    expect(fragment).not.toContain('<html');
    expect(sectionsOf({ url: '', status: 200, html: fragment, headers: grouped.headers }).map((s) => [s.suite, s.apps]))
      .toEqual([['Office', ['Calendar']], ['Sales', ['CRM']]]);
    // Found only outside every suite: the plain list, no lone heading.
    const plain = await (await browser.request(`${server.url}/?q=wik`, { headers: { 'hx-request': 'true' } })).text();
    expect(plain).toContain('id="app-list"');
    expect(plain).not.toContain('class="suite');
    expect(appNamesIn(plain)).toEqual(['Wiki']);
  });

  it('says it in Chinese for a Chinese browser', async () => {
    const page = await (await signedIn('ada', 'zh-CN')).navigate(`${server.url}/`);
    expect(sectionsOf(page).map((s) => s.suite)).toEqual(['Office', 'Sales', '其他应用']);
    expect(/id="app-count">([^<]*)</.exec(page.html)?.[1]).toBe('4 个应用');
  });

  it('looks as before for a person in no suite: one list, no headings', async () => {
    const page = await (await signedIn('bob')).navigate(`${server.url}/`);
    expect(sectionsOf(page)).toEqual([]);
    expect(page.html).toContain('id="app-list"');
    expect(appNamesIn(page.html)).toEqual(['Wiki']);
    expect(page.html).not.toContain('Other apps');
  });

  it('shows no icon from an address that is not a web address, and escapes a suite\'s name', async () => {
    await db('suites').where({ id: ids.office }).update({ icon_url: 'javascript:alert(1)', name: 'Office <b>&</b>' });
    try {
      const page = await (await signedIn('ada')).navigate(`${server.url}/`);
      expect(page.html).not.toContain('javascript:');
      expect(page.html).not.toContain('<b>&</b>');
      const office = sectionsOf(page)[0]!;
      expect(office).toMatchObject({ suite: 'Office <b>&</b>', icon: 'mark' });
    } finally {
      await db('suites').where({ id: ids.office }).update({ icon_url: null, name: 'Office' });
    }
  });
});

describe('the portal with suites in Chromium', () => {
  it('shows the suites\' sections with their apps, at a desktop\'s and a phone\'s width', async () => {
    const { page } = await openBrowser();
    await page.goto(`${server.url}/`);
    await page.click('#sign-in');
    await page.waitForURL(/\/login\//);
    await page.fill('input[name=login]', 'ada');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('form button[type=submit]');
    await page.waitForURL(`${server.url}/`);
    expect(await page.locator('.suite h2').allTextContents().then((t) => t.map((s) => s.trim()))).toEqual(['Office', 'Sales', 'Other apps']);
    expect(await page.locator(`.suite[data-suite-id="${ids.sales}"] .app-name`).allTextContents()).toEqual(['Quotes', 'CRM']);
    await page.setViewportSize({ width: 360, height: 740 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    // Opening an app from a suite's section is the same launch as before.
    await page.setViewportSize({ width: 1280, height: 800 });
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.url().startsWith('https://crm.example/')),
      page.click(`.suite[data-suite-id="${ids.sales}"] a[href="/launch/${ids.CRM}"]`),
    ]);
    expect(new URL(request.url()).origin).toBe('https://crm.example');
  }, 60000);
});
