// The console's suites pages (#22) in a real Chromium against a real OneID: an admin creates a
// suite (a bad icon URL is refused with the API's words and nothing is made), changes and deletes
// suites; adds two apps (made through the admin API), a suite role mapped to a role of each, and
// assigns the suite to a department with that role, after which a member of the department sees
// both apps in the portal and holds the mapped roles; a grant between the two apps is added and
// revoked; an auditor reads everything and gets no forms, and is refused when posting anyway;
// the pages in Simplified Chinese. Screenshots go to test-artifacts/.
import knex, { type Knex } from 'knex';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { firstAdminConsole, noticeOf, screenshot, searchFor, signInAt, startTestbed, watchProblems, type ConsoleTestbed } from '../helpers/console.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

/** A 1x1 transparent PNG: the suite's icon. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

const PASSWORD = 'correct-horse-battery';

let bed: ConsoleTestbed;
let db: Knex;
let api: AdminClient;
let sales: string;
let crm: { id: string; name: string };
let docs: { id: string; name: string };
let suiteId: string;

async function person(username: string, adminRoles: string[] = []): Promise<string> {
  const made = await bed.cli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', PASSWORD, '--name', `${username[0]!.toUpperCase()}${username.slice(1)} Tester`]);
  if (made.code !== 0) throw new Error(made.stderr);
  // Arranging the test: admin roles straight in the database (giving them in the console needs an MFA sign-in).
  if (adminRoles.length) await db('users').where({ id: made.json.id }).update({ admin_roles: db.raw('?::text[]', [adminRoles]) });
  return made.json.id as string;
}

/** An OIDC app only assigned people may use, with one role. */
async function appWithRole(name: string, role: string): Promise<{ id: string; name: string }> {
  const made = await api.call('POST', '/apps', { name, redirectUris: ['http://127.0.0.1:9/callback'], initiateLoginUri: 'http://127.0.0.1:9/login', access: 'assigned' });
  expect(made.status).toBe(201);
  expect((await api.call('POST', `/apps/${made.body.id}/roles`, { key: role, name: role })).status).toBe(201);
  return { id: made.body.id, name };
}

const suiteCount = async (): Promise<number> => (await api.call('GET', '/suites')).body.total as number;

/** Clicks what submits a form and waits for the page the console sends the browser to next. */
async function submit(page: Page, selector: string): Promise<void> {
  await Promise.all([page.waitForEvent('load'), page.click(selector)]);
}

/** What went wrong on the page, less what a test provoked on purpose. */
const unexpected = (problems: string[], expected: RegExp[] = []): string[] => problems.filter((p) => !expected.some((e) => e.test(p)));

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_suites');
  db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 2 } });
  const [department, ada] = await Promise.all([
    bed.cli(['departments', 'create', '--name', 'Sales']),
    person('ada'),
    person('otto', ['auditor']),
    person('ana', ['app_admin']),
    person('uma', ['user_admin']),
    adminClient(bed.url, bed.env, ['app_admin']).then((made) => { api = made; }),
  ]);
  sales = department.json.id;
  expect((await bed.cli(['departments', 'add-member', '--id', sales, '--user', ada])).code).toBe(0);
  [crm, docs] = await Promise.all([appWithRole('CRM', 'crm.rep'), appWithRole('Docs', 'docs.editor')]);
}, 90000);

afterAll(async () => {
  await closeAllBrowsers();
  await db?.destroy();
  await bed?.stop();
});

describe('the console manages suites', () => {
  let admin: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page: admin, problems } = await firstAdminConsole(bed));
  }, 60000);

  it('refuses a bad icon URL with the API\'s words and makes nothing, then creates, changes and deletes suites', async () => {
    await admin.click('#nav-suites');
    await admin.waitForURL(`${bed.url}/admin/suites`);
    expect(await admin.textContent('#no-suites')).toContain('No suites');

    await admin.fill('#name', 'Sales suite');
    await admin.fill('#iconUrl', 'http://icons.example.com/sales.png');
    await admin.click('#create-suite');
    await admin.waitForSelector('#flash #console-error');
    expect(await admin.textContent('#flash #console-error')).toContain('must be an https URL');
    expect(await admin.inputValue('#name')).toBe('Sales suite');
    expect(await suiteCount()).toBe(0);

    await admin.fill('#iconUrl', 'https://icons.example.com/sales.png');
    await admin.fill('#description', 'Everything the sales team uses');
    await admin.fill('#position', '2');
    await admin.selectOption('#signInPolicy', 'mfa');
    await admin.check('#suiteSignout');
    await admin.click('#create-suite');
    expect(await noticeOf(admin, 'created')).toContain('created');
    suiteId = new URL(admin.url()).pathname.split('/').pop()!;
    expect(await admin.textContent('#suite-name')).toBe('Sales suite');
    expect(await admin.inputValue('#iconUrl')).toBe('https://icons.example.com/sales.png');
    expect(await admin.inputValue('#signInPolicy')).toBe('mfa');
    expect(await admin.isChecked('#suiteSignout')).toBe(true);

    // Changed on its page; the list shows what it is now.
    await admin.fill('#position', '1');
    await admin.selectOption('#signInPolicy', 'password');
    await admin.click('#save-suite');
    expect(await noticeOf(admin, 'saved')).toContain('saved');
    expect(await admin.inputValue('#signInPolicy')).toBe('password');
    const got = (await api.call('GET', `/suites/${suiteId}`)).body;
    expect([got.position, got.signInPolicy, got.suiteSignout, got.description]).toEqual([1, 'password', true, 'Everything the sales team uses']);

    // A second suite, deleted after asking.
    await admin.click('#nav-suites');
    await admin.fill('#name', 'Short-lived');
    await admin.click('#create-suite');
    await noticeOf(admin, 'created');
    let asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await admin.click('#delete-suite');
    expect(await noticeOf(admin, 'deleted')).toContain('deleted');
    expect(asked).toContain('Delete the suite Short-lived?');
    expect(await admin.locator('#suite-table tbody tr').count()).toBe(1);
    const row = admin.locator('#suite-table tr[data-suite="Sales suite"]');
    expect(await row.locator('.position').textContent()).toBe('1');
    expect(await row.locator('.policy').textContent()).toBe('Password');
    expect(await row.locator('.signout').textContent()).toBe('Yes');
    expect(await row.locator('.app-count').textContent()).toBe('0');
    await screenshot(admin, 'console-suites-list');
    expect(unexpected(problems, [/^400 .*\/admin\/suites$/, /status of 400/])).toEqual([]);
    problems.length = 0;
  }, 60000);

  it('adds two apps and a suite role, and maps the role to a role of each app', async () => {
    await admin.goto(`${bed.url}/admin/suites/${suiteId}`);
    expect(await admin.textContent('#no-members')).toContain('No apps');
    for (const app of [crm, docs]) {
      await admin.selectOption('#add-app', app.id);
      await submit(admin, '#add-app-button');
      expect(await noticeOf(admin, 'app_added')).toContain('added');
    }
    expect(await admin.locator('#members article.member').count()).toBe(2);
    // Added apps are no longer offered.
    expect(await admin.locator(`#add-app option[value="${crm.id}"]`).count()).toBe(0);
    expect(await admin.textContent('[data-member="CRM"] .role-map')).toContain('Add a suite role first');

    // A bad key is the API's refusal; a good one is added.
    await admin.fill('#role-key', 'Sales Team');
    await admin.click('#add-role');
    await admin.waitForSelector('#flash #console-error');
    expect(await admin.textContent('#flash #console-error')).toContain('lower-case letters');
    await admin.fill('#role-key', 'sales');
    await admin.fill('#role-name', 'Sales');
    await admin.click('#add-role');
    expect(await noticeOf(admin, 'role_added')).toContain('added');
    expect(await admin.textContent('#suite-roles [data-role="sales"]')).toContain('Sales');

    for (const [name, role] of [['CRM', 'crm.rep'], ['Docs', 'docs.editor']] as const) {
      const member = admin.locator(`[data-member="${name}"]`);
      await member.locator(`input[name="map:sales"][value="${role}"]`).check();
      await submit(admin, `[data-member="${name}"] button.save-member`);
      expect(await noticeOf(admin, 'app_saved')).toContain('role map');
      expect(await admin.isChecked(`[data-member="${name}"] input[name="map:sales"][value="${role}"]`)).toBe(true);
    }
    const got = (await api.call('GET', `/suites/${suiteId}`)).body as { apps: { name: string; roleMap: Record<string, string[]> }[] };
    expect(Object.fromEntries(got.apps.map((a) => [a.name, a.roleMap]))).toEqual({ CRM: { sales: ['crm.rep'] }, Docs: { sales: ['docs.editor'] } });
    await screenshot(admin, 'console-suite-members');
    expect(unexpected(problems, [/^400 .*\/roles$/, /status of 400/])).toEqual([]);
    problems.length = 0;
  }, 60000);

  it('assigns the suite to a department with the role: its member sees both apps in the portal and holds the mapped roles', async () => {
    await admin.goto(`${bed.url}/admin/suites/${suiteId}`);
    expect(await admin.textContent('#no-assignments')).toContain('not assigned');
    await admin.check('#assign-type-department');
    // The apps pages' picker: it lists on focus, then searches what was typed.
    await searchFor(admin, '#principal-q', 'Sal', '/principals?q=Sal');
    await admin.locator('#principal-options label', { hasText: 'Sales' }).locator('input').check();
    await admin.check('#assign-role-sales');
    await submit(admin, '#assign');
    expect(await noticeOf(admin, 'assigned')).toContain('assigned');
    const row = admin.locator('#assignment-table tr.assignment', { hasText: 'Sales' });
    expect(await row.locator('.held-roles').textContent()).toContain('Sales');
    expect(await row.textContent()).toContain('Department');
    await screenshot(admin, 'console-suite-assignments');

    // Each app now has a row kept by the suite, with the role the suite role maps to.
    for (const [app, role] of [[crm, 'crm.rep'], [docs, 'docs.editor']] as const) {
      const rows = (await api.call('GET', `/apps/${app.id}/assignments`)).body.items as { suiteId: string | null; principalId: string; roles: { key: string }[] }[];
      expect(rows.map((r) => [r.suiteId, r.principalId, r.roles.map((x) => x.key)])).toEqual([[suiteId, sales, [role]]]);
    }

    const { page: ada } = await openBrowser();
    const adaProblems = watchProblems(ada);
    // The suite's icon lives on another site: the browser gets it from there (here, from the test).
    await ada.route('https://icons.example.com/**', (route) => route.fulfill({ contentType: 'image/png', body: PNG }));
    await ada.goto(`${bed.url}/`);
    await ada.click('#sign-in');
    await ada.waitForURL(/\/login\//);
    await ada.fill('input[name=login]', 'ada');
    await ada.fill('input[name=password]', PASSWORD);
    await ada.click('form button[type=submit]');
    await ada.waitForURL(`${bed.url}/`);
    expect((await ada.locator('#apps .app-name').allTextContents()).sort()).toEqual(['CRM', 'Docs']);
    // Both under the suite's heading, with its icon.
    const section = ada.locator(`section.suite[data-suite-id="${suiteId}"]`);
    expect(await section.locator('.suite-title').textContent()).toBe('Sales suite');
    expect((await section.locator('.app-name').allTextContents()).sort()).toEqual(['CRM', 'Docs']);
    expect(await section.locator('img.suite-icon').getAttribute('src')).toBe('https://icons.example.com/sales.png');
    await screenshot(ada, 'console-suite-portal');
    expect(adaProblems).toEqual([]);

    // A change of roles goes through the suite's own form; removing the assignment takes the apps away.
    await row.locator('summary').click();
    await row.locator('input[name="roleKeys"][value="sales"]').uncheck();
    await submit(admin, '#assignment-table tr.assignment button.save-assignment');
    expect(await noticeOf(admin, 'assignment_saved')).toContain('saved');
    expect(await admin.textContent('#assignment-table .held-roles')).toContain('No roles');
    const [crmRow] = (await api.call('GET', `/apps/${crm.id}/assignments`)).body.items as { roles: unknown[] }[];
    expect(crmRow!.roles).toEqual([]);
    let asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await submit(admin, '#assignment-table button.unassign');
    expect(await noticeOf(admin, 'assignment_removed')).toContain('removed');
    expect(asked).toContain('Remove the suite from Sales?');
    expect((await api.call('GET', `/apps/${crm.id}/assignments`)).body.items).toEqual([]);
    await ada.reload();
    expect(await ada.locator('#apps .app-name').count()).toBe(0);

    // Assigned again with the role, for the tests that follow.
    await admin.check('#assign-type-department');
    await searchFor(admin, '#principal-q', 'Sal', '/principals?q=Sal');
    await admin.locator('#principal-options label', { hasText: 'Sales' }).locator('input').check();
    await admin.check('#assign-role-sales');
    await submit(admin, '#assign');
    await admin.waitForSelector('#assignment-table tr.assignment');

    // On the app's own page the suite's row says where it is changed, and offers no change there.
    await admin.goto(`${bed.url}/admin/apps/${crm.id}`);
    // The app's page names the suites it is in, each a link to its page.
    expect(await admin.textContent('#app-suites')).toContain('In suites:');
    expect(await admin.locator('#app-suites a').getAttribute('href')).toBe(`/admin/suites/${suiteId}`);
    const appRow = admin.locator('#assignment-table tr.assignment', { hasText: 'Sales' });
    expect(await appRow.locator('.from-suite a').getAttribute('href')).toBe(`/admin/suites/${suiteId}`);
    expect(await appRow.locator('details, button').count()).toBe(0);
    await admin.click('#assignment-table .from-suite a');
    await admin.waitForSelector('#suite-name');
    expect(unexpected(problems)).toEqual([]);
  }, 90000);

  it('adds a grant between two members (an app acting for itself is refused) and revokes it after asking', async () => {
    await admin.goto(`${bed.url}/admin/suites/${suiteId}`);
    expect(await admin.textContent('#no-grants')).toContain('No grants');
    await admin.selectOption('#grant-client', crm.id);
    await Promise.all([admin.waitForResponse((r) => r.url().includes('/grant-roles')), admin.selectOption('#grant-audience', crm.id)]);
    await admin.fill('#grant-scopes', 'docs.read');
    await admin.click('#add-grant');
    await admin.waitForSelector('#flash #console-error');
    expect(await admin.textContent('#flash #console-error')).toContain('does not need a grant to call itself');
    expect((await api.call('GET', `/suites/${suiteId}/grants`)).body.items).toEqual([]);

    // Picking the audience app offers its roles, and only its roles.
    await Promise.all([admin.waitForResponse((r) => r.url().includes('/grant-roles')), admin.selectOption('#grant-audience', docs.id)]);
    await admin.waitForSelector('#grant-role-docs\\.editor');
    expect(await admin.locator('#grant-roles input[type=checkbox]').count()).toBe(1);
    await admin.check('#grant-role-docs\\.editor');
    await admin.fill('#grant-scopes', 'docs.read, docs.write');
    await admin.selectOption('#grant-policy', 'mfa');
    await admin.fill('#grant-max-age', '3600');
    await submit(admin, '#add-grant');
    expect(await noticeOf(admin, 'grant_added')).toContain('added');
    const row = admin.locator('#grant-table tr.grant[data-client="CRM"][data-audience="Docs"]');
    expect(await row.locator('.scopes').textContent()).toBe('docs.read docs.write ');
    expect(await row.locator('.grant-roles').textContent()).toContain('docs.editor');
    expect(await row.locator('.min-policy').textContent()).toBe('Two factors');
    expect(await row.locator('.max-age').textContent()).toBe('3600 s');
    const [grant] = (await api.call('GET', `/suites/${suiteId}/grants`)).body.items;
    expect(grant).toMatchObject({ clientAppId: crm.id, audienceAppId: docs.id, scopes: ['docs.read', 'docs.write'], roles: ['docs.editor'], minSignInPolicy: 'mfa', maxAgeSeconds: 3600 });
    await screenshot(admin, 'console-suite-grants');

    let asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await submit(admin, '#grant-table button.revoke-grant');
    expect(await noticeOf(admin, 'grant_revoked')).toContain('revoked');
    expect(asked).toContain('Revoke the grant for CRM to act at Docs?');
    expect(await admin.textContent('#no-grants')).toContain('No grants');
    expect((await api.call('GET', `/suites/${suiteId}/grants`)).body.items).toEqual([]);

    // One left in place, for the auditor to read.
    await admin.selectOption('#grant-client', docs.id);
    await Promise.all([admin.waitForResponse((r) => r.url().includes('/grant-roles')), admin.selectOption('#grant-audience', crm.id)]);
    await admin.fill('#grant-scopes', 'crm.read');
    await submit(admin, '#add-grant');
    expect(await admin.textContent('#grant-table tr.grant .grant-roles')).toContain('All the person holds');
    expect(unexpected(problems, [/^412 .*\/grants$/, /^400 .*\/grants$/, /status of 4\d\d/])).toEqual([]);
    problems.length = 0;
  }, 60000);

  it('shows an auditor every part of a suite without a form, and refuses their forged posts', async () => {
    const { page: otto } = await openBrowser();
    const ottoProblems = watchProblems(otto);
    await signInAt(otto, bed, '/admin/suites', 'otto', PASSWORD);
    await otto.waitForSelector('#suite-table');
    expect(await otto.locator('#suite-form').count()).toBe(0);
    await otto.click('#suite-table a');
    await otto.waitForSelector('#suite-facts');
    expect(await otto.textContent('#suite-policy')).toBe('Password');
    expect(await otto.locator('#members article.member').count()).toBe(2);
    expect(await otto.isChecked('[data-member="CRM"] input[name="map:sales"][value="crm.rep"]')).toBe(true);
    expect(await otto.isDisabled('[data-member="CRM"] input[name="map:sales"][value="crm.rep"]')).toBe(true);
    expect(await otto.locator('#assignment-table tr.assignment', { hasText: 'Sales' }).count()).toBe(1);
    expect(await otto.locator('#grant-table tr.grant').count()).toBe(1);
    for (const selector of ['#suite-edit-form', '#delete-suite', '#add-app-form', '#role-form', '#assign-form', '#grant-form', '.save-member', '.remove-app', '.remove-role', '.unassign', '.revoke-grant']) {
      expect([selector, await otto.locator(selector).count()]).toEqual([selector, 0]);
    }
    await screenshot(otto, 'console-suite-auditor');
    expect(ottoProblems).toEqual([]);
    const forged = await otto.evaluate(async ({ id, app }) => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const post = (path: string, fields: Record<string, string> = {}) => fetch(path, { method: 'POST', body: new URLSearchParams({ _csrf: token, ...fields }) }).then((r) => r.status);
      return [await post('/admin/suites', { name: 'Forged' }), await post(`/admin/suites/${id}/delete`), await post(`/admin/suites/${id}/apps/${app}/delete`)];
    }, { id: suiteId, app: crm.id });
    expect(forged).toEqual([403, 403, 403]);
    const got = (await api.call('GET', `/suites/${suiteId}`)).body;
    expect(got.apps).toHaveLength(2);
    expect(await suiteCount()).toBe(1);
  }, 60000);

  it('gives an app_admin the forms, and a user_admin neither the section nor the pages', async () => {
    const { page: ana } = await openBrowser();
    await signInAt(ana, bed, `/admin/suites/${suiteId}`, 'ana', PASSWORD);
    await ana.waitForSelector('#suite-edit-form');
    for (const selector of ['#add-app-form', '#role-form', '#assign-form', '#grant-form']) expect(await ana.locator(selector).count()).toBe(1);

    const { page: uma } = await openBrowser();
    const umaProblems = watchProblems(uma);
    await signInAt(uma, bed, '/admin', 'uma', PASSWORD);
    expect(await uma.locator('#nav-people').count()).toBe(1);
    expect(await uma.locator('#nav-suites').count()).toBe(0);
    expect((await uma.goto(`${bed.url}/admin/suites`))!.status()).toBe(403);
    expect((await uma.goto(`${bed.url}/admin/suites/${suiteId}`))!.status()).toBe(403);
    expect(unexpected(umaProblems, [/^403 .*\/admin\/suites/, /status of 403/])).toEqual([]);
  }, 60000);

  it('shows the suites pages in Simplified Chinese', async () => {
    const { page: zh } = await openBrowser({ locale: 'zh-CN' });
    const zhProblems = watchProblems(zh);
    await signInAt(zh, bed, '/admin/suites', 'grace', PASSWORD);
    expect(await zh.textContent('h1')).toBe('套件');
    expect(await zh.textContent('#nav-suites')).toBe('套件');
    expect(await zh.textContent('#new-suite-h')).toBe('新建套件');
    expect(await zh.textContent('#suite-table tr[data-suite="Sales suite"] .policy')).toBe('密码');
    await zh.click('#suite-table a');
    await zh.waitForSelector('#members');
    for (const [selector, words] of [['#settings-h', '设置'], ['#roles-h', '套件角色'], ['#members-h', '套件中的应用'], ['#assignments-h', '已分配给'], ['#grants-h', '应用之间的授权']]) {
      expect(await zh.textContent(selector!)).toBe(words);
    }
    expect(await zh.textContent('#grant-table tr.grant .grant-roles')).toBe('该人员拥有的所有角色');
    await screenshot(zh, 'console-suite-zh');
    expect(zhProblems).toEqual([]);
  }, 60000);
});
