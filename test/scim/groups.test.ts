// SCIM Groups on a real, migrated PostgreSQL database, below HTTP: the set-based membership
// changes added to GroupsService for SCIM (one transaction, only changed rows, audit with the
// SCIM client), the PATCH interpreter, and the reads (filter, sort, paging, members of a page in
// one query, excludedAttributes=members without loading members).
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { createServices, type Services } from '../../src/services.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { AppError } from '../../src/shared/errors.ts';
import { MEMBER_AUDIT_EVENTS_LIMIT, type GroupChange } from '../../src/directory/groups.service.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import type { ScimDeps } from '../../src/scim/index.ts';
import type { ScimRequestContext } from '../../src/scim/types.ts';
import { ScimError } from '../../src/scim/errors.ts';
import { ScimFilterError } from '../../src/scim/filter.ts';
import { createScimGroupOps, planGroupPatch } from '../../src/scim/groups.resource.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const UNKNOWN = '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f';

let mdb: MigratedDatabase;
let db: Knex;
let services: Services;
let ops: ReturnType<typeof createScimGroupOps>;
const actor: Actor = { type: 'scim_client', id: 'token-under-test' };
const rc: ScimRequestContext = {
  client: { tokenId: 'token-under-test', name: 'Okta', departmentId: null, departmentPath: null },
  actor,
  baseUrl: 'https://id.example.com/scim/v2',
};

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_scim_groups');
  db = mdb.db;
  services = createServices(db, loadConfig({ NODE_ENV: 'test' }));
  const deps: ScimDeps = { services, log: createLogger('silent'), issuer: 'https://id.example.com', maxBodyBytes: 100 * 1024 };
  ops = createScimGroupOps(deps);
});

afterAll(async () => {
  await mdb?.close();
});

let seq = 0;
const person = async (extra: Record<string, unknown> = {}) => services.users.createUser({ username: `scim-member-${(seq += 1)}`, ...extra });
let gseq = 0;
const group = async (members: string[] = []) => services.groups.createGroupWithMembers({ name: `SCIM group ${(gseq += 1)}` }, members, actor);

const memberRows = async (groupId: string) => {
  const rows: { user_id: string; created_at: Date }[] = await db('group_members').where({ group_id: groupId }).select('user_id', 'created_at');
  return new Map(rows.map((r) => [r.user_id, new Date(r.created_at).getTime()]));
};
const versionOf = async (groupId: string) => (await services.groups.getGroup(groupId)).version;
const auditOf = (groupId: string) => db('audit_events').where({ target_type: 'group', target_id: groupId }).orderBy('seq');

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e);
}

/** Counts the SQL statements run while `fn` runs. */
async function countQueries(fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (q: { sql: string }) => { seen.push(q.sql); };
  db.on('query', listener);
  try {
    await fn();
  } finally {
    db.removeListener('query', listener);
  }
  return seen;
}

describe('GroupsService.changeGroup', () => {
  it('adds and removes members in one transaction, bumps the version once and audits each member with the SCIM client', async () => {
    const [a, b, c] = [await person(), await person(), await person()];
    const g = await group([a.id]);
    const before = (await auditOf(g.id)).length;
    const { group: updated, added, removed } = await services.groups.changeGroup(g.id, [
      { kind: 'addMembers', userIds: [b.id, c.id, a.id] },
      { kind: 'removeMembers', userIds: [a.id] },
    ], actor);
    expect(updated.version).toBe(g.version + 1);
    expect(added.sort()).toEqual([b.id, c.id].sort());
    expect(removed).toEqual([a.id]);
    expect([...(await memberRows(g.id)).keys()].sort()).toEqual([b.id, c.id].sort());
    const events = (await auditOf(g.id)).slice(before);
    expect(events.map((e) => e.action).sort()).toEqual(['group.member_added', 'group.member_added', 'group.member_removed']);
    for (const e of events) expect(e).toMatchObject({ actor_type: 'scim_client', actor_id: 'token-under-test' });
  });

  it('skips ids that name no user, applies the rest, and audits what it skipped', async () => {
    const [a, b] = [await person(), await person()];
    const g = await group([a.id]);
    const before = (await auditOf(g.id)).length;
    const result = await services.groups.changeGroup(g.id, [
      { kind: 'set', name: `${g.name} renamed` },
      { kind: 'addMembers', userIds: [b.id, UNKNOWN, 'string id 1'] },
    ], actor);
    expect(result).toMatchObject({ changed: true, added: [b.id] });
    expect(result.ignored.sort()).toEqual([UNKNOWN, 'string id 1'].sort());
    expect([...(await memberRows(g.id)).keys()].sort()).toEqual([a.id, b.id].sort());
    expect((await services.groups.getGroup(g.id)).name).toBe(`${g.name} renamed`);
    const events = (await auditOf(g.id)).slice(before);
    const ignored = events.find((e) => e.action === 'group.members_ignored');
    expect(ignored).toMatchObject({ actor_type: 'scim_client', changes: { count: 2 } });
    expect(ignored.changes.userIds.sort()).toEqual([UNKNOWN, 'string id 1'].sort());
  });

  it('writes nothing when any step of the change fails', async () => {
    const [a, b] = [await person(), await person()];
    const g = await group([a.id]);
    const events = (await auditOf(g.id)).length;
    const err = await rejection(services.groups.changeGroup(g.id, [
      { kind: 'addMembers', userIds: [b.id] },
      { kind: 'removeMembers', userIds: [a.id] },
      { kind: 'set', name: '' },
    ], actor));
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ kind: 'invalid_argument' });
    expect([...(await memberRows(g.id)).keys()]).toEqual([a.id]);
    expect(await versionOf(g.id)).toBe(g.version);
    expect(await auditOf(g.id)).toHaveLength(events);
  });

  it('keeps the label a client gives a new member, leaves it on a repeated add, and changes it on replace', async () => {
    const [a, b] = [await person({ name: 'Ann Label' }), await person({ name: 'Bob Label' })];
    const g = await group();
    await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [a.id, b.id], labels: new Map([[a.id, 'VP']]) }], actor);
    const shown = async () => new Map(((await ops.reader.get(g.id, rc)).body.members as { value: string; display: string }[]).map((m) => [m.value, m.display]));
    expect(await shown()).toEqual(new Map([[a.id, 'VP'], [b.id, 'Bob Label']]));
    const again = await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [a.id], labels: new Map([[a.id, 'Other']]) }], actor);
    expect(again.changed).toBe(false);
    expect((await shown()).get(a.id)).toBe('VP');
    const replaced = await services.groups.changeGroup(g.id, [{ kind: 'replaceMembers', userIds: [a.id, b.id], labels: new Map([[a.id, 'SVP']]) }], actor);
    expect(replaced).toMatchObject({ changed: true, added: [], removed: [] });
    expect(replaced.group.version).toBe(again.group.version + 1);
    expect(await shown()).toEqual(new Map([[a.id, 'SVP'], [b.id, 'Bob Label']]));
  });

  it('replaces the member set by touching only the rows that change', async () => {
    const [a, b, c, d] = [await person(), await person(), await person(), await person()];
    const g = await group([a.id, b.id, c.id]);
    const before = await memberRows(g.id);
    await new Promise((r) => setTimeout(r, 20));
    const { added, removed } = await services.groups.changeGroup(g.id, [{ kind: 'replaceMembers', userIds: [b.id, c.id, d.id, d.id] }], actor);
    expect(added).toEqual([d.id]);
    expect(removed).toEqual([a.id]);
    const after = await memberRows(g.id);
    expect([...after.keys()].sort()).toEqual([b.id, c.id, d.id].sort());
    // b and c were not rewritten: their rows keep their creation time.
    expect(after.get(b.id)).toBe(before.get(b.id));
    expect(after.get(c.id)).toBe(before.get(c.id));
    expect(after.get(d.id)).toBeGreaterThan(before.get(b.id)!);
  });

  it('is a no-op without a version bump when nothing changes', async () => {
    const a = await person();
    const g = await group([a.id]);
    const result = await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [a.id] }, { kind: 'set', name: g.name }], actor);
    expect(result.changed).toBe(false);
    expect(await versionOf(g.id)).toBe(g.version);
  });

  it('answers not found for member changes to a group that does not exist, and writes nothing', async () => {
    const a = await person();
    const changes: GroupChange[] = [{ kind: 'addMembers', userIds: [a.id] }, { kind: 'removeMembers', userIds: [a.id] }, { kind: 'replaceMembers', userIds: [a.id] }];
    for (const change of changes) {
      expect(await rejection(services.groups.changeGroup(UNKNOWN, [change], actor))).toMatchObject({ kind: 'not_found', code: 'group.not_found' });
    }
    expect(await db('group_members').where({ user_id: a.id })).toHaveLength(0);
  });

  it('applies concurrent member changes to one group without losing any, one version each', async () => {
    const people = await Promise.all(Array.from({ length: 12 }, () => person()));
    const g = await group();
    const results = await Promise.all(people.map((p) => services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [p.id] }], actor)));
    expect(results.every((r) => r.changed)).toBe(true);
    expect(new Set(results.map((r) => r.group.version)).size).toBe(people.length);
    expect((await memberRows(g.id)).size).toBe(people.length);
    expect(await versionOf(g.id)).toBe(g.version + people.length);
  });

  it('checks If-Match versions inside the transaction', async () => {
    const g = await group();
    const err = await rejection(services.groups.changeGroup(g.id, [{ kind: 'set', name: 'stale write' }], actor, { expectedVersions: [g.version + 5] }));
    expect(err).toMatchObject({ kind: 'failed_precondition', code: 'group.version_mismatch' });
    const ok = await services.groups.changeGroup(g.id, [{ kind: 'set', name: `${g.name} v2` }], actor, { expectedVersions: [7, g.version] });
    expect(ok.group.version).toBe(g.version + 1);
  });

  it('moves the version (the SCIM ETag) of each user whose membership changed, and of every member on a rename', async () => {
    const [stays, leaves, joins, outsider] = [await person(), await person(), await person(), await person()];
    const g = await group([stays.id, leaves.id]);
    const userVersion = async (id: string) => (await services.users.getUser(id)).version;
    const before = new Map(await Promise.all([stays, leaves, joins, outsider].map(async (u) => [u.id, await userVersion(u.id)] as const)));
    await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [joins.id] }, { kind: 'removeMembers', userIds: [leaves.id] }], actor);
    expect(await userVersion(joins.id)).toBe(before.get(joins.id)! + 1);
    expect(await userVersion(leaves.id)).toBe(before.get(leaves.id)! + 1);
    expect(await userVersion(stays.id)).toBe(before.get(stays.id));
    await services.groups.changeGroup(g.id, [{ kind: 'set', name: `${g.name} renamed` }], actor);
    expect(await userVersion(stays.id)).toBe(before.get(stays.id)! + 1);
    expect(await userVersion(joins.id)).toBe(before.get(joins.id)! + 2);
    expect(await userVersion(leaves.id)).toBe(before.get(leaves.id)! + 1);
    expect(await userVersion(outsider.id)).toBe(before.get(outsider.id));
  });

  it('adds or removes members with the users\' versions, audit events and the version bump, and writes nothing when nothing changes', async () => {
    // How many statements that takes, and how PostgreSQL plans them: `npm run bench` diagnostics.
    const [a, b, c] = [await person(), await person(), await person()];
    const g = await group([a.id]);
    const versions = async () => Object.fromEntries((await db('users').whereIn('id', [a.id, b.id, c.id]).select('id', 'version')).map((r) => [r.id, r.version]));
    const before = await versions();
    await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [b.id.toUpperCase(), c.id] }], actor);
    await services.groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [a.id] }], actor);
    expect(await versionOf(g.id)).toBe(g.version + 2);
    expect([...(await memberRows(g.id)).keys()].sort()).toEqual([b.id, c.id].sort());
    const after = await versions();
    for (const u of [a, b, c]) expect(after[u.id]).toBe(before[u.id] + 1);
    const events = (await auditOf(g.id)).slice(-3);
    expect(events.map((e) => [e.action, e.changes.userId, e.actor_type, e.actor_id])).toEqual([
      ['group.member_added', b.id, actor.type, actor.id], ['group.member_added', c.id, actor.type, actor.id], ['group.member_removed', a.id, actor.type, actor.id],
    ]);
    // Nothing to do: no write, no event, same version.
    const eventCount = (await auditOf(g.id)).length;
    await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [b.id] }], actor);
    expect(await versionOf(g.id)).toBe(g.version + 2);
    expect((await auditOf(g.id)).length).toBe(eventCount);
  });

  it('loses no member change when many arrive at once: each is applied and moves the version once', async () => {
    const people = await Promise.all(Array.from({ length: 12 }, () => person()));
    const g = await group([people[0]!.id, people[1]!.id]);
    const before = (await auditOf(g.id)).length;
    const results = await Promise.all([
      ...people.slice(2).map((p) => services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [p.id] }], actor)),
      ...people.slice(0, 2).map((p) => services.groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [p.id] }], actor)),
    ]);
    expect(results.every((r) => r.changed)).toBe(true);
    expect(new Set(results.map((r) => r.group.version)).size).toBe(12);
    expect(await versionOf(g.id)).toBe(g.version + 12);
    expect([...(await memberRows(g.id)).keys()].sort()).toEqual(people.slice(2).map((p) => p.id).sort());
    const events = (await auditOf(g.id)).slice(before);
    expect(events.filter((e) => e.action === 'group.member_added').map((e) => e.changes.userId).sort()).toEqual(people.slice(2).map((p) => p.id).sort());
    expect(events.filter((e) => e.action === 'group.member_removed').map((e) => e.changes.userId).sort()).toEqual(people.slice(0, 2).map((p) => p.id).sort());
    expect(events).toHaveLength(12);
  });

  it('writes nothing in the one-statement form when an id to add is no visible user, and takes the general path', async () => {
    const [a, gone] = [await person(), await person()];
    await services.users.changeStatus(gone.id, 'deprovision', actor);
    const g = await group([]);
    const unknown = '00000000-0000-4000-8000-000000000001';
    const seen = await countQueries(() => services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [a.id, gone.id, unknown] }], actor));
    expect(seen[0]).toMatch(/^with visible as/);
    expect(seen[1]).toMatch(/^BEGIN/i);
    expect([...(await memberRows(g.id)).keys()]).toEqual([a.id]);
    expect(await versionOf(g.id)).toBe(g.version + 1);
    expect((await auditOf(g.id)).map((e) => e.action).filter((x) => x !== 'group.created')).toEqual(['group.members_ignored', 'group.member_added']);
  });

  it('answers not_found for a member change of a group that does not exist, in either form', async () => {
    const a = await person();
    const missing = '00000000-0000-4000-8000-0000000000aa';
    const changes: GroupChange[] = [{ kind: 'addMembers', userIds: [a.id] }, { kind: 'removeMembers', userIds: [a.id] }, { kind: 'addMembers', userIds: ['not-a-uuid'] }];
    for (const change of changes) {
      expect(await rejection(services.groups.changeGroup(missing, [change], actor))).toMatchObject({ code: 'group.not_found' });
    }
    expect(await db('group_members').where({ group_id: missing }).first()).toBeUndefined();
  });

  it('leaves deprovisioned members alone on replace and remove-all, and does not add them', async () => {
    const [a, gone] = [await person(), await person()];
    const g = await group([a.id, gone.id]);
    await services.users.changeStatus(gone.id, 'deprovision', actor);
    await services.groups.changeGroup(g.id, [{ kind: 'removeAllMembers' }], actor);
    expect([...(await memberRows(g.id)).keys()]).toEqual([gone.id]);
    const skipped = await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [gone.id] }], actor);
    expect(skipped).toMatchObject({ changed: false, ignored: [gone.id] });
    // Removing the hidden membership by id still works (it is a row of this group).
    await services.groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [gone.id] }], actor);
    expect((await memberRows(g.id)).size).toBe(0);
  });

  it('limits a department-scoped client to users of its subtree', async () => {
    const root = await services.departments.createDepartment({ name: `Scoped root ${seq}` });
    const child = await services.departments.createDepartment({ name: 'Scoped child', parentId: root.id });
    const other = await services.departments.createDepartment({ name: `Elsewhere ${seq}` });
    const [inside, outside, outsider2] = [await person(), await person(), await person()];
    await services.departments.addMember(child.id, { userId: inside.id, primary: true });
    await services.departments.addMember(other.id, { userId: outside.id, primary: true });
    const g = await group([outsider2.id]);
    const scope = { memberScope: root.path };

    await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [inside.id] }], actor, scope);
    const addOutside = await services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [outside.id] }], actor, scope);
    expect(addOutside).toMatchObject({ changed: false, ignored: [outside.id] });
    const removeOutside = await services.groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [outsider2.id] }], actor, scope);
    expect(removeOutside).toMatchObject({ changed: false, removed: [] });
    expect([...(await memberRows(g.id)).keys()].sort()).toEqual([inside.id, outsider2.id].sort());
    // A scoped replace or remove-all leaves members outside the subtree where they are.
    await services.groups.changeGroup(g.id, [{ kind: 'replaceMembers', userIds: [] }], actor, scope);
    expect([...(await memberRows(g.id)).keys()]).toEqual([outsider2.id]);
  });

  it('records one group.members_changed event when a request changes very many members', async () => {
    const ids: string[] = (await db.raw(
      `insert into users (id, username) select gen_random_uuid(), 'many-' || n from generate_series(1, ?) n returning id`, [MEMBER_AUDIT_EVENTS_LIMIT + 1],
    )).rows.map((r: { id: string }) => r.id);
    const g = await group();
    const before = (await auditOf(g.id)).length;
    await services.groups.changeGroup(g.id, [{ kind: 'replaceMembers', userIds: ids }], actor);
    const events = (await auditOf(g.id)).slice(before);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: 'group.members_changed', actor_type: 'scim_client', changes: { addedCount: ids.length, removedCount: 0 } });
    expect(events[0].changes.added.sort()).toEqual([...ids].sort());
  });
});

describe('GroupsService.createGroupWithMembers', () => {
  it('creates the group with the known members and audits the unknown ones it skipped', async () => {
    const known = await person();
    const g = await services.groups.createGroupWithMembers({ name: 'Partly known' }, [known.id, UNKNOWN], actor);
    expect([...(await memberRows(g.id)).keys()]).toEqual([known.id]);
    expect((await auditOf(g.id)).map((e) => e.action).sort()).toEqual(['group.created', 'group.member_added', 'group.members_ignored']);
  });

  it('creates nothing when the group itself is invalid', async () => {
    const err = await rejection(services.groups.createGroupWithMembers({ name: '' }, [(await person()).id], actor));
    expect(err).toMatchObject({ kind: 'invalid_argument' });
    expect(await db('groups').where({ name: '' }).first()).toBeUndefined();
  });
});

describe('planGroupPatch', () => {
  const patch = (...Operations: unknown[]) => ({ schemas: [PATCH], Operations });

  it('reads the Entra forms: capitalised ops, remove with a value list, members[value eq]', () => {
    const plan = planGroupPatch(patch(
      { op: 'Add', path: 'members', value: [{ value: 'a' }] },
      { op: 'Remove', path: 'members', value: [{ value: 'b' }, { value: 'c' }] },
      { op: 'remove', path: 'members[value eq "d"]' },
      { op: 'Replace', path: 'displayName', value: 'Renamed' },
      { op: 'Replace', path: 'externalId', value: 'ext-1' },
    ));
    expect(plan.changes).toEqual([
      { kind: 'addMembers', userIds: ['a'], labels: new Map() },
      { kind: 'removeMembers', userIds: ['b', 'c'] },
      { kind: 'removeMembers', userIds: ['d'] },
      { kind: 'set', name: 'Renamed' },
      { kind: 'set', externalId: 'ext-1' },
    ]);
  });

  it('reads the Okta forms: path-less replace with the id in the value, replace of the member set, remove all', () => {
    const plan = planGroupPatch(patch(
      { op: 'replace', value: { id: 'ignored', displayName: 'Okta name', schemas: [GROUP] } },
      { op: 'replace', path: 'members', value: [{ value: 'x', display: 'X' }] },
      { op: 'remove', path: 'members' },
      { op: 'add', value: { members: [{ value: 'y' }] } },
      { op: 'remove', path: 'urn:ietf:params:scim:schemas:core:2.0:Group:externalId' },
    ));
    expect(plan.changes).toEqual([
      { kind: 'set', name: 'Okta name' },
      { kind: 'replaceMembers', userIds: ['x'], labels: new Map([['x', 'X']]) },
      { kind: 'removeAllMembers' },
      { kind: 'addMembers', userIds: ['y'], labels: new Map() },
      { kind: 'set', externalId: null },
    ]);
  });

  it('reads a bare string, or a list of strings, as member ids (as Microsoft\'s reference client sends them)', () => {
    expect(planGroupPatch(patch({ op: 'add', path: 'members', value: 'string id 1' })).changes)
      .toEqual([{ kind: 'addMembers', userIds: ['string id 1'], labels: new Map() }]);
    expect(planGroupPatch(patch({ op: 'add', path: 'members', value: ['a', { value: 'b', displayName: 'Bee' }] })).changes)
      .toEqual([{ kind: 'addMembers', userIds: ['a', 'b'], labels: new Map([['b', 'Bee']]) }]);
  });

  it.each([
    ['no PatchOp schema', 'invalidSyntax', { Operations: [{ op: 'add', path: 'members', value: [] }] }],
    ['no operations', 'invalidSyntax', patch()],
    ['an unknown op', 'invalidSyntax', patch({ op: 'move', path: 'members' })],
    ['remove without a path', 'noTarget', patch({ op: 'remove' })],
    ['a read-only path', 'mutability', patch({ op: 'replace', path: 'id', value: 'x' })],
    ['a member sub-attribute', 'mutability', patch({ op: 'replace', path: 'members[value eq "x"].display', value: 'y' })],
    ['an unknown attribute', 'invalidPath', patch({ op: 'add', path: 'nickName', value: 'x' })],
    ['a malformed value filter', 'invalidPath', patch({ op: 'remove', path: 'members[value eq]' })],
    ['a member without a value', 'invalidValue', patch({ op: 'add', path: 'members', value: [{ display: 'no id' }] })],
    ['a member label that is not a string', 'invalidValue', patch({ op: 'add', path: 'members', value: [{ value: 'x', display: 7 }] })],
    ['a member of type Group', 'invalidValue', patch({ op: 'add', path: 'members', value: [{ value: 'g', type: 'Group' }] })],
    ['removing displayName', 'invalidValue', patch({ op: 'remove', path: 'displayName' })],
    ['a non-string displayName', 'invalidValue', patch({ op: 'replace', value: { displayName: 42 } })],
  ] as [string, string, unknown][])('refuses %s with 400 %s', (_what, scimType, body) => {
    let err: unknown;
    try { planGroupPatch(body); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ScimError);
    expect(err).toMatchObject({ status: 400, scimType });
  });
});

describe('SCIM group operations', () => {
  it('PATCH removes members matched by any filter on the member; removing a non-member is a no-op', async () => {
    const [ann, bob] = [await person({ name: 'Ann Filtered' }), await person({ name: 'Bob Kept' })];
    const g = await group([ann.id, bob.id]);
    const res = await ops.patch(g.id, { schemas: [PATCH], Operations: [{ op: 'remove', path: 'members[display sw "ann"]' }] }, rc);
    expect(res).toMatchObject({ status: 204, etag: `W/"${g.version + 1}"` });
    expect([...(await memberRows(g.id)).keys()]).toEqual([bob.id]);
    const unknown = await ops.patch(g.id, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${UNKNOWN}"]` }] }, rc);
    expect(unknown).toMatchObject({ status: 204, etag: `W/"${g.version + 1}"` });
    // A known user who is not a member: nothing to do, and no error (idempotent, like a repeated add).
    expect(await ops.patch(g.id, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${ann.id}"]` }] }, rc)).toMatchObject({ status: 204 });
  });

  it('maps domain errors to SCIM errors: uniqueness on displayName, 404 for unknown and malformed ids', async () => {
    const g = await group();
    expect(await rejection(ops.create({ schemas: [GROUP], displayName: g.name.toUpperCase() }, rc))).toMatchObject({ status: 409, scimType: 'uniqueness' });
    for (const id of [UNKNOWN, 'not-a-uuid']) {
      expect(await rejection(ops.replace(id, { schemas: [GROUP], displayName: 'x' }, rc))).toMatchObject({ status: 404 });
      expect(await rejection(ops.patch(id, { schemas: [PATCH], Operations: [{ op: 'remove', path: 'members' }] }, rc))).toMatchObject({ status: 404 });
      expect(await rejection(ops.remove(id, rc))).toMatchObject({ status: 404 });
      expect(await rejection(ops.reader.get(id, rc))).toMatchObject({ status: 404 });
    }
    expect(await rejection(ops.create({ schemas: [GROUP], displayName: 'x'.repeat(300) }, rc))).toMatchObject({ status: 400, scimType: 'invalidValue', detail: expect.stringMatching(/^displayName:/) });
  });
});

describe('SCIM group reads', () => {
  let ids: string[];
  let members: string[];

  beforeAll(async () => {
    await db('groups').delete();
    members = [(await person({ name: 'Listed One' })).id, (await person()).id];
    ids = [];
    for (const [i, name] of ['delta', 'Alpha', 'charlie', 'Bravo', 'echo'].entries()) {
      ids.push((await services.groups.createGroupWithMembers({ name, externalId: `ext-${i}` }, i % 2 === 0 ? members : [members[0]!], actor)).id);
    }
  });

  const names = (list: Record<string, unknown>) => (list.Resources as { displayName: string }[]).map((r) => r.displayName);

  it('filters, sorts and pages in SQL with 1-based, stable paging', async () => {
    const sorted = await ops.reader.list({ sortBy: 'displayName' }, rc);
    expect(names(sorted)).toEqual(['Alpha', 'Bravo', 'charlie', 'delta', 'echo']);
    const desc = await ops.reader.list({ sortBy: 'urn:ietf:params:scim:schemas:core:2.0:Group:displayName', sortOrder: 'descending' }, rc);
    expect(names(desc)).toEqual(['echo', 'delta', 'charlie', 'Bravo', 'Alpha']);
    const page2 = await ops.reader.list({ sortBy: 'displayName', startIndex: 2, count: 2 }, rc);
    expect(page2).toMatchObject({ totalResults: 5, startIndex: 2, itemsPerPage: 2 });
    expect(names(page2)).toEqual(['Bravo', 'charlie']);
    // Default order: creation order, whatever the names.
    expect(names(await ops.reader.list({}, rc))).toEqual(['delta', 'Alpha', 'charlie', 'Bravo', 'echo']);
    expect(names(await ops.reader.list({ filter: 'displayName eq "ALPHA"' }, rc))).toEqual(['Alpha']);
    expect(names(await ops.reader.list({ filter: 'externalId eq ext-3' }, rc))).toEqual(['Bravo']);
    expect(names(await ops.reader.list({ filter: `members[value eq "${members[1]}"]`, sortBy: 'displayName' }, rc))).toEqual(['charlie', 'delta', 'echo']);
    const none = await ops.reader.list({ count: 0, filter: 'displayName sw "a"' }, rc);
    expect(none).toMatchObject({ totalResults: 1, itemsPerPage: 0, Resources: [] });
    expect(await ops.reader.list({ startIndex: 99 }, rc)).toMatchObject({ totalResults: 5, itemsPerPage: 0, startIndex: 99 });
    expect(await ops.reader.list({ startIndex: -3, count: 100000 }, rc)).toMatchObject({ startIndex: 1, itemsPerPage: 5 });
  });

  it('loads the members of a whole page in one query, and none with excludedAttributes=members', async () => {
    let list: Record<string, unknown> = {};
    const withMembers = await countQueries(async () => { list = await ops.reader.list({ sortBy: 'displayName' }, rc); });
    expect(withMembers.filter((sql) => /group_members/.test(sql))).toHaveLength(1);
    expect(withMembers).toHaveLength(3); // count, page, members
    const alpha = (list.Resources as Record<string, unknown>[])[0]!;
    expect(alpha.members).toEqual([{ value: members[0], display: 'Listed One', $ref: `${rc.baseUrl}/Users/${members[0]}`, type: 'User' }]);

    let slim: Record<string, unknown> = {};
    const without = await countQueries(async () => { slim = await ops.reader.list({ excludedAttributes: ['members'] }, rc); });
    expect(without.some((sql) => /group_members/.test(sql))).toBe(false);
    expect((slim.Resources as Record<string, unknown>[]).every((r) => !('members' in r) && 'displayName' in r && 'meta' in r)).toBe(true);
    const onlyName = await countQueries(() => ops.reader.list({ attributes: ['displayName'] }, rc));
    expect(onlyName.some((sql) => /group_members/.test(sql))).toBe(false);
  });

  it('does not show deprovisioned users as members', async () => {
    const gone = await person();
    const g = await services.groups.createGroupWithMembers({ name: 'With a leaver' }, [gone.id, members[0]!], actor);
    await services.users.changeStatus(gone.id, 'deprovision', actor);
    const { body } = await ops.reader.get(g.id, rc);
    expect((body.members as { value: string }[]).map((m) => m.value)).toEqual([members[0]]);
    await services.groups.deleteGroup(g.id, actor);
  });

  it('answers bad list parameters with 400', async () => {
    expect(await rejection(ops.reader.list({ sortBy: 'members' }, rc))).toMatchObject({ status: 400, scimType: 'invalidValue' });
    expect(await rejection(ops.reader.list({ sortBy: 'displayName', sortOrder: 'sideways' }, rc))).toMatchObject({ status: 400, scimType: 'invalidValue' });
    const bad = await rejection(ops.reader.list({ filter: 'nickName eq "x"' }, rc));
    expect(bad).toBeInstanceOf(ScimFilterError);
    expect(bad).toMatchObject({ status: 400, scimType: 'invalidFilter' });
  });
});
