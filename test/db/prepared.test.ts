// Prepared statements on a real PostgreSQL: same answers as knex, a bounded number kept per
// connection, and no breakage when a migration adds a column under a prepared `select *`.
import type { Knex } from 'knex';
import { run, runQuery, statement } from '../../src/db/prepared.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;

/** The prepared statements of the pool's one connection. */
const preparedNames = async (): Promise<string[]> =>
  ((await db.raw('select name from pg_prepared_statements order by name')).rows as { name: string }[]).map((r) => r.name);

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_prepared', 1); // one connection: every statement shares it
  db = mdb.db;
  await db.raw('create table things (id int primary key, label text not null)');
  await db('things').insert([1, 2, 3, 4, 5, 6].map((id) => ({ id, label: `thing ${id}` })));
});

afterAll(async () => {
  await mdb?.close();
});

describe('runQuery', () => {
  it('answers exactly what knex answers, for any bindings', async () => {
    for (const min of [0, 2, 5, 9]) {
      const query = () => db('things').where('id', '>', min).orderBy('id').select('id', 'label');
      expect(await runQuery(db, query())).toEqual(await query());
    }
  });

  it('keeps at most the given number of shapes prepared on a connection, the most recently used', async () => {
    const shape = (n: number) => db('things').where('id', '>', 0).limit(n).select('id'); // the limit is a binding: one shape
    const shapes = [1, 2, 3, 4, 5].map((n) => () => db('things').whereIn('id', Array.from({ length: n }, (_, i) => i + 1)).select('id'));
    const shapesBefore = (await preparedNames()).filter((n) => n.startsWith('q_')).length;
    await runQuery(db, shape(1), 3);
    await runQuery(db, shape(4), 3);
    expect((await preparedNames()).filter((n) => n.startsWith('q_'))).toHaveLength(shapesBefore + 1);
    for (const make of shapes) await runQuery(db, make(), 3);
    expect((await preparedNames()).filter((n) => n.startsWith('q_'))).toHaveLength(3);
    // Evicted shapes are prepared again when they come back, and still answer.
    expect(await runQuery(db, shapes[0]!())).toEqual([{ id: 1 }]);
  });

  it('goes through knex inside a transaction, and prepares nothing there', async () => {
    const before = await preparedNames();
    const rows = await db.transaction((trx) => runQuery(trx, trx('things').where('id', 6).select('label', 'id')));
    expect(rows).toEqual([{ label: 'thing 6', id: 6 }]);
    expect(await preparedNames()).toEqual(before);
  });
});

describe('a prepared select * when a migration adds a column', () => {
  it('answers with the new column instead of failing', async () => {
    const all = statement('test_things_all', 'select * from things where id = ?');
    expect(await run(db, all, [1])).toEqual([{ id: 1, label: 'thing 1' }]);
    expect(await runQuery(db, db('things').where('id', 2).select('*'))).toEqual([{ id: 2, label: 'thing 2' }]);
    await db.raw("alter table things add column colour text not null default 'blue'");
    expect(await run(db, all, [1])).toEqual([{ id: 1, label: 'thing 1', colour: 'blue' }]);
    expect(await runQuery(db, db('things').where('id', 2).select('*'))).toEqual([{ id: 2, label: 'thing 2', colour: 'blue' }]);
  });
});
