// The console's audit log and settings in a real browser, against OneID on PostgreSQL: a SCIM token
// made in the console is shown once, works against /scim/v2 and stops working when revoked; a key
// rotation changes the active key and is audited; the audit log lists, filters, pages and
// verifies the chain (and shows a break made by SQL); an auditor reads both pages but changes
// nothing, even with a forged post; both languages render.
import { mkdir } from 'node:fs/promises';
import pg from 'pg';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { firstAdminConsole, signInAt, startTestbed, watchProblems, type ConsoleTestbed } from '../helpers/console.ts';

let bed: ConsoleTestbed;
let sql: pg.Client;
let admin: Page;
let adminProblems: string[];

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_audit');
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

/**
 * The problems left once the expected refusals are taken out: each answer with `status` at a URL
 * matching `url`, and the console line Chromium logs for it.
 */
function unexpected(problems: string[], status: number, url: RegExp): string[] {
  const expected = problems.filter((p) => p.startsWith(`${status} `) && url.test(p)).length;
  let consoleLines = expected;
  return problems.filter((p) => {
    if (p.startsWith(`${status} `) && url.test(p)) return false;
    if (consoleLines > 0 && p.includes(`status of ${status}`)) { consoleLines -= 1; return false; }
    return true;
  });
}

const scimUsers = async (token: string): Promise<number> =>
  (await fetch(`${bed.url}/scim/v2/Users`, { headers: { authorization: `Bearer ${token}`, accept: 'application/scim+json' } })).status;

/** The audit log's chainer runs about every quarter second: wait until nothing is pending. */
async function chained(): Promise<void> {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const { rows } = await sql.query('select count(*)::int as n from audit_pending');
    if (rows[0].n === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('audit events were not chained');
}

describe('console settings: SCIM tokens', () => {
  it('creates a token shown once, which works against SCIM until it is revoked', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    expect(await admin.textContent('h1')).toBe('Settings');
    expect(await admin.isVisible('#no-tokens')).toBe(true);

    // A name of spaces only: a clear message beside the field, nothing made.
    await admin.fill('#token-name', '   ');
    await admin.click('#create-token-submit');
    await admin.waitForSelector('#token-name-error');
    expect(await admin.isVisible('#new-token')).toBe(false);
    expect((await sql.query('select count(*)::int as n from scim_tokens')).rows[0].n).toBe(0);

    await admin.fill('#token-name', 'Workday <HR>');
    await admin.click('#create-token-submit');
    await admin.waitForSelector('#new-token');
    const token = (await admin.textContent('#new-token-value'))!.trim();
    expect(token).toMatch(/^oneid_scim_/);
    expect(await admin.textContent('#new-token')).toContain('Workday <HR>');
    expect(await admin.isVisible('#copy-token')).toBe(true);
    expect(await admin.textContent('#scim-tokens')).toContain('Workday <HR>');
    expect(await scimUsers(token)).toBe(200);

    // Shown once: a reload shows the token's row, never its secret.
    await admin.reload();
    expect(await admin.isVisible('#new-token')).toBe(false);
    expect(await admin.content()).not.toContain(token);
    expect(await admin.textContent('#scim-tokens')).toContain('Workday <HR>');

    await admin.click('#scim-tokens tr[data-name="Workday <HR>"] .revoke-token');
    await admin.waitForSelector('#token-revoked');
    expect(await admin.textContent('#scim-tokens tr[data-name="Workday <HR>"]')).toContain('Revoked');
    expect(await scimUsers(token)).toBe(401);
    // The expected 400 of the empty name, nothing else.
    expect(unexpected(adminProblems, 400, /\/admin\/settings\/scim-tokens$/)).toEqual([]);
  }, 30000);
});

describe('console settings: signing keys and policies', () => {
  it('shows the policies with the variables that set them, and rotates the keys (confirmed, audited)', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    expect(await admin.textContent('#policy-min-length')).toContain('8 characters');
    expect(await admin.textContent('#policy-min-length')).toContain('PASSWORD_MIN_LENGTH');
    expect(await admin.getAttribute('#policy-signin-default .value', 'data-level')).toBe('password');
    expect(await admin.textContent('#policy-signin-default')).toContain('SIGNIN_POLICY_DEFAULT');
    expect(await admin.textContent('#keys-restart')).toContain('restart');

    const activeEs = () => admin.getAttribute('#signing-keys tr[data-state=current][data-alg=ES256]', 'data-kid');
    const nextEs = await admin.getAttribute('#signing-keys tr[data-state=next][data-alg=ES256]', 'data-kid');
    const before = await activeEs();
    await admin.click('#rotate-keys');
    await admin.waitForSelector('#keys-rotated');
    expect(await activeEs()).toBe(nextEs);
    expect(await activeEs()).not.toBe(before);
    expect(await admin.getAttribute(`#signing-keys tr[data-kid="${before}"]`, 'data-state')).toBe('previous');
    // What the database holds says the same (this node signs with the new key after a restart).
    const { rows } = await sql.query("select kid from signing_keys where alg = 'ES256' and state = 'current'");
    expect(rows[0].kid).toBe(nextEs);

    await chained();
    await admin.goto(`${bed.url}/admin/audit?action=signing_keys.rotated`);
    const row = admin.locator('#audit-events tbody tr');
    expect(await row.count()).toBe(1);
    await row.locator('summary').click();
    expect(await row.locator('pre.json').first().textContent()).toContain(nextEs!);
    expect(adminProblems).toEqual([]);
  }, 30000);
});

describe('console audit log', () => {
  it('lists what was just done, filters by action and time, pages, and verifies the chain', async () => {
    // Enough events for two pages: people made with the CLI (one of them the auditor of the last test).
    const made = await Promise.all(['p0', 'p1', 'ada'].map((name) => bed.cli(['users', 'create', '--username', name, '--email', `${name}@example.com`, '--password', 'correct-horse-battery'])));
    expect(made.map((m) => m.code)).toEqual([0, 0, 0]);
    await sql.query(`insert into audit_events (id, occurred_at, actor_type, actor_id, action, target_type, target_id, changes)
      select gen_random_uuid(), now(), 'system', 'test', 'test.filler', 'thing', i::text, jsonb_build_object('i', i) from generate_series(1, 60) i`);
    await chained();

    await admin.goto(`${bed.url}/admin/audit`);
    expect(await admin.textContent('h1')).toBe('Audit log');
    const actions = await admin.locator('#audit-events tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')));
    expect(actions).toHaveLength(50);
    const seqs = await admin.locator('#audit-events tbody tr').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-seq'))));
    expect([...seqs].sort((a, b) => b - a)).toEqual(seqs); // newest first

    // Paging: the older page continues where the first stopped.
    await admin.click('#page-older');
    const older = await admin.locator('#audit-events tbody tr').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-seq'))));
    expect(older[0]).toBeLessThan(seqs[seqs.length - 1]!);
    await admin.click('#page-newest');
    expect(await admin.locator('#audit-events tbody tr').first().getAttribute('data-seq')).toBe(String(seqs[0]));

    // By action (exact, then a prefix).
    await admin.fill('#f-action', 'scim_token.created');
    await admin.click('#apply-filters');
    await admin.waitForURL(/action=scim_token.created/);
    expect(await admin.locator('#audit-events tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')))).toEqual(['scim_token.created']);
    // The event's changes are shown escaped (the name holds markup).
    const created = admin.locator('#audit-events tbody tr').first();
    await created.locator('summary').click();
    expect(await created.locator('pre.json').first().textContent()).toContain('"name": "Workday <HR>"');
    await admin.fill('#f-action', 'scim_token.*');
    await admin.click('#apply-filters');
    await admin.waitForURL(/action=scim_token/);
    expect(new Set(await admin.locator('#audit-events tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action'))))).toEqual(new Set(['scim_token.created', 'scim_token.revoked']));

    // By time: a window that ended before OneID started holds nothing; one from then on holds the event.
    await admin.fill('#f-to', '2020-01-01T00:00:00');
    await admin.click('#apply-filters');
    expect(await admin.isVisible('#no-events')).toBe(true);
    await admin.fill('#f-to', '');
    await admin.fill('#f-from', '2020-01-01T00:00:00');
    await admin.click('#apply-filters');
    expect(await admin.locator('#audit-events tbody tr').count()).toBe(2);
    // A time the API cannot read: said so, the filters kept.
    await admin.goto(`${bed.url}/admin/audit?action=user.created&from=yesterday`);
    expect(await admin.textContent('#filter-error')).toContain('since');
    expect(await admin.inputValue('#f-action')).toBe('user.created');

    // A row's actor is a link that filters by that actor.
    await admin.goto(`${bed.url}/admin/audit?action=user.created`);
    const p0 = admin.locator('#audit-events tbody tr').first();
    const actor = (await p0.locator('.event-actor').textContent())!;
    await p0.locator('.event-actor').click();
    await admin.waitForURL(/actor=/);
    expect(await admin.inputValue('#f-actor')).toBe(actor);
    expect(await admin.inputValue('#f-action')).toBe('user.created');
    expect(await admin.locator('#audit-events tbody tr').count()).toBeGreaterThanOrEqual(1);

    await admin.click('#verify-chain');
    await admin.waitForSelector('#chain-intact');
    const { rows } = await sql.query('select max(pos)::int as n from audit_chain');
    expect(await admin.textContent('#chain-intact')).toContain(`all ${rows[0].n} events`);
    // Without htmx (the form's plain GET), the same result comes as a page of its own.
    await admin.goto(`${bed.url}/admin/audit/verification`);
    expect(await admin.textContent('#chain-intact')).toContain('The chain is intact');
    // Going on from a position (the "continue" button's request) ends with the same result.
    await admin.goto(`${bed.url}/admin/audit/verification?after=2`);
    expect(await admin.textContent('#chain-intact')).toContain(`all ${rows[0].n} events`);
    expect(unexpected(adminProblems, 400, /from=yesterday/)).toEqual([]);
  }, 40000);

  it('shows where the chain breaks after a row is altered in the database', async () => {
    const { rows: [victim] } = await sql.query("select seq from audit_events where action = 'scim_token.created'");
    await sql.query("update audit_events set changes = jsonb_set(changes, '{name}', '\"Someone else\"') where seq = $1", [victim.seq]);
    try {
      await admin.goto(`${bed.url}/admin/audit`);
      await admin.click('#verify-chain');
      await admin.waitForSelector('#chain-broken');
      expect(await admin.textContent('#chain-broken')).toContain(`broken at event ${victim.seq}`);
      expect(await admin.getAttribute('#verification-result', 'data-ok')).toBe('false');
    } finally {
      await sql.query("update audit_events set changes = jsonb_set(changes, '{name}', '\"Workday <HR>\"') where seq = $1", [victim.seq]);
    }
    expect(adminProblems).toEqual([]);
  }, 20000);

  it('fits a phone\'s width (no sideways scrolling of the page; wide tables scroll in their frame)', async () => {
    await mkdir('test-artifacts', { recursive: true });
    await admin.setViewportSize({ width: 360, height: 740 });
    try {
      for (const path of ['/admin/audit', '/admin/settings']) {
        await admin.goto(`${bed.url}${path}`);
        expect([path, await admin.evaluate(() => document.documentElement.scrollWidth)]).toEqual([path, 360]);
        await admin.screenshot({ path: `test-artifacts/console-${path.split('/').pop()}-phone.png`, fullPage: true });
      }
    } finally {
      await admin.setViewportSize({ width: 1280, height: 800 });
    }
    for (const path of ['/admin/audit', '/admin/settings']) {
      await admin.goto(`${bed.url}${path}`);
      await admin.screenshot({ path: `test-artifacts/console-${path.split('/').pop()}-desktop.png`, fullPage: true });
    }
    expect(adminProblems).toEqual([]);
  }, 20000);

  it('refuses a rotation posted without the CSRF token, and rotates nothing', async () => {
    await admin.goto(`${bed.url}/admin/settings`);
    const before = (await sql.query('select kid, state from signing_keys order by kid')).rows;
    const status = await admin.evaluate(async () => {
      const res = await fetch('/admin/settings/keys/rotate', { method: 'POST', body: new URLSearchParams({}) });
      await res.text();
      return res.status;
    });
    expect(status).toBe(403);
    expect((await sql.query('select kid, state from signing_keys order by kid')).rows).toEqual(before);
    expect(unexpected(adminProblems, 403, /\/admin\/settings\/keys\/rotate$/)).toEqual([]);
  });

  it('renders both pages in Chinese', async () => {
    await admin.goto(`${bed.url}/admin/audit`);
    await admin.click('#lang-zh');
    await admin.waitForURL(/\/admin\/audit/);
    expect(await admin.textContent('h1')).toBe('审计日志');
    expect(await admin.textContent('#verify-chain')).toBe('校验哈希链');
    await admin.goto(`${bed.url}/admin/settings`);
    expect(await admin.textContent('h1')).toBe('设置');
    expect(await admin.textContent('#rotate-keys')).toBe('轮换密钥');
    expect(await admin.textContent('#policy-signin-default .value')).toBe('密码');
    await admin.click('#lang-en');
    await admin.waitForURL(/\/admin\/settings/);
    expect(await admin.textContent('h1')).toBe('Settings');
    expect(adminProblems).toEqual([]);
  }, 20000);
});

describe('an auditor', () => {
  it('reads the audit log and settings but has no controls, and a forged post is refused and changes nothing', async () => {
    await sql.query("update users set admin_roles = '{auditor}' where username = 'ada'");
    await sql.query("insert into scim_tokens (id, name, token_hash) values (gen_random_uuid(), 'Okta', 'x')");
    const { page } = await openBrowser();
    const problems = watchProblems(page);
    await signInAt(page, bed, '/admin/settings', 'ada', 'correct-horse-battery');
    await page.waitForSelector('#signing-keys');
    expect(await page.isVisible('#nav-settings')).toBe(true);
    expect(await page.isVisible('#nav-audit')).toBe(true);
    expect(await page.isVisible('#policy-min-length')).toBe(true);
    expect(await page.textContent('#scim-tokens')).toContain('Okta');
    expect(await page.locator('#rotate-keys, #create-token, .revoke-token').count()).toBe(0);

    const keysBefore = (await sql.query('select kid, state from signing_keys order by kid')).rows;
    const tokensBefore = (await sql.query('select count(*)::int as n from scim_tokens')).rows[0].n;
    const okta = (await sql.query("select id from scim_tokens where name = 'Okta'")).rows[0].id;
    const csrf = await page.getAttribute('meta[name=csrf-token]', 'content');
    const forged = await page.evaluate(async ({ csrf, okta }) => {
      const post = async (path: string, body: Record<string, string>) => {
        const res = await fetch(path, { method: 'POST', headers: { 'x-csrf-token': csrf! }, body: new URLSearchParams(body) });
        await res.text();
        return res.status;
      };
      return [
        await post('/admin/settings/keys/rotate', {}),
        await post('/admin/settings/scim-tokens', { name: 'mine' }),
        await post(`/admin/settings/scim-tokens/${okta}/revoke`, {}),
      ];
    }, { csrf, okta });
    expect(forged).toEqual([403, 403, 403]);
    expect((await sql.query('select kid, state from signing_keys order by kid')).rows).toEqual(keysBefore);
    expect((await sql.query('select count(*)::int as n from scim_tokens')).rows[0].n).toBe(tokensBefore);
    expect((await sql.query("select revoked_at from scim_tokens where name = 'Okta'")).rows[0].revoked_at).toBeNull();

    await page.goto(`${bed.url}/admin/audit?action=write.refused`);
    expect(await page.locator('#audit-events tbody tr').count()).toBeGreaterThanOrEqual(3);
    await page.click('#verify-chain');
    await page.waitForSelector('#chain-intact');
    expect(unexpected(problems, 403, /\/admin\/settings\//)).toEqual([]);
  }, 40000);
});
