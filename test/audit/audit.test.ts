// The audit log is hash-chained: any edit or removal of a past event is found by verify.
import type { Knex } from 'knex';
import { migrateLatest, migratorConfig } from '../../src/db/migrate.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { canonicalJson, chainAllPendingAuditEvents, chainPendingAuditEvents, eventHash, findAuditEvents, GENESIS_HASH, recordAudit, redactChanges, verifyAuditChain } from '../../src/audit/audit.service.ts';
import { userInfo } from 'node:os';
import { AppsService } from '../../src/apps/apps.service.ts';
import { ScimTokensService } from '../../src/apps/scim-tokens.service.ts';
import { AccessService } from '../../src/access/assignments.service.ts';
import { DepartmentsService } from '../../src/directory/departments.service.ts';
import { GroupsService } from '../../src/directory/groups.service.ts';
import { runCli, testMasterKey } from '../helpers/server.ts';
import { createMigratedDatabase, withDatabaseAt, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
const actor = { type: 'admin_client' as const, id: 'test-client', ip: '203.0.113.9', userAgent: 'jest' };
const newUsers = (k: Knex) => new UsersService(k, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_audit', 10);
  db = mdb.db;
  users = newUsers(db);
});

afterAll(async () => {
  await mdb?.close();
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

  it('redacts what looks like a secret at any depth, and keeps settings that only look like one', () => {
    expect(redactChanges({
      clientSecret: 'cs', passwordHash: 'h', nested: [{ refreshToken: 'rt', name: 'kept' }], idTokenSigningAlg: 'ES256', title: 'kept',
    })).toEqual({
      clientSecret: '[redacted]', passwordHash: '[redacted]', nested: [{ refreshToken: '[redacted]', name: 'kept' }], idTokenSigningAlg: 'ES256', title: 'kept',
    });
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

  it('names a deleted event by its seq, and the CLI exits non-zero saying where', async () => {
    const rows = await db('audit_events').orderBy('seq').offset(5).limit(2);
    await db('audit_events').where({ seq: rows[0].seq }).delete();
    const result = await verifyAuditChain(db);
    expect(result.ok).toBe(false);
    expect(result.firstBroken).toMatchObject({ seq: Number(rows[0].seq), id: null, reason: expect.stringContaining('deleted') });
    expect(result.checked).toBe(5);

    const cli = await runCli(['audit', 'verify'], { DATABASE_URL: mdb.database.url, ONEID_MASTER_KEY: testMasterKey() });
    expect(cli.code).toBe(1);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect(cli.stderr).toContain(`seq ${rows[0].seq}`);
  });
});

describe('audit chain storage', () => {
  let sdb: MigratedDatabase;
  let s: Knex;
  let susers: UsersService;

  beforeAll(async () => {
    sdb = await createMigratedDatabase('oneid_test_audit_storage', 4);
    s = sdb.db;
    susers = newUsers(s);
  });

  afterAll(async () => {
    await sdb?.close();
  });

  it('never updates or deletes an event: writers insert, the chainer writes audit_chain and empties audit_pending', async () => {
    // As a database role with INSERT and SELECT only on audit_events would see it.
    await s.raw(`create function refuse_audit_change() returns trigger language plpgsql as $$
      begin raise exception 'audit_events is insert-only'; end $$`);
    await s.raw('create trigger refuse_audit_change before update or delete on audit_events for each row execute function refuse_audit_change()');
    try {
      await Promise.all(Array.from({ length: 6 }, (_, i) => susers.createUser({ username: `insert-only-${i}` }, actor)));
      expect(Number((await s('audit_pending').count({ n: '*' }))[0]!.n)).toBe(6);
      await chainAllPendingAuditEvents(s);
      expect(Number((await s('audit_pending').count({ n: '*' }))[0]!.n)).toBe(0);
      const chain = await s('audit_chain').orderBy('pos').select('pos', 'seq');
      expect(chain.map((c) => Number(c.pos))).toEqual([1, 2, 3, 4, 5, 6]);
      expect(new Set(chain.map((c) => c.seq)).size).toBe(6);
      expect(await verifyAuditChain(s)).toEqual({ ok: true, checked: 6, pending: 0 });
      const listed = await findAuditEvents(s, { limit: 10 });
      expect(listed.every((e) => /^[0-9a-f]{64}$/.test(e.hash!))).toBe(true);
    } finally {
      await s.raw('drop trigger refuse_audit_change on audit_events');
      await s.raw('drop function refuse_audit_change()');
    }
  });

  it('drops the pending row of an event deleted before it was chained, and the chain stays whole', async () => {
    await susers.createUser({ username: 'short-lived' }, actor);
    const [gone] = await s('audit_events').orderBy('seq', 'desc').limit(1);
    await s('audit_events').where({ seq: gone.seq }).delete();
    await chainAllPendingAuditEvents(s);
    expect(await s('audit_pending').first()).toBeUndefined();
    expect(await s('audit_chain').where({ seq: gone.seq }).first()).toBeUndefined();
    expect((await verifyAuditChain(s)).ok).toBe(true);
  });

  it('names the position of a removed chain link', async () => {
    const [link] = await s('audit_chain').where({ pos: 3 }).select('*');
    await s('audit_chain').where({ pos: 3 }).delete();
    const result = await verifyAuditChain(s);
    expect(result).toMatchObject({ ok: false, checked: 2, firstBroken: { reason: expect.stringContaining('chain position 3 is missing') } });
    await s('audit_chain').insert(link);
    expect((await verifyAuditChain(s)).ok).toBe(true);
  });
});

describe('migration 20261201110000', () => {
  it('moves positions and hashes into audit_chain as they are, lists the unchained events as pending, and goes down and up again', async () => {
    await withDatabaseAt('oneid_test_audit_chain_migration', '20261201100000', async (m) => {
      // Five events in the old layout, the first three chained (as the old chainer left them).
      let prev = GENESIS_HASH;
      const events = Array.from({ length: 5 }, (_, i) => ({
        id: crypto.randomUUID(), occurred_at: new Date(Date.parse('2026-11-01T00:00:00Z') + i * 1000).toISOString(), actor_type: 'system', actor_id: 'cli',
        action: `test.event_${i}`, target_type: null, target_id: null, ip: null, user_agent: null, changes: { n: i },
      }));
      for (const [i, e] of events.entries()) {
        const chained = i < 3 ? { chain_pos: i + 1, prev_hash: prev, hash: eventHash(prev, e) } : { chain_pos: null, prev_hash: null, hash: null };
        if (chained.hash) prev = chained.hash;
        await m('audit_events').insert({ ...e, changes: JSON.stringify(e.changes), ...chained });
      }
      const oldChain = await m('audit_events').whereNotNull('chain_pos').orderBy('chain_pos').select('seq', 'chain_pos', 'prev_hash', 'hash');

      await m.migrate.up(migratorConfig);
      expect(await verifyAuditChain(m)).toEqual({ ok: true, checked: 3, pending: 2 });
      expect((await m('audit_chain').orderBy('pos').select('seq', 'pos', 'prev_hash', 'hash')).map((c) => [c.seq, c.pos, c.prev_hash, c.hash]))
        .toEqual(oldChain.map((c) => [c.seq, c.chain_pos, c.prev_hash, c.hash]));
      await chainAllPendingAuditEvents(m);
      expect(await verifyAuditChain(m)).toEqual({ ok: true, checked: 5, pending: 0 });
      const chained = await m('audit_chain').orderBy('pos').select('seq', 'pos', 'prev_hash', 'hash');

      await m.migrate.down(migratorConfig);
      expect((await m('audit_events').orderBy('chain_pos').select('seq', 'chain_pos', 'prev_hash', 'hash')).map((c) => [c.seq, c.chain_pos, c.prev_hash, c.hash]))
        .toEqual(chained.map((c) => [c.seq, c.pos, c.prev_hash, c.hash]));
      expect(await m('information_schema.tables').whereIn('table_name', ['audit_chain', 'audit_pending'])).toHaveLength(0);

      await migrateLatest(m);
      expect(await verifyAuditChain(m)).toEqual({ ok: true, checked: 5, pending: 0 });
    });
  });
});

describe('old values beside the new', () => {
  let odb: MigratedDatabase;
  let o: Knex;
  const byToken = { type: 'user' as const, id: '5b0d8d38-0c55-4d4c-9a3e-7f0f3f0c0a11', clientId: 'admin-console', ip: '203.0.113.7', userAgent: 'jest' };
  const latest = async (action: string, targetId: string) => (await findAuditEvents(o, { action, targetId, limit: 1 }))[0]!;

  beforeAll(async () => {
    odb = await createMigratedDatabase('oneid_test_audit_before', 4);
    o = odb.db;
  });

  afterAll(async () => {
    await odb?.close();
  });

  it('records the old value of every field an update of a user changes, and a password set as changed with no hash on either side', async () => {
    const u = newUsers(o);
    const user = await u.createUser({ username: 'ada', email: 'ada@example.com', name: 'Ada Byron', title: 'Analyst', password: 'first-password-1' }, actor);
    await u.updateUser(user.id, { title: 'Countess', email: 'ada@lovelace.example', name: 'Ada Lovelace', password: 'second-password-2' }, byToken);
    const event = await latest('user.updated', user.id);
    expect(event.changes).toMatchObject({ title: 'Countess', email: 'ada@lovelace.example', name: 'Ada Lovelace', passwordChanged: true });
    expect(event.before).toEqual({ title: 'Analyst', email: 'ada@example.com', name: 'Ada Byron' });
    const raw = JSON.stringify(await o('audit_events').select('changes', 'before'));
    expect(raw).not.toContain('$argon2id$');
    expect(raw).not.toContain('password-1');
    expect(raw).not.toContain('password-2');

    await u.changeStatus(user.id, 'suspend', actor);
    expect((await latest('user.suspended', user.id)).before).toEqual({ status: 'active' });
  });

  it('records the old values of groups, departments, apps, app roles, assignments and SCIM tokens', async () => {
    const groups = new GroupsService(o);
    const group = await groups.createGroup({ name: 'Writers' }, actor);
    await groups.updateGroup(group.id, { name: 'Tech Writers' }, actor);
    expect((await latest('group.updated', group.id)).before).toEqual({ name: 'Writers' });

    const departments = new DepartmentsService(o);
    const dept = await departments.createDepartment({ name: 'Support' }, actor);
    await departments.updateDepartment(dept.id, { name: 'Customer Support', externalId: 'HR-7' }, actor);
    expect((await latest('department.updated', dept.id)).before).toEqual({ name: 'Support', externalId: null });

    const apps = new AppsService(o);
    const app = await apps.createApp({ name: 'Docs', redirectUris: ['https://docs.example/cb'], adminRoles: ['auditor'] }, actor);
    await apps.updateApp(app.id, { name: 'Docs 2', redirectUris: ['https://docs.example/cb2'], adminRoles: [], idTokenSigningAlg: 'ES256' }, actor);
    expect((await latest('app.updated', app.id)).before).toEqual({ name: 'Docs', redirectUris: ['https://docs.example/cb'], adminRoles: ['auditor'], idTokenSigningAlg: 'RS256' });

    const role = await apps.createRole(app.id, { key: 'docs.editor', name: 'Editor' }, actor);
    await apps.updateRole(app.id, role.id, { name: 'Editors', description: 'edit pages' }, actor);
    expect((await latest('app_role.updated', app.id)).before).toEqual({ name: 'Editor', description: null });

    const access = new AccessService(o);
    const assignment = await access.createAssignment(app.id, { principalType: 'department', principalId: dept.id }, actor);
    await access.updateAssignment(app.id, assignment.id, { includeSubdepartments: true, roleKeys: ['docs.editor'] }, actor);
    expect((await latest('assignment.updated', app.id)).before).toEqual({ includeSubdepartments: false, roles: [] });

    const tokens = new ScimTokensService(o);
    const { token } = await tokens.create({ name: 'HR' }, actor);
    await tokens.revoke(token.id, actor);
    const revoked = await latest('scim_token.revoked', token.id);
    expect(revoked.before).toEqual({ revokedAt: null });
    expect((revoked.changes as { revokedAt: string }).revokedAt).toEqual(expect.any(String));
  });

  it('redacts secrets at any depth on both sides, and keeps booleans that only say a secret was set', async () => {
    await recordAudit(o, actor, {
      action: 'test.secret_changed', targetType: 'test', targetId: 'secrets',
      changes: { clientSecret: 'new-cs', settings: { refreshToken: 'new-rt', name: 'kept' }, passwordChanged: true },
      before: { clientSecret: 'old-cs', settings: { refreshToken: 'old-rt', name: 'was' } },
    });
    const event = await latest('test.secret_changed', 'secrets');
    expect(event.changes).toEqual({ clientSecret: '[redacted]', settings: { refreshToken: '[redacted]', name: 'kept' }, passwordChanged: true });
    expect(event.before).toEqual({ clientSecret: '[redacted]', settings: { refreshToken: '[redacted]', name: 'was' } });
  });

  it('names the app whose token made a change, finds events by it, and keeps the chain valid with both new fields', async () => {
    const u = newUsers(o);
    const user = await u.createUser({ username: 'grace', title: 'Captain' }, byToken);
    await u.updateUser(user.id, { title: 'Rear Admiral' }, byToken);
    const found = await findAuditEvents(o, { clientId: 'admin-console', limit: 10 });
    expect(found.map((e) => [e.action, e.targetId])).toEqual(expect.arrayContaining([['user.created', user.id], ['user.updated', user.id]]));
    expect(found.every((e) => e.clientId === 'admin-console' && e.actorId === byToken.id)).toBe(true);
    expect(await findAuditEvents(o, { clientId: 'another-app', limit: 10 })).toEqual([]);

    await chainAllPendingAuditEvents(o);
    expect((await verifyAuditChain(o)).ok).toBe(true);
    // Both are covered by the hash: changing either with SQL is found.
    const [row] = await o('audit_events').where({ action: 'user.updated', target_id: user.id }).select('seq', 'client_id', 'before');
    await o('audit_events').where({ seq: row.seq }).update({ client_id: 'someone-else' });
    expect((await verifyAuditChain(o)).firstBroken?.seq).toBe(Number(row.seq));
    await o('audit_events').where({ seq: row.seq }).update({ client_id: row.client_id, before: JSON.stringify({ title: 'Admiral' }) });
    expect((await verifyAuditChain(o)).firstBroken?.seq).toBe(Number(row.seq));
    await o('audit_events').where({ seq: row.seq }).update({ before: JSON.stringify(row.before) });
    expect((await verifyAuditChain(o)).ok).toBe(true);
  });

  it('names the operating-system user of a CLI change, not what $USER claims', async () => {
    const cli = await runCli(['users', 'create', '--username', 'from.cli', '--email', 'from.cli@example.com', '--password', 'cli-password-1'], { DATABASE_URL: odb.database.url, ONEID_MASTER_KEY: testMasterKey(), USER: 'mallory', LOGNAME: 'mallory' });
    expect(cli.code).toBe(0);
    const [event] = await findAuditEvents(o, { action: 'user.created', targetId: cli.json.id, limit: 1 });
    expect(event).toMatchObject({ actorType: 'system', actorId: `cli:${userInfo().username}`, clientId: null });
  });
});

describe('migration 20261206150000', () => {
  it('adds client_id and before, goes down while no event carries them, and refuses to drop them once one does', async () => {
    await withDatabaseAt('oneid_test_audit_client_id_migration', '20261206130000', async (m) => {
      await m.migrate.up(migratorConfig);
      await m.migrate.down(migratorConfig);
      await m.migrate.up(migratorConfig);
      await recordAudit(m, { type: 'user', id: 'u1', clientId: 'console' }, { action: 'test.changed', changes: { title: 'new' }, before: { title: 'old' } });
      await expect(m.migrate.down(migratorConfig)).rejects.toThrow(/break the audit chain/);
      expect(await m('audit_events').where({ action: 'test.changed' }).first('client_id', 'before')).toEqual({ client_id: 'console', before: { title: 'old' } });
      await chainAllPendingAuditEvents(m);
      expect(await verifyAuditChain(m)).toEqual({ ok: true, checked: 1, pending: 0 });
    });
  });
});
