import type { Knex } from 'knex';

// PKCE is required of every app (RFC 9700 section 2.1.1). A legacy confidential app that cannot send
// a code_challenge is let off only when an administrator says so, app by app.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('apps', (t) => {
    t.boolean('allow_no_pkce').notNullable().defaultTo(false)
      .comment('a confidential legacy app may run the code flow without PKCE (public apps never may)');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('apps', (t) => {
    t.dropColumn('allow_no_pkce');
  });
}
