import type { Knex } from 'knex';

// The console's people search matches a word against the start of a person's username, email,
// display, given and family name and employee number (case-insensitively for the names), and
// counts the matches. Each of those prefix matches is an index range scan here (text_pattern_ops:
// LIKE 'x%' can use it whatever the database's collation), so PostgreSQL combines them in a
// bitmap instead of reading every user. (display_name, id) serves the list sorted by name.
const INDEXES: [string, string][] = [
  ['users__username_prefix', 'users (username text_pattern_ops)'],
  ['users__email_prefix', 'users (email text_pattern_ops)'],
  ['users__display_name_prefix', 'users (lower(display_name) text_pattern_ops)'],
  ['users__given_name_prefix', 'users (lower(given_name) text_pattern_ops)'],
  ['users__family_name_prefix', 'users (lower(family_name) text_pattern_ops)'],
  ['users__employee_number_prefix', 'users (lower(employee_number) text_pattern_ops)'],
  ['users__display_name_id', 'users (display_name, id)'],
];

export async function up(knex: Knex): Promise<void> {
  for (const [name, on] of INDEXES) await knex.raw(`create index ${name} on ${on}`);
}

export async function down(knex: Knex): Promise<void> {
  for (const [name] of INDEXES) await knex.raw(`drop index if exists ${name}`);
}
