// Webhooks in the background: the consumer turns each event into one delivery row and one
// `webhook.deliver` job per enabled webhook subscribed to its type (in the relay's transaction:
// both exist if and only if the relay commits); the deliver queue runs the attempts; a daily job
// prunes deliveries older than DELIVERY_RETENTION_DAYS.
import type { BackgroundContext, BackgroundFeature } from '../jobs/background.ts';
import type { DomainEvent } from '../events/events.ts';
import { newId } from '../shared/ids.ts';
import { WEBHOOK_REQUEST_ACTIONS } from '../../migrations/20261209120000_create_webhooks.ts';
import { deliver, DELIVER_QUEUE, DELIVERY_TIMEOUT_MS, type DeliverJob } from './delivery.ts';
import { findSubscriptions, insertDeliveries, pruneDeliveries } from './webhooks.repo.ts';
import { DELIVERY_RETENTION_DAYS, WebhooksService, type WebhookPayload } from './webhooks.service.ts';

export const PRUNE_QUEUE = 'webhooks.prune';

/** The body receivers get: one event per request. */
export const payloadOf = (e: DomainEvent): WebhookPayload => ({
  id: e.id, type: e.type, occurredAt: e.occurredAt, actor: e.actor, target: e.target, data: e.data,
});

export function webhooksFeature(ctx: BackgroundContext): BackgroundFeature {
  const { db, log, config } = ctx;
  const webhooks = ctx.services.webhooks ?? new WebhooksService(db, ctx.masterKey);
  return {
    consumer: {
      name: 'webhooks',
      consume: async (events, trx, enqueue) => {
        const jobs: { data: DeliverJob }[] = [];
        // A ping or redelivery an admin asked for: its pending row exists; queue it.
        for (const e of events) {
          if (!WEBHOOK_REQUEST_ACTIONS.includes(e.type)) continue;
          const deliveryId = (e.data as { deliveryId?: unknown } | null)?.deliveryId;
          if (typeof deliveryId === 'string') jobs.push({ data: { deliveryId } });
        }
        const fanned = events.filter((e) => !WEBHOOK_REQUEST_ACTIONS.includes(e.type));
        const subscriptions = await findSubscriptions(trx, fanned.map((e) => e.type));
        if (subscriptions.length) {
          const bodies = new Map<number, string>();
          const rows = subscriptions.map(({ index, webhookId }) => {
            const e = fanned[index]!;
            if (!bodies.has(index)) bodies.set(index, JSON.stringify(payloadOf(e)));
            return { id: newId(), webhook_id: webhookId, event_id: e.id, event_type: e.type, body: bodies.get(index)!, redelivery_of: null };
          });
          await insertDeliveries(trx, rows);
          for (const r of rows) jobs.push({ data: { deliveryId: r.id } });
        }
        await enqueue.sendMany(DELIVER_QUEUE, jobs);
      },
    },
    queues: [
      {
        name: DELIVER_QUEUE, policy: 'standard', concurrency: 4,
        // Well above the 10 s request timeout: an attempt still running is never taken twice.
        expireInSeconds: Math.ceil(DELIVERY_TIMEOUT_MS / 1000) * 6,
        handler: (job) => deliver({ db, log, jobs: config.jobs, webhooks }, job as never),
      },
      {
        name: PRUNE_QUEUE, policy: 'stately', retry: false, cron: '41 3 * * *',
        handler: async () => ({ deleted: await pruneDeliveries(db, DELIVERY_RETENTION_DAYS) }),
      },
    ],
  };
}
