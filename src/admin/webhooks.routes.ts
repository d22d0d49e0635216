// Webhooks: admin-registered URLs that receive the events they subscribe to, signed (Standard
// Webhooks), retried, with a delivery log an admin reads and redelivers from. Changes are
// super_admin only: a webhook sends the directory's changes (people, groups, sign-ins) to any URL,
// so it is a way out for personal data, like a SCIM token is a way in. Auditors may read webhooks
// and their delivery log (never a secret).
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import type { Services } from '../services.ts';
import { AppError } from '../shared/errors.ts';
import {
  createWebhookInput, DELIVERY_RETENTION_DAYS, ROTATION_OVERLAP_SECONDS, updateWebhookInput, webhookSettingsInput, type WebhooksService,
} from '../webhooks/webhooks.service.ts';
import type { Delivery, Webhook } from '../webhooks/webhooks.repo.ts';

export const webhookResource = z.object({
  id: z.uuid(),
  url: z.string(),
  description: z.string().nullable(),
  eventTypes: z.array(z.string()),
  enabled: z.boolean(),
  version: z.number().int(),
  secretRotatedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const deliveryResource = z.object({
  id: z.uuid(),
  webhookId: z.uuid(),
  eventId: z.string().describe('sent as Webhook-Id; the same on every attempt and redelivery of the event'),
  eventType: z.string(),
  redeliveryOf: z.uuid().nullable().describe('the delivery an admin redelivered'),
  status: z.enum(['pending', 'delivered', 'failed', 'dead']).describe('pending: queued or retrying; delivered: a 2xx answer; failed: refused by the receiver (3xx, 4xx but 408/429) or the destination rule, not retried; dead: out of retries'),
  attempts: z.number().int(),
  lastStatus: z.number().int().nullable().describe('HTTP status of the last attempt; null when no answer came'),
  lastError: z.string().nullable(),
  responseSnippet: z.string().nullable().describe('the start of the last answer\'s body (at most 1000 characters)'),
  createdAt: z.string(),
  lastAttemptAt: z.string().nullable(),
  nextAttemptAt: z.string().nullable().describe('about when the next retry runs (the backoff has jitter)'),
  completedAt: z.string().nullable(),
});

const withSecret = z.object({
  webhook: webhookResource,
  secret: z.string().describe('the signing secret (whsec_...): shown this once; verify each request with it (docs/admin-api.md, Webhooks)'),
});

const settings = z.object({ allowInternalDestinations: z.boolean() });

const deliveryParams = z.strictObject({ id: z.uuid(), deliveryId: z.uuid() });
const deliveriesQuery = z.strictObject({
  ...pageQuery,
  status: z.enum(['pending', 'delivered', 'failed', 'dead']).optional(),
  eventId: z.string().min(1).max(100).optional(),
});

const present = (w: Webhook): z.infer<typeof webhookResource> => w;
const presentDelivery = (d: Delivery): z.infer<typeof deliveryResource> => d;

export function registerWebhooksRoutes(api: AdminApi, services: Services): void {
  const hooks = (): WebhooksService => {
    if (!services.webhooks) throw new AppError('failed_precondition', 'webhook.no_master_key', 'webhook secrets need the master key, which this process was not given');
    return services.webhooks;
  };
  const readers = ['auditor'] as const;

  api.add({
    method: 'get', path: '/webhook-settings', tag: 'webhooks', summary: 'Whether webhooks may go to private or loopback addresses',
    roles: readers, response: settings,
    handler: async () => hooks().settings(),
  });
  api.add({
    method: 'patch', path: '/webhook-settings', tag: 'webhooks',
    summary: 'Allow or refuse private and loopback destinations (RFC 1918, 127/8, ::1, fc00::/7, CGNAT) for every webhook, checked when a URL is saved and at every connection; link-local (cloud metadata), multicast and unspecified addresses are refused always. Audited as webhook.settings_updated',
    roles: [], body: webhookSettingsInput, response: settings,
    handler: async ({ body, principal }) => hooks().updateSettings(body, principal.actor),
  });

  api.add({
    method: 'get', path: '/webhooks', tag: 'webhooks', summary: 'List webhooks (oldest first, paged in SQL); never their secrets',
    roles: readers, query: z.strictObject(pageQuery), response: page(webhookResource),
    handler: async ({ query }) => {
      const after = decodeCursorAs(query.cursor, 'webhooks', createdAtIdCursor);
      const rows = await hooks().list({ after: after ? { createdAt: after[0], id: after[1] } : undefined, limit: query.limit + 1 });
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return { items: items.map(present), next_cursor: rows.length > query.limit && last ? encodeCursor('webhooks', [last.createdAt, last.id]) : null };
    },
  });

  api.add({
    method: 'post', path: '/webhooks', tag: 'webhooks', status: 201,
    summary: 'Register a webhook: an https URL (http only to a loopback receiver; no credentials in the URL; private addresses only when allowed by /webhook-settings) and the event types it receives. The signing secret is returned this once. Audited as webhook.created',
    roles: [], body: createWebhookInput, response: withSecret,
    handler: async ({ body, principal, ctx }) => {
      const { webhook, secret } = await hooks().create(body, principal.actor);
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Location', `${ctx.path}/${webhook.id}`);
      return { webhook: present(webhook), secret };
    },
  });

  api.add({
    method: 'get', path: '/webhooks/:id', tag: 'webhooks', summary: 'Get a webhook (never its secret)',
    roles: readers, params: idParam, response: webhookResource,
    handler: async ({ params }) => present(await hooks().get(params.id)),
  });

  api.add({
    method: 'patch', path: '/webhooks/:id', tag: 'webhooks', summary: 'Change a webhook\'s URL, description, event types or enabled (If-Match with the ETag refuses stale writes: 412). Audited as webhook.updated',
    roles: [], params: idParam, body: updateWebhookInput, response: webhookResource,
    handler: async ({ params, body, principal, ifMatch }) => present(await hooks().update(params.id, body, principal.actor, ifMatch)),
  });

  api.add({
    method: 'delete', path: '/webhooks/:id', tag: 'webhooks', status: 204, summary: 'Delete a webhook and its delivery log (If-Match honoured). Audited as webhook.deleted',
    roles: [], params: idParam,
    handler: async ({ params, principal, ifMatch }) => hooks().delete(params.id, principal.actor, ifMatch),
  });

  api.add({
    method: 'post', path: '/webhooks/:id/rotate-secret', tag: 'webhooks',
    summary: `A new signing secret, returned this once; the old one keeps signing beside it (a second v1 signature) for ${ROTATION_OVERLAP_SECONDS / 3600} hours. Audited as webhook.secret_rotated`,
    roles: [], params: idParam, response: withSecret,
    handler: async ({ params, principal, ifMatch, ctx }) => {
      const { webhook, secret } = await hooks().rotateSecret(params.id, principal.actor, ifMatch);
      ctx.set('Cache-Control', 'no-store');
      return { webhook: present(webhook), secret };
    },
  });

  api.add({
    method: 'get', path: '/webhooks/:id/deliveries', tag: 'webhooks',
    summary: `The webhook's delivery log, newest first (paged in SQL; kept ${DELIVERY_RETENTION_DAYS} days)`,
    roles: readers, params: idParam, query: deliveriesQuery, response: page(deliveryResource),
    handler: async ({ params, query }) => {
      const before = decodeCursorAs(query.cursor, 'webhook.deliveries', createdAtIdCursor);
      const rows = await hooks().deliveries(params.id, {
        status: query.status, eventId: query.eventId, before: before ? { createdAt: before[0], id: before[1] } : undefined, limit: query.limit + 1,
      });
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return { items: items.map(presentDelivery), next_cursor: rows.length > query.limit && last ? encodeCursor('webhook.deliveries', [last.createdAt, last.id]) : null };
    },
  });

  api.add({
    method: 'get', path: '/webhooks/:id/deliveries/:deliveryId', tag: 'webhooks', summary: 'One delivery, with the exact body it sends',
    roles: readers, params: deliveryParams, response: deliveryResource.extend({ body: z.string() }),
    handler: async ({ params }) => hooks().delivery(params.id, params.deliveryId),
  });

  api.add({
    method: 'post', path: '/webhooks/:id/deliveries/:deliveryId/redeliver', tag: 'webhooks', status: 202,
    summary: 'Send the same event body again, as a new delivery with the same Webhook-Id (receivers dedupe on it); 412 webhook.disabled when the webhook is off. Audited as webhook.redelivery_requested',
    roles: [], params: deliveryParams, response: deliveryResource,
    handler: async ({ params, principal }) => presentDelivery(await hooks().redeliver(params.id, params.deliveryId, principal.actor)),
  });

  api.add({
    method: 'post', path: '/webhooks/:id/ping', tag: 'webhooks', status: 202,
    summary: 'Send a test event (type webhook.ping) to this webhook; its outcome shows in the delivery log. Audited as webhook.ping_requested',
    roles: [], params: idParam, response: deliveryResource,
    handler: async ({ params, principal }) => presentDelivery(await hooks().ping(params.id, principal.actor)),
  });
}
