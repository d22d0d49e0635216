// SCIM Users on a real, migrated PostgreSQL database, below HTTP: the SCIM <-> directory mapping,
// the write operations that the routes and /Bulk share (create, replace, patch, remove), the
// reads (filter, sort, paging, projection, department scope) and their SQL cost.
import fc from 'fast-check';
import type { Knex } from 'knex';
import { loadConfig } from '../../src/config.ts';
import { createServices, type Services } from '../../src/services.ts';
import { createLogger } from '../../src/shared/logger.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import type { ScimDeps } from '../../src/scim/index.ts';
import type { ScimRequestContext } from '../../src/scim/types.ts';
import { ScimError } from '../../src/scim/errors.ts';
import { ScimFilterError } from '../../src/scim/filter.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createScimUserOps } from '../../src/scim/users.resource.ts';
import { findUserByLoginWithPassword } from '../../src/directory/users.repo.ts';
import { foldName } from '../../src/shared/names.ts';
import { listParamsFromQuery, listParamsFromSearch } from '../../src/scim/scim-list.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const UNKNOWN = '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f';
const BASE = 'https://id.example.com/scim/v2';

let mdb: MigratedDatabase;
let db: Knex;
let services: Services;
let ops: ReturnType<typeof createScimUserOps>;
const actor: Actor = { type: 'scim_client', id: 'token-under-test' };
const rc: ScimRequestContext = {
  client: { tokenId: 'token-under-test', name: 'Okta', departmentId: null, departmentPath: null },
  actor,
  baseUrl: BASE,
};

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_scim_users');
  db = mdb.db;
  services = createServices(db, loadConfig({ NODE_ENV: 'test' }));
  const deps: ScimDeps = { services, log: createLogger('silent'), issuer: 'https://id.example.com', maxBodyBytes: 100 * 1024 };
  ops = createScimUserOps(deps);
});

afterAll(async () => {
  await mdb?.close();
});

let seq = 0;
const uniq = (prefix: string) => `${prefix}${(seq += 1)}`;
const user = (extra: Record<string, unknown> = {}) => ({ schemas: [CORE], userName: uniq('person'), ...extra });
const create = async (extra: Record<string, unknown> = {}, ctx = rc) => (await ops.create(user(extra), ctx)).body as Record<string, any>;
const patchOp = (...operations: unknown[]) => ({ schemas: [PATCH], Operations: operations });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e);
}
async function scimError(promise: Promise<unknown>, status: number, scimType?: string): Promise<ScimError> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(ScimError);
  expect(err).toMatchObject({ status, ...(scimType ? { scimType } : {}) });
  return err as ScimError;
}
const row = (id: string) => db('users').where({ id }).first();
const auditOf = (id: string) => db('audit_events').where({ target_type: 'user', target_id: id }).orderBy('seq');
const primaryDepartment = async (userId: string) => (await db('user_departments as ud').join('departments as d', 'd.id', 'ud.department_id')
  .where({ 'ud.user_id': userId, 'ud.is_primary': true }).first('d.id', 'd.name', 'd.parent_id'));
const memberships = async (userId: string) => (await db('user_departments').where({ user_id: userId })).length;
const list = async (query: Record<string, string>, ctx = rc) => ops.list(listParamsFromQuery(query), ctx) as Promise<Record<string, any>>;

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

describe('create', () => {
  it('maps a full SCIM User to the directory and renders it back', async () => {
    const userName = uniq('Grace.Hopper');
    const res = await ops.create({
      schemas: [CORE, ENT],
      userName,
      externalId: 'hr-1001',
      name: { givenName: 'Grace', familyName: 'Hopper', formatted: 'Rear Admiral Grace Hopper', middleName: 'Brewster' },
      displayName: 'Grace Hopper',
      title: 'Rear Admiral',
      locale: 'en_US',
      nickName: 'Amazing Grace',
      emails: [{ value: 'Grace@Navy.example', type: 'work', primary: true }, { value: 'grace@home.example', type: 'home' }],
      phoneNumbers: [{ value: '+1 555 0100', type: 'work', primary: true }, { value: '+1 555 0199', type: 'mobile' }],
      addresses: [{ type: 'work', country: 'US', locality: 'Arlington' }],
      [ENT]: { employeeNumber: 'E-7', department: 'Navy Research', costCenter: 'CC-1', organization: 'US Navy' },
    }, rc);
    expect(res.status).toBe(201);
    const body = res.body as Record<string, any>;
    expect(res.location).toBe(`${BASE}/Users/${body.id}`);
    expect(res.etag).toBe('W/"1"');
    expect(body).toMatchObject({
      schemas: [CORE, ENT],
      externalId: 'hr-1001',
      userName,
      name: { givenName: 'Grace', familyName: 'Hopper', formatted: 'Rear Admiral Grace Hopper', middleName: 'Brewster' },
      displayName: 'Grace Hopper',
      title: 'Rear Admiral',
      locale: 'en_US',
      nickName: 'Amazing Grace',
      active: true,
      emails: [{ value: 'grace@navy.example', type: 'work', primary: true }, { value: 'grace@home.example', type: 'home' }],
      phoneNumbers: [{ value: '+1 555 0100', type: 'work', primary: true }, { value: '+1 555 0199', type: 'mobile' }],
      addresses: [{ type: 'work', country: 'US', locality: 'Arlington' }],
      [ENT]: { employeeNumber: 'E-7', department: 'Navy Research', costCenter: 'CC-1', organization: 'US Navy' },
      meta: { resourceType: 'User', location: `${BASE}/Users/${body.id}`, version: 'W/"1"' },
    });
    expect(body.password).toBeUndefined();
    // What the rest of OneID (OIDC claims, admin API) sees:
    expect(await row(body.id)).toMatchObject({
      username: userName.toLowerCase(), email: 'grace@navy.example', given_name: 'Grace', family_name: 'Hopper',
      display_name: 'Grace Hopper', title: 'Rear Admiral', locale: 'en-US', phone: '+1 555 0100', employee_number: 'E-7',
      external_id: 'hr-1001', status: 'active',
    });
    expect(await primaryDepartment(body.id)).toMatchObject({ name: 'Navy Research', parent_id: null });
    const events = await db('audit_events').where({ actor_type: 'scim_client', actor_id: 'token-under-test' }).whereIn('action', ['user.created', 'department.created', 'department.member_added']);
    expect(events.map((e) => e.action).sort()).toEqual(['department.created', 'department.member_added', 'user.created']);
  });

  it('ignores attributes of no schema and readOnly attributes, and never stores a password hash it was not given', async () => {
    const body = await create({ adreses: [{ country: 'Germany' }], id: UNKNOWN, groups: [{ value: UNKNOWN }], meta: { created: '2001-01-01T00:00:00Z' } });
    expect(body.id).not.toBe(UNKNOWN);
    expect(JSON.stringify(body)).not.toContain('Germany');
    expect(body.groups).toBeUndefined();
    expect(body.meta.created).not.toContain('2001');
    expect(await db('credentials').where({ user_id: body.id })).toHaveLength(0);
  });

  it('sets a password through the directory and never returns it', async () => {
    const body = await create({ password: 'correct horse battery' });
    expect(body.password).toBeUndefined();
    expect(JSON.stringify(body)).not.toContain('correct horse');
    const signedIn = await services.passwords.authenticate(body.userName, 'correct horse battery');
    expect(signedIn?.id).toBe(body.id);
  });

  it('accepts Entra ID\'s "True"/"False" strings and creates a suspended user for active false', async () => {
    expect((await create({ active: 'True' })).active).toBe(true);
    const off = await create({ active: 'False' });
    expect(off.active).toBe(false);
    expect((await row(off.id)).status).toBe('suspended');
  });

  it('returns 409 uniqueness for a userName taken in another case, and lets externalId repeat', async () => {
    const first = await create({ externalId: 'shared-ext' });
    const err = await rejection(ops.create(user({ userName: first.userName.toUpperCase() }), rc));
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ kind: 'already_exists', code: 'user.username_taken' });
    const second = await create({ externalId: 'shared-ext' });
    expect(second.externalId).toBe('shared-ext');
  });

  it('keeps email values that are not addresses, and gives the sign-in email only to the first account with it', async () => {
    const a = await create({ emails: [{ value: 'emailName357', type: 'work', primary: true }] });
    expect(a.emails).toEqual([{ value: 'emailName357', type: 'work', primary: true }]);
    expect((await row(a.id)).email).toBeNull();
    const shared = `${uniq('shared')}@example.com`;
    const b = await create({ emails: [{ value: shared, primary: true }] });
    const c = await create({ emails: [{ value: shared, primary: true }] });
    expect(c.emails).toEqual([{ value: shared, primary: true }]);
    expect((await row(b.id)).email).toBe(shared);
    expect((await row(c.id)).email).toBeNull();
  });

  it('refuses bad input with the right scimType and writes nothing', async () => {
    const before = (await db('users').count({ n: '*' }))[0]!.n;
    await scimError(ops.create('not an object', rc), 400, 'invalidSyntax');
    await scimError(ops.create({ userName: 'x' }, rc), 400, 'invalidSyntax');
    await scimError(ops.create({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], userName: 'x' }, rc), 400, 'invalidSyntax');
    await scimError(ops.create({ schemas: [CORE], userName: 'x', [ENT]: { department: 'D' } }, rc), 400, 'invalidSyntax');
    await scimError(ops.create({ schemas: [CORE, 'urn:example:ext'], userName: 'x', 'urn:example:ext': { a: 1 } }, rc), 400, 'invalidValue');
    await scimError(ops.create({ schemas: [CORE], displayName: 'no userName' }, rc), 400, 'invalidValue');
    await scimError(ops.create(user({ userName: 42 }), rc), 400, 'invalidValue');
    await scimError(ops.create(user({ active: 'yes' }), rc), 400, 'invalidValue');
    await scimError(ops.create(user({ emails: { value: 'a@b.c' } }), rc), 400, 'invalidValue');
    await scimError(ops.create(user({ emails: [{ type: 'work' }] }), rc), 400, 'invalidValue');
    await scimError(ops.create(user({ name: 'Ada' }), rc), 400, 'invalidValue');
    const userNameErr = await scimError(ops.create(user({ userName: 'has space' }), rc), 400, 'invalidValue');
    expect(userNameErr.detail).toMatch(/^userName: /);
    // The user would be valid; the department name is not: nothing at all is written.
    const deptErr = await scimError(ops.create({ schemas: [CORE, ENT], userName: uniq('rolled-back'), [ENT]: { department: 'bad\u0001name' } }, rc), 400, 'invalidValue');
    expect(deptErr.detail).toContain(`${ENT}:department`);
    expect((await db('users').count({ n: '*' }))[0]!.n).toBe(before);
  });
});

describe('enterprise department and manager', () => {
  it('reuses a department of that name (case-insensitive), moves the person on change, and drops it on PUT without one', async () => {
    const existing = await services.departments.createDepartment({ name: uniq('Finance') });
    const u = await create({ schemas: [CORE, ENT], [ENT]: { department: existing.name.toUpperCase() } });
    expect(await primaryDepartment(u.id)).toMatchObject({ id: existing.id });
    expect(u[ENT].department).toBe(existing.name);

    const moved = (await ops.patch(u.id, patchOp({ op: 'replace', path: `${ENT}:department`, value: 'Brand New Dept' }), rc)).body as Record<string, any>;
    expect(moved[ENT].department).toBe('Brand New Dept');
    expect(await primaryDepartment(u.id)).toMatchObject({ name: 'Brand New Dept', parent_id: null });
    expect(await memberships(u.id)).toBe(1); // the old primary membership is gone
    expect(moved.meta.version).not.toBe(u.meta.version);

    const put = (await ops.replace(u.id, { schemas: [CORE], userName: u.userName }, rc)).body as Record<string, any>;
    expect(put[ENT]).toBeUndefined();
    expect(await memberships(u.id)).toBe(0);
  });

  it('sets a manager by id and renders its display name; refuses an unknown id; ignores a foreign identifier', async () => {
    const boss = await create({ displayName: 'The Boss' });
    const u = await create({ schemas: [CORE, ENT], [ENT]: { manager: { value: boss.id } } });
    expect(u[ENT].manager).toEqual({ value: boss.id, $ref: `${BASE}/Users/${boss.id}`, displayName: 'The Boss' });
    expect((await row(u.id)).manager_id).toBe(boss.id);
    await scimError(ops.create({ schemas: [CORE, ENT], userName: uniq('m'), [ENT]: { manager: { value: UNKNOWN } } }, rc), 400, 'invalidValue');
    const foreign = await create({ schemas: [CORE, ENT], [ENT]: { Manager: { Value: 'SuzzyQ' } } });
    expect(foreign[ENT]).toBeUndefined();
    expect((await row(foreign.id)).manager_id).toBeNull();
  });
});

describe('replace (PUT)', () => {
  it('clears what the body leaves out, keeps the password and the status, and refuses another id', async () => {
    const u = await create({ title: 'Engineer', phoneNumbers: [{ value: '123' }], password: 'a long password', active: false, nickName: 'Nick' });
    const res = await ops.replace(u.id, { schemas: [CORE], id: u.id, userName: u.userName, displayName: 'Renamed' }, rc);
    const body = res.body as Record<string, any>;
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ displayName: 'Renamed', active: false });
    expect(body.title).toBeUndefined();
    expect(body.phoneNumbers).toBeUndefined();
    expect(body.nickName).toBeUndefined();
    expect(await row(u.id)).toMatchObject({ title: null, phone: null, display_name: 'Renamed', status: 'suspended' });
    expect(await db('credentials').where({ user_id: u.id })).toHaveLength(1);
    await scimError(ops.replace(u.id, { schemas: [CORE], id: UNKNOWN, userName: u.userName }, rc), 400, 'mutability');
  });

  it('writes nothing (same version, no audit event) when the body matches what is stored', async () => {
    const u = await create({ schemas: [CORE, ENT], title: 'Same', emails: [{ value: `${uniq('same')}@example.com`, type: 'work', primary: true }], [ENT]: { department: 'Steady' } });
    const events = (await auditOf(u.id)).length;
    const { id: _id, meta: _meta, ...again } = u;
    const res = await ops.replace(u.id, again, rc);
    expect(res.etag).toBe(u.meta.version);
    expect(await auditOf(u.id)).toHaveLength(events);
  });

  it('reactivates a suspended user with active true and suspends with active false', async () => {
    const u = await create();
    await ops.replace(u.id, { schemas: [CORE], userName: u.userName, active: false }, rc);
    expect((await row(u.id)).status).toBe('suspended');
    await ops.replace(u.id, { schemas: [CORE], userName: u.userName, active: 'True' }, rc);
    expect((await row(u.id)).status).toBe('active');
    const actions = (await auditOf(u.id)).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['user.suspended', 'user.reactivated']));
  });
});

describe('patch', () => {
  it('applies what Entra ID sends: capitalised ops, "False", dotted keys, value paths, the manager as a bare id', async () => {
    const boss = await create();
    const u = await create({ emails: [{ value: `${uniq('entra')}@contoso.example`, type: 'work', primary: true }], name: { givenName: 'Old', familyName: 'Name' } });
    const res = await ops.patch(u.id, patchOp(
      { op: 'Replace', path: 'emails[type eq "work"].value', value: 'new.address@contoso.example' },
      { op: 'Add', value: { 'name.givenName': 'New', [`${ENT}:department`]: 'Entra Dept', 'urn:ietf:params:scim:schemas:core:2.0:User:title': 'Lead' } },
      { op: 'Add', path: `${ENT}:manager`, value: boss.id },
      { op: 'Replace', path: 'active', value: 'False' },
    ), rc);
    const body = res.body as Record<string, any>;
    expect(body).toMatchObject({
      name: { givenName: 'New', familyName: 'Name' }, title: 'Lead', active: false,
      emails: [{ value: 'new.address@contoso.example', type: 'work', primary: true }],
      [ENT]: { department: 'Entra Dept', manager: { value: boss.id } },
    });
    expect(await row(u.id)).toMatchObject({ given_name: 'New', email: 'new.address@contoso.example', status: 'suspended', manager_id: boss.id });
  });

  it("applies Okta's deactivate and ends the user's sessions and tokens", async () => {
    const u = await create();
    await db('oidc_payloads').insert({ model: 'RefreshToken', id: uniq('rt'), payload: JSON.stringify({}), account_id: u.id });
    const res = await ops.patch(u.id, patchOp({ op: 'replace', value: { active: false } }), rc);
    expect((res.body as Record<string, any>).active).toBe(false);
    expect(await db('oidc_payloads').where({ account_id: u.id })).toHaveLength(0);
    expect((await auditOf(u.id)).at(-1)).toMatchObject({ action: 'user.suspended', actor_type: 'scim_client', actor_id: 'token-under-test' });
  });

  it("adds a value through a replace whose value filter matches nothing, as Entra ID sets a missing work email", async () => {
    const u = await create({ emails: [{ value: `${uniq('h')}@example.com`, type: 'home', primary: true }] });
    const body = (await ops.patch(u.id, patchOp({ op: 'replace', path: 'emails[type eq "work"].value', value: 'new.work@example.com' }), rc)).body as Record<string, any>;
    expect(body.emails).toHaveLength(2);
    expect(body.emails).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'work', value: 'new.work@example.com' })]));
    // A remove through a filter that matches nothing changes nothing.
    const again = (await ops.patch(u.id, patchOp({ op: 'remove', path: 'emails[type eq "other"]' }), rc)).body as Record<string, any>;
    expect(again.emails).toHaveLength(2);
  });

  it('a value that a PATCH makes primary is the only primary one (RFC 7644 3.5.2), and a primary email becomes the sign-in email', async () => {
    const old = `${uniq('prim')}@example.com`;
    const u = await create({ emails: [{ value: old, type: 'work', primary: true }], phoneNumbers: [{ value: '+1 555 0100', type: 'work', primary: true }] });
    const added = `${uniq('prim')}@example.com`;
    const body = (await ops.patch(u.id, patchOp(
      { op: 'add', path: 'emails', value: [{ value: added, type: 'home', primary: true }] },
      { op: 'add', path: 'phoneNumbers', value: [{ value: '+1 555 0199', type: 'mobile', primary: true }] },
    ), rc)).body as Record<string, any>;
    expect(body.emails).toEqual([{ value: old, type: 'work', primary: false }, { value: added, type: 'home', primary: true }]);
    expect(body.phoneNumbers.filter((p: { primary?: boolean }) => p.primary === true)).toEqual([{ value: '+1 555 0199', type: 'mobile', primary: true }]);
    expect((await services.users.getUser(u.id)).email).toBe(added);
    // Making an existing value primary through a value filter demotes the other one.
    const again = (await ops.patch(u.id, patchOp({ op: 'replace', path: `emails[value eq "${old}"].primary`, value: true }), rc)).body as Record<string, any>;
    expect(again.emails.map((e: { value: string; primary?: boolean }) => [e.value, e.primary])).toEqual([[old, true], [added, false]]);
    expect((await services.users.getUser(u.id)).email).toBe(old);
    // As Entra ID sends it: "True" as a string.
    const entra = (await ops.patch(u.id, patchOp({ op: 'Add', path: `emails[value eq "${added}"].primary`, value: 'True' }), rc)).body as Record<string, any>;
    expect(entra.emails.map((e: { value: string; primary?: boolean }) => [e.value, e.primary])).toEqual([[old, false], [added, true]]);
    expect((await services.users.getUser(u.id)).email).toBe(added);
  });

  it('a displayName OneID derived from the name parts follows them; one the client chose stays', async () => {
    const u = await create({ name: { givenName: 'Ann', familyName: 'Lee' } });
    expect(u.displayName).toBe('Ann Lee');
    const body = (await ops.patch(u.id, patchOp({ op: 'replace', path: 'name.familyName', value: 'Smith' }), rc)).body as Record<string, any>;
    expect([body.displayName, body.name.formatted]).toEqual(['Ann Smith', 'Ann Smith']);
    // The OIDC name claim comes from the directory's display name.
    expect((await services.users.getUser(u.id)).displayName).toBe('Ann Smith');
    const chosen = await create({ name: { givenName: 'Bo', familyName: 'Ek' }, displayName: 'The Boss' });
    const after = (await ops.patch(chosen.id, patchOp({ op: 'replace', path: 'name.familyName', value: 'Berg' }), rc)).body as Record<string, any>;
    expect([after.displayName, after.name.formatted]).toEqual(['The Boss', 'Bo Berg']);
    // A PATCH that sets both keeps what it sets.
    const both = (await ops.patch(u.id, patchOp({ op: 'replace', value: { 'name.givenName': 'Anna', displayName: 'Ann Smith' } }), rc)).body as Record<string, any>;
    expect([both.displayName, both.name.givenName]).toEqual(['Ann Smith', 'Anna']);
  });

  it('adds, replaces and removes with paths, case-insensitively', async () => {
    const u = await create({ emails: [{ value: `${uniq('p')}@example.com`, type: 'work', primary: true }] });
    let body = (await ops.patch(u.id, patchOp(
      { op: 'add', path: 'EMAILS', value: [{ value: 'second@example.com', type: 'home' }] },
      { op: 'replace', path: 'name', value: { familyName: 'Family' } },
      { op: 'add', path: 'addresses', value: [{ type: 'work', country: 'NZ' }] },
    ), rc)).body as Record<string, any>;
    expect(body.emails).toHaveLength(2);
    expect(body.name.familyName).toBe('Family');
    expect(body.addresses).toEqual([{ type: 'work', country: 'NZ' }]);
    body = (await ops.patch(u.id, patchOp(
      { op: 'remove', path: 'emails[type eq "home"]' },
      { op: 'remove', path: 'name.familyName' },
      { op: 'remove', path: 'addresses' },
    ), rc)).body as Record<string, any>;
    expect(body.emails).toHaveLength(1);
    expect(body.name?.familyName).toBeUndefined();
    expect(body.addresses).toBeUndefined();
  });

  it('refuses bad operations with invalidPath, noTarget, mutability, invalidSyntax or invalidValue, writing nothing', async () => {
    const u = await create({ emails: [{ value: `${uniq('bad')}@example.com`, type: 'work' }] });
    const version = (await row(u.id)).version;
    await scimError(ops.patch(u.id, { Operations: [{ op: 'replace', path: 'title', value: 'x' }] }, rc), 400, 'invalidSyntax');
    await scimError(ops.patch(u.id, patchOp(), rc), 400, 'invalidSyntax');
    await scimError(ops.patch(u.id, patchOp({ op: 'move', path: 'title', value: 'x' }), rc), 400, 'invalidSyntax');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'members', value: 'x' }), rc), 400, 'invalidPath');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'name.nope', value: 'x' }), rc), 400, 'invalidPath');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'emails[type eq', value: 'x' }), rc), 400, 'invalidPath');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'urn:example:ext:thing', value: 'x' }), rc), 400, 'invalidPath');
    await scimError(ops.patch(u.id, patchOp({ op: 'remove' }), rc), 400, 'noTarget');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'emails[value co "nobody"].type', value: 'home' }), rc), 400, 'noTarget');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'id', value: UNKNOWN }), rc), 400, 'mutability');
    await scimError(ops.patch(u.id, patchOp({ op: 'add', path: 'groups', value: [{ value: UNKNOWN }] }), rc), 400, 'mutability');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'active', value: 'maybe' }), rc), 400, 'invalidValue');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', value: 'not an object' }), rc), 400, 'invalidValue');
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'title', value: 'ok' }, { op: 'remove', path: 'userName' }), rc), 400, 'invalidValue');
    expect((await row(u.id)).version).toBe(version);
  });
});

describe('remove (DELETE)', () => {
  it('deprovisions, hides the user from SCIM and frees userName, emails and externalId for a new account', async () => {
    const email = `${uniq('leaver')}@example.com`;
    const u = await create({ externalId: uniq('ext'), emails: [{ value: email, primary: true }] });
    await db('oidc_payloads').insert({ model: 'Session', id: uniq('s'), payload: JSON.stringify({}), account_id: u.id });
    expect((await ops.remove(u.id, rc)).status).toBe(204);
    expect(await row(u.id)).toMatchObject({ status: 'deprovisioned', username: `deprovisioned.${u.id}`, email: null, external_id: null });
    expect(await db('oidc_payloads').where({ account_id: u.id })).toHaveLength(0);
    const event = (await auditOf(u.id)).at(-1);
    expect(event).toMatchObject({ action: 'user.deprovisioned', actor_type: 'scim_client' });
    expect(event.changes.released).toMatchObject({ username: u.userName.toLowerCase(), email, externalId: u.externalId });
    await scimError(ops.get(u.id, rc), 404);
    await scimError(ops.remove(u.id, rc), 404);
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'title', value: 'x' }), rc), 404);
    expect((await list({ filter: `userName eq "${u.userName}"` })).totalResults).toBe(0);
    const again = await create({ userName: u.userName, externalId: u.externalId, emails: [{ value: email, primary: true }] });
    expect(again.id).not.toBe(u.id);
    expect((await row(again.id)).email).toBe(email);
  });
});

describe('ETags', () => {
  it('refuses a stale If-Match with 412 on PUT, PATCH and DELETE and accepts the current one or *', async () => {
    const u = await create();
    const stale = 'W/"999"';
    await scimError(ops.replace(u.id, { schemas: [CORE], userName: u.userName, title: 'x' }, rc, stale), 412);
    await scimError(ops.patch(u.id, patchOp({ op: 'replace', path: 'title', value: 'x' }), rc, stale), 412);
    await scimError(ops.remove(u.id, rc, stale), 412);
    const r1 = await ops.patch(u.id, patchOp({ op: 'replace', path: 'title', value: 'x' }), rc, u.meta.version);
    expect(r1.etag).toBe('W/"2"');
    const r2 = await ops.replace(u.id, { schemas: [CORE], userName: u.userName, title: 'y' }, rc, '*');
    expect(r2.etag).toBe('W/"3"');
    expect((await ops.get(u.id, rc)).etag).toBe('W/"3"');
  });
});

describe('list', () => {
  let tag: string;
  const made: Record<string, any>[] = [];
  beforeAll(async () => {
    tag = uniq('lst');
    for (const [given, family] of [['Zoe', 'Adams'], ['amy', 'Baker'], ['Bob', 'Clark'], ['Cleo', 'Baker'], ['Dan', 'Evans']]) {
      made.push(await create({ userName: `${tag}-${given!.toLowerCase()}`, name: { givenName: given, familyName: family }, title: tag }));
    }
    await ops.remove(made[4]!.id, rc); // deprovisioned users are not listed
  });
  const byTag = (extra: Record<string, string> = {}) => list({ filter: `title eq "${tag}"`, ...extra });

  it('filters in SQL, excludes deprovisioned users, and pages with totalResults', async () => {
    const all = await byTag();
    expect(all).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 4, itemsPerPage: 4, startIndex: 1 });
    expect(all.Resources.map((r: any) => r.id)).toEqual(made.slice(0, 4).map((m) => m.id)); // stable: creation order
    const page = await byTag({ startIndex: '2', count: '2' });
    expect(page).toMatchObject({ totalResults: 4, itemsPerPage: 2, startIndex: 2 });
    expect(page.Resources.map((r: any) => r.id)).toEqual([made[1]!.id, made[2]!.id]);
    expect(await byTag({ count: '0' })).toMatchObject({ totalResults: 4, itemsPerPage: 0, Resources: [] });
    expect(await byTag({ startIndex: '-5', count: '1' })).toMatchObject({ startIndex: 1, itemsPerPage: 1 });
    expect(await byTag({ startIndex: '50' })).toMatchObject({ totalResults: 4, itemsPerPage: 0 });
    // Microsoft's collection sends unquoted values.
    expect((await list({ filter: `name.FamilyName eq Baker and userName sw ${tag}` })).totalResults).toBe(2);
  });

  it('sorts by the requested attribute, case-insensitively where the attribute is, then by creation', async () => {
    const given = await byTag({ sortBy: 'name.givenName' });
    expect(given.Resources.map((r: any) => r.name.givenName)).toEqual(['amy', 'Bob', 'Cleo', 'Zoe']);
    const family = await byTag({ sortBy: 'urn:ietf:params:scim:schemas:core:2.0:User:name.familyName', sortOrder: 'Descending' });
    expect(family.Resources.map((r: any) => r.name.givenName)).toEqual(['Bob', 'amy', 'Cleo', 'Zoe']);
    const users = await byTag({ sortBy: 'userName', sortOrder: 'descending', count: '2' });
    expect(users.Resources.map((r: any) => r.name.givenName)).toEqual(['Zoe', 'Cleo']);
    await scimError(byTag({ sortBy: 'password' }), 400, 'invalidValue');
    await scimError(byTag({ sortOrder: 'sideways' }), 400, 'invalidValue');
    await scimError(byTag({ count: 'ten' }), 400, 'invalidValue');
  });

  it('projects attributes and excludedAttributes, always keeping id, schemas and meta', async () => {
    const only = await byTag({ attributes: 'userName,name.givenName' });
    expect(Object.keys(only.Resources[0]).sort()).toEqual(['id', 'meta', 'name', 'schemas', 'userName']);
    expect(only.Resources[0].name).toEqual({ givenName: 'Zoe' });
    const without = await byTag({ excludedAttributes: 'name,title' });
    expect(without.Resources[0].name).toBeUndefined();
    expect(without.Resources[0].userName).toBeDefined();
  });

  it('answers a SearchRequest like the query string', async () => {
    const res = await ops.list(listParamsFromSearch({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: `title eq "${tag}"`, sortBy: 'userName', count: 1, attributes: ['userName'],
    }), rc) as Record<string, any>;
    expect(res).toMatchObject({ totalResults: 4, itemsPerPage: 1 });
    expect(res.Resources[0].userName).toBe(`${tag}-amy`);
    expect(() => listParamsFromSearch({ filter: 'x' })).toThrow(ScimError);
  });

  it('refuses filter injection with invalidFilter', async () => {
    for (const filter of [`userName eq "x" or 1=1 --`, `userName eq "x"; drop table users`, 'userName eq "x" or', `${'('.repeat(200)}userName pr${')'.repeat(200)}`, 'password eq "x"']) {
      const err = await rejection(list({ filter }));
      expect(err).toBeInstanceOf(ScimFilterError);
      expect(err).toMatchObject({ status: 400, scimType: 'invalidFilter' });
    }
    // Quotes inside a value are data: it is compared, never executed.
    expect((await list({ filter: `userName eq "x\\" or \\"1\\"=\\"1"` })).totalResults).toBe(0);
    expect((await list({ filter: `userName eq 'x' or userName pr` })).totalResults).toBeGreaterThan(0);
  });

  it('reads a page in one COUNT and one query, groups, department and manager included, whatever the page size', async () => {
    const g = await services.groups.createGroup({ name: uniq('Readers') });
    for (const m of made.slice(0, 4)) await services.groups.addMember(g.id, m.id, actor);
    const queries = await countQueries(() => byTag({ count: '100' }));
    expect(queries).toHaveLength(2);
    expect(await countQueries(() => byTag({ count: '2', startIndex: '2' }))).toHaveLength(2);
    const page = await byTag();
    expect(page.Resources[0].groups).toEqual([{ value: g.id, $ref: `${BASE}/Groups/${g.id}`, display: g.name, type: 'direct' }]);
    const lookup = await countQueries(() => list({ filter: `userName eq "${tag}-bob"` }));
    // An index lookup on users__username, in the count and in the page query.
    // (The value is folded in JavaScript, shared/names.ts: no lower() on either side.)
    expect(lookup.filter((sql) => /"u"\."username" = \$\d+::text/.test(sql))).toHaveLength(2);
  });
});

describe('department-scoped tokens', () => {
  it('see and change only people in their subtree, and provision into it', async () => {
    const root = await services.departments.createDepartment({ name: uniq('Subsidiary') });
    const team = await services.departments.createDepartment({ name: 'Team', parentId: root.id });
    const scoped: ScimRequestContext = {
      client: { tokenId: 'scoped-token', name: 'HR of the subsidiary', departmentId: root.id, departmentPath: root.path },
      actor: { type: 'scim_client', id: 'scoped-token' },
      baseUrl: BASE,
    };
    const outsider = await create({ title: 'scope-test' });
    const insider = await create({ title: 'scope-test' }, scoped);
    expect(await primaryDepartment(insider.id)).toMatchObject({ id: root.id });
    // An existing department of that name inside the subtree is used; otherwise a child of the token's.
    const inTeam = await create({ schemas: [CORE, ENT], title: 'scope-test', [ENT]: { department: 'team' } }, scoped);
    expect(await primaryDepartment(inTeam.id)).toMatchObject({ id: team.id });
    const elsewhere = await services.departments.createDepartment({ name: uniq('Elsewhere') });
    const inNew = await create({ schemas: [CORE, ENT], title: 'scope-test', [ENT]: { department: elsewhere.name } }, scoped);
    const dept = await primaryDepartment(inNew.id);
    expect(dept).toMatchObject({ name: elsewhere.name, parent_id: root.id });
    expect(dept.id).not.toBe(elsewhere.id);

    const seen = await list({ filter: 'title eq "scope-test"' }, scoped);
    expect(seen.Resources.map((r: any) => r.id).sort()).toEqual([insider.id, inTeam.id, inNew.id].sort());
    expect((await list({ filter: 'title eq "scope-test"' })).totalResults).toBe(4);
    await scimError(ops.get(outsider.id, scoped), 404);
    await scimError(ops.patch(outsider.id, patchOp({ op: 'replace', path: 'title', value: 'x' }), scoped), 404);
    await scimError(ops.remove(outsider.id, scoped), 404);
    await scimError(ops.create({ schemas: [CORE, ENT], userName: uniq('s'), [ENT]: { manager: { value: outsider.id } } }, scoped), 400, 'invalidValue');
    // A PUT without a department keeps the person inside the subtree.
    await ops.replace(inTeam.id, { schemas: [CORE], userName: inTeam.userName }, scoped);
    expect(await primaryDepartment(inTeam.id)).toMatchObject({ id: team.id });
    expect((await ops.get(inTeam.id, scoped)).status).toBe(200);
  });
});

describe('userName: filters and sign-in agree', () => {
  it('finds, for any spelling, the same person (or nobody) by a userName eq filter and by sign-in', async () => {
    // Letters whose case or compatibility forms JavaScript and PostgreSQL's lower() treat differently.
    const letters = ['a', 'A', 'i', 'I', 'İ', 'ı', 'ß', 'ẞ', 'ｓ', 'Ｓ', 'ſ', 'K', 'k', '\u212a', 'σ', 'Σ', 'ς', 'é', 'e\u0301', 'ﬁ', 'Å', '\u212b', '.'];
    const name = fc.array(fc.constantFrom(...letters), { minLength: 1, maxLength: 4 }).map((parts) => `fold${parts.join('')}`);
    await fc.assert(fc.asyncProperty(name, name, async (stored, asked) => {
      const created = await ops.create({ schemas: [CORE], userName: stored }, rc).then((r) => r.body as { id: string }, (err: unknown) => {
        expect(err).toMatchObject({ kind: 'already_exists' }); // the folded name exists already (409 uniqueness over HTTP)
        return undefined;
      });
      if (created) expect((await row(created.id)).username).toBe(foldName(stored));
      for (const spelling of [stored, asked]) {
        const byFilter = ((await list({ filter: `userName eq ${JSON.stringify(spelling)}` })).Resources as { id: string }[]).map((r) => r.id);
        const bySignIn = (await findUserByLoginWithPassword(db, spelling))?.user.id;
        expect(byFilter).toEqual(bySignIn ? [bySignIn] : []);
      }
      expect((await findUserByLoginWithPassword(db, stored))?.user.id).toBeDefined();
    }), { numRuns: 80 });
  });
});
