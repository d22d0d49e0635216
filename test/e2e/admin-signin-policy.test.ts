// Black-box, on a real server and database: the per-app sign-in policy in the admin API, a
// person's sign-in methods as the help desk sees and resets them, and RFC 9470 step-up: a
// person's token that makes an administrator, sets a password or removes a sign-in method must
// come from a two-factor sign-in (acr urn:oneid:acr:mfa or stronger).
import pg from 'pg';
import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClientsOfEachRole, withAcr, type AdminClient } from '../helpers/admin.ts';
import { Browser } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const MFA = 'urn:oneid:acr:mfa';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let superAdmin: AdminClient;
let userAdmin: AdminClient;
let appAdmin: AdminClient;
let auditor: AdminClient;
let portal: { client_id: string; client_secret: string };
let sql: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  // The admin console: it holds every admin role, so a person's token through it acts with all of theirs.
  const app = await runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party',
    '--admin-role', 'super_admin', '--admin-role', 'user_admin', '--admin-role', 'app_admin', '--admin-role', 'auditor'], env);
  expect(app.code).toBe(0);
  portal = app.json;
  server = await startServer(env);
  [superAdmin, userAdmin, appAdmin, auditor] = await adminClientsOfEachRole(server.url, env);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

let seq = 0;
async function person(adminRoles: string[] = []) {
  seq += 1;
  const username = `policy${seq}`;
  const password = `policy-pass-${seq}`;
  const res = await superAdmin.call('POST', '/users', { username, password, adminRoles });
  expect(res.status).toBe(201);
  return { id: res.body.id as string, username, password };
}

/** An admin API access token of a person, from a real sign-in through the console (code flow + PKCE). */
async function personToken(login: string, password: string): Promise<string> {
  const config = await client.discovery(new URL(server.url), portal.client_id, undefined, client.ClientSecretBasic(portal.client_secret), { execute: [client.allowInsecureRequests] });
  const browser = new Browser();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid', state, resource: `${server.url}/api`,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const done = await browser.submit(await browser.navigate(url.toString(), REDIRECT), '/login', { login, password }, REDIRECT);
  expect(done.url.startsWith(REDIRECT)).toBe(true);
  return (await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state })).access_token;
}

async function callAs(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${server.url}/admin/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** A person who has set up two passkeys, an authenticator app and three recovery codes (one used), written as the strategies store them. */
async function enrolled(adminRoles: string[] = []) {
  const p = await person(adminRoles);
  const ins = async (type: string, data: object, extra: Record<string, unknown> = {}) => (await sql.query(
    `insert into credentials (id, user_id, type, data, external_id, name, last_used_at, created_at)
     values (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7) returning id`,
    [p.id, type, JSON.stringify(data), extra.external_id ?? null, extra.name ?? null, extra.last_used_at ?? null, extra.created_at ?? new Date()],
  )).rows[0].id as string;
  const laptop = await ins('webauthn', { publicKey: 'pQECAyYgASFYIPUBLICKEYBYTES', counter: 3 }, {
    external_id: `cred-laptop-${p.id}`, name: 'Laptop', last_used_at: new Date('2026-12-01T10:00:00Z'), created_at: new Date('2026-11-01T10:00:00Z'),
  });
  const key = await ins('webauthn', { publicKey: 'pQECAyYgASFYIANOTHERKEY', counter: 0 }, { external_id: `cred-key-${p.id}`, created_at: new Date('2026-11-02T10:00:00Z') });
  await ins('totp', { secret: 'ENCRYPTED-TOTP-SEED-VALUE', confirmed: true, lastStep: 0 });
  await ins('recovery', { hash: '$argon2id$v=19$m=19456,t=2,p=1$recovery-one' });
  await ins('recovery', { hash: '$argon2id$v=19$m=19456,t=2,p=1$recovery-two' });
  await ins('recovery', { hash: '$argon2id$v=19$m=19456,t=2,p=1$recovery-used' }, { last_used_at: new Date() });
  return { ...p, passkeys: { laptop, key } };
}

const credentialTypes = async (userId: string): Promise<string[]> =>
  (await sql.query('select type from credentials where user_id = $1 order by type', [userId])).rows.map((r) => r.type as string);

const events = async (query: string): Promise<any[]> => {
  const res = await auditor.call('GET', `/audit-events?limit=100${query}`);
  expect(res.status).toBe(200);
  return res.body.items;
};

describe('PATCH /admin/api/v1/apps/:id signInPolicy', () => {
  it('stores the policy given at creation, changes it, and clears it back to the global default with null (audited with the old value)', async () => {
    const created = await appAdmin.call('POST', '/apps', { name: 'Payroll', redirectUris: ['https://payroll.example.com/cb'], signInPolicy: 'mfa' });
    expect(created.status).toBe(201);
    expect(created.body.signInPolicy).toBe('mfa');
    expect((await appAdmin.call('GET', `/apps/${created.body.id}`)).body.signInPolicy).toBe('mfa');

    const stricter = await appAdmin.call('PATCH', `/apps/${created.body.id}`, { signInPolicy: 'phishing_resistant' });
    expect(stricter.status).toBe(200);
    expect(stricter.body.signInPolicy).toBe('phishing_resistant');
    const cleared = await appAdmin.call('PATCH', `/apps/${created.body.id}`, { signInPolicy: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.signInPolicy).toBeNull();
    expect((await appAdmin.call('GET', `/apps/${created.body.id}`)).body.signInPolicy).toBeNull();
    // Other changes leave it alone.
    await appAdmin.call('PATCH', `/apps/${created.body.id}`, { signInPolicy: 'mfa' });
    expect((await appAdmin.call('PATCH', `/apps/${created.body.id}`, { name: 'Payroll 2' })).body.signInPolicy).toBe('mfa');

    const updates = await events(`&targetId=${created.body.id}&action=app.updated`);
    const policyChanges = updates.filter((e) => 'signInPolicy' in (e.changes ?? {})).reverse();
    expect(policyChanges.map((e) => [e.before.signInPolicy, e.changes.signInPolicy])).toEqual([
      ['mfa', 'phishing_resistant'], ['phishing_resistant', null], [null, 'mfa'],
    ]);
    expect(policyChanges[0]).toMatchObject({ actorType: 'admin_client', actorId: appAdmin.clientId });
    const [createdEvent] = await events(`&targetId=${created.body.id}&action=app.created`);
    expect(createdEvent.changes.signInPolicy).toBe('mfa');
  });

  it('gives an app created without one null (the global default)', async () => {
    const created = await appAdmin.call('POST', '/apps', { name: 'Wiki', redirectUris: ['https://wiki.example.com/cb'] });
    expect(created.status).toBe(201);
    expect(created.body.signInPolicy).toBeNull();
  });

  it('refuses a value that is not a level with 400 naming signInPolicy, and changes nothing', async () => {
    const refusedCreate = await appAdmin.call('POST', '/apps', { name: 'Strong', redirectUris: ['https://s.example.com/cb'], signInPolicy: 'strong' });
    expect(refusedCreate.status).toBe(400);
    expect(refusedCreate.body).toMatchObject({ status: 400, code: 'request.invalid', field: 'signInPolicy' });
    expect(refusedCreate.body.detail).toBe('signInPolicy: must be password, mfa or phishing_resistant (or null for the global default)');
    expect((await appAdmin.call('GET', '/apps?q=Strong')).body.items).toEqual([]);

    const app = (await appAdmin.call('POST', '/apps', { name: 'Stable', redirectUris: ['https://stable.example.com/cb'], signInPolicy: 'password' })).body;
    for (const bad of ['MFA', 'default', 3, '', ['mfa']]) {
      const res = await appAdmin.call('PATCH', `/apps/${app.id}`, { signInPolicy: bad });
      expect(res.status).toBe(400);
      expect(res.body.field).toBe('signInPolicy');
    }
    expect((await appAdmin.call('GET', `/apps/${app.id}`)).body).toMatchObject({ signInPolicy: 'password', version: app.version });
  });

  it('is documented in the OpenAPI document, as are the methods routes and their step-up', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as any;
    const patch = doc.paths['/apps/{id}'].patch;
    expect(patch.requestBody.content['application/json'].schema.properties.signInPolicy.anyOf).toEqual([
      { type: 'string', enum: ['password', 'mfa', 'phishing_resistant'] }, { type: 'null' },
    ]);
    expect(doc.paths['/apps/{id}'].get.responses['200'].content['application/json'].schema.required).toContain('signInPolicy');
    expect(Object.keys(doc.paths['/users/{id}/methods'])).toEqual(['get']);
    expect(doc.paths['/users/{id}/methods'].get.responses).toHaveProperty('404');
    for (const path of ['/users/{id}/methods/passkeys/{credentialId}', '/users/{id}/methods/totp', '/users/{id}/methods/recovery-codes']) {
      expect(doc.paths[path].delete.description).toContain('urn:oneid:acr:mfa');
      expect(doc.paths[path].delete.responses).toHaveProperty('404');
    }
    expect(doc.paths['/users/{id}'].patch.description).toContain('When it gives admin roles the user does not hold or sets a password, a person\'s token must carry acr urn:oneid:acr:mfa');
  });
});

describe('GET /admin/api/v1/users/:id/methods', () => {
  it('shows password, passkeys (name, dates), authenticator app and unused recovery codes, and never a secret', async () => {
    const p = await enrolled();
    const res = await userAdmin.call('GET', `/users/${p.id}/methods`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      password: true,
      passkeys: [
        { id: p.passkeys.laptop, name: 'Laptop', createdAt: '2026-11-01T10:00:00.000Z', lastUsedAt: '2026-12-01T10:00:00.000Z' },
        { id: p.passkeys.key, name: 'Passkey', createdAt: '2026-11-02T10:00:00.000Z', lastUsedAt: null },
      ],
      totp: true,
      recoveryCodesRemaining: 2,
    });
    expect(JSON.stringify(res.body)).not.toMatch(/PUBLICKEY|ANOTHERKEY|TOTP-SEED|argon2|cred-laptop/);
    // An auditor reads it too.
    expect((await auditor.call('GET', `/users/${p.id}/methods`)).body).toEqual(res.body);

    const plain = await person();
    expect((await userAdmin.call('GET', `/users/${plain.id}/methods`)).body).toEqual({ password: true, passkeys: [], totp: false, recoveryCodesRemaining: 0 });
  });

  it('answers 404 in the problem format for an unknown person, and 400 for an id that is not one', async () => {
    const res = await userAdmin.call('GET', '/users/00000000-0000-4000-8000-000000000000/methods');
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ status: 404, code: 'user.not_found', title: 'user.not_found' });
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect((await userAdmin.call('GET', '/users/not-a-uuid/methods')).status).toBe(400);
  });
});

describe('DELETE /admin/api/v1/users/:id/methods/...', () => {
  it('removes one passkey and leaves the rest; audited as passkey.removed with the administrator', async () => {
    const p = await enrolled();
    const res = await userAdmin.call('DELETE', `/users/${p.id}/methods/passkeys/${p.passkeys.laptop}`);
    expect(res.status).toBe(204);
    const after = (await userAdmin.call('GET', `/users/${p.id}/methods`)).body;
    expect(after.passkeys.map((k: { id: string }) => k.id)).toEqual([p.passkeys.key]);
    expect(after).toMatchObject({ password: true, totp: true, recoveryCodesRemaining: 2 });

    const [event] = await events(`&targetId=${p.id}&action=passkey.removed`);
    expect(event).toMatchObject({
      action: 'passkey.removed', targetType: 'user', targetId: p.id, actorType: 'admin_client', actorId: userAdmin.clientId,
      changes: { keyId: p.passkeys.laptop, name: 'Laptop' },
    });
  });

  it("answers 404 for a passkey id that is unknown, already removed, or someone else's, and removes nothing", async () => {
    const p = await enrolled();
    const other = await enrolled();
    for (const id of ['00000000-0000-4000-8000-000000000000', other.passkeys.laptop]) {
      const res = await userAdmin.call('DELETE', `/users/${p.id}/methods/passkeys/${id}`);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ status: 404, code: 'passkey.not_found' });
    }
    expect((await userAdmin.call('DELETE', `/users/${p.id}/methods/passkeys/${p.passkeys.key}`)).status).toBe(204);
    expect((await userAdmin.call('DELETE', `/users/${p.id}/methods/passkeys/${p.passkeys.key}`)).status).toBe(404);
    expect((await userAdmin.call('DELETE', `/users/00000000-0000-4000-8000-000000000000/methods/passkeys/${p.passkeys.laptop}`)).body.code).toBe('user.not_found');
    expect((await userAdmin.call('GET', `/users/${other.id}/methods`)).body.passkeys).toHaveLength(2);
    expect(await events(`&targetId=${other.id}&action=passkey.removed`)).toEqual([]);
  });

  it('removes the authenticator app and voids every recovery code; a second time is 404; both audited', async () => {
    const p = await enrolled();
    expect((await userAdmin.call('DELETE', `/users/${p.id}/methods/totp`)).status).toBe(204);
    expect((await userAdmin.call('DELETE', `/users/${p.id}/methods/recovery-codes`)).status).toBe(204);
    expect(await credentialTypes(p.id)).toEqual(['password', 'webauthn', 'webauthn']);
    expect((await userAdmin.call('GET', `/users/${p.id}/methods`)).body).toMatchObject({ totp: false, recoveryCodesRemaining: 0 });

    const again = await userAdmin.call('DELETE', `/users/${p.id}/methods/totp`);
    expect(again.status).toBe(404);
    expect(again.body.code).toBe('totp.not_enrolled');
    expect((await userAdmin.call('DELETE', `/users/${p.id}/methods/recovery-codes`)).body.code).toBe('recovery_codes.none');

    const removed = await events(`&targetId=${p.id}`);
    expect(removed.filter((e) => e.action.endsWith('.removed')).map((e) => [e.action, e.actorId, e.changes])).toEqual([
      ['recovery_codes.removed', userAdmin.clientId, { unusedCodes: 2 }],
      ['totp.removed', userAdmin.clientId, null],
    ]);
  });

  it('counts an authenticator app only once its enrolment is confirmed, and leaves an unfinished one alone', async () => {
    const p = await person();
    await sql.query(`insert into credentials (id, user_id, type, data) values (gen_random_uuid(), $1, 'totp', $2)`,
      [p.id, JSON.stringify({ secret: 'PENDING-SEED', confirmed: false, lastStep: 0 })]);
    expect((await userAdmin.call('GET', `/users/${p.id}/methods`)).body.totp).toBe(false);
    const res = await userAdmin.call('DELETE', `/users/${p.id}/methods/totp`);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('totp.not_enrolled');
    expect(await credentialTypes(p.id)).toEqual(['password', 'totp']);
  });

  it("refuses an auditor (reads only), and a user_admin resetting a super_admin's methods (403), removing nothing", async () => {
    const root = await enrolled(['super_admin']);
    expect((await auditor.call('DELETE', `/users/${root.id}/methods/totp`)).status).toBe(403);
    const refused = await userAdmin.call('DELETE', `/users/${root.id}/methods/passkeys/${root.passkeys.laptop}`);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('user.admin_roles_forbidden');
    expect((await userAdmin.call('DELETE', `/users/${root.id}/methods/totp`)).status).toBe(403);
    expect(await credentialTypes(root.id)).toEqual(['password', 'recovery', 'recovery', 'recovery', 'totp', 'webauthn', 'webauthn']);
    // A super_admin may.
    expect((await superAdmin.call('DELETE', `/users/${root.id}/methods/totp`)).status).toBe(204);
  });
});

describe('step-up for people (RFC 9470)', () => {
  const challenge = (res: { headers: Headers }) => res.headers.get('www-authenticate') ?? '';

  function expectStepUp(res: { status: number; body: any; headers: Headers }) {
    expect(res.status).toBe(401);
    expect(challenge(res)).toMatch(/^Bearer realm="oneid-admin", error="insufficient_user_authentication", error_description="[^"]+", acr_values="urn:oneid:acr:mfa"$/);
    expect(res.body).toMatchObject({ status: 401, code: 'admin.insufficient_user_authentication' });
    expect(res.body.detail).toContain('two factors');
  }

  it("refuses removing a person's methods with a token from a password-only sign-in (no acr, or acr password), and allows it after mfa", async () => {
    const admin = await person(['super_admin']);
    const target = await enrolled();
    const signedIn = await personToken(admin.username, admin.password);
    const password = await withAcr(signedIn, 'urn:oneid:acr:password', db.url, env.ONEID_MASTER_KEY!);
    const unknown = await withAcr(signedIn, 'urn:example:gold', db.url, env.ONEID_MASTER_KEY!);
    for (const token of [signedIn, password, unknown]) {
      expectStepUp(await callAs(token, 'DELETE', `/users/${target.id}/methods/passkeys/${target.passkeys.laptop}`));
      expectStepUp(await callAs(token, 'DELETE', `/users/${target.id}/methods/totp`));
      expectStepUp(await callAs(token, 'DELETE', `/users/${target.id}/methods/recovery-codes`));
      // Reading needs no step-up.
      expect((await callAs(token, 'GET', `/users/${target.id}/methods`)).status).toBe(200);
    }
    expect(await credentialTypes(target.id)).toEqual(['password', 'recovery', 'recovery', 'recovery', 'totp', 'webauthn', 'webauthn']);
    expect(await events(`&targetId=${target.id}&action=totp.removed`)).toEqual([]);
    // Each refusal is recorded as a refused write, naming the step-up it needed.
    const refusals = await events(`&actorId=${admin.id}&action=write.refused`);
    expect(refusals).toHaveLength(9);
    expect(refusals.every((e) => e.changes.code === 'admin.insufficient_user_authentication')).toBe(true);

    const mfa = await withAcr(signedIn, MFA, db.url, env.ONEID_MASTER_KEY!);
    expect((await callAs(mfa, 'DELETE', `/users/${target.id}/methods/totp`)).status).toBe(204);
    const passkey = await withAcr(signedIn, 'urn:oneid:acr:phishing_resistant', db.url, env.ONEID_MASTER_KEY!);
    expect((await callAs(passkey, 'DELETE', `/users/${target.id}/methods/passkeys/${target.passkeys.laptop}`)).status).toBe(204);
    const [event] = await events(`&targetId=${target.id}&action=totp.removed`);
    expect(event).toMatchObject({ actorType: 'user', actorId: admin.id, clientId: portal.client_id });
  });

  it('refuses giving admin roles (making an administrator) and setting a password from a password-only sign-in, changing nothing', async () => {
    const admin = await person(['super_admin']);
    const plain = await person();
    const helpdesk = await person(['user_admin']);
    const token = await personToken(admin.username, admin.password);
    const before = (await superAdmin.call('GET', `/users/${plain.id}`)).body;

    expectStepUp(await callAs(token, 'PATCH', `/users/${plain.id}`, { adminRoles: ['auditor'] }));
    expectStepUp(await callAs(token, 'PATCH', `/users/${helpdesk.id}`, { adminRoles: ['user_admin', 'app_admin'] }));
    expectStepUp(await callAs(token, 'PATCH', `/users/${plain.id}`, { password: 'taken-over-now' }));
    expectStepUp(await callAs(token, 'POST', '/users', { username: 'second.root', adminRoles: ['super_admin'] }));
    expectStepUp(await callAs(token, 'POST', '/apps', { name: 'Bot', grantTypes: ['client_credentials'], adminRoles: ['user_admin'] }));
    const app = (await appAdmin.call('POST', '/apps', { name: 'Quiet bot', grantTypes: ['client_credentials'] })).body;
    expectStepUp(await callAs(token, 'PATCH', `/apps/${app.id}`, { adminRoles: ['auditor'] }));

    expect((await superAdmin.call('GET', `/users/${plain.id}`)).body).toMatchObject({ version: before.version, adminRoles: [] });
    expect((await superAdmin.call('GET', `/users/${helpdesk.id}`)).body.adminRoles).toEqual(['user_admin']);
    expect((await superAdmin.call('GET', '/users?username=second.root')).body.items).toEqual([]);
    expect((await superAdmin.call('GET', '/apps?q=Bot')).body.items).toEqual([]);
    expect((await superAdmin.call('GET', `/apps/${app.id}`)).body.adminRoles).toEqual([]);

    // What gives no admin role and sets no password needs no step-up: a profile change, a user
    // or app without roles, taking a role away, keeping the roles as they are.
    expect((await callAs(token, 'PATCH', `/users/${plain.id}`, { title: 'Engineer' })).status).toBe(200);
    expect((await callAs(token, 'POST', '/users', { username: 'plain.new', adminRoles: [] })).status).toBe(201);
    expect((await callAs(token, 'PATCH', `/users/${helpdesk.id}`, { adminRoles: ['user_admin'], name: 'Help Desk' })).status).toBe(200);
    expect((await callAs(token, 'PATCH', `/users/${helpdesk.id}`, { adminRoles: [] })).status).toBe(200);
    expect((await callAs(token, 'POST', '/apps', { name: 'Plain app', redirectUris: ['https://plain.example.com/cb'] })).status).toBe(201);

    // After a two-factor sign-in, all of it.
    const mfa = await withAcr(token, MFA, db.url, env.ONEID_MASTER_KEY!);
    expect((await callAs(mfa, 'PATCH', `/users/${plain.id}`, { adminRoles: ['auditor'] })).body.adminRoles).toEqual(['auditor']);
    expect((await callAs(mfa, 'PATCH', `/users/${plain.id}`, { password: 'reset-by-admin-1' })).status).toBe(200);
    expect((await callAs(mfa, 'POST', '/users', { username: 'second.root', adminRoles: ['super_admin'] })).status).toBe(201);
    expect((await callAs(mfa, 'PATCH', `/apps/${app.id}`, { adminRoles: ['auditor'] })).body.adminRoles).toEqual(['auditor']);
  });

  it('tells a caller who may not do it at all 403, not to sign in again', async () => {
    const helpdesk = await person(['user_admin']);
    const root = await enrolled(['super_admin']);
    const token = await personToken(helpdesk.username, helpdesk.password);
    const refused = await callAs(token, 'PATCH', `/users/${helpdesk.id}`, { adminRoles: ['user_admin', 'super_admin'] });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('user.admin_roles_forbidden');
    expect((await callAs(token, 'PATCH', `/users/${root.id}`, { password: 'taken-over-now' })).status).toBe(403);
    expect((await callAs(token, 'POST', '/apps', { name: 'Nope', grantTypes: ['client_credentials'], adminRoles: ['auditor'] })).status).toBe(403);
  });

  it('answers a DPoP-bound token with a DPoP challenge naming the acr it needs', async () => {
    const admin = await person(['super_admin']);
    const target = await enrolled();
    const keys = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(keys.publicKey);
    // A person's token bound to a key (as a DPoP client gets it), from a password-only sign-in.
    const token = await withAcr(await personToken(admin.username, admin.password), 'urn:oneid:acr:password', db.url, env.ONEID_MASTER_KEY!,
      { cnf: { jkt: await calculateJwkThumbprint(jwk) } });
    const url = `${server.url}/admin/api/v1/users/${target.id}/methods/totp`;
    const proof = await new SignJWT({ htm: 'DELETE', htu: url, jti: randomUUID(), ath: createHash('sha256').update(token).digest('base64url') })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(keys.privateKey);
    const res = await fetch(url, { method: 'DELETE', headers: { authorization: `DPoP ${token}`, dpop: proof, accept: 'application/json' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^DPoP realm="oneid-admin", error="insufficient_user_authentication", error_description="[^"]+", acr_values="urn:oneid:acr:mfa", algs="ES256/);
    expect((await res.json()).code).toBe('admin.insufficient_user_authentication');
    expect(await credentialTypes(target.id)).toContain('totp');
  });

  it("does not ask apps' own tokens (client_credentials have no acr)", async () => {
    const target = await enrolled();
    expect((await userAdmin.call('DELETE', `/users/${target.id}/methods/recovery-codes`)).status).toBe(204);
    expect((await userAdmin.call('PATCH', `/users/${target.id}`, { adminRoles: ['user_admin'], password: 'set-by-a-bot-1' })).status).toBe(200);
  });
});

describe('SIGNIN_POLICY_DEFAULT', () => {
  it('stops the server at start with a message naming the key and its values', async () => {
    await expect(startServer({ ...env, SIGNIN_POLICY_DEFAULT: 'strong' })).rejects.toThrow(
      /invalid configuration: SIGNIN_POLICY_DEFAULT: must be password, mfa or phishing_resistant/,
    );
  });
});
