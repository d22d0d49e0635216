// The embedded database must answer like PostgreSQL does, including row counts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb } from '../../src/db/knex.ts';

describe('embedded PGlite through knex', () => {
  it('returns affected row counts for delete and update, as on PostgreSQL', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-pglite-'));
    const handle = createDb({ databaseUrl: undefined, databasePoolMax: 1, dataDir: dir });
    try {
      await handle.db.raw('create table t (a int)');
      await handle.db('t').insert([{ a: 1 }, { a: 2 }, { a: 3 }]);
      expect(await handle.db('t').where('a', '>', 1).update({ a: 9 })).toBe(2);
      expect(await handle.db('t').where({ a: 9 }).delete()).toBe(2);
      expect(await handle.db('t').where({ a: 42 }).delete()).toBe(0);
    } finally {
      await handle.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120000);
});
