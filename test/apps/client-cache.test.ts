// The in-memory client cache never serves what PostgreSQL no longer holds: changes by this
// process are seen at once, changes by anyone else as soon as PostgreSQL's notification arrives,
// and nothing is cached while the listening connection is down.
import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import pg from 'pg';
import { pino } from 'pino';
import { ClientCache } from '../../src/apps/client-cache.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import { createAdapterFactory } from '../../src/oidc/adapter.ts';
import { sha256 } from '../../src/shared/ids.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let clients: ClientCache<AdapterPayload>;
let clientAdapter: Adapter;
let apps: AppsService;
/** A connection of somebody else: another node, the CLI, an operator with psql. */
let other: pg.Client;

const log = pino({ level: 'silent' });

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Counts the reads of a client from the apps table from now on. */
function countingLoads(): { count: () => number } {
  let n = 0;
  db.on('query', (q: { sql?: string }) => { if (q.sql?.includes('from apps')) n += 1; });
  return { count: () => n };
}

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_client_cache');
  db = mdb.db;
  clients = new ClientCache<AdapterPayload>({ databaseUrl: mdb.database.url, log });
  await clients.start();
  clientAdapter = new (createAdapterFactory(db, clients))('Client');
  apps = new AppsService(db);
  other = new pg.Client({ connectionString: mdb.database.url });
  await other.connect();
});

afterAll(async () => {
  await other?.end();
  await clients?.close();
  await mdb?.close();
});

describe('client cache', () => {
  it('is live once listening, and answers a second lookup without a statement', async () => {
    expect(clients.live).toBe(true);
    const created = await apps.createApp({ name: 'Cached', redirectUris: ['https://cached.example.com/cb'] });
    let loads = 0;
    const load = async () => { loads += 1; return { client_id: created.client_id } as AdapterPayload; };
    await clients.get(created.client_id, load);
    await clients.get(created.client_id, load);
    expect(loads).toBe(1);
    // And through the adapter: the second find sends no statement.
    await clientAdapter.find(created.client_id);
    const counter = countingLoads();
    await clientAdapter.find(created.client_id);
    expect(counter.count()).toBe(0);
  });

  it("serves this process's own change at once, without waiting for the notification: a rotated secret is the only one accepted", async () => {
    // A cache that hears no notifications (as on the embedded database): only this process's writes reach it.
    const deaf = new ClientCache<AdapterPayload>({ log });
    const adapter = new (createAdapterFactory(db, deaf))('Client');
    try {
      const created = await apps.createApp({ name: 'Rotating', redirectUris: ['https://rotating.example.com/cb'] });
      expect((await adapter.find(created.client_id))!.client_secret).toBe(sha256(created.client_secret!));
      const rotated = await apps.rotateSecret(created.id);
      expect((await adapter.find(created.client_id))!.client_secret).toBe(sha256(rotated.client_secret));
      await apps.updateApp(created.id, { name: 'Rotated' });
      expect((await adapter.find(created.client_id))!.client_name).toBe('Rotated');
      await apps.deleteApp(created.id);
      expect(await adapter.find(created.client_id)).toBeUndefined();
    } finally {
      await deaf.close();
    }
  });

  it('forgets a client that another connection changed, as soon as the notification arrives', async () => {
    const created = await apps.createApp({ name: 'Before', redirectUris: ['https://other.example.com/cb'] });
    expect((await clientAdapter.find(created.client_id))!.client_name).toBe('Before');
    await other.query("update apps set name = 'After' where client_id = $1", [created.client_id]);
    await until(async () => (await clientAdapter.find(created.client_id))!.client_name === 'After');

    await other.query('delete from apps where client_id = $1', [created.client_id]);
    await until(async () => (await clientAdapter.find(created.client_id)) === undefined);
  });

  it('hears nothing from a transaction that rolled back, and keeps serving the committed client', async () => {
    const created = await apps.createApp({ name: 'Stays', redirectUris: ['https://stays.example.com/cb'] });
    await clientAdapter.find(created.client_id);
    await other.query('begin');
    await other.query("update apps set name = 'Never' where client_id = $1", [created.client_id]);
    await other.query('rollback');
    expect((await clientAdapter.find(created.client_id))!.client_name).toBe('Stays');
  });

  it('never caches an unknown client id', async () => {
    const counter = countingLoads();
    expect(await clientAdapter.find('no-such-client')).toBeUndefined();
    expect(await clientAdapter.find('no-such-client')).toBeUndefined();
    expect(counter.count()).toBe(2);
  });

  it('does not keep a value read while the client changed', async () => {
    const cache = new ClientCache<string>({ log }); // embedded mode: live without a listener
    let release!: () => void;
    const slow = cache.get('c1', () => new Promise<string>((r) => { release = () => r('old'); }));
    await new Promise((r) => setImmediate(r));
    cache.invalidate('c1');
    release();
    expect(await slow).toBe('old');
    expect(await cache.get('c1', async () => 'new')).toBe('new');
    await cache.close();
  });

  it('reads an entry again once it is older than its maximum age', async () => {
    const cache = new ClientCache<string>({ log, maxAgeMs: 30 });
    await cache.get('c1', async () => 'first');
    expect(await cache.get('c1', async () => 'second')).toBe('first');
    await new Promise((r) => setTimeout(r, 50));
    expect(await cache.get('c1', async () => 'third')).toBe('third');
    await cache.close();
  });

  it('caches nothing while the listener is down, and starts empty when it is back', async () => {
    const created = await apps.createApp({ name: 'Outage', redirectUris: ['https://outage.example.com/cb'] });
    await clientAdapter.find(created.client_id);
    // The listening connection dies (network cut, PostgreSQL restart, an operator's pg_terminate_backend).
    await other.query(`select pg_terminate_backend(pid) from pg_stat_activity
                        where datname = current_database() and application_name = 'oneid-listener'`);
    await until(() => !clients.live);
    // A change made while nobody listens is never announced to this cache ...
    await other.query("update apps set name = 'Changed in the dark' where client_id = $1", [created.client_id]);
    const counter = countingLoads();
    // ... yet every lookup meanwhile reads PostgreSQL, and sees it.
    expect((await clientAdapter.find(created.client_id))!.client_name).toBe('Changed in the dark');
    expect((await clientAdapter.find(created.client_id))!.client_name).toBe('Changed in the dark');
    expect(counter.count()).toBe(2);
    await until(() => clients.live, 5000);
    await other.query("update apps set name = 'Heard again' where client_id = $1", [created.client_id]);
    await until(async () => (await clientAdapter.find(created.client_id))!.client_name === 'Heard again');
  });
});
