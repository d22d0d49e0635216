// Black-box: OneID on a port, driven by openid-client (a real relying party) and a
// cookie-keeping browser that submits the sign-in form like a person would.
import * as client from 'openid-client';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, startSignIn as start, type Started } from '../helpers/browser.ts';
import { discover, redeem } from '../helpers/oidc-app.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const POST_LOGOUT = 'http://127.0.0.1:9/signed-out';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let user: { id: string; username: string; email: string };
let webApp: { client_id: string; client_secret: string };
let firstPartyApp: { client_id: string; client_secret: string };
let publicApp: { client_id: string };
let serviceApp: { client_id: string; client_secret: string };

const rp = (app: { client_id: string; client_secret?: string }) => discover(server.url, app);

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await runCli(['users', 'create', '--username', 'Ada', '--email', 'Ada@Example.com', '--password', 'analytical-engine', '--name', 'Ada Lovelace'], env);
  expect(created.code).toBe(0);
  user = created.json;
  const apps = await Promise.all([
    runCli(['apps', 'create', '--name', 'Wiki <b>', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
    runCli(['apps', 'create', '--name', 'Mobile', '--redirect-uri', REDIRECT, '--public', '--first-party'], env),
    runCli(['apps', 'create', '--name', 'Batch', '--grant-types', 'client_credentials'], env),
  ]);
  for (const a of apps) expect(a.code).toBe(0);
  [webApp, firstPartyApp, publicApp, serviceApp] = apps.map((a) => a.json);
  server = await startServer(env);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** This file's authorization request (REDIRECT, its scope) with `extra` parameters, in `browser`. */
const startSignIn = (config: client.Configuration, extra: Record<string, string> = {}, browser?: Browser): Promise<Started> =>
  start(config, { redirect_uri: REDIRECT, scope: 'openid profile email offline_access', ...extra }, browser);

async function signIn(config: client.Configuration, opts: { consent?: boolean } = {}) {
  const started = await startSignIn(config);
  let page = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
  if (opts.consent) page = await started.browser.submit(page, '/confirm', {}, REDIRECT);
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await redeem(config, started, page.url);
  return { ...started, callback: page.url, tokens };
}

describe('discovery and JWKS', () => {
  it('publishes S256-only PKCE, code flow and both ES256 and RS256 keys', async () => {
    const config = await rp(webApp);
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(server.url);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.response_types_supported).toEqual(['code']);
    expect(meta.id_token_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'RS256']));
    const jwks = await (await fetch(meta.jwks_uri!)).json() as { keys: { alg: string; d?: string }[] };
    const algs = jwks.keys.map((k) => k.alg);
    expect(algs.filter((a) => a === 'ES256').length).toBeGreaterThanOrEqual(2); // current + next
    expect(algs.filter((a) => a === 'RS256').length).toBeGreaterThanOrEqual(2);
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
    // Only client authentication methods an app can be registered for.
    expect([...meta.token_endpoint_auth_methods_supported!].sort()).toEqual(['client_secret_basic', 'client_secret_post', 'none']);
  });

  it('advertises endpoints under ISSUER even when reached by another address', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/.well-known/openid-configuration`);
    const meta = await res.json() as Record<string, string>;
    expect(meta.issuer).toBe(server.url);
    expect(meta.token_endpoint).toBe(`${server.url}/token`);
    expect(meta.authorization_endpoint).toBe(`${server.url}/auth`);
  });
});

describe('discovery and JWKS answered from memory', () => {
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => fetch(`${server.url}${path}`, { method, headers });

  it('gives the same document, type and open CORS on every request, as oidc-provider built it', async () => {
    for (const [path, type] of [['/.well-known/openid-configuration', 'application/json'], ['/jwks', 'application/jwk-set+json']] as const) {
      const first = await get(path);
      const firstBody = await first.text();
      const again = await get(path, { origin: 'https://spa.example.com' });
      expect(again.status).toBe(200);
      expect(await again.text()).toBe(firstBody);
      expect(again.headers.get('content-type')).toContain(type);
      expect(again.headers.get('access-control-allow-origin')).toBe('https://spa.example.com');
      expect(again.headers.get('vary')).toMatch(/origin/i);
      expect(again.headers.get('x-request-id')).toBeTruthy();
      expect(again.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await get(path)).headers.get('access-control-allow-origin')).toBe('*');
      const head = await get(path, {}, 'HEAD');
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
    }
  });

  it('leaves other methods to oidc-provider: a CORS preflight is answered, a POST refused', async () => {
    const preflight = await get('/jwks', { origin: 'https://spa.example.com', 'access-control-request-method': 'GET' }, 'OPTIONS');
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('GET');
    expect((await get('/.well-known/openid-configuration', {}, 'POST')).status).toBe(404);
  });
});

describe('clients changed by another process', () => {
  it('a secret rotated with the CLI is the only one the running server accepts, at once', async () => {
    const created = await runCli(['apps', 'create', '--name', 'Rotated batch', '--grant-types', 'client_credentials'], env);
    const app = created.json as { id: string; client_id: string; client_secret: string };
    const token = (secret: string) => fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.client_id}:${secret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    expect((await token(app.client_secret)).status).toBe(200); // read once, now in the server's cache
    const rotated = await runCli(['apps', 'rotate-secret', '--id', app.id], env);
    expect(rotated.code).toBe(0);
    const refused = await token(app.client_secret);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: 'invalid_client' });
    expect((await token((rotated.json as { client_secret: string }).client_secret)).status).toBe(200);

    expect((await runCli(['apps', 'delete', '--id', app.id], env)).code).toBe(0);
    expect((await token((rotated.json as { client_secret: string }).client_secret)).status).toBe(401);
  });
});

describe('authorization code flow with PKCE', () => {
  it('signs a user in, with consent for a third-party app, and returns verified claims', async () => {
    const config = await rp(webApp);
    const started = await startSignIn(config);
    expect(started.page.status).toBe(200);
    expect(started.page.html).toContain('Wiki &lt;b&gt;'); // app name shown, escaped
    expect(started.page.html).toMatch(/name="_csrf" value="[^"]+"/);

    const wrong = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'wrong-password' }, REDIRECT);
    expect(wrong.html).toContain('The username or password is incorrect.');
    const unknown = await started.browser.submit(started.page, '/login', { login: 'nobody', password: 'wrong-password' }, REDIRECT);
    expect(unknown.html).toContain('The username or password is incorrect.');

    const consent = await started.browser.submit(wrong, '/login', { login: 'ADA@example.com', password: 'analytical-engine' }, REDIRECT);
    expect(consent.html).toContain('Allow access');
    const done = await started.browser.submit(consent, '/confirm', {}, REDIRECT);
    const tokens = await redeem(config, started, done.url);
    const claims = tokens.claims()!;
    expect(claims.sub).toBe(user.id);
    expect(claims.preferred_username).toBe('ada');
    expect(claims.email).toBe('ada@example.com');
    expect(claims.name).toBe('Ada Lovelace');
    expect(claims.given_name).toBe('Ada');
    expect(claims.family_name).toBe('Lovelace');
    expect(tokens.refresh_token).toBeTruthy();
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('RS256'); // default for clients that say nothing

    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    expect(info).toMatchObject({ sub: user.id, email: 'ada@example.com', email_verified: false, preferred_username: 'ada' });
  });

  it('skips consent for first-party apps', async () => {
    const { tokens, browser } = await signIn(await rp(firstPartyApp));
    expect(tokens.claims()!.sub).toBe(user.id);
    // Straight from the password back to the app: the sign-in flow hands back to the interaction,
    // which finishes it; no second interaction (consent) on the way.
    const login = browser.visited.findIndex((v) => v.method === 'POST' && new URL(v.url).pathname.endsWith('/password'));
    expect(browser.visited.slice(login + 1).map((v) => new URL(v.url).pathname.replace(/[^/]{20,}/g, ':uid'))).toEqual(['/interaction/:uid/signed-in', '/auth/:uid']);
  });

  it('requires PKCE from public clients and redirects the error only to the registered URI', async () => {
    const config = await rp(publicApp);
    const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', state: 'xyz' });
    const page = await new Browser().navigate(url.toString(), REDIRECT);
    const cb = new URL(page.url);
    expect(cb.searchParams.get('error')).toBe('invalid_request');
    expect(cb.searchParams.get('state')).toBe('xyz');

    const plain = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' });
    const plainPage = await new Browser().navigate(plain.toString(), REDIRECT);
    expect(new URL(plainPage.url).searchParams.get('error')).toBe('invalid_request');

    const { tokens } = await signIn(config);
    expect(tokens.claims()!.sub).toBe(user.id);
  });

  it('rejects a wrong code_verifier', async () => {
    const config = await rp(firstPartyApp);
    const started = await startSignIn(config);
    const page = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    await expect(client.authorizationCodeGrant(config, new URL(page.url), {
      pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: started.state, expectedNonce: started.nonce,
    })).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('rejects a reused authorization code and revokes the tokens it issued', async () => {
    const config = await rp(firstPartyApp);
    const { callback, verifier, state, nonce, tokens } = await signIn(config);
    await expect(client.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }))
      .rejects.toMatchObject({ error: 'invalid_grant' });
    const introspected = await client.tokenIntrospection(config, tokens.access_token);
    expect(introspected.active).toBe(false);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('shows an error page, not a redirect, for an unregistered redirect_uri', async () => {
    const config = await rp(webApp);
    const url = client.buildAuthorizationUrl(config, { redirect_uri: 'https://evil.example/cb', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
    const res = await new Browser().request(url.toString());
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    const html = await res.text();
    expect(html).toContain('redirect_uri');
    expect(html).not.toContain('evil.example/cb"');
    expect(html).not.toMatch(/at .*\.js:\d+/); // no stack trace
  });
});

describe('refresh tokens', () => {
  it('rotates on every use and revokes the whole grant when an old one is reused', async () => {
    const config = await rp(firstPartyApp);
    const { tokens } = await signIn(config);
    const second = await client.refreshTokenGrant(config, tokens.refresh_token!);
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(tokens.refresh_token);
    expect(second.claims()!.sub).toBe(user.id);

    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    // Reuse detection: the newest token of the same grant is dead too.
    await expect(client.refreshTokenGrant(config, second.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect((await client.tokenIntrospection(config, second.access_token)).active).toBe(false);
  });
});

describe('redeeming the same grant at the same moment', () => {
  // Each request reads the token unconsumed; only one may commit its new tokens (request-writes.ts).
  const settle = async (attempts: Promise<unknown>[]) => {
    const outcomes = await Promise.allSettled(attempts);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    for (const r of refused) expect(r.reason).toMatchObject({ error: 'invalid_grant' });
    return outcomes.length - refused.length;
  };

  it('gives new tokens to exactly one of several simultaneous refreshes with one refresh token', async () => {
    const config = await rp(firstPartyApp);
    for (let round = 0; round < 3; round += 1) {
      const { tokens } = await signIn(config);
      expect(await settle(Array.from({ length: 6 }, () => client.refreshTokenGrant(config, tokens.refresh_token!)))).toBe(1);
    }
  });

  it('exchanges an authorization code for tokens exactly once when it is sent several times at once', async () => {
    const config = await rp(firstPartyApp);
    const started = await startSignIn(config);
    const page = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    expect(page.url.startsWith(REDIRECT)).toBe(true);
    const exchange = () => client.authorizationCodeGrant(config, new URL(page.url), {
      pkceCodeVerifier: started.verifier, expectedState: started.state, expectedNonce: started.nonce,
    });
    expect(await settle(Array.from({ length: 6 }, exchange))).toBe(1);
  });
});

describe('ID token signing algorithm per app', () => {
  it('signs with ES256 when the app asks for it, at sign-in and at refresh', async () => {
    const created = await runCli(['apps', 'create', '--name', 'Fast', '--redirect-uri', REDIRECT, '--first-party', '--id-token-alg', 'ES256'], env);
    expect(created.code).toBe(0);
    const app = created.json as { id: string; client_id: string; client_secret: string };
    expect((await runCli(['apps', 'get', '--id', app.id], env)).json).toMatchObject({ id_token_alg: 'ES256' });
    // openid-client checks the signature against the JWKS and refuses any other alg than the one registered.
    const config = await client.discovery(new URL(server.url), app.client_id, { id_token_signed_response_alg: 'ES256' },
      client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
    client.enableNonRepudiationChecks(config);
    const { tokens } = await signIn(config);
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('ES256');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    expect(decodeProtectedHeader(refreshed.id_token!).alg).toBe('ES256');
    expect(refreshed.claims()!.sub).toBe(user.id);
  });

  it('refuses an algorithm OneID does not offer for ID tokens', async () => {
    const refused = await runCli(['apps', 'create', '--name', 'Weak', '--redirect-uri', REDIRECT, '--id-token-alg', 'HS256'], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^oneid: --id-token-alg: /);
  });
});

describe('client_credentials, introspection, revocation', () => {
  it('issues RFC 9068 JWT access tokens that verify against the JWKS', async () => {
    const config = await rp(serviceApp);
    const tokens = await client.clientCredentialsGrant(config, {});
    const header = decodeProtectedHeader(tokens.access_token);
    expect(header.typ).toBe('at+jwt');
    const jwks = createRemoteJWKSet(new URL(`${server.url}/jwks`));
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.url, audience: `${server.url}/api`, typ: 'at+jwt' });
    expect(payload.client_id).toBe(serviceApp.client_id);
    expect(payload.sub).toBe(serviceApp.client_id);
    expect(typeof payload.jti).toBe('string');
  });

  it('refuses a wrong client secret with invalid_client', async () => {
    const config = await client.discovery(new URL(server.url), serviceApp.client_id, undefined,
      client.ClientSecretBasic('not-the-secret'), { execute: [client.allowInsecureRequests] });
    const err = await client.clientCredentialsGrant(config, {}).then(() => undefined, (e: unknown) => e) as
      { status?: number; cause?: { parameters: { error?: string } }[] } | undefined;
    expect(err?.status).toBe(401);
    expect(err?.cause?.[0]?.parameters.error).toBe('invalid_client');
  });

  it('introspects an active token and reports it inactive after revocation', async () => {
    const config = await rp(firstPartyApp);
    const { tokens } = await signIn(config);
    const active = await client.tokenIntrospection(config, tokens.access_token);
    expect(active).toMatchObject({ active: true, sub: user.id, client_id: firstPartyApp.client_id });
    await client.tokenRevocation(config, tokens.access_token);
    expect((await client.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    await expect(client.fetchUserInfo(config, tokens.access_token, user.id)).rejects.toBeDefined();
    await client.tokenRevocation(config, tokens.refresh_token!);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
  it('lets an app introspect and revoke only the tokens issued to it', async () => {
    const owner = await rp(firstPartyApp);
    const { tokens } = await signIn(owner);
    const other = await rp(webApp);
    // Another app's token reads as inactive, as an unknown token would: nothing about it is told.
    expect(await client.tokenIntrospection(other, tokens.access_token)).toEqual({ active: false });
    expect(await client.tokenIntrospection(other, tokens.refresh_token!)).toEqual({ active: false });
    // Revoking it is refused (RFC 7009 section 2.1) and changes nothing.
    await expect(client.tokenRevocation(other, tokens.access_token)).rejects.toMatchObject({ error: 'invalid_request' });
    await expect(client.tokenRevocation(other, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_request' });
    expect(await client.tokenIntrospection(owner, tokens.access_token)).toMatchObject({ active: true, sub: user.id });
    expect((await client.fetchUserInfo(owner, tokens.access_token, user.id)).sub).toBe(user.id);
    const refreshed = await client.refreshTokenGrant(owner, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
  });
});

describe('RP-initiated logout', () => {
  it('ends the session and returns to the registered post-logout URI', async () => {
    const config = await rp(webApp);
    const started = await startSignIn(config);
    const consent = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    const done = await started.browser.submit(consent, '/confirm', {}, REDIRECT);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.url), {
      pkceCodeVerifier: started.verifier, expectedState: started.state, expectedNonce: started.nonce,
    });
    const logoutUrl = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
    const confirm = await started.browser.navigate(logoutUrl.toString(), POST_LOGOUT);
    expect(confirm.html).toContain('Yes, sign me out');
    const out = await started.browser.submit(confirm, '/session/end/confirm', { logout: 'yes' }, POST_LOGOUT);
    expect(out.url).toBe(`${POST_LOGOUT}?state=bye`);

    // The session is gone: a silent sign-in now needs a login.
    const silent = await startSignIn(config, { prompt: 'none' }, started.browser);
    expect(new URL(silent.page.url).searchParams.get('error')).toBe('login_required');
  });

  it('refuses an id_token_hint whose payload was changed after OneID signed it', async () => {
    const config = await rp(webApp);
    const { tokens, browser } = await signIn(config, { consent: true });
    const [header, payload, signature] = tokens.id_token!.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const forged = [header, Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url'), signature].join('.');
    const url = client.buildEndSessionUrl(config, { id_token_hint: forged, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
    const res = await browser.request(url.toString());
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toMatch(/id_token_hint/);
    // The genuine token is still accepted: the refusal was the signature's.
    const genuine = await browser.request(client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT }).toString());
    expect(genuine.status).toBe(200);
  });

  it('refuses a post_logout_redirect_uri that is not registered', async () => {
    const config = await rp(webApp);
    const { tokens, browser } = await signIn(config, { consent: true });
    const url = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://evil.example/' });
    const res = await browser.request(url.toString());
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });
});

describe('redirect_uri', () => {
  it('needs redirect_uri even when the app has one registered URI', async () => {
    const res = await fetch(`${server.url}/auth?client_id=${firstPartyApp.client_id}&response_type=code&scope=openid&code_challenge=${'x'.repeat(43)}&code_challenge_method=S256`, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toMatch(/redirect_uri/);
  });
});

describe('sign-in page', () => {
  it('is served with a Content-Security-Policy, and the form_post page\'s one script is allowed by its hash', async () => {
    const config = await rp(firstPartyApp);
    const started = await startSignIn(config, { response_mode: 'form_post' });
    const csp = started.page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    // No inline script: only OneID's own files (the passkey ceremonies), which script-src 'self' allows.
    expect(started.page.html).not.toMatch(/<script(?![^>]*\bsrc="\/assets\/)/);
    expect(csp).toContain("script-src 'self'");
    const posted = await started.browser.submit(started.page, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
    expect(posted.status).toBe(200);
    expect(posted.html).toContain(`action="${REDIRECT}"`);
    expect(posted.html).toContain('name="code"');
    const script = /<script>([\s\S]*?)<\/script>/.exec(posted.html)![1]!;
    const digest = createHash('sha256').update(script).digest('base64');
    expect(posted.headers.get('content-security-policy')).toMatch(new RegExp(`script-src [^;]*'sha256-${digest.replace(/[+/=]/g, (c) => `\\${c}`)}'`));
  });

  it('refuses a form post without the CSRF token and does not sign in', async () => {
    const config = await rp(firstPartyApp);
    const started = await startSignIn(config);
    const flow = /action="\/login\/([^/"]+)\/password"/.exec(started.page.html)![1];
    const res = await started.browser.request(`${server.url}/login/${flow}/password`, {
      method: 'POST', body: new URLSearchParams({ login: 'ada', password: 'analytical-engine' }),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toContain('Your form has expired');
  });

  it('speaks Simplified Chinese by ui_locales and by Accept-Language', async () => {
    const config = await rp(firstPartyApp);
    const byParam = await startSignIn(config, { ui_locales: 'zh-CN' });
    expect(byParam.page.html).toContain('用户名或邮箱');
    const browser = new Browser();
    browser.acceptLanguage = 'zh-CN,zh;q=0.9,en;q=0.5';
    const byHeader = await startSignIn(config, {}, browser);
    expect(byHeader.page.html).toContain('<html lang="zh-CN">');
    const english = await startSignIn(config);
    expect(english.page.html).toContain('Username or email');
  });

  it('shows a clear error page for an unknown or expired interaction', async () => {
    const res = await new Browser().request(`${server.url}/interaction/does-not-exist`);
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain('Something went wrong');
    expect(html).not.toMatch(/at .*\.(js|ts):\d+/);
  });
});

describe('bad input at the token endpoint', () => {
  it('answers with OAuth error JSON, never a 500', async () => {
    const cases: [Record<string, string>, string][] = [
      [{}, 'invalid_request'],
      [{ grant_type: 'password', username: 'ada', password: 'x' }, 'unsupported_grant_type'],
      [{ grant_type: 'authorization_code', code: "'; drop table users; --", redirect_uri: REDIRECT, code_verifier: 'x'.repeat(43) }, 'invalid_grant'],
      [{ grant_type: 'refresh_token', refresh_token: 'nonsense' }, 'invalid_grant'],
    ];
    for (const [body, error] of cases) {
      const res = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${firstPartyApp.client_id}:${firstPartyApp.client_secret}`).toString('base64')}` },
        body: new URLSearchParams(body),
      });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/json');
      expect(((await res.json()) as { error: string }).error).toBe(error);
    }
  });

  it('refuses oversized bodies with 413', async () => {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&x=${'a'.repeat(200 * 1024)}`,
    });
    expect(res.status).toBe(413);
    // Also above what oidc-provider reads (56 KiB) though below MAX_BODY_BYTES (100 KiB).
    const between = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${serviceApp.client_id}:${serviceApp.client_secret}`).toString('base64')}` },
      body: `grant_type=client_credentials&x=${'a'.repeat(60 * 1024)}`,
    });
    expect(between.status).toBe(413);
    expect(await between.json()).toMatchObject({ error: 'invalid_request' });
    // The admin API answers in its own format, and checks the caller first: without a token,
    // 401 (an authenticated caller gets 413, see auth-before-body.test.ts).
    const admin = await fetch(`${server.url}/admin/api/v1/users`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ x: 'a'.repeat(200 * 1024) }),
    });
    expect(admin.status).toBe(401);
    expect(admin.headers.get('content-type')).toContain('application/problem+json');
    expect(await admin.json()).toMatchObject({ status: 401, code: 'admin.token_missing' });
  });
});

describe('NUL characters in parameters', () => {
  // PostgreSQL stores no NUL character; a `%00` in any parameter is bad input, answered in the
  // protocol's own format, never a 500, and nothing is stored.
  const basic = (app: { client_id: string; client_secret: string }) => `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`;
  const post = (path: string, body: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, {
    method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body,
  });

  it('answers the token, introspection, revocation and userinfo endpoints with their own errors', async () => {
    const auth = { authorization: basic(firstPartyApp) };
    const cases: [Promise<Response>, number, Record<string, unknown>][] = [
      [post('/token', `grant_type=client_credentials&client_id=a%00&client_secret=x`), 401, { error: 'invalid_client' }],
      [post('/token', `grant_type=authorization_code&code=a%00b&redirect_uri=${encodeURIComponent(REDIRECT)}&code_verifier=${'x'.repeat(43)}`, auth), 400, { error: 'invalid_grant' }],
      [post('/token', 'grant_type=refresh_token&refresh_token=a%00b', auth), 400, { error: 'invalid_grant' }],
      [post('/token/introspection', 'token=a%00b', auth), 200, { active: false }],
      [post('/token/revocation', 'token=a%00b', auth), 200, {}],
      [post('/me', 'access_token=a%00b'), 401, { error: 'invalid_token' }],
    ];
    for (const [pending, status, body] of cases) {
      const res = await pending;
      expect(res.status).toBe(status);
      const text = await res.text();
      if (Object.keys(body).length) expect(JSON.parse(text)).toMatchObject(body);
    }
  });

  it('refuses them at the authorization endpoint, without storing the request', async () => {
    const config = await rp(firstPartyApp);
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid', state: 'st\0ate', nonce: 'n', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256',
    });
    expect(url.search).toContain('%00');
    const res = await fetch(url, { redirect: 'manual' });
    // The client and redirect_uri are valid: the error goes back to the app (RFC 6749 section 4.1.2.1).
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    const pgClient = new pg.Client({ connectionString: db.url });
    await pgClient.connect();
    try {
      const stored = await pgClient.query("select count(*)::int as n from oidc_payloads where model = 'Interaction' and payload->'params'->>'state' like 'st%'");
      expect(stored.rows[0].n).toBe(0);
    } finally {
      await pgClient.end();
    }

    // An unknown client (a client_id with a NUL): the error page, no redirect.
    const unknown = await fetch(`${server.url}/auth?client_id=a%00&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT)}`, { redirect: 'manual', headers: { accept: 'text/html' } });
    expect(unknown.status).toBe(400);
    expect(unknown.headers.get('location')).toBeNull();
  });

  it('fails a sign-in whose account name holds one, like any wrong account name', async () => {
    const config = await rp(firstPartyApp);
    const started = await startSignIn(config);
    const page = await started.browser.submit(started.page, '/login', { login: 'ada\0', password: 'analytical-engine' }, REDIRECT);
    expect(page.status).toBe(200);
    expect(page.url.startsWith(REDIRECT)).toBe(false);
    expect(page.html).toContain('name="password"');
  });

  it('logs none of them as a server error', () => {
    const errors = server.output().split('\n').filter((line) => line.includes('"level":50'));
    expect(errors).toEqual([]);
  });
});
