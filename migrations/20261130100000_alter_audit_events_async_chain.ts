import type { Knex } from 'knex';

// The audit chain is linked after commit by a background step instead of under a global lock
// inside every writing transaction: writers only insert (fully concurrent); the chainer gives
// each committed event its place (chain_pos), prev_hash and hash, in one ordered pass.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('audit_events', (t) => {
    t.bigInteger('chain_pos').nullable().comment('position in the hash chain; null until the chainer links the event');
  });
  // Events chained so far were linked in seq order.
  await knex.raw('update audit_events a set chain_pos = o.pos from (select seq, row_number() over (order by seq) as pos from audit_events) o where a.seq = o.seq');
  await knex.raw('alter table audit_events alter column prev_hash drop not null, alter column hash drop not null');
  await knex.raw('create unique index audit_events__chain_pos on audit_events (chain_pos) where chain_pos is not null');
  await knex.raw('create index audit_events__unchained on audit_events (seq) where chain_pos is null');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index if exists audit_events__unchained');
  await knex.raw('drop index if exists audit_events__chain_pos');
  await knex.raw('delete from audit_events where chain_pos is null');
  await knex.raw('alter table audit_events alter column prev_hash set not null, alter column hash set not null');
  await knex.schema.alterTable('audit_events', (t) => t.dropColumn('chain_pos'));
}
