import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('scim_tokens', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable().comment('who provisions with it, e.g. "Workday" or "Entra ID"');
    t.text('token_hash').notNullable().unique('scim_tokens__token_hash').comment('SHA-256 of the bearer token');
    t.uuid('department_id').nullable().references('id').inTable('departments').onDelete('RESTRICT')
      .comment('when set, the client sees and writes only people in this department subtree');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true, precision: 3 }).nullable();
    t.timestamp('revoked_at', { useTz: true, precision: 3 }).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('scim_tokens');
}
