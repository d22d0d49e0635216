// Black-box: what the OpenID Basic OP plan and real relying parties check, against OneID on a port:
// first-party offline_access, token endpoint errors, select_account, sid, POST at the
// authorization and end-session endpoints (https issuer), PKCE for every app, and the consent
// page for the admin API.
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, startSignIn as start, type Started } from '../helpers/browser.ts';
import { discover, redeem } from '../helpers/oidc-app.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const POST_LOGOUT = 'http://127.0.0.1:9/signed-out';
const SCOPE = 'openid profile email groups offline_access';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
type App = { id: string; client_id: string; client_secret: string };
let firstParty: App;
let thirdParty: App;
let legacy: App;
let service: App;

const basic = (app: App, secret = app.client_secret) => `Basic ${Buffer.from(`${app.client_id}:${secret}`).toString('base64')}`;

const rp = (app: App) => discover(server.url, app);

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  expect((await runCli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'analytical-engine', '--name', 'Ada Lovelace'], env)).code).toBe(0);
  expect((await runCli(['users', 'create', '--username', 'grace', '--email', 'grace@example.com', '--password', 'cobol-compiler-1959', '--name', 'Grace Hopper'], env)).code).toBe(0);
  const apps = await Promise.all([
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT, '--first-party'], env),
    runCli(['apps', 'create', '--name', 'Wiki', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT], env),
    runCli(['apps', 'create', '--name', 'Legacy', '--redirect-uri', REDIRECT, '--first-party', '--allow-no-pkce'], env),
    runCli(['apps', 'create', '--name', 'Batch', '--grant-types', 'client_credentials'], env),
  ]);
  for (const a of apps) expect(a.code).toBe(0);
  [firstParty, thirdParty, legacy, service] = apps.map((a) => a.json);
  server = await startServer(env);
  admin = await adminClient(server.url, env, ['app_admin']);
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** This file's authorization request (REDIRECT, SCOPE) with `extra` parameters, in `browser`. */
const startSignIn = (config: client.Configuration, extra: Record<string, string> = {}, browser?: Browser): Promise<Started> =>
  start(config, { redirect_uri: REDIRECT, scope: SCOPE, ...extra }, browser);

async function signIn(config: client.Configuration, extra: Record<string, string> = {}, consent = false) {
  const started = await startSignIn(config, extra);
  let page = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
  if (consent) page = await started.browser.submit(page, '/confirm', {}, REDIRECT);
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  return { ...started, tokens: await redeem(config, started, page.url) };
}

/** A refresh the way authlib makes it: grant_type=refresh_token with the scope it first asked for. */
const refreshWithScope = (config: client.Configuration, refreshToken: string, scope = SCOPE) =>
  client.refreshTokenGrant(config, refreshToken, { scope });

describe('offline_access for first-party apps (the authlib finding)', () => {
  it.each([['without prompt=consent', {}], ['with prompt=consent', { prompt: 'consent' }]])('is granted %s, and a refresh re-sending the scope works', async (_label, extra) => {
    const config = await rp(firstParty);
    const { tokens } = await signIn(config, extra);
    expect(tokens.scope?.split(' ')).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'groups', 'offline_access']));
    expect(tokens.refresh_token).toBeTruthy();
    const refreshed = await refreshWithScope(config, tokens.refresh_token!);
    expect(refreshed.scope?.split(' ')).toContain('offline_access');
    expect(refreshed.refresh_token).toBeTruthy();
  });

  it('is granted through a pushed authorization request (PAR) too', async () => {
    const config = await rp(firstParty);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: REDIRECT, scope: SCOPE, state, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const browser = new Browser();
    const page = await browser.navigate(url.toString(), REDIRECT);
    const done = await browser.submit(page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state });
    expect(tokens.scope?.split(' ')).toContain('offline_access');
    expect((await refreshWithScope(config, tokens.refresh_token!)).access_token).toBeTruthy();
  });

  it('keeps the refresh token working after the person signs out at OneID', async () => {
    const config = await rp(firstParty);
    const { tokens, browser } = await signIn(config);
    const logoutUrl = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
    const confirm = await browser.navigate(logoutUrl.toString(), POST_LOGOUT);
    const out = await browser.submit(confirm, '/session/end/confirm', { logout: 'yes' }, POST_LOGOUT);
    expect(out.url).toBe(`${POST_LOGOUT}?state=bye`);
    // The browser session is gone ...
    const silent = await startSignIn(config, { prompt: 'none' }, browser);
    expect(new URL(silent.page.url).searchParams.get('error')).toBe('login_required');
    // ... and the offline refresh token lives on, with the scope the app asked for.
    const refreshed = await refreshWithScope(config, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
    expect(refreshed.claims()!.sub).toBe(tokens.claims()!.sub);
  });

  it('adds offline_access to an existing sign-in silently (prompt=none)', async () => {
    const config = await rp(firstParty);
    const first = await startSignIn(config, { scope: 'openid profile' });
    const page = await first.browser.submit(first.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    expect((await redeem(config, first, page.url)).scope?.split(' ')).not.toContain('offline_access');
    const silent = await startSignIn(config, { prompt: 'none' }, first.browser);
    const tokens = await redeem(config, silent, silent.page.url);
    expect(tokens.scope?.split(' ')).toContain('offline_access');
    expect((await refreshWithScope(config, tokens.refresh_token!)).access_token).toBeTruthy();
  });

  it('leaves third-party apps to consent: offline_access only with prompt=consent', async () => {
    const config = await rp(thirdParty);
    const without = await signIn(config, {}, true);
    expect(without.tokens.scope?.split(' ')).not.toContain('offline_access');
    const withConsent = await signIn(config, { prompt: 'consent' }, true);
    expect(withConsent.tokens.scope?.split(' ')).toContain('offline_access');
    expect((await refreshWithScope(config, withConsent.tokens.refresh_token!)).access_token).toBeTruthy();
  });
});

describe('token endpoint errors (RFC 6749 section 5.2)', () => {
  const token = (body: Record<string, string>, headers: Record<string, string> = {}) => fetch(`${server.url}/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(body),
  });

  it('answers a request without client authentication with invalid_client (400, nothing attempted)', async () => {
    const bodies: Record<string, string>[] = [{ grant_type: 'client_credentials' }, { grant_type: 'refresh_token', refresh_token: 'x' }];
    for (const body of bodies) {
      const res = await token(body);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_client' });
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
    // Introspection and revocation authenticate the client the same way.
    for (const path of ['/token/introspection', '/token/revocation']) {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_client' });
    }
    // A confidential app's client_id alone is no authentication either.
    const idOnly = await token({ grant_type: 'client_credentials', client_id: service.client_id });
    expect(await idOnly.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('answers failed Basic authentication with 401 invalid_client and a Basic challenge', async () => {
    const res = await token({ grant_type: 'client_credentials' }, { authorization: basic(service, 'not-the-secret') });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
  });

  it('answers a grant type the app is not registered for with unauthorized_client', async () => {
    const cases: [App, Record<string, string>][] = [
      [firstParty, { grant_type: 'client_credentials' }],
      [service, { grant_type: 'refresh_token', refresh_token: 'x' }],
    ];
    for (const [app, body] of cases) {
      const res = await token(body, { authorization: basic(app) });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'unauthorized_client' });
    }
  });

  it('sends Pragma: no-cache beside Cache-Control: no-store with tokens', async () => {
    const res = await token({ grant_type: 'client_credentials' }, { authorization: basic(service) });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('pragma')).toBe('no-cache');
  });
});

describe('sid', () => {
  it('is advertised in claims_supported and issued in ID tokens, at sign-in and at refresh', async () => {
    const config = await rp(firstParty);
    expect(config.serverMetadata().claims_supported).toContain('sid');
    const { tokens } = await signIn(config);
    const sid = tokens.claims()!.sid;
    expect(typeof sid).toBe('string');
    const refreshed = await refreshWithScope(config, tokens.refresh_token!);
    expect(refreshed.claims()!.sid).toBe(sid);
  });
});

describe('prompt=select_account', () => {
  it('shows the sign-in page when nobody is signed in, and the sign-in answers it', async () => {
    const config = await rp(firstParty);
    const started = await startSignIn(config, { prompt: 'select_account' });
    expect(started.page.html).toContain('name="password"');
    const done = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    expect(new URL(done.url).searchParams.has('code')).toBe(true);
  });

  it('offers to continue as the signed-in person, in English and Chinese', async () => {
    const config = await rp(firstParty);
    const { browser } = await signIn(config);
    const chooser = await startSignIn(config, { prompt: 'select_account' }, browser);
    expect(chooser.page.status).toBe(200);
    expect(chooser.page.html).toContain('Choose an account');
    expect(chooser.page.html).toContain('Continue as ada');
    expect(chooser.page.html).not.toContain('name="password"');
    const done = await browser.submit(chooser.page, '/select', {}, REDIRECT);
    const tokens = await redeem(config, chooser, done.url);
    expect(tokens.claims()!.preferred_username).toBe('ada');

    browser.acceptLanguage = 'zh-CN';
    const zh = await startSignIn(config, { prompt: 'select_account' }, browser);
    expect(zh.page.html).toContain('选择帐户');
    expect(zh.page.html).toContain('以 ada 继续');
    expect(zh.page.html).toContain('使用其他帐户');
  });

  it('lets the person sign in as another account instead', async () => {
    const config = await rp(firstParty);
    const { browser } = await signIn(config);
    const chooser = await startSignIn(config, { prompt: 'select_account' }, browser);
    const another = /href="([^"]*another=1)"/.exec(chooser.page.html)![1]!;
    const login = await browser.navigate(new URL(another.replace(/&amp;/g, '&'), chooser.page.url).toString(), REDIRECT);
    expect(login.html).toContain('name="password"');
    let page = await browser.submit(login, '/login', { login: 'grace', password: 'cobol-compiler-1959' }, REDIRECT);
    // oidc-provider ends the first person's session on the way (an auto-submitted form).
    for (let i = 0; i < 3 && !page.url.startsWith(REDIRECT); i += 1) page = await browser.submit(page, '/session/end/confirm', {}, REDIRECT);
    const tokens = await redeem(config, chooser, page.url);
    expect(tokens.claims()!.preferred_username).toBe('grace');
  });
});

describe('HTTP methods on a plain-http issuer', () => {
  it('keeps the authorization and end-session endpoints GET-only (POST needs https, see the https issuer below)', async () => {
    for (const path of ['/auth', '/session/end']) {
      const res = await fetch(`${server.url}${path}`, {
        method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=${firstParty.client_id}`,
      });
      expect([404, 405]).toContain(res.status);
    }
  });
});

describe('PKCE for every app (RFC 9700)', () => {
  const authorize = async (app: App, pkce: boolean) => {
    const config = await rp(app);
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid', state: 'st-1',
      ...(pkce ? { code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' } : {}),
    });
    const browser = new Browser();
    const page = await browser.navigate(url.toString(), REDIRECT);
    return { config, browser, page, verifier };
  };

  it('refuses a confidential app\'s authorization request without PKCE with invalid_request', async () => {
    for (const app of [firstParty, thirdParty]) {
      const { page } = await authorize(app, false);
      const callback = new URL(page.url);
      expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
      expect(callback.searchParams.get('error')).toBe('invalid_request');
      expect(callback.searchParams.get('error_description')).toMatch(/PKCE/);
      expect(callback.searchParams.get('state')).toBe('st-1');
    }
  });

  it('lets an app an administrator let off PKCE sign in without it', async () => {
    const { config, browser, page } = await authorize(legacy, false);
    expect(page.html).toContain('name="password"');
    const done = await browser.submit(page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.url), { expectedState: 'st-1' });
    expect(tokens.access_token).toBeTruthy();
  });

  it('is switched per app in the admin API (audited), at once, and never for a public app', async () => {
    const shown = await admin.call('GET', `/apps/${legacy.id}`);
    expect(shown.body).toMatchObject({ allowNoPkce: true });
    expect((await admin.call('GET', `/apps/${firstParty.id}`)).body).toMatchObject({ allowNoPkce: false });

    const off = await admin.call('PATCH', `/apps/${legacy.id}`, { allowNoPkce: false });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ allowNoPkce: false });
    expect(new URL((await authorize(legacy, false)).page.url).searchParams.get('error')).toBe('invalid_request');
    const auditor = await adminClient(server.url, env, ['auditor']);
    const audit = await auditor.call('GET', `/audit-events?targetId=${legacy.id}&action=app.updated`);
    expect(audit.status).toBe(200);
    expect(JSON.stringify(audit.body)).toContain('allowNoPkce');
    expect((await admin.call('PATCH', `/apps/${legacy.id}`, { allowNoPkce: true })).status).toBe(200);

    const publicApp = await admin.call('POST', '/apps', { name: 'Mobile', redirectUris: [REDIRECT], public: true, allowNoPkce: true });
    expect(publicApp.status).toBe(400);
    expect(JSON.stringify(publicApp.body)).toContain('allowNoPkce');
  });

  it('is described in the OpenAPI document', async () => {
    const res = await fetch(`${server.url}/admin/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('allowNoPkce');
  });
});

describe('consent for the admin API', () => {
  it('says plainly, in English and Chinese, that the app asks for admin powers', async () => {
    const config = await rp(thirdParty);
    const api = `${server.url}/api`;
    for (const [lang, text] of [['en', 'OneID admin API'], ['zh-CN', 'OneID 管理 API']] as const) {
      const browser = new Browser();
      browser.acceptLanguage = lang;
      const started = await startSignIn(config, { scope: 'openid api', resource: api }, browser);
      const consent = await browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
      expect(consent.html).toContain(text);
      expect(consent.html).toContain('id="admin-api"');
    }
    // Without the admin API, no such warning.
    const plain = await startSignIn(config, { scope: 'openid profile' });
    const consent = await plain.browser.submit(plain.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    expect(consent.html).toContain('Allow access');
    expect(consent.html).not.toContain('id="admin-api"');
  });
});

describe('an https issuer (behind a TLS-terminating proxy)', () => {
  let https: RunningServer;
  let origin: string;

  beforeAll(async () => {
    const port = await freePort();
    https = await startServer({ ...env, PORT: String(port), ISSUER: `https://localhost:${port}`, TRUST_PROXY: 'true' });
    origin = `http://127.0.0.1:${port}`;
  }, 120000);
  afterAll(async () => {
    await https?.stop();
  });

  const browser = () => {
    const b = new Browser();
    b.route = (url) => ({ url: url.protocol === 'https:' ? new URL(`${url.pathname}${url.search}`, origin) : url, headers: { 'x-forwarded-proto': 'https' } });
    return b;
  };

  it('accepts POST at the authorization endpoint and signs in', async () => {
    const b = browser();
    const verifier = client.randomPKCECodeVerifier();
    const body = new URLSearchParams({
      client_id: firstParty.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: SCOPE, state: 'post-1',
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const login = await b.navigate(`${https.url}/auth`, REDIRECT, { method: 'POST', body });
    expect(login.status).toBe(200);
    expect(login.html).toContain('name="password"');
    const done = await b.submit(login, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    expect(new URL(done.url).searchParams.get('state')).toBe('post-1');
    expect(new URL(done.url).searchParams.has('code')).toBe(true);

    // With the session, a second POST goes straight back to the app with a code.
    body.set('state', 'post-2');
    const again = await b.navigate(`${https.url}/auth`, REDIRECT, { method: 'POST', body });
    expect(new URL(again.url).searchParams.get('state')).toBe('post-2');
    expect(new URL(again.url).searchParams.has('code')).toBe(true);
  });

  it('sets the session cookie SameSite=None and Secure', async () => {
    const b = browser();
    const verifier = client.randomPKCECodeVerifier();
    const params = new URLSearchParams({
      client_id: firstParty.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's',
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const login = await b.navigate(`${https.url}/auth?${params}`, REDIRECT);
    const form = /action="([^"]*\/password)"/.exec(login.html)![1]!;
    const csrf = /name="_csrf" value="([^"]*)"/.exec(login.html)![1]!;
    const posted = await b.request(new URL(form, https.url).toString(), {
      method: 'POST', body: new URLSearchParams({ _csrf: csrf, login: 'ada', password: 'analytical-engine' }),
    });
    // OneID's own session cookie: HttpOnly, SameSite=Lax, Secure on an https issuer.
    const sso = posted.headers.getSetCookie().find((c) => c.startsWith('oneid.sso='));
    expect(sso).toMatch(/samesite=lax/i);
    expect(sso).toMatch(/;\s*secure/i);
    expect(sso).toMatch(/;\s*httponly/i);
    let res = posted;
    let sessionCookie: string | undefined;
    for (let hops = 0; hops < 5 && !sessionCookie; hops += 1) {
      sessionCookie = res.headers.getSetCookie().find((c) => c.startsWith('oneid.session='));
      const location = res.headers.get('location');
      if (!location || location.startsWith(REDIRECT)) break;
      res = await b.request(new URL(location, https.url).toString());
    }
    expect(sessionCookie).toBeDefined();
    expect(sessionCookie).toMatch(/samesite=none/i);
    expect(sessionCookie).toMatch(/;\s*secure/i);
  });

  it('accepts POST at the end-session endpoint', async () => {
    const b = browser();
    const res = await b.request(`${https.url}/session/end`, { method: 'POST', body: new URLSearchParams({ client_id: firstParty.client_id }) });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('/session/end/confirm');
  });
});
