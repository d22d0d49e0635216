import type { Knex } from 'knex';

// How many users a SCIM client without a department scope may see (everyone not
// deprovisioned): the totalResults of every unfiltered SCIM list page. Counting 100,000 index
// entries for every page of a full sync is the most expensive part of the page, so the count is
// kept up to date by statement triggers, transactionally, in a few rows: each change adds its
// net delta to the bucket of its database connection (pg_backend_pid() % 64), so concurrent
// writers rarely touch the same row, and the count is the sum of at most 64 rows.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table visible_user_counts (
      bucket smallint primary key,
      delta bigint not null
    )`);
  await knex.raw(`
    create function visible_user_counts_track() returns trigger language plpgsql as $$
    declare
      d bigint := 0;
    begin
      if tg_op in ('INSERT', 'UPDATE') then
        select d + count(*) into d from new_rows where status <> 'deprovisioned';
      end if;
      if tg_op in ('DELETE', 'UPDATE') then
        select d - count(*) into d from old_rows where status <> 'deprovisioned';
      end if;
      if d <> 0 then
        insert into visible_user_counts as c (bucket, delta) values (pg_backend_pid() % 64, d)
          on conflict (bucket) do update set delta = c.delta + excluded.delta;
      end if;
      return null;
    end $$`);
  await knex.raw(`create trigger users__count_insert after insert on users referencing new table as new_rows
    for each statement execute function visible_user_counts_track()`);
  await knex.raw(`create trigger users__count_update after update on users referencing old table as old_rows new table as new_rows
    for each statement execute function visible_user_counts_track()`);
  await knex.raw(`create trigger users__count_delete after delete on users referencing old table as old_rows
    for each statement execute function visible_user_counts_track()`);
  await knex.raw(`insert into visible_user_counts (bucket, delta)
    select 0, count(*) from users where status <> 'deprovisioned'`);
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['users__count_insert', 'users__count_update', 'users__count_delete']) await knex.raw(`drop trigger if exists ${t} on users`);
  await knex.raw('drop function if exists visible_user_counts_track()');
  await knex.raw('drop table if exists visible_user_counts');
}
