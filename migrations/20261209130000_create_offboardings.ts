import type { Knex } from 'knex';

// Offboarding receipts (#21): one `offboardings` row per offboarding of a person (by an
// administrator, or when HR deactivates them over inbound SCIM), and one line per app and action
// with what was done and the app's answer, kept and updated as retries finish. A provisioning
// line's state is not kept here: it is read from provisioned_objects (the provisioning engine's).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('offboardings', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('source').notNullable().comment('admin (the API, the CLI, the console) or scim (HR deactivated the person)');
    t.text('actor_type').notNullable();
    t.text('actor_id').nullable();
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
      .comment('what the apps\' answers (e.g. a provisioning acknowledgement) must come after');
    t.index(['user_id', 'started_at'], 'offboardings__user_started');
  });
  await knex.raw(`alter table offboardings add constraint offboardings__source check (source in ('admin', 'scim'))`);
  await knex.schema.createTable('offboarding_lines', (t) => {
    t.uuid('offboarding_id').notNullable().references('id').inTable('offboardings').onDelete('CASCADE');
    t.uuid('app_id').notNullable().comment('no foreign key: the receipt outlives a deleted app');
    t.text('app_name').notNullable().comment('as it was at the offboarding');
    t.text('protocol').notNullable();
    t.text('action').notNullable().comment('tokens_revoked, oidc_backchannel_logout, saml_logout or provisioning_deactivate');
    t.text('state').notNullable().comment('pending, done, acknowledged, failed_retrying, failed or not_applicable');
    t.text('detail').nullable().comment('why not applicable, or the app\'s answer to the last attempt');
    t.integer('attempts').notNullable().defaultTo(0);
    t.jsonb('data').nullable().comment('what the outbound job needs: the OIDC sids of the person\'s sessions with the app');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['offboarding_id', 'app_id', 'action']);
  });
  await knex.raw(`alter table offboarding_lines add constraint offboarding_lines__action check (action in ('tokens_revoked', 'oidc_backchannel_logout', 'saml_logout', 'provisioning_deactivate'))`);
  await knex.raw(`alter table offboarding_lines add constraint offboarding_lines__state check (state in ('pending', 'done', 'acknowledged', 'failed_retrying', 'failed', 'not_applicable'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('offboarding_lines');
  await knex.schema.dropTableIfExists('offboardings');
}
