// The relay: new events -> the jobs of every consumer, in order, once. It runs as a job itself
// (queue `events.relay`, one at a time across nodes), woken by the `oneid_audit` signal that the
// outbox trigger sends at commit, and every minute in case a signal was missed (a node down).
import type { Knex } from 'knex';
import type { JobQueue } from '../jobs/queue.ts';
import type { Logger } from '../shared/logger.ts';
import { eventFromRow, type DbEventRow, type EventConsumer } from './events.ts';

export const RELAY_QUEUE = 'events.relay';
export const AUDIT_SIGNAL = 'oneid_audit';
const BATCH = 500;

/** Relays every waiting event; returns how many. */
export async function relayEvents(db: Knex, queue: JobQueue, consumers: readonly EventConsumer[]): Promise<number> {
  let total = 0;
  for (;;) {
    const done = await db.transaction(async (trx) => {
      // SKIP LOCKED: a relay on another node (there should be none: the queue runs one) never waits.
      const rows: DbEventRow[] = (await trx.raw(
        'select * from events where relayed_at is null order by seq limit ? for update skip locked', [BATCH],
      )).rows;
      if (!rows.length) return 0;
      const events = rows.map(eventFromRow);
      const enqueue = queue.within(trx);
      for (const consumer of consumers) await consumer.consume(events, trx, enqueue);
      await trx.raw('update events set relayed_at = now() where seq = any(?::bigint[])', [events.map((e) => e.seq)]);
      return rows.length;
    });
    total += done;
    if (done < BATCH) return total;
  }
}

/** Relayed events older than this many days are deleted (the audit log keeps the history). */
export async function pruneRelayedEvents(db: Knex, days = 7): Promise<number> {
  return db('events').whereNotNull('relayed_at').where('occurred_at', '<', db.raw(`now() - make_interval(days => ?)`, [days])).del();
}

/**
 * Wakes `queues` when the database signals new audit events (at commit), at most once per
 * `everyMs` on this node: a burst of commits costs one job each, and the queues keep one waiting
 * job at most anyway.
 */
export function wakeOnAudit(queue: JobQueue, queues: readonly string[], log: Logger, everyMs = 100): () => void {
  let timer: NodeJS.Timeout | undefined;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      for (const name of queues) {
        queue.send(name).catch((err: unknown) => log.debug({ err: (err as Error).message, queue: name }, 'wake-up not sent'));
      }
    }, everyMs);
    timer.unref();
  };
}
