import type { Knex } from 'knex';

// Outbound provisioning (#21): OneID as a SCIM client of an app. A target says where and how an
// app is kept in step; provisioned_objects says, per person or group, what the app holds (its
// id for the object, and the outcome of the last push), so a retried create is never duplicated.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('provisioning_targets', (t) => {
    t.uuid('app_id').primary().references('id').inTable('apps').onDelete('CASCADE');
    t.boolean('enabled').notNullable().defaultTo(true);
    t.text('base_url').notNullable().comment('the app\'s SCIM base URL (…/scim/v2)');
    t.text('token_ciphertext').notNullable().comment('the app\'s bearer token, encrypted with the master key');
    t.boolean('push_users').notNullable().defaultTo(true);
    t.boolean('push_groups').notNullable().defaultTo(false);
    t.text('on_unassign').notNullable().defaultTo('deactivate').comment('when a person loses the app or leaves: deactivate (active false) or delete');
    t.text('roles_as').notNullable().defaultTo('roles').comment('app roles go out as SCIM roles, entitlements, group memberships, or not at all (none)');
    t.jsonb('attribute_mapping').nullable().comment('SCIM attribute -> OneID source, over the defaults');
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_full_sync_at', { useTz: true }).nullable();
    t.jsonb('last_full_sync').nullable().comment('outcome of the last full sync: counts, errors');
  });
  await knex.raw(`alter table provisioning_targets add constraint provisioning_targets__on_unassign check (on_unassign in ('deactivate', 'delete'))`);
  await knex.raw(`alter table provisioning_targets add constraint provisioning_targets__roles_as check (roles_as in ('roles', 'entitlements', 'groups', 'none'))`);
  await knex.schema.createTable('provisioned_objects', (t) => {
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.text('kind').notNullable().comment('user or group');
    t.text('local_id').notNullable().comment('the OneID user or group id (or a role group key)');
    t.text('remote_id').nullable().comment('the app\'s id for it; null until created');
    t.text('state').notNullable().defaultTo('pending').comment('pending, synced or failed (last push)');
    t.boolean('active').nullable().comment('as the app last acknowledged it (users)');
    t.timestamp('deleted_at', { useTz: true }).nullable().comment('when the app acknowledged a delete');
    t.text('pushed_hash').nullable().comment('hash of the representation last acknowledged: unchanged objects are skipped');
    t.timestamp('last_attempt_at', { useTz: true }).nullable();
    t.timestamp('last_success_at', { useTz: true }).nullable();
    t.text('last_error').nullable().comment('the app\'s own error of the last failed push');
    t.primary(['app_id', 'kind', 'local_id']);
    t.index(['app_id', 'state'], 'provisioned_objects__app_state');
    t.index(['kind', 'local_id'], 'provisioned_objects__local');
  });
  await knex.raw(`alter table provisioned_objects add constraint provisioned_objects__kind check (kind in ('user', 'group'))`);
  await knex.raw(`alter table provisioned_objects add constraint provisioned_objects__state check (state in ('pending', 'synced', 'failed'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('provisioned_objects');
  await knex.schema.dropTableIfExists('provisioning_targets');
}
