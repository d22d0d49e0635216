// A page of everyone in the default order (added_seq) starts at its block of visible_user_blocks
// instead of skipping startIndex - 1 rows. Property: whatever was written before (inserts,
// status changes, deletes, rollbacks, on several connections), every page equals the page
// OFFSET gives. And the migration numbers existing users in the order lists used before.
import fc from 'fast-check';
import type { Knex } from 'knex';
import { migrateLatest, migratorConfig } from '../../src/db/migrate.ts';
import { listScimUsers } from '../../src/scim/users.query.ts';
import { createMigratedDatabase, withDatabaseAt, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_user_blocks', 4);
  db = mdb.db;
});

afterAll(async () => {
  await mdb?.close();
});

const STATUSES = ['active', 'suspended', 'deprovisioned'] as const;
type Status = (typeof STATUSES)[number];
let seq = 0;

/** `n` users in one statement, each status drawn from `statuses` in turn. */
const insertUsers = (trx: Knex | Knex.Transaction, n: number, statuses: readonly Status[]) => trx('users').insert(
  Array.from({ length: n }, (_, i) => ({ id: crypto.randomUUID(), username: `block-${(seq += 1)}`, status: statuses[i % statuses.length] })),
);

/** The page as OFFSET gives it. */
async function offsetPage(startIndex: number, count: number): Promise<string[]> {
  const rows: { id: string }[] = await db('users').select('id').whereNot('status', 'deprovisioned')
    .orderBy('added_seq').offset(startIndex - 1).limit(count);
  return rows.map((r) => r.id);
}

async function listedPage(startIndex: number, count: number): Promise<string[]> {
  const { records } = await listScimUsers(db, null, { sortOrder: 'ascending', startIndex, count });
  return records.map((r) => r.user.id);
}

async function visibleCount(): Promise<number> {
  const [row] = await db('users').whereNot('status', 'deprovisioned').count<{ count: string }[]>({ count: '*' });
  return Number(row!.count);
}

type Op =
  | { kind: 'insert'; n: number; statuses: Status[] }
  | { kind: 'setStatus'; from: number; n: number; status: Status }
  | { kind: 'delete'; from: number; n: number }
  | { kind: 'rollback'; n: number };

const status = fc.constantFrom(...STATUSES);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), n: fc.integer({ min: 1, max: 400 }), statuses: fc.array(status, { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('setStatus' as const), from: fc.nat(), n: fc.integer({ min: 1, max: 300 }), status }),
  fc.record({ kind: fc.constant('delete' as const), from: fc.nat(), n: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('rollback' as const), n: fc.integer({ min: 1, max: 50 }) }),
);

/** A range of users in added_seq order, from a random place (statements of more than one block). */
const range = (from: number, n: number) => db('users').select('id').orderBy('added_seq').offset(from % 3000).limit(n);

async function apply(o: Op): Promise<void> {
  switch (o.kind) {
    case 'insert':
      await insertUsers(db, o.n, o.statuses);
      return;
    case 'setStatus':
      await db('users').whereIn('id', range(o.from, o.n)).update({ status: o.status });
      return;
    case 'delete':
      await db('users').whereIn('id', range(o.from, o.n)).delete();
      return;
    case 'rollback':
      await db.transaction(async (trx) => {
        await insertUsers(trx, o.n, ['active']);
        throw new Error('rolled back on purpose');
      }).catch(() => {});
  }
}

describe('pages of everyone by blocks', () => {
  beforeAll(async () => {
    // Several blocks of 1,024, written from several connections (slots) at once.
    await Promise.all(Array.from({ length: 4 }, (_, i) => insertUsers(db, 900, i % 2 ? ['active', 'deprovisioned', 'suspended'] : ['active'])));
  });

  it('gives exactly the page OFFSET gives, after any sequence of writes', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(op, { minLength: 1, maxLength: 6 }),
      // Start indexes spread over the whole list (fc.integer's bias to small values is not wanted
      // here), up to a little past its end.
      fc.array(fc.tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 60 })), { minLength: 1, maxLength: 6 }),
      async (ops, pages) => {
        for (const o of ops) await apply(o);
        const total = await visibleCount();
        for (const [at, count] of pages) {
          const startIndex = 2 + Math.floor(((at * 7919) % 10_000) / 10_000 * (total + 2));
          expect(await listedPage(startIndex, count)).toEqual(await offsetPage(startIndex, count));
        }
      },
    ), { numRuns: 25 });
  });

  it('gives the late pages OFFSET gives, across a block boundary, and ends empty past the last user', async () => {
    // Which statements a page sends and how PostgreSQL plans them: `npm run bench` diagnostics.
    const total = await visibleCount();
    expect(total).toBeGreaterThan(2048);
    const [late, boundary] = [await listedPage(total - 3, 10), await listedPage(1025, 3)];
    expect(late).toEqual(await offsetPage(total - 3, 10));
    expect(late).toHaveLength(4);
    expect(boundary).toEqual(await offsetPage(1025, 3));
    expect(await listedPage(total + 1, 10)).toEqual([]);
  });

  it('keeps the counts exact under concurrent writers and readers on several connections', async () => {
    await Promise.all([
      ...Array.from({ length: 6 }, () => insertUsers(db, 120, ['active', 'suspended'])),
      db('users').whereIn('id', range(100, 500)).update({ status: 'deprovisioned' }),
      listedPage(1500, 20),
    ]);
    const blocks: { block: string; n: string }[] = await db('visible_user_blocks').select('block').sum({ n: 'delta' }).groupBy('block');
    const actual: { block: string; n: string }[] = await db('users').whereNot('status', 'deprovisioned')
      .select(db.raw('added_seq / 1024 as block')).count({ n: '*' }).groupByRaw('1');
    const asMap = (rows: { block: string; n: string }[]) => new Map(rows.filter((r) => Number(r.n) !== 0).map((r) => [String(r.block), Number(r.n)]));
    expect(asMap(blocks)).toEqual(asMap(actual));
    const total = await visibleCount();
    expect(await listedPage(Math.floor(total / 2), 50)).toEqual(await offsetPage(Math.floor(total / 2), 50));
  });
});

describe('migration 20261201090000', () => {
  it('numbers existing users in (created_at, id) order, counts their blocks, and goes down and up again', async () => {
    await withDatabaseAt('oneid_test_blocks_migration', '20261130150000', async (mdb2) => {
      // Created out of id order, some at the same instant, one deprovisioned.
      const base = Date.parse('2026-01-01T00:00:00Z');
      const users = Array.from({ length: 40 }, (_, i) => ({
        id: crypto.randomUUID(), username: `old-${i}`, status: i === 7 ? 'deprovisioned' : 'active',
        created_at: new Date(base + Math.floor(i / 3) * 1000).toISOString(),
      }));
      await mdb2('users').insert([...users].reverse());
      const before: string[] = (await mdb2('users').select('id').orderBy([{ column: 'created_at' }, { column: 'id' }])).map((r: { id: string }) => r.id);

      await mdb2.migrate.up(migratorConfig);
      const after: string[] = (await mdb2('users').select('id').orderBy('added_seq')).map((r: { id: string }) => r.id);
      expect(after).toEqual(before);
      const [blocks] = await mdb2('visible_user_blocks').sum({ n: 'delta' });
      expect(Number((blocks as { n: string }).n)).toBe(39);
      // New users come after the old ones.
      await mdb2('users').insert({ id: crypto.randomUUID(), username: 'new-after-migration' });
      const last = await mdb2('users').orderBy('added_seq', 'desc').first('username');
      expect(last.username).toBe('new-after-migration');

      await mdb2.migrate.down(migratorConfig);
      const columns = await mdb2('information_schema.columns').where({ table_name: 'users', column_name: 'added_seq' });
      expect(columns).toHaveLength(0);
      expect(await mdb2('users').count<{ count: string }[]>({ count: '*' }).then(([r]) => Number(r!.count))).toBe(41);
      await migrateLatest(mdb2);
      const again: string[] = (await mdb2('users').select('id').orderBy('added_seq')).map((r: { id: string }) => r.id);
      expect(again.slice(0, before.length)).toEqual(before);
    });
  });
});

describe('migration 20261201120000', () => {
  /** The counters against the users table itself: [visible count, visible users per block]. */
  const counters = async (k: Knex) => {
    const counted = await k.raw(`select (select coalesce(sum(delta), 0) from visible_user_counts)::int as total,
      (select coalesce(json_object_agg(block, n), '{}') from (select block, sum(delta)::int as n from visible_user_blocks group by block having sum(delta) <> 0) b) as blocks`);
    const actual = await k.raw(`select (select count(*) from users where status <> 'deprovisioned')::int as total,
      (select coalesce(json_object_agg(block, n), '{}') from (select added_seq / 1024 as block, count(*)::int as n from users where status <> 'deprovisioned' group by 1) b) as blocks`);
    return { counted: counted.rows[0], actual: actual.rows[0] };
  };
  const triggers = async (k: Knex) => (await k.raw("select tgname from pg_trigger where tgrelid = 'users'::regclass and not tgisinternal order by 1")).rows.map((r: { tgname: string }) => r.tgname);

  it('counts status changes with a row trigger that skips other updates, exactly as before, and goes down and up again', async () => {
    await withDatabaseAt('oneid_test_status_trigger_migration', '20261201110000', async (m) => {
      await m('users').insert(Array.from({ length: 30 }, (_, i) => ({ id: crypto.randomUUID(), username: `st-${i}`, status: i % 5 === 0 ? 'deprovisioned' : 'active' })));
      await m.migrate.up(migratorConfig);
      expect(await triggers(m)).toEqual(['users__blocks_delete', 'users__blocks_insert', 'users__count_delete', 'users__count_insert', 'users__visible_update']);
      const ids: string[] = (await m('users').orderBy('added_seq').select('id')).map((r: { id: string }) => r.id);
      const before = await m('visible_user_blocks').select('*').orderBy(['block', 'slot']);
      // Updates that change no status (versions, names) leave the counters' rows alone.
      await m('users').update({ version: m.raw('version + 1'), display_name: 'renamed' });
      expect(await m('visible_user_blocks').select('*').orderBy(['block', 'slot'])).toEqual(before);
      // One user at a time, several at once, back and forth, a move to another block, a rollback.
      await m('users').where({ id: ids[1] }).update({ status: 'deprovisioned' });
      await m('users').where({ id: ids[0] }).update({ status: 'active' });
      await m('users').where({ id: ids[2] }).update({ status: 'suspended' });
      await m('users').whereIn('id', ids.slice(10, 20)).update({ status: 'deprovisioned' });
      await m('users').whereIn('id', ids.slice(12, 14)).update({ status: 'active' });
      await m('users').where({ id: ids[3] }).update({ added_seq: m.raw('added_seq + 5000') });
      await m.transaction(async (trx) => {
        await trx('users').whereIn('id', ids.slice(20, 25)).update({ status: 'deprovisioned' });
        throw new Error('rolled back');
      }).catch(() => undefined);
      let now = await counters(m);
      expect(now.counted).toEqual(now.actual);
      // 24 visible at first (every fifth deprovisioned); -1 (ids[1]), +1 (ids[0]), -8 (10 to 19, two already gone), +2.
      expect(now.actual.total).toBe(18);

      await m.migrate.down(migratorConfig);
      expect(await triggers(m)).toEqual(['users__blocks_delete', 'users__blocks_insert', 'users__blocks_update', 'users__count_delete', 'users__count_insert', 'users__count_update']);
      await m('users').whereIn('id', ids.slice(10, 16)).update({ status: 'active' });
      now = await counters(m);
      expect(now.counted).toEqual(now.actual);
      await migrateLatest(m);
      await m('users').where({ id: ids[4] }).update({ status: 'deprovisioned' });
      now = await counters(m);
      expect(now.counted).toEqual(now.actual);
    });
  });
});
