import type { Knex } from 'knex';

// Every OneID node keeps the OIDC clients it has read in memory (src/apps/client-cache.ts) and
// forgets one when PostgreSQL says it changed: this trigger sends the client_id of every inserted,
// updated or deleted app on the channel oneid_app_changed, delivered to listeners at commit, and
// only if the transaction commits. Whatever writes the row (API, CLI, SQL by hand) is covered.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function apps_notify_change() returns trigger language plpgsql as $$
    begin
      if tg_op in ('UPDATE', 'DELETE') then
        perform pg_notify('oneid_app_changed', old.client_id);
      end if;
      if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.client_id is distinct from old.client_id) then
        perform pg_notify('oneid_app_changed', new.client_id);
      end if;
      return null;
    end $$`);
  await knex.raw(`
    create trigger apps_notify_change after insert or update or delete on apps
      for each row execute function apps_notify_change()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger apps_notify_change on apps');
  await knex.raw('drop function apps_notify_change()');
}
