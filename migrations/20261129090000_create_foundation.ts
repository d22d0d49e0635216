import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary().comment('the OIDC sub; never reused');
    t.text('username').notNullable().comment('stored lower-case; unique');
    t.text('email').nullable().comment('primary email, stored lower-case');
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.text('given_name').nullable();
    t.text('family_name').nullable();
    t.text('display_name').nullable();
    t.text('locale').nullable();
    t.text('status').notNullable().defaultTo('active');
    t.specificType('admin_roles', 'text[]').notNullable().defaultTo('{}').comment('super_admin, user_admin, app_admin, auditor');
    t.integer('version').notNullable().defaultTo(1).comment('bumped on every update; the SCIM ETag');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['username'], { indexName: 'users__username' });
    t.check("status in ('active','suspended','deprovisioned')", [], 'users__status');
  });
  await knex.raw('create unique index users__email on users (email) where email is not null');

  await knex.schema.createTable('credentials', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('type').notNullable().comment('password | webauthn | totp | recovery');
    t.jsonb('data').notNullable().comment('per-type data; for password {hash}');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id', 'type'], 'credentials__user_id_type');
  });
  await knex.raw("create unique index credentials__one_password on credentials (user_id) where type = 'password'");

  await knex.schema.createTable('apps', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.text('description').nullable();
    t.text('logo_url').nullable();
    t.text('protocol').notNullable().defaultTo('oidc');
    t.boolean('first_party').notNullable().defaultTo(false).comment('first-party apps skip the consent screen');
    t.text('client_id').notNullable().unique('apps__client_id');
    t.text('client_secret_hash').nullable().comment('SHA-256 (base64url) of the client secret; null for public clients');
    t.jsonb('oidc').notNullable().defaultTo('{}').comment('OIDC client metadata (redirect_uris, grant_types, ...)');
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('oidc_payloads', (t) => {
    t.text('model').notNullable().comment('oidc-provider model name (Session, Grant, AuthorizationCode, ...)');
    t.text('id').notNullable();
    t.jsonb('payload').notNullable();
    t.text('uid').nullable();
    t.text('grant_id').nullable();
    t.text('user_code').nullable();
    t.text('account_id').nullable();
    t.timestamp('expires_at', { useTz: true }).nullable();
    t.timestamp('consumed_at', { useTz: true }).nullable();
    t.primary(['model', 'id'], { constraintName: 'oidc_payloads__pk' });
  });
  await knex.raw('create index oidc_payloads__uid on oidc_payloads (uid) where uid is not null');
  await knex.raw('create index oidc_payloads__grant_id on oidc_payloads (grant_id) where grant_id is not null');
  await knex.raw('create index oidc_payloads__user_code on oidc_payloads (user_code) where user_code is not null');
  await knex.raw('create index oidc_payloads__account_id on oidc_payloads (account_id) where account_id is not null');
  await knex.raw('create index oidc_payloads__expires_at on oidc_payloads (expires_at) where expires_at is not null');

  await knex.schema.createTable('signing_keys', (t) => {
    t.text('kid').primary();
    t.text('alg').notNullable().comment('ES256 | RS256');
    t.text('state').notNullable().comment('next (published) | current (signs) | previous (published) | retired');
    t.jsonb('public_jwk').notNullable();
    t.text('private_jwk_encrypted').notNullable().comment('AES-256-GCM with the master key');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('state_changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check("state in ('next','current','previous','retired')", [], 'signing_keys__state');
  });

  await knex.schema.createTable('cookie_keys', (t) => {
    t.increments('id').primary();
    t.text('key_encrypted').notNullable().comment('AES-256-GCM with the master key');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('instance_settings', (t) => {
    t.text('key').primary();
    t.text('value').notNullable();
  });

  await knex.schema.createTable('setup_tokens', (t) => {
    t.text('token_hash').primary().comment('SHA-256 of the one-time setup link token');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['setup_tokens', 'instance_settings', 'cookie_keys', 'signing_keys', 'oidc_payloads', 'apps', 'credentials', 'users']) {
    await knex.schema.dropTableIfExists(table);
  }
}
