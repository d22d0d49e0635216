import type { Knex } from 'knex';

// SAML 2.0 (#19): an app with protocol 'saml' has one service-provider record; persistent
// NameIDs per app and person; AuthnRequests waiting for a sign-in and the request ids already
// seen (replay); the SAML apps each OneID session has signed in to (single logout); logouts
// under way; and a self-signed certificate for each RS256 signing key (SAML publishes keys as
// X.509 certificates).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('signing_keys', (t) => {
    t.text('certificate').nullable().comment('self-signed X.509 certificate (base64 DER) of an RS256 key, published in SAML metadata');
  });

  await knex.schema.createTable('saml_service_providers', (t) => {
    t.uuid('app_id').primary().references('id').inTable('apps').onDelete('CASCADE');
    t.text('entity_id').notNullable().comment('the SP entityID, as its AuthnRequests name it in Issuer');
    t.jsonb('acs_urls').notNullable().comment('[{location, binding: post, index, isDefault}]: where Responses may be sent');
    t.text('slo_url').nullable();
    t.text('slo_binding').nullable().comment('redirect | post');
    t.jsonb('signing_certificates').notNullable().defaultTo('[]').comment('SP signing certificates (base64 DER), several during a rotation');
    t.text('encryption_certificate').nullable().comment('base64 DER; assertions are encrypted for it when encrypt_assertions');
    t.boolean('encrypt_assertions').notNullable().defaultTo(false);
    t.text('name_id_format').notNullable().defaultTo('emailAddress').comment('emailAddress | persistent | transient | unspecified');
    t.jsonb('attribute_mapping').nullable().comment('[{name, source, nameFormat?, friendlyName?}]; null: email, displayName, groups, roles');
    t.boolean('sign_response').notNullable().defaultTo(true);
    t.boolean('sign_assertion').notNullable().defaultTo(true);
    t.boolean('want_authn_requests_signed').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['entity_id'], { indexName: 'saml_service_providers__entity_id' });
  });

  await knex.schema.createTable('saml_name_ids', (t) => {
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.text('name_id').notNullable().comment('opaque random value, never given to anyone else');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.primary(['app_id', 'user_id'], { constraintName: 'saml_name_ids__pk' });
    t.unique(['app_id', 'name_id'], { indexName: 'saml_name_ids__app_id_name_id' });
  });

  await knex.schema.createTable('saml_requests', (t) => {
    t.uuid('id').primary();
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.text('request_id').nullable().comment('the AuthnRequest ID (InResponseTo); null for an IdP-initiated sign-in');
    t.jsonb('request').notNullable().comment('the checked request: ACS URL, RelayState, NameIDPolicy, ForceAuthn, IsPassive, requested contexts');
    t.timestamp('expires_at', { useTz: true, precision: 3 }).notNullable();
    t.index(['expires_at'], 'saml_requests__expires_at');
  });

  await knex.schema.createTable('saml_seen_request_ids', (t) => {
    t.text('issuer').notNullable();
    t.text('request_id').notNullable();
    t.timestamp('expires_at', { useTz: true, precision: 3 }).notNullable();
    t.primary(['issuer', 'request_id'], { constraintName: 'saml_seen_request_ids__pk' });
    t.index(['expires_at'], 'saml_seen_request_ids__expires_at');
  });

  await knex.schema.createTable('saml_session_participants', (t) => {
    t.uuid('session_id').notNullable().references('id').inTable('sessions').onDelete('CASCADE');
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.text('session_index').notNullable().comment('SessionIndex given in the assertion');
    t.text('name_id').notNullable();
    t.text('name_id_format').notNullable().comment('the full URN');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.primary(['session_id', 'app_id'], { constraintName: 'saml_session_participants__pk' });
    t.unique(['session_index'], { indexName: 'saml_session_participants__session_index' });
  });

  await knex.schema.createTable('saml_logouts', (t) => {
    t.uuid('id').primary();
    t.uuid('user_id').nullable();
    t.uuid('initiator_app_id').nullable().comment('the SP that asked; null when the logout began at OneID');
    t.text('initiator_request_id').nullable();
    t.text('relay_state').nullable();
    t.text('return_to').nullable().comment('where the browser goes at the end of a logout begun at OneID');
    t.jsonb('pending').notNullable().defaultTo('[]').comment('participants still to be sent a LogoutRequest');
    t.text('waiting_for').nullable().comment('the ID of the LogoutRequest sent last, answered by a LogoutResponse');
    t.boolean('partial').notNullable().defaultTo(false).comment('a participant did not confirm its logout');
    t.timestamp('expires_at', { useTz: true, precision: 3 }).notNullable();
    t.index(['expires_at'], 'saml_logouts__expires_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('saml_logouts');
  await knex.schema.dropTable('saml_session_participants');
  await knex.schema.dropTable('saml_seen_request_ids');
  await knex.schema.dropTable('saml_requests');
  await knex.schema.dropTable('saml_name_ids');
  await knex.schema.dropTable('saml_service_providers');
  await knex.schema.alterTable('signing_keys', (t) => {
    t.dropColumn('certificate');
  });
}
