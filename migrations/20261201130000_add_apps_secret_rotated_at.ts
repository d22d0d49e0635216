import type { Knex } from 'knex';

// When an app's client secret was last rotated. The admin API refuses the app's access tokens
// issued before it: a rotation after a leak must also cut off tokens the leaked secret obtained
// (they are JWTs, which cannot be recalled one by one). Null for apps never rotated.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('apps', (t) => {
    t.timestamp('secret_rotated_at', { useTz: true }).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('apps', (t) => {
    t.dropColumn('secret_rotated_at');
  });
}
