// Suites on a real database: a suite assignment becomes assignments rows per member app (what
// entitlements() and every protocol read), kept in step with members, role maps and suite roles,
// audited and turned into events; sign-in policy inheritance; grant validation.
import type { Knex } from 'knex';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { DepartmentsService } from '../../src/directory/departments.service.ts';
import { GroupsService } from '../../src/directory/groups.service.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import { SamlAppsService } from '../../src/apps/saml-apps.service.ts';
import { SuitesService } from '../../src/apps/suites.service.ts';
import { AccessService } from '../../src/access/assignments.service.ts';
import { entitlements } from '../../src/access/entitlements.ts';
import { findAppById } from '../../src/apps/apps.repo.ts';
import { appPolicy } from '../../src/access/signin-policy.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
let departments: DepartmentsService;
let groups: GroupsService;
let apps: AppsService;
let suites: SuitesService;
let access: AccessService;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_suites');
  db = mdb.db;
  users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
  departments = new DepartmentsService(db);
  groups = new GroupsService(db);
  apps = new AppsService(db);
  suites = new SuitesService(db);
  access = new AccessService(db);
});

afterAll(async () => {
  await mdb?.close();
});

let counter = 0;
const next = (): number => (counter += 1);
const newUser = async (): Promise<string> => {
  const n = next();
  return (await users.createUser({ username: `person${n}`, email: `person${n}@example.com` })).id;
};
async function newApp(roleKeys: string[] = [], opts: { public?: boolean } = {}): Promise<string> {
  const { id } = await apps.createApp({ name: `App ${next()}`, redirectUris: ['https://app.example/cb'], public: opts.public ?? false });
  for (const key of roleKeys) await apps.createRole(id, { key, name: key });
  return id;
}
const newSuite = async (extra: Record<string, unknown> = {}) => suites.createSuite({ name: `Suite ${next()}`, ...extra });

/** The AppError a promise rejects with. */
async function refusal(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

const suiteRows = (suiteAssignmentId: string) => db('assignments').where({ suite_assignment_id: suiteAssignmentId }).select('id', 'app_id');

describe('suite assignments', () => {
  it('gives the members of a department, and of its sub-departments when asked, every member app with the mapped roles', async () => {
    const crm = await newApp(['crm.sales', 'crm.admin']);
    const erp = await newApp(['erp.viewer', 'erp.clerk']);
    const suite = await newSuite();
    await suites.createRole(suite.id, { key: 'sales', name: 'Sales' });
    await suites.putApp(suite.id, crm, { roleMap: { sales: ['crm.sales'] } });
    await suites.putApp(suite.id, erp, { roleMap: { sales: ['erp.viewer', 'erp.clerk'] } });

    const top = await departments.createDepartment({ name: `Sales ${next()}` });
    const sub = await departments.createDepartment({ name: `Inside sales ${next()}`, parentId: top.id });
    const [atTop, below, outsider] = [await newUser(), await newUser(), await newUser()];
    await departments.addMember(top.id, { userId: atTop, primary: true });
    await departments.addMember(sub.id, { userId: below, primary: true });

    const sa = await suites.createAssignment(suite.id, { principalType: 'department', principalId: top.id, roleKeys: ['sales'] });
    expect(await entitlements(db, atTop, crm)).toEqual({ allowed: true, assigned: true, roles: ['crm.sales'] });
    expect(await entitlements(db, atTop, erp)).toEqual({ allowed: true, assigned: true, roles: ['erp.clerk', 'erp.viewer'] });
    expect((await entitlements(db, below, crm)).allowed).toBe(false);
    expect((await entitlements(db, outsider, erp)).allowed).toBe(false);

    await suites.updateAssignment(suite.id, sa.id, { includeSubdepartments: true });
    expect(await entitlements(db, below, crm)).toEqual({ allowed: true, assigned: true, roles: ['crm.sales'] });
    expect((await entitlements(db, outsider, crm)).allowed).toBe(false);
  });

  it('reaches everyone already assigned when an app is added later, and follows role map changes', async () => {
    const first = await newApp(['a.user']);
    const suite = await newSuite();
    await suites.createRole(suite.id, { key: 'member', name: 'Member' });
    await suites.createRole(suite.id, { key: 'lead', name: 'Lead' });
    await suites.putApp(suite.id, first, { roleMap: { member: ['a.user'] } });
    const group = await groups.createGroup({ name: `Team ${next()}` });
    const person = await newUser();
    await groups.addMember(group.id, person);
    await suites.createAssignment(suite.id, { principalType: 'group', principalId: group.id, roleKeys: ['member', 'lead'] });

    const later = await newApp(['b.reader', 'b.writer']);
    expect((await entitlements(db, person, later)).allowed).toBe(false);
    await suites.putApp(suite.id, later, { roleMap: { member: ['b.reader'] } });
    expect(await entitlements(db, person, later)).toEqual({ allowed: true, assigned: true, roles: ['b.reader'] });

    await suites.putApp(suite.id, later, { roleMap: { member: ['b.reader'], lead: ['b.writer'] } });
    expect(await entitlements(db, person, later)).toEqual({ allowed: true, assigned: true, roles: ['b.reader', 'b.writer'] });

    // Deleting the suite role takes what it gave, not the app.
    const lead = (await suites.getSuite(suite.id)).roles.find((r) => r.key === 'lead')!;
    await suites.deleteRole(suite.id, lead.id);
    expect(await entitlements(db, person, later)).toEqual({ allowed: true, assigned: true, roles: ['b.reader'] });

    const shown = await suites.getSuite(suite.id);
    expect(shown.apps.map((a) => a.appId).sort()).toEqual([first, later].sort());
    expect(shown.apps.find((a) => a.appId === later)!.roleMap).toEqual({ member: ['b.reader'] });
  });

  it('removes exactly its own rows when the suite assignment goes, leaving a direct assignment of the same person', async () => {
    const appA = await newApp(['x.user']);
    const appB = await newApp();
    const suite = await newSuite();
    await suites.createRole(suite.id, { key: 'user', name: 'User' });
    await suites.putApp(suite.id, appA, { roleMap: { user: ['x.user'] } });
    await suites.putApp(suite.id, appB, {});
    const person = await newUser();
    const direct = await access.createAssignment(appA, { principalType: 'user', principalId: person });
    const sa = await suites.createAssignment(suite.id, { principalType: 'user', principalId: person, roleKeys: ['user'] });
    expect(await suiteRows(sa.id)).toHaveLength(2);
    expect(await entitlements(db, person, appA)).toEqual({ allowed: true, assigned: true, roles: ['x.user'] });

    await suites.deleteAssignment(suite.id, sa.id);
    expect(await suiteRows(sa.id)).toHaveLength(0);
    expect(await db('assignments').where({ id: direct.id }).first()).toBeDefined();
    expect(await entitlements(db, person, appA)).toEqual({ allowed: true, assigned: true, roles: [] });
    expect((await entitlements(db, person, appB)).allowed).toBe(false);
  });

  it('takes the rows of a removed app, and every row when the suite is deleted', async () => {
    const [appA, appB] = [await newApp(), await newApp()];
    const suite = await newSuite();
    await suites.putApp(suite.id, appA, {});
    await suites.putApp(suite.id, appB, {});
    const person = await newUser();
    const sa = await suites.createAssignment(suite.id, { principalType: 'user', principalId: person });
    await suites.removeApp(suite.id, appB);
    expect((await suiteRows(sa.id)).map((r) => r.app_id)).toEqual([appA]);
    expect((await entitlements(db, person, appB)).allowed).toBe(false);

    await suites.deleteSuite(suite.id);
    expect((await entitlements(db, person, appA)).allowed).toBe(false);
    const deleted = await db('audit_events').where({ action: 'assignment.deleted', target_id: appA }).select('changes');
    expect(deleted.map((r: { changes: { suiteAssignmentId?: string } }) => r.changes.suiteAssignmentId)).toContain(sa.id);
  });

  it('refuses a suspended or deprovisioned person, and 404s an unknown principal', async () => {
    const suite = await newSuite();
    const suspended = await newUser();
    await users.changeStatus(suspended, 'suspend');
    const gone = await newUser();
    await users.changeStatus(gone, 'deprovision');
    for (const id of [suspended, gone]) {
      const err = await refusal(suites.createAssignment(suite.id, { principalType: 'user', principalId: id }));
      expect([err.kind, err.code]).toEqual(['failed_precondition', 'suite_assignment.user_not_active']);
    }
    const unknown = await refusal(suites.createAssignment(suite.id, { principalType: 'group', principalId: '00000000-0000-4000-8000-000000000000' }));
    expect([unknown.kind, unknown.code]).toEqual(['not_found', 'suite_assignment.group_not_found']);
    expect(await db('suite_assignments').where({ suite_id: suite.id })).toHaveLength(0);
  });

  it('refuses a direct change of a row the suite keeps', async () => {
    const app = await newApp();
    const suite = await newSuite();
    await suites.putApp(suite.id, app, {});
    const person = await newUser();
    const sa = await suites.createAssignment(suite.id, { principalType: 'user', principalId: person });
    const [row] = await suiteRows(sa.id);
    const shown = await access.getAssignment(app, row!.id);
    expect([shown.suiteId, shown.suiteAssignmentId]).toEqual([suite.id, sa.id]);
    for (const attempt of [access.deleteAssignment(row!.id), access.updateAssignment(app, row!.id, { roleKeys: [] })]) {
      const err = await refusal(attempt);
      expect([err.kind, err.code]).toEqual(['failed_precondition', 'assignment.from_suite']);
      expect(err.message).toContain(suite.name);
    }
    expect(await suiteRows(sa.id)).toHaveLength(1);
  });

  it('goes with the group it names when the group is deleted', async () => {
    const app = await newApp();
    const suite = await newSuite();
    await suites.putApp(suite.id, app, {});
    const group = await groups.createGroup({ name: `Temp ${next()}` });
    const sa = await suites.createAssignment(suite.id, { principalType: 'group', principalId: group.id });
    await groups.deleteGroup(group.id);
    expect(await db('suite_assignments').where({ id: sa.id })).toHaveLength(0);
    // A later member must not bring the group's rows back.
    await suites.putApp(suite.id, await newApp(), {});
    expect(await db('assignments').where({ principal_id: group.id })).toHaveLength(0);
  });

  it('writes an audit record and an event for every row it changes', async () => {
    const app = await newApp(['r.one', 'r.two']);
    const suite = await newSuite();
    await suites.createRole(suite.id, { key: 'one', name: 'One' });
    await suites.putApp(suite.id, app, { roleMap: { one: ['r.one'] } });
    const person = await newUser();
    const sa = await suites.createAssignment(suite.id, { principalType: 'user', principalId: person, roleKeys: ['one'] });
    const [row] = await suiteRows(sa.id);
    await suites.putApp(suite.id, app, { roleMap: { one: ['r.one', 'r.two'] } });
    await suites.deleteAssignment(suite.id, sa.id);

    const events = await db('events').where({ target_type: 'app', target_id: app }).whereIn('type', ['assignment.created', 'assignment.updated', 'assignment.deleted'])
      .orderBy('seq').select('type', 'data');
    expect(events.map((e: { type: string }) => e.type)).toEqual(['assignment.created', 'assignment.updated', 'assignment.deleted']);
    for (const e of events as { data: Record<string, unknown> }[]) {
      expect(e.data).toMatchObject({ assignmentId: row!.id, principalType: 'user', principalId: person, suiteId: suite.id, suiteAssignmentId: sa.id });
    }
    expect(events.map((e: { data: { roleKeys: string[] } }) => e.data.roleKeys)).toEqual([['r.one'], ['r.one', 'r.two'], ['r.one', 'r.two']]);
    const suiteActions = (await db('audit_events').where({ target_type: 'suite', target_id: suite.id }).orderBy('occurred_at').select('action')).map((r: { action: string }) => r.action);
    expect(suiteActions).toEqual(expect.arrayContaining(['suite.created', 'suite_role.created', 'suite.app_added', 'suite.app_updated', 'suite_assignment.created', 'suite_assignment.deleted']));
  });
});

describe('suite sign-in policy', () => {
  it('gives each app the strongest policy of its suites, and takes it back', async () => {
    const app = await newApp();
    const mfaSuite = await newSuite({ signInPolicy: 'mfa' });
    const passwordSuite = await newSuite({ signInPolicy: 'password' });
    await suites.putApp(passwordSuite.id, app, {});
    expect((await findAppById(db, app))!.suiteSignInPolicy).toBe('password');
    const versionBefore = (await findAppById(db, app))!.version;
    await suites.putApp(mfaSuite.id, app, {});
    expect((await findAppById(db, app))!.suiteSignInPolicy).toBe('mfa');
    await suites.updateSuite(passwordSuite.id, { signInPolicy: 'phishing_resistant' });
    expect((await findAppById(db, app))!.suiteSignInPolicy).toBe('phishing_resistant');
    await suites.deleteSuite(passwordSuite.id);
    expect((await findAppById(db, app))!.suiteSignInPolicy).toBe('mfa');
    await suites.removeApp(mfaSuite.id, app);
    const after = (await findAppById(db, app))!;
    expect(after.suiteSignInPolicy).toBeNull();
    expect(after.version).toBe(versionBefore);
  });

  it('leaves an app with a stronger policy of its own in force', async () => {
    const app = await newApp();
    await apps.updateApp(app, { signInPolicy: 'phishing_resistant' });
    const suite = await newSuite({ signInPolicy: 'mfa' });
    await suites.putApp(suite.id, app, {});
    expect(appPolicy((await findAppById(db, app))!)).toBe('phishing_resistant');
  });
});

describe('suite grants', () => {
  it('records a valid grant and refuses the invalid ones', async () => {
    const client = await newApp();
    const audience = await newApp(['api.read', 'api.write']);
    const publicApp = await newApp([], { public: true });
    const outsider = await newApp();
    const suite = await newSuite();
    for (const id of [client, audience, publicApp]) await suites.putApp(suite.id, id, {});

    const grant = await suites.createGrant(suite.id, { clientAppId: client, audienceAppId: audience, scopes: ['orders:read'], roles: ['api.read'], minSignInPolicy: 'mfa', maxAgeSeconds: 3600 });
    expect(grant).toMatchObject({ clientAppId: client, audienceAppId: audience, scopes: ['orders:read'], roles: ['api.read'], minSignInPolicy: 'mfa', maxAgeSeconds: 3600 });
    expect(await db('audit_events').where({ action: 'suite_grant.created', target_id: suite.id })).toHaveLength(1);

    const cases: [Record<string, unknown>, string, string][] = [
      [{ clientAppId: outsider, audienceAppId: audience, scopes: [] }, 'failed_precondition', 'suite_grant.not_member'],
      [{ clientAppId: client, audienceAppId: outsider, scopes: [] }, 'failed_precondition', 'suite_grant.not_member'],
      [{ clientAppId: publicApp, audienceAppId: audience, scopes: [] }, 'failed_precondition', 'suite_grant.client_public'],
      [{ clientAppId: client, audienceAppId: client, scopes: [] }, 'invalid_argument', 'suite_grant.same_app'],
      [{ clientAppId: audience, audienceAppId: client, scopes: [], roles: ['api.read'] }, 'not_found', 'app_role.not_found'],
      [{ clientAppId: audience, audienceAppId: client, scopes: ['has space'] }, 'invalid_argument', 'request.invalid'],
      [{ clientAppId: audience, audienceAppId: client, scopes: Array.from({ length: 51 }, (_, i) => `s${i}`) }, 'invalid_argument', 'request.invalid'],
      [{ clientAppId: audience, audienceAppId: client, scopes: [], maxAgeSeconds: 0 }, 'invalid_argument', 'request.invalid'],
      [{ clientAppId: client, audienceAppId: audience, scopes: [] }, 'already_exists', 'suite_grant.exists'],
    ];
    for (const [input, kind, code] of cases) {
      const err = await refusal(suites.createGrant(suite.id, input as never));
      expect([JSON.stringify(input).slice(0, 40), err.kind, err.code]).toEqual([JSON.stringify(input).slice(0, 40), kind, code]);
    }
    expect(await suites.listGrants(suite.id)).toHaveLength(1);

    // Removing the audience app from the suite ends the grant; deleting it is audited as the revocation.
    const updated = await suites.updateGrant(suite.id, grant.id, { roles: null, scopes: ['orders:read', 'orders:write'] });
    expect(updated).toMatchObject({ roles: null, scopes: ['orders:read', 'orders:write'] });
    await suites.deleteGrant(suite.id, grant.id);
    expect(await db('audit_events').where({ action: 'suite_grant.deleted', target_id: suite.id })).toHaveLength(1);
    const again = await suites.createGrant(suite.id, { clientAppId: client, audienceAppId: audience, scopes: [] });
    await suites.removeApp(suite.id, audience);
    expect(await db('suite_grants').where({ id: again.id })).toHaveLength(0);
  });

  it('refuses a SAML app as the acting app', async () => {
    const saml = await new SamlAppsService(db).createSamlApp({ name: `SAML ${next()}`, entityId: `https://sp${next()}.example/saml`, acsUrls: [{ location: 'https://sp.example/acs' }] });
    const audience = await newApp();
    const suite = await newSuite();
    await suites.putApp(suite.id, saml.app.id, {});
    await suites.putApp(suite.id, audience, {});
    const err = await refusal(suites.createGrant(suite.id, { clientAppId: saml.app.id, audienceAppId: audience, scopes: [] }));
    expect(err.code).toBe('suite_grant.client_public');
  });
});

describe('suites', () => {
  it('refuses a second suite of the same name in another case, and a non-https icon', async () => {
    const s = await newSuite();
    expect((await refusal(suites.createSuite({ name: s.name.toUpperCase() }))).code).toBe('suite.name_taken');
    const bad = await refusal(suites.createSuite({ name: `Icon ${next()}`, iconUrl: 'http://cdn.example/icon.png' }));
    expect([bad.code, bad.details?.field]).toEqual(['request.invalid', 'iconUrl']);
  });

  it('refuses a role map naming an unknown suite role or app role, changing nothing', async () => {
    const app = await newApp(['known']);
    const suite = await newSuite();
    await suites.createRole(suite.id, { key: 'r', name: 'R' });
    expect((await refusal(suites.putApp(suite.id, app, { roleMap: { nope: ['known'] } }))).code).toBe('suite_role.not_found');
    expect((await refusal(suites.putApp(suite.id, app, { roleMap: { r: ['unknown'] } }))).code).toBe('app_role.not_found');
    expect((await suites.getSuite(suite.id)).apps).toEqual([]);
    expect((await refusal(suites.putApp(suite.id, '00000000-0000-4000-8000-000000000000', {}))).code).toBe('app.not_found');
  });

  it('runs the guard on every member app', async () => {
    const guarded = await newApp();
    const suite = await newSuite();
    await suites.putApp(suite.id, guarded, {});
    const guard = (app: { id: string }) => {
      if (app.id === guarded) throw new AppError('permission_denied', 'app.admin_roles_forbidden', 'no');
    };
    expect((await refusal(suites.createRole(suite.id, { key: 'x', name: 'X' }, undefined, guard))).code).toBe('app.admin_roles_forbidden');
    expect((await refusal(suites.putApp(suite.id, await newApp(), {}, undefined, guard))).code).toBe('app.admin_roles_forbidden');
    expect((await suites.getSuite(suite.id)).roles).toEqual([]);
  });
});
