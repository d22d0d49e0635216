// DepartmentsService on a real database: the tree, moves, deletes, memberships, audit, and
// subtree queries on a tree of 10,000 departments.
import type { Knex } from 'knex';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { DepartmentsService } from '../../src/directory/departments.service.ts';
import { departmentMembersQuery, descendantsQuery, type Department } from '../../src/directory/departments.repo.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
let departments: DepartmentsService;
const actor: Actor = { type: 'user', id: 'admin-under-test' };

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_departments');
  db = mdb.db;
  users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
  departments = new DepartmentsService(db);
});

afterAll(async () => {
  await mdb?.close();
});

async function appError(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const auditOf = (targetId: string, action?: string) => {
  const q = db('audit_events').where({ target_type: 'department', target_id: targetId }).orderBy('seq');
  if (action) q.andWhere({ action });
  return q;
};

let seq = 0;
const person = (label = 'p') => users.createUser({ username: `${label}-${(seq += 1)}` });
const dept = (name: string, parentId?: string) => departments.createDepartment({ name, parentId }, actor);

/** Every row's path and depth agree with its parent's: the tree invariant, checked in SQL. */
async function treeInconsistencies(): Promise<number> {
  const [row] = await db.raw(`
    select count(*)::int as n from departments c left join departments p on p.id = c.parent_id
    where (p.id is null and (c.path <> '/' || c.id || '/' or c.depth <> 0))
       or (p.id is not null and (c.path <> p.path || c.id || '/' or c.depth <> p.depth + 1))`).then((r: { rows: { n: number }[] }) => r.rows);
  return row!.n;
}

describe('DepartmentsService.createDepartment', () => {
  it('creates a top-level department with its own id as path, depth 0, version 1, and audits it', async () => {
    const hq = await dept('Headquarters');
    expect(hq).toMatchObject({ name: 'Headquarters', parentId: null, path: `/${hq.id}/`, depth: 0, version: 1, managerId: null, externalId: null });
    const events = await auditOf(hq.id, 'department.created');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor_type: 'user', actor_id: 'admin-under-test' });
    expect(events[0].changes).toMatchObject({ name: 'Headquarters' });
  });

  it('creates a sub-department whose path extends the parent path', async () => {
    const root = await dept('Engineering');
    const child = await dept('Platform', root.id);
    const grandchild = await dept('Databases', child.id);
    expect(child).toMatchObject({ parentId: root.id, path: `${root.path}${child.id}/`, depth: 1 });
    expect(grandchild).toMatchObject({ parentId: child.id, path: `/${root.id}/${child.id}/${grandchild.id}/`, depth: 2 });
  });

  it('returns already_exists department.name_taken for a sibling name in another case, but allows it under another parent', async () => {
    const a = await dept('Sales');
    const b = await dept('Marketing');
    await dept('Europe', a.id);
    const err = await appError(dept('EUROPE', a.id));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'department.name_taken' });
    expect(err.details).toEqual({ field: 'name' });
    await expect(dept('Europe', b.id)).resolves.toMatchObject({ parentId: b.id });
    expect(await appError(dept('sales'))).toMatchObject({ kind: 'already_exists', code: 'department.name_taken' });
    expect(await db('departments').whereRaw('lower(name) = ?', ['europe'])).toHaveLength(2);
  });

  it('refuses an unknown parent, naming parentId', async () => {
    const err = await appError(dept('Orphan', '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f'));
    expect(err).toMatchObject({ kind: 'invalid_argument', code: 'department.parent_not_found', details: { field: 'parentId' } });
    expect(await db('departments').where({ name: 'Orphan' })).toEqual([]);
  });

  it('sets a manager that exists and refuses one that does not', async () => {
    const boss = await person('boss');
    const d = await departments.createDepartment({ name: 'Finance', managerId: boss.id, externalId: 'HR-100' }, actor);
    expect(d).toMatchObject({ managerId: boss.id, externalId: 'HR-100' });
    const err = await appError(departments.createDepartment({ name: 'Legal', managerId: '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f' }, actor));
    expect(err).toMatchObject({ kind: 'invalid_argument', code: 'department.manager_not_found', details: { field: 'managerId' } });
  });

  it.each([
    ['colour', { name: 'X', colour: 'blue' }],
    ['name', { name: '   ' }],
    ['name', { name: 'x'.repeat(201) }],
    ['parentId', { name: 'X', parentId: 'not-a-uuid' }],
    ['managerId', { name: 'X', managerId: 42 }],
  ])('returns invalid_argument naming %s', async (field, input) => {
    const err = await appError(departments.createDepartment(input as never, actor));
    expect(err.kind).toBe('invalid_argument');
    expect(err.details).toEqual({ field });
    expect(err.message.startsWith(`${field}: `)).toBe(true);
  });
});

describe('DepartmentsService.updateDepartment', () => {
  it('renames with the current version, bumps the version and audits the change', async () => {
    const d = await dept('Support');
    const renamed = await departments.updateDepartment(d.id, { name: 'Customer Support', externalId: 'HR-7' }, actor, d.version);
    expect(renamed).toMatchObject({ name: 'Customer Support', externalId: 'HR-7', version: d.version + 1 });
    const [event] = await auditOf(d.id, 'department.updated');
    expect(event.changes).toEqual({ name: { from: 'Support', to: 'Customer Support' }, externalId: { from: null, to: 'HR-7' } });
  });

  it('returns failed_precondition for a stale version and changes nothing', async () => {
    const d = await dept('Facilities');
    await departments.updateDepartment(d.id, { name: 'Facilities & Office' }, actor);
    const err = await appError(departments.updateDepartment(d.id, { name: 'Stale write' }, actor, d.version));
    expect(err).toMatchObject({ kind: 'failed_precondition', code: 'department.version_mismatch' });
    expect((await departments.getDepartment(d.id)).name).toBe('Facilities & Office');
  });

  it('changes nothing (no version bump, no audit event) when nothing differs', async () => {
    const d = await dept('Research');
    const same = await departments.updateDepartment(d.id, { name: 'Research' }, actor);
    expect(same.version).toBe(d.version);
    expect(await auditOf(d.id, 'department.updated')).toEqual([]);
  });

  it('returns not_found for an unknown or malformed id', async () => {
    expect(await appError(departments.updateDepartment('7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f', { name: 'X' }, actor))).toMatchObject({ kind: 'not_found' });
    expect(await appError(departments.updateDepartment('nope', { name: 'X' }, actor))).toMatchObject({ kind: 'not_found' });
    expect(await appError(departments.getDepartment('nope'))).toMatchObject({ kind: 'not_found', code: 'department.not_found' });
  });
});

describe('moving a subtree', () => {
  // A > B > C > D, with siblings at every level; X is another top-level department.
  let A: Department; let B: Department; let C: Department; let D: Department; let B2: Department; let C2: Department; let X: Department;

  beforeAll(async () => {
    A = await dept('Move-A');
    B = await dept('Move-B', A.id);
    B2 = await dept('Move-B2', A.id);
    C = await dept('Move-C', B.id);
    C2 = await dept('Move-C2', B.id);
    D = await dept('Move-D', C.id);
    X = await dept('Move-X');
  });

  it('moves B with everything below it under X, rewriting paths and depths of all descendants', async () => {
    const before = await db('departments').whereIn('id', [B.id, C.id, C2.id, D.id]).select('id', 'version');
    const moved = await departments.moveDepartment(B.id, X.id, actor, B.version);
    expect(moved).toMatchObject({ parentId: X.id, path: `/${X.id}/${B.id}/`, depth: 1, version: B.version + 1 });
    expect(await departments.getDepartment(C.id)).toMatchObject({ parentId: B.id, path: `/${X.id}/${B.id}/${C.id}/`, depth: 2 });
    expect(await departments.getDepartment(C2.id)).toMatchObject({ path: `/${X.id}/${B.id}/${C2.id}/`, depth: 2 });
    expect(await departments.getDepartment(D.id)).toMatchObject({ path: `/${X.id}/${B.id}/${C.id}/${D.id}/`, depth: 3 });
    // Untouched: the old parent and the sibling that stayed.
    expect(await departments.getDepartment(B2.id)).toMatchObject({ parentId: A.id, path: `/${A.id}/${B2.id}/`, depth: 1 });
    expect(await treeInconsistencies()).toBe(0);
    // Every moved row has a new version (its path changed).
    const after = new Map((await db('departments').whereIn('id', [B.id, C.id, C2.id, D.id]).select('id', 'version')).map((r) => [r.id, r.version]));
    for (const r of before) expect(after.get(r.id)).toBe(r.version + 1);

    const [event] = await auditOf(B.id, 'department.moved');
    expect(event.changes).toMatchObject({ parentId: { from: A.id, to: X.id }, departmentsMoved: 4 });
  });

  it('moves a department to the top level with parentId null', async () => {
    const top = await departments.moveDepartment(C.id, null, actor);
    expect(top).toMatchObject({ parentId: null, path: `/${C.id}/`, depth: 0 });
    expect(await departments.getDepartment(D.id)).toMatchObject({ path: `/${C.id}/${D.id}/`, depth: 1 });
    expect(await treeInconsistencies()).toBe(0);
    await departments.moveDepartment(C.id, B.id, actor);
    expect(await departments.getDepartment(D.id)).toMatchObject({ path: `/${X.id}/${B.id}/${C.id}/${D.id}/`, depth: 3 });
  });

  it('refuses to move a department under itself or under one of its descendants, and changes nothing', async () => {
    const snapshot = await db('departments').orderBy('id').select('id', 'path', 'depth', 'parent_id', 'version');
    for (const target of [B.id, C.id, D.id]) {
      const err = await appError(departments.moveDepartment(B.id, target, actor));
      expect(err).toMatchObject({ kind: 'invalid_argument', code: 'department.move_cycle', details: { field: 'parentId' } });
    }
    expect(await db('departments').orderBy('id').select('id', 'path', 'depth', 'parent_id', 'version')).toEqual(snapshot);
    expect(await auditOf(B.id, 'department.moved')).toHaveLength(1);
  });

  it('refuses a move that would give two siblings the same name', async () => {
    const clash = await dept('move-c', A.id); // same name as C, in another case
    const err = await appError(departments.moveDepartment(C.id, A.id, actor));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'department.name_taken' });
    expect(await departments.getDepartment(C.id)).toMatchObject({ parentId: B.id });
    expect(await departments.getDepartment(D.id)).toMatchObject({ path: `/${X.id}/${B.id}/${C.id}/${D.id}/` });
    await departments.deleteDepartment(clash.id, actor);
  });

  it('returns failed_precondition for a move with a stale version', async () => {
    const err = await appError(departments.moveDepartment(B.id, A.id, actor, B.version));
    expect(err).toMatchObject({ kind: 'failed_precondition' });
    expect((await departments.getDepartment(B.id)).parentId).toBe(X.id);
  });

  it('rewrites a 200-department subtree with one UPDATE of the paths, not one per department', async () => {
    const top = await dept('Wide');
    const ids: string[] = [];
    const rows: Record<string, unknown>[] = [];
    let parents = [{ id: top.id, path: top.path, depth: 0 }];
    while (rows.length < 200) {
      const next: typeof parents = [];
      for (const p of parents) {
        for (let i = 0; i < 4 && rows.length < 200; i += 1) {
          const id = crypto.randomUUID();
          ids.push(id);
          const row = { id, name: `w-${rows.length}`, parent_id: p.id, path: `${p.path}${id}/`, depth: p.depth + 1 };
          rows.push(row);
          next.push(row);
        }
      }
      parents = next;
    }
    await db.batchInsert('departments', rows, 100);
    const statements: string[] = [];
    const listen = (q: { sql: string }) => statements.push(q.sql);
    db.on('query', listen);
    try {
      await departments.moveDepartment(top.id, X.id, actor);
    } finally {
      db.off('query', listen);
    }
    const updates = statements.filter((s) => /^update "departments"/i.test(s));
    expect(updates).toHaveLength(2); // the department's own row, then the whole subtree's paths
    expect(await db('departments').whereRaw('path like ?', [`/${X.id}/${top.id}/%`]).count<{ count: number }[]>({ count: '*' })).toEqual([{ count: 201 }]);
    expect(await treeInconsistencies()).toBe(0);
  });
});

describe('DepartmentsService.deleteDepartment', () => {
  it('refuses with already_exists (409) naming how many people and sub-departments block it', async () => {
    const d = await dept('Busy');
    await dept('Busy child', d.id);
    for (const u of [await person(), await person()]) await departments.addMember(d.id, { userId: u.id }, actor);
    const err = await appError(departments.deleteDepartment(d.id, actor));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'department.not_empty' });
    expect(err.message).toBe('the department still has 2 people and 1 sub-department; move or remove them first');
    expect(await db('departments').where({ id: d.id })).toHaveLength(1);
    expect(await auditOf(d.id, 'department.deleted')).toEqual([]);
  });

  it('names only what blocks it', async () => {
    const d = await dept('Parent only');
    await dept('Only child', d.id);
    const err = await appError(departments.deleteDepartment(d.id, actor));
    expect(err.message).toBe('the department still has 1 sub-department; move or remove them first');
  });

  it('deletes an empty department and audits it', async () => {
    const d = await dept('Empty');
    await departments.deleteDepartment(d.id, actor, d.version);
    expect(await db('departments').where({ id: d.id })).toEqual([]);
    const [event] = await auditOf(d.id, 'department.deleted');
    expect(event.changes).toMatchObject({ name: 'Empty' });
    expect(await appError(departments.deleteDepartment(d.id, actor))).toMatchObject({ kind: 'not_found' });
  });

  it('refuses a stale version', async () => {
    const d = await dept('Versioned');
    await departments.updateDepartment(d.id, { externalId: 'v2' }, actor);
    expect(await appError(departments.deleteDepartment(d.id, actor, d.version))).toMatchObject({ kind: 'failed_precondition' });
  });
});

describe('department members', () => {
  let engineering: Department; let platform: Department; let sales: Department;

  beforeAll(async () => {
    engineering = await dept('Members-Engineering');
    platform = await dept('Members-Platform', engineering.id);
    sales = await dept('Members-Sales');
  });

  const membershipRows = (userId: string) => db('user_departments').where({ user_id: userId }).orderBy('department_id').select('department_id', 'is_primary');

  it('makes a department primary and turns the previous primary into a secondary one', async () => {
    const ada = await person('ada');
    expect(await departments.addMember(engineering.id, { userId: ada.id, primary: true }, actor)).toMatchObject({ changed: true, primary: true });
    await departments.addMember(sales.id, { userId: ada.id, primary: true }, actor);
    const rows = await membershipRows(ada.id);
    expect(rows).toHaveLength(2);
    expect(rows.filter((r) => r.is_primary)).toEqual([{ department_id: sales.id, is_primary: true }]);
    const [event] = await auditOf(sales.id, 'department.member_added');
    expect(event.changes).toEqual({ userId: ada.id, primary: true, previousPrimaryDepartmentId: engineering.id });
  });

  it('adds a secondary membership without touching the primary one', async () => {
    const bob = await person('bob');
    await departments.addMember(sales.id, { userId: bob.id, primary: true }, actor);
    await departments.addMember(platform.id, { userId: bob.id }, actor);
    expect(await membershipRows(bob.id)).toEqual(expect.arrayContaining([
      { department_id: sales.id, is_primary: true }, { department_id: platform.id, is_primary: false },
    ]));
  });

  it('is idempotent: adding the same membership again writes nothing and audits nothing', async () => {
    const cy = await person('cy');
    await departments.addMember(platform.id, { userId: cy.id, primary: true }, actor);
    const events = (await auditOf(platform.id)).length;
    expect(await departments.addMember(platform.id, { userId: cy.id, primary: true }, actor)).toMatchObject({ changed: false });
    expect((await auditOf(platform.id)).length).toBe(events);
    // Turning it into a secondary membership is a change.
    expect(await departments.addMember(platform.id, { userId: cy.id, primary: false }, actor)).toMatchObject({ changed: true });
    expect(await auditOf(platform.id, 'department.member_updated')).toHaveLength(1);
  });

  it('returns not_found naming userId for an unknown user, and not_found for an unknown department', async () => {
    const err = await appError(departments.addMember(sales.id, { userId: '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f' }, actor));
    expect(err).toMatchObject({ kind: 'not_found', code: 'user.not_found', details: { field: 'userId' } });
    const u = await person();
    expect(await appError(departments.addMember('7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f', { userId: u.id }, actor))).toMatchObject({ code: 'department.not_found' });
    expect(await appError(departments.addMember(sales.id, { userId: 'not-a-uuid' }, actor))).toMatchObject({ kind: 'invalid_argument', details: { field: 'userId' } });
  });

  it('removes one membership and audits it; removing it again is not_found', async () => {
    const dee = await person('dee');
    await departments.addMember(sales.id, { userId: dee.id, primary: true }, actor);
    await departments.removeMember(sales.id, dee.id, actor);
    expect(await membershipRows(dee.id)).toEqual([]);
    const events = await auditOf(sales.id, 'department.member_removed');
    expect(events.at(-1)!.changes).toEqual({ userId: dee.id, primary: true });
    expect(await appError(departments.removeMember(sales.id, dee.id, actor))).toMatchObject({ kind: 'not_found', code: 'department.member_not_found' });
  });

  it('lists direct members, and with recursive everyone below as well, each person once', async () => {
    const top = await dept('List-top');
    const mid = await dept('List-mid', top.id);
    const low = await dept('List-low', mid.id);
    const [p1, p2, p3, outsider] = [await person(), await person(), await person(), await person()];
    await departments.addMember(top.id, { userId: p1.id, primary: true }, actor);
    await departments.addMember(low.id, { userId: p2.id, primary: true }, actor);
    await departments.addMember(mid.id, { userId: p2.id }, actor); // in two departments of the subtree
    await departments.addMember(mid.id, { userId: p3.id }, actor);
    await departments.addMember(sales.id, { userId: p3.id, primary: true }, actor);
    await departments.addMember(sales.id, { userId: outsider.id, primary: true }, actor);

    const direct = await departments.listMembers(top.id, { limit: 50 });
    expect(direct.map((m) => [m.username, m.primary])).toEqual([[p1.username, true]]);
    const all = await departments.listMembers(top.id, { recursive: true, limit: 50 });
    const byName = Object.fromEntries(all.map((m) => [m.username, m.primary]));
    expect(byName).toEqual({ [p1.username]: true, [p2.username]: true, [p3.username]: false });
    expect(all.map((m) => m.id)).toEqual([...all.map((m) => m.id)].sort());
    // Paging by user id walks the same list.
    const first = await departments.listMembers(top.id, { recursive: true, limit: 2 });
    const rest = await departments.listMembers(top.id, { recursive: true, limit: 50, afterUserId: first.at(-1)!.id });
    expect([...first, ...rest].map((m) => m.id)).toEqual(all.map((m) => m.id));
  });
});

describe('a tree of 10,000 departments', () => {
  const N = 10_000;
  const FANOUT = 5; // node i has children FANOUT*i+1 .. FANOUT*i+FANOUT (breadth-first numbering)
  const USERS = 20_000;
  const ids: string[] = [];
  const paths: string[] = [];
  let root: Department;

  const subtreeOf = (i: number): Set<number> => {
    const out = new Set<number>();
    const stack = [i];
    while (stack.length) {
      const n = stack.pop()!;
      out.add(n);
      for (let c = FANOUT * n + 1; c <= FANOUT * n + FANOUT && c < N; c += 1) stack.push(c);
    }
    return out;
  };
  const depthOf = (i: number): number => (i === 0 ? 0 : depthOf(Math.floor((i - 1) / FANOUT)) + 1);
  const primaryOf = (k: number): number => k % N;
  const secondaryOf = (k: number): number | undefined => (k < 5000 ? (k * 7919 + 13) % N : undefined);

  beforeAll(async () => {
    root = await dept('Big tree');
    const rows: Record<string, unknown>[] = [];
    for (let i = 0; i < N; i += 1) {
      const id = crypto.randomUUID();
      const parent = i === 0 ? undefined : Math.floor((i - 1) / FANOUT);
      ids.push(id);
      paths.push(`${parent === undefined ? root.path : paths[parent]}${id}/`);
      rows.push({ id, name: `T${i}`, parent_id: parent === undefined ? root.id : ids[parent], path: paths[i], depth: depthOf(i) + 1 });
    }
    await db.batchInsert('departments', rows, 2000);
    // 20,000 people: person k is primary in T(k mod N); the first 5,000 also have a secondary department.
    await db.raw(`insert into users (id, username) select gen_random_uuid(), 'bulk-' || k from generate_series(0, ?) k`, [USERS - 1]);
    await db.raw(`
      insert into user_departments (user_id, department_id, is_primary)
      select u.id, d.id, true from users u join departments d on d.name = 'T' || (substring(u.username from 6)::int % ?)
      where u.username like 'bulk-%'`, [N]);
    await db.raw(`
      insert into user_departments (user_id, department_id, is_primary)
      select u.id, d.id, false from users u join departments d on d.name = 'T' || ((substring(u.username from 6)::int * 7919 + 13) % ?)
      where u.username like 'bulk-%' and substring(u.username from 6)::int < 5000 and d.name <> 'T' || (substring(u.username from 6)::int % ?)`, [N, N]);
    await db.raw('analyze departments, user_departments, users');
  });

  const expectedPeople = (i: number): string[] => {
    const sub = subtreeOf(i);
    const out: string[] = [];
    for (let k = 0; k < USERS; k += 1) {
      const s = secondaryOf(k);
      if (sub.has(primaryOf(k)) || (s !== undefined && sub.has(s))) out.push(`bulk-${k}`);
    }
    return out.sort();
  };

  async function everyoneUnder(id: string, limit = 500): Promise<string[]> {
    const out: string[] = [];
    let after: string | undefined;
    for (;;) {
      const rows = await departments.listMembers(id, { recursive: true, afterUserId: after, limit });
      out.push(...rows.map((r) => r.username));
      if (rows.length < limit) return out.sort();
      after = rows.at(-1)!.id;
    }
  }

  it('lists exactly everyone under a department, all levels down', async () => {
    const X = 7; // two levels below the tree's top: 781 departments
    expect(subtreeOf(X).size).toBeGreaterThan(700);
    const got = await everyoneUnder(ids[X]!);
    const expected = expectedPeople(X);
    expect(got.length).toBe(expected.length);
    expect(got).toEqual(expected);
    // A leaf: only the people directly in it.
    const leaf = N - 1;
    expect(await everyoneUnder(ids[leaf]!)).toEqual(expectedPeople(leaf));
    // The whole tree: everyone.
    expect((await everyoneUnder(root.id, 5000)).length).toBe(USERS);
  });

  it('lists every descendant in tree order, paged', async () => {
    const X = 7;
    const got: Department[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await departments.listDescendants(ids[X]!, { afterPath: after, limit: 100 });
      got.push(...page);
      if (page.length < 100) break;
      after = page.at(-1)!.path;
    }
    const expected = new Set([...subtreeOf(X)].filter((i) => i !== X).map((i) => ids[i]));
    expect(got).toHaveLength(expected.size);
    expect(new Set(got.map((d) => d.id))).toEqual(expected);
    // Tree order: every department comes after its parent.
    const seen = new Set([ids[X]]);
    for (const d of got) {
      expect(seen.has(d.parentId!)).toBe(true);
      seen.add(d.id);
    }
    const oneLevel = await departments.listDescendants(ids[X]!, { maxDepth: 1, limit: 100 });
    expect(oneLevel.map((d) => d.name).sort()).toEqual([36, 37, 38, 39, 40].map((i) => `T${i}`));
  });

  it('answers subtree queries with the departments__path index', async () => {
    const explain = async (q: Knex.QueryBuilder): Promise<string> => {
      const { sql, bindings } = q.toSQL();
      const result = await db.raw(`explain ${sql}`, bindings as Knex.RawBinding[]) as { rows: { 'QUERY PLAN': string }[] };
      return result.rows.map((r) => r['QUERY PLAN']).join('\n');
    };
    // Departments holding about 1.5% and 0.3% of the tree (for a large share of a table this
    // small the planner rightly prefers a sequential scan).
    for (const X of [36, 181]) {
      expect(subtreeOf(X).size).toBeLessThan(200);
      expect(await explain(departmentMembersQuery(db, { departmentId: ids[X]!, subtreePath: paths[X]!, limit: 51 }))).toContain('departments__path');
      expect(await explain(descendantsQuery(db, paths[X]!, { limit: 51 }))).toContain('departments__path');
      expect(await everyoneUnder(ids[X]!, 50)).toEqual(expectedPeople(X));
    }
  });

  it('moves a subtree of about 3,900 departments and keeps every path and depth right', async () => {
    const moving = 1; // a child of the top node: 1 + 5 + 25 + ... below it
    const target = 2;
    const size = subtreeOf(moving).size;
    expect(size).toBeGreaterThan(3000);
    const peopleBefore = expectedPeople(moving);
    await departments.moveDepartment(ids[moving]!, ids[target]!, actor);
    expect(await treeInconsistencies()).toBe(0);
    const movedRows = await db('departments').whereRaw('path like ?', [`${paths[target]}${ids[moving]}/%`]).count<{ count: number }[]>({ count: '*' });
    expect(movedRows[0]!.count).toBe(size);
    expect(await departments.getDepartment(ids[moving]!)).toMatchObject({ parentId: ids[target], depth: 3 });
    // The deepest moved department is one level deeper than before.
    const deepest = [...subtreeOf(moving)].reduce((a, b) => (depthOf(b) > depthOf(a) ? b : a));
    expect((await departments.getDepartment(ids[deepest]!)).depth).toBe(depthOf(deepest) + 2);
    // Everyone who was under the moved department is now also under the new parent.
    const underTarget = new Set(await everyoneUnder(ids[target]!, 5000));
    for (const name of peopleBefore) expect(underTarget.has(name)).toBe(true);
    const [event] = await auditOf(ids[moving]!, 'department.moved');
    expect(event.changes).toMatchObject({ departmentsMoved: size });
  });
});
