// totalResults of an unfiltered SCIM user list comes from visible_user_counts, which statement
// triggers on users keep in step with every insert, update and delete (whatever wrote it: the
// services, SCIM, or plain SQL). Property: after any sequence of writes, it equals a count(*).
import fc from 'fast-check';
import type { Knex } from 'knex';
import { listScimUsers } from '../../src/scim/users.query.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_user_counts', 4);
  db = mdb.db;
});

afterAll(async () => {
  await mdb?.close();
});

const STATUSES = ['active', 'suspended', 'deprovisioned'] as const;

async function counted(): Promise<number> {
  const [row] = await db('users').whereNot('status', 'deprovisioned').count<{ count: string }[]>({ count: '*' });
  return Number(row!.count);
}

async function kept(): Promise<number> {
  const [row] = await db('visible_user_counts').select(db.raw('coalesce(sum(delta), 0) as count'));
  return Number((row as { count: string }).count);
}

let seq = 0;
type Op =
  | { kind: 'insert'; statuses: (typeof STATUSES)[number][] }
  | { kind: 'setStatus'; pick: number; status: (typeof STATUSES)[number] }
  | { kind: 'delete'; pick: number }
  | { kind: 'rollback'; statuses: (typeof STATUSES)[number][] };

const status = fc.constantFrom(...STATUSES);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), statuses: fc.array(status, { minLength: 1, maxLength: 5 }) }),
  fc.record({ kind: fc.constant('setStatus' as const), pick: fc.nat(), status }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('rollback' as const), statuses: fc.array(status, { minLength: 1, maxLength: 3 }) }),
);

async function apply(o: Op): Promise<void> {
  const ids: string[] = (await db('users').select('id').orderBy('id')).map((r: { id: string }) => r.id);
  const rows = (statuses: readonly string[]) => statuses.map((s) => ({ id: crypto.randomUUID(), username: `count-${(seq += 1)}`, status: s }));
  switch (o.kind) {
    case 'insert':
      await db('users').insert(rows(o.statuses));
      return;
    case 'setStatus':
      if (ids.length) await db('users').where({ id: ids[o.pick % ids.length] }).update({ status: o.status });
      return;
    case 'delete':
      if (ids.length) await db('users').where({ id: ids[o.pick % ids.length] }).delete();
      return;
    case 'rollback':
      await db.transaction(async (trx) => {
        await trx('users').insert(rows(o.statuses));
        throw new Error('rolled back on purpose');
      }).catch(() => {});
  }
}

describe('visible_user_counts', () => {
  it('equals a count(*) of the users not deprovisioned after any sequence of writes', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
      for (const o of ops) await apply(o);
      expect(await kept()).toBe(await counted());
    }), { numRuns: 40 });
  });

  it('stays exact under concurrent writers on several connections, and a multi-row update counts every row', async () => {
    await Promise.all(Array.from({ length: 8 }, (_, i) => db('users').insert(
      Array.from({ length: 25 }, (__, j) => ({ id: crypto.randomUUID(), username: `parallel-${i}-${j}`, status: 'active' })),
    )));
    expect(await kept()).toBe(await counted());
    await db('users').whereLike('username', 'parallel-1-%').update({ status: 'deprovisioned' });
    await db('users').whereLike('username', 'parallel-2-%').delete();
    expect(await kept()).toBe(await counted());
    expect(await db('visible_user_counts').count<{ count: string }[]>({ count: '*' }).then(([r]) => Number(r!.count))).toBeLessThanOrEqual(64);
  });

  it('is the totalResults of an unfiltered SCIM list, and a filtered list still counts its matches', async () => {
    // That the total is read from the counters, not counted: an `npm run bench` diagnostic.
    const all = await listScimUsers(db, null, { sortOrder: 'ascending', startIndex: 1, count: 5 });
    expect(all.total).toBe(await counted());
    expect(all.records).toHaveLength(5);
    const some = await listScimUsers(db, null, { filter: 'userName sw "parallel-3-"', sortOrder: 'ascending', startIndex: 1, count: 0 });
    expect(some).toEqual({ total: 25, records: [] });
  });
});
