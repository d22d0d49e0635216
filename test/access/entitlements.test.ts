// entitlements(user, app) on a real database: every path by which a user reaches an app,
// the union of roles over those paths, and who is refused.
import type { Knex } from 'knex';
import { randomUUID } from 'node:crypto';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import { AccessService } from '../../src/access/assignments.service.ts';
import { activeUserWithEntitlements, entitledApps, entitlements, groupNamesOf } from '../../src/access/entitlements.ts';
import { findUserById } from '../../src/directory/users.repo.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { createAdapterFactory, takePrefetchedAccount } from '../../src/oidc/adapter.ts';
import type { ClientCache } from '../../src/apps/client-cache.ts';

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
let apps: AppsService;
let access: AccessService;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_entitlements');
  db = mdb.db;
  users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
  apps = new AppsService(db);
  access = new AccessService(db);
});

afterAll(async () => {
  await mdb?.close();
});

let counter = 0;
const newUser = async (): Promise<string> => {
  counter += 1;
  return (await users.createUser({ username: `person${counter}`, email: `person${counter}@example.com` })).id;
};

/** An app open to assigned users only, with roles by key. */
async function newApp(roleKeys: string[] = [], accessMode: 'assigned' | 'everyone' = 'assigned'): Promise<string> {
  counter += 1;
  const { id } = await apps.createApp({ name: `App ${counter}`, redirectUris: ['https://app.example/cb'], access: accessMode });
  for (const key of roleKeys) await apps.createRole(id, { key, name: key });
  return id;
}

async function newGroup(name: string, members: string[]): Promise<string> {
  const id = randomUUID();
  await db('groups').insert({ id, name });
  if (members.length) await db('group_members').insert(members.map((userId) => ({ group_id: id, user_id: userId })));
  return id;
}

/** A department under `parent` (materialised path '/root/.../self/'). */
async function newDepartment(name: string, parent?: { id: string; path: string }): Promise<{ id: string; path: string }> {
  const id = randomUUID();
  const path = `${parent?.path ?? '/'}${id}/`;
  await db('departments').insert({ id, name, parent_id: parent?.id ?? null, path, depth: path.split('/').length - 3 });
  return { id, path };
}

const join = (userId: string, departmentId: string, primary = true) =>
  db('user_departments').insert({ user_id: userId, department_id: departmentId, is_primary: primary });

describe('entitlements(user, app)', () => {
  it('entitles a user assigned directly, with the roles of the assignment', async () => {
    const app = await newApp(['docs.editor', 'docs.viewer']);
    const user = await newUser();
    await access.createAssignment(app, { principalType: 'user', principalId: user, roleKeys: ['docs.editor'] });
    expect(await entitlements(db, user, app)).toEqual({ allowed: true, assigned: true, roles: ['docs.editor'] });
  });

  it('entitles the members of an assigned group, and nobody else', async () => {
    const app = await newApp(['viewer']);
    const [member, outsider] = [await newUser(), await newUser()];
    const group = await newGroup('Readers', [member]);
    await access.createAssignment(app, { principalType: 'group', principalId: group, roleKeys: ['viewer'] });
    expect(await entitlements(db, member, app)).toEqual({ allowed: true, assigned: true, roles: ['viewer'] });
    expect(await entitlements(db, outsider, app)).toEqual({ allowed: false, assigned: false, roles: [] });
  });

  it('entitles the people of an assigned department (primary or secondary membership)', async () => {
    const app = await newApp();
    const sales = await newDepartment('Sales');
    const [primary, secondary] = [await newUser(), await newUser()];
    await join(primary, sales.id);
    const other = await newDepartment('Other');
    await join(secondary, other.id, true);
    await join(secondary, sales.id, false);
    await access.createAssignment(app, { principalType: 'department', principalId: sales.id });
    expect(await entitlements(db, primary, app)).toEqual({ allowed: true, assigned: true, roles: [] });
    expect((await entitlements(db, secondary, app)).allowed).toBe(true);
  });

  it('entitles people in sub-departments, all levels down, only when the assignment includes them', async () => {
    const withSub = await newApp(['staff']);
    const withoutSub = await newApp(['staff']);
    const engineering = await newDepartment('Engineering');
    const platform = await newDepartment('Platform', engineering);
    const databases = await newDepartment('Databases', platform);
    const sibling = await newDepartment('Marketing');
    const [deep, top, elsewhere] = [await newUser(), await newUser(), await newUser()];
    await join(deep, databases.id);
    await join(top, engineering.id);
    await join(elsewhere, sibling.id);
    await access.createAssignment(withSub, { principalType: 'department', principalId: engineering.id, includeSubdepartments: true, roleKeys: ['staff'] });
    await access.createAssignment(withoutSub, { principalType: 'department', principalId: engineering.id, includeSubdepartments: false, roleKeys: ['staff'] });

    expect(await entitlements(db, deep, withSub)).toEqual({ allowed: true, assigned: true, roles: ['staff'] });
    expect(await entitlements(db, top, withSub)).toEqual({ allowed: true, assigned: true, roles: ['staff'] });
    expect(await entitlements(db, elsewhere, withSub)).toEqual({ allowed: false, assigned: false, roles: [] });

    // Not through the subtree when the assignment is for the department alone.
    expect(await entitlements(db, deep, withoutSub)).toEqual({ allowed: false, assigned: false, roles: [] });
    expect(await entitlements(db, top, withoutSub)).toEqual({ allowed: true, assigned: true, roles: ['staff'] });

    // An assignment of a sub-department does not reach its parent.
    const platformOnly = await newApp();
    await access.createAssignment(platformOnly, { principalType: 'department', principalId: platform.id, includeSubdepartments: true });
    expect((await entitlements(db, deep, platformOnly)).allowed).toBe(true);
    expect((await entitlements(db, top, platformOnly)).allowed).toBe(false);
  });

  it('follows a change of includeSubdepartments on the assignment', async () => {
    const app = await newApp();
    const parent = await newDepartment('Finance');
    const child = await newDepartment('Payroll', parent);
    const user = await newUser();
    await join(user, child.id);
    const assignment = await access.createAssignment(app, { principalType: 'department', principalId: parent.id });
    expect((await entitlements(db, user, app)).allowed).toBe(false);
    await access.updateAssignment(app, assignment.id, { includeSubdepartments: true });
    expect((await entitlements(db, user, app)).allowed).toBe(true);
  });

  it('gives the union of the roles of every path (user, group, department subtree)', async () => {
    const app = await newApp(['a.reader', 'b.writer', 'c.admin', 'd.unused']);
    const user = await newUser();
    const group = await newGroup('Writers', [user]);
    const division = await newDepartment('Division');
    const team = await newDepartment('Team', division);
    await join(user, team.id);
    await access.createAssignment(app, { principalType: 'user', principalId: user, roleKeys: ['a.reader'] });
    await access.createAssignment(app, { principalType: 'group', principalId: group, roleKeys: ['b.writer', 'a.reader'] });
    await access.createAssignment(app, { principalType: 'department', principalId: division.id, includeSubdepartments: true, roleKeys: ['c.admin'] });
    expect(await entitlements(db, user, app)).toEqual({ allowed: true, assigned: true, roles: ['a.reader', 'b.writer', 'c.admin'] });
  });

  it("never gives roles of another app", async () => {
    const mine = await newApp(['mine.role']);
    const theirs = await newApp(['theirs.role']);
    const user = await newUser();
    await access.createAssignment(mine, { principalType: 'user', principalId: user, roleKeys: ['mine.role'] });
    await access.createAssignment(theirs, { principalType: 'user', principalId: user, roleKeys: ['theirs.role'] });
    expect((await entitlements(db, user, mine)).roles).toEqual(['mine.role']);
    expect((await entitlements(db, user, theirs)).roles).toEqual(['theirs.role']);
  });

  it('denies an unassigned user of an assigned-only app', async () => {
    const app = await newApp(['x']);
    const user = await newUser();
    const someoneElse = await newUser();
    await access.createAssignment(app, { principalType: 'user', principalId: someoneElse, roleKeys: ['x'] });
    expect(await entitlements(db, user, app)).toEqual({ allowed: false, assigned: false, roles: [] });
  });

  it("lets every active user into an 'everyone' app, with roles still from assignments", async () => {
    const app = await newApp(['power.user'], 'everyone');
    const [plain, assigned] = [await newUser(), await newUser()];
    await access.createAssignment(app, { principalType: 'user', principalId: assigned, roleKeys: ['power.user'] });
    expect(await entitlements(db, plain, app)).toEqual({ allowed: true, assigned: false, roles: [] });
    expect(await entitlements(db, assigned, app)).toEqual({ allowed: true, assigned: true, roles: ['power.user'] });
  });

  it('denies suspended and deprovisioned users, even when assigned, and even for everyone apps', async () => {
    const app = await newApp(['r']);
    const open = await newApp([], 'everyone');
    const [suspended, gone] = [await newUser(), await newUser()];
    const group = await newGroup('Suspended people', [suspended, gone]);
    await access.createAssignment(app, { principalType: 'group', principalId: group, roleKeys: ['r'] });
    expect((await entitlements(db, suspended, app)).allowed).toBe(true);
    await users.changeStatus(suspended, 'suspend');
    await users.changeStatus(gone, 'deprovision');
    for (const user of [suspended, gone]) {
      expect(await entitlements(db, user, app)).toEqual({ allowed: false, assigned: false, roles: [] });
      expect((await entitlements(db, user, open)).allowed).toBe(false);
    }
    await users.changeStatus(suspended, 'reactivate');
    expect(await entitlements(db, suspended, app)).toEqual({ allowed: true, assigned: true, roles: ['r'] });
  });

  it('stops entitling when the assignment is removed, and drops a deleted role', async () => {
    const app = await newApp(['keep', 'drop']);
    const user = await newUser();
    const assignment = await access.createAssignment(app, { principalType: 'user', principalId: user, roleKeys: ['keep', 'drop'] });
    const dropped = assignment.roles.find((r) => r.key === 'drop')!;
    await apps.deleteRole(app, dropped.id);
    expect((await entitlements(db, user, app)).roles).toEqual(['keep']);
    await access.deleteAssignment(assignment.id);
    expect(await entitlements(db, user, app)).toEqual({ allowed: false, assigned: false, roles: [] });
  });

  it('entitles nobody to an unknown app and knows no unknown user', async () => {
    const app = await newApp([], 'everyone');
    expect(await entitlements(db, randomUUID(), app)).toEqual({ allowed: false, assigned: false, roles: [] });
    expect(await entitlements(db, await newUser(), randomUUID())).toEqual({ allowed: false, assigned: false, roles: [] });
    expect(await entitlements(db, 'not-a-uuid', app)).toEqual({ allowed: false, assigned: false, roles: [] });
  });
});

describe('activeUserWithEntitlements(user, app)', () => {
  it('answers exactly what findUserById and entitlements answer, for active users only', async () => {
    const [assignedApp, openApp] = [await newApp(['a.role', 'b.role']), await newApp(['o.role'], 'everyone')];
    const [direct, viaGroup, plain, suspended] = [await newUser(), await newUser(), await newUser(), await newUser()];
    await access.createAssignment(assignedApp, { principalType: 'user', principalId: direct, roleKeys: ['a.role'] });
    await access.createAssignment(assignedApp, { principalType: 'group', principalId: await newGroup('Combined', [viaGroup, direct]), roleKeys: ['b.role'] });
    await access.createAssignment(openApp, { principalType: 'user', principalId: viaGroup, roleKeys: ['o.role'] });
    await users.changeStatus(suspended, 'suspend');
    for (const app of [assignedApp, openApp, randomUUID()]) {
      for (const user of [direct, viaGroup, plain]) {
        const combined = await activeUserWithEntitlements(db, user, app);
        expect(combined).toEqual({ user: await findUserById(db, user), entitlements: await entitlements(db, user, app), sessionsEndedAt: null });
      }
      expect(await activeUserWithEntitlements(db, suspended, app)).toBeUndefined();
      expect(await activeUserWithEntitlements(db, randomUUID(), app)).toBeUndefined();
    }
    expect((await activeUserWithEntitlements(db, direct, assignedApp))?.entitlements).toEqual({ allowed: true, assigned: true, roles: ['a.role', 'b.role'] });
  });
});

describe('entitledApps(user)', () => {
  it('lists the apps the user may sign in to, with roles, and not the others', async () => {
    const user = await newUser();
    const assigned = await newApp(['k']);
    const notAssigned = await newApp();
    const open = await newApp([], 'everyone');
    await access.createAssignment(assigned, { principalType: 'user', principalId: user, roleKeys: ['k'] });
    const list = await entitledApps(db, user);
    const ids = list.map((e) => e.appId);
    expect(ids).toEqual(expect.arrayContaining([assigned, open]));
    expect(ids).not.toContain(notAssigned);
    expect(list.find((e) => e.appId === assigned)).toEqual({ appId: assigned, allowed: true, assigned: true, roles: ['k'] });
  });
});

describe('groupNamesOf(user)', () => {
  it("returns the names of the user's groups, sorted", async () => {
    const user = await newUser();
    await newGroup('Zeta team', [user]);
    await newGroup('alpha team', [user]);
    await newGroup('Not mine', []);
    expect(await groupNamesOf(db, user)).toEqual(['Zeta team', 'alpha team'].sort());
    expect(await groupNamesOf(db, await newUser())).toEqual([]);
  });
});

describe('AccessService assignments', () => {
  const appError = async (promise: Promise<unknown>): Promise<AppError> => {
    const err = await promise.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  };

  it('refuses a second assignment of the same principal to the same app (409)', async () => {
    const app = await newApp();
    const user = await newUser();
    await access.createAssignment(app, { principalType: 'user', principalId: user });
    expect((await appError(access.createAssignment(app, { principalType: 'user', principalId: user }))).kind).toBe('already_exists');
  });

  it('refuses unknown principals, unknown roles and sub-departments of a non-department', async () => {
    const app = await newApp(['known']);
    const user = await newUser();
    expect((await appError(access.createAssignment(app, { principalType: 'group', principalId: randomUUID() }))).kind).toBe('not_found');
    expect((await appError(access.createAssignment(randomUUID(), { principalType: 'user', principalId: user }))).code).toBe('app.not_found');
    const unknownRole = await appError(access.createAssignment(app, { principalType: 'user', principalId: user, roleKeys: ['unknown'] }));
    expect(unknownRole.code).toBe('app_role.not_found');
    const sub = await appError(access.createAssignment(app, { principalType: 'user', principalId: user, includeSubdepartments: true }));
    expect(sub).toMatchObject({ kind: 'invalid_argument', details: { field: 'includeSubdepartments' } });
    // Nothing was half-written.
    expect(await db('assignments').where({ app_id: app })).toHaveLength(0);
  });

  it("refuses another app's role", async () => {
    const app = await newApp(['here']);
    const other = await newApp(['there']);
    const [there] = await apps.listRoles(other);
    const err = await appError(access.createAssignment(app, { principalType: 'user', principalId: await newUser(), roleIds: [there!.id] }));
    expect(err.code).toBe('app_role.not_found');
  });

  it('writes an audit event for every change, in the same transaction', async () => {
    const app = await newApp(['r1']);
    const user = await newUser();
    const before = Number((await db('audit_events').count<{ count: number }[]>({ count: '*' }))[0]!.count);
    const a = await access.createAssignment(app, { principalType: 'user', principalId: user, roleKeys: ['r1'] });
    await access.updateAssignment(app, a.id, { roleKeys: [] });
    await access.deleteAssignment(a.id);
    const events = await db('audit_events').where('seq', '>', 0).orderBy('seq', 'desc').limit(3).select('action', 'target_id');
    expect(events.map((e: { action: string }) => e.action)).toEqual(['assignment.deleted', 'assignment.updated', 'assignment.created']);
    const after = Number((await db('audit_events').count<{ count: number }[]>({ count: '*' }))[0]!.count);
    expect(after - before).toBe(3);
  });
});

describe('the account read with a token (oidc adapter)', () => {
  // oidc-provider keeps the request's koa context in this AsyncLocalStorage (Provider.ctx).
  const inRequest = async <T>(fn: () => Promise<T>): Promise<T> => {
    const { default: als } = await import('oidc-provider/lib/helpers/als.js' as string) as { default: { run<R>(store: unknown, f: () => R): R } };
    return als.run({ state: {} }, fn);
  };
  const clientIdOf = async (appId: string): Promise<string> => (await db('apps').where({ id: appId }).first()).client_id;

  it('is what activeUserWithEntitlements answers, in the statement that reads the token', async () => {
    const Adapter = createAdapterFactory(db, {} as ClientCache<never>);
    const [assignedApp, openApp] = [await newApp(['t.role', 'u.role']), await newApp([], 'everyone')];
    const [direct, viaGroup, plain, suspended] = [await newUser(), await newUser(), await newUser(), await newUser()];
    await access.createAssignment(assignedApp, { principalType: 'user', principalId: direct, roleKeys: ['t.role'] });
    await access.createAssignment(assignedApp, { principalType: 'group', principalId: await newGroup('Token readers', [viaGroup, direct]), roleKeys: ['u.role'] });
    await users.changeStatus(suspended, 'suspend');
    let n = 0;
    for (const app of [assignedApp, openApp]) {
      const clientId = await clientIdOf(app);
      for (const user of [direct, viaGroup, plain, suspended]) {
        n += 1;
        await new Adapter('AccessToken').upsert(`at-account-${n}`, { accountId: user, clientId, grantId: `g-${n}` }, 60);
        let statements = 0;
        const count = () => { statements += 1; };
        const prefetched = await inRequest(async () => {
          db.on('query', count);
          await new Adapter('AccessToken').find(`at-account-${n}`);
          db.removeListener('query', count);
          return { wrongClient: takePrefetchedAccount(user, 'another-client'), right: takePrefetchedAccount(user, clientId), again: takePrefetchedAccount(user, clientId) };
        });
        expect(statements).toBe(1);
        expect(prefetched.wrongClient).toBeUndefined();
        expect(prefetched.again).toBeUndefined(); // used once
        const expected = await activeUserWithEntitlements(db, user, app);
        expect(prefetched.right).toEqual({ value: expected && { appId: app, ...expected } });
      }
    }
    // Outside a request, nothing is kept.
    await new Adapter('AccessToken').find('at-account-1');
    expect(takePrefetchedAccount(direct, await clientIdOf(assignedApp))).toBeUndefined();
  });
});
