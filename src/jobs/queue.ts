// The job queue: pg-boss over OneID's own database. Jobs live in PostgreSQL (schema `pgboss`), so
// they survive a node being killed, and several nodes share the work (a job is taken by one node
// at a time, SKIP LOCKED). Every queue here retries with exponential backoff and jitter, and a job
// out of retries goes to one dead-letter queue where an administrator sees it and sends it back.
//
// On the embedded database (PGlite, one connection) pg-boss runs its statements on knex's one
// connection, taken from knex's pool for each statement: a pg-boss statement never lands in the
// middle of a knex transaction, and a knex transaction never in pg-boss's multi-statement blocks.
// Code inside a knex transaction enqueues through that transaction (`Enqueue`), never through the
// pool: on the embedded database the pool's one connection is the transaction's.
import type { Knex } from 'knex';
import { PgBoss, fromKnex, type Db as IDatabase, type Job, type JobWithMetadata } from 'pg-boss';
import type { PGlite } from '@electric-sql/pglite';
import type { Logger } from '../shared/logger.ts';
import type { Config } from '../config.ts';

export const DEAD_LETTER_QUEUE = 'oneid.dead-letter';
const SCHEMA = 'pgboss';

export type QueuePolicy = 'standard' | 'stately' | 'singleton';

export interface QueueDefinition<T extends object = object> {
  name: string;
  /**
   * `stately` with a singletonKey: at most one job waiting and one running per key (a burst of
   * changes to one person collapses into one push, and two pushes for one person never run at
   * once). Without a key, the same for the whole queue (relay, housekeeping).
   */
  policy?: QueuePolicy;
  /** false: a failed job is not retried (housekeeping that runs again anyway). */
  retry?: boolean;
  /** Seconds a job may run before it counts as failed. Default 15 minutes. */
  expireInSeconds?: number;
  /** Jobs this node runs at once. Default 1. */
  concurrency?: number;
  /** Cron (UTC) for a job that also runs on a timetable, e.g. every minute: '* * * * *'. */
  cron?: string;
  handler(job: Job<T>): Promise<unknown>;
}

/** Sends jobs inside the caller's transaction: they exist if and only if it commits. */
export interface Enqueue {
  send(name: string, data: object, options?: { singletonKey?: string; startAfterSeconds?: number }): Promise<void>;
  /** Many jobs of one queue in one statement. */
  sendMany(name: string, jobs: { data: object; singletonKey?: string }[]): Promise<void>;
}

export interface DeadJob {
  id: string;
  /** The queue the job failed on. */
  queue: string;
  data: unknown;
  /** The last error, as the job's handler threw it. */
  error: string | null;
  failedAt: string;
}

/** pg-boss statements on knex's one PGlite connection (see the head of this file). */
function embeddedDatabase(db: Knex): IDatabase {
  const client = db.client as unknown as { acquireConnection(): Promise<PGlite>; releaseConnection(c: PGlite): Promise<void> };
  const withConnection = async <T>(fn: (pglite: PGlite) => Promise<T>): Promise<T> => {
    const conn = await client.acquireConnection();
    try {
      return await fn(conn);
    } finally {
      await client.releaseConnection(conn);
    }
  };
  return {
    executeSql: (text, values) => withConnection(async (pglite) => {
      if (values?.length) return pglite.query(text, values);
      // Without parameters pg-boss may send several statements at once (its schema, locked blocks).
      const results = await pglite.exec(text);
      return { rows: results.flatMap((r) => r.rows ?? []) };
    }),
    listen: async (channel, onNotification, onReconnect) => {
      const unlisten = await withConnection((pglite) => pglite.listen(channel, onNotification));
      onReconnect();
      return { close: () => withConnection(() => unlisten()) };
    },
  };
}

export interface JobQueueOptions {
  db: Knex;
  embedded: boolean;
  databaseUrl: string | undefined;
  log: Logger;
  jobs: Config['jobs'];
}

export class JobQueue {
  readonly #opts: JobQueueOptions;
  readonly #definitions = new Map<string, QueueDefinition>();
  #boss: PgBoss | undefined;
  #stopping = false;
  readonly #listening: { close(): Promise<void> }[] = [];

  constructor(opts: JobQueueOptions) {
    this.#opts = opts;
  }

  define<T extends object>(definition: QueueDefinition<T>): void {
    if (this.#boss) throw new Error('define queues before start()');
    this.#definitions.set(definition.name, definition as unknown as QueueDefinition);
  }

  get started(): boolean {
    return this.#boss !== undefined;
  }

  async start(): Promise<void> {
    const { db, embedded, databaseUrl, log, jobs } = this.#opts;
    // Dead workers are noticed by the supervisor: it must look at least as often as heartbeats are due.
    const supervise = Math.max(5, Math.min(60, Math.floor(jobs.heartbeatSeconds / 2)));
    const boss = new PgBoss({
      ...(embedded ? { db: embeddedDatabase(db), backend: 'pglite' as const } : { connectionString: databaseUrl, max: 4, application_name: 'oneid-jobs' }),
      schema: SCHEMA,
      useListenNotify: true,
      superviseIntervalSeconds: supervise,
      monitorIntervalSeconds: supervise,
    });
    boss.on('error', (err: Error) => {
      if (!this.#stopping) log.warn({ event: 'jobs.error', err: err.message }, 'job queue error; it keeps going');
    });
    await boss.start();
    // Set before the workers start: a handler may queue jobs (the relay) from its first run on.
    this.#boss = boss;
    await boss.createQueue(DEAD_LETTER_QUEUE, { retentionSeconds: 30 * 24 * 3600, deleteAfterSeconds: 30 * 24 * 3600 });
    for (const def of this.#definitions.values()) {
      const options = {
        policy: def.policy ?? 'standard',
        retryLimit: def.retry === false ? 0 : jobs.retryLimit,
        retryDelay: jobs.retryDelaySeconds,
        retryBackoff: true,
        retryDelayMax: jobs.retryMaxSeconds,
        expireInSeconds: def.expireInSeconds ?? 900,
        heartbeatSeconds: jobs.heartbeatSeconds,
        ...(def.retry === false ? {} : { deadLetter: DEAD_LETTER_QUEUE }),
        notify: true,
        deleteAfterSeconds: 7 * 24 * 3600,
      };
      // createQueue keeps an existing queue's settings: an upgrade or a changed setting updates them
      // (all but the policy, which pg-boss fixes at creation).
      const { policy: _policy, ...settings } = options;
      if (await boss.getQueue(def.name)) await boss.updateQueue(def.name, settings);
      else await boss.createQueue(def.name, options);
    }
    // NOTIFY wakes workers for new jobs; retries come due silently, so poll about as often as they do.
    const poll = Math.max(1, Math.min(5, jobs.retryDelaySeconds));
    for (const def of this.#definitions.values()) {
      // One worker takes up to `concurrency` jobs at a time (at least two) and runs them side by
      // side, each settled on its own; a full batch means more are waiting, so it fetches again at
      // once instead of after the polling interval (20 pushes would otherwise take 5 rounds of it).
      const batchSize = Math.max(2, def.concurrency ?? 1);
      const run = async (job: Job<object>): Promise<{ id: string; status: 'completed' | 'failed'; output?: object }> => {
        try {
          const output = await def.handler(job);
          return { id: job.id, status: 'completed', ...(output && typeof output === 'object' ? { output } : {}) };
        } catch (err) {
          // The reason is kept on the job (admins read it on the dead letter); the stack stays out.
          const message = (err as Error)?.message ?? String(err);
          log.info({ event: 'jobs.failed', queue: def.name, job: job.id, err: message }, 'job failed; it will be retried');
          return { id: job.id, status: 'failed', output: { message } };
        }
      };
      await boss.work<object>(def.name, {
        batchSize, localConcurrency: 1, perJobResults: true, burstWhenBatchFull: true,
        pollingIntervalSeconds: poll, notifyPollingIntervalSeconds: poll,
      }, async (batch) => Promise.all(batch.map(run)));
      if (def.cron) await boss.schedule(def.name, def.cron, {}, { tz: 'UTC' });
    }
  }

  #started(): PgBoss {
    if (!this.#boss) throw new Error('the job queue is not started');
    return this.#boss;
  }

  /** Sends a job now, outside any transaction (never call it while holding a knex transaction). */
  async send(name: string, data: object = {}, options: { singletonKey?: string } = {}): Promise<void> {
    await this.#started().send(name, data, options.singletonKey ? { singletonKey: options.singletonKey } : {});
  }

  /** Sends jobs inside `trx`: they are queued if and only if it commits. */
  within(trx: Knex.Transaction): Enqueue {
    const boss = this.#started();
    const conn = { db: fromKnex(trx) };
    return {
      send: async (name, data, options = {}) => {
        await boss.send(name, data, {
          ...conn,
          ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
          ...(options.startAfterSeconds ? { startAfter: options.startAfterSeconds } : {}),
        });
      },
      sendMany: async (name, list) => {
        if (!list.length) return;
        await boss.insert(name, list.map((j) => ({ data: j.data, ...(j.singletonKey ? { singletonKey: j.singletonKey } : {}) })), conn);
      },
    };
  }

  /**
   * Calls `fn` for each NOTIFY on `channel`, on pg-boss's own listening connection (it reconnects
   * by itself; after a reconnect `fn` is called once, since signals may have been missed).
   */
  async onSignal(channel: string, fn: () => void): Promise<void> {
    const db = this.#started().getDb();
    if (!db.listen) throw new Error('this database cannot listen');
    this.#listening.push(await db.listen(channel, () => fn(), () => fn()));
  }

  /** Dead-lettered jobs, oldest first. */
  async deadLetters(limit = 100): Promise<DeadJob[]> {
    const boss = this.#started();
    const jobs = await boss.findJobs<object>(DEAD_LETTER_QUEUE, { queued: true, limit });
    const out: DeadJob[] = [];
    for (const j of jobs as JobWithMetadata<object>[]) {
      // The reason stays on the job that failed (the dead letter holds its data).
      const source = j.sourceName && j.sourceId ? (await boss.findJobs<object>(j.sourceName, { id: j.sourceId, limit: 1 }))[0] : undefined;
      out.push({ id: j.id, queue: j.sourceName ?? 'unknown', data: j.data, error: errorOf(source?.output), failedAt: new Date(j.createdOn).toISOString() });
    }
    return out;
  }

  /** Sends dead-lettered jobs back to the queue they failed on; returns how many moved. */
  async retryDeadLetters(ids?: string[]): Promise<number> {
    return this.#started().redrive(DEAD_LETTER_QUEUE, ids ? { ids } : {});
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.#boss) return;
    this.#stopping = true;
    for (const handle of this.#listening.splice(0)) await handle.close().catch(() => undefined);
    await this.#boss.stop({ graceful: true, timeout: graceMs, close: true });
    this.#boss = undefined;
  }
}

function errorOf(output: unknown): string | null {
  if (output && typeof output === 'object' && 'message' in output) return String((output as { message: unknown }).message).slice(0, 1000);
  return null;
}
