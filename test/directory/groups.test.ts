// GroupsService on a real database: groups, one-row membership changes (also in a
// 5,000-member group), versions and audit events.
import type { Knex } from 'knex';
import pg from 'pg';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { GroupsService } from '../../src/directory/groups.service.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import type { Group } from '../../src/directory/groups.repo.ts';
import type { GroupChange } from '../../src/directory/groups.service.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
let groups: GroupsService;
const actor: Actor = { type: 'admin_client', id: 'client-under-test' };
const UNKNOWN = '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f';

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_groups');
  db = mdb.db;
  users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
  groups = new GroupsService(db);
});

afterAll(async () => {
  await mdb?.close();
});

async function appError(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const auditOf = (groupId: string, action?: string) => {
  const q = db('audit_events').where({ target_type: 'group', target_id: groupId }).orderBy('seq');
  if (action) q.andWhere({ action });
  return q;
};

let seq = 0;
const person = () => users.createUser({ username: `member-${(seq += 1)}` });
const memberCount = async (groupId: string) => Number((await db('group_members').where({ group_id: groupId }).count<{ c: number }[]>({ c: '*' }))[0]!.c);
const versionOf = async (groupId: string) => (await groups.getGroup(groupId)).version;

describe('GroupsService.createGroup', () => {
  it('creates a group at version 1 and audits it with the actor', async () => {
    const g = await groups.createGroup({ name: 'Engineers', description: 'Everyone who ships code', externalId: 'hr-eng' }, actor);
    expect(g).toMatchObject({ name: 'Engineers', description: 'Everyone who ships code', externalId: 'hr-eng', version: 1 });
    const events = await auditOf(g.id, 'group.created');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor_type: 'admin_client', actor_id: 'client-under-test' });
    expect(events[0].changes).toMatchObject({ name: 'Engineers', externalId: 'hr-eng' });
  });

  it('returns already_exists group.name_taken for a name taken in another case', async () => {
    const err = await appError(groups.createGroup({ name: 'ENGINEERS' }, actor));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'group.name_taken', details: { field: 'name' } });
    expect(await db('groups').whereRaw('lower(name) = ?', ['engineers'])).toHaveLength(1);
  });

  it('lets two groups share an externalId (it belongs to the provisioning client; RFC 7643 gives it no uniqueness)', async () => {
    const other = await groups.createGroup({ name: 'Other', externalId: 'hr-eng' }, actor);
    expect(other.externalId).toBe('hr-eng');
    expect((await groups.listGroups({ externalId: 'hr-eng', limit: 10 })).map((g) => g.name).sort()).toEqual(['Engineers', 'Other']);
  });

  it.each([
    ['members', { name: 'X', members: [] }],
    ['name', { name: '' }],
    ['name', { description: 'no name' }],
    ['description', { name: 'X', description: 'x'.repeat(2001) }],
  ])('returns invalid_argument naming %s', async (field, input) => {
    const err = await appError(groups.createGroup(input as never, actor));
    expect(err.kind).toBe('invalid_argument');
    expect(err.details).toEqual({ field });
  });
});

describe('GroupsService.updateGroup', () => {
  it('updates with the current version, bumps it and audits what changed', async () => {
    const g = await groups.createGroup({ name: 'Writers' }, actor);
    const updated = await groups.updateGroup(g.id, { name: 'Tech Writers', description: 'Docs' }, actor, g.version);
    expect(updated).toMatchObject({ name: 'Tech Writers', description: 'Docs', version: g.version + 1 });
    const [event] = await auditOf(g.id, 'group.updated');
    expect(event.changes).toEqual({ name: { from: 'Writers', to: 'Tech Writers' }, description: { from: null, to: 'Docs' } });
  });

  it('returns failed_precondition for a stale version, already_exists for a taken name, not_found for an unknown id', async () => {
    const g = await groups.createGroup({ name: 'Designers' }, actor);
    await groups.updateGroup(g.id, { description: 'v2' }, actor);
    expect(await appError(groups.updateGroup(g.id, { description: 'stale' }, actor, g.version))).toMatchObject({ kind: 'failed_precondition', code: 'group.version_mismatch' });
    expect(await appError(groups.updateGroup(g.id, { name: 'engineers' }, actor))).toMatchObject({ kind: 'already_exists', code: 'group.name_taken' });
    expect((await groups.getGroup(g.id)).description).toBe('v2');
    expect(await appError(groups.updateGroup(UNKNOWN, { name: 'x' }, actor))).toMatchObject({ kind: 'not_found', code: 'group.not_found' });
    expect(await appError(groups.getGroup('not-a-uuid'))).toMatchObject({ kind: 'not_found' });
  });
});

describe('GroupsService members', () => {
  let team: Group;

  beforeAll(async () => {
    team = await groups.createGroup({ name: 'Team' }, actor);
  });

  it('adds a member, bumps the version and audits it', async () => {
    const u = await person();
    const before = await versionOf(team.id);
    expect(await groups.addMember(team.id, u.id, actor)).toEqual({ groupId: team.id, userId: u.id, changed: true });
    expect(await versionOf(team.id)).toBe(before + 1);
    expect(await db('group_members').where({ group_id: team.id, user_id: u.id })).toHaveLength(1);
    const events = await auditOf(team.id, 'group.member_added');
    expect(events.at(-1).changes).toEqual({ userId: u.id });
  });

  it('is idempotent: adding a member again changes nothing (same version, no audit event)', async () => {
    const u = await person();
    await groups.addMember(team.id, u.id, actor);
    const version = await versionOf(team.id);
    const events = (await auditOf(team.id)).length;
    expect(await groups.addMember(team.id, u.id, actor)).toMatchObject({ changed: false });
    expect(await versionOf(team.id)).toBe(version);
    expect((await auditOf(team.id)).length).toBe(events);
    expect(await db('group_members').where({ group_id: team.id, user_id: u.id })).toHaveLength(1);
  });

  it('returns not_found naming userId for an unknown user, and group.not_found for an unknown group', async () => {
    expect(await appError(groups.addMember(team.id, UNKNOWN, actor))).toMatchObject({ kind: 'not_found', code: 'user.not_found', details: { field: 'userId' } });
    expect(await appError(groups.addMember(team.id, 'not-a-uuid', actor))).toMatchObject({ kind: 'invalid_argument', details: { field: 'userId' } });
    const u = await person();
    expect(await appError(groups.addMember(UNKNOWN, u.id, actor))).toMatchObject({ kind: 'not_found', code: 'group.not_found' });
  });

  it('removes a member, bumps the version and audits it; removing again is not_found', async () => {
    const u = await person();
    await groups.addMember(team.id, u.id, actor);
    const version = await versionOf(team.id);
    await groups.removeMember(team.id, u.id, actor);
    expect(await versionOf(team.id)).toBe(version + 1);
    expect(await db('group_members').where({ group_id: team.id, user_id: u.id })).toEqual([]);
    expect((await auditOf(team.id, 'group.member_removed')).at(-1).changes).toEqual({ userId: u.id });
    expect(await appError(groups.removeMember(team.id, u.id, actor))).toMatchObject({ kind: 'not_found', code: 'group.member_not_found' });
  });

  it('lists members by user id, paged', async () => {
    const g = await groups.createGroup({ name: 'Paged' }, actor);
    const members = [await person(), await person(), await person(), await person(), await person()];
    for (const m of members) await groups.addMember(g.id, m.id, actor);
    const first = await groups.listMembers(g.id, { limit: 2 });
    const second = await groups.listMembers(g.id, { limit: 2, afterUserId: first.at(-1)!.id });
    const third = await groups.listMembers(g.id, { limit: 2, afterUserId: second.at(-1)!.id });
    expect([...first, ...second, ...third].map((u) => u.id)).toEqual(members.map((m) => m.id).sort());
    expect(third).toHaveLength(1);
  });
});

describe('a group with 5,000 members', () => {
  let big: Group;

  beforeAll(async () => {
    big = await groups.createGroup({ name: 'Everyone' }, actor);
    await db.raw("insert into users (id, username) select gen_random_uuid(), 'crowd-' || k from generate_series(1, 5000) k");
    await db.raw("insert into group_members (group_id, user_id) select ?, id from users where username like 'crowd-%'", [big.id]);
  });

  const fingerprint = async () => (await db.raw(
    "select md5(string_agg(user_id::text || created_at::text, ',' order by user_id)) as f from group_members where group_id = ?", [big.id],
  ) as { rows: { f: string }[] }).rows[0]!.f;

  it('adds and removes one member by writing one row, leaving the other 5,000 untouched', async () => {
    const newcomer = await person();
    const before = await fingerprint();
    const version = await versionOf(big.id);
    const statements: string[] = [];
    const listen = (q: { sql: string }) => statements.push(q.sql);
    db.on('query', listen);
    try {
      await groups.addMember(big.id, newcomer.id, actor);
      expect(await memberCount(big.id)).toBe(5001);
      await groups.removeMember(big.id, newcomer.id, actor);
    } finally {
      db.off('query', listen);
    }
    expect(await memberCount(big.id)).toBe(5000);
    // Same rows with the same creation times: the list was never rewritten.
    expect(await fingerprint()).toBe(before);
    const writes = statements.filter((s) => /^(insert into|delete from|update) "group_members"/i.test(s));
    expect(writes).toHaveLength(2);
    expect(writes[0]).toMatch(/^insert into "group_members" \("group_id", "user_id"\) values \(\$1, \$2\) on conflict \("group_id", "user_id"\) do nothing/i);
    expect(writes[1]).toMatch(/^delete from "group_members" where "group_id" = \$1 and "user_id" = \$2 returning "user_id"$/i);
    expect(await versionOf(big.id)).toBe(version + 2);
  });

  it('lists all 5,000 members page by page', async () => {
    const seen = new Set<string>();
    let after: string | undefined;
    for (;;) {
      const page = await groups.listMembers(big.id, { afterUserId: after, limit: 500 });
      for (const u of page) seen.add(u.id);
      if (page.length < 500) break;
      after = page.at(-1)!.id;
    }
    expect(seen.size).toBe(5000);
    expect(await groups.countMembers(big.id)).toBe(5000);
  });

  it('finds the groups of a member', async () => {
    const crowd = await db('users').where({ username: 'crowd-1' }).first();
    expect((await groups.listGroups({ memberId: crowd.id, limit: 10 })).map((g) => g.name)).toEqual(['Everyone']);
  });

  it('deletes the group with all its memberships and app assignments, and audits it', async () => {
    const app = await new AppsService(db).createApp({ name: 'Wiki', redirectUris: ['https://wiki.example/callback'] }, actor);
    await db('assignments').insert({ id: crypto.randomUUID(), app_id: app.id, principal_type: 'group', principal_id: big.id });
    expect(await appError(groups.deleteGroup(big.id, actor, 1))).toMatchObject({ kind: 'failed_precondition' });
    await groups.deleteGroup(big.id, actor);
    expect(await db('groups').where({ id: big.id })).toEqual([]);
    expect(await memberCount(big.id)).toBe(0);
    expect(await db('assignments').where({ principal_id: big.id })).toEqual([]);
    expect(await db('users').where('username', 'like', 'crowd-%').count<{ c: number }[]>({ c: '*' })).toEqual([{ c: 5000 }]);
    const [event] = await auditOf(big.id, 'group.deleted');
    expect(event.changes).toEqual({ name: 'Everyone', externalId: null, membersRemoved: 5000, assignmentsRemoved: 1 });
    expect(await appError(groups.deleteGroup(big.id, actor))).toMatchObject({ kind: 'not_found' });
  });
});

describe('GroupsService.listGroups', () => {
  it('filters by name prefix and exact name (case-insensitive) and pages by name', async () => {
    for (const name of ['ops-berlin', 'Ops-Paris', 'ops-tokyo', 'opsec']) await groups.createGroup({ name }, actor);
    expect((await groups.listGroups({ q: 'OPS-', limit: 10 })).map((g) => g.name)).toEqual(['ops-berlin', 'Ops-Paris', 'ops-tokyo']);
    expect((await groups.listGroups({ name: 'OPS-PARIS', limit: 10 })).map((g) => g.name)).toEqual(['Ops-Paris']);
    const first = await groups.listGroups({ q: 'ops', limit: 2 });
    const rest = await groups.listGroups({ q: 'ops', limit: 10, afterName: first.at(-1)!.name });
    expect([...first, ...rest].map((g) => g.name)).toEqual(['ops-berlin', 'Ops-Paris', 'ops-tokyo', 'opsec']);
    expect(await groups.listGroups({ q: '%', limit: 10 })).toEqual([]);
  });
});

// A member add or remove holds the group's row lock (which every other change of the group
// waits for, since each moves its version) only for its last write and the commit: the
// membership row, the users' versions and the audit event come first. Seen from outside: while
// the change waits for a lock on its member's row, the group's row is free. (Connections of
// their own: the service's pool has two.)
describe('a member change locks the group row last', () => {
  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: mdb.database.url });
    await c.connect();
    return c;
  };

  /** Runs `changes` on `groupId` while another transaction holds `memberId`'s row; the group row must stay free. */
  const groupFreeWhileWaiting = async (groupId: string, memberId: string, changes: GroupChange[]): Promise<void> => {
    const [holder, probe] = [await connect(), await connect()];
    try {
      // Another transaction holds the member's row, as an update of that user would.
      await holder.query('begin');
      await holder.query('select 1 from users where id = $1 for update', [memberId]);
      const change = groups.changeGroup(groupId, changes, actor);
      try {
        const deadline = Date.now() + 10_000;
        const waiting = `select 1 from pg_stat_activity where datname = current_database() and state = 'active' and wait_event_type = 'Lock'`;
        while (!(await probe.query(waiting)).rowCount) {
          if (Date.now() > deadline) throw new Error('the member change never waited for the member row');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        // The lock the group's version bump takes (an update of non-key columns), without waiting.
        await probe.query('begin');
        await expect(probe.query('select version from groups where id = $1 for no key update nowait', [groupId])).resolves.toMatchObject({ rowCount: 1 });
        await probe.query('rollback');
      } finally {
        await holder.query('rollback');
        await change;
      }
    } finally {
      await Promise.all([holder.end(), probe.end()]);
    }
  };

  it.each(['addMembers', 'removeMembers'] as const)('%s alone (one statement): the group is free while the change waits for its member', async (kind) => {
    const g = await groups.createGroup({ name: `lock order ${kind}` }, actor);
    const member = await person();
    if (kind === 'removeMembers') await groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [member.id] }], actor);
    const before = await versionOf(g.id);
    await groupFreeWhileWaiting(g.id, member.id, [{ kind, userIds: [member.id] }]);
    expect(await versionOf(g.id)).toBe(before + 1);
    expect(await memberCount(g.id)).toBe(kind === 'addMembers' ? 1 : 0);
  });

  it('an add and a remove together (one transaction): the group is free while the change waits for its member', async () => {
    const g = await groups.createGroup({ name: 'lock order add and remove' }, actor);
    const [member, leaver] = [await person(), await person()];
    await groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [leaver.id] }], actor);
    const before = await versionOf(g.id);
    await groupFreeWhileWaiting(g.id, member.id, [{ kind: 'addMembers', userIds: [member.id] }, { kind: 'removeMembers', userIds: [leaver.id] }]);
    expect(await versionOf(g.id)).toBe(before + 1);
    expect((await db('group_members').where({ group_id: g.id }).pluck('user_id'))).toEqual([member.id]);
  });
});
