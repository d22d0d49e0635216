// Domain events: what happened, as apps and consumers see it. An event is a copy of an audit
// record (same id, action as its type), made by a trigger in the transaction of the change
// (migration 20261209100000): nothing here is called by the domain.
import type { Knex } from 'knex';
import type { Enqueue } from '../jobs/queue.ts';

export interface DomainEvent {
  seq: number;
  /** The audit event's id: stable, unique, what webhooks send as the event id. */
  id: string;
  /** The audit action: user.created, group.member_added, assignment.deleted, signin.succeeded, ... */
  type: string;
  occurredAt: string;
  actor: { type: string; id: string | null; clientId: string | null };
  target: { type: string | null; id: string | null };
  /** The audit record's `changes` (secrets already redacted). */
  data: Record<string, unknown> | null;
}

export interface DbEventRow {
  seq: number | string;
  id: string;
  type: string;
  occurred_at: Date | string;
  actor_type: string;
  actor_id: string | null;
  client_id: string | null;
  target_type: string | null;
  target_id: string | null;
  data: Record<string, unknown> | null;
}

export const eventFromRow = (r: DbEventRow): DomainEvent => ({
  seq: Number(r.seq),
  id: r.id,
  type: r.type,
  occurredAt: new Date(r.occurred_at).toISOString(),
  actor: { type: r.actor_type, id: r.actor_id, clientId: r.client_id },
  target: { type: r.target_type, id: r.target_id },
  data: r.data,
});

/**
 * Something that acts on events: provisioning, webhooks, logout fan-out. The relay hands it each
 * batch of new events inside the relay's transaction; it queues the jobs that do the work through
 * `enqueue` (queued if and only if the batch is marked relayed) and may read the database with
 * `trx`. It must not call out of the process: the jobs do that.
 */
export interface EventConsumer {
  name: string;
  consume(events: readonly DomainEvent[], trx: Knex.Transaction, enqueue: Enqueue): Promise<void>;
}
