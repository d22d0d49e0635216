// Black-box: OneID on a port, driven over HTTP the way Okta and Microsoft Entra ID drive
// /scim/v2/Users, plus a real relying party (openid-client) that signs the provisioned people in.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let token: string;
let tokenId: string;
let revokedToken: string;
let scopedToken: string;
let app: { client_id: string; client_secret: string };
let auditor: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [entra, revoked, portal, subsidiary] = await Promise.all([
    runCli(['scim-tokens', 'create', '--name', 'Entra'], env),
    runCli(['scim-tokens', 'create', '--name', 'Old Okta'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
    runCli(['departments', 'create', '--name', 'Subsidiary'], env),
  ]);
  for (const r of [entra, revoked, portal, subsidiary]) expect(r.code).toBe(0);
  ({ token, id: tokenId } = entra.json);
  revokedToken = revoked.json.token;
  app = portal.json;
  const scoped = await runCli(['scim-tokens', 'create', '--name', 'Subsidiary HR', '--department', subsidiary.json.id], env);
  expect(scoped.code).toBe(0);
  scopedToken = scoped.json.token;
  expect((await runCli(['scim-tokens', 'revoke', '--id', revoked.json.id], env)).code).toBe(0);
  server = await startServer(env);
  auditor = await adminClient(server.url, env, ['auditor']);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

interface Reply { status: number; headers: Headers; body: any; text: string }

async function scim(method: string, path: string, opts: { body?: unknown; raw?: string; headers?: Record<string, string>; token?: string | null } = {}): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/scim+json', ...opts.headers };
  const bearer = opts.token === undefined ? token : opts.token;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let payload: string | undefined = opts.raw;
  if (opts.body !== undefined) payload = JSON.stringify(opts.body);
  if (payload !== undefined) headers['content-type'] ??= 'application/scim+json';
  const res = await fetch(`${server.url}/scim/v2${path}`, { method, headers, body: payload });
  const text = await res.text();
  let body: unknown;
  try { body = text ? JSON.parse(text) : undefined; } catch { body = undefined; }
  return { status: res.status, headers: res.headers, body, text };
}

const q = (filter: string) => encodeURIComponent(filter);

function expectScimError(r: Reply, status: number, scimType?: string): void {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toContain('application/scim+json');
  expect(r.body).toMatchObject({ schemas: [ERROR], status: String(status), ...(scimType ? { scimType } : {}) });
  expect(typeof r.body.detail).toBe('string');
}

async function rp() {
  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  client.enableNonRepudiationChecks(config);
  return config;
}

async function signIn(login: string, password: string) {
  const config = await rp();
  const browser = new Browser();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid profile email offline_access', state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const page = await browser.navigate(url.toString(), REDIRECT);
  const done = await browser.submit(page, '/login', { login, password }, REDIRECT);
  expect(done.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state });
  return { config, tokens };
}

describe('authentication', () => {
  it('answers 401 with a SCIM error without a token, with an unknown token and with a revoked one', async () => {
    for (const bearer of [null, 'oneid_scim_not-a-real-token', revokedToken]) {
      const r = await scim('GET', '/Users', { token: bearer });
      expectScimError(r, 401);
      expect(r.headers.get('www-authenticate')).toContain('Bearer');
    }
  });
});

describe('the sequence Okta sends', () => {
  it('looks up, creates, reads, replaces, deactivates (cutting off a refresh token) and refuses a duplicate', async () => {
    const userName = 'okta.user@example.com';
    const lookup = await scim('GET', `/Users?filter=${q(`userName eq "${userName}"`)}&startIndex=1&count=100`);
    expect(lookup.status).toBe(200);
    expect(lookup.body).toMatchObject({ totalResults: 0, Resources: [], startIndex: 1 });

    const resource = {
      schemas: [CORE], userName, active: true, password: 'okta-provisioned-pass',
      name: { givenName: 'Olga', familyName: 'Kta' }, emails: [{ primary: true, value: userName, type: 'work' }], displayName: 'Olga Kta',
      locale: 'en-US', externalId: '00u1okta', groups: [],
    };
    const created = await scim('POST', '/Users', { body: resource });
    expect(created.status).toBe(201);
    expect(created.headers.get('content-type')).toContain('application/scim+json');
    expect(created.headers.get('location')).toBe(created.body.meta.location);
    expect(created.headers.get('etag')).toBe('W/"1"');
    expect(created.body).toMatchObject({ userName, active: true, name: { givenName: 'Olga' }, emails: [{ value: userName, primary: true }] });
    expect(created.body.password).toBeUndefined();
    const id = created.body.id;

    const found = await scim('GET', `/Users?filter=${q(`userName eq "${userName.toUpperCase()}"`)}`);
    expect(found.body.totalResults).toBe(1);
    const read = await scim('GET', `/Users/${id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);

    const replaced = await scim('PUT', `/Users/${id}`, { body: { ...resource, id, password: undefined, name: { givenName: 'Olga', familyName: 'Okta' }, displayName: 'Olga Okta' } });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ name: { familyName: 'Okta' }, displayName: 'Olga Okta', active: true });

    const { config, tokens } = await signIn(userName, 'okta-provisioned-pass');
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.claims()!.family_name).toBe('Okta');

    const deactivated = await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'replace', value: { active: false } }] } });
    expect(deactivated.status).toBe(200);
    expect(deactivated.body.active).toBe(false);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    const duplicate = await scim('POST', '/Users', { body: { ...resource, password: undefined } });
    expectScimError(duplicate, 409, 'uniqueness');
  });
});

describe('the sequence Microsoft Entra ID sends', () => {
  it('matches by externalId and userName, creates with the enterprise extension, patches its way, and projects', async () => {
    const userName = 'Entra_User@contoso.example';
    for (const filter of ['externalId eq "aad-0001"', `userName eq "${userName}"`]) {
      const r = await scim('GET', `/Users?filter=${q(filter)}`);
      expect(r.body.totalResults).toBe(0);
    }
    const created = await scim('POST', '/Users', {
      body: {
        schemas: [CORE, ENT], externalId: 'aad-0001', userName, active: true, displayName: 'Entra User',
        emails: [{ primary: true, type: 'work', value: userName }],
        name: { formatted: 'Entra User', familyName: 'User', givenName: 'Entra' },
        [ENT]: { employeeNumber: '1001', department: 'Contoso Sales' },
      },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body.userName).toBe(userName); // the case it was sent in
    const byExternalId = await scim('GET', `/Users?filter=${q('externalId eq "aad-0001"')}&excludedAttributes=emails,name`);
    expect(byExternalId.body.totalResults).toBe(1);
    expect(byExternalId.body.Resources[0]).toMatchObject({ id, userName });
    expect(byExternalId.body.Resources[0].emails).toBeUndefined();
    expect(byExternalId.body.Resources[0].name).toBeUndefined();

    // Entra sends capitalised ops, "False" as a string and path-less replaces with dotted keys,
    // and no Accept header asking for a body: the answer is 204 with the new ETag.
    const patched = await scim('PATCH', `/Users/${id}`, {
      headers: { accept: '*/*' },
      body: {
        schemas: [PATCH],
        Operations: [
          { op: 'Replace', path: 'emails[type eq "work"].value', value: 'entra.renamed@contoso.example' },
          { op: 'Replace', value: { 'name.givenName': 'Renamed', [`${ENT}:department`]: 'Contoso Marketing' } },
          { op: 'Add', path: 'title', value: 'Marketer' },
          { op: 'Replace', path: 'active', value: 'False' },
        ],
      },
    });
    expect(patched.status).toBe(204);
    expect(patched.text).toBe('');
    expect(patched.headers.get('etag')).toMatch(/^W\/"\d+"$/);
    const after = await scim('GET', `/Users/${id}?attributes=name.givenName,active,title,emails,${ENT}:department`);
    expect(after.headers.get('etag')).toBe(patched.headers.get('etag'));
    expect(after.body).toEqual({
      schemas: [CORE, ENT], id, meta: after.body.meta,
      name: { givenName: 'Renamed' }, active: false, title: 'Marketer',
      emails: [{ value: 'entra.renamed@contoso.example', type: 'work', primary: true }],
      [ENT]: { department: 'Contoso Marketing' },
    });
    const reactivated = await scim('PATCH', `/Users/${id}`, {
      headers: { prefer: 'return=representation', accept: '*/*' },
      body: { schemas: [PATCH], Operations: [{ op: 'Replace', path: 'active', value: 'True' }] },
    });
    expect(reactivated.status).toBe(200);
    expect(reactivated.body.active).toBe(true);

    const deleted = await scim('DELETE', `/Users/${id}`);
    expect(deleted.status).toBe(204);
    expectScimError(await scim('GET', `/Users/${id}`), 404);
    const recreated = await scim('POST', '/Users', { body: { schemas: [CORE], externalId: 'aad-0001', userName } });
    expect(recreated.status).toBe(201);
    expect(recreated.body.id).not.toBe(id);
  });
});

describe('a change made over SCIM', () => {
  it('shows up in the next sign-in\'s ID token and in the audit log with the SCIM client as actor', async () => {
    const created = await scim('POST', '/Users', {
      body: { schemas: [CORE], userName: 'ada.claims', password: 'analytical-engine', name: { givenName: 'Ada', familyName: 'Lovelace' } },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect((await signIn('ada.claims', 'analytical-engine')).tokens.claims()!.given_name).toBe('Ada');

    const patched = await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'name.givenName', value: 'Augusta' }] } });
    expect(patched.status).toBe(200);
    const claims = (await signIn('ada.claims', 'analytical-engine')).tokens.claims()!;
    expect(claims.sub).toBe(id);
    expect(claims.given_name).toBe('Augusta');

    const audit = await auditor.call('GET', `/audit-events?actorType=scim_client&targetId=${id}`);
    expect(audit.status).toBe(200);
    const actions = audit.body.items.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['user.created', 'user.updated']));
    for (const e of audit.body.items) expect(e).toMatchObject({ actorType: 'scim_client', actorId: tokenId, targetId: id });
    const update = audit.body.items.find((e: { action: string }) => e.action === 'user.updated');
    expect(update.changes).toMatchObject({ givenName: 'Augusta' });
    expect(JSON.stringify(audit.body.items)).not.toContain('analytical-engine');
  });
});

describe('ETags', () => {
  it('answers 304 to a matching If-None-Match and 412 to a stale If-Match', async () => {
    const created = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'etag.person' } });
    const id = created.body.id;
    const etag = created.headers.get('etag')!;
    const notModified = await scim('GET', `/Users/${id}`, { headers: { 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.text).toBe('');
    expect(notModified.headers.get('etag')).toBe(etag);
    expect((await scim('GET', `/Users/${id}`, { headers: { 'if-none-match': 'W/"99"' } })).status).toBe(200);

    const ok = await scim('PUT', `/Users/${id}`, { headers: { 'if-match': etag }, body: { schemas: [CORE], userName: 'etag.person', title: 'v2' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('W/"2"');
    expectScimError(await scim('PUT', `/Users/${id}`, { headers: { 'if-match': etag }, body: { schemas: [CORE], userName: 'etag.person', title: 'v3' } }), 412);
    expectScimError(await scim('PATCH', `/Users/${id}`, { headers: { 'if-match': etag }, body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'title', value: 'v3' }] } }), 412);
    expectScimError(await scim('DELETE', `/Users/${id}`, { headers: { 'if-match': etag } }), 412);
    expect((await scim('GET', `/Users/${id}`)).body.title).toBe('v2');
  });
});

describe('bad input', () => {
  it('answers every kind of bad request with a SCIM error, never a 500, and writes nothing', async () => {
    const before = (await scim('GET', '/Users?count=0')).body.totalResults;
    expectScimError(await scim('POST', '/Users', { raw: '{"userName": "broken", "acve": tre' }), 400, 'invalidSyntax');
    expectScimError(await scim('POST', '/Users', { body: { userName: 'no.schemas' } }), 400, 'invalidSyntax');
    expectScimError(await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'bad.ext', [ENT]: { department: 'X' } } }), 400, 'invalidSyntax');
    expectScimError(await scim('POST', '/Users', { body: { schemas: [CORE], userName: ['wrong', 'type'] } }), 400, 'invalidValue');
    expectScimError(await scim('POST', '/Users', { body: { schemas: [CORE], active: 'perhaps', userName: 'bad.active' } }), 400, 'invalidValue');
    expectScimError(await scim('POST', '/Users', { body: { schemas: [CORE], displayName: 'Nobody' } }), 400, 'invalidValue');
    const huge = { schemas: [CORE], userName: 'huge', nickName: 'x'.repeat(1024 * 1024 + 10) };
    expectScimError(await scim('POST', '/Users', { body: huge }), 413);
    for (const filter of ['userName eq "a" or 1=1', 'userName eq "a"); drop table users; --', `${'('.repeat(500)}userName pr${')'.repeat(500)}`, 'x'.repeat(5000), 'emails[type eq "work"].value eq "a"']) {
      expectScimError(await scim('GET', `/Users?filter=${q(filter)}`), 400, 'invalidFilter');
    }
    expectScimError(await scim('GET', '/Users?sortBy=password'), 400, 'invalidValue');
    expectScimError(await scim('GET', '/Users/not-a-uuid'), 404);
    expectScimError(await scim('GET', '/Users/7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f'), 404);
    expect((await scim('GET', '/Users?count=0')).body.totalResults).toBe(before);

    const created = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'plain.json' }, headers: { 'content-type': 'application/json' } });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expectScimError(await scim('PUT', `/Users/${id}`, { body: { schemas: [CORE], id: '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f', userName: 'plain.json' } }), 400, 'mutability');
    expectScimError(await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'id', value: 'x' }] } }), 400, 'mutability');
    expectScimError(await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'nosuch.attr', value: 'x' }] } }), 400, 'invalidPath');
    expectScimError(await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'remove' }] } }), 400, 'noTarget');
    expect((await scim('GET', `/Users/${id}`)).headers.get('etag')).toBe('W/"1"');
  });
});

describe('lists', () => {
  it('serves the query string, a trailing slash and POST /.search alike', async () => {
    for (const n of [1, 2, 3]) expect((await scim('POST', '/Users', { body: { schemas: [CORE], userName: `lister.${n}`, title: 'lister' } })).status).toBe(201);
    const viaQuery = await scim('GET', `/Users/?filter=${q('title eq "lister"')}&sortBy=userName&sortOrder=descending&startIndex=2&count=1&attributes=userName`);
    expect(viaQuery.status).toBe(200);
    expect(viaQuery.body).toMatchObject({ totalResults: 3, itemsPerPage: 1, startIndex: 2 });
    expect(viaQuery.body.Resources[0].userName).toBe('lister.2');
    const viaSearch = await scim('POST', '/Users/.search', {
      body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: 'title eq "lister"', sortBy: 'userName', sortOrder: 'descending', startIndex: 2, count: 1, attributes: ['userName'] },
    });
    expect(viaSearch.status).toBe(200);
    expect(viaSearch.body).toEqual(viaQuery.body);
  });
});

describe('a department-scoped token', () => {
  it('sees only people in its subtree and provisions into it', async () => {
    const outside = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'outside.scope', title: 'scoped-test' } });
    const inside = await scim('POST', '/Users', { token: scopedToken, body: { schemas: [CORE], userName: 'inside.scope', title: 'scoped-test' } });
    expect(inside.status).toBe(201);
    expect(inside.body[ENT]).toEqual({ department: 'Subsidiary' });
    const seen = await scim('GET', `/Users?filter=${q('title eq "scoped-test"')}`, { token: scopedToken });
    expect(seen.body.totalResults).toBe(1);
    expect(seen.body.Resources[0].id).toBe(inside.body.id);
    expectScimError(await scim('GET', `/Users/${outside.body.id}`, { token: scopedToken }), 404);
    expectScimError(await scim('DELETE', `/Users/${outside.body.id}`, { token: scopedToken }), 404);
    expect((await scim('GET', `/Users/${outside.body.id}`)).status).toBe(200);
    expect((await scim('GET', `/Users?filter=${q('title eq "scoped-test"')}`)).body.totalResults).toBe(2);
  });

  it("does not show a manager outside its subtree, keeps that manager on writes that do not name one, and cannot set one", async () => {
    const boss = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'hidden.boss', displayName: 'Hidden Boss' } });
    const peer = await scim('POST', '/Users', { token: scopedToken, body: { schemas: [CORE], userName: 'inside.peer' } });
    const report = await scim('POST', '/Users', {
      body: { schemas: [CORE, ENT], userName: 'inside.report', title: 'engineer', [ENT]: { department: 'Subsidiary', manager: { value: boss.body.id } } },
    });
    expect(report.status).toBe(201);
    expect(report.body[ENT].manager.value).toBe(boss.body.id);
    const id = report.body.id as string;
    const managerOf = async () => (await scim('GET', `/Users/${id}`)).body[ENT]?.manager?.value;

    // Reads: neither the id nor the name of the manager, in a GET or a list.
    const got = await scim('GET', `/Users/${id}`, { token: scopedToken });
    expect(got.status).toBe(200);
    expect(got.body[ENT]).toEqual({ department: 'Subsidiary' });
    const listed = await scim('GET', `/Users?filter=${q('userName eq "inside.report"')}`, { token: scopedToken });
    for (const text of [got.text, listed.text]) {
      expect(text).not.toContain(boss.body.id);
      expect(text).not.toContain('Hidden Boss');
    }
    // Nor can a filter tell who the manager is; the unscoped token can.
    for (const filter of [`${ENT}:manager.value eq "${boss.body.id}"`, `${ENT}:manager.displayName eq "Hidden Boss"`]) {
      expect((await scim('GET', `/Users?filter=${q(filter)}`, { token: scopedToken })).body.totalResults).toBe(0);
      expect((await scim('GET', `/Users?filter=${q(filter)}`)).body.Resources.map((r: { id: string }) => r.id)).toEqual([id]);
    }

    // A PATCH and a PUT that do not touch the manager succeed and keep it.
    const patched = await scim('PATCH', `/Users/${id}`, { token: scopedToken, body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'title', value: 'lead' }] } });
    expect(patched.status).toBe(200);
    expect(patched.body.title).toBe('lead');
    expect(patched.text).not.toContain(boss.body.id);
    const put = await scim('PUT', `/Users/${id}`, { token: scopedToken, body: { ...got.body, title: 'principal' } });
    expect(put.status).toBe(200);
    expect(await managerOf()).toBe(boss.body.id);

    // Setting a manager outside the subtree stays refused; one inside replaces the hidden one.
    expectScimError(await scim('PATCH', `/Users/${id}`, {
      token: scopedToken, body: { schemas: [PATCH], Operations: [{ op: 'replace', path: `${ENT}:manager`, value: { value: boss.body.id } }] },
    }), 400, 'invalidValue');
    expect(await managerOf()).toBe(boss.body.id);
    const replaced = await scim('PATCH', `/Users/${id}`, {
      token: scopedToken, body: { schemas: [PATCH], Operations: [{ op: 'replace', path: `${ENT}:manager`, value: { value: peer.body.id } }] },
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body[ENT].manager).toMatchObject({ value: peer.body.id, displayName: 'inside.peer' });
    expect(await managerOf()).toBe(peer.body.id);
  });
});

describe('name.formatted', () => {
  it('follows the name parts through PATCH, PUT and the admin API, unless set explicitly in the same write', async () => {
    const userAdmin = await adminClient(server.url, env, ['user_admin']);
    const created = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'formatted.ada', name: { givenName: 'Ada', familyName: 'Lovelace' } } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const formatted = async () => (await scim('GET', `/Users/${id}`)).body.name.formatted;
    const patch = (...Operations: unknown[]) => scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations } });
    expect(created.body.name.formatted).toBe('Ada Lovelace');

    // A part changes: formatted is derived again, in the response, in a GET and for filters.
    const renamed = await patch({ op: 'replace', path: 'name.givenName', value: 'Augusta' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.name.formatted).toBe('Augusta Lovelace');
    await patch({ op: 'add', value: { name: { middleName: 'Ada', honorificPrefix: 'Lady' } } });
    expect(await formatted()).toBe('Lady Augusta Ada Lovelace');
    const byFormatted = await scim('GET', `/Users?filter=${q('name.formatted eq "lady augusta ada lovelace"')}`);
    expect(byFormatted.body.Resources.map((r: { id: string }) => r.id)).toEqual([id]);

    // Set explicitly: kept through writes that change no part, an echoing PUT included.
    await patch({ op: 'replace', path: 'name.formatted', value: 'The Countess of Lovelace' });
    expect(await formatted()).toBe('The Countess of Lovelace');
    await patch({ op: 'replace', path: 'title', value: 'Analyst' });
    const current = (await scim('GET', `/Users/${id}`)).body;
    expect((await scim('PUT', `/Users/${id}`, { body: { ...current, title: 'Mathematician' } })).status).toBe(200);
    expect(await formatted()).toBe('The Countess of Lovelace');
    expect((await scim('GET', `/Users?filter=${q('name.formatted eq "The Countess of Lovelace"')}`)).body.totalResults).toBe(1);

    // A later write that changes a part without setting formatted derives it again...
    await patch({ op: 'replace', path: 'name.familyName', value: 'King' });
    expect(await formatted()).toBe('Lady Augusta Ada King');
    // ...unless it sets formatted too.
    await patch({ op: 'replace', path: 'name.familyName', value: 'Byron' }, { op: 'replace', path: 'name.formatted', value: 'Ada Byron' });
    expect(await formatted()).toBe('Ada Byron');

    // A PUT that changes a part and echoes the formatted it read: derived.
    const echoed = (await scim('GET', `/Users/${id}`)).body;
    const put = await scim('PUT', `/Users/${id}`, { body: { ...echoed, name: { ...echoed.name, givenName: 'Augusta', familyName: 'King' } } });
    expect(put.status).toBe(200);
    expect(put.body.name.formatted).toBe('Lady Augusta Ada King');

    // The admin API changes a part: SCIM shows the derived formatted.
    await patch({ op: 'replace', path: 'name.formatted', value: 'Countess' });
    expect((await userAdmin.call('PATCH', `/users/${id}`, { givenName: 'Ada' })).status).toBe(200);
    expect(await formatted()).toBe('Lady Ada Ada King');
    expect((await scim('GET', `/Users?filter=${q('name.formatted eq "Lady Ada Ada King"')}`)).body.totalResults).toBe(1);
  });
});

describe('PATCH /Users/{id} with Prefer', () => {
  it('answers 204 for return=minimal even when the client accepts JSON, and 200 with the user for return=representation', async () => {
    const created = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'prefer.users' } });
    const body = (value: string) => ({ schemas: [PATCH], Operations: [{ op: 'replace', path: 'title', value }] });
    const minimal = await scim('PATCH', `/Users/${created.body.id}`, { headers: { prefer: 'return=minimal' }, body: body('a') });
    expect(minimal.status).toBe(204);
    expect(minimal.text).toBe('');
    const full = await scim('PATCH', `/Users/${created.body.id}`, { headers: { prefer: 'handling=lenient, return="representation"', accept: '*/*' }, body: body('b') });
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({ id: created.body.id, title: 'b' });
  });
});

describe('sign-in names: usernames and sign-in emails are one namespace', () => {
  it('refuses a userName that is another person\'s email with 409 uniqueness, by every write path and token', async () => {
    const owner = await scim('POST', '/Users', {
      body: { schemas: [CORE], userName: 'ns.owner', password: 'owner-password-1', emails: [{ value: 'NS.Owner@Example.com', primary: true }] },
    });
    expect(owner.status).toBe(201);
    const other = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'ns.other' } });
    expect(other.status).toBe(201);
    const id = other.body.id;
    for (const userName of ['ns.owner@example.com', 'NS.OWNER@EXAMPLE.COM', 'ｎｓ.ｏｗｎｅｒ@example.com']) {
      expectScimError(await scim('POST', '/Users', { body: { schemas: [CORE], userName, password: 'thief-password-1' } }), 409, 'uniqueness');
      expectScimError(await scim('POST', '/Users', { token: scopedToken, body: { schemas: [CORE], userName, password: 'thief-password-1' } }), 409, 'uniqueness');
      expectScimError(await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'userName', value: userName }] } }), 409, 'uniqueness');
      expectScimError(await scim('PUT', `/Users/${id}`, { body: { schemas: [CORE], userName } }), 409, 'uniqueness');
    }
    const bulk = await scim('POST', '/Bulk', {
      body: {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
        Operations: [
          { method: 'POST', path: '/Users', bulkId: 'thief', data: { schemas: [CORE], userName: 'ns.owner@example.com' } },
          { method: 'PATCH', path: `/Users/${id}`, data: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'userName', value: 'ns.owner@example.com' }] } },
        ],
      },
    });
    expect(bulk.status).toBe(200);
    expect(bulk.body.Operations.map((o: { status: string; response?: { scimType?: string } }) => [o.status, o.response?.scimType])).toEqual([['409', 'uniqueness'], ['409', 'uniqueness']]);
    expect((await scim('GET', `/Users/${id}`)).body.userName).toBe('ns.other');
    expect((await scim('GET', `/Users?filter=${q('userName eq "ns.owner@example.com"')}`)).body.totalResults).toBe(0);
    // The owner still signs in with their email.
    expect((await signIn('ns.owner@example.com', 'owner-password-1')).tokens.claims()!.sub).toBe(owner.body.id);
  });

  it('gives the sign-in email only to an address that is not another person\'s username', async () => {
    const holder = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'ns.holder@example.com', password: 'holder-password-1' } });
    expect(holder.status).toBe(201);
    const lister = await scim('POST', '/Users', {
      body: { schemas: [CORE], userName: 'ns.lister', password: 'lister-password-1', emails: [{ value: 'ns.holder@example.com', primary: true }] },
    });
    expect(lister.status).toBe(201);
    expect(lister.body.emails).toEqual([{ value: 'ns.holder@example.com', primary: true }]);
    // Listed, but not the address the lister signs in with (or the one in their ID token).
    expect((await auditor.call('GET', `/users/${lister.body.id}`)).body.email).toBeNull();
    expect((await signIn('ns.holder@example.com', 'holder-password-1')).tokens.claims()!.sub).toBe(holder.body.id);
  });
});

describe('one folding rule for userName', () => {
  it('finds ALİCE and alice as two people, and ａｌｉｃｅ as alice, in filters and at sign-in alike', async () => {
    const alice = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'alice.fold', password: 'alice-password-1', emails: [{ value: 'alice@fold.example', primary: true }] } });
    const dotted = await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'ALİCE.fold', password: 'dotted-password-1' } });
    expect([alice.status, dotted.status]).toEqual([201, 201]);
    expect(dotted.body.userName).toBe('ALİCE.fold');
    const ids = async (filter: string): Promise<string[]> => {
      const res = await scim('GET', `/Users?filter=${q(filter)}`);
      expect(res.status).toBe(200);
      return res.body.Resources.map((r: { id: string }) => r.id);
    };
    expect(await ids('userName eq "ALİCE.fold"')).toEqual([dotted.body.id]);
    expect(await ids('userName eq "alice.fold"')).toEqual([alice.body.id]);
    expect(await ids('userName eq "ａｌｉｃｅ.fold"')).toEqual([alice.body.id]);
    expect(await ids('userName sw "ALİCE."')).toEqual([dotted.body.id]);
    expect(await ids('emails.value eq "ＡＬＩＣＥ@FOLD.example"')).toEqual([alice.body.id]);
    expect(await ids('emails co "ＡＬＩＣＥ@"')).toEqual([alice.body.id]);
    expectScimError(await scim('POST', '/Users', { body: { schemas: [CORE], userName: 'ＡＬＩＣＥ.fold' } }), 409, 'uniqueness');
    expect((await signIn('ALİCE.fold', 'dotted-password-1')).tokens.claims()!.sub).toBe(dotted.body.id);
    expect((await signIn('ａｌｉｃｅ.fold', 'alice-password-1')).tokens.claims()!.sub).toBe(alice.body.id);
  });
});

describe('email_verified after an email change', () => {
  it('is false in the ID token and the admin API once SCIM changes the sign-in email', async () => {
    const admin = await adminClient(server.url, env, ['user_admin']);
    const created = await admin.call('POST', '/users', { username: 'verified.scim', email: 'verified.scim@example.com', emailVerified: true, password: 'verified-password-1' });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const first = (await signIn('verified.scim', 'verified-password-1')).tokens.claims()!;
    expect(first).toMatchObject({ email: 'verified.scim@example.com', email_verified: true });

    // A change of something else keeps the claim.
    expect((await scim('PATCH', `/Users/${id}`, { body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'title', value: 'Chemist' }] } })).status).toBe(200);
    expect((await admin.call('GET', `/users/${id}`)).body.emailVerified).toBe(true);

    const patched = await scim('PATCH', `/Users/${id}`, {
      body: { schemas: [PATCH], Operations: [{ op: 'replace', path: 'emails', value: [{ value: 'attacker.chosen@example.com', primary: true }] }] },
    });
    expect(patched.status).toBe(200);
    expect((await admin.call('GET', `/users/${id}`)).body).toMatchObject({ email: 'attacker.chosen@example.com', emailVerified: false });
    expect((await signIn('verified.scim', 'verified-password-1')).tokens.claims()!).toMatchObject({ email: 'attacker.chosen@example.com', email_verified: false });

    // PUT too, after an administrator vouched for the address again.
    expect((await admin.call('PATCH', `/users/${id}`, { emailVerified: true })).body.emailVerified).toBe(true);
    const put = await scim('PUT', `/Users/${id}`, { body: { schemas: [CORE], userName: 'verified.scim', emails: [{ value: 'another@example.com', primary: true }] } });
    expect(put.status).toBe(200);
    expect((await admin.call('GET', `/users/${id}`)).body).toMatchObject({ email: 'another@example.com', emailVerified: false });
  });
});
