import type { Knex } from 'knex';

// The hash chain moves out of audit_events into audit_chain, and the events still to be chained
// are listed in audit_pending, so that audit_events is only ever inserted into.
//
// Before, the chainer updated every event once to set chain_pos, prev_hash and hash. As
// chain_pos is indexed (and names the unchained events in a partial index), no such update could
// stay on its page without new index entries: each event was written twice with its eight
// indexes, a wide row copied with its `changes`, and left a dead row behind for vacuum. At a few
// hundred audited writes a second (SCIM member changes) that was a fifth of the database's work.
// Now an event is one insert; the chainer deletes a narrow pending row and inserts a narrow
// chain row. It also lets production grant OneID INSERT and SELECT only on audit_events.
//
// audit_pending is filled by a statement trigger, so every insert into audit_events (from any
// code path) is chained. Existing positions and hashes move as they are: the chain verifies the
// same before and after.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table audit_chain (
      pos bigint primary key,
      seq bigint not null unique,
      prev_hash text not null,
      hash text not null
    )`);
  await knex.raw('create table audit_pending (seq bigint primary key)');
  await knex.raw(`
    create function audit_events_pending() returns trigger language plpgsql as $$
    begin
      insert into audit_pending (seq) select seq from new_rows;
      return null;
    end $$`);
  await knex.raw(`create trigger audit_events__pending after insert on audit_events referencing new table as new_rows
    for each statement execute function audit_events_pending()`);
  await knex.raw(`insert into audit_chain (pos, seq, prev_hash, hash)
    select chain_pos, seq, prev_hash, hash from audit_events where chain_pos is not null`);
  await knex.raw('insert into audit_pending (seq) select seq from audit_events where chain_pos is null');
  await knex.raw('drop index if exists audit_events__unchained');
  await knex.raw('drop index if exists audit_events__chain_pos');
  await knex.raw('alter table audit_events drop column chain_pos, drop column prev_hash, drop column hash');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table audit_events add column chain_pos bigint, add column prev_hash text, add column hash text');
  await knex.raw(`update audit_events e set chain_pos = c.pos, prev_hash = c.prev_hash, hash = c.hash
    from audit_chain c where c.seq = e.seq`);
  await knex.raw('create unique index audit_events__chain_pos on audit_events (chain_pos) where chain_pos is not null');
  await knex.raw('create index audit_events__unchained on audit_events (seq) where chain_pos is null');
  await knex.raw('drop trigger if exists audit_events__pending on audit_events');
  await knex.raw('drop function if exists audit_events_pending()');
  await knex.raw('drop table if exists audit_pending');
  await knex.raw('drop table if exists audit_chain');
}
