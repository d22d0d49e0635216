// Rows of webhooks and webhook_deliveries.
import type { Knex } from 'knex';

type Db = Knex | Knex.Transaction;

export interface DbWebhookRow {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  secret_ciphertext: string;
  previous_secret_ciphertext: string | null;
  previous_secret_expires_at: Date | null;
  secret_rotated_at: Date | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  enabled: boolean;
  version: number;
  secretRotatedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

export const toWebhook = (r: DbWebhookRow): Webhook => ({
  id: r.id, url: r.url, description: r.description, eventTypes: r.event_types, enabled: r.enabled, version: r.version,
  secretRotatedAt: iso(r.secret_rotated_at), createdAt: iso(r.created_at)!, updatedAt: iso(r.updated_at)!,
});

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'dead';

export interface DbDeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  body: string;
  redelivery_of: string | null;
  status: DeliveryStatus;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  response_snippet: string | null;
  created_at: Date;
  last_attempt_at: Date | null;
  next_attempt_at: Date | null;
  completed_at: Date | null;
}

export interface Delivery {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  redeliveryOf: string | null;
  status: DeliveryStatus;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  responseSnippet: string | null;
  createdAt: string;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  completedAt: string | null;
}

export const toDelivery = (r: DbDeliveryRow): Delivery => ({
  id: r.id, webhookId: r.webhook_id, eventId: r.event_id, eventType: r.event_type, redeliveryOf: r.redelivery_of,
  status: r.status, attempts: r.attempts, lastStatus: r.last_status, lastError: r.last_error, responseSnippet: r.response_snippet,
  createdAt: iso(r.created_at)!, lastAttemptAt: iso(r.last_attempt_at), nextAttemptAt: iso(r.next_attempt_at), completedAt: iso(r.completed_at),
});

export const findWebhookById = (db: Db, id: string, lock?: 'update'): Promise<DbWebhookRow | undefined> => {
  const q = db<DbWebhookRow>('webhooks').where({ id }).first();
  return (lock ? q.forUpdate() : q) as Promise<DbWebhookRow | undefined>;
};

export async function findWebhooks(db: Db, opts: { after?: { createdAt: string; id: string }; limit: number }): Promise<DbWebhookRow[]> {
  const q = db<DbWebhookRow>('webhooks').orderBy([{ column: 'created_at' }, { column: 'id' }]).limit(opts.limit);
  if (opts.after) q.whereRaw('(created_at, id) > (?::timestamptz, ?::uuid)', [opts.after.createdAt, opts.after.id]);
  return q;
}

export async function insertWebhook(db: Db, row: Pick<DbWebhookRow, 'id' | 'url' | 'description' | 'event_types' | 'enabled' | 'secret_ciphertext'>): Promise<DbWebhookRow> {
  const [out] = await db<DbWebhookRow>('webhooks').insert(row).returning('*');
  return out as DbWebhookRow;
}

/** Updates at `version` (optimistic); undefined when the row changed meanwhile. */
export async function updateWebhookById(db: Db, id: string, changes: Partial<DbWebhookRow>, version: number): Promise<DbWebhookRow | undefined> {
  const [out] = await db<DbWebhookRow>('webhooks').where({ id, version })
    .update({ ...changes, version: version + 1, updated_at: db.fn.now() as unknown as Date }).returning('*');
  return out as DbWebhookRow | undefined;
}

export const deleteWebhookById = (db: Db, id: string): Promise<number> => db('webhooks').where({ id }).del();

/**
 * For each event type, the enabled webhooks subscribed to it (exactly, by its prefix `user.*`, or
 * to every event `*`): pairs of (index into `types`, webhook id), in SQL.
 */
export async function findSubscriptions(db: Db, types: readonly string[]): Promise<{ index: number; webhookId: string }[]> {
  if (!types.length) return [];
  const { rows } = await db.raw(`
    select e.ord::int - 1 as index, w.id as webhook_id
    from unnest(?::text[]) with ordinality as e(type, ord)
    join webhooks w on w.enabled and w.event_types && array['*', e.type, split_part(e.type, '.', 1) || '.*']
    order by e.ord, w.created_at, w.id`, [[...types]]);
  return (rows as { index: number; webhook_id: string }[]).map((r) => ({ index: r.index, webhookId: r.webhook_id }));
}

export async function insertDeliveries(db: Db, rows: Pick<DbDeliveryRow, 'id' | 'webhook_id' | 'event_id' | 'event_type' | 'body' | 'redelivery_of'>[]): Promise<DbDeliveryRow[]> {
  if (!rows.length) return [];
  return db<DbDeliveryRow>('webhook_deliveries').insert(rows).returning('*') as Promise<DbDeliveryRow[]>;
}

export const findDeliveryById = (db: Db, id: string): Promise<DbDeliveryRow | undefined> =>
  db<DbDeliveryRow>('webhook_deliveries').where({ id }).first() as Promise<DbDeliveryRow | undefined>;

/** One webhook's deliveries, newest first, keyset-paged. */
export async function findDeliveries(db: Db, webhookId: string, opts: { status?: DeliveryStatus; eventId?: string; before?: { createdAt: string; id: string }; limit: number }): Promise<DbDeliveryRow[]> {
  const q = db<DbDeliveryRow>('webhook_deliveries').where({ webhook_id: webhookId })
    .orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(opts.limit);
  if (opts.status) q.where({ status: opts.status });
  if (opts.eventId) q.where({ event_id: opts.eventId });
  if (opts.before) q.whereRaw('(created_at, id) < (?::timestamptz, ?::uuid)', [opts.before.createdAt, opts.before.id]);
  return q;
}

export const updateDeliveryById = (db: Db, id: string, changes: Partial<DbDeliveryRow>): Promise<number> =>
  db('webhook_deliveries').where({ id }).update(changes);

/** Deletes deliveries created more than `days` ago, a slice at a time; returns how many. */
export async function pruneDeliveries(db: Knex, days: number, slice = 5000): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await db.raw(`delete from webhook_deliveries where id in (
      select id from webhook_deliveries where created_at < now() - make_interval(days => ?) limit ?)`, [days, slice]);
    const count = (n as { rowCount?: number }).rowCount ?? 0;
    total += count;
    if (count < slice) return total;
  }
}
