// The "Provisioning (SCIM)" section of an app's console page, in a real Chromium against a real
// OneID with its job queue (fast retries) and a third-party-style SCIM app (ScimmyApp) on a port:
// an app_admin sets up provisioning for an app assigned to a person (a refused URL shows the API's
// error in the flash area first), the person appears in the app and the status shows them synced;
// a change made behind OneID's back in the app's store shows in the drift report (which changes
// nothing), and Sync now repairs it; the token never appears in a page; an auditor sees the
// section without any form; a SAML app has the section too; Simplified Chinese. Screenshots go to
// test-artifacts/.
import knex, { type Knex } from 'knex';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { signInAt, startTestbed, watchProblems, type ConsoleTestbed, screenshot, noticeOf } from '../helpers/console.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { ScimmyApp, type StoredResource } from '../helpers/scim-app.ts';

const PASSWORD = 'correct-horse-battery';

let bed: ConsoleTestbed;
let db: Knex;
let scimmy: ScimmyApp;
let appApi: AdminClient;
let appId: string;
let samlAppId: string;
let adaId: string;

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 30000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function person(username: string, adminRoles: string[] = []): Promise<string> {
  const made = await bed.cli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', PASSWORD, '--name', `${username[0]!.toUpperCase()}${username.slice(1)} Tester`]);
  if (made.code !== 0) throw new Error(made.stderr);
  // Arranging the test: admin roles straight in the database (giving them in the console needs an MFA sign-in).
  if (adminRoles.length) await db('users').where({ id: made.json.id }).update({ admin_roles: db.raw('?::text[]', [adminRoles]) });
  return made.json.id as string;
}



const inApp = (username: string): StoredResource | undefined => [...scimmy.users.values()].find((u) => String(u.userName).toLowerCase() === username);

beforeAll(async () => {
  scimmy = new ScimmyApp();
  await scimmy.start();
  bed = await startTestbed('oneid_test_console_provisioning', {
    JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_HEARTBEAT_SECONDS: '10',
  });
  db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 2 } });
  [adaId, , , appApi] = await Promise.all([
    person('ada'), person('appadmin', ['app_admin']), person('otto', ['auditor']), adminClient(bed.url, bed.env, ['app_admin']),
  ]);
  const app = await appApi.call('POST', '/apps', { name: 'Wiki', redirectUris: ['http://127.0.0.1:9/callback'], access: 'assigned' });
  expect(app.status).toBe(201);
  appId = app.body.id;
  expect((await appApi.call('POST', `/apps/${appId}/assignments`, { principalType: 'user', principalId: adaId })).status).toBe(201);
  const saml = await appApi.call('POST', '/apps/saml', { name: 'Payroll', entityId: 'https://sp.example/saml', acsUrls: [{ location: 'https://sp.example/acs' }] });
  expect(saml.status).toBe(201);
  samlAppId = saml.body.id;
}, 90000);

afterAll(async () => {
  await closeAllBrowsers();
  await db?.destroy();
  await bed?.stop();
  await scimmy?.stop();
});

describe("an app's Provisioning (SCIM) section", () => {
  let admin: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page: admin } = await openBrowser());
    problems = watchProblems(admin);
    admin.on('dialog', (d) => void d.accept());
    await signInAt(admin, bed, `/admin/apps/${appId}`, 'appadmin', PASSWORD);
  }, 60000);

  it('an app_admin sets it up; the person appears in the app and the status shows them synced; the token never shows', async () => {
    await admin.goto(`${bed.url}/admin/apps/${appId}`);
    expect(await admin.textContent('#provisioning-title')).toBe('Provisioning (SCIM)');
    expect(await admin.textContent('#provisioning-none')).toContain('does not provision this app');
    expect(await admin.getAttribute('#provisioning-form-token', 'type')).toBe('password');

    // The API's refusal (credentials in the URL) shows in the flash area; nothing is set up.
    await admin.fill('#provisioning-form-baseUrl', `http://user:pw@127.0.0.1:9/scim/v2`);
    await admin.fill('#provisioning-form-token', scimmy.token);
    await admin.click('#provisioning-form-save');
    await admin.waitForSelector('#flash #console-error');
    expect(await admin.textContent('#flash #console-error')).toMatch(/credentials|user info|URL/i);
    expect((await appApi.call('GET', `/apps/${appId}/provisioning`)).status).toBe(404);

    await admin.fill('#provisioning-form-baseUrl', scimmy.url);
    await admin.fill('#provisioning-form-token', scimmy.token);
    // ScimmyApp's schema has no enterprise extension.
    await admin.check('#provisioning-form-noEnterprise');
    await admin.check('#provisioning-form-onUnassign-delete');
    await admin.selectOption('#provisioning-form-rolesAs', 'entitlements');
    await admin.click('#provisioning-form-save');
    expect(await noticeOf(admin, 'provisioning_saved')).toContain('being sent to it now');

    const ada = await until('Ada in the app', () => inApp('ada'));
    expect(ada).toMatchObject({ active: true, displayName: 'Ada Tester' });
    // The status shows her synced (a reload, as an admin would).
    await until('the status to show one synced', async () => {
      await admin.reload();
      return (await admin.textContent('#provisioning-counts [data-state="synced"] .count')) === '1';
    });
    expect(await admin.textContent('#provisioning-url')).toBe(scimmy.url);
    expect(await admin.textContent('#provisioning-token')).toContain('Token set');
    expect(await admin.textContent('#provisioning-on-unassign')).toContain('Delete');
    expect(await admin.textContent('#provisioning-roles-as')).toBe('SCIM entitlements');
    expect(await admin.textContent('#provisioning-enterprise')).toBe('No');
    expect(await admin.locator('#provisioning-failures').count()).toBe(0);
    expect(await admin.textContent('#provisioning-pending')).toBe('0');
    expect(await admin.textContent('#provisioning-last-success')).not.toBe('Never');
    expect(await admin.content()).not.toContain(scimmy.token);
    // The edit form asks for the token again (the API replaces the whole target) and shows none.
    expect(await admin.getAttribute('#provisioning-edit-form-token', 'value')).toBeNull();
    expect(await admin.getAttribute('#provisioning-edit-form-token', 'required')).not.toBeNull();
    expect(await admin.isChecked('#provisioning-edit-form-onUnassign-delete')).toBe(true);
    expect(await admin.isChecked('#provisioning-edit-form-noEnterprise')).toBe(true);
    expect(problems.filter((p) => !/^400 .*\/provisioning$/.test(p) && !/status of 400/.test(p))).toEqual([]);
    problems.length = 0;
  }, 60000);

  it('a change made behind OneID\'s back shows in the drift report, which changes nothing; Sync now repairs it', async () => {
    const ada = inApp('ada')!;
    scimmy.users.set(ada.id, { ...ada, displayName: 'Somebody Else' });
    await admin.goto(`${bed.url}/admin/apps/${appId}`);
    await admin.click('#provisioning-drift');
    await admin.waitForSelector('#drift');
    expect(await admin.textContent('#drift-dry-run')).toContain('nothing was changed');
    expect(await admin.textContent('#drift-counts [data-kind="different"] .count')).toBe('1');
    expect(await admin.textContent('#drift-counts [data-kind="missing"] .count')).toBe('0');
    const row = admin.locator('#drift-table tr[data-kind="different"][data-username="ada"]');
    expect(await row.locator('.attributes').textContent()).toContain('displayName');
    // A dry run: the app still holds the change.
    expect(inApp('ada')!.displayName).toBe('Somebody Else');
    await screenshot(admin, 'console-provisioning-drift');

    await admin.click('#provisioning-sync');
    expect(await noticeOf(admin, 'provisioning_sync_started')).toContain('full sync has started');
    await until('the full sync to repair Ada', () => inApp('ada')!.displayName === 'Ada Tester');
    await until('the last full sync on the page', async () => {
      await admin.reload();
      return /1 people entitled/.test((await admin.textContent('#provisioning-full-sync')) ?? '');
    });
    expect(await admin.textContent('#provisioning-full-sync')).toContain('updated 1');
    await admin.click('#provisioning-drift');
    await admin.waitForSelector('#drift-none');
    expect(await admin.content()).not.toContain(scimmy.token);
    await screenshot(admin, 'console-provisioning-status');
    expect(problems).toEqual([]);
  }, 60000);

  it('an auditor sees the section and the drift report, without any form; a forged post is refused', async () => {
    const { page: otto } = await openBrowser();
    const ottoProblems = watchProblems(otto);
    await signInAt(otto, bed, `/admin/apps/${appId}`, 'otto', PASSWORD);
    await otto.waitForSelector('#provisioning-facts');
    expect(await otto.locator('#provisioning form').count()).toBe(0);
    expect(await otto.locator('#provisioning-sync, #provisioning-remove, #provisioning-edit').count()).toBe(0);
    expect(await otto.textContent('#provisioning-token')).toContain('Token set');
    await otto.click('#provisioning-drift');
    await otto.waitForSelector('#drift');
    // Without scripts, the same link gives the whole page with the report.
    await otto.goto(`${bed.url}/admin/apps/${appId}/provisioning/drift`);
    expect(await otto.textContent('#drift-dry-run')).toContain('nothing was changed');
    expect(await otto.isVisible('#provisioning-facts')).toBe(true);
    expect(await otto.content()).not.toContain(scimmy.token);
    expect(ottoProblems).toEqual([]);
    const forged = await otto.evaluate(async (id) => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const post = (path: string) => fetch(path, { method: 'POST', body: new URLSearchParams({ _csrf: token }) }).then((r) => r.status);
      return [await post(`/admin/apps/${id}/provisioning/sync`), await post(`/admin/apps/${id}/provisioning/delete`)];
    }, appId);
    expect(forged).toEqual([403, 403]);
    expect((await appApi.call('GET', `/apps/${appId}/provisioning`)).status).toBe(200);
    await otto.goto(`${bed.url}/admin/apps/${samlAppId}`);
    expect(await otto.textContent('#provisioning-none')).toContain('does not provision');
    expect(await otto.locator('#provisioning form').count()).toBe(0);
  }, 60000);

  it('shows the section on a SAML app too, and shows failures with the app\'s own error', async () => {
    await admin.goto(`${bed.url}/admin/apps/${samlAppId}`);
    expect(await admin.isVisible('#provisioning-form')).toBe(true);
    // Wiki sending the enterprise attributes the app's schema lacks: the app refuses Ada's update,
    // and the failures table shows its own words. (Arranging: Ada's employee number straight in
    // the database; the full sync that saving starts compares her with what the app holds.)
    await db('users').where({ id: adaId }).update({ employee_number: 'E-1001' });
    await admin.goto(`${bed.url}/admin/apps/${appId}`);
    await admin.click('#provisioning-edit summary');
    await admin.uncheck('#provisioning-edit-form-noEnterprise');
    await admin.fill('#provisioning-edit-form-token', scimmy.token);
    await admin.click('#provisioning-edit-form-save');
    await noticeOf(admin, 'provisioning_saved');
    await until('the failure on the page', async () => {
      await admin.reload();
      return (await admin.locator(`#provisioning-failures tr[data-local-id="${adaId}"]`).count()) === 1;
    });
    expect(await admin.textContent(`#provisioning-failures tr[data-local-id="${adaId}"] .app-error`)).toContain('enterprise');
    expect(await admin.textContent(`#provisioning-failures tr[data-local-id="${adaId}"] a`)).toBe('Ada Tester');
    expect(await admin.textContent('#provisioning-counts [data-state="failed"] .count')).toBe('1');
    expect(await admin.textContent('#provisioning-enterprise')).toBe('Yes');
    await screenshot(admin, 'console-provisioning-failures');
    // Wiki with a wrong token: the full sync's refusal shows with the app's words.
    await admin.goto(`${bed.url}/admin/apps/${appId}`);
    await admin.click('#provisioning-edit summary');
    await admin.fill('#provisioning-edit-form-token', 'not-the-token');
    await admin.click('#provisioning-edit-form-save');
    await noticeOf(admin, 'provisioning_saved');
    // A changed token starts an ordinary sync; the full sync (and its summary) is asked for.
    await admin.click('#provisioning-sync');
    await noticeOf(admin, 'provisioning_sync_started');
    await until('the refusal on the page', async () => {
      await admin.reload();
      return (await admin.locator('#provisioning-full-sync .badge.state-failed').count()) === 1;
    });
    expect(await admin.textContent('#provisioning-full-sync')).toMatch(/401|token|auth/i);
    expect(await admin.content()).not.toContain('not-the-token');
    // The drift check meets the same refusal: shown in the flash area, nothing else on the page changes.
    await admin.click('#provisioning-drift');
    await admin.waitForSelector('#flash #console-error');
    expect(await admin.textContent('#flash #console-error')).toContain('401');
    expect(await admin.locator('#drift').count()).toBe(0);
    // The setup form kept what it does not show: the answer to "when someone leaves".
    expect(await admin.textContent('#provisioning-on-unassign')).toContain('Delete');
    expect(problems.filter((p) => !/^412 .*\/drift$/.test(p) && !/status of 412/.test(p))).toEqual([]);
    problems.length = 0;
  }, 60000);

  it('removes provisioning after asking, and reads in Simplified Chinese', async () => {
    const { page: zh } = await openBrowser({ locale: 'zh-CN' });
    zh.on('dialog', (d) => void d.accept());
    await signInAt(zh, bed, `/admin/apps/${appId}`, 'appadmin', PASSWORD);
    expect(await zh.textContent('#provisioning-title')).toBe('账号同步（SCIM）');
    expect(await zh.textContent('#provisioning-sync')).toBe('立即同步');
    await screenshot(zh, 'console-provisioning-zh');
    let asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await admin.goto(`${bed.url}/admin/apps/${appId}`);
    await admin.click('#provisioning-remove');
    expect(await noticeOf(admin, 'provisioning_removed')).toContain('stay there');
    expect(asked).toContain('Stop provisioning Wiki?');
    expect(await admin.isVisible('#provisioning-form')).toBe(true);
    expect((await appApi.call('GET', `/apps/${appId}/provisioning`)).status).toBe(404);
    expect(inApp('ada')).toBeDefined();
  }, 60000);
});
