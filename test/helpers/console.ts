// For console and portal tests: a OneID on a port (ISSUER http://localhost:<port>, as WebAuthn and
// the console's cookies want), its first administrator made through the setup page, and signing in
// to the console or the portal in a real Chromium.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { openBrowser } from './chromium.ts';
import { freePort, ROOT, runCli, startServer, testMasterKey, type CliResult, type RunningServer } from './server.ts';

export interface ConsoleTestbed {
  database: TestDatabase;
  server: RunningServer;
  env: Record<string, string>;
  /** http://localhost:<port> */
  url: string;
  /** The one-time setup link the server printed. */
  setupLink: string;
  /** `oneid ...` against this server's database (e.g. to make people with admin roles). */
  cli(args: string[]): Promise<CliResult>;
  stop(): Promise<void>;
}

export async function startTestbed(name: string, extraEnv: Record<string, string> = {}): Promise<ConsoleTestbed> {
  const database = await createTestDatabase(name);
  const port = await freePort();
  const env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey(), PORT: String(port), ISSUER: `http://localhost:${port}`, ...extraEnv };
  const server = await startServer(env);
  const deadline = Date.now() + 10000;
  let setupLink: string | undefined;
  while (!(setupLink = /(\S+\/setup\?token=[A-Za-z0-9_-]+)/.exec(server.output())?.[1]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!setupLink) throw new Error(`no setup link:\n${server.output()}`);
  return {
    database, server, env, url: `http://localhost:${port}`, setupLink,
    cli: (args) => runCli(args, env),
    stop: async () => {
      await server.stop();
      await database.drop();
    },
  };
}

/** The setup page in `page`: makes the first administrator (super_admin) and lands in the console. */
export async function setupFirstAdmin(page: Page, bed: ConsoleTestbed, who = { username: 'grace', email: 'grace@example.com', password: 'correct-horse-battery' }): Promise<void> {
  await page.goto(bed.setupLink);
  await page.fill('input[name=username]', who.username);
  await page.fill('input[name=email]', who.email);
  await page.fill('input[name=password]', who.password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${bed.url}/admin?welcome=1`);
}

/** Signs in through OneID's sign-in page after going to `path` (a console or portal page). */
export async function signInAt(page: Page, bed: ConsoleTestbed, path: string, login: string, password: string): Promise<void> {
  await page.goto(`${bed.url}${path}`);
  await page.waitForURL(/\/login\//);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', password);
  await page.click('form button[type=submit]');
  await page.waitForURL((url) => url.pathname === path || url.pathname.startsWith(path) || !url.pathname.startsWith('/login'));
}

/**
 * Collects what a user would see go wrong on a page: console errors, failed requests and 4xx/5xx
 * answers (a test may expect some, and filters them).
 */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`); });
  return problems;
}

/**
 * A Chromium in the first administrator's console (setupFirstAdmin), saying yes to every
 * confirmation, with its problems watched (watchProblems).
 */
export async function firstAdminConsole(bed: ConsoleTestbed): Promise<{ page: Page; problems: string[] }> {
  const { page } = await openBrowser();
  const problems = watchProblems(page);
  page.on('dialog', (d) => void d.accept());
  await setupFirstAdmin(page, bed);
  return { page, problems };
}

/**
 * Types `text` into an htmx search box and waits until the answer to that search (its URL holds
 * `urlPart`) is on the page, as a person waits for the results before choosing one.
 */
export async function searchFor(page: Page, selector: string, text: string, urlPart: string): Promise<void> {
  await Promise.all([page.waitForResponse((r) => r.url().includes(urlPart)), page.fill(selector, text)]);
  await page.waitForFunction(() => !document.querySelector('.htmx-request, .htmx-settling, .htmx-swapping'));
}

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 360, height: 740 };

/**
 * Screenshots of the page at a desktop's and a phone's width into test-artifacts/ (for people to
 * look at), and at the phone's width nothing may be cut off: the page does not scroll sideways
 * (wide tables scroll in their own frame).
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = path.join(ROOT, 'test-artifacts');
  await mkdir(dir, { recursive: true });
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: `${dir}/${name}-${size}.png`, fullPage: true });
    if (size === 'phone') expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
  }
  await page.setViewportSize(DESKTOP);
}

/** After a change the console loads the next page with ?notice=KEY: waits for that page, returns the notice. */
export async function noticeOf(page: Page, key: string): Promise<string> {
  await page.waitForURL((url) => url.searchParams.get('notice') === key);
  return (await page.textContent('#notice')) ?? '';
}
