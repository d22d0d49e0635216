import type { Knex } from 'knex';

// Loose suites (#22): a named set of apps that a company picks and that behave as one product.
//
// - A suite assignment is kept as real rows in `assignments` (one per member app, marked with
//   suite_assignment_id): entitlements, SCIM provisioning, the portal and the audit log read
//   them like any other assignment, and removing the suite assignment removes exactly those.
// - A suite role maps to roles of its member apps (suite_role_app_roles); a suite assignment's
//   suite roles become the app roles of its rows.
// - A suite's sign-in policy is copied to its apps (apps.suite_signin_policy: the strongest of
//   their suites'), so that every protocol reads one apps row, and the client cache is told.
// - A suite grant is the administrator's one-time consent that app A may act for the signed-in
//   person at app B (token exchange, ID-JAG); deleting it is the revocation.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('suites', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.text('description').nullable();
    t.text('icon_url').nullable().comment('https image shown in the portal beside the suite name');
    t.integer('position').notNullable().defaultTo(0).comment('order in the portal, lowest first, then name');
    t.text('signin_policy').nullable().comment('inherited by the member apps unless theirs is stronger');
    t.boolean('suite_signout').notNullable().defaultTo(false)
      .comment('signing out of one member app ends the person\'s sessions in every member app');
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create unique index suites__name on suites (lower(name))');
  await knex.raw("alter table suites add constraint suites__signin_policy check (signin_policy in ('password','mfa','phishing_resistant'))");

  await knex.schema.createTable('suite_apps', (t) => {
    t.uuid('suite_id').notNullable().references('id').inTable('suites').onDelete('CASCADE');
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.integer('position').notNullable().defaultTo(0).comment('order inside the suite in the portal');
    t.timestamp('added_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.primary(['suite_id', 'app_id'], { constraintName: 'suite_apps__pk' });
    t.index(['app_id'], 'suite_apps__app_id');
  });

  await knex.schema.createTable('suite_roles', (t) => {
    t.uuid('id').primary();
    t.uuid('suite_id').notNullable().references('id').inTable('suites').onDelete('CASCADE');
    t.text('key').notNullable();
    t.text('name').notNullable();
    t.text('description').nullable();
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['suite_id', 'key'], { indexName: 'suite_roles__suite_key' });
  });

  // Which app roles a suite role gives in each member app. Removing the app from the suite (the
  // suite_apps row) or deleting the app role drops the mapping with it.
  await knex.schema.createTable('suite_role_app_roles', (t) => {
    t.uuid('suite_role_id').notNullable().references('id').inTable('suite_roles').onDelete('CASCADE');
    t.uuid('suite_id').notNullable();
    t.uuid('app_id').notNullable();
    t.uuid('app_role_id').notNullable().references('id').inTable('app_roles').onDelete('CASCADE');
    t.primary(['suite_role_id', 'app_role_id'], { constraintName: 'suite_role_app_roles__pk' });
    t.foreign(['suite_id', 'app_id'], 'suite_role_app_roles__member').references(['suite_id', 'app_id']).inTable('suite_apps').onDelete('CASCADE');
    t.index(['suite_id', 'app_id'], 'suite_role_app_roles__member');
  });

  await knex.schema.createTable('suite_assignments', (t) => {
    t.uuid('id').primary();
    t.uuid('suite_id').notNullable().references('id').inTable('suites').onDelete('CASCADE');
    t.text('principal_type').notNullable().comment('user | group | department');
    t.uuid('principal_id').notNullable();
    t.boolean('include_subdepartments').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['suite_id', 'principal_type', 'principal_id'], { indexName: 'suite_assignments__suite_principal' });
    t.index(['principal_type', 'principal_id'], 'suite_assignments__principal');
    t.check("principal_type in ('user','group','department')", [], 'suite_assignments__principal_type');
  });

  await knex.schema.createTable('suite_assignment_roles', (t) => {
    t.uuid('suite_assignment_id').notNullable().references('id').inTable('suite_assignments').onDelete('CASCADE');
    t.uuid('suite_role_id').notNullable().references('id').inTable('suite_roles').onDelete('CASCADE');
    t.primary(['suite_assignment_id', 'suite_role_id'], { constraintName: 'suite_assignment_roles__pk' });
  });

  // A suite assignment's rows in `assignments`. A person may also be assigned the same app directly:
  // one direct assignment per app and principal, and one per suite assignment and app.
  await knex.schema.alterTable('assignments', (t) => {
    t.uuid('suite_assignment_id').nullable().references('id').inTable('suite_assignments').onDelete('CASCADE')
      .comment('set when the row was made by a suite assignment, which alone changes or removes it');
  });
  await knex.raw('alter table assignments drop constraint assignments__app_principal');
  await knex.raw('create unique index assignments__app_principal on assignments (app_id, principal_type, principal_id) where suite_assignment_id is null');
  await knex.raw('create unique index assignments__suite_assignment_app on assignments (suite_assignment_id, app_id) where suite_assignment_id is not null');

  await knex.schema.alterTable('apps', (t) => {
    t.text('suite_signin_policy').nullable().comment('the strongest sign-in policy of the suites the app is in (kept by the suites service)');
    t.text('api_audience').nullable().comment('the audience (aud) of access tokens for the app\'s own API, e.g. https://crm.example.com/api');
    t.text('authorization_server').nullable().comment('issuer of the app\'s own authorization server, for ID-JAG (aud)');
  });
  await knex.raw("alter table apps add constraint apps__suite_signin_policy check (suite_signin_policy in ('password','mfa','phishing_resistant'))");
  await knex.raw('create unique index apps__api_audience on apps (api_audience) where api_audience is not null');

  await knex.schema.createTable('suite_grants', (t) => {
    t.uuid('id').primary();
    t.uuid('suite_id').notNullable().references('id').inTable('suites').onDelete('CASCADE');
    t.uuid('client_app_id').notNullable().comment('app A, which acts for the person');
    t.uuid('audience_app_id').notNullable().comment('app B, whose API A calls');
    t.specificType('scopes', 'text[]').notNullable().defaultTo('{}').comment('the most A may ask for at B');
    t.specificType('roles', 'text[]').nullable().comment('B\'s role keys the token may carry; null: all the person holds');
    t.text('min_signin_policy').nullable().comment('the least the person\'s sign-in must reach (acr)');
    t.integer('max_age_seconds').nullable().comment('the oldest the person\'s sign-in may be (auth_time)');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['suite_id', 'client_app_id', 'audience_app_id'], { indexName: 'suite_grants__pair' });
    t.index(['client_app_id', 'audience_app_id'], 'suite_grants__client_audience');
    // A grant holds only while both apps are in the suite: removing either from it removes the grant.
    t.foreign(['suite_id', 'client_app_id'], 'suite_grants__client_member').references(['suite_id', 'app_id']).inTable('suite_apps').onDelete('CASCADE');
    t.foreign(['suite_id', 'audience_app_id'], 'suite_grants__audience_member').references(['suite_id', 'app_id']).inTable('suite_apps').onDelete('CASCADE');
  });
  await knex.raw("alter table suite_grants add constraint suite_grants__min_signin_policy check (min_signin_policy in ('password','mfa','phishing_resistant'))");
  await knex.raw('alter table suite_grants add constraint suite_grants__two_apps check (client_app_id <> audience_app_id)');
  await knex.raw('alter table suite_grants add constraint suite_grants__max_age check (max_age_seconds is null or max_age_seconds > 0)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('suite_grants');
  await knex.raw('drop index if exists apps__api_audience');
  await knex.raw('alter table apps drop constraint if exists apps__suite_signin_policy');
  await knex.schema.alterTable('apps', (t) => {
    t.dropColumn('suite_signin_policy');
    t.dropColumn('api_audience');
    t.dropColumn('authorization_server');
  });
  await knex.raw('drop index if exists assignments__suite_assignment_app');
  await knex.raw('drop index if exists assignments__app_principal');
  // Rows a suite made go with the column: only direct assignments fit the old constraint.
  await knex('assignments').whereNotNull('suite_assignment_id').delete();
  await knex.schema.alterTable('assignments', (t) => t.dropColumn('suite_assignment_id'));
  await knex.raw('alter table assignments add constraint assignments__app_principal unique (app_id, principal_type, principal_id)');
  for (const table of ['suite_assignment_roles', 'suite_assignments', 'suite_role_app_roles', 'suite_roles', 'suite_apps', 'suites']) {
    await knex.schema.dropTableIfExists(table);
  }
}
