import type { Knex } from 'knex';

// SCIM Users (RFC 7643): keep what a provisioning client sent that OneID does not model, let
// externalId repeat (RFC 7643 gives it no uniqueness; it belongs to the client), and serve
// the default SCIM list order (created_at, id) from an index.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.jsonb('scim_attributes').notNullable().defaultTo('{}')
      .comment('SCIM attributes OneID does not model (addresses, nickName, ...) and userName/name.formatted/phoneNumbers as the client sent them; returned to SCIM clients');
  });
  await knex.raw('drop index if exists users__external_id');
  await knex.raw('create index users__external_id on users (external_id) where external_id is not null');
  await knex.raw('create index users__created_at_id on users (created_at, id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists users__created_at_id');
  await knex.raw('drop index if exists users__external_id');
  await knex.raw('create unique index users__external_id on users (external_id) where external_id is not null');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('scim_attributes');
  });
}
