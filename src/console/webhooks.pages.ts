// The console's webhooks: the list (with the destination rule), registering one (its signing
// secret shown once, with how receivers verify it), and a webhook's page: enable or disable, edit,
// rotate the secret (shown once), send a test event, delete, and the delivery log with a
// redeliver button per delivery. Every read and write is the admin API's own route (pages.ts):
// auditors read, only a super_admin changes anything.
import type { Context } from 'koa';
import type { z } from 'zod';
import type { deliveryResource, webhookResource } from '../admin/webhooks.routes.ts';
import { page, sendTo, type ConsolePage, type RegisterPages } from './pages.ts';

type Webhook = z.infer<typeof webhookResource>;
type Delivery = z.infer<typeof deliveryResource>;
type Form = Record<string, unknown>;

const LIST_SIZE = 50;
const DELIVERY_PAGE = 25;
/** The families offered as checkboxes; anything else (an exact type) goes in the text field. */
export const COMMON_EVENT_TYPES = ['*', 'user.*', 'group.*', 'department.*', 'assignment.*', 'app.*', 'app_role.*', 'signin.*', 'session.*', 'offboarding.*', 'provisioning.*', 'suite.*'] as const;
/** The notices a redirect may ask the next page to show (nothing else from the URL is echoed). */
const NOTICES = ['saved', 'enabled', 'disabled', 'pinged', 'redelivered', 'deleted', 'settings_saved'] as const;

const text = (form: Form, name: string): string => {
  const v = form[name];
  return typeof v === 'string' ? v.trim() : '';
};
const list = (form: Form, name: string): string[] => {
  const v = form[name];
  const values = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.values(v) : [v];
  return values.filter((x): x is string => typeof x === 'string' && x !== '');
};
const bodyOf = (ctx: Context): Form => (ctx.request.body ?? {}) as Form;
const param = (ctx: Context, name: string): string => String((ctx.params as Record<string, string>)[name] ?? '');
const version = (form: Form): number | undefined => (/^\d{1,9}$/.test(text(form, 'version')) ? Number(text(form, 'version')) : undefined);
const cursorOf = (value: unknown): string | undefined => (typeof value === 'string' && value ? value.slice(0, 500) : undefined);
const shortTime = (iso: string | null): string | null => (iso ? iso.replace('T', ' ').replace(/(:\d{2})\.\d+Z$/, '$1').replace(/Z$/, '') : null);

/**
 * The event types a form chose: the ticked families and whatever was typed (commas, spaces or
 * lines between), deduplicated. The API checks each one and names a bad one in its refusal.
 */
function eventTypesOf(form: Form): string[] {
  const typed = text(form, 'eventTypesText').split(/[\s,]+/).filter(Boolean);
  return [...new Set([...list(form, 'eventTypes'), ...typed])].slice(0, 60);
}

/** How a webhook's event types show in its form: ticked families, the rest as text. */
function formTypes(types: string[]): { ticked: string[]; other: string } {
  const common = new Set<string>(COMMON_EVENT_TYPES);
  return { ticked: types.filter((t) => common.has(t)), other: types.filter((t) => !common.has(t)).join(', ') };
}

const presentWebhook = (w: Webhook) => ({ ...w, created: shortTime(w.createdAt), rotated: shortTime(w.secretRotatedAt) });
const presentDelivery = (d: Delivery) => ({ ...d, created: shortTime(d.createdAt), lastAttempt: shortTime(d.lastAttemptAt), nextAttempt: shortTime(d.nextAttemptAt) });

/** The delivery log's first page or the page after `cursor`; `polling` while a delivery on it is still pending. */
async function deliveriesOf(c: ConsolePage, id: string, cursor: string | undefined) {
  const result = await c.call<{ items: Delivery[]; next_cursor: string | null }>('get', '/webhooks/:id/deliveries', {
    params: { id }, query: { limit: String(DELIVERY_PAGE), ...(cursor ? { cursor } : {}) },
  });
  const items = result.items.map(presentDelivery);
  return { items, next: result.next_cursor, cursor, polling: items.some((d) => d.status === 'pending') };
}

export const registerWebhooksPages: RegisterPages = (router) => {
  // ---- the list ---------------------------------------------------------------------------
  router.get('/webhooks', async (ctx) => {
    const c = page(ctx);
    const cursor = cursorOf(ctx.query.cursor);
    const [result, settings] = await Promise.all([
      c.call<{ items: Webhook[]; next_cursor: string | null }>('get', '/webhooks', { query: { limit: String(LIST_SIZE), ...(cursor ? { cursor } : {}) } }),
      c.may('get', '/webhook-settings') ? c.call<{ allowInternalDestinations: boolean }>('get', '/webhook-settings') : undefined,
    ]);
    c.render('webhooks-list.njk', {
      section: 'webhooks', hooks: result.items.map(presentWebhook), next: result.next_cursor, first: !cursor, settings,
      notice: NOTICES.find((n) => n === ctx.query.notice),
      may: { create: c.may('post', '/webhooks'), settings: c.may('patch', '/webhook-settings') },
    });
  });

  router.post('/webhooks/settings', async (ctx) => {
    const c = page(ctx);
    await c.call('patch', '/webhook-settings', { body: { allowInternalDestinations: text(bodyOf(ctx), 'allowInternalDestinations') === 'true' } });
    sendTo(ctx, '/admin/webhooks?notice=settings_saved');
  });

  // ---- register ---------------------------------------------------------------------------
  router.get('/webhooks/new', (ctx) => {
    page(ctx).render('webhooks-new.njk', { section: 'webhooks', common: COMMON_EVENT_TYPES, types: { ticked: [], other: '' } });
  });

  router.post('/webhooks/new', async (ctx) => {
    const c = page(ctx);
    const form = bodyOf(ctx);
    const created = await c.call<{ webhook: Webhook; secret: string }>('post', '/webhooks', {
      body: { url: text(form, 'url'), description: text(form, 'description') || null, eventTypes: eventTypesOf(form) },
    });
    renderSecret(ctx, c, created, true);
  });

  /**
   * The secret is in this answer only: htmx swaps it in and puts the webhook's own URL in the
   * address bar, so a reload shows the webhook without it (the console answers with no-store).
   */
  function renderSecret(ctx: Context, c: ConsolePage, got: { webhook: Webhook; secret: string }, created: boolean): void {
    const vars = { section: 'webhooks', hook: presentWebhook(got.webhook), secret: got.secret, created };
    if (c.partial) {
      ctx.set('HX-Push-Url', `/admin/webhooks/${got.webhook.id}`);
      c.render('webhooks-secret.njk', vars, created ? 201 : 200);
    } else {
      c.render('webhooks-secret-page.njk', vars, created ? 201 : 200);
    }
  }

  // ---- one webhook ------------------------------------------------------------------------
  router.get('/webhooks/:id', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    const cursor = cursorOf(ctx.query.dcursor);
    // The delivery log polls itself while a delivery is pending: answer with the log alone.
    if (c.partial && ctx.get('hx-target') === 'deliveries') {
      c.render('webhooks-deliveries.njk', { hook: { id }, deliveries: await deliveriesOf(c, id, cursor), may: { redeliver: c.may('post', '/webhooks/:id/deliveries/:deliveryId/redeliver') } });
      return;
    }
    const [hook, deliveries] = await Promise.all([c.call<Webhook>('get', '/webhooks/:id', { params: { id } }), deliveriesOf(c, id, cursor)]);
    c.render('webhooks-detail.njk', {
      section: 'webhooks', hook: presentWebhook(hook), deliveries, common: COMMON_EVENT_TYPES, types: formTypes(hook.eventTypes),
      notice: NOTICES.find((n) => n === ctx.query.notice),
      may: {
        edit: c.may('patch', '/webhooks/:id'),
        rotate: c.may('post', '/webhooks/:id/rotate-secret'),
        ping: c.may('post', '/webhooks/:id/ping') && hook.enabled,
        remove: c.may('delete', '/webhooks/:id'),
        redeliver: c.may('post', '/webhooks/:id/deliveries/:deliveryId/redeliver') && hook.enabled,
      },
    });
  });

  router.post('/webhooks/:id', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await c.call('patch', '/webhooks/:id', {
      params: { id }, ifMatch: version(form),
      body: { url: text(form, 'url'), description: text(form, 'description') || null, eventTypes: eventTypesOf(form) },
    });
    sendTo(ctx, `/admin/webhooks/${id}?notice=saved`);
  });

  router.post('/webhooks/:id/enabled', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const enabled = text(form, 'enabled') === 'true';
    await c.call('patch', '/webhooks/:id', { params: { id }, ifMatch: version(form), body: { enabled } });
    sendTo(ctx, `/admin/webhooks/${id}?notice=${enabled ? 'enabled' : 'disabled'}`);
  });

  router.post('/webhooks/:id/rotate', async (ctx) => {
    const c = page(ctx);
    const rotated = await c.call<{ webhook: Webhook; secret: string }>('post', '/webhooks/:id/rotate-secret', { params: { id: param(ctx, 'id') } });
    renderSecret(ctx, c, rotated, false);
  });

  router.post('/webhooks/:id/ping', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    await c.call('post', '/webhooks/:id/ping', { params: { id } });
    sendTo(ctx, `/admin/webhooks/${id}?notice=pinged#deliveries`);
  });

  router.post('/webhooks/:id/delete', async (ctx) => {
    const c = page(ctx);
    await c.call('delete', '/webhooks/:id', { params: { id: param(ctx, 'id') }, ifMatch: version(bodyOf(ctx)) });
    sendTo(ctx, '/admin/webhooks?notice=deleted');
  });

  router.post('/webhooks/:id/deliveries/:deliveryId/redeliver', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    await c.call('post', '/webhooks/:id/deliveries/:deliveryId/redeliver', { params: { id, deliveryId: param(ctx, 'deliveryId') } });
    sendTo(ctx, `/admin/webhooks/${id}?notice=redelivered#deliveries`);
  });
};
