import type { Knex } from 'knex';

// The visible-user counters (visible_user_counts, visible_user_blocks) follow updates through a
// row trigger that fires only when a user's status (or added_seq) actually changes, instead of
// two statement triggers that ran on every update of users.
//
// Most updates of users change neither: a user's version moves on with every membership change
// (SCIM ETags), and profile edits. Each such update still ran both statement triggers (PL/pgSQL,
// queries over the transition tables) to find nothing to count: about 0.4 ms of database CPU per
// group member change, more than the rest of the change. PostgreSQL cannot give transition tables
// to a trigger limited to some columns, so the update side becomes a row trigger with a WHEN
// condition, which PostgreSQL checks without calling any function.
//
// Inserts and deletes keep their statement triggers (a bulk insert counts once). A status change
// touches its user's rows: OneID changes one user's status per statement. An UPDATE of many
// users' status at once (by hand, in SQL) upserts the counters once per user: correct, slower.
const USER_BLOCK_SIZE = 1024; // as in 20261201090000 and src/scim/users.query.ts

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function visible_users_status_changed() returns trigger language plpgsql as $$
    declare
      was int := case when old.status <> 'deprovisioned' then 1 else 0 end;
      now_visible int := case when new.status <> 'deprovisioned' then 1 else 0 end;
      moved boolean := old.added_seq / ${USER_BLOCK_SIZE} <> new.added_seq / ${USER_BLOCK_SIZE};
    begin
      -- Counts first, then blocks: every transaction takes these rows in the same order.
      if now_visible <> was then
        insert into visible_user_counts as c (bucket, delta) values (pg_backend_pid() % 64, now_visible - was)
          on conflict (bucket) do update set delta = c.delta + excluded.delta;
      end if;
      if was = 1 and (now_visible = 0 or moved) then
        insert into visible_user_blocks as b (block, slot, delta) values (old.added_seq / ${USER_BLOCK_SIZE}, pg_backend_pid() % 8, -1)
          on conflict (block, slot) do update set delta = b.delta + excluded.delta;
      end if;
      if now_visible = 1 and (was = 0 or moved) then
        insert into visible_user_blocks as b (block, slot, delta) values (new.added_seq / ${USER_BLOCK_SIZE}, pg_backend_pid() % 8, 1)
          on conflict (block, slot) do update set delta = b.delta + excluded.delta;
      end if;
      return null;
    end $$`);
  await knex.raw('drop trigger if exists users__count_update on users');
  await knex.raw('drop trigger if exists users__blocks_update on users');
  await knex.raw(`create trigger users__visible_update after update of status, added_seq on users for each row
    when (old.status is distinct from new.status or old.added_seq is distinct from new.added_seq)
    execute function visible_users_status_changed()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop trigger if exists users__visible_update on users');
  await knex.raw('drop function if exists visible_users_status_changed()');
  await knex.raw(`create trigger users__count_update after update on users referencing old table as old_rows new table as new_rows
    for each statement execute function visible_user_counts_track()`);
  await knex.raw(`create trigger users__blocks_update after update on users referencing old table as old_rows new table as new_rows
    for each statement execute function visible_user_blocks_track()`);
}
