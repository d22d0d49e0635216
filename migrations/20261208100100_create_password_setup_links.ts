import type { Knex } from 'knex';

// One-time links an administrator gives a person to choose their own password
// (POST /admin/api/v1/users/{id}/setup-link). Only the SHA-256 of the link's token is kept; a
// link works once, until it expires, and a newer link for the same person voids the older ones.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('password_setup_links', (t) => {
    t.text('token_hash').primary().comment('SHA-256 of the token in the link (the token itself is shown once)');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true }).nullable().comment('when the person set their password with it, or when a newer link voided it');
    t.jsonb('created_by').notNullable().comment('the audit actor who created the link');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id'], 'password_setup_links__user_id');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('password_setup_links');
}
