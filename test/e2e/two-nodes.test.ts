// Black-box: two OneID nodes behind one issuer URL, sharing one PostgreSQL database and one
// master key. The browser and the relying party are steered node by node, the way a load
// balancer without sticky sessions would, and every step of one sign-in lands on either node.
// Like a real load balancer, the test forwards the public host (X-Forwarded-Host/-Proto, with
// TRUST_PROXY=true): oidc-provider builds endpoint URLs from the request's host, not from ISSUER.
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let env: Record<string, string>;
let issuer: string;
let nodeA: RunningServer;
let nodeB: RunningServer;
let user: { id: string };
let webApp: { client_id: string; client_secret: string };
let firstPartyApp: { client_id: string; client_secret: string };

type Node = RunningServer;

/** The same URL, sent to one node's own port. */
const on = (node: Node, url: string | URL): URL => {
  const u = new URL(url);
  const target = new URL(`http://127.0.0.1:${node.port}`);
  u.protocol = target.protocol;
  u.host = target.host;
  return u;
};

/** What the load balancer adds: the public host the browser asked for. */
const forwarded = (): Record<string, string> => {
  const u = new URL(issuer);
  return { 'x-forwarded-host': u.host, 'x-forwarded-proto': u.protocol.replace(':', '') };
};

/** A request for `url` as the load balancer would pass it to `node`. */
const via = (node: Node, url: string | URL) => ({ url: on(node, url), headers: forwarded() });

/** Waits until `node` has logged a request matching `needle`, then checks the other node never saw it. */
async function expectServedBy(node: Node, other: Node, needle: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!node.output().includes(needle) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(node.output()).toContain(needle);
  expect(other.output()).not.toContain(needle);
}

/** A relying party whose every call (discovery aside) goes to whichever node `target()` names. */
async function rp(app: { client_id: string; client_secret: string }, target: () => { node: Node; requestId: string }) {
  const config = await client.discovery(new URL(issuer), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), {
    execute: [client.allowInsecureRequests],
  });
  client.enableNonRepudiationChecks(config);
  config[client.customFetch] = (url, options) => {
    const { node, requestId } = target();
    const headers = new Headers(options.headers);
    headers.set('x-request-id', requestId);
    for (const [k, v] of Object.entries(forwarded())) headers.set(k, v);
    return fetch(on(node, url), { ...options, headers } as RequestInit);
  };
  return config;
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), TRUST_PROXY: 'true' };
  const [portA, portB] = [await freePort(), await freePort()];
  issuer = `http://localhost:${portA}`;
  // Both nodes start at once on an empty database: migrations and first keys must not race.
  [nodeA, nodeB] = await Promise.all([
    startServer({ ...env, PORT: String(portA), ISSUER: issuer }),
    startServer({ ...env, PORT: String(portB), ISSUER: issuer }),
  ]);
  const created = await runCli(['users', 'create', '--username', 'grace', '--email', 'grace@example.com', '--password', 'cobol-compiler-1959', '--name', 'Grace Hopper'], env);
  expect(created.code).toBe(0);
  user = created.json;
  const apps = await Promise.all([
    runCli(['apps', 'create', '--name', 'Wiki', '--redirect-uri', REDIRECT], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
  ]);
  for (const a of apps) expect(a.code).toBe(0);
  [webApp, firstPartyApp] = apps.map((a) => a.json);
}, 120000);

afterAll(async () => {
  await nodeA?.stop();
  await nodeB?.stop();
  await db?.drop();
});

describe('two nodes, one issuer', () => {
  it('run on different ports and both announce the shared issuer', async () => {
    expect(nodeA.port).not.toBe(nodeB.port);
    for (const node of [nodeA, nodeB]) {
      const res = await fetch(on(node, `${issuer}/.well-known/openid-configuration`), { headers: forwarded() });
      expect(res.status).toBe(200);
      const meta = (await res.json()) as { issuer: string; token_endpoint: string; jwks_uri: string };
      expect(meta.issuer).toBe(issuer);
      expect(meta.token_endpoint).toBe(`${issuer}/token`);
      expect(meta.jwks_uri).toBe(`${issuer}/jwks`);
    }
  });

  it('publish the same JWKS', async () => {
    const jwks = async (node: Node) => {
      const res = await fetch(on(node, `${issuer}/jwks`), { headers: forwarded() });
      expect(res.status).toBe(200);
      return (await res.json()) as { keys: { kid: string; alg: string }[] };
    };
    const [a, b] = await Promise.all([jwks(nodeA), jwks(nodeB)]);
    expect(a.keys.length).toBeGreaterThanOrEqual(4); // current + next, ES256 and RS256
    expect(b).toEqual(a);
  });
});

describe('one sign-in across both nodes', () => {
  it('serves each step on either node: authorize A, sign-in B, consent A/B, token B, refresh A, userinfo B', async () => {
    let step = { node: nodeA, requestId: 'unset-step-0' };
    const config = await rp(webApp, () => step);
    const browser = new Browser();
    let browserNode = nodeA;
    browser.route = (url) => via(browserNode, url);

    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const authUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile email offline_access', state, nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    expect(authUrl.origin).toBe(issuer);

    // 1. Authorization request on A: it stores the interaction and sends the browser to it.
    browserNode = nodeA;
    const authorize = await browser.request(authUrl.toString(), { headers: { 'x-request-id': 'two-nodes-authorize' } });
    expect(authorize.status).toBe(303);
    const interactionUrl = new URL(authorize.headers.get('location')!, authUrl).toString();
    expect(interactionUrl).toMatch(new RegExp(`^${issuer}/interaction/[^/]+$`));
    await expectServedBy(nodeA, nodeB, '"requestId":"two-nodes-authorize"');

    // 2. Sign-in: the interaction, OneID's sign-in form GET and POST on B, with A's interaction and cookies.
    browserNode = nodeB;
    const loginUid = new URL(interactionUrl).pathname.split('/').pop()!;
    const loginPage = await browser.navigate(interactionUrl, REDIRECT);
    expect(loginPage.status).toBe(200);
    const flow = new URL(loginPage.url).pathname.split('/')[2]!;
    expect(loginPage.html).toContain(`action="/login/${flow}/password"`);
    const afterLogin = await browser.submit(loginPage, '/login', { login: 'grace', password: 'cobol-compiler-1959' }, `${issuer}/auth/`);
    expect(afterLogin.url).toMatch(new RegExp(`^${issuer}/auth/[^/]+$`)); // back to the provider, not requested yet
    await expectServedBy(nodeB, nodeA, `"path":"/interaction/${loginUid}"`);
    await expectServedBy(nodeB, nodeA, `"path":"/login/${flow}/password"`);
    await expectServedBy(nodeB, nodeA, `"path":"/interaction/${loginUid}/signed-in"`);

    // 3. A resumes the authorization with B's sign-in and asks for consent (a third-party app).
    browserNode = nodeA;
    const consent = await browser.navigate(afterLogin.url, REDIRECT);
    expect(consent.status).toBe(200);
    expect(consent.html).toContain('Allow access');
    const consentUid = new URL(consent.url).pathname.split('/').pop()!;
    expect(consentUid).not.toBe(loginUid);
    await expectServedBy(nodeA, nodeB, `"path":"/interaction/${consentUid}"`);

    // 4. Consent is confirmed on B, and A finishes with the redirect carrying the code.
    browserNode = nodeB;
    const afterConsent = await browser.submit(consent, '/confirm', {}, `${issuer}/auth/`);
    expect(afterConsent.url).toMatch(new RegExp(`^${issuer}/auth/[^/]+$`));
    await expectServedBy(nodeB, nodeA, `"path":"/interaction/${consentUid}/confirm"`);
    browserNode = nodeA;
    const callback = await browser.navigate(afterConsent.url, REDIRECT);
    expect(callback.url.startsWith(REDIRECT)).toBe(true);
    expect(new URL(callback.url).searchParams.get('code')).toBeTruthy();

    // 5. The code, issued by A, is redeemed at B's token endpoint; the ID token verifies.
    step = { node: nodeB, requestId: 'two-nodes-code-at-b' };
    const tokens = await client.authorizationCodeGrant(config, new URL(callback.url), {
      pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce,
    });
    await expectServedBy(nodeB, nodeA, '"requestId":"two-nodes-code-at-b"');
    expect(tokens.claims()!.sub).toBe(user.id);
    expect(tokens.refresh_token).toBeTruthy();
    const jwksB = createRemoteJWKSet(on(nodeB, `${issuer}/jwks`));
    const { payload } = await jwtVerify(tokens.id_token!, jwksB, { issuer, audience: webApp.client_id });
    expect(payload).toMatchObject({ sub: user.id, nonce, email: 'grace@example.com', name: 'Grace Hopper' });

    // 6. Refresh on A: rotates, and the new ID token names the same user.
    step = { node: nodeA, requestId: 'two-nodes-refresh-at-a' };
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    await expectServedBy(nodeA, nodeB, '"requestId":"two-nodes-refresh-at-a"');
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.claims()!.sub).toBe(user.id);

    // 7. Userinfo on B with the access token A just issued.
    step = { node: nodeB, requestId: 'two-nodes-userinfo-at-b' };
    const info = await client.fetchUserInfo(config, refreshed.access_token, user.id);
    await expectServedBy(nodeB, nodeA, '"requestId":"two-nodes-userinfo-at-b"');
    expect(info).toMatchObject({ sub: user.id, email: 'grace@example.com', preferred_username: 'grace' });

    // 8. The refresh token A rotated away is dead on B too (one store, one rotation).
    step = { node: nodeB, requestId: 'two-nodes-old-refresh-at-b' };
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('refuses at A a code already redeemed at B', async () => {
    let step = { node: nodeA, requestId: 'unset-replay-0' };
    const config = await rp(firstPartyApp, () => step);
    const browser = new Browser();
    let browserNode = nodeB;
    browser.route = (url) => via(browserNode, url);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid', state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const loginPage = await browser.navigate(url.toString(), REDIRECT);
    browserNode = nodeA;
    const callback = await browser.submit(loginPage, '/login', { login: 'grace@example.com', password: 'cobol-compiler-1959' }, REDIRECT);
    expect(callback.url.startsWith(REDIRECT)).toBe(true);

    step = { node: nodeB, requestId: 'two-nodes-replay-first' };
    const tokens = await client.authorizationCodeGrant(config, new URL(callback.url), { pkceCodeVerifier: verifier, expectedState: state });
    expect(tokens.claims()!.sub).toBe(user.id);

    step = { node: nodeA, requestId: 'two-nodes-replay-second' };
    await expect(client.authorizationCodeGrant(config, new URL(callback.url), { pkceCodeVerifier: verifier, expectedState: state }))
      .rejects.toMatchObject({ error: 'invalid_grant' });
    await expectServedBy(nodeA, nodeB, '"requestId":"two-nodes-replay-second"');
    // The replay revoked the grant everywhere: B no longer accepts the access token it issued.
    step = { node: nodeB, requestId: 'two-nodes-replay-introspect' };
    expect((await client.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
  });

  it('recognises on B the session cookie set by A (silent sign-in)', async () => {
    const config = await rp(firstPartyApp, () => ({ node: nodeA, requestId: 'two-nodes-silent' }));
    const browser = new Browser();
    let browserNode = nodeA;
    browser.route = (url) => via(browserNode, url);
    const first = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    });
    const loginPage = await browser.navigate(first.toString(), REDIRECT);
    const signedIn = await browser.submit(loginPage, '/login', { login: 'grace', password: 'cobol-compiler-1959' }, REDIRECT);
    expect(new URL(signedIn.url).searchParams.get('code')).toBeTruthy();

    browserNode = nodeB;
    const silent = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', state: 'silent',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    });
    const res = await browser.request(silent.toString());
    expect(res.status).toBe(303);
    const cb = new URL(res.headers.get('location')!, silent);
    expect(cb.toString().startsWith(REDIRECT)).toBe(true);
    expect(cb.searchParams.get('error')).toBeNull();
    expect(cb.searchParams.get('code')).toBeTruthy();
    expect(cb.searchParams.get('state')).toBe('silent');

    // A stranger's browser gets login_required from the same node: the cookie is what counted.
    const stranger = new Browser();
    stranger.route = (url) => via(nodeB, url);
    const refused = await stranger.request(silent.toString());
    expect(new URL(refused.headers.get('location')!, silent).searchParams.get('error')).toBe('login_required');
  });
});
