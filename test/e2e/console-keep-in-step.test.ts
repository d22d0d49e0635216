// The console's pages for keeping apps in step (#21), in a real Chromium against a real OneID with
// its job queue (fast retries, JOBS_RETRY_LIMIT=1) and a receiver on a port: an admin offboards a
// person from their page and watches the receipt settle by itself (an app with a back-channel
// logout endpoint acknowledges, an app without one is not applicable); registers a webhook, sees
// its secret once, pings it and sees the signed delivery delivered, then redelivers it; a webhook
// whose receiver answers 503 dead-letters its job, which the Settings page lists and sends back;
// roles without the rights see neither the Webhooks section nor the Offboard button and are
// refused when they post anyway; the pages in Simplified Chinese. Screenshots go to test-artifacts/.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import knex, { type Knex } from 'knex';
import type { Page } from 'playwright-core';
import { closeAllBrowsers, openBrowser } from '../helpers/chromium.ts';
import { firstAdminConsole, signInAt, startTestbed, watchProblems, type ConsoleTestbed, screenshot, noticeOf } from '../helpers/console.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { verifyWebhookSignature } from '../../src/webhooks/signature.ts';
import { until } from '../helpers/until.ts';

const PASSWORD = 'correct-horse-battery';

interface Received { path: string; headers: http.IncomingHttpHeaders; body: string }

/** The apps' and webhooks' endpoint: records every request; a path answers `status[path]` or 200, after `delay[path]` ms. */
function startReceiver() {
  const received: Received[] = [];
  const status = new Map<string, number>();
  const delay = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      setTimeout(() => res.writeHead(status.get(path) ?? 200, { 'content-type': 'text/plain' }).end('ok'), delay.get(path) ?? 0);
    });
  });
  return {
    received, status, delay, server,
    listen: () => new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`))),
    on: (path: string) => received.filter((r) => r.path === path),
  };
}


let bed: ConsoleTestbed;
let db: Knex;
let receiver: ReturnType<typeof startReceiver>;
let origin: string;
let superApi: AdminClient;
let leo: string;

async function person(username: string, adminRoles: string[] = []): Promise<string> {
  const made = await bed.cli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password', PASSWORD, '--name', `${username[0]!.toUpperCase()}${username.slice(1)} Tester`]);
  if (made.code !== 0) throw new Error(made.stderr);
  // Arranging the test: admin roles straight in the database (giving them in the console needs an MFA sign-in).
  if (adminRoles.length) await db('users').where({ id: made.json.id }).update({ admin_roles: db.raw('?::text[]', [adminRoles]) });
  return made.json.id as string;
}



beforeAll(async () => {
  receiver = startReceiver();
  origin = await receiver.listen();
  bed = await startTestbed('oneid_test_console_keep_in_step', {
    JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_HEARTBEAT_SECONDS: '10', JOBS_RETRY_LIMIT: '1',
  });
  db = knex({ client: 'pg', connection: bed.database.url, pool: { min: 0, max: 2 } });
  let appApi: AdminClient;
  [leo, , , appApi, superApi] = await Promise.all([
    person('leo'), person('uma', ['user_admin']), person('otto', ['auditor']),
    adminClient(bed.url, bed.env, ['app_admin']), adminClient(bed.url, bed.env, ['super_admin']),
  ]);
  for (const [name, extra] of [['Wiki', { backchannelLogoutUri: `${origin}/bc/wiki` }], ['Legacy', {}]] as const) {
    const res = await appApi.call('POST', '/apps', { name, redirectUris: ['http://127.0.0.1:9/callback'], access: 'everyone', ...extra });
    expect(res.status).toBe(201);
  }
}, 90000);

afterAll(async () => {
  await closeAllBrowsers();
  await db?.destroy();
  await bed?.stop();
  await new Promise((r) => receiver?.server.close(r));
});

describe('the console keeps apps in step', () => {
  let admin: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ page: admin, problems } = await firstAdminConsole(bed));
  }, 60000);

  it("offboards a person from their page, and the receipt settles by itself with each app's answer", async () => {
    await admin.goto(`${bed.url}/admin/people/${leo}`);
    expect(await admin.textContent('#no-receipts')).toContain('not been offboarded');
    expect(await admin.getAttribute('#person-offboard', 'class')).toBe('danger');
    // Wiki takes its time to answer, so the receipt is first shown waiting for it.
    receiver.delay.set('/bc/wiki', 3000);
    let asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await admin.click('#person-offboard');
    await admin.waitForURL(/\/admin\/people\/[0-9a-f-]{36}\/offboardings\/[0-9a-f-]{36}\?done=1$/);
    expect(asked).toContain('Offboard Leo Tester?');
    expect(await admin.textContent('#offboard-done')).toContain('offboarded');
    const receiptPath = new URL(admin.url()).pathname;

    // Wiki's logout token is sent by a job: the page refreshes its lines until Wiki has answered.
    expect(await admin.getAttribute('#receipt', 'data-settled')).toBe('false');
    expect(await admin.textContent('#receipt-progress')).toContain('refreshes by itself');
    expect(await admin.getAttribute('tbody[data-app="Wiki"] tr[data-action="oidc_backchannel_logout"]', 'data-state')).toBe('pending');
    expect(await admin.textContent('#receipt-status')).toBe('In progress');
    const wikiLogout = admin.locator('tbody[data-app="Wiki"] tr[data-action="oidc_backchannel_logout"]');
    await admin.waitForSelector('tbody[data-app="Wiki"] tr[data-action="oidc_backchannel_logout"][data-state="acknowledged"]', { timeout: 30000 });
    expect(await wikiLogout.locator('.line-state').textContent()).toBe('Acknowledged');
    expect(await wikiLogout.textContent()).toContain('HTTP 200');
    expect(receiver.on('/bc/wiki')).toHaveLength(1);
    const legacyLogout = admin.locator('tbody[data-app="Legacy"] tr[data-action="oidc_backchannel_logout"]');
    expect(await legacyLogout.getAttribute('data-state')).toBe('not_applicable');
    expect(await legacyLogout.locator('.line-state').textContent()).toBe('Not applicable');
    expect(await legacyLogout.textContent()).toContain('did not register a back-channel logout URI');
    expect(await admin.getAttribute('tbody[data-app="Legacy"] tr[data-action="tokens_revoked"]', 'data-state')).toBe('done');
    await admin.waitForSelector('#receipt[data-settled="true"]');
    expect(await admin.textContent('#receipt-status')).toBe('Complete');

    // Settled: the page stops asking.
    let polls = 0;
    const count = (r: { url(): string }) => { if (new URL(r.url()).pathname === receiptPath) polls += 1; };
    admin.on('request', count);
    await admin.waitForTimeout(4500);
    admin.off('request', count);
    expect(polls).toBe(0);
    await screenshot(admin, 'console-offboarding-receipt');

    // The person is suspended, and their page links the receipt.
    await admin.click('#to-person');
    await admin.waitForSelector('#receipt-list');
    expect(await admin.textContent('#person-status')).toBe('Suspended');
    await admin.click('#receipt-list tbody tr a');
    await admin.waitForURL(`${bed.url}${receiptPath}`);
    expect(await admin.isVisible('#offboard-done')).toBe(false);
    expect(await admin.getAttribute('#receipt', 'data-settled')).toBe('true');
    expect(problems).toEqual([]);
  }, 60000);

  it('registers a webhook, shows its secret once, pings, redelivers, disables and rotates it: every delivery verifies with the secret shown', async () => {
    await admin.click('#nav-webhooks');
    await admin.waitForURL(`${bed.url}/admin/webhooks`);
    expect(await admin.textContent('#no-webhooks')).toContain('No webhooks');
    // The receiver is on this machine: private destinations must be allowed first.
    expect(await admin.textContent('#internal-state')).toContain('refused');
    await admin.click('#toggle-internal');
    expect(await noticeOf(admin, 'settings_saved')).toContain('saved');
    expect(await admin.textContent('#internal-state')).toContain('allowed');

    await admin.click('#new-webhook');
    // The API's refusal shows in the page's message area; what was typed stays in the form.
    await admin.fill('#url', 'http://hooks.example.com/in');
    await admin.check('#type-all');
    await admin.click('#create-webhook');
    await admin.waitForSelector('#flash #console-error');
    expect(await admin.textContent('#flash #console-error')).toContain('https');
    expect(await admin.isChecked('#type-all')).toBe(true);
    expect(admin.url()).toBe(`${bed.url}/admin/webhooks/new`);
    await admin.uncheck('#type-all');
    await admin.fill('#url', `${origin}/hook`);
    await admin.fill('#description', 'Team chat bridge');
    await admin.check('#type-user-all');
    await admin.fill('#eventTypesText', 'group.member_added');
    await admin.click('#create-webhook');
    await admin.waitForSelector('#webhook-secret');
    const secret = (await admin.textContent('#webhook-secret'))!.trim();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(await admin.getAttribute('#copy-webhook-secret', 'data-copy')).toBe('webhook-secret');
    expect(await admin.textContent('#verify-scheme')).toContain('HMAC-SHA256');
    expect(admin.url()).toMatch(/\/admin\/webhooks\/[0-9a-f-]{36}$/);
    expect(admin.url()).not.toContain(secret);
    await screenshot(admin, 'console-webhook-secret');

    // Its own page never shows the secret again.
    await admin.click('#to-webhook');
    await admin.waitForSelector('#webhook-url');
    expect(await admin.textContent('#webhook-types')).toBe('user.*, group.member_added');
    expect(await admin.textContent('#secret-hidden')).toContain('shown once');
    expect(await admin.content()).not.toContain(secret);
    await admin.reload();
    expect(await admin.content()).not.toContain(secret);

    await admin.click('#ping-webhook');
    expect(await noticeOf(admin, 'pinged')).toContain('test event');
    // The log refreshes itself while the delivery is pending.
    const ping = admin.locator('#delivery-table tr[data-event-type="webhook.ping"]');
    await admin.waitForSelector('#delivery-table tr[data-event-type="webhook.ping"][data-status="delivered"]', { timeout: 30000 });
    expect(await ping.locator('.badge').textContent()).toBe('Delivered');
    expect(await ping.locator('.http-status').textContent()).toBe('200');
    expect(await ping.locator('.attempts').textContent()).toBe('1');
    const got = receiver.on('/hook');
    expect(got).toHaveLength(1);
    expect(verifyWebhookSignature(secret, got[0]!.headers as Record<string, string>, got[0]!.body)).toBe(true);
    expect(verifyWebhookSignature(secret, got[0]!.headers as Record<string, string>, got[0]!.body.replace('ping', 'pong'))).toBe(false);

    await ping.locator('button.redeliver').click();
    expect(await noticeOf(admin, 'redelivered')).toContain('queued again');
    await until('the redelivery delivered', async () => (await admin.locator('#delivery-table tr[data-status="delivered"]').count()) === 2);
    const [first, again] = receiver.on('/hook');
    expect(again!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(verifyWebhookSignature(secret, again!.headers as Record<string, string>, again!.body)).toBe(true);
    await screenshot(admin, 'console-webhook-deliveries');

    // Disabled, it cannot be pinged; enabled again, it can.
    await admin.click('#disable-webhook');
    expect(await noticeOf(admin, 'disabled')).toContain('disabled');
    expect(await admin.textContent('#webhook-status')).toBe('Disabled');
    expect(await admin.locator('#ping-webhook').count()).toBe(0);
    await admin.click('#enable-webhook');
    expect(await noticeOf(admin, 'enabled')).toContain('enabled');

    // A rotated secret is shown once too; the next delivery verifies with it.
    await admin.click('#rotate-webhook-secret');
    await admin.waitForSelector('#webhook-secret');
    const rotated = (await admin.textContent('#webhook-secret'))!.trim();
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);
    expect(await admin.textContent('#rotation-overlap')).toContain('24 hours');
    await admin.click('#to-webhook');
    await admin.waitForSelector('#ping-webhook');
    expect(await admin.content()).not.toContain(rotated);
    await admin.click('#ping-webhook');
    await noticeOf(admin, 'pinged');
    const third = await until('the third delivery', () => receiver.on('/hook')[2]);
    expect(verifyWebhookSignature(rotated, third.headers as Record<string, string>, third.body)).toBe(true);
    await admin.waitForSelector('#deliveries:not([hx-trigger])');
    expect(problems.filter((p) => !/^400 .*\/admin\/webhooks\/new$/.test(p) && !/status of 400/.test(p))).toEqual([]);
    problems.length = 0;
  }, 60000);

  it('lists dead-lettered webhook deliveries under Settings, Retry and Retry all send them back, and the webhook is deleted', async () => {
    receiver.status.set('/down', 503);
    const made = await superApi.call('POST', '/webhooks', { url: `${origin}/down`, eventTypes: ['user.*'], description: 'down' });
    expect(made.status).toBe(201);
    for (let i = 0; i < 3; i += 1) expect((await superApi.call('POST', `/webhooks/${made.body.webhook.id}/ping`)).status).toBe(202);
    // JOBS_RETRY_LIMIT=1: one retry, then each job goes to the dead-letter queue.
    await until('the deliveries to go dead', async () => {
      const items = (await superApi.call('GET', `/webhooks/${made.body.webhook.id}/deliveries`)).body.items as { status: string }[];
      return items.length === 3 && items.every((d) => d.status === 'dead');
    });
    await until('the dead letters', async () => ((await superApi.call('GET', '/jobs/dead-letters')).body.items as unknown[]).length === 3);

    await admin.click('#nav-settings');
    await admin.click('#to-dead-letters');
    await admin.waitForSelector('#dead-letters');
    expect(await admin.locator('#dead-letters tbody tr[data-queue="webhook.deliver"]').count()).toBe(3);
    const row = admin.locator('#dead-letters tbody tr').first();
    expect(await row.textContent()).toContain('Webhook delivery');
    expect(await row.textContent()).toContain('503');
    await screenshot(admin, 'console-dead-letters');

    const before = receiver.on('/down').length;
    receiver.status.set('/down', 200);
    const retriedId = await row.getAttribute('data-job');
    await row.locator('button.retry').click();
    expect(await noticeOf(admin, 'retried')).toContain('sent back');
    expect(await admin.locator('#dead-letters tbody tr').count()).toBe(2);
    expect(await admin.locator(`#dead-letters tr[data-job="${retriedId}"]`).count()).toBe(0);
    await until('the retried delivery', () => receiver.on('/down').length > before);
    let asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await admin.click('#retry-all');
    expect(await noticeOf(admin, 'retried_all')).toContain('2 jobs were sent back');
    expect(asked).toContain('all 2 failed jobs');
    expect(await admin.textContent('#no-dead-letters')).toContain('No failed jobs');
    await until('the retried deliveries', () => receiver.on('/down').length >= before + 3);
    await until('every delivery delivered', async () => {
      const items = (await superApi.call('GET', `/webhooks/${made.body.webhook.id}/deliveries`)).body.items as { status: string }[];
      return items.every((d) => d.status === 'delivered');
    });

    // The failing receiver's webhook is deleted (after asking), with its log.
    await admin.goto(`${bed.url}/admin/webhooks/${made.body.webhook.id}`);
    asked = '';
    admin.once('dialog', (d) => { asked = d.message(); });
    await admin.click('#delete-webhook');
    expect(await noticeOf(admin, 'deleted')).toContain('deleted');
    expect(asked).toContain(`${origin}/down`);
    expect(await admin.locator('#webhook-table tbody tr').count()).toBe(1);
    expect((await superApi.call('GET', `/webhooks/${made.body.webhook.id}`)).status).toBe(404);
    expect(problems).toEqual([]);
  }, 60000);

  it('hides the Webhooks section and the Offboard button from roles without the rights, and refuses their posts', async () => {
    // A user_admin may offboard but not read webhooks.
    const { page: uma } = await openBrowser();
    const umaProblems = watchProblems(uma);
    await signInAt(uma, bed, `/admin/people/${leo}`, 'uma', PASSWORD);
    expect(await uma.isVisible('#person-offboard')).toBe(true);
    expect(await uma.locator('#nav-webhooks').count()).toBe(0);
    const refused = await uma.goto(`${bed.url}/admin/webhooks`);
    expect(refused!.status()).toBe(403);
    expect(umaProblems.filter((p) => !/^403 .*\/admin\/webhooks$/.test(p) && !/status of 403/.test(p))).toEqual([]);

    // An auditor reads webhooks and receipts, changes neither, and cannot offboard.
    const { page: otto } = await openBrowser();
    const ottoProblems = watchProblems(otto);
    await signInAt(otto, bed, `/admin/people/${leo}`, 'otto', PASSWORD);
    expect(await otto.locator('#person-offboard').count()).toBe(0);
    expect(await otto.locator('#receipt-list tbody tr').count()).toBe(1);
    await otto.click('#nav-webhooks');
    await otto.waitForSelector('#webhook-table');
    expect(await otto.locator('#new-webhook').count()).toBe(0);
    expect(await otto.locator('#toggle-internal').count()).toBe(0);
    await otto.locator('#webhook-table a', { hasText: '/hook' }).click();
    await otto.waitForSelector('#delivery-table');
    for (const id of ['#ping-webhook', '#rotate-webhook-secret', '#delete-webhook', '#disable-webhook', 'button.redeliver']) {
      expect(await otto.locator(id).count()).toBe(0);
    }
    expect(ottoProblems).toEqual([]);
    const hookId = new URL(otto.url()).pathname.split('/').pop()!;
    const forged = await otto.evaluate(async ({ id, hook }) => {
      const token = document.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const post = (path: string) => fetch(path, { method: 'POST', body: new URLSearchParams({ _csrf: token }) }).then((r) => r.status);
      return [await post(`/admin/people/${id}/offboard`), await post(`/admin/webhooks/${hook}/rotate`), await post('/admin/settings/dead-letters/retry')];
    }, { id: leo, hook: hookId });
    expect(forged).toEqual([403, 403, 403]);
    const receipts = await db('offboardings').where({ user_id: leo }).count<{ n: string }[]>('* as n');
    expect(Number(receipts[0]!.n)).toBe(1);
  }, 60000);

  it('shows the receipt, the webhooks and the dead letters in Simplified Chinese', async () => {
    const { page: zh } = await openBrowser({ locale: 'zh-CN' });
    const zhProblems = watchProblems(zh);
    await signInAt(zh, bed, '/admin/webhooks', 'grace', PASSWORD);
    expect(await zh.textContent('h1')).toBe('Webhook');
    expect(await zh.textContent('#internal-state')).toContain('允许');
    await zh.goto(`${bed.url}/admin/people/${leo}`);
    expect(await zh.textContent('#person-offboard')).toBe('离职处理');
    await zh.click('#receipt-list tbody tr a');
    await zh.waitForSelector('#receipt-title');
    expect(await zh.textContent('#receipt-title')).toContain('离职回执');
    expect(await zh.textContent('tbody[data-app="Legacy"] tr[data-action="oidc_backchannel_logout"]')).toContain('该应用未注册后端通道退出登录地址');
    expect(await zh.textContent('tbody[data-app="Wiki"] tr[data-action="oidc_backchannel_logout"] .line-state')).toBe('已确认');
    await screenshot(zh, 'console-offboarding-receipt-zh');
    await zh.goto(`${bed.url}/admin/settings/dead-letters`);
    expect(await zh.textContent('h1')).toBe('失败的后台任务');
    expect(zhProblems).toEqual([]);
  }, 60000);
});
