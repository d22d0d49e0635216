import type { Knex } from 'knex';

// Sessions (and interactions) are found by uid within their model: the token lookup joins a
// token's session by `model = 'Session' and uid = ...`, on every userinfo, refresh and token
// exchange. With the uid alone indexed, PostgreSQL combined the uid index with the primary
// key's `model` prefix, which reads an index entry for every live session (243 entries after a
// short bench run; as many as there are signed-in people in production). With model in the
// uid index, the lookup is one index entry.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('create index oidc_payloads__uid_model on oidc_payloads (uid, model) where uid is not null');
  await knex.raw('drop index if exists oidc_payloads__uid');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('create index if not exists oidc_payloads__uid on oidc_payloads (uid) where uid is not null');
  await knex.raw('drop index if exists oidc_payloads__uid_model');
}
