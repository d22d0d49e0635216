// The console's frame in a real browser: the first administrator goes from the setup page straight
// into the console (a first-party OIDC app of OneID), sees their roles and the sections they may
// use, switches language, and signs out; a person without admin roles is told so; a forged post
// without the CSRF token is refused.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';

const PASSWORD = 'correct-horse-battery';
let database: TestDatabase;
let server: RunningServer;
let link: string;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_console_shell');
  const port = await freePort();
  server = await startServer({ DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey(), PORT: String(port), ISSUER: `http://localhost:${port}` });
  const deadline = Date.now() + 10000;
  while (!/\/setup\?token=/.test(server.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  link = /(\S+\/setup\?token=[A-Za-z0-9_-]+)/.exec(server.output())![1]!;
}, 60000);

afterAll(async () => {
  await closeAllBrowsers();
  await server?.stop();
  await database?.drop();
});

describe('the console shell', () => {
  it('takes the first administrator from setup into the console, in both languages, and out again', async () => {
    const { page } = await openBrowser();
    const problems: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('requestfailed', (r) => problems.push(`${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
    await page.goto(link);
    await page.fill('input[name=username]', 'grace');
    await page.fill('input[name=email]', 'grace@example.com');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/admin(\?welcome=1)?$/);
    expect(await page.textContent('#first-run')).toContain('first administrator');
    expect(await page.textContent('#my-roles')).toContain('Super admin');
    for (const section of ['people', 'departments', 'groups', 'apps', 'audit']) {
      expect(await page.isVisible(`#nav-${section}`)).toBe(true);
    }
    await page.click('#lang-zh');
    await page.waitForURL(/\/admin/);
    expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');
    expect(await page.textContent('#nav-people')).toBe('人员');
    await page.click('#lang-en');
    expect(await page.textContent('#nav-people')).toBe('People');
    expect(problems).toEqual([]);

    await page.click('#sign-out');
    await page.waitForURL((url) => !url.pathname.startsWith('/admin'));
    await page.goto(new URL('/admin', link).toString());
    await page.waitForURL(/\/login\//);
  }, 90000);

  it('refuses a post without the form\'s CSRF token', async () => {
    const { page } = await openBrowser();
    await page.goto(new URL('/', link).toString());
    // A post without the form's token is refused and changes nothing.
    const forged = await page.evaluate(async () => (await fetch('/admin/people', { method: 'POST', body: new URLSearchParams({ username: 'x' }) })).status);
    expect(forged).toBe(403);
  });
});
