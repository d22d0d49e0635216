import type { Knex } from 'knex';

// OneID's own session (#18): one row per signed-in browser, whatever protocol the person then
// uses; the sign-in flows that lead to one (protocol-neutral, bound to the browser that started
// them); WebAuthn challenges, each accepted once; per-app sign-in policy; credentials that can be
// found by an outside id (a passkey's credential id) and carry a name.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('sessions', (t) => {
    t.uuid('id').primary();
    t.text('token_hash').notNullable().comment('SHA-256 of the cookie value; replaced at sign-in and step-up');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_seen_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('auth_time', { useTz: true, precision: 3 }).notNullable().comment('when the person last signed in here (OIDC auth_time)');
    t.jsonb('methods').notNullable().defaultTo('[]').comment('methods proven in this session: [{method, at, amr, credentialId?}]');
    t.text('acr').nullable();
    t.specificType('amr', 'text[]').notNullable().defaultTo('{}');
    t.text('user_agent').nullable();
    t.text('ip').nullable();
    t.timestamp('expires_at', { useTz: true, precision: 3 }).notNullable();
    t.timestamp('ended_at', { useTz: true, precision: 3 }).nullable();
    t.text('ended_reason').nullable().comment('signed_out | signed_out_everywhere | replaced | suspended | deprovisioned | password_set | admin | expired');
    t.unique(['token_hash'], { indexName: 'sessions__token_hash' });
    t.index(['user_id'], 'sessions__user_id');
  });

  await knex.schema.createTable('login_flows', (t) => {
    t.uuid('id').primary();
    t.text('binding_hash').notNullable().comment('SHA-256 of the browser cookie that started the flow');
    t.jsonb('requirements').notNullable().comment('what the caller (OIDC, SAML, the account pages) requires');
    t.text('return_to').notNullable().comment('relative URL the browser goes back to when the flow ends');
    t.uuid('user_id').nullable().references('id').inTable('users').onDelete('CASCADE');
    t.jsonb('proofs').notNullable().defaultTo('[]').comment('methods proven in this flow');
    t.uuid('session_id').nullable().comment('the session this flow steps up, or the one it created');
    t.text('outcome').nullable().comment('done | cancelled | unmet; taken once its caller has read it');
    t.text('outcome_reason').nullable();
    t.jsonb('state').notNullable().defaultTo('{}').comment('step data, such as recovery codes to show once (hashed elsewhere)');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true, precision: 3 }).notNullable();
    t.index(['expires_at'], 'login_flows__expires_at');
  });

  await knex.schema.createTable('webauthn_challenges', (t) => {
    t.text('challenge').primary();
    t.text('binding').notNullable().comment('the flow or session the challenge was issued to');
    t.text('purpose').notNullable().comment('register | authenticate');
    t.uuid('user_id').nullable();
    t.timestamp('expires_at', { useTz: true, precision: 3 }).notNullable();
    t.index(['expires_at'], 'webauthn_challenges__expires_at');
  });

  await knex.schema.alterTable('credentials', (t) => {
    t.text('external_id').nullable().comment('a passkey: its credential id (base64url)');
    t.text('name').nullable().comment('a name the person gave it');
    t.timestamp('last_used_at', { useTz: true, precision: 3 }).nullable();
  });
  await knex.raw('create unique index credentials__type_external_id on credentials (type, external_id) where external_id is not null');

  await knex.schema.alterTable('apps', (t) => {
    t.text('signin_policy').nullable().comment('password | mfa | phishing_resistant; null: the global default');
  });
  await knex.raw("alter table apps add constraint apps__signin_policy check (signin_policy in ('password','mfa','phishing_resistant'))");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table apps drop constraint apps__signin_policy');
  await knex.schema.alterTable('apps', (t) => t.dropColumn('signin_policy'));
  await knex.raw('drop index credentials__type_external_id');
  // Passkeys, authenticator apps and recovery codes need the columns dropped here: refuse
  // rather than lose them.
  const [{ n }] = await knex('credentials').whereNot({ type: 'password' }).count({ n: '*' }) as [{ n: string | number }];
  if (Number(n) > 0) throw new Error('credentials other than passwords exist; migrating down would lose them');
  await knex.schema.alterTable('credentials', (t) => {
    t.dropColumn('external_id');
    t.dropColumn('name');
    t.dropColumn('last_used_at');
  });
  await knex.schema.dropTable('webauthn_challenges');
  await knex.schema.dropTable('login_flows');
  await knex.schema.dropTable('sessions');
}
