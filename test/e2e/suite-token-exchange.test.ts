// Black-box: delegation inside a suite. OneID on a port; app A (openid-client, confidential) signs a
// person in and exchanges their access token (RFC 8693) for a token for app B's API; B's API is a
// small resource server that checks JWTs with jose against OneID's JWKS. Refusals come back with
// the RFCs' errors and issue nothing; introspection follows the suite grant and the person's access.
import http from 'node:http';
import type net from 'node:net';
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';
import pg from 'pg';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { startSignIn } from '../helpers/browser.ts';
import { discover, redeem } from '../helpers/oidc-app.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const B_API = 'https://orders.example.com/api';
const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';

let db: TestDatabase;
let oneIdIssuer: string;
let server: RunningServer;
let env: Record<string, string>;
type App = { id: string; client_id: string; client_secret: string };
let appA: App;
let appB: App;
let appC: App;
let ada: { id: string };
let bob: { id: string };
let suiteId: string;
let grantId: string;
let api: { url: string; close(): Promise<void> };
let ordersAs: { url: string; close(): Promise<void> };

async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}

/** Suites and grants as plain rows until the suites admin API is on main. */
async function setGrant(values: { scopes?: string[]; roles?: string[] | null; minSignInPolicy?: string | null; maxAgeSeconds?: number | null }): Promise<void> {
  await sql('update suite_grants set scopes = $2, roles = $3, min_signin_policy = $4, max_age_seconds = $5 where id = $1', [
    grantId, values.scopes ?? ['orders.read', 'orders.write'], values.roles === undefined ? ['viewer', 'buyer'] : values.roles,
    values.minSignInPolicy ?? null, values.maxAgeSeconds ?? null,
  ]);
}

const rp = (app: App) => discover(server.url, app);

/** The person signs in to A with their password; A redeems the code. */
async function signIn(login: string, password: string, app: App = appA) {
  const config = await rp(app);
  const started = await startSignIn(config, { redirect_uri: REDIRECT, scope: 'openid profile' });
  let page = await started.browser.submit(started.page, '/login', { login, password }, REDIRECT);
  if (!page.url.startsWith(REDIRECT)) page = await started.browser.submit(page, '/confirm', {}, REDIRECT);
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  return { config, tokens: await redeem(config, started, page.url) };
}

/** A token exchange by `app` (openid-client's genericGrantRequest): the token response, or the OAuth error. */
async function exchange(app: App, params: Record<string, string>): Promise<{ ok: client.TokenEndpointResponse } | { error: string; body: Record<string, unknown> }> {
  try {
    return { ok: await client.genericGrantRequest(await rp(app), TOKEN_EXCHANGE, params) };
  } catch (err) {
    const e = err as { error?: string; cause?: unknown };
    const body = (e.cause && typeof e.cause === 'object' ? e.cause : {}) as Record<string, unknown>;
    return { error: String(e.error), body };
  }
}

async function auditOf(action: string): Promise<{ actor_id: string | null; client_id: string | null; target_id: string | null; changes: Record<string, unknown> }[]> {
  return sql("select actor_id, client_id, target_id, changes from audit_events where action = $1 order by occurred_at", [action]);
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const people = await Promise.all([
    runCli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'analytical-engine', '--name', 'Ada'], env),
    runCli(['users', 'create', '--username', 'bob', '--email', 'bob@example.com', '--password', 'difference-engine', '--name', 'Bob'], env),
  ]);
  [ada, bob] = people.map((p) => p.json);
  const apps = await Promise.all(['CRM', 'Orders', 'Wiki'].map((name) => runCli(['apps', 'create', '--name', name, '--redirect-uri', REDIRECT, '--first-party'], env)));
  for (const a of apps) expect(a.code).toBe(0);
  [appA, appB, appC] = apps.map((a) => a.json);
  await sql("update apps set api_audience = $2, access = 'assigned' where id = $1", [appB.id, B_API]);
  for (const key of ['viewer', 'buyer', 'admin']) {
    expect((await runCli(['app-roles', 'create', '--app', appB.id, '--key', key, '--name', key], env)).code).toBe(0);
  }
  for (const app of [appA, appC]) expect((await runCli(['assignments', 'create', '--app', app.id, '--user', ada.id], env)).code).toBe(0);
  expect((await runCli(['assignments', 'create', '--app', appA.id, '--user', bob.id], env)).code).toBe(0);
  expect((await runCli(['assignments', 'create', '--app', appB.id, '--user', ada.id, '--role', 'viewer', '--role', 'admin'], env)).code).toBe(0);
  suiteId = randomUUID();
  grantId = randomUUID();
  await sql('insert into suites (id, name) values ($1, $2)', [suiteId, 'Sales']);
  await sql('insert into suite_apps (suite_id, app_id) values ($1, $2), ($1, $3)', [suiteId, appA.id, appB.id]);
  await sql('insert into suite_grants (id, suite_id, client_app_id, audience_app_id, scopes, roles) values ($1, $2, $3, $4, $5, $6)',
    [grantId, suiteId, appA.id, appB.id, ['orders.read', 'orders.write'], ['viewer', 'buyer']]);
  ordersAs = await startAuthorizationServer();
  await sql("update apps set authorization_server = $2 where id = $1", [appB.id, ordersAs.url]);
  server = await startServer(env);
  api = await startResourceServer(server.url);
  oneIdIssuer = server.url;
}, 180000);

afterAll(async () => {
  await ordersAs?.close();
  await api?.close();
  await server?.stop();
  await db?.drop();
});

afterEach(async () => {
  await setGrant({});
});

/** B's API: accepts a JWT access token for its audience from OneID, and says whom it serves. */
async function startResourceServer(issuer: string): Promise<{ url: string; close(): Promise<void> }> {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const sockets = new Set<net.Socket>();
  const srv = http.createServer((req, res) => {
    void (async () => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      try {
        if (!token) throw new Error('no token');
        const { payload } = await jwtVerify(token, jwks, { issuer, audience: B_API, typ: 'at+jwt' });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ sub: payload.sub, roles: payload.roles, act: payload.act, scope: payload.scope }));
      } catch {
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
        res.end();
      }
    })();
  });
  srv.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); srv.close(() => resolve()); }),
  };
}

/** The app that listens on `handler`'s port, closed with every kept-alive connection. */
async function listen(handler: (req: http.IncomingMessage, body: string) => Promise<{ status: number; body: unknown }>): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      void handler(req, body).then((out) => {
        res.writeHead(out.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(out.body));
      });
    });
  });
  srv.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); srv.close(() => resolve()); }),
  };
}

/**
 * B's own authorization server: accepts an ID-JAG from OneID as a JWT bearer grant (RFC 7523):
 * typ, its own issuer as aud, the client it knows as A, OneID's signature, each jti once.
 */
async function startAuthorizationServer(): Promise<{ url: string; close(): Promise<void> }> {
  const seen = new Set<string>();
  let self = '';
  const started = await listen(async (_req, raw) => {
    const params = new URLSearchParams(raw);
    if (params.get('grant_type') !== JWT_BEARER) return { status: 400, body: { error: 'unsupported_grant_type' } };
    try {
      const { payload, protectedHeader } = await jwtVerify(params.get('assertion') ?? '', createRemoteJWKSet(new URL(`${oneIdIssuer}/jwks`)), {
        issuer: oneIdIssuer, audience: self, typ: 'oauth-id-jag+jwt',
      });
      if (payload.client_id !== appA.client_id) return { status: 400, body: { error: 'invalid_grant', error_description: 'client_id' } };
      if (!payload.jti || seen.has(payload.jti)) return { status: 400, body: { error: 'invalid_grant', error_description: 'replayed' } };
      seen.add(payload.jti);
      return { status: 200, body: { access_token: `orders-${payload.sub}`, token_type: 'Bearer', typ: protectedHeader.typ, sub: payload.sub, scope: payload.scope } };
    } catch (err) {
      return { status: 400, body: { error: 'invalid_grant', error_description: (err as Error).message } };
    }
  });
  self = started.url;
  return started;
}

const callOrders = (token: string) => fetch(`${api.url}/orders`, { headers: { authorization: `Bearer ${token}` } });

describe('discovery', () => {
  it('advertises the token exchange grant and ID-JAG, and still suits openid-client', async () => {
    const meta = (await rp(appA)).serverMetadata() as client.ServerMetadata & Record<string, unknown>;
    expect(meta.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', TOKEN_EXCHANGE]));
    expect(meta.identity_chaining_requested_token_types_supported).toEqual([ID_JAG]);
    expect(meta.claim_types_supported).toEqual(['normal']);
  });
});

describe('ID-JAG for a suite app with its own authorization server', () => {
  it('issues an ID-JAG that B\'s authorization server verifies once', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const res = await exchange(appA, { subject_token: tokens.id_token!, subject_token_type: ID_TOKEN, requested_token_type: ID_JAG, audience: ordersAs.url, resource: B_API, scope: 'orders.read' });
    if (!('ok' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    expect(res.ok).toMatchObject({ issued_token_type: ID_JAG, token_type: 'n_a', expires_in: 300, scope: 'orders.read' });
    expect(res.ok.refresh_token).toBeUndefined();
    expect(decodeProtectedHeader(res.ok.access_token)).toMatchObject({ typ: 'oauth-id-jag+jwt', alg: 'ES256' });
    const claims = decodeJwt(res.ok.access_token);
    expect(claims).toMatchObject({ iss: server.url, sub: ada.id, aud: ordersAs.url, client_id: appA.client_id, resource: B_API, scope: 'orders.read', acr: 'urn:oneid:acr:password' });
    expect(claims.exp! - claims.iat!).toBe(300);
    const redeemAt = () => fetch(`${ordersAs.url}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: JWT_BEARER, assertion: res.ok.access_token }) });
    const first = await redeemAt();
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ sub: ada.id, typ: 'oauth-id-jag+jwt' });
    expect(await (await redeemAt()).json()).toMatchObject({ error: 'invalid_grant', error_description: 'replayed' });
    const [audit] = (await auditOf('token.exchanged')).slice(-1);
    expect(audit!.changes).toMatchObject({ grantId, issued: 'id_jag', aud: ordersAs.url, jti: claims.jti });
  });

  it('names B\'s authorization server only: B\'s API or an unknown issuer is refused, and so is an app outside the suite', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const subject = { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, requested_token_type: ID_JAG };
    expect(await exchange(appA, { ...subject, audience: B_API })).toMatchObject({ error: 'invalid_target' });
    expect(await exchange(appA, { ...subject, audience: 'https://as.elsewhere.example' })).toMatchObject({ error: 'invalid_target' });
    expect(await exchange(appA, { ...subject, audience: ordersAs.url, scope: 'orders.admin' })).toMatchObject({ error: 'invalid_scope' });
    const c = await signIn('ada', 'analytical-engine', appC);
    expect(await exchange(appC, { subject_token: c.tokens.access_token, subject_token_type: ACCESS_TOKEN, requested_token_type: ID_JAG, audience: ordersAs.url })).toMatchObject({ error: 'invalid_target' });
  });
});

describe('token exchange inside a suite', () => {
  it('lets A call B\'s API for the signed-in person, and B sees the person, its roles and act', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const res = await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API });
    if (!('ok' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    const issued = res.ok as client.TokenEndpointResponse & { issued_token_type?: string };
    expect(issued).toMatchObject({ issued_token_type: ACCESS_TOKEN, token_type: 'bearer', expires_in: 300, scope: 'orders.read orders.write' });
    expect(issued.refresh_token).toBeUndefined();
    expect(decodeProtectedHeader(issued.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const claims = decodeJwt(issued.access_token);
    expect(claims).toMatchObject({ sub: ada.id, client_id: appA.client_id, aud: B_API, act: { sub: appA.client_id }, acr: 'urn:oneid:acr:password' });
    expect(claims.exp! - claims.iat!).toBe(300);
    const seen = await callOrders(issued.access_token);
    expect(seen.status).toBe(200);
    // B's roles of Ada (viewer, admin) within the grant's (viewer, buyer).
    expect(await seen.json()).toEqual({ sub: ada.id, roles: ['viewer'], act: { sub: appA.client_id }, scope: 'orders.read orders.write' });
    // Not a token for A's own use elsewhere: OneID's userinfo refuses it.
    expect((await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${issued.access_token}` } })).status).toBe(401);
    const [audit] = (await auditOf('token.exchanged')).slice(-1);
    expect(audit).toMatchObject({ actor_id: ada.id, client_id: appA.client_id, target_id: appB.id });
    expect(audit!.changes).toMatchObject({ grantId, suiteId, sub: ada.id, act: { sub: appA.client_id }, jti: claims.jti, scope: 'orders.read orders.write' });
  });

  it('accepts the ID token A received, B named by its client_id, and fewer scopes', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const res = await exchange(appA, { subject_token: tokens.id_token!, subject_token_type: ID_TOKEN, audience: appB.client_id, scope: 'orders.read' });
    if (!('ok' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    expect(decodeJwt(res.ok.access_token)).toMatchObject({ sub: ada.id, aud: B_API, scope: 'orders.read' });
    expect((await callOrders(res.ok.access_token)).status).toBe(200);
  });

  it('introspects as active for A and for B, then inactive once the grant is deleted', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const res = await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, resource: B_API });
    if (!('ok' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    const token = res.ok.access_token;
    for (const app of [appA, appB]) {
      expect(await client.tokenIntrospection(await rp(app), token)).toMatchObject({
        active: true, sub: ada.id, client_id: appA.client_id, aud: B_API, act: { sub: appA.client_id }, roles: ['viewer'],
      });
    }
    // Another app learns nothing.
    expect(await client.tokenIntrospection(await rp(appC), token)).toEqual({ active: false });
    // Other JWTs keep oidc-provider's rule.
    const other = await fetch(`${server.url}/token/introspection`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${appA.client_id}:${appA.client_secret}`).toString('base64')}` },
      body: new URLSearchParams({ token: tokens.id_token! }),
    });
    expect(await other.json()).toMatchObject({ error: 'unsupported_token_type' });
    const saved = await sql('select * from suite_grants where id = $1', [grantId]);
    await sql('delete from suite_grants where id = $1', [grantId]);
    try {
      for (const app of [appA, appB]) expect(await client.tokenIntrospection(await rp(app), token)).toEqual({ active: false });
      const again = await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API });
      expect(again).toMatchObject({ error: 'invalid_target' });
    } finally {
      const g = saved[0]!;
      await sql('insert into suite_grants (id, suite_id, client_app_id, audience_app_id, scopes, roles) values ($1, $2, $3, $4, $5, $6)', [g.id, g.suite_id, g.client_app_id, g.audience_app_id, g.scopes, g.roles]);
    }
    expect((await client.tokenIntrospection(await rp(appB), token)).active).toBe(true);
  });

  it('ends the exchanged token when the person loses access to B, and when A revokes it', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const res = await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API });
    if (!('ok' in res)) throw new Error(`refused: ${JSON.stringify(res)}`);
    const token = res.ok.access_token;
    // Ada's assignment to B points at nobody for a moment.
    const [assignment] = await sql<{ id: string }>('select id from assignments where app_id = $1 and principal_id = $2', [appB.id, ada.id]);
    await sql('update assignments set principal_id = $2 where id = $1', [assignment!.id, randomUUID()]);
    try {
      expect((await client.tokenIntrospection(await rp(appB), token)).active).toBe(false);
      expect((await client.tokenIntrospection(await rp(appA), token)).active).toBe(false);
    } finally {
      await sql('update assignments set principal_id = $2 where id = $1', [assignment!.id, ada.id]);
    }
    expect((await client.tokenIntrospection(await rp(appB), token)).active).toBe(true);
    await client.tokenRevocation(await rp(appA), token);
    expect((await client.tokenIntrospection(await rp(appB), token)).active).toBe(false);
  });

  it('refuses each case outside the grant with the RFCs\' errors, audited, issuing nothing', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    const before = (await auditOf('token.exchanged')).length;
    const subject = { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN };
    // An app outside the suite, with a token of its own.
    const c = await signIn('ada', 'analytical-engine', appC);
    expect(await exchange(appC, { subject_token: c.tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_target' });
    // A subject token of another app.
    expect(await exchange(appA, { subject_token: c.tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_grant' });
    expect(await exchange(appA, { subject_token: c.tokens.id_token!, subject_token_type: ID_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_grant' });
    // An audience unknown, or outside the suite.
    expect(await exchange(appA, { ...subject, audience: 'https://elsewhere.example/api' })).toMatchObject({ error: 'invalid_target' });
    expect(await exchange(appA, { ...subject, audience: appC.client_id })).toMatchObject({ error: 'invalid_target' });
    // Scopes beyond the grant.
    expect(await exchange(appA, { ...subject, audience: B_API, scope: 'orders.read orders.delete' })).toMatchObject({ error: 'invalid_scope' });
    // Missing or unsupported token types.
    expect(await exchange(appA, { subject_token: tokens.access_token, audience: B_API })).toMatchObject({ error: 'invalid_request' });
    expect(await exchange(appA, { ...subject, subject_token_type: 'urn:ietf:params:oauth:token-type:saml2', audience: B_API })).toMatchObject({ error: 'invalid_request' });
    expect(await exchange(appA, { ...subject, audience: B_API, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' })).toMatchObject({ error: 'invalid_request' });
    // A token that is not one.
    expect(await exchange(appA, { subject_token: 'not-a-token\u0000', subject_token_type: ACCESS_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_grant' });
    expect((await auditOf('token.exchanged')).length).toBe(before);
    const refused = (await auditOf('token.exchange_refused')).map((r) => r.changes.reason);
    expect(refused).toEqual(expect.arrayContaining(['no_grant', 'subject_token_other_app', 'target_unknown', 'scope_beyond_grant', 'subject_token_missing', 'subject_token_type_unsupported']));
  });

  it('refuses a person without access to B', async () => {
    const { tokens } = await signIn('bob', 'difference-engine');
    expect(await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_grant' });
    expect((await auditOf('token.exchange_refused')).slice(-1)[0]).toMatchObject({ actor_id: bob.id, target_id: appB.id, changes: { reason: 'not_entitled' } });
  });

  it('asks for a stronger or more recent sign-in (RFC 9470) when the grant needs it', async () => {
    const { tokens } = await signIn('ada', 'analytical-engine');
    await setGrant({ minSignInPolicy: 'mfa', maxAgeSeconds: 600 });
    const weak = await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API });
    expect(weak).toMatchObject({ error: 'insufficient_user_authentication', body: { acr_values: 'urn:oneid:acr:mfa', max_age: 600 } });
    await setGrant({ maxAgeSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    const old = await exchange(appA, { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API });
    expect(old).toMatchObject({ error: 'insufficient_user_authentication', body: { max_age: 1 } });
  });

  it('refuses a revoked subject token and one whose sign-in ended', async () => {
    const first = await signIn('ada', 'analytical-engine');
    await client.tokenRevocation(first.config, first.tokens.access_token);
    expect(await exchange(appA, { subject_token: first.tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_grant' });
    const second = await signIn('ada', 'analytical-engine');
    // An expired token is gone from the store as a revoked one is.
    await sql("update oidc_payloads set expires_at = now() - interval '1 second' where model = 'AccessToken' and account_id = $1", [ada.id]);
    expect(await exchange(appA, { subject_token: second.tokens.access_token, subject_token_type: ACCESS_TOKEN, audience: B_API })).toMatchObject({ error: 'invalid_grant' });
    const reasons = (await auditOf('token.exchange_refused')).slice(-2).map((r) => r.changes.reason);
    expect(reasons).toEqual(['subject_token_inactive', 'subject_token_inactive']);
  });

  it('is not offered to a public app', async () => {
    const created = await runCli(['apps', 'create', '--name', 'Mobile', '--redirect-uri', REDIRECT, '--public', '--first-party'], env);
    const res = await fetch(`${server.url}/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, client_id: created.json.client_id, subject_token: 'x', subject_token_type: ACCESS_TOKEN, audience: B_API }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'unauthorized_client' });
  });
});

