// The console's policy form in a real browser, against OneID on PostgreSQL: a super_admin raises
// the password minimum length and the default sign-in policy (confirmed; both in force and shown
// as set in the console), gets a clear message for a bad value that changes nothing, and goes back
// to the environment's values; an auditor sees the policies read-only and a forged post is
// refused; a post without the CSRF token is refused; the form renders in Chinese.
import pg from 'pg';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { firstAdminConsole, signInAt, startTestbed, watchProblems, type ConsoleTestbed } from '../helpers/console.ts';

let bed: ConsoleTestbed;
let sql: pg.Client;
let admin: Page;
let adminProblems: string[];

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_policies');
  sql = new pg.Client({ connectionString: bed.database.url });
  await sql.connect();
  ({ page: admin, problems: adminProblems } = await firstAdminConsole(bed));
}, 60000);

afterAll(async () => {
  await closeAllBrowsers();
  await sql?.end();
  await bed?.stop();
});

beforeEach(() => { adminProblems.length = 0; });

const stored = async () => (await sql.query("select key, value from instance_settings where key like 'policy.%' order by key")).rows;

/** The problems left once the expected refusals (`status` at a URL matching `url`) are taken out. */
function unexpected(problems: string[], status: number, url: RegExp): string[] {
  let consoleLines = problems.filter((p) => p.startsWith(`${status} `) && url.test(p)).length;
  return problems.filter((p) => {
    if (p.startsWith(`${status} `) && url.test(p)) return false;
    if (consoleLines > 0 && p.includes(`status of ${status}`)) { consoleLines -= 1; return false; }
    return true;
  });
}

describe('console settings: the password and sign-in policies', () => {
  it('lets a super_admin change both (confirmed), shows them as set here, and goes back to the environment', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    expect(await admin.getAttribute('#policy-min-length', 'data-source')).toBe('environment');
    expect(await admin.textContent('#policy-min-length')).toContain('PASSWORD_MIN_LENGTH');
    expect(await admin.inputValue('#policy-min-length-input')).toBe('');
    expect(await admin.getAttribute('#policy-min-length-input', 'placeholder')).toBe('8');

    const confirmations: string[] = [];
    admin.on('dialog', (d) => { confirmations.push(d.message()); });
    await admin.fill('#policy-min-length-input', '12');
    await admin.selectOption('#policy-signin-default-input', 'mfa');
    await admin.click('#policy-save');
    await admin.waitForSelector('#policies-saved');
    expect(confirmations).toEqual(['Change the password and sign-in policies for everyone?']);
    expect(await admin.textContent('#policy-min-length .value')).toBe('12 characters');
    expect(await admin.textContent('#policy-min-length')).toContain('This console');
    expect(await admin.getAttribute('#policy-signin-default .value', 'data-level')).toBe('mfa');
    expect(await admin.getAttribute('#policy-signin-default', 'data-source')).toBe('console');
    expect(await stored()).toEqual([{ key: 'policy.password_min_length', value: '12' }, { key: 'policy.signin_default', value: 'mfa' }]);
    // A reload shows the same (the form holds what is stored).
    await admin.reload();
    expect(await admin.inputValue('#policy-min-length-input')).toBe('12');
    expect(await admin.inputValue('#policy-signin-default-input')).toBe('mfa');

    // Saving without a change says so and records nothing.
    const events = async () => (await sql.query("select count(*)::int as n from audit_events where action = 'settings.updated'")).rows[0].n;
    const eventsBefore = await events();
    await admin.click('#policy-save');
    await admin.waitForSelector('#policies-unchanged');
    expect(await events()).toBe(eventsBefore);

    // Back to the environment's values: both fields emptied.
    await admin.fill('#policy-min-length-input', '');
    await admin.selectOption('#policy-signin-default-input', '');
    await admin.click('#policy-save');
    await admin.waitForSelector('#policies-saved');
    expect(await admin.getAttribute('#policy-min-length', 'data-source')).toBe('environment');
    expect(await admin.textContent('#policy-min-length .value')).toBe('8 characters');
    expect(await admin.getAttribute('#policy-signin-default .value', 'data-level')).toBe('password');
    expect(await stored()).toEqual([]);
    expect(await events()).toBe(eventsBefore + 1);
    expect(adminProblems).toEqual([]);
  }, 30000);

  it('says clearly what is wrong with a bad length, keeps what was typed, and changes nothing', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    for (const bad of ['5', '300']) {
      await admin.fill('#policy-min-length-input', bad);
      await admin.click('#policy-save');
      await admin.waitForSelector('#policy-min-length-error');
      expect(await admin.textContent('#policy-min-length-error')).toBe('Enter a whole number from 8 to 256, or leave the field empty.');
      expect(await admin.getAttribute('#policy-min-length-input', 'aria-invalid')).toBe('true');
      expect(await admin.inputValue('#policy-min-length-input')).toBe(bad);
      expect(await admin.textContent('#policy-min-length .value')).toBe('8 characters');
    }
    expect(await stored()).toEqual([]);
    expect(unexpected(adminProblems, 400, /\/admin\/settings\/policies$/)).toEqual([]);
  }, 20000);

  it('refuses a change posted without the CSRF token', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    // The browser may report the previous test's refused posts (400) after it ended: only what
    // happens from this page on counts here.
    adminProblems.length = 0;
    const status = await admin.evaluate(async () => {
      const res = await fetch('/admin/settings/policies', { method: 'POST', body: new URLSearchParams({ passwordMinLength: '20' }) });
      await res.text();
      return res.status;
    });
    expect(status).toBe(403);
    expect(await stored()).toEqual([]);
    expect(unexpected(adminProblems, 403, /\/admin\/settings\/policies$/)).toEqual([]);
  });

  it('renders the form in Chinese', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    await admin.click('#lang-zh');
    await admin.waitForURL(/\/admin\/settings/);
    expect(await admin.textContent('#policy-save')).toBe('保存策略');
    expect(await admin.textContent('#policy-min-length')).toContain('环境变量');
    expect(await admin.textContent('#policy-signin-default-input option[value=""]')).toBe('环境变量的值（密码）');
    await admin.click('#lang-en');
    await admin.waitForURL(/\/admin\/settings/);
    expect(adminProblems).toEqual([]);
  });
});

describe('an auditor', () => {
  it('sees the policies read-only, and a forged post is refused and changes nothing', async () => {
    expect((await bed.cli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'correct-horse-battery'])).code).toBe(0);
    await sql.query("update users set admin_roles = '{auditor}' where username = 'ada'");
    const { page } = await openBrowser();
    const problems = watchProblems(page);
    await signInAt(page, bed, '/admin/settings', 'ada', 'correct-horse-battery');
    await page.waitForSelector('#policy-min-length');
    expect(await page.locator('#policy-form, #policy-save').count()).toBe(0);
    expect(await page.textContent('#policies-read-only')).toBe('Only a super administrator can change these policies.');

    const csrf = await page.getAttribute('meta[name=csrf-token]', 'content');
    const forged = await page.evaluate(async (token) => {
      const res = await fetch('/admin/settings/policies', { method: 'POST', headers: { 'x-csrf-token': token! }, body: new URLSearchParams({ passwordMinLength: '20', signInPolicyDefault: 'password' }) });
      await res.text();
      return res.status;
    }, csrf);
    expect(forged).toBe(403);
    expect(await stored()).toEqual([]);
    expect(unexpected(problems, 403, /\/admin\/settings\/policies$/)).toEqual([]);
  }, 30000);
});
