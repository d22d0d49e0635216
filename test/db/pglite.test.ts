// The embedded database must answer like PostgreSQL does, including row counts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb } from '../../src/db/knex.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { loadConfig } from '../../src/config.ts';
import { createServices } from '../../src/services.ts';
import { chainAllPendingAuditEvents, verifyAuditChain } from '../../src/audit/audit.service.ts';

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

  it('runs a SCIM member change (one statement, no transaction) and chains its audit events', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-pglite-'));
    const handle = createDb({ databaseUrl: undefined, databasePoolMax: 1, dataDir: dir });
    try {
      await migrateLatest(handle.db);
      const services = createServices(handle.db, loadConfig({ NODE_ENV: 'test' }));
      const actor = { type: 'scim_client' as const, id: 'embedded' };
      const [a, b] = [await services.users.createUser({ username: 'embedded-a' }), await services.users.createUser({ username: 'embedded-b' })];
      const group = await services.groups.createGroupWithMembers({ name: 'Embedded' }, [a.id], actor);
      const added = await services.groups.changeGroup(group.id, [{ kind: 'addMembers', userIds: [b.id] }], actor);
      expect(added).toMatchObject({ added: [b.id], changed: true, group: { version: group.version + 1 } });
      const removed = await services.groups.changeGroup(group.id, [{ kind: 'removeMembers', userIds: [a.id] }], actor);
      expect(removed).toMatchObject({ removed: [a.id], changed: true, group: { version: group.version + 2 } });
      expect((await handle.db('group_members').where({ group_id: group.id }).select('user_id')).map((r) => r.user_id)).toEqual([b.id]);
      await chainAllPendingAuditEvents(handle.db);
      expect(await verifyAuditChain(handle.db)).toMatchObject({ ok: true, pending: 0 });
    } finally {
      await handle.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180000);
});
