import type { Knex } from 'knex';

// Two columns of an audit event, both part of its chain hash when set (events from before them
// hash as they did):
// - client_id: the app (OAuth client_id) whose access token made the change, the admin client
//   itself or the app a person's token was issued to; a column, so that an auditor can ask what
//   was done through an app. Null without a token (CLI, sign-in, SCIM).
// - before: for an update, the old values of the fields `changes` names (secrets redacted).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_events', (t) => {
    t.text('client_id').nullable().comment('the app whose access token made the change; null without one');
    t.jsonb('before').nullable().comment('for an update, the old values of what changes names; never secrets');
  });
  await knex.raw('create index audit_events__client_id on audit_events (client_id) where client_id is not null');
}

// Dropping either column once an event carries a value would lose it and break the chain at that
// event (its hash covers it): down refuses then.
export async function down(knex: Knex): Promise<void> {
  if (await knex('audit_events').whereNotNull('client_id').orWhereNotNull('before').first('seq')) {
    throw new Error('audit events carry client_id or before values; dropping the columns would lose them and break the audit chain');
  }
  await knex.raw('drop index if exists audit_events__client_id');
  await knex.schema.alterTable('audit_events', (t) => {
    t.dropColumn('before');
    t.dropColumn('client_id');
  });
}
