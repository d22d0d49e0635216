import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('external_id').nullable().comment('id in the HR system / SCIM client');
    t.jsonb('emails').notNullable().defaultTo('[]').comment('[{value, type, primary}]; the primary one is mirrored in email');
    t.text('phone').nullable();
    t.text('employee_number').nullable();
    t.text('title').nullable();
    t.uuid('manager_id').nullable().references('id').inTable('users').onDelete('SET NULL');
    t.jsonb('custom_attributes').notNullable().defaultTo('{}').comment('validated against attribute_definitions');
    t.timestamp('status_changed_at', { useTz: true }).nullable();
  });
  await knex.raw('create unique index users__external_id on users (external_id) where external_id is not null');
  await knex.raw('create index users__manager_id on users (manager_id) where manager_id is not null');
  await knex.raw('create index users__status on users (status)');

  await knex.schema.createTable('attribute_definitions', (t) => {
    t.text('key').primary().comment('custom attribute name, e.g. cost_center');
    t.text('type').notNullable().comment('string | number | boolean | date | enum');
    t.boolean('required').notNullable().defaultTo(false);
    t.jsonb('enum_values').nullable();
    t.text('description').nullable();
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.check("type in ('string','number','boolean','date','enum')", [], 'attribute_definitions__type');
  });

  await knex.schema.createTable('departments', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.uuid('parent_id').nullable().references('id').inTable('departments').onDelete('RESTRICT');
    t.text('path').notNullable().comment("materialised path of ids, '/root/.../self/'; subtree = path LIKE prefix%");
    t.integer('depth').notNullable().defaultTo(0);
    t.uuid('manager_id').nullable().references('id').inTable('users').onDelete('SET NULL');
    t.text('external_id').nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index departments__path on departments (path text_pattern_ops)');
  await knex.raw('create index departments__parent_id on departments (parent_id)');
  await knex.raw("create unique index departments__sibling_name on departments (coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(name))");

  await knex.schema.createTable('user_departments', (t) => {
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.uuid('department_id').notNullable().references('id').inTable('departments').onDelete('RESTRICT');
    t.boolean('is_primary').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.primary(['user_id', 'department_id'], { constraintName: 'user_departments__pk' });
    t.index(['department_id'], 'user_departments__department_id');
  });
  await knex.raw('create unique index user_departments__one_primary on user_departments (user_id) where is_primary');

  await knex.schema.createTable('groups', (t) => {
    t.uuid('id').primary();
    t.text('name').notNullable();
    t.text('description').nullable();
    t.text('external_id').nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create unique index groups__name on groups (lower(name))');
  await knex.raw('create unique index groups__external_id on groups (external_id) where external_id is not null');

  await knex.schema.createTable('group_members', (t) => {
    t.uuid('group_id').notNullable().references('id').inTable('groups').onDelete('CASCADE');
    t.uuid('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.primary(['group_id', 'user_id'], { constraintName: 'group_members__pk' });
    t.index(['user_id'], 'group_members__user_id');
  });

  await knex.schema.alterTable('apps', (t) => {
    // Apps that existed before this migration keep letting everyone in; new apps default to 'assigned'.
    t.text('access').notNullable().defaultTo('everyone').comment("'assigned' (only assigned users may sign in) or 'everyone'");
    t.specificType('admin_roles', 'text[]').notNullable().defaultTo('{}').comment('admin API roles of this app when it calls with client_credentials');
  });
  await knex.raw("alter table apps alter column access set default 'assigned'");
  await knex.raw("alter table apps add constraint apps__access check (access in ('assigned','everyone'))");

  await knex.schema.createTable('app_roles', (t) => {
    t.uuid('id').primary();
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.text('key').notNullable().comment('e.g. docs.editor; appears in the roles claim');
    t.text('name').notNullable();
    t.text('description').nullable();
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['app_id', 'key'], { indexName: 'app_roles__app_id_key' });
  });

  await knex.schema.createTable('assignments', (t) => {
    t.uuid('id').primary();
    t.uuid('app_id').notNullable().references('id').inTable('apps').onDelete('CASCADE');
    t.text('principal_type').notNullable().comment('user | group | department');
    t.uuid('principal_id').notNullable();
    t.boolean('include_subdepartments').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true, precision: 3 }).notNullable().defaultTo(knex.fn.now());
    t.unique(['app_id', 'principal_type', 'principal_id'], { indexName: 'assignments__app_principal' });
    t.index(['principal_type', 'principal_id'], 'assignments__principal');
    t.check("principal_type in ('user','group','department')", [], 'assignments__principal_type');
  });

  await knex.schema.createTable('assignment_roles', (t) => {
    t.uuid('assignment_id').notNullable().references('id').inTable('assignments').onDelete('CASCADE');
    t.uuid('app_role_id').notNullable().references('id').inTable('app_roles').onDelete('CASCADE');
    t.primary(['assignment_id', 'app_role_id'], { constraintName: 'assignment_roles__pk' });
  });

  await knex.schema.createTable('audit_events', (t) => {
    t.bigIncrements('seq').primary().comment('chain order');
    t.uuid('id').notNullable().unique('audit_events__id');
    t.timestamp('occurred_at', { useTz: true }).notNullable();
    t.text('actor_type').notNullable().comment('user | admin_client | scim_client | system | anonymous');
    t.text('actor_id').nullable();
    t.text('action').notNullable().comment('e.g. user.created, signin.failed');
    t.text('target_type').nullable();
    t.text('target_id').nullable();
    t.text('ip').nullable();
    t.text('user_agent').nullable();
    t.jsonb('changes').nullable().comment('what changed; never secrets');
    t.text('prev_hash').notNullable();
    t.text('hash').notNullable().comment('sha256(prev_hash + canonical event)');
    t.index(['occurred_at'], 'audit_events__occurred_at');
    t.index(['actor_id'], 'audit_events__actor_id');
    t.index(['target_type', 'target_id'], 'audit_events__target');
    t.index(['action'], 'audit_events__action');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['audit_events', 'assignment_roles', 'assignments', 'app_roles', 'group_members', 'groups', 'user_departments', 'departments', 'attribute_definitions']) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.schema.alterTable('apps', (t) => { t.dropColumn('access'); t.dropColumn('admin_roles'); });
  await knex.raw('drop index if exists users__external_id');
  await knex.raw('drop index if exists users__status');
  await knex.schema.alterTable('users', (t) => {
    for (const c of ['external_id', 'emails', 'phone', 'employee_number', 'title', 'manager_id', 'custom_attributes', 'status_changed_at']) t.dropColumn(c);
  });
}
