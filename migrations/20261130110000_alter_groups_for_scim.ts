import type { Knex } from 'knex';

// SCIM Groups (RFC 7643 section 4.2): a group's externalId belongs to the provisioning client
// and, like a user's, may repeat (RFC 7643 gives it no uniqueness); and a membership keeps the
// label (`display`) a client gave it, which RFC 7643 section 2.4 lets a client set when it adds
// the member. Nothing is dropped: the label column is new and nullable.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists groups__external_id');
  await knex.raw('create index groups__external_id on groups (external_id) where external_id is not null');
  await knex.schema.alterTable('group_members', (t) => {
    t.text('display_label').nullable().comment('the member label a SCIM client sent (members[].display); shown instead of the user\'s name');
  });
}

// Going down fails, and changes nothing, while two groups share an externalId: decide which
// keeps it first.
export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('group_members', (t) => {
    t.dropColumn('display_label');
  });
  await knex.raw('drop index if exists groups__external_id');
  await knex.raw('create unique index groups__external_id on groups (external_id) where external_id is not null');
}
