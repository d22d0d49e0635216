// Black-box: webhooks on a real OneID server (PostgreSQL, the job queue with fast retries) and a
// real receiver on a port: signed events that verify with the secret shown once, retries with a
// delivery log, the dead state and redelivery, subscriptions, the destination rules, and roles.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { verifyWebhookSignature } from '../../src/webhooks/signature.ts';
import { until } from '../helpers/until.ts';

interface Received { path: string; headers: http.IncomingHttpHeaders; body: string; at: number }

/** A webhook receiver: records every request; each path answers from its script, then `fallback[path]` or 200. */
function startReceiver() {
  const received: Received[] = [];
  const scripts = new Map<string, number[]>();
  const fallback = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const status = scripts.get(path)?.shift() ?? fallback.get(path) ?? 200;
      // An answer that echoes what it was sent: the delivery log must not keep the signature.
      res.writeHead(status, { 'content-type': 'text/plain' }).end(`seen ${req.headers['webhook-signature']} ${'x'.repeat(6000)}`);
    });
  });
  return {
    received, scripts, fallback, server,
    listen: () => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))),
    on: (path: string) => received.filter((r) => r.path === path),
  };
}


let db: TestDatabase;
let sql: pg.Client;
let server: RunningServer;
let env: Record<string, string>;
let superAdmin: AdminClient;
let userAdmin: AdminClient;
let auditor: AdminClient;
let receiver: ReturnType<typeof startReceiver>;
let base: string;
const secrets: string[] = [];
const apiBodies: string[] = [];

async function call(who: AdminClient, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
  const res = await who.call(method, path, body, headers);
  apiBodies.push(JSON.stringify(res.body ?? ''));
  return res;
}

async function createWebhook(path: string, eventTypes: string[]): Promise<{ id: string; secret: string }> {
  const res = await call(superAdmin, 'POST', '/webhooks', { url: `${base}${path}`, eventTypes, description: `receiver ${path}` });
  expect(res.status).toBe(201);
  expect(res.headers.get('cache-control')).toBe('no-store');
  secrets.push(res.body.secret);
  return { id: res.body.webhook.id, secret: res.body.secret };
}

async function createPerson(username: string): Promise<string> {
  const res = await call(userAdmin, 'POST', '/users', { username, email: `${username}@example.com`, name: username });
  expect(res.status).toBe(201);
  return res.body.id;
}

const deliveriesOf = async (webhookId: string) => (await call(auditor, 'GET', `/webhooks/${webhookId}/deliveries`)).body.items as any[];

beforeAll(async () => {
  receiver = startReceiver();
  base = `http://127.0.0.1:${await receiver.listen()}`;
  db = await createTestDatabase();
  env = {
    DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(),
    JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_RETRY_LIMIT: '2', JOBS_HEARTBEAT_SECONDS: '10',
  };
  server = await startServer(env);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  [superAdmin, userAdmin, auditor] = await Promise.all([
    adminClient(server.url, env, ['super_admin']), adminClient(server.url, env, ['user_admin']), adminClient(server.url, env, ['auditor']),
  ]);
}, 120000);

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
  await new Promise((r) => receiver?.server.close(r));
});

describe('webhook URL rules', () => {
  const refused = async (url: string, code: string) => {
    const res = await call(superAdmin, 'POST', '/webhooks', { url, eventTypes: ['*'] });
    expect({ url, status: res.status, code: res.body.code }).toEqual({ url, status: 400, code });
  };

  it('refuses credentials, plain http across a network, and internal or metadata addresses by default', async () => {
    await refused(`${base}/ok`, 'webhook.internal_destination');
    await refused('http://localhost:9/hook', 'webhook.internal_destination');
    await refused('https://user:pass@hooks.example.com/in', 'webhook.url_credentials');
    await refused('https://token@hooks.example.com/in', 'webhook.url_credentials');
    await refused('http://hooks.example.com/in', 'webhook.insecure_url');
    await refused('https://10.1.2.3/in', 'webhook.internal_destination');
    await refused('https://192.168.0.10/in', 'webhook.internal_destination');
    await refused('https://[::ffff:10.0.0.1]/in', 'webhook.internal_destination');
    await refused('https://[fd00::1]/in', 'webhook.internal_destination');
    await refused('https://169.254.169.254/latest/meta-data', 'webhook.forbidden_destination');
    await refused('https://0.0.0.0/in', 'webhook.forbidden_destination');
    await refused('ftp://hooks.example.com/in', 'webhook.invalid_url');
    await refused('not a url', 'webhook.invalid_url');
    expect((await db_count('webhooks'))).toBe(0);
  });

  it('accepts a public https URL, and refuses event types that do not exist', async () => {
    const ok = await call(superAdmin, 'POST', '/webhooks', { url: 'https://hooks.example.com/in', eventTypes: ['user.*', 'group.member_added'], enabled: false });
    expect(ok.status).toBe(201);
    secrets.push(ok.body.secret);
    expect(ok.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(ok.body.webhook).toMatchObject({ url: 'https://hooks.example.com/in', eventTypes: ['user.*', 'group.member_added'], enabled: false, version: 1 });
    const bad = await call(superAdmin, 'POST', '/webhooks', { url: 'https://hooks.example.com/in', eventTypes: ['user.create'] });
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('eventTypes.0');
    expect((await call(superAdmin, 'DELETE', `/webhooks/${ok.body.webhook.id}`)).status).toBe(204);
  });

  it('lets only a super_admin allow internal destinations; loopback http is then accepted, metadata still refused', async () => {
    expect((await call(userAdmin, 'PATCH', '/webhook-settings', { allowInternalDestinations: true })).status).toBe(403);
    expect((await call(auditor, 'PATCH', '/webhook-settings', { allowInternalDestinations: true })).status).toBe(403);
    expect((await call(auditor, 'GET', '/webhook-settings')).body).toEqual({ allowInternalDestinations: false });
    const res = await call(superAdmin, 'PATCH', '/webhook-settings', { allowInternalDestinations: true });
    expect(res.body).toEqual({ allowInternalDestinations: true });
    await refused('https://169.254.169.254/latest/meta-data', 'webhook.forbidden_destination');
    await refused('http://10.0.0.1/in', 'webhook.insecure_url');
    const audited = (await call(auditor, 'GET', '/audit-events?action=webhook.settings_updated')).body.items;
    expect(audited[0]).toMatchObject({ changes: { allowInternalDestinations: true }, before: { allowInternalDestinations: false } });
  });
});

async function db_count(table: string): Promise<number> {
  return (await sql.query(`select count(*)::int as n from ${table}`)).rows[0].n;
}

describe('roles', () => {
  it('refuses every write to anyone but a super_admin, and reads to user and app admins', async () => {
    const body = { url: `${base}/ok`, eventTypes: ['*'] };
    for (const who of [userAdmin, auditor]) {
      const res = await call(who, 'POST', '/webhooks', body);
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('admin.forbidden');
    }
    expect((await call(userAdmin, 'GET', '/webhooks')).status).toBe(403);
    expect((await call(auditor, 'GET', '/webhooks')).status).toBe(200);
    expect((await fetch(`${server.url}/admin/api/v1/webhooks`)).status).toBe(401);
  });
});

describe('delivering events', () => {
  let ok: { id: string; secret: string };
  let groupsOnly: { id: string; secret: string };

  it('sends a signed user.created to a user.* webhook; the signature verifies with the secret, a tampered one does not', async () => {
    ok = await createWebhook('/ok', ['user.*']);
    groupsOnly = await createWebhook('/groups-only', ['group.*']);
    const userId = await createPerson('ada.webhook');
    const got = await until('user.created at /ok', () => receiver.on('/ok').find((r) => JSON.parse(r.body).target?.id === userId));
    const event = JSON.parse(got.body);
    expect(event).toMatchObject({ type: 'user.created', target: { type: 'user', id: userId }, actor: { type: 'admin_client', clientId: userAdmin.clientId } });
    expect(event.data).toMatchObject({ username: 'ada.webhook' });
    expect(Object.keys(event).sort()).toEqual(['actor', 'data', 'id', 'occurredAt', 'target', 'type']);
    expect(got.headers['webhook-id']).toBe(event.id);
    expect(got.headers['user-agent']).toBe('OneID-Webhooks');
    expect(got.headers['content-type']).toBe('application/json');
    expect(Math.abs(Number(got.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(30);
    expect(got.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);

    expect(verifyWebhookSignature(ok.secret, got.headers, got.body)).toBe(true);
    expect(verifyWebhookSignature(ok.secret, got.headers, got.body.replace('ada.webhook', 'eve.webhook'))).toBe(false);
    const ts = Number(got.headers['webhook-timestamp']);
    expect(verifyWebhookSignature(ok.secret, { ...got.headers, 'webhook-timestamp': String(ts + 1) }, got.body)).toBe(false);
    expect(verifyWebhookSignature(ok.secret, { ...got.headers, 'webhook-id': 'another' }, got.body)).toBe(false);
    expect(verifyWebhookSignature(groupsOnly.secret, got.headers, got.body)).toBe(false);
    // Replayed later than the 5-minute window: refused even with a valid signature.
    expect(verifyWebhookSignature(ok.secret, got.headers, got.body, 300, ts + 301)).toBe(false);
    expect(verifyWebhookSignature(ok.secret, got.headers, got.body, 300, ts + 299)).toBe(true);

    const log = await until('delivered in the log', async () => (await deliveriesOf(ok.id)).find((d) => d.eventId === event.id && d.status === 'delivered'));
    expect(log).toMatchObject({ eventType: 'user.created', attempts: 1, lastStatus: 200, lastError: null });
    // The receiver echoed the signature: the log keeps neither it nor more than a snippet.
    expect(log.responseSnippet).toContain('[redacted]');
    expect(log.responseSnippet).not.toContain(got.headers['webhook-signature']!.slice(3));
    expect(log.responseSnippet.length).toBeLessThanOrEqual(1000);
  });

  it('sends a webhook only the events it subscribes to', async () => {
    const res = await call(userAdmin, 'POST', '/groups', { name: 'webhook readers' });
    expect(res.status).toBe(201);
    const got = await until('group.created at /groups-only', () => receiver.on('/groups-only').find((r) => JSON.parse(r.body).target?.id === res.body.id));
    expect(JSON.parse(got.body).type).toBe('group.created');
    expect(verifyWebhookSignature(groupsOnly.secret, got.headers, got.body)).toBe(true);
    expect(receiver.on('/groups-only').map((r) => JSON.parse(r.body).type).filter((t) => !t.startsWith('group.'))).toEqual([]);
    expect(receiver.on('/ok').map((r) => JSON.parse(r.body).type).filter((t) => !t.startsWith('user.'))).toEqual([]);
  });

  it('retries a receiver that answers 503 twice, then 200: delivered, with every attempt counted', async () => {
    const flaky = await createWebhook('/flaky', ['user.created']);
    receiver.scripts.set('/flaky', [503, 503]);
    const userId = await createPerson('bob.webhook');
    const log = await until('delivered after retries', async () => (await deliveriesOf(flaky.id)).find((d) => d.status === 'delivered'));
    expect(log).toMatchObject({ attempts: 3, lastStatus: 200, lastError: null });
    const attempts = receiver.on('/flaky');
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((a) => a.headers['webhook-id'])).size).toBe(1);
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
    expect(JSON.parse(attempts[0]!.body).target.id).toBe(userId);
    for (const a of attempts) expect(verifyWebhookSignature(flaky.secret, a.headers, a.body)).toBe(true);
    // Backoff: the retries came later than at once.
    expect(attempts[2]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(1500);
    expect((await call(superAdmin, 'PATCH', `/webhooks/${flaky.id}`, { enabled: false })).status).toBe(200);
  }, 60000);

  it('marks a delivery dead when the receiver stays down, then redelivers the same event once it is back', async () => {
    const down = await createWebhook('/down', ['user.created']);
    receiver.fallback.set('/down', 503);
    await createPerson('cy.webhook');
    const dead = await until('dead', async () => (await deliveriesOf(down.id)).find((d) => d.status === 'dead'), 60000);
    expect(dead).toMatchObject({ attempts: 3, lastStatus: 503, lastError: 'HTTP 503' });
    expect(receiver.on('/down')).toHaveLength(3);

    receiver.fallback.set('/down', 200);
    const res = await call(superAdmin, 'POST', `/webhooks/${down.id}/deliveries/${dead.id}/redeliver`);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ redeliveryOf: dead.id, eventId: dead.eventId, status: 'pending', attempts: 0 });
    const again = await until('redelivered', async () => (await deliveriesOf(down.id)).find((d) => d.id === res.body.id && d.status === 'delivered'));
    expect(again.attempts).toBe(1);
    const sent = receiver.on('/down');
    expect(sent).toHaveLength(4);
    expect(sent[3]!.body).toBe(sent[0]!.body);
    expect(sent[3]!.headers['webhook-id']).toBe(dead.eventId);
    expect(verifyWebhookSignature(down.secret, sent[3]!.headers, sent[3]!.body)).toBe(true);
    // Newest first.
    expect((await deliveriesOf(down.id)).map((d) => d.id)).toEqual([res.body.id, dead.id]);
    expect((await call(userAdmin, 'POST', `/webhooks/${down.id}/deliveries/${dead.id}/redeliver`)).status).toBe(403);
    expect((await call(superAdmin, 'PATCH', `/webhooks/${down.id}`, { enabled: false })).status).toBe(200);
  }, 90000);

  it('does not retry a receiver that refuses with another 4xx', async () => {
    const gone = await createWebhook('/gone', ['user.created']);
    receiver.fallback.set('/gone', 410);
    await createPerson('dee.webhook');
    const failed = await until('failed', async () => (await deliveriesOf(gone.id)).find((d) => d.status === 'failed'));
    expect(failed).toMatchObject({ attempts: 1, lastStatus: 410, lastError: 'HTTP 410' });
    await new Promise((r) => setTimeout(r, 3500));
    expect(receiver.on('/gone')).toHaveLength(1);
    expect((await call(superAdmin, 'DELETE', `/webhooks/${gone.id}`)).status).toBe(204);
    expect((await call(auditor, 'GET', `/webhooks/${gone.id}`)).status).toBe(404);
  }, 30000);

  it('pings one webhook with a signed test event', async () => {
    const res = await call(superAdmin, 'POST', `/webhooks/${ok.id}/ping`);
    expect(res.status).toBe(202);
    const got = await until('ping', () => receiver.on('/ok').find((r) => r.headers['webhook-id'] === res.body.eventId));
    expect(JSON.parse(got.body)).toMatchObject({ type: 'webhook.ping', target: { type: 'webhook', id: ok.id } });
    expect(verifyWebhookSignature(ok.secret, got.headers, got.body)).toBe(true);
    expect(receiver.on('/groups-only').some((r) => r.headers['webhook-id'] === res.body.eventId)).toBe(false);
  });

  it('rotates the secret: returned once, and the old one still signs beside it for a while', async () => {
    const res = await call(superAdmin, 'POST', `/webhooks/${ok.id}/rotate-secret`);
    expect(res.status).toBe(200);
    const fresh = res.body.secret as string;
    secrets.push(fresh);
    expect(fresh).not.toBe(ok.secret);
    const ping = await call(superAdmin, 'POST', `/webhooks/${ok.id}/ping`);
    const got = await until('ping after rotation', () => receiver.on('/ok').find((r) => r.headers['webhook-id'] === ping.body.eventId));
    expect(String(got.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifyWebhookSignature(fresh, got.headers, got.body)).toBe(true);
    expect(verifyWebhookSignature(ok.secret, got.headers, got.body)).toBe(true);
  });

  it('refuses a stale If-Match with 412', async () => {
    const current = await call(auditor, 'GET', `/webhooks/${ok.id}`);
    const stale = await call(superAdmin, 'PATCH', `/webhooks/${ok.id}`, { description: 'stale' }, { 'if-match': `W/"${current.body.version - 1}"` });
    expect(stale.status).toBe(412);
    const fresh = await call(superAdmin, 'PATCH', `/webhooks/${ok.id}`, { description: 'fresh' }, { 'if-match': current.headers.get('etag')! });
    expect(fresh.status).toBe(200);
    expect(fresh.body).toMatchObject({ description: 'fresh', version: current.body.version + 1 });
  });

  it('never shows a secret after creation: not in the API, the audit log, the database in the clear, nor the server output', async () => {
    const list = await call(auditor, 'GET', '/webhooks');
    for (const w of list.body.items) {
      await call(auditor, 'GET', `/webhooks/${w.id}`);
      for (const d of (await call(auditor, 'GET', `/webhooks/${w.id}/deliveries`)).body.items) await call(auditor, 'GET', `/webhooks/${w.id}/deliveries/${d.id}`);
    }
    await call(auditor, 'GET', '/audit-events?limit=500');
    const creations = apiBodies.filter((b) => b.includes('"secret":"whsec_'));
    const others = apiBodies.filter((b) => !b.includes('"secret":"whsec_')).join('\n');
    const stored = JSON.stringify((await sqlQuery('select * from webhooks')).concat(await sqlQuery('select * from webhook_deliveries')));
    const output = server.output();
    const signatures = receiver.received.flatMap((r) => String(r.headers['webhook-signature']).split(' ').map((s) => s.slice(3)));
    expect(creations.length).toBe(secrets.length);
    expect(secrets.length).toBeGreaterThanOrEqual(6);
    for (const s of secrets) {
      const key = s.slice('whsec_'.length);
      expect(others).not.toContain(key);
      expect(stored).not.toContain(key);
      expect(output).not.toContain(key);
    }
    for (const sig of signatures) {
      expect(output).not.toContain(sig);
      expect(stored).not.toContain(sig);
    }
    expect(output).toContain('webhook delivered');
  });
});

describe('destination check at connection time', () => {
  it('refuses to connect when a host name resolves to an internal address no longer allowed', async () => {
    const port = new URL(base).port;
    const res = await call(superAdmin, 'POST', '/webhooks', { url: `http://localhost:${port}/rebind`, eventTypes: ['group.created'] });
    expect(res.status).toBe(201);
    expect((await call(superAdmin, 'PATCH', '/webhook-settings', { allowInternalDestinations: false })).status).toBe(200);
    const ping = await call(superAdmin, 'POST', `/webhooks/${res.body.webhook.id}/ping`);
    expect(ping.status).toBe(202);
    const failed = await until('refused', async () => (await deliveriesOf(res.body.webhook.id)).find((d) => d.status === 'failed'));
    expect(failed).toMatchObject({ lastStatus: null, lastError: 'destination refused: localhost resolves to a private address' });
    expect(receiver.on('/rebind')).toHaveLength(0);
  });
});

async function sqlQuery(text: string): Promise<unknown[]> {
  return (await sql.query(text)).rows;
}
