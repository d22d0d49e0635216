// Giving admin roles from the console, in a real Chromium: the person's page offers only the
// roles the admin holds; giving one after a password-only sign-in shows the console's "sign in
// again" page (the API's RFC 9470 step-up) and changes nothing; after the admin sets up an
// authenticator app in that sign-in, the same change goes through and is audited. A user_admin's
// forged post giving super_admin is refused.
import knex, { type Knex } from 'knex';
import type { Page } from 'playwright-core';
import { generate } from 'otplib';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { firstAdminConsole, signInAt, startTestbed, type ConsoleTestbed } from '../helpers/console.ts';

const PASSWORD = 'correct-horse-battery';
let bed: ConsoleTestbed;
let db: Knex;
let bob: string;

const rolesOf = async (id: string): Promise<string[]> => (await db('users').where({ id }).first('admin_roles')).admin_roles;

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_admin_roles');
  db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 2 } });
  const [made, uma] = await Promise.all(['bob', 'uma'].map((username) => bed.cli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', PASSWORD])));
  bob = made!.json.id;
  await db('users').where({ id: uma!.json.id }).update({ admin_roles: db.raw("'{user_admin}'::text[]") });
}, 60000);

afterAll(async () => {
  await closeAllBrowsers();
  await db?.destroy();
  await bed?.stop();
});

describe('admin roles in the console', () => {
  let admin: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page: admin, problems: problems } = await firstAdminConsole(bed));
  });

  it('asks a password-only admin to sign in again with a second factor, and changes nothing', async () => {
    await admin.goto(`${bed.url}/admin/people/${bob}`);
    await admin.check('#role-user_admin');
    await admin.click('#person-save-roles');
    await admin.waitForSelector('#step-up');
    expect(await admin.textContent('#step-up')).toContain('second factor');
    expect(await rolesOf(bob)).toEqual([]);
    // The 401 is the step-up the test provoked.
    expect(problems.filter((p) => !/401/.test(p))).toEqual([]);
    problems.length = 0;
  });

  it('after setting up an authenticator app in that sign-in, gives the role, audited', async () => {
    await admin.click('#step-up-go');
    await admin.waitForSelector('#totp-secret');
    const secret = (await admin.textContent('#totp-secret'))!.trim();
    await admin.fill('#totp-code', await generate({ secret }));
    await admin.click('form[action$="/enrol/totp"] button[type=submit]');
    // New recovery codes come with the first second factor; then back to the page the admin was on.
    await admin.waitForSelector('.recovery-code');
    await admin.click('form[action$="/continue"] button[type=submit]');
    await admin.waitForURL(`${bed.url}/admin/people/${bob}`);
    await admin.check('#role-user_admin');
    await admin.click('#person-save-roles');
    await admin.waitForSelector('#person-done');
    expect(await admin.textContent('#person-done')).toContain('Administrator roles saved');
    expect(await rolesOf(bob)).toEqual(['user_admin']);
    const audit = await db('audit_events').where({ action: 'user.updated', target_id: bob }).orderBy('seq', 'desc').first('changes', 'client_id');
    expect(audit.changes).toMatchObject({ adminRoles: ['user_admin'] });
    expect(audit.client_id).toBe('oneid-console');
    expect(problems).toEqual([]);
  }, 60000);

  it("offers a user_admin only the roles they hold, and refuses their forged post giving super_admin", async () => {
    const { page } = await openBrowser();
    await signInAt(page, bed, `/admin/people/${bob}`, 'uma', PASSWORD);
    await page.waitForSelector('#role-super_admin');
    expect(await page.isDisabled('#role-super_admin')).toBe(true);
    expect(await page.isDisabled('#role-app_admin')).toBe(true);
    expect(await page.isDisabled('#role-user_admin')).toBe(false);
    const status = await page.evaluate(async (id) => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const body = new URLSearchParams([['_csrf', token], ['adminRoles', 'super_admin'], ['adminRoles', 'user_admin']]);
      return (await fetch(`/admin/people/${id}/admin-roles`, { method: 'POST', body })).status;
    }, bob);
    expect(status).toBe(403);
    expect(await rolesOf(bob)).toEqual(['user_admin']);
  }, 40000);
});
