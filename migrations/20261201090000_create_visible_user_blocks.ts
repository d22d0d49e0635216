import type { Knex } from 'knex';

// SCIM lists without sortBy page through the users a client may see in the order they were
// added. A page at startIndex N used to skip N index entries, so its cost grew with N (about
// 6 ms of database CPU at N = 50,000) and a client walking a large directory page by page did
// quadratic work. This keeps positions countable instead:
//
// - users.added_seq numbers users in the order they were added (from a sequence; existing rows
//   in (created_at, id) order, the order lists used until now). It is the default list order.
// - visible_user_blocks holds how many visible users (not deprovisioned) each block of 1,024
//   consecutive added_seq values has. Statement triggers keep it in the transaction of every
//   change, so a query sees counts and users from one snapshot. As in visible_user_counts, each
//   change adds its net delta to a row of its own connection's slot (pg_backend_pid() % 8),
//   so concurrent writers (who all add to the newest block) rarely wait for one row.
// - A page sums the counts of the blocks before it (a row or a few per 1,024 users) and skips
//   at most 1,023 index entries inside its block (src/scim/users.query.ts).
const USER_BLOCK_SIZE = 1024; // src/scim/users.query.ts has the same figure

export async function up(knex: Knex): Promise<void> {
  await knex.raw('create sequence users_added_seq as bigint');
  await knex.raw('alter table users add column added_seq bigint');
  await knex.raw(`
    update users u set added_seq = o.n
      from (select id, row_number() over (order by created_at, id) as n from users) o
     where u.id = o.id`);
  await knex.raw("select setval('users_added_seq', coalesce((select max(added_seq) from users), 0) + 1, false)");
  await knex.raw("alter table users alter column added_seq set default nextval('users_added_seq'), alter column added_seq set not null");
  await knex.raw('alter sequence users_added_seq owned by users.added_seq');
  // The list order's index (index-only scans: the id comes with it); the (created_at, id) one it replaces goes.
  await knex.raw("create index users__visible_added_seq on users (added_seq) include (id) where status <> 'deprovisioned'");
  await knex.raw('drop index if exists users__visible_created_at_id');

  await knex.raw(`
    create table visible_user_blocks (
      block bigint not null,
      slot smallint not null,
      delta bigint not null,
      primary key (block, slot)
    )`);
  // Rows are upserted in block order, so two statements that touch the same blocks lock them in
  // the same order (no deadlock between them).
  await knex.raw(`
    create function visible_user_blocks_track() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' then
        insert into visible_user_blocks as b (block, slot, delta)
          select added_seq / ${USER_BLOCK_SIZE}, pg_backend_pid() % 8, count(*) from new_rows
           where status <> 'deprovisioned' group by 1 order by 1
          on conflict (block, slot) do update set delta = b.delta + excluded.delta;
      elsif tg_op = 'DELETE' then
        insert into visible_user_blocks as b (block, slot, delta)
          select added_seq / ${USER_BLOCK_SIZE}, pg_backend_pid() % 8, -count(*) from old_rows
           where status <> 'deprovisioned' group by 1 order by 1
          on conflict (block, slot) do update set delta = b.delta + excluded.delta;
      else
        insert into visible_user_blocks as b (block, slot, delta)
          select block, pg_backend_pid() % 8, sum(d) from (
            select added_seq / ${USER_BLOCK_SIZE} as block, 1 as d from new_rows where status <> 'deprovisioned'
            union all
            select added_seq / ${USER_BLOCK_SIZE}, -1 from old_rows where status <> 'deprovisioned') c
           group by block having sum(d) <> 0 order by block
          on conflict (block, slot) do update set delta = b.delta + excluded.delta;
      end if;
      return null;
    end $$`);
  await knex.raw(`create trigger users__blocks_insert after insert on users referencing new table as new_rows
    for each statement execute function visible_user_blocks_track()`);
  await knex.raw(`create trigger users__blocks_update after update on users referencing old table as old_rows new table as new_rows
    for each statement execute function visible_user_blocks_track()`);
  await knex.raw(`create trigger users__blocks_delete after delete on users referencing old table as old_rows
    for each statement execute function visible_user_blocks_track()`);
  await knex.raw(`insert into visible_user_blocks (block, slot, delta)
    select added_seq / ${USER_BLOCK_SIZE}, 0, count(*) from users where status <> 'deprovisioned' group by 1`);
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['users__blocks_insert', 'users__blocks_update', 'users__blocks_delete']) await knex.raw(`drop trigger if exists ${t} on users`);
  await knex.raw('drop function if exists visible_user_blocks_track()');
  await knex.raw('drop table if exists visible_user_blocks');
  await knex.raw("create index if not exists users__visible_created_at_id on users (created_at, id) where status <> 'deprovisioned'");
  await knex.raw('drop index if exists users__visible_added_seq');
  await knex.raw('alter table users drop column if exists added_seq');
}
