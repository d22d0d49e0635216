import type { Knex } from 'knex';

// When every session of a person was last ended without a status change (a password set by
// someone else, or by the person, keeping at most the session they did it from). Sessions,
// grants and refresh tokens are deleted then; the admin API also refuses the person's access
// tokens issued before it, since those are JWTs that cannot be recalled one by one. Null until
// it first happens.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.timestamp('sessions_ended_at', { useTz: true }).nullable().comment('last time all sessions were ended (password set); older admin API tokens are refused');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('sessions_ended_at');
  });
}
