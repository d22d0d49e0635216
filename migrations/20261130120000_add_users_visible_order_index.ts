import type { Knex } from 'knex';

// SCIM lists page through the users a client may see (everyone not deprovisioned) in
// (created_at, id) order. A partial index over exactly those rows lets PostgreSQL count them and
// skip to a page with index-only scans, instead of visiting every skipped row to read its status.
export async function up(knex: Knex): Promise<void> {
  await knex.raw("create index users__visible_created_at_id on users (created_at, id) where status <> 'deprovisioned'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists users__visible_created_at_id');
}
