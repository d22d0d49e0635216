// The audit log is hash-chained: any edit or removal of a past event is found by verify.
import type { Knex } from 'knex';
import { createDb } from '../../src/db/knex.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { canonicalJson, chainAllPendingAuditEvents, chainPendingAuditEvents, findAuditEvents, verifyAuditChain } from '../../src/audit/audit.service.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, testMasterKey } from '../helpers/server.ts';

let tdb: TestDatabase;
let db: Knex;
let users: UsersService;
const actor = { type: 'admin_client' as const, id: 'test-client', ip: '203.0.113.9', userAgent: 'jest' };

beforeAll(async () => {
  tdb = await createTestDatabase();
  db = createDb({ databaseUrl: tdb.url, databasePoolMax: 10, dataDir: '/nonexistent' }).db;
  await migrateLatest(db);
  users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
});

afterAll(async () => {
  await db?.destroy();
  await tdb?.drop();
});

describe('audit log', () => {
  it('records every change in the same transaction, with actor, target and no secrets', async () => {
    const user = await users.createUser({ username: 'grace', email: 'grace@example.com', password: 'cobol-forever', name: 'Grace Hopper' }, actor);
    await users.updateUser(user.id, { title: 'Rear Admiral', password: 'new-password-1' }, actor);
    await users.changeStatus(user.id, 'suspend', actor);
    const events = await findAuditEvents(db, { targetId: user.id, limit: 10 });
    expect(events.map((e) => e.action)).toEqual(['user.suspended', 'user.updated', 'user.created']);
    expect(events[2]).toMatchObject({ actorType: 'admin_client', actorId: 'test-client', ip: '203.0.113.9', userAgent: 'jest', targetType: 'user' });
    const raw = JSON.stringify(await db('audit_events').select('*'));
    expect(raw).not.toContain('cobol-forever');
    expect(raw).not.toContain('new-password-1');
    expect(raw).not.toContain('$argon2id$');
  });

  it('writes no event when the change fails', async () => {
    const before = await db('audit_events').count<{ count: number }[]>({ count: '*' });
    await expect(users.createUser({ username: 'grace', email: 'other@example.com' }, actor)).rejects.toMatchObject({ kind: 'already_exists' });
    const after = await db('audit_events').count<{ count: number }[]>({ count: '*' });
    expect(Number(after[0]!.count)).toBe(Number(before[0]!.count));
  });

  it('keeps one unbroken chain under concurrent writers', async () => {
    await Promise.all(Array.from({ length: 25 }, (_, i) => users.createUser({ username: `load${i}`, email: `load${i}@example.com` }, actor)));
    // Committed events wait for the chainer; until then verify counts them as pending.
    expect((await verifyAuditChain(db)).pending).toBeGreaterThanOrEqual(25);
    // Two chainers at once: one works, the other steps aside; nothing is chained twice.
    await Promise.all([chainPendingAuditEvents(db), chainPendingAuditEvents(db)]);
    await chainAllPendingAuditEvents(db);
    const result = await verifyAuditChain(db);
    expect(result.pending).toBe(0);
    expect(result.ok).toBe(true);
    expect(result.checked).toBeGreaterThanOrEqual(28);
  });

  it('canonical JSON does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
  });

  it('names the first altered event when a row is changed with SQL', async () => {
    await chainAllPendingAuditEvents(db);
    const [victim] = await db('audit_events').orderBy('seq').offset(3).limit(1);
    await db('audit_events').where({ seq: victim.seq }).update({ actor_id: 'someone-else' });
    const result = await verifyAuditChain(db);
    expect(result.ok).toBe(false);
    expect(result.firstBroken!.seq).toBe(Number(victim.seq));
    expect(result.checked).toBe(3);
    await db('audit_events').where({ seq: victim.seq }).update({ actor_id: victim.actor_id });
    expect((await verifyAuditChain(db)).ok).toBe(true);
  });

  it('names the event after a deleted one, and the CLI exits non-zero saying where', async () => {
    const rows = await db('audit_events').orderBy('seq').offset(5).limit(2);
    await db('audit_events').where({ seq: rows[0].seq }).delete();
    const result = await verifyAuditChain(db);
    expect(result.ok).toBe(false);
    expect(result.firstBroken!.seq).toBe(Number(rows[1].seq));

    const cli = await runCli(['audit', 'verify'], { DATABASE_URL: tdb.url, ONEID_MASTER_KEY: testMasterKey() });
    expect(cli.code).toBe(1);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect(cli.stderr).toContain(`seq ${rows[1].seq}`);
  });
});
