// Webhooks an administrator registers: where events go, which ones, and the signing secret
// (encrypted with the master key; shown once at creation and at each rotation). Every change is
// audited in its transaction. A ping or a redelivery writes its pending delivery row and an audit
// record the outbox turns into an event (migration 20261209120000): the webhooks consumer queues
// the delivery; nothing here calls the job queue.
import type { DomainEvent } from '../events/events.ts';
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../audit/audit.service.ts';
import { parseInput } from '../directory/users.service.ts';
import type { MasterKey } from '../keys/master-key.ts';
import { EVENT_ACTIONS } from '../../migrations/20261209100000_create_events_outbox.ts';
import { checkWebhookUrl, WEBHOOK_URL_MAX } from './destinations.ts';
import { newWebhookSecret } from './signature.ts';
import {
  deleteWebhookById, findDeliveries, findDeliveryById, findWebhookById, findWebhooks, insertDeliveries, insertWebhook, toDelivery, toWebhook,
  updateWebhookById, type DbWebhookRow, type Delivery, type DeliveryStatus, type Webhook,
} from './webhooks.repo.ts';

/**
 * Types a webhook may subscribe to: the outbox's actions, and the open families of background
 * requests and of suites (migration 20261210100500).
 */
const OPEN_FAMILIES = ['provisioning', 'offboarding', 'suite', 'suite_role', 'suite_assignment', 'suite_grant'];
const KNOWN_FAMILIES = new Set([...EVENT_ACTIONS.map((a) => a.split('.')[0]!), ...OPEN_FAMILIES]);

const eventType = z.string().trim().max(100).refine((t) => {
  if (t === '*') return true;
  const m = /^([a-z_]+)\.(\*|[a-z_]+)$/.exec(t);
  if (!m) return false;
  if (m[2] === '*') return KNOWN_FAMILIES.has(m[1]!);
  return EVENT_ACTIONS.includes(t) || OPEN_FAMILIES.includes(m[1]!);
}, 'not an event type: use an exact type (user.created), a prefix (user.*) or * for every event; see docs/admin-api.md');

const eventTypes = z.array(eventType).min(1).max(50).transform((a) => [...new Set(a)])
  .describe('exact types (user.created), prefixes (user.*) or ["*"] for every event');
const description = z.string().trim().max(500);
const url = z.string().trim().min(1).max(WEBHOOK_URL_MAX);

export const createWebhookInput = z.strictObject({
  url,
  description: description.nullable().optional(),
  eventTypes,
  enabled: z.boolean().optional(),
});
export const updateWebhookInput = z.strictObject({
  url: url.optional(),
  description: description.nullable().optional(),
  eventTypes: eventTypes.optional(),
  enabled: z.boolean().optional(),
});
export const webhookSettingsInput = z.strictObject({
  allowInternalDestinations: z.boolean().describe('true: URLs and names resolving to private or loopback addresses (RFC 1918, 127/8, ::1, fc00::/7, CGNAT) are accepted'),
});

/** How long a rotated-out secret keeps signing beside the new one (receivers switch without a gap). */
export const ROTATION_OVERLAP_SECONDS = 24 * 3600;
/** Deliveries are kept this long (a daily job deletes older ones). */
export const DELIVERY_RETENTION_DAYS = 30;
const SETTINGS_KEY = 'webhooks.allow_internal_destinations';

const notFound = () => new AppError('not_found', 'webhook.not_found', 'no webhook with this id');
const deliveryNotFound = () => new AppError('not_found', 'webhook.delivery_not_found', 'no delivery with this id for this webhook');

function assertVersion(row: DbWebhookRow, expected: number | undefined): void {
  if (expected !== undefined && expected !== row.version) {
    throw new AppError('failed_precondition', 'webhook.version_mismatch', `the webhook is at version ${row.version}, not ${expected}`);
  }
}

/** The JSON body of one event, as receivers get it: the domain event without its outbox position. */
export type WebhookPayload = Omit<DomainEvent, 'seq'>;

export class WebhooksService {
  constructor(private readonly db: Knex, private readonly masterKey: MasterKey) {}

  /** Whether private and loopback destinations are accepted (a super_admin's choice; default no). */
  async allowInternalDestinations(db: Knex | Knex.Transaction = this.db): Promise<boolean> {
    const row = await db('instance_settings').where({ key: SETTINGS_KEY }).first<{ value: string } | undefined>('value');
    return row?.value === 'true';
  }

  async settings(): Promise<{ allowInternalDestinations: boolean }> {
    return { allowInternalDestinations: await this.allowInternalDestinations() };
  }

  async updateSettings(raw: z.input<typeof webhookSettingsInput>, actor: Actor = SYSTEM_ACTOR): Promise<{ allowInternalDestinations: boolean }> {
    const input = parseInput(webhookSettingsInput, raw);
    return this.db.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(hashtext(?))', [SETTINGS_KEY]);
      const before = await this.allowInternalDestinations(trx);
      if (before !== input.allowInternalDestinations) {
        await trx('instance_settings').insert({ key: SETTINGS_KEY, value: String(input.allowInternalDestinations) }).onConflict('key').merge();
        await recordAudit(trx, actor, {
          action: 'webhook.settings_updated', targetType: 'settings', targetId: 'webhooks',
          changes: { allowInternalDestinations: input.allowInternalDestinations }, before: { allowInternalDestinations: before },
        });
      }
      return { allowInternalDestinations: input.allowInternalDestinations };
    });
  }

  async create(raw: z.input<typeof createWebhookInput>, actor: Actor = SYSTEM_ACTOR): Promise<{ webhook: Webhook; secret: string }> {
    const input = parseInput(createWebhookInput, raw);
    const secret = newWebhookSecret();
    return this.db.transaction(async (trx) => {
      const target = checkWebhookUrl(input.url, { allowInternalDestinations: await this.allowInternalDestinations(trx) });
      const row = await insertWebhook(trx, {
        id: newId(), url: target, description: input.description ?? null, event_types: input.eventTypes,
        enabled: input.enabled ?? true, secret_ciphertext: this.masterKey.encrypt(secret),
      });
      await recordAudit(trx, actor, {
        action: 'webhook.created', targetType: 'webhook', targetId: row.id,
        changes: { url: target, description: row.description, eventTypes: row.event_types, enabled: row.enabled },
      });
      return { webhook: toWebhook(row), secret };
    });
  }

  async list(opts: { after?: { createdAt: string; id: string }; limit: number }): Promise<Webhook[]> {
    return (await findWebhooks(this.db, opts)).map(toWebhook);
  }

  async get(id: string): Promise<Webhook> {
    const row = await findWebhookById(this.db, id);
    if (!row) throw notFound();
    return toWebhook(row);
  }

  async update(id: string, raw: z.input<typeof updateWebhookInput>, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<Webhook> {
    const input = parseInput(updateWebhookInput, raw);
    return this.db.transaction(async (trx) => {
      const current = await findWebhookById(trx, id, 'update');
      if (!current) throw notFound();
      assertVersion(current, expectedVersion);
      const changes: Partial<DbWebhookRow> = {};
      const audited: Record<string, unknown> = {};
      const before: Record<string, unknown> = {};
      if (input.url !== undefined) {
        const target = checkWebhookUrl(input.url, { allowInternalDestinations: await this.allowInternalDestinations(trx) });
        if (target !== current.url) { changes.url = target; audited.url = target; before.url = current.url; }
      }
      if (input.description !== undefined && input.description !== current.description) {
        changes.description = input.description; audited.description = input.description; before.description = current.description;
      }
      if (input.eventTypes !== undefined && JSON.stringify(input.eventTypes) !== JSON.stringify(current.event_types)) {
        changes.event_types = input.eventTypes; audited.eventTypes = input.eventTypes; before.eventTypes = current.event_types;
      }
      if (input.enabled !== undefined && input.enabled !== current.enabled) {
        changes.enabled = input.enabled; audited.enabled = input.enabled; before.enabled = current.enabled;
      }
      if (!Object.keys(changes).length) return toWebhook(current);
      const updated = await updateWebhookById(trx, id, changes, current.version);
      if (!updated) throw new AppError('failed_precondition', 'webhook.version_mismatch', 'the webhook changed during the update; retry');
      await recordAudit(trx, actor, { action: 'webhook.updated', targetType: 'webhook', targetId: id, changes: audited, before });
      return toWebhook(updated);
    });
  }

  /** Deletes the webhook and its delivery log; queued deliveries find nothing and stop. */
  async delete(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<void> {
    await this.db.transaction(async (trx) => {
      const current = await findWebhookById(trx, id, 'update');
      if (!current) throw notFound();
      assertVersion(current, expectedVersion);
      await deleteWebhookById(trx, id);
      await recordAudit(trx, actor, { action: 'webhook.deleted', targetType: 'webhook', targetId: id, changes: { url: current.url, eventTypes: current.event_types } });
    });
  }

  /**
   * A new signing secret, returned once. The old one keeps signing beside it (a second `v1,`
   * signature) for ROTATION_OVERLAP_SECONDS, so receivers can switch without dropping events.
   */
  async rotateSecret(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<{ webhook: Webhook; secret: string }> {
    const secret = newWebhookSecret();
    return this.db.transaction(async (trx) => {
      const current = await findWebhookById(trx, id, 'update');
      if (!current) throw notFound();
      assertVersion(current, expectedVersion);
      const updated = await updateWebhookById(trx, id, {
        secret_ciphertext: this.masterKey.encrypt(secret),
        previous_secret_ciphertext: current.secret_ciphertext,
        previous_secret_expires_at: trx.raw('now() + make_interval(secs => ?)', [ROTATION_OVERLAP_SECONDS]) as unknown as Date,
        secret_rotated_at: trx.fn.now() as unknown as Date,
      }, current.version);
      if (!updated) throw new AppError('failed_precondition', 'webhook.version_mismatch', 'the webhook changed during the rotation; retry');
      await recordAudit(trx, actor, { action: 'webhook.secret_rotated', targetType: 'webhook', targetId: id, changes: { overlapSeconds: ROTATION_OVERLAP_SECONDS } });
      return { webhook: toWebhook(updated), secret };
    });
  }

  /** The secrets that sign a delivery now: the current one, and the previous while it overlaps. */
  signingSecrets(row: DbWebhookRow, now = Date.now()): string[] {
    const out = [this.masterKey.decrypt(row.secret_ciphertext)];
    if (row.previous_secret_ciphertext && row.previous_secret_expires_at && new Date(row.previous_secret_expires_at).getTime() > now) {
      out.push(this.masterKey.decrypt(row.previous_secret_ciphertext));
    }
    return out;
  }

  async deliveries(webhookId: string, opts: { status?: DeliveryStatus; eventId?: string; before?: { createdAt: string; id: string }; limit: number }): Promise<Delivery[]> {
    if (!(await findWebhookById(this.db, webhookId))) throw notFound();
    return (await findDeliveries(this.db, webhookId, opts)).map(toDelivery);
  }

  async delivery(webhookId: string, deliveryId: string): Promise<Delivery & { body: string }> {
    const row = await findDeliveryById(this.db, deliveryId);
    if (!row || row.webhook_id !== webhookId) throw deliveryNotFound();
    return { ...toDelivery(row), body: row.body };
  }

  /** Queues the same event body again, as a new delivery (same Webhook-Id: receivers dedupe on it). */
  async redeliver(webhookId: string, deliveryId: string, actor: Actor = SYSTEM_ACTOR): Promise<Delivery> {
    return this.db.transaction(async (trx) => {
      const webhook = await this.#enabledWebhook(trx, webhookId);
      const original = await findDeliveryById(trx, deliveryId);
      if (!original || original.webhook_id !== webhook.id) throw deliveryNotFound();
      const [row] = await insertDeliveries(trx, [{
        id: newId(), webhook_id: webhook.id, event_id: original.event_id, event_type: original.event_type, body: original.body, redelivery_of: original.id,
      }]);
      await recordAudit(trx, actor, {
        action: 'webhook.redelivery_requested', targetType: 'webhook', targetId: webhook.id,
        changes: { deliveryId: row!.id, redeliveryOf: original.id, eventId: original.event_id, eventType: original.event_type },
      });
      return toDelivery(row!);
    });
  }

  /** Queues a test event (type webhook.ping) to this webhook alone. */
  async ping(webhookId: string, actor: Actor = SYSTEM_ACTOR): Promise<Delivery> {
    return this.db.transaction(async (trx) => {
      const webhook = await this.#enabledWebhook(trx, webhookId);
      const payload: WebhookPayload = {
        id: newId(), type: 'webhook.ping', occurredAt: new Date().toISOString(),
        actor: { type: actor.type, id: actor.id ?? null, clientId: actor.clientId ?? null },
        target: { type: 'webhook', id: webhook.id },
        data: { message: 'a test event from OneID' },
      };
      const [row] = await insertDeliveries(trx, [{
        id: newId(), webhook_id: webhook.id, event_id: payload.id, event_type: payload.type, body: JSON.stringify(payload), redelivery_of: null,
      }]);
      await recordAudit(trx, actor, { action: 'webhook.ping_requested', targetType: 'webhook', targetId: webhook.id, changes: { deliveryId: row!.id, eventId: payload.id } });
      return toDelivery(row!);
    });
  }

  async #enabledWebhook(trx: Knex.Transaction, id: string): Promise<DbWebhookRow> {
    const webhook = await findWebhookById(trx, id);
    if (!webhook) throw notFound();
    if (!webhook.enabled) throw new AppError('failed_precondition', 'webhook.disabled', 'the webhook is disabled; enable it first');
    return webhook;
  }
}
