// The events outbox, its relay and the job queue, on PostgreSQL and on the embedded database.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { createDb } from '../../src/db/knex.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { MasterKey } from '../../src/keys/master-key.ts';
import { recordAudit, SYSTEM_ACTOR } from '../../src/audit/audit.service.ts';
import { startBackground, type Background, type BackgroundFeature } from '../../src/jobs/background.ts';
import type { DomainEvent } from '../../src/events/events.ts';
import type { Services } from '../../src/services.ts';
import { until } from '../helpers/until.ts';

const log = createLogger('silent');


/** A feature that records the events it is given and has a queue whose jobs fail until told otherwise. */
function recorder() {
  const seen: DomainEvent[] = [];
  const ran: string[] = [];
  let failing = true;
  const feature = (): BackgroundFeature => ({
    consumer: {
      name: 'recorder',
      consume: async (events, _trx, enqueue) => {
        seen.push(...events);
        for (const e of events) if (e.type === 'user.created') await enqueue.send('test.flaky', { id: e.target.id });
      },
    },
    queues: [{
      name: 'test.flaky',
      handler: async (job) => {
        if (failing) throw new Error(`downstream refused ${(job.data as { id: string }).id}`);
        ran.push((job.data as { id: string }).id);
      },
    }],
  });
  return { seen, ran, feature, heal: () => { failing = false; } };
}

function configFor(databaseUrl: string | undefined, dataDir: string): Config {
  return loadConfig({
    NODE_ENV: 'test', DATA_DIR: dataDir, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '1', JOBS_RETRY_LIMIT: '1', JOBS_HEARTBEAT_SECONDS: '10',
  });
}

describe.each([
  ['PostgreSQL', false],
  ['the embedded database', true],
])('events and jobs on %s', (_name, embedded) => {
  let migrated: MigratedDatabase | undefined;
  let db: Knex;
  let close: () => Promise<void>;
  let background: Background;
  const rec = recorder();
  let dataDir: string;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-jobs-'));
    if (embedded) {
      const handle = createDb({ databaseUrl: undefined, databasePoolMax: 1, dataDir });
      await migrateLatest(handle.db);
      db = handle.db;
      close = () => handle.close();
    } else {
      migrated = await createMigratedDatabase('oneid_jobs');
      db = migrated.db;
      close = () => migrated!.close();
    }
    const config = configFor(migrated?.database.url, dataDir);
    background = await startBackground(
      { db, config, log, masterKey: new MasterKey(Buffer.alloc(32, 7)), services: {} as Services, embedded },
      [rec.feature],
    );
  }, 60000);

  afterAll(async () => {
    await background?.stop(2000);
    await close?.();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('turns a committed change into one event, relays it once, and chains its audit record', async () => {
    await db.transaction(async (trx) => {
      await recordAudit(trx, SYSTEM_ACTOR, { action: 'user.created', targetType: 'user', targetId: 'u-1', changes: { userName: 'ada', password: 'secret-value' } });
      await recordAudit(trx, SYSTEM_ACTOR, { action: 'user.exported', targetType: 'user', targetId: 'u-1' });
    });
    const event = await until('the event', async () => rec.seen.find((e) => e.target.id === 'u-1'));
    expect(event).toMatchObject({ type: 'user.created', data: { userName: 'ada', password: '[redacted]' } });
    // Only actions apps care about are events.
    expect(rec.seen.filter((e) => e.target.id === 'u-1').map((e) => e.type)).toEqual(['user.created']);
    await until('the chain', async () => !(await db('audit_pending').first()));
    expect(await db('events').whereNull('relayed_at').count({ n: '*' }).first()).toEqual({ n: 0 });
  });

  it('writes no event when the change rolls back', async () => {
    await expect(db.transaction(async (trx) => {
      await recordAudit(trx, SYSTEM_ACTOR, { action: 'user.created', targetType: 'user', targetId: 'u-rolled-back' });
      throw new Error('the change failed');
    })).rejects.toThrow('the change failed');
    await recordAudit(db, SYSTEM_ACTOR, { action: 'group.created', targetType: 'group', targetId: 'g-after' });
    await until('a later event', async () => rec.seen.find((e) => e.target.id === 'g-after'));
    expect(rec.seen.find((e) => e.target.id === 'u-rolled-back')).toBeUndefined();
    expect(await db('events').where({ target_id: 'u-rolled-back' }).first()).toBeUndefined();
  });

  it('dead-letters a job out of retries, with its reason, and an administrator sends it back', async () => {
    await recordAudit(db, SYSTEM_ACTOR, { action: 'user.created', targetType: 'user', targetId: 'u-dead' });
    const dead = await until('the dead letter', async () => (await background.queue.deadLetters()).find((j) => (j.data as { id?: string }).id === 'u-dead'));
    expect(dead).toMatchObject({ queue: 'test.flaky', error: 'downstream refused u-dead' });
    rec.heal();
    expect(await background.queue.retryDeadLetters([dead.id])).toBe(1);
    await until('the retried job', async () => rec.ran.includes('u-dead'));
    expect((await background.queue.deadLetters()).map((j) => j.id)).not.toContain(dead.id);
  }, 60000);

  it('starts again on the same database (a restart, a second node) and keeps working', async () => {
    await background.stop(2000);
    background = await startBackground(
      { db, config: configFor(migrated?.database.url, dataDir), log, masterKey: new MasterKey(Buffer.alloc(32, 7)), services: {} as Services, embedded },
      [rec.feature],
    );
    await recordAudit(db, SYSTEM_ACTOR, { action: 'group.created', targetType: 'group', targetId: 'g-after-restart' });
    await until('an event after the restart', async () => rec.seen.find((e) => e.target.id === 'g-after-restart'));
  }, 60000);
});
