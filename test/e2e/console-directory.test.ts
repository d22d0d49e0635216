// The console's Departments and Groups pages in a real Chromium, against OneID on PostgreSQL: a
// department tree built and re-shaped by clicking (a move under the department's own sub-department
// is refused with a clear message), members and the manager; groups with bulk add by pasting and
// bulk remove by checkboxes, each line's outcome shown; an auditor sees everything but can change
// nothing (no controls, and a forged post is refused); both languages.
import { randomUUID } from 'node:crypto';
import knex from 'knex';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { setupFirstAdmin, signInAt, startTestbed, watchProblems, type ConsoleTestbed } from '../helpers/console.ts';

let bed: ConsoleTestbed;
let admin: Page;
let problems: string[];
const ids: Record<string, string> = {};

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_directory');
  // Audrey signs in (a password: through the CLI); the others are only listed and picked, so
  // they are arranged in SQL, which is quicker than a CLI process each.
  const [made, browser] = await Promise.all([
    bed.cli(['users', 'create', '--username', 'audrey', '--email', 'audrey@example.com', '--name', 'Audrey Auditor', '--password', 'correct-horse-battery']),
    openBrowser(),
  ]);
  if (made.code !== 0) throw new Error(made.stderr);
  const db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 1 } });
  try {
    await db('users').insert([['ann', 'Ann Archer'], ['bob', 'Bob Baker'], ['cy', 'Cy Cole']].map(([username, name]) => ({
      id: randomUUID(), username, email: `${username}@example.com`, emails: JSON.stringify([{ value: `${username}@example.com`, primary: true }]), display_name: name,
    })));
    // An auditor (giving admin roles through the console needs an MFA sign-in).
    await db('users').where({ username: 'audrey' }).update({ admin_roles: ['auditor'] });
  } finally {
    await db.destroy();
  }
  admin = browser.page;
  admin.on('dialog', (d) => void d.accept());
  problems = watchProblems(admin);
  await setupFirstAdmin(admin, bed);
}, 90000);

afterAll(async () => {
  await closeAllBrowsers();
  await bed?.stop();
});

/**
 * What went wrong on the page besides the refusals a step expects (`expected`: status codes of
 * answers the test asked for, which Chromium also logs as failed resources); clears the list.
 */
function unexpected(seen: string[], ...expected: number[]): string[] {
  const left = seen.filter((p) => !expected.some((code) => p.startsWith(`${code} `) || p.includes(`status of ${code} `)));
  seen.length = 0;
  return left;
}

const idFromUrl = (page: Page): string => /\/admin\/departments\/([0-9a-f-]{36})/.exec(page.url())![1]!;

/** Creates a sub-department from its parent's page and returns its id. */
async function createSub(parentId: string, name: string): Promise<string> {
  await admin.goto(`${bed.url}/admin/departments/${parentId}`);
  await admin.fill('#sub-name', name);
  await admin.click('#create-sub button[type=submit]');
  await admin.waitForURL(/done=created/);
  await admin.click(`#subs a:text-is("${name}")`);
  await admin.waitForURL(/\/admin\/departments\/[0-9a-f-]{36}$/);
  return idFromUrl(admin);
}

async function createTop(name: string): Promise<string> {
  await admin.goto(`${bed.url}/admin/departments`);
  await admin.fill('#new-dept-name', name);
  await admin.click('#create-department button[type=submit]');
  await admin.waitForURL(/\/admin\/departments\?open=.*done=created/);
  return /open=([0-9a-f-]{36})/.exec(admin.url())![1]!;
}

/** Picks `name` as the new parent in the move form and submits it. */
async function moveUnder(name: string): Promise<void> {
  await admin.fill('#parent-q', name.slice(0, 4));
  await admin.check(`#parent-choices input[data-name="${name}"]`);
  await admin.click('#move button[type=submit]');
}

describe('the Departments pages', () => {
  it('builds a tree, moves a subtree under another department, and refuses a move under its own descendant', async () => {
    ids.A = await createTop('Alpha');
    ids.B = await createSub(ids.A, 'Bravo');
    ids.C = await createSub(ids.B, 'Charlie');
    ids.D = await createTop('Delta');

    // The tree, opened down to Charlie: Alpha > Bravo > Charlie, with counts.
    await admin.goto(`${bed.url}/admin/departments?open=${ids.C}`);
    expect(await admin.isVisible(`#dept-${ids.A} #dept-${ids.B} #dept-${ids.C}`)).toBe(true);
    expect(await admin.textContent(`#dept-${ids.A} > details > summary`)).toContain('1 sub-departments');
    // Closed levels load when expanded (by keyboard too: a summary is a button).
    await admin.goto(`${bed.url}/admin/departments`);
    expect(await admin.isVisible(`#dept-${ids.B}`)).toBe(false);
    await admin.focus(`#dept-${ids.A} > details > summary`);
    await admin.keyboard.press('Enter');
    await admin.waitForSelector(`#dept-${ids.A} #dept-${ids.B}`);

    // Move Bravo (with Charlie) under Delta.
    await admin.goto(`${bed.url}/admin/departments/${ids.B}`);
    await moveUnder('Delta');
    await admin.waitForURL(/done=moved/);
    expect(await admin.textContent('#notice')).toContain('Moved');
    expect(await admin.textContent('#breadcrumb')).toMatch(/Delta\s*›\s*Bravo/);
    await admin.click('#show-in-tree');
    await admin.waitForSelector(`#dept-${ids.D} #dept-${ids.B} #dept-${ids.C}`, { state: 'attached' });
    expect(await admin.$(`#dept-${ids.A} details`)).toBeNull();
    expect(await admin.$(`#dept-${ids.A} #dept-${ids.B}`)).toBeNull();

    // Delta under Charlie (its own descendant) is refused, clearly, and nothing moves.
    await admin.goto(`${bed.url}/admin/departments/${ids.D}`);
    await moveUnder('Charlie');
    await admin.waitForSelector('#flash #problem');
    expect(await admin.textContent('#flash #problem')).toContain('cannot be moved into itself or under one of its own sub-departments');
    await admin.reload();
    expect((await admin.textContent('#breadcrumb'))!.replace(/\s+/g, ' ').trim()).toMatch(/Departments › Delta$/);
    expect(unexpected(problems, 400)).toEqual([]);
  }, 60000);

  it('adds and removes members, sets the manager, and deletes only an empty department', async () => {
    await admin.goto(`${bed.url}/admin/departments/${ids.D}`);
    expect(await admin.textContent('#no-members')).toContain('Nobody');
    await admin.fill('#member-q', 'ann');
    await admin.click('#member-results button[data-user="ann"]');
    await admin.waitForURL(/done=added/);
    expect(await admin.textContent('#members tr[data-username="ann"]')).toContain('Ann Archer');
    expect(await admin.textContent('#members-total')).toBe('1');
    await admin.fill('#member-q', 'bob@');
    await admin.check('#member-results input[name=primary]');
    await admin.click('#member-results button[data-user="bob"]');
    await admin.waitForURL(/done=added/);
    expect(await admin.textContent('#members tr[data-username="bob"]')).toContain('Primary department');
    expect(await admin.textContent('#members-total')).toBe('2');

    await admin.click('#members tr[data-username="ann"] button');
    await admin.waitForURL(/done=removed/);
    expect(await admin.$('#members tr[data-username="ann"]')).toBeNull();
    expect(await admin.textContent('#members-total')).toBe('1');

    await admin.fill('#manager-q', 'cy');
    await admin.click('#manager-results button[data-user="cy"]');
    await admin.waitForURL(/done=manager/);
    expect(await admin.textContent('#manager')).toContain('Cy Cole');

    // Not empty: the API's 409 says what blocks it.
    await admin.click('#delete button');
    await admin.waitForSelector('#flash #problem');
    expect(await admin.textContent('#flash #problem')).toContain('1 people and 1 sub-departments');
    // Charlie is empty: deleted, back to its parent.
    await admin.goto(`${bed.url}/admin/departments/${ids.C}`);
    await admin.click('#delete button');
    await admin.waitForURL(new RegExp(`/admin/departments/${ids.B}\\?done=deleted`));
    expect(await admin.$('#subs')).toBeNull();
    expect(unexpected(problems, 409)).toEqual([]);
  }, 60000);
});

describe('the Groups pages', () => {
  it('creates a group, adds three people by pasting (an unknown line reported), and removes two with checkboxes', async () => {
    await admin.goto(`${bed.url}/admin/groups`);
    await admin.fill('#new-group-name', 'On call');
    await admin.fill('#new-group-description', 'Weekend rota');
    await admin.click('#create-group button[type=submit]');
    await admin.waitForURL(/\/admin\/groups\/[0-9a-f-]{36}\?done=created/);
    ids.G = /groups\/([0-9a-f-]{36})/.exec(admin.url())![1]!;
    expect(await admin.textContent('#group-name')).toBe('On call');

    await admin.fill('#bulk-lines', 'ann\nBOB@example.com\n\ncy\nnobody-such\n');
    await admin.click('#bulk-add button[type=submit]');
    await admin.waitForSelector('#batch-results');
    const outcomes = await admin.$$eval('#batch-results tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent!.trim())));
    expect(outcomes).toEqual([['ann', 'Added'], ['BOB@example.com', 'Added'], ['cy', 'Added'], ['nobody-such', 'Not found']]);
    expect(await admin.textContent('#batch-title')).toBe('3 added');
    expect(await admin.textContent('#members-total')).toBe('3');

    // Select all ticks every box of the page; then only two stay ticked.
    await admin.check('#select-all');
    expect(await admin.$$eval('#members input[name=userId]', (boxes) => boxes.every((b) => (b as HTMLInputElement).checked))).toBe(true);
    await admin.uncheck('#select-all');
    await admin.check('#members tr[data-username="ann"] input[name=userId]');
    await admin.check('#members tr[data-username="cy"] input[name=userId]');
    await admin.click('#remove-selected');
    await admin.waitForSelector('#batch-results');
    expect(await admin.textContent('#batch-title')).toBe('2 removed');
    expect((await admin.$$eval('#batch-results tbody tr td:first-child', (tds) => tds.map((td) => td.textContent!.trim()))).sort()).toEqual(['Ann Archer (ann)', 'Cy Cole (cy)']);
    expect(await admin.textContent('#members-total')).toBe('1');
    expect(await admin.$$eval('#members tbody tr', (rows) => rows.map((r) => r.getAttribute('data-username')))).toEqual(['bob']);

    // Add one through the search picker.
    await admin.goto(`${bed.url}/admin/groups/${ids.G}`);
    await admin.fill('#member-q', 'Cy');
    await admin.click('#member-results button[data-user="cy"]');
    await admin.waitForURL(/done=added/);
    expect(await admin.textContent('#members-total')).toBe('2');

    // The list: searched, with its total.
    await admin.goto(`${bed.url}/admin/groups?q=on`);
    expect(await admin.textContent('#groups-total')).toContain('1 in total');
    expect(await admin.textContent('#groups')).toContain('Weekend rota');
    await admin.goto(`${bed.url}/admin/groups?q=zzz`);
    expect(await admin.textContent('#groups-total')).toContain('0 in total');
    expect(unexpected(problems)).toEqual([]);

    // A post without the form's CSRF token is refused, even for a super admin, and adds nobody.
    const status = await admin.evaluate(async (g) => {
      const res = await fetch(`/admin/groups/${g}/members/bulk-add`, { method: 'POST', body: new URLSearchParams({ lines: 'ann' }) });
      await res.text();
      return res.status;
    }, ids.G!);
    expect(status).toBe(403);
    await admin.goto(`${bed.url}/admin/groups/${ids.G}`);
    expect(await admin.textContent('#members-total')).toBe('2');
    expect(unexpected(problems, 403)).toEqual([]);
  }, 60000);

  it('renames and deletes a group after confirming', async () => {
    await admin.goto(`${bed.url}/admin/groups`);
    await admin.fill('#new-group-name', 'Short-lived');
    await admin.click('#create-group button[type=submit]');
    await admin.waitForURL(/done=created/);
    await admin.fill('#rename-name', 'On call');
    await admin.click('#rename button[type=submit]');
    await admin.waitForSelector('#flash #problem');
    expect(await admin.textContent('#flash #problem')).toContain('already exists');
    await admin.fill('#rename-name', 'Brief');
    await admin.click('#rename button[type=submit]');
    await admin.waitForURL(/done=saved/);
    expect(await admin.textContent('#group-name')).toBe('Brief');
    await admin.click('#delete button');
    await admin.waitForURL(/\/admin\/groups\?done=deleted/);
    expect(await admin.textContent('#groups')).not.toContain('Brief');
    expect(unexpected(problems, 409)).toEqual([]);
  }, 60000);
});

describe('both languages', () => {
  it('renders the pages in Simplified Chinese', async () => {
    await admin.goto(`${bed.url}/admin/departments?open=${ids.B}`);
    await admin.click('#lang-zh');
    await admin.waitForURL(/\/admin\/departments/);
    expect(await admin.textContent('h1')).toBe('部门');
    expect(await admin.textContent(`#dept-${ids.D} > details > summary`)).toContain('个下级部门');
    await admin.goto(`${bed.url}/admin/departments/${ids.D}`);
    expect(await admin.textContent('#move-title')).toBe('移动');
    await admin.goto(`${bed.url}/admin/groups/${ids.G}`);
    expect(await admin.textContent('#bulk-title')).toBe('批量添加');
    await admin.click('#lang-en');
    await admin.waitForURL(/\/admin\/groups/);
    expect(await admin.textContent('#bulk-title')).toBe('Add many people');
    expect(unexpected(problems)).toEqual([]);
  }, 60000);
});

describe('an auditor', () => {
  it('sees the pages without create or edit controls, and a forged post is refused and changes nothing', async () => {
    const { page } = await openBrowser();
    const seen = watchProblems(page);
    await signInAt(page, bed, '/admin/departments', 'audrey', 'correct-horse-battery');
    await page.goto(`${bed.url}/admin/departments?open=${ids.B}`);
    expect(await page.isVisible(`#dept-${ids.D} #dept-${ids.B}`)).toBe(true);
    expect(await page.$('#create-department')).toBeNull();
    await page.goto(`${bed.url}/admin/departments/${ids.D}`);
    expect(await page.textContent('#members')).toContain('Bob Baker');
    for (const control of ['#create-sub', '#rename', '#move', '#delete', '#member-q', '#manager-q', '#members form']) {
      expect(await page.$(control)).toBeNull();
    }
    await page.goto(`${bed.url}/admin/groups/${ids.G}`);
    expect(await page.textContent('#members-total')).toBe('2');
    for (const control of ['#bulk-add', '#remove-selected', '#select-all', '#member-q', '#rename', '#delete']) {
      expect(await page.$(control)).toBeNull();
    }
    await page.goto(`${bed.url}/admin/groups`);
    expect(await page.$('#create-group')).toBeNull();

    // Forged posts with a valid CSRF token: the API's role check refuses them.
    const forged = await page.evaluate(async ({ d, a, g }) => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const post = async (path: string, fields: Record<string, string>) => {
        const res = await fetch(path, { method: 'POST', body: new URLSearchParams({ _csrf: token, ...fields }) });
        await res.text();
        return res.status;
      };
      return [
        await post('/admin/groups', { name: 'Forged' }),
        await post(`/admin/departments/${d}/move`, { parentId: a }),
        await post(`/admin/groups/${g}/members/bulk-add`, { lines: 'ann' }),
        await post(`/admin/departments/${d}/delete`, {}),
      ];
    }, { d: ids.B!, a: ids.A!, g: ids.G! });
    expect(forged).toEqual([403, 403, 403, 403]);
    await page.goto(`${bed.url}/admin/groups?q=Forged`);
    expect(await page.textContent('#groups-total')).toContain('0 in total');
    await page.goto(`${bed.url}/admin/groups/${ids.G}`);
    expect(await page.textContent('#members-total')).toBe('2');
    await page.goto(`${bed.url}/admin/departments/${ids.B}`);
    expect((await page.textContent('#breadcrumb'))!.replace(/\s+/g, ' ')).toContain('Delta › Bravo');
    expect(unexpected(seen, 403)).toEqual([]);
  }, 60000);
});
