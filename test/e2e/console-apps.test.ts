// The console's apps pages in a real Chromium: an admin registers an OpenID Connect app with a
// role (the secret shown once, with copy buttons, beside the issuer and discovery URL), rotates
// its secret, assigns it to a department with the role, and a member of that department signs in
// to the app (an openid-client RP) and receives the role; a SAML app is registered from node-saml's
// SP metadata; the console's own app cannot be deleted; an app_admin may register apps and a
// user_admin may not (the page hides it and the server refuses a forged post); both languages.
import knex, { type Knex } from 'knex';
import type { Page } from 'playwright-core';
import { generateServiceProviderMetadata } from '@node-saml/node-saml';
import * as client from 'openid-client';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { firstAdminConsole, signInAt, startTestbed, watchProblems, type ConsoleTestbed, searchFor, noticeOf } from '../helpers/console.ts';
import { oidcApp, startCallbackServer, type CallbackServer } from '../helpers/oidc-app.ts';

const PASSWORD = 'correct-horse-battery';
let bed: ConsoleTestbed;
let db: Knex;
let rp: CallbackServer;
let research: string;
let ada: string;

async function person(username: string, adminRoles: string[] = []): Promise<string> {
  const made = await bed.cli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', PASSWORD, '--name', `${username[0]!.toUpperCase()}${username.slice(1)} Tester`]);
  if (made.code !== 0) throw new Error(made.stderr);
  // Arranging the test: admin roles straight in the database (giving them in the console needs an MFA sign-in).
  if (adminRoles.length) await db('users').where({ id: made.json.id }).update({ admin_roles: db.raw('?::text[]', [adminRoles]) });
  return made.json.id as string;
}

/** What went wrong on the page, less what a test provoked on purpose. */
const unexpected = (problems: string[], expected: RegExp[] = []): string[] => problems.filter((p) => !expected.some((e) => e.test(p)));

/** The two refused registrations of the bad-input test, as the page's watcher records them. */
const REFUSED_INPUT = [/^400 .*\/admin\/apps\/new$/, /status of 400 \(Bad Request\)/];


async function appCount(): Promise<number> {
  const [row] = await db('apps').count<{ count: string }[]>('* as count');
  return Number(row!.count);
}

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_apps');
  db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 2 } });
  rp = await startCallbackServer();
  // The people and the department the tests use, made at once (each CLI run starts a process).
  const [department] = await Promise.all([
    bed.cli(['departments', 'create', '--name', 'Research']),
    person('ada').then((id) => { ada = id; }),
    person('appadmin', ['app_admin']),
    person('useradmin', ['user_admin']),
  ]);
  research = department.json.id;
  expect((await bed.cli(['departments', 'add-member', '--id', research, '--user', ada])).code).toBe(0);
}, 60000);

afterAll(async () => {
  await closeAllBrowsers();
  await rp?.close();
  await db?.destroy();
  await bed?.stop();
});

describe('the console apps pages', () => {
  let admin: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page: admin, problems: problems } = await firstAdminConsole(bed));
  }, 60000);

  it("lists the console's own app, which cannot be deleted from its page", async () => {
    await admin.click('#nav-apps');
    await admin.waitForURL(`${bed.url}/admin/apps`);
    expect(await admin.textContent('#app-total')).toContain('1 in total');
    const row = admin.locator('#app-table tbody tr', { hasText: 'OneID console' });
    expect(await row.locator('.badge.protocol-oidc').textContent()).toBe('OIDC');
    await row.locator('a').click();
    await admin.waitForSelector('#managed-hint');
    expect(await admin.locator('#delete-app').count()).toBe(0);
    expect(await admin.isDisabled('#access')).toBe(true);
    expect(await admin.inputValue('#client-id')).toBe('oneid-console');
  });

  it('registers an OpenID Connect app, shows its secret once, rotates it, and a department member signs in with the role', async () => {
    await admin.goto(`${bed.url}/admin/apps`);
    await admin.click('#new-oidc');
    await admin.fill('#name', 'Docs');
    await admin.fill('#description', 'Team documents');
    await admin.fill('#redirectUris', `${rp.redirectUri}\n`);
    await admin.fill('#initiateLoginUri', `${rp.origin}/start`);
    await admin.check('#firstParty');
    await admin.selectOption('#signInPolicy', 'password');
    await admin.click('#register');
    await admin.waitForSelector('#client-secret');
    const secret = (await admin.textContent('#client-secret'))!.trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const clientId = await admin.inputValue('#client-id');
    for (const id of ['copy-client-secret', 'copy-client-id', 'copy-issuer', 'copy-discovery-url']) {
      expect(await admin.getAttribute(`#${id}`, 'data-copy')).toBe(id.replace(/^copy-/, ''));
    }
    expect(await admin.inputValue('#issuer')).toBe(bed.url);
    const discoveryUrl = await admin.inputValue('#discovery-url');
    expect(discoveryUrl).toBe(`${bed.url}/.well-known/openid-configuration`);
    expect(((await (await fetch(discoveryUrl)).json()) as { issuer: string }).issuer).toBe(bed.url);
    // The address bar shows the app's page (never the secret); loading it again shows no secret.
    expect(admin.url()).toMatch(/\/admin\/apps\/[0-9a-f-]{36}$/);
    expect(admin.url()).not.toContain(secret);
    await admin.reload();
    await admin.waitForSelector('#app-name');
    expect(await admin.locator('#client-secret').count()).toBe(0);
    expect(await admin.content()).not.toContain(secret);
    expect(await admin.inputValue('#initiateLoginUri')).toBe(`${rp.origin}/start`);

    await admin.fill('#role-key', 'docs.editor');
    await admin.fill('#role-name', 'Editor');
    await admin.click('#add-role');
    await noticeOf(admin, 'role_added');
    expect(await admin.textContent('#role-docs\\.editor')).toContain('Editor');

    await admin.click('#rotate-secret');
    await admin.waitForSelector('#client-secret');
    const rotated = (await admin.textContent('#client-secret'))!.trim();
    expect(rotated).not.toBe(secret);
    expect(await admin.textContent('#secret-title')).toContain('New secret');
    await admin.click('#to-app');
    await admin.waitForSelector('#assign-form');

    await admin.check('#assign-type-department');
    // The picker lists on focus, then searches what was typed: choose from the search's answer.
    await searchFor(admin, '#principal-q', 'Resea', '/principals?q=Resea');
    await admin.locator('#principal-options label', { hasText: 'Research' }).locator('input').check();
    await admin.check('#assign-role-docs\\.editor');
    await admin.check('#include-subdepartments');
    await admin.click('#assign');
    await noticeOf(admin, 'assigned');
    const row = admin.locator('#assignment-table tr.assignment', { hasText: 'Research' });
    expect(await row.textContent()).toContain('Editor');
    expect(await row.textContent()).toContain('and its sub-departments');

    // The app, as a real relying party with the rotated secret: the old one no longer works.
    const stale = await oidcApp(bed.url, { client_id: clientId, client_secret: secret }, rp.redirectUri);
    const app = await oidcApp(bed.url, { client_id: clientId, client_secret: rotated }, rp.redirectUri);
    const { page: member } = await openBrowser();
    const request = await app.authorizationUrl({ scope: 'openid profile roles' });
    await member.goto(request.url.href);
    await member.waitForURL(/\/login\//);
    await member.fill('input[name=login]', 'ada');
    await member.fill('input[name=password]', PASSWORD);
    await member.click('form button[type=submit]');
    await member.waitForURL((url) => url.href.startsWith(rp.origin));
    await expect(stale.handleCallback(request, member.url())).rejects.toThrow();
    const again = await app.authorizationUrl({ scope: 'openid profile roles' });
    await member.goto(again.url.href);
    await member.waitForURL((url) => url.href.startsWith(rp.origin));
    const { tokens, claims } = await app.handleCallback(again, member.url());
    expect(claims.roles).toEqual(['docs.editor']);
    const userinfo = await client.fetchUserInfo(app.config, tokens.access_token, claims.sub);
    expect(userinfo.roles).toEqual(['docs.editor']);
    expect(unexpected(problems)).toEqual([]);
  }, 60000);

  it("registers a SAML app from the SP's metadata and shows OneID's metadata URL", async () => {
    const metadata = generateServiceProviderMetadata({
      issuer: 'https://wiki.example/saml', callbackUrl: 'https://wiki.example/saml/acs', logoutCallbackUrl: 'https://wiki.example/saml/logout',
    });
    await admin.goto(`${bed.url}/admin/apps`);
    await admin.click('#new-saml');
    expect(await admin.inputValue('#idp-metadata-url')).toBe(`${bed.url}/saml/metadata`);
    expect(await admin.inputValue('#idp-entity-id')).toBe(`${bed.url}/saml/metadata`);
    expect(await admin.getAttribute('#copy-idp-metadata-url', 'data-copy')).toBe('idp-metadata-url');
    await admin.fill('#name', 'Wiki');
    await admin.setInputFiles('#metadataFile', { name: 'sp.xml', mimeType: 'application/xml', buffer: Buffer.from(metadata) });
    await admin.waitForFunction(() => (document.getElementById('metadataXml') as HTMLTextAreaElement).value.includes('EntityDescriptor'));
    await admin.click('#register');
    await noticeOf(admin, 'created');
    expect(await admin.textContent('#app-protocol')).toBe('SAML');
    expect(await admin.inputValue('#entityId')).toBe('https://wiki.example/saml');
    expect(await admin.inputValue('#acsUrls')).toContain('https://wiki.example/saml/acs');
    expect(await admin.inputValue('#idp-metadata-url')).toBe(`${bed.url}/saml/metadata`);

    // Edit its SAML settings: a second ACS URL.
    await admin.fill('#acsUrls', 'https://wiki.example/saml/acs\nhttps://wiki.example/saml/acs2');
    await admin.click('#save-app');
    await noticeOf(admin, 'saved');
    expect(await admin.inputValue('#acsUrls')).toContain('https://wiki.example/saml/acs2');

    await admin.goto(`${bed.url}/admin/apps?q=wi`);
    expect(await admin.textContent('#app-total')).toContain('1 in total');
    expect(await admin.textContent('#app-table .badge.protocol-saml')).toBe('SAML');
    expect(unexpected(problems)).toEqual([]);
  });

  it("changes an app's roles and assignments and deletes it, each after asking, at a phone's width", async () => {
    await admin.setViewportSize({ width: 360, height: 740 });
    await admin.goto(`${bed.url}/admin/apps/new`);
    await admin.fill('#name', 'Temp');
    await admin.fill('#redirectUris', 'https://temp.example/cb');
    await admin.check('#type-public');
    await admin.click('#register');
    await admin.waitForSelector('#no-secret');
    await admin.click('#to-app');
    await admin.fill('#role-key', 'temp.viewer');
    await admin.click('#add-role');
    await noticeOf(admin, 'role_added');
    const role = admin.locator('#role-temp\\.viewer');
    await role.locator('summary').click();
    await role.locator('input[name=name]').fill('Viewer two');
    await role.locator('button[type=submit]', { hasText: 'Save' }).click();
    await noticeOf(admin, 'role_saved');
    expect(await admin.textContent('#role-temp\\.viewer')).toContain('Viewer two');

    // The picker lists on focus, then searches what was typed: choose from the search's answer.

    await searchFor(admin, '#principal-q', 'ada', '/principals?q=ada');
    await admin.locator('#principal-options label', { hasText: 'Ada Tester' }).locator('input').check();
    await admin.check('#assign-role-temp\\.viewer');
    await admin.click('#assign');
    await noticeOf(admin, 'assigned');
    const row = admin.locator('#assignment-table tr.assignment', { hasText: 'Ada Tester' });
    expect(await row.textContent()).toContain('Viewer two');
    await row.locator('summary').click();
    await row.locator('input[name=roleIds]').uncheck();
    await row.locator('button[type=submit]', { hasText: 'Save' }).click();
    await noticeOf(admin, 'assignment_saved');
    expect(await admin.locator('#assignment-table tr.assignment', { hasText: 'Ada Tester' }).textContent()).toContain('No roles');
    // No sideways scrolling at a phone's width.
    expect(await admin.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);

    const asked: string[] = [];
    admin.on('dialog', (d) => void asked.push(d.message()));
    await admin.locator('#assignment-table tr.assignment', { hasText: 'Ada Tester' }).locator('button', { hasText: 'Remove' }).click();
    await noticeOf(admin, 'assignment_removed');
    expect(await admin.locator('#assignment-table').count()).toBe(0);
    await admin.locator('#role-temp\\.viewer button', { hasText: 'Delete' }).click();
    await noticeOf(admin, 'role_deleted');
    expect(await admin.locator('#no-roles').count()).toBe(1);
    await admin.click('#delete-app');
    await admin.waitForURL(`${bed.url}/admin/apps?notice=deleted`);
    expect(await admin.locator('#app-table a', { hasText: 'Temp' }).count()).toBe(0);
    expect(asked).toEqual([
      'Remove the assignment of Ada Tester? People who had the app only through it can no longer sign in to it.',
      'Delete the role temp.viewer? Assignments that give it lose it.',
      'Delete Temp? This cannot be undone.',
    ]);
    await admin.setViewportSize({ width: 1280, height: 800 });
    expect(unexpected(problems)).toEqual([]);
  });

  it('says what is wrong with bad input and registers nothing', async () => {
    const before = await appCount();
    await admin.goto(`${bed.url}/admin/apps/new`);
    await admin.fill('#name', 'Broken');
    await admin.fill('#redirectUris', 'not a url');
    await admin.click('#register');
    await admin.waitForSelector('#console-error');
    expect(await admin.textContent('#console-error')).toContain('redirectUris');
    await admin.fill('#redirectUris', 'https://ok.example/cb');
    await admin.fill('#initiateLoginUri', 'http://insecure.example/start');
    await admin.click('#register');
    await admin.waitForFunction(() => document.getElementById('console-error')?.textContent?.includes('initiateLoginUri'));
    expect(await appCount()).toBe(before);
    expect(await admin.locator('#client-secret').count()).toBe(0);
    expect(unexpected(problems, REFUSED_INPUT)).toEqual([]);
  });

  it('renders the apps pages in Chinese', async () => {
    await admin.goto(`${bed.url}/admin/apps`);
    await admin.click('#lang-zh');
    await admin.waitForURL(/\/admin\/apps/);
    expect(await admin.textContent('h1')).toBe('应用');
    expect(await admin.textContent('#new-oidc')).toBe('注册 OpenID Connect 应用');
    await admin.click('#new-oidc');
    expect(await admin.textContent('label[for=redirectUris]')).toBe('重定向 URI');
    await admin.goto(`${bed.url}/admin/apps`);
    await admin.locator('#app-table a', { hasText: 'Docs' }).click();
    expect(await admin.textContent('#assignments-title')).toBe('分配');
    await admin.click('#lang-en');
    await admin.waitForSelector('#assignments-title');
    expect(unexpected(problems, REFUSED_INPUT)).toEqual([]);
  });
});

describe('the apps pages by administrator role', () => {
  it('lets an app_admin register apps', async () => {
    const { page } = await openBrowser();
    const problems = watchProblems(page);
    await signInAt(page, bed, '/admin', 'appadmin', PASSWORD);
    await page.click('#nav-apps');
    await page.waitForSelector('#new-oidc');
    // The console's own app holds roles an app_admin lacks: the page offers no change to it.
    await page.locator('#app-table a', { hasText: 'OneID console' }).click();
    await page.waitForSelector('#managed-hint');
    expect(await page.locator('#edit-form, #delete-app, #role-form, #assign-form').count()).toBe(0);
    expect(await page.inputValue('#client-id')).toBe('oneid-console');
    expect(unexpected(problems)).toEqual([]);
  });

  it("shows a user_admin apps read-only, and refuses a user_admin's forged post to register one", async () => {
    const { page } = await openBrowser();
    const problems = watchProblems(page);
    await signInAt(page, bed, '/admin', 'useradmin', PASSWORD);
    await page.goto(`${bed.url}/admin/apps`);
    expect(await page.locator('#new-oidc, #new-saml').count()).toBe(0);
    await page.locator('#app-table a', { hasText: 'Docs' }).click();
    await page.waitForSelector('#app-facts');
    expect(await page.locator('#edit-form, #rotate-secret, #delete-app, #role-form, #assign-form').count()).toBe(0);

    const before = await appCount();
    // Without the page's CSRF token the post is refused before any role is looked at.
    const noToken = await page.evaluate(async () => (await fetch('/admin/apps/new', {
      method: 'POST', body: new URLSearchParams({ name: 'Forged', redirectUris: 'https://evil.example/cb' }),
    })).status);
    expect(noToken).toBe(403);
    const forged = await page.evaluate(async () => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const res = await fetch('/admin/apps/new', {
        method: 'POST', body: new URLSearchParams({ _csrf: token, name: 'Forged', redirectUris: 'https://evil.example/cb' }),
      });
      return { status: res.status, body: await res.text() };
    });
    expect(forged.status).toBe(403);
    expect(forged.body).toContain('Your administrator roles do not allow this.');
    expect(await appCount()).toBe(before);
    expect(unexpected(problems, [/^403 .*\/admin\/apps\/new$/, /status of 403 \(Forbidden\)/])).toEqual([]);
  });
});
