// Background work of a server node: the job queue, its housekeeping, and the consumers of domain
// events (each feature brings its queues and, when it acts on events, a consumer for the relay).
import type { Knex } from 'knex';
import type { Config } from '../config.ts';
import type { Logger } from '../shared/logger.ts';
import type { MasterKey } from '../keys/master-key.ts';
import type { Services } from '../services.ts';
import { JobQueue, type QueueDefinition } from './queue.ts';
import type { EventConsumer } from '../events/events.ts';
import { relayEvents, pruneRelayedEvents, wakeOnAudit, RELAY_QUEUE, AUDIT_SIGNAL } from '../events/relay.ts';
import { chainPendingAuditEvents } from '../audit/audit.service.ts';
import { deleteExpiredPayloads } from '../oidc/adapter.ts';

export interface BackgroundContext {
  db: Knex;
  config: Config;
  log: Logger;
  masterKey: MasterKey;
  services: Services;
  queue: JobQueue;
}

/** What a feature runs in the background. */
export interface BackgroundFeature {
  queues: QueueDefinition<any>[];
  /** Acts on domain events (through jobs it queues), when the feature reacts to changes. */
  consumer?: EventConsumer;
}

export const AUDIT_CHAIN_QUEUE = 'audit.chain';

export interface Background {
  queue: JobQueue;
  stop(graceMs?: number): Promise<void>;
}

/** The node's queue, not started yet: the app is built with it (the admin API reads dead letters). */
export function createJobQueue(db: Knex, config: Config, log: Logger, embedded: boolean): JobQueue {
  return new JobQueue({ db, embedded, databaseUrl: config.databaseUrl, log, jobs: config.jobs });
}

export async function startBackground(
  deps: Omit<BackgroundContext, 'queue'> & { embedded: boolean; queue?: JobQueue },
  features: ((ctx: BackgroundContext) => BackgroundFeature)[] = [],
): Promise<Background> {
  const { db, config, log } = deps;
  const queue = deps.queue ?? createJobQueue(db, config, log, deps.embedded);
  const ctx: BackgroundContext = { ...deps, queue };
  const built = features.map((f) => f(ctx));
  const consumers = built.flatMap((f) => (f.consumer ? [f.consumer] : []));

  queue.define({
    name: RELAY_QUEUE, policy: 'stately', retry: false, cron: '* * * * *',
    handler: async () => ({ relayed: await relayEvents(db, queue, consumers) }),
  });
  // The audit hash chain follows commits (woken by the same signal), one chainer at a time.
  queue.define({
    name: AUDIT_CHAIN_QUEUE, policy: 'stately', retry: false, cron: '* * * * *',
    handler: async () => {
      let chained = 0;
      for (let n = await chainPendingAuditEvents(db); n > 0; n = await chainPendingAuditEvents(db)) chained += n;
      return { chained };
    },
  });
  queue.define({
    name: 'housekeeping.oidc-expired', policy: 'stately', retry: false, cron: '*/10 * * * *',
    handler: async () => ({ deleted: await deleteExpiredPayloads(db) }),
  });
  queue.define({
    name: 'housekeeping.events', policy: 'stately', retry: false, cron: '17 3 * * *',
    handler: async () => ({ deleted: await pruneRelayedEvents(db) }),
  });
  for (const f of built) for (const q of f.queues) queue.define(q);

  await queue.start();
  const wake = wakeOnAudit(queue, [AUDIT_CHAIN_QUEUE, RELAY_QUEUE], log);
  await queue.onSignal(AUDIT_SIGNAL, wake);
  wake(); // events written while no node ran (the CLI on the embedded database)
  return { queue, stop: (graceMs) => queue.stop(graceMs) };
}
