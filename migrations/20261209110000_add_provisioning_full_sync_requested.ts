import type { Knex } from 'knex';

// A full sync asked for (admin API, CLI) is remembered on the target, not only as a queued job:
// the app's reconcile jobs share one stately key, so a request made while an ordinary reconcile
// waits would otherwise be collapsed into it and lost. The next reconcile of the app runs full.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('provisioning_targets', (t) => {
    t.timestamp('full_sync_requested_at', { useTz: true }).nullable().comment('a full sync was asked for at this time and has not started since');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('provisioning_targets', (t) => {
    t.dropColumn('full_sync_requested_at');
  });
}
