import type { Knex } from 'knex';

// The outbox of domain events (#21). Every change that matters to an app is already written to
// audit_events in the transaction of the change; a statement trigger copies the events apps care
// about into `events` in that same transaction, so an event exists if and only if its change
// committed, whoever wrote it (a service, the CLI, SCIM, plain SQL). The trigger also signals
// `oneid_audit` (delivered at commit): nodes wake the relay (events -> jobs) and the audit chainer.
// The relay marks each event relayed once its jobs are queued, in one transaction.
export const EVENT_ACTIONS = [
  'user.created', 'user.updated', 'user.suspended', 'user.reactivated', 'user.deprovisioned', 'user.offboarded',
  'department.created', 'department.updated', 'department.moved', 'department.deleted',
  'department.member_added', 'department.member_updated', 'department.member_removed',
  'group.created', 'group.updated', 'group.deleted', 'group.member_added', 'group.member_removed',
  'assignment.created', 'assignment.updated', 'assignment.deleted',
  'app.created', 'app.updated', 'app.deleted', 'app_role.created', 'app_role.updated', 'app_role.deleted',
  'signin.succeeded', 'signin.failed', 'session.ended', 'sessions.ended',
];

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table events (
      seq bigserial primary key,
      id text not null unique,
      type text not null,
      occurred_at timestamptz not null,
      actor_type text not null,
      actor_id text,
      client_id text,
      target_type text,
      target_id text,
      data jsonb,
      relayed_at timestamptz
    )`);
  await knex.raw(`comment on table events is 'domain events (outbox), copied from audit_events by a trigger in the transaction of the change'`);
  await knex.raw(`comment on column events.id is 'the audit event''s id: webhooks carry it as the event id'`);
  await knex.raw(`comment on column events.relayed_at is 'when the relay queued the jobs of every consumer; null while waiting'`);
  await knex.raw('create index events__waiting on events (seq) where relayed_at is null');
  await knex.raw('create index events__occurred_at on events (occurred_at)');
  // Requests for background work are events too: provisioning.*, offboarding.*, and an admin's
  // webhook.ping_requested / webhook.redelivery_requested.
  await knex.raw(`
    create function audit_events_outbox() returns trigger language plpgsql as $$
    begin
      insert into events (id, type, occurred_at, actor_type, actor_id, client_id, target_type, target_id, data)
        select id, action, occurred_at, actor_type, actor_id, client_id, target_type, target_id, changes from new_rows
        where action = any(?::text[]) or action like 'provisioning.%' or action like 'offboarding.%'
          or action in ('webhook.ping_requested', 'webhook.redelivery_requested')
        order by seq;
      perform pg_notify('oneid_audit', '');
      return null;
    end $$`.replace('?::text[]', `array[${EVENT_ACTIONS.map((a) => `'${a}'`).join(',')}]::text[]`));
  await knex.raw(`create trigger audit_events__outbox after insert on audit_events referencing new table as new_rows
    for each statement execute function audit_events_outbox()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists audit_events__outbox on audit_events');
  await knex.raw('drop function if exists audit_events_outbox()');
  await knex.raw('drop table if exists events');
}
