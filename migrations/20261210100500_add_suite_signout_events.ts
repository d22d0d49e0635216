import type { Knex } from 'knex';

// Suite-wide sign-out (#22): a `suite.signed_out` audit record is also a domain event, whose
// consumer queues the back-channel logout of the apps it names (oidc/suite-signout.ts). A trigger
// of its own beside the outbox's (migration 20261209100000), so that a later migration that
// rewrites the outbox's list of actions neither drops this one nor clashes with it (an event
// copied by both is kept once).
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function audit_events_outbox_suites() returns trigger language plpgsql as $$
    begin
      insert into events (id, type, occurred_at, actor_type, actor_id, client_id, target_type, target_id, data)
        select id, action, occurred_at, actor_type, actor_id, client_id, target_type, target_id, changes from new_rows
        where action = 'suite.signed_out'
        order by seq
        on conflict (id) do nothing;
      return null;
    end $$`);
  await knex.raw(`create trigger audit_events__outbox_suites after insert on audit_events referencing new table as new_rows
    for each statement execute function audit_events_outbox_suites()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists audit_events__outbox_suites on audit_events');
  await knex.raw('drop function if exists audit_events_outbox_suites()');
}
