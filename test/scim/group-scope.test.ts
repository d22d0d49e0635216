// A department-scoped SCIM token and the group itself (below HTTP, on a real migrated
// PostgreSQL): it may add and remove members of its subtree in any group, but delete a group or
// change its displayName/externalId only when no member is outside its subtree (403 otherwise,
// nothing written), checked in SQL under the group's row lock so that a concurrent member add
// cannot slip past the check.
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { createServices, type Services } from '../../src/services.ts';
import { createLogger } from '../../src/shared/logger.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import type { ScimDeps } from '../../src/scim/index.ts';
import type { ScimRequestContext } from '../../src/scim/types.ts';
import { ScimError } from '../../src/scim/errors.ts';
import { createScimGroupOps, hasMemberOutsideScope } from '../../src/scim/groups.resource.ts';
import type { Department } from '../../src/directory/departments.repo.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';

let mdb: MigratedDatabase;
let db: Knex;
let services: Services;
let ops: ReturnType<typeof createScimGroupOps>;
let root: Department;
let child: Department;
let other: Department;
let scoped: ScimRequestContext;

const base = 'https://id.example.com/scim/v2';
const unscopedActor: Actor = { type: 'scim_client', id: 'okta-token' };
const unscoped: ScimRequestContext = { client: { tokenId: 'okta-token', name: 'Okta', departmentId: null, departmentPath: null }, actor: unscopedActor, baseUrl: base };

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_scim_group_scope', 4);
  db = mdb.db;
  services = createServices(db, loadConfig({ NODE_ENV: 'test' }));
  const deps: ScimDeps = { services, log: createLogger('silent'), issuer: 'https://id.example.com', maxBodyBytes: 100 * 1024 };
  ops = createScimGroupOps(deps);
  root = await services.departments.createDepartment({ name: 'Scope root' });
  child = await services.departments.createDepartment({ name: 'Scope child', parentId: root.id });
  other = await services.departments.createDepartment({ name: 'Elsewhere' });
  scoped = {
    client: { tokenId: 'sales-token', name: 'Sales HR', departmentId: root.id, departmentPath: root.path },
    actor: { type: 'scim_client', id: 'sales-token' },
    baseUrl: base,
  };
});

afterAll(async () => {
  await mdb?.close();
});

let seq = 0;
async function person(dept?: Department): Promise<string> {
  const u = await services.users.createUser({ username: `scope-person-${(seq += 1)}` });
  if (dept) await services.departments.addMember(dept.id, { userId: u.id, primary: true });
  return u.id;
}
let gseq = 0;
const group = async (members: string[] = [], externalId?: string) =>
  services.groups.createGroupWithMembers({ name: `Scope group ${(gseq += 1)}`, ...(externalId ? { externalId } : {}) }, members, unscopedActor);
const memberIds = async (groupId: string) => (await db('group_members').where({ group_id: groupId }).pluck('user_id')).sort();
const groupRow = (groupId: string) => db('groups').where({ id: groupId }).first();
/** The group's own audit trail: every event on it except the record of a refused write. */
const auditCount = async (groupId: string) => Number((await db('audit_events').where({ target_type: 'group', target_id: groupId }).whereNot({ action: 'write.refused' }).count({ n: '*' }))[0]!.n);
const refusals = (groupId: string) => db('audit_events').where({ target_type: 'group', target_id: groupId, action: 'write.refused' }).select('actor_id', 'changes');
const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH], Operations });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e);
}

function expect403(err: unknown, words: RegExp): void {
  expect(err).toBeInstanceOf(ScimError);
  expect((err as ScimError).status).toBe(403);
  expect((err as ScimError).detail).toMatch(words);
  expect((err as ScimError).detail).toMatch(/members outside the department of this SCIM token/);
}

/** A group with one member in the token's subtree (in a child department) and one elsewhere. */
async function mixedGroup(externalId?: string) {
  const inside = await person(child);
  const outside = await person(other);
  const g = await group([inside, outside], externalId);
  return { g, inside, outside };
}

describe('a scoped token and a group with members outside its subtree', () => {
  it('cannot delete it: 403, the group, its members and its audit trail are untouched', async () => {
    const { g, inside, outside } = await mixedGroup();
    const before = { row: await groupRow(g.id), audit: await auditCount(g.id) };
    expect403(await rejection(ops.remove(g.id, scoped)), /cannot be deleted/);
    expect(await groupRow(g.id)).toEqual(before.row);
    expect(await memberIds(g.id)).toEqual([inside, outside].sort());
    expect(await auditCount(g.id)).toBe(before.audit);
    // The refusal itself is recorded, apart from the group's trail: who tried what and why.
    expect(await refusals(g.id)).toEqual([{ actor_id: scoped.actor.id, changes: expect.objectContaining({ operation: 'DELETE /scim/v2/Groups/:id', code: 'group.members_outside_scope' }) }]);
    // With a matching If-Match too: authorisation comes before the precondition.
    expect403(await rejection(ops.remove(g.id, scoped, `W/"${g.version}"`)), /cannot be deleted/);
  });

  it('cannot rename it or change its externalId, by PUT or any form of PATCH; nothing is written', async () => {
    const { g, inside, outside } = await mixedGroup('ext-mixed');
    const before = await groupRow(g.id);
    const attempts: [string, Promise<unknown>][] = [
      ['PUT displayName', ops.replace(g.id, { schemas: [GROUP], displayName: 'Renamed', externalId: 'ext-mixed', members: [{ value: inside }] }, scoped)],
      ['PUT displayName, different case', ops.replace(g.id, { schemas: [GROUP], displayName: g.name.toUpperCase(), externalId: 'ext-mixed' }, scoped)],
      ['PUT without externalId (clears it)', ops.replace(g.id, { schemas: [GROUP], displayName: g.name, members: [{ value: inside }] }, scoped)],
      ['PATCH replace displayName', ops.patch(g.id, patchOp({ op: 'replace', path: 'displayName', value: 'Renamed' }), scoped)],
      ['PATCH replace externalId', ops.patch(g.id, patchOp({ op: 'replace', path: 'externalId', value: 'ext-other' }), scoped)],
      ['PATCH remove externalId', ops.patch(g.id, patchOp({ op: 'remove', path: 'externalId' }), scoped)],
      ['PATCH without path', ops.patch(g.id, patchOp({ op: 'replace', value: { displayName: 'Renamed' } }), scoped)],
      // A member change in the same request does not happen either: one request, one transaction.
      ['PATCH remove member + rename', ops.patch(g.id, patchOp(
        { op: 'remove', path: `members[value eq "${inside}"]` }, { op: 'replace', path: 'displayName', value: 'Renamed' },
      ), scoped)],
    ];
    for (const [what, attempt] of attempts) {
      const err = await rejection(attempt);
      try {
        expect403(err, /displayName and externalId of this group cannot be changed/);
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`);
      }
    }
    expect(await groupRow(g.id)).toEqual(before);
    expect(await memberIds(g.id)).toEqual([inside, outside].sort());
  });

  it('still adds and removes members of its subtree, and may PUT the group with its displayName and externalId unchanged', async () => {
    const { g, inside, outside } = await mixedGroup('ext-keep');
    const newcomer = await person(root);
    expect((await ops.patch(g.id, patchOp({ op: 'add', path: 'members', value: [{ value: newcomer }] }), scoped)).status).toBe(204);
    expect((await ops.patch(g.id, patchOp({ op: 'remove', path: `members[value eq "${inside}"]` }), scoped)).status).toBe(204);
    expect(await memberIds(g.id)).toEqual([newcomer, outside].sort());
    // Replacing displayName with the same value (as Okta sends it along with members) is no rename.
    expect((await ops.patch(g.id, patchOp({ op: 'replace', value: { displayName: g.name, members: [{ value: inside }] } }), scoped)).status).toBe(204);
    expect(await memberIds(g.id)).toEqual([inside, outside].sort());
    const put = await ops.replace(g.id, { schemas: [GROUP], displayName: ` ${g.name} `, externalId: 'ext-keep', members: [{ value: newcomer }] }, scoped);
    expect(put.status).toBe(200);
    expect(await memberIds(g.id)).toEqual([newcomer, outside].sort());
    expect((await groupRow(g.id)).name).toBe(g.name);
  });

  it('counts a deprovisioned member outside its subtree (still someone else\'s membership), and one without any department', async () => {
    const inside = await person(child);
    const gone = await person(other);
    const g = await group([inside, gone]);
    await services.users.changeStatus(gone, 'deprovision');
    expect403(await rejection(ops.remove(g.id, scoped)), /cannot be deleted/);
    const nobody = await person();
    const g2 = await group([inside, nobody]);
    expect403(await rejection(ops.patch(g2.id, patchOp({ op: 'replace', path: 'displayName', value: 'x' }), scoped)), /cannot be changed/);
    expect(await groupRow(g.id)).toBeDefined();
  });

  it('unknown and malformed ids are still 404', async () => {
    // One at a time: started together, a rejection could land before its handler is attached.
    for (const attempt of [() => ops.remove('7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f', scoped), () => ops.remove('nope', scoped),
      () => ops.patch('7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f', patchOp({ op: 'replace', path: 'displayName', value: 'x' }), scoped)]) {
      const err = await rejection(attempt());
      expect(err).toMatchObject({ status: 404 });
    }
  });
});

describe('a scoped token and a group whose members are all in its subtree, or none', () => {
  it('may rename it and delete it (all members in its subtree, at any depth)', async () => {
    const a = await person(root);
    const b = await person(child);
    const g = await group([a, b], 'ext-all-in');
    expect((await ops.patch(g.id, patchOp({ op: 'replace', path: 'displayName', value: 'All inside, renamed' }), scoped)).status).toBe(204);
    expect((await ops.replace(g.id, { schemas: [GROUP], displayName: 'All inside, put', members: [{ value: a }, { value: b }] }, scoped)).status).toBe(200);
    expect(await groupRow(g.id)).toMatchObject({ name: 'All inside, put', external_id: null });
    // If-Match still applies.
    const version = (await groupRow(g.id)).version as number;
    expect(await rejection(ops.remove(g.id, scoped, `W/"${version + 5}"`))).toMatchObject({ status: 412 });
    expect((await ops.remove(g.id, scoped, `W/"${version}"`)).status).toBe(204);
    expect(await groupRow(g.id)).toBeUndefined();
  });

  it('may rename and delete an empty group (it affects nobody outside its subtree)', async () => {
    const g = await group();
    expect((await ops.patch(g.id, patchOp({ op: 'replace', path: 'displayName', value: 'Empty renamed' }), scoped)).status).toBe(204);
    expect((await ops.remove(g.id, scoped)).status).toBe(204);
    expect(await groupRow(g.id)).toBeUndefined();
  });

  it('may delete a group after removing its own members when the rest are its own too (the Entra sequence)', async () => {
    const a = await person(child);
    const g = await group([a]);
    expect((await ops.patch(g.id, patchOp({ op: 'remove', path: 'members', value: [{ value: a }] }), scoped)).status).toBe(204);
    expect((await ops.remove(g.id, scoped)).status).toBe(204);
  });
});

describe('an unscoped token', () => {
  it('still renames and deletes any group, whatever its members', async () => {
    const { g } = await mixedGroup();
    expect((await ops.patch(g.id, patchOp({ op: 'replace', path: 'displayName', value: 'Okta renamed' }), unscoped)).status).toBe(204);
    expect((await ops.replace(g.id, { schemas: [GROUP], displayName: 'Okta put' }, unscoped)).status).toBe(200);
    expect((await ops.remove(g.id, unscoped)).status).toBe(204);
    expect(await groupRow(g.id)).toBeUndefined();
  });
});

describe('the check', () => {
  it('is one EXISTS query, never loading the members (a 3,000-member group)', async () => {
    const ids: string[] = (await db.raw(
      `insert into users (id, username) select gen_random_uuid(), 'scope-many-' || n from generate_series(1, 3000) n returning id`,
    )).rows.map((r: { id: string }) => r.id);
    await db.raw('insert into user_departments (user_id, department_id, is_primary) select unnest(?::uuid[]), ?, true', [ids, child.id]);
    const g = await group();
    await db.raw('insert into group_members (group_id, user_id) select ?, unnest(?::uuid[])', [g.id, ids]);
    expect(await hasMemberOutsideScope(db, g.id, root.path)).toBe(false);
    expect(await hasMemberOutsideScope(db, g.id, other.path)).toBe(true);

    const seen: { sql: string }[] = [];
    const listener = (q: { sql: string }) => { seen.push(q); };
    db.on('query', listener);
    try {
      expect((await ops.patch(g.id, patchOp({ op: 'replace', path: 'displayName', value: 'Many renamed' }), scoped)).status).toBe(204);
    } finally {
      db.removeListener('query', listener);
    }
    const reads = seen.filter((q) => /from "?group_members"?/i.test(q.sql) && !/^\s*(update|delete|insert|with)/i.test(q.sql));
    expect(reads).toHaveLength(1);
    expect(reads[0]!.sql).toMatch(/select exists/);
  });

  it('is not fooled by a concurrent add of an outsider: a delete waits for the adding transaction and then refuses', async () => {
    const inside = await person(child);
    const outside = await person(other);
    const g = await group([inside]);
    // Another client adds an outsider; its transaction has not committed when the delete starts.
    const adder = await db.transaction();
    let deleted: Promise<unknown> | undefined;
    try {
      await adder('group_members').insert({ group_id: g.id, user_id: outside });
      deleted = ops.remove(g.id, scoped).then(() => 'deleted', (e: unknown) => e);
      // The delete blocks on the group's row (the insert's foreign key holds a KEY SHARE lock on it).
      const state = await Promise.race([deleted, new Promise((r) => setTimeout(() => r('waiting'), 500))]);
      expect(state).toBe('waiting');
    } finally {
      await adder.commit();
    }
    expect403(await deleted, /cannot be deleted/);
    expect(await memberIds(g.id)).toEqual([inside, outside].sort());
  });

  it('holds the group while it deletes: an add that starts meanwhile waits and then finds no group', async () => {
    const inside = await person(child);
    const outside = await person(other);
    const g = await group([inside]);
    // Emulates the window between the check and the delete: hold the same lock the guard holds.
    const holder = await db.transaction();
    let added: Promise<unknown> | undefined;
    try {
      await holder('groups').where({ id: g.id }).forUpdate().first();
      added = services.groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [outside] }], unscopedActor).then(() => 'added', (e: unknown) => e);
      const state = await Promise.race([added, new Promise((r) => setTimeout(() => r('waiting'), 500))]);
      expect(state).toBe('waiting');
      await holder('group_members').where({ group_id: g.id }).delete();
      await holder('groups').where({ id: g.id }).delete();
    } finally {
      await holder.commit();
    }
    expect(await added).toMatchObject({ code: 'group.not_found' });
  });
});
