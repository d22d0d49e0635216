import type { Knex } from 'knex';

// Counters for rate-limiter-flexible's PostgreSQL store (its own column layout), so that
// every node shares them and a restart forgets nothing.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.string('key', 255).primary();
    t.integer('points').notNullable().defaultTo(0);
    t.bigInteger('expire').nullable().comment('epoch milliseconds');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_limits');
}
