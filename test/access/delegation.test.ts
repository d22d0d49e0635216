// Delegation inside a suite on a real database: which grant lets app A act for a person at app B,
// and what the answer carries (scopes, B's roles of the person); each refusal names its reason.
import type { Knex } from 'knex';
import { randomUUID } from 'node:crypto';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import { AccessService } from '../../src/access/assignments.service.ts';
import { authorizeDelegation, delegationHolds, resolveTarget, type SignInFacts } from '../../src/access/delegation.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
let apps: AppsService;
let access: AccessService;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_delegation');
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

async function newApp(opts: { roles?: string[]; apiAudience?: string; authorizationServer?: string } = {}): Promise<{ id: string; clientId: string }> {
  counter += 1;
  const app = await apps.createApp({ name: `App ${counter}`, redirectUris: ['https://app.example/cb'] });
  for (const key of opts.roles ?? []) await apps.createRole(app.id, { key, name: key });
  await db('apps').where({ id: app.id }).update({ api_audience: opts.apiAudience ?? null, authorization_server: opts.authorizationServer ?? null });
  return { id: app.id, clientId: app.client_id };
}

/** A suite of `members` (plain rows: the suites service is another helper's). */
async function newSuite(members: string[]): Promise<string> {
  const id = randomUUID();
  counter += 1;
  await db('suites').insert({ id, name: `Suite ${counter}` });
  await db('suite_apps').insert(members.map((appId) => ({ suite_id: id, app_id: appId })));
  return id;
}

async function newGrant(suiteId: string, clientAppId: string, audienceAppId: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = randomUUID();
  await db('suite_grants').insert({ id, suite_id: suiteId, client_app_id: clientAppId, audience_app_id: audienceAppId, scopes: ['orders.read'], ...extra });
  return id;
}

const MFA: SignInFacts = { acr: 'urn:oneid:acr:mfa', authTime: Math.floor(Date.now() / 1000) };

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe('resolveTarget', () => {
  it('finds B by api_audience or client_id for a token, by authorization_server for an assertion', async () => {
    const a = await newApp();
    const b = await newApp({ apiAudience: 'https://b.example/api', authorizationServer: 'https://as.b.example' });
    const suite = await newSuite([a.id, b.id]);
    const grant = await newGrant(suite, a.id, b.id);
    for (const request of [
      { kind: 'token' as const, audience: 'https://b.example/api' },
      { kind: 'token' as const, audience: b.clientId },
      { kind: 'token' as const, resource: 'https://b.example/api' },
      { kind: 'token' as const, audience: b.clientId, resource: 'https://b.example/api' },
      { kind: 'assertion' as const, audience: 'https://as.b.example' },
    ]) {
      const found = await resolveTarget(db, a.id, request);
      expect(found.target).toEqual({ id: b.id, clientId: b.clientId, apiAudience: 'https://b.example/api', authorizationServer: 'https://as.b.example' });
      expect(found.grants.map((g) => g.id)).toEqual([grant]);
    }
  });

  it('refuses an unknown audience, an app outside the suites, a wrong kind of name and a mismatch alike', async () => {
    const a = await newApp();
    const b = await newApp({ apiAudience: 'https://b2.example/api', authorizationServer: 'https://as.b2.example' });
    const c = await newApp({ apiAudience: 'https://c.example/api' });
    await newGrant(await newSuite([a.id, b.id]), a.id, b.id);
    await newSuite([a.id, c.id]); // same suite, no grant
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token', audience: 'https://nowhere.example' }))).code).toBe('delegation.target_unknown');
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token', audience: 'https://c.example/api' }))).code).toBe('delegation.no_grant');
    // B's issuer names its authorization server, not a token audience; a client_id is no resource.
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token', audience: 'https://as.b2.example' }))).code).toBe('delegation.target_unknown');
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token', resource: b.clientId }))).code).toBe('delegation.target_unknown');
    expect((await refusal(resolveTarget(db, a.id, { kind: 'assertion', audience: 'https://b2.example/api' }))).code).toBe('delegation.target_unknown');
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token', audience: b.clientId, resource: 'https://c.example/api' }))).code).toBe('delegation.target_mismatch');
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token' }))).code).toBe('delegation.target_missing');
    // The grant is one way: B may not act at A.
    expect((await refusal(resolveTarget(db, b.id, { kind: 'token', audience: a.clientId }))).code).toBe('delegation.no_grant');
  });

  it('forgets the grant when A leaves the suite', async () => {
    const a = await newApp();
    const b = await newApp({ apiAudience: 'https://b3.example/api' });
    const suite = await newSuite([a.id, b.id]);
    await newGrant(suite, a.id, b.id);
    await db('suite_apps').where({ suite_id: suite, app_id: a.id }).delete();
    expect((await refusal(resolveTarget(db, a.id, { kind: 'token', audience: 'https://b3.example/api' }))).code).toBe('delegation.no_grant');
  });
});

describe('authorizeDelegation', () => {
  let a: { id: string; clientId: string };
  let b: { id: string; clientId: string };
  let suite: string;

  beforeAll(async () => {
    a = await newApp();
    b = await newApp({ roles: ['viewer', 'editor', 'admin'], apiAudience: 'https://orders.example/api' });
    suite = await newSuite([a.id, b.id]);
  });
  afterEach(async () => {
    await db('suite_grants').where({ suite_id: suite }).delete();
  });

  // Decided twice: with the person's access read apart, and read with the target (as the token
  // exchange does); both must come to the same answer or the same refusal.
  const decide = async (personId: string, opts: { scopes?: string[]; signIn?: SignInFacts; now?: number } = {}) => {
    const request = { kind: 'token' as const, audience: 'https://orders.example/api' };
    const settle = (p: Promise<unknown>) => p.then((v) => ({ v }), (e: unknown) => ({ e, code: (e as AppError).code, details: (e as AppError).details }));
    const { target, grants } = await resolveTarget(db, a.id, request);
    const apart = await settle(authorizeDelegation(db, { clientAppId: a.id, personId, target, grants, scopes: opts.scopes, signIn: opts.signIn ?? MFA, now: opts.now }));
    const withTarget = await settle(resolveTarget(db, a.id, request, personId).then(({ target: t, grants: g, person }) =>
      authorizeDelegation(db, { clientAppId: a.id, personId, target: t, grants: g, person, scopes: opts.scopes, signIn: opts.signIn ?? MFA, now: opts.now })));
    expect(withTarget).toEqual(apart);
    if ('e' in apart) throw apart.e;
    return apart.v as Awaited<ReturnType<typeof authorizeDelegation>>;
  };

  it("gives the grant's scopes and B's roles of the person within the grant's roles", async () => {
    const person = await newUser();
    await access.createAssignment(b.id, { principalType: 'user', principalId: person, roleKeys: ['viewer', 'admin'] });
    const grant = await newGrant(suite, a.id, b.id, { scopes: ['orders.read', 'orders.write'], roles: ['viewer', 'editor'] });
    const all = await decide(person);
    expect(all).toMatchObject({ grant: { id: grant, suiteId: suite }, scopes: ['orders.read', 'orders.write'], roles: ['viewer'] });
    expect((await decide(person, { scopes: ['orders.read'] })).scopes).toEqual(['orders.read']);
    await db('suite_grants').where({ id: grant }).update({ roles: null });
    expect((await decide(person)).roles).toEqual(['admin', 'viewer']);
    // Roles that reach the person through a group, and an assignment to another app, count as they do at sign-in.
    const group = randomUUID();
    await db('groups').insert({ id: group, name: `Group ${counter}` });
    await db('group_members').insert({ group_id: group, user_id: person });
    await access.createAssignment(b.id, { principalType: 'group', principalId: group, roleKeys: ['editor'] });
    await access.createAssignment(a.id, { principalType: 'user', principalId: person });
    expect((await decide(person)).roles).toEqual(['admin', 'editor', 'viewer']);
  });

  it('refuses scopes beyond the grant', async () => {
    const person = await newUser();
    await access.createAssignment(b.id, { principalType: 'user', principalId: person });
    await newGrant(suite, a.id, b.id);
    expect((await refusal(decide(person, { scopes: ['orders.read', 'orders.delete'] }))).code).toBe('delegation.scope_beyond_grant');
  });

  it('refuses a person without access to B, and one no longer active', async () => {
    await newGrant(suite, a.id, b.id);
    const outsider = await newUser();
    expect((await refusal(decide(outsider))).code).toBe('delegation.not_entitled');
    const leaver = await newUser();
    await access.createAssignment(b.id, { principalType: 'user', principalId: leaver });
    await db('users').where({ id: leaver }).update({ status: 'suspended' });
    expect((await refusal(decide(leaver))).code).toBe('delegation.person_inactive');
    expect((await refusal(decide(randomUUID()))).code).toBe('delegation.person_inactive');
    expect((await refusal(decide('not-a-user-id'))).code).toBe('delegation.person_inactive');
    // A sign-in from before the person's sessions were ended (a password set by an administrator).
    const reset = await newUser();
    await access.createAssignment(b.id, { principalType: 'user', principalId: reset });
    await db('users').where({ id: reset }).update({ sessions_ended_at: new Date() });
    expect((await refusal(decide(reset, { signIn: { ...MFA, authTime: Math.floor(Date.now() / 1000) - 5 } }))).code).toBe('delegation.signin_ended');
  });

  it('asks for a stronger or more recent sign-in, naming the least it needs', async () => {
    const person = await newUser();
    await access.createAssignment(b.id, { principalType: 'user', principalId: person });
    await newGrant(suite, a.id, b.id, { min_signin_policy: 'mfa', max_age_seconds: 300 });
    const now = Math.floor(Date.now() / 1000);
    const weak = await refusal(decide(person, { signIn: { acr: 'urn:oneid:acr:password', authTime: now } }));
    expect(weak).toMatchObject({ kind: 'unauthenticated', code: 'delegation.signin_too_weak', details: { acrValues: 'urn:oneid:acr:mfa', maxAge: 300 } });
    const old = await refusal(decide(person, { signIn: { acr: 'urn:oneid:acr:mfa', authTime: now - 301 } }));
    expect(old).toMatchObject({ code: 'delegation.signin_too_old', details: { maxAge: 300 } });
    expect((await refusal(decide(person, { signIn: {} }))).code).toBe('delegation.signin_too_weak');
    // Stronger than needed is enough.
    expect((await decide(person, { signIn: { acr: 'urn:oneid:acr:phishing_resistant', authTime: now - 10 } })).scopes).toEqual(['orders.read']);
  });

  it('uses another suite\'s grant for the same pair when the first one does not cover the request', async () => {
    const person = await newUser();
    await access.createAssignment(b.id, { principalType: 'user', principalId: person });
    await newGrant(suite, a.id, b.id, { min_signin_policy: 'phishing_resistant' });
    const other = await newSuite([a.id, b.id]);
    const lenient = await newGrant(other, a.id, b.id, { min_signin_policy: 'mfa' });
    expect((await decide(person)).grant.id).toBe(lenient);
    await db('suites').where({ id: other }).delete();
    expect((await refusal(decide(person))).details).toMatchObject({ acrValues: 'urn:oneid:acr:phishing_resistant' });
  });
});

describe('delegationHolds', () => {
  it('holds while the grant covers the scopes and the person is entitled, then not', async () => {
    const a = await newApp();
    const b = await newApp({ apiAudience: 'https://holds.example/api' });
    const suite = await newSuite([a.id, b.id]);
    const grant = await newGrant(suite, a.id, b.id);
    const person = await newUser();
    const assignment = await access.createAssignment(b.id, { principalType: 'user', principalId: person });
    const input = { clientAppId: a.id, personId: person, audience: 'https://holds.example/api', scopes: ['orders.read'] };
    expect(await delegationHolds(db, input)).toBe(b.id);
    expect(await delegationHolds(db, { ...input, audience: b.clientId })).toBe(b.id);
    expect(await delegationHolds(db, { ...input, scopes: ['orders.write'] })).toBeUndefined();
    await access.deleteAssignment(assignment.id);
    expect(await delegationHolds(db, input)).toBeUndefined();
    await access.createAssignment(b.id, { principalType: 'user', principalId: person });
    expect(await delegationHolds(db, input)).toBe(b.id);
    await db('suite_grants').where({ id: grant }).delete();
    expect(await delegationHolds(db, input)).toBeUndefined();
  });
});
