import type { Knex } from 'knex';

// Usernames and sign-in emails become one namespace, and names one folding rule.
//
// 1. Re-fold stored names by the rule of shared/names.ts (NFKC, lower case, trimmed; copied here
//    so that this migration keeps doing what it did when the rule moves on): usernames and sign-in
//    emails. (The email lists hold addresses, which were ASCII and lower-cased already, and values
//    that are not addresses, kept as the SCIM client sent them.) A name whose folded form another
//    account already has keeps its stored form (it can no longer be typed; the account stays
//    reachable by id).
// 2. sign_in_names: each name (username or sign-in email) belongs to at most one account, by its
//    primary key, so two concurrent writes cannot both take a name. A trigger on users keeps it in
//    the same transaction as every write (admin API, SCIM, CLI, anything else), and refuses a name
//    another account holds with a unique violation naming sign_in_names__username or __email.
//    Where existing data already clashes (one account's username is another's email), the
//    account that is not deprovisioned, then the oldest, keeps the name; the other keeps its data
//    but cannot sign in with that name.
// Every change and clash is listed in sign_in_names_migration_report (nothing is deleted).

const MAX_ROUNDS = 4;
function fold(value: string): string {
  let out = value.normalize('NFKC');
  for (let i = 0; i < MAX_ROUNDS; i += 1) {
    const next = out.toLowerCase().normalize('NFKC');
    if (next === out) break;
    out = next;
  }
  return out.trim();
}

interface Row { id: string; username: string; email: string | null }

const BATCH = 1000;

async function refold(knex: Knex): Promise<void> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows: Row[] = await knex('users').where('id', '>', after).orderBy('id').limit(BATCH).select('id', 'username', 'email');
    if (!rows.length) return;
    after = rows[rows.length - 1]!.id;
    for (const row of rows) {
      const changes: Record<string, unknown> = {};
      const report: Record<string, unknown>[] = [];
      const username = fold(row.username);
      if (username !== row.username) {
        const holder = await knex('users').where({ username }).whereNot({ id: row.id }).first('id');
        report.push({ user_id: row.id, field: 'username', old_value: row.username, new_value: username, outcome: holder ? 'kept_clash' : 'refolded', other_user_id: holder?.id ?? null });
        if (!holder) changes.username = username;
      }
      const email = row.email === null ? null : fold(row.email);
      if (email !== row.email) {
        const holder = await knex('users').where({ email }).whereNot({ id: row.id }).first('id');
        report.push({ user_id: row.id, field: 'email', old_value: row.email, new_value: email, outcome: holder ? 'kept_clash' : 'refolded', other_user_id: holder?.id ?? null });
        if (!holder) changes.email = email;
      }
      if (Object.keys(changes).length) {
        await knex('users').where({ id: row.id }).update({ ...changes, version: knex.raw('version + 1'), updated_at: knex.fn.now() });
      }
      if (report.length) await knex('sign_in_names_migration_report').insert(report);
    }
  }
}

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table sign_in_names_migration_report (
      id bigserial primary key,
      user_id uuid not null,
      field text not null,
      old_value text,
      new_value text,
      outcome text not null,
      other_user_id uuid,
      created_at timestamptz not null default now()
    )`);
  await knex.raw(`comment on table sign_in_names_migration_report is
    'What migration 20261206130000 did: names re-folded (refolded), names left as stored because their folded form was another account''s (kept_clash), and names another account holds, not usable for sign-in (not_indexed)'`);
  await refold(knex);

  await knex.raw(`
    create table sign_in_names (
      name text primary key,
      user_id uuid not null references users(id) on delete cascade
    )`);
  await knex.raw(`comment on table sign_in_names is
    'Every username and sign-in email (folded), each owned by one account: the namespace sign-in looks names up in; kept by the users__sign_in_names trigger'`);
  await knex.raw('create index sign_in_names__user_id on sign_in_names (user_id)');
  await knex.raw(`
    insert into sign_in_names (name, user_id)
    select distinct on (name) name, id
      from (select username as name, id, status, created_at from users
            union all
            select email, id, status, created_at from users where email is not null) n
     order by name, (status = 'deprovisioned'), created_at, id`);
  await knex.raw(`
    insert into sign_in_names_migration_report (user_id, field, old_value, outcome, other_user_id)
    select u.id, f.field, f.name, 'not_indexed', s.user_id
      from users u
     cross join lateral (values ('username', u.username), ('email', u.email)) f(field, name)
      join sign_in_names s on s.name = f.name and s.user_id <> u.id`);

  // AFTER the row is written (its unique indexes checked, so a username taken as a username still
  // reports users__username). A name the row keeps is not claimed again: an account whose old
  // name another holds (see above) can still be changed in other ways. ON CONFLICT ... WHERE
  // updates only the account's own row, so FOUND is false exactly when another account holds
  // the name; a concurrent writer of the same name waits for this transaction and then fails.
  await knex.raw(`
    create function users_sign_in_names_sync() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' then
        delete from sign_in_names
         where user_id = new.id and name <> new.username and name is distinct from new.email;
      end if;
      if tg_op = 'INSERT' or new.username is distinct from old.username then
        insert into sign_in_names as s (name, user_id) values (new.username, new.id)
          on conflict (name) do update set user_id = s.user_id where s.user_id = new.id;
        if not found then
          raise exception 'the username is another account''s sign-in name'
            using errcode = 'unique_violation', constraint = 'sign_in_names__username';
        end if;
      end if;
      if new.email is not null and (tg_op = 'INSERT' or new.email is distinct from old.email) then
        insert into sign_in_names as s (name, user_id) values (new.email, new.id)
          on conflict (name) do update set user_id = s.user_id where s.user_id = new.id;
        if not found then
          raise exception 'the email is another account''s sign-in name'
            using errcode = 'unique_violation', constraint = 'sign_in_names__email';
        end if;
      end if;
      return null;
    end $$`);
  await knex.raw(`create trigger users__sign_in_names after insert or update of username, email on users
    for each row execute function users_sign_in_names_sync()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger users__sign_in_names on users');
  await knex.raw('drop function users_sign_in_names_sync()');
  await knex.raw('drop table sign_in_names');
  // Back to the stored forms the re-folding replaced.
  await knex.raw(`
    update users u set username = r.old_value from sign_in_names_migration_report r
     where r.user_id = u.id and r.field = 'username' and r.outcome = 'refolded' and u.username = r.new_value`);
  await knex.raw(`
    update users u set email = r.old_value from sign_in_names_migration_report r
     where r.user_id = u.id and r.field = 'email' and r.outcome = 'refolded' and u.email is not distinct from r.new_value`);
  await knex.raw('drop table sign_in_names_migration_report');
}
