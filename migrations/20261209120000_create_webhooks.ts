import type { Knex } from 'knex';

// Webhooks (#21): admin-registered URLs that receive the domain events they subscribe to, and the
// log of every delivery (one row per event and webhook, with each attempt's outcome).
//
// A ping or a redelivery is asked for through the audit log like any other background work: the
// admin API writes the pending delivery row and an audit record `webhook.ping_requested` /
// `webhook.redelivery_requested` in one transaction; the outbox trigger (20261209100000) copies
// those two actions into `events`, and the webhooks consumer queues the delivery when the relay
// hands it the event.
export const WEBHOOK_REQUEST_ACTIONS = ['webhook.ping_requested', 'webhook.redelivery_requested'];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('webhooks', (t) => {
    t.uuid('id').primary();
    t.text('url').notNullable().comment('where events are POSTed (https, or http to a loopback host; see src/webhooks/destinations.ts)');
    t.text('description').nullable();
    t.specificType('event_types', 'text[]').notNullable().comment('exact types (user.created), prefixes (user.*) or * for every event');
    t.boolean('enabled').notNullable().defaultTo(true);
    t.text('secret_ciphertext').notNullable().comment('the signing secret (whsec_...), encrypted with the master key');
    t.text('previous_secret_ciphertext').nullable().comment('the secret before the last rotation, still signing beside the new one until previous_secret_expires_at');
    t.timestamp('previous_secret_expires_at', { useTz: true }).nullable();
    t.timestamp('secret_rotated_at', { useTz: true }).nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.raw(`date_trunc('milliseconds', now())`));
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index webhooks__created on webhooks (created_at, id)');

  await knex.schema.createTable('webhook_deliveries', (t) => {
    t.uuid('id').primary();
    t.uuid('webhook_id').notNullable().references('id').inTable('webhooks').onDelete('CASCADE');
    t.text('event_id').notNullable().comment('the event id (Webhook-Id): the same for every attempt and redelivery of an event');
    t.text('event_type').notNullable();
    t.text('body').notNullable().comment('the exact JSON body sent, so a redelivery sends the same bytes');
    t.uuid('redelivery_of').nullable().comment('the delivery this one repeats (admin redelivery)');
    t.text('status').notNullable().defaultTo('pending').comment('pending (queued or retrying), delivered (2xx), failed (not retried), dead (out of retries)');
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('last_status').nullable().comment('the HTTP status of the last attempt; null when no answer came');
    t.text('last_error').nullable().comment('why the last attempt failed (bounded, never a secret)');
    t.text('response_snippet').nullable().comment('the start of the last answer\'s body (bounded; our secret and signature redacted)');
    // Milliseconds, as the API's keyset cursors carry them.
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.raw(`date_trunc('milliseconds', now())`));
    t.timestamp('last_attempt_at', { useTz: true }).nullable();
    t.timestamp('next_attempt_at', { useTz: true }).nullable().comment('about when the queue retries (its backoff has jitter)');
    t.timestamp('completed_at', { useTz: true }).nullable().comment('when it became delivered, failed or dead');
  });
  await knex.raw(`alter table webhook_deliveries add constraint webhook_deliveries__status check (status in ('pending', 'delivered', 'failed', 'dead'))`);
  await knex.raw('alter table webhook_deliveries add constraint webhook_deliveries__last_error check (char_length(last_error) <= 1000)');
  await knex.raw('alter table webhook_deliveries add constraint webhook_deliveries__response_snippet check (char_length(response_snippet) <= 2000)');
  // The delivery log: one webhook's deliveries, newest first (keyset paging).
  await knex.raw('create index webhook_deliveries__log on webhook_deliveries (webhook_id, created_at desc, id desc)');
  // The daily prune.
  await knex.raw('create index webhook_deliveries__created on webhook_deliveries (created_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('webhook_deliveries');
  await knex.schema.dropTableIfExists('webhooks');
}
