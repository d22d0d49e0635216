import type { Knex } from 'knex';

// Suites (#22): their audit records are domain events too. `suite.signed_out` has a consumer that
// queues the back-channel logout of the apps it names (oidc/suite-signout.ts); the suites'
// changes (suite.*, suite_role.*, suite_assignment.*, suite_grant.*) go to webhooks. A trigger of
// its own beside the outbox's (migration 20261209100000), so that a later migration that rewrites
// the outbox's list of actions neither drops this one nor clashes with it (an event copied by
// both is kept once). The per-app rows a suite assignment makes are already events
// (assignment.*), through the outbox's own list.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function audit_events_outbox_suites() returns trigger language plpgsql as $$
    begin
      insert into events (id, type, occurred_at, actor_type, actor_id, client_id, target_type, target_id, data)
        select id, action, occurred_at, actor_type, actor_id, client_id, target_type, target_id, changes from new_rows
        where split_part(action, '.', 1) in ('suite', 'suite_role', 'suite_assignment', 'suite_grant')
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
