// Suite-wide sign-out (#22), black-box: OneID on a port, relying parties written with
// openid-client, their back-channel logout endpoint on a port, and a test browser that signs in
// (single sign-on across the apps) and answers OneID's logout page. Suites are made with plain
// inserts (their admin API is built elsewhere). Signing out of app A "this app only" ends the
// person's session in the other member apps of A's suites that have suite sign-out: their refresh
// tokens stop working and an app with a backchannel_logout_uri gets a logout token for that
// session, from the job queue (retried while the app is down); without suite sign-out, or for an
// app outside the suite, or for the person's session in another browser, nothing changes. The
// suite's SAML app (node-saml as its SP) is taken through its single logout on the browser's way
// back to A, and its own single logout tells the suite's OIDC apps by back-channel logout.
import { startBackchannelReceiver, type BackchannelReceiver } from '../helpers/backchannel-receiver.ts';
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { inflateRawSync } from 'node:zlib';
import { SAML, type Profile } from '@node-saml/node-saml';
import type { Knex } from 'knex';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser, decodeHtml, type Page } from '../helpers/browser.ts';
import { makeSpKeys, toPem, type SpKeys } from '../helpers/saml-keys.ts';
import { until } from '../helpers/until.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { insertApp, type OidcClientSettings } from '../../src/apps/apps.repo.ts';
import { insertSamlSp } from '../../src/apps/saml-providers.repo.ts';

const PASSWORD = 'correct-horse-battery';
const REDIRECT = 'http://127.0.0.1:9/callback';
const POST_LOGOUT = 'http://127.0.0.1:9/signed-out';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';


let database: MigratedDatabase;
let db: Knex;
let server: RunningServer;
let receiver: BackchannelReceiver;
let appAdmin: AdminClient;
let alice = '';
let suiteId = '';
const apps: Record<string, { id: string; client_id: string; client_secret: string }> = {};
/** Payroll: a SAML app of the suite (Redirect single logout, a signing certificate). */
const payroll = { id: randomUUID(), entityId: 'http://payroll.sp.example.test/metadata', acsUrl: 'http://payroll.sp.example.test/acs', sloUrl: 'http://payroll.sp.example.test/slo' };
let payrollKeys: SpKeys;
let idpCert = '';

/** A suite and its member apps, as the suites admin API will make them. */
async function insertSuite(name: string, suiteSignout: boolean, members: string[]): Promise<string> {
  const id = randomUUID();
  await db('suites').insert({ id, name, suite_signout: suiteSignout });
  await db('suite_apps').insert(members.map((m, position) => ({ suite_id: id, app_id: apps[m]!.id, position })));
  return id;
}

beforeAll(async () => {
  database = await createMigratedDatabase('oneid_test_suite_signout');
  db = database.db;
  receiver = await startBackchannelReceiver();
  const env = {
    DATABASE_URL: database.database.url, ONEID_MASTER_KEY: testMasterKey(),
    JOBS_RETRY_DELAY_SECONDS: '1', JOBS_RETRY_MAX_SECONDS: '2', JOBS_HEARTBEAT_SECONDS: '10', JOBS_RETRY_LIMIT: '5',
  };
  payrollKeys = await makeSpKeys('payroll sp');
  await insertApp(db, {
    id: payroll.id, name: 'Payroll', description: null, logo_url: null, protocol: 'saml', first_party: true,
    client_id: `saml-${payroll.id}`, client_secret_hash: null, allow_no_pkce: false,
    oidc: {} as OidcClientSettings, access: 'everyone', admin_roles: [], signin_policy: null,
  });
  await insertSamlSp(db, {
    app_id: payroll.id, entity_id: payroll.entityId, acs_urls: [{ location: payroll.acsUrl, binding: 'post', index: 0, isDefault: true }],
    slo_url: payroll.sloUrl, slo_binding: 'redirect', signing_certificates: [payrollKeys.certificateBase64], encryption_certificate: null,
    encrypt_assertions: false, name_id_format: 'emailAddress', attribute_mapping: null, sign_response: true, sign_assertion: true,
    want_authn_requests_signed: false,
  });
  server = await startServer(env);
  const metadata = await (await fetch(`${server.url}/saml/metadata`)).text();
  idpCert = /<(?:ds:)?X509Certificate>([^<]+)</.exec(metadata)![1]!.replace(/\s+/g, '');
  appAdmin = await adminClient(server.url, env, ['app_admin']);
  const users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
  alice = (await users.createUser({ username: 'alice', password: PASSWORD, name: 'Alice', email: 'alice@example.com' })).id;
  const register = async (name: string, extra: Record<string, unknown>) => {
    const res = await appAdmin.call('POST', '/apps', {
      name, redirectUris: [REDIRECT], postLogoutRedirectUris: [POST_LOGOUT], firstParty: true, access: 'everyone', ...extra,
    });
    expect(res.status).toBe(201);
    apps[name] = { id: res.body.id, client_id: res.body.client_id, client_secret: res.body.client_secret };
  };
  // A and B are the suite's apps with a back-channel endpoint (B's requires nothing of sids: the
  // suite's token names the session anyway); Docs is in the suite without one; Chat is outside it.
  await register('A', { backchannelLogoutUri: `${receiver.origin}/a` });
  await register('B', { backchannelLogoutUri: `${receiver.origin}/b`, idTokenSigningAlg: 'ES256' });
  await register('Docs', {});
  await register('Chat', { backchannelLogoutUri: `${receiver.origin}/chat` });
  suiteId = await insertSuite('Office', false, ['A', 'B', 'Docs']);
  await db('suite_apps').insert({ suite_id: suiteId, app_id: payroll.id, position: 3 });
}, 120000);

afterAll(async () => {
  if (process.env.DEBUG_SERVER) console.log(server?.output().slice(-5000));
  await server?.stop();
  await receiver?.close();
  await database?.close();
});

async function rp(name: string): Promise<client.Configuration> {
  const app = apps[name]!;
  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  client.enableNonRepudiationChecks(config);
  return config;
}

interface SignedIn { name: string; config: client.Configuration; tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers; sid: string; singleSignOn: boolean }

/** Signs alice in to the app in `browser`: the password the first time, single sign-on after. */
async function signIn(name: string, browser: Browser, scope = 'openid profile'): Promise<SignedIn> {
  const config = await rp(name);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope, state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  let page = await browser.navigate(url.toString(), REDIRECT);
  const singleSignOn = page.url.startsWith(REDIRECT);
  if (!singleSignOn) page = await browser.submit(page, '/login', { login: 'alice', password: PASSWORD }, REDIRECT);
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  expect(tokens.refresh_token).toBeDefined();
  return { name, config, tokens, sid: tokens.claims()!.sid as string, singleSignOn };
}

/** The app sends the browser to OneID's logout page, where the person answers "yes" (all of OneID) or "no" (this app only). */
async function signOut(browser: Browser, from: SignedIn, everywhere: boolean): Promise<void> {
  const url = client.buildEndSessionUrl(from.config, { id_token_hint: from.tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
  const page = await browser.navigate(url.toString(), POST_LOGOUT);
  expect(page.html).toContain('id="logout-no"');
  const out = await browser.submit(page, '/session/end/confirm', everywhere ? { logout: 'yes' } : {}, POST_LOGOUT);
  expect(out.url).toBe(`${POST_LOGOUT}?state=bye`);
}

/** Whether the app's refresh token still gets new tokens (its sign-in lives on). */
async function refreshWorks(s: SignedIn): Promise<boolean> {
  try {
    s.tokens = await client.refreshTokenGrant(s.config, s.tokens.refresh_token!);
    return true;
  } catch (err) {
    expect((err as { error?: string }).error).toBe('invalid_grant');
    return false;
  }
}

/** Verifies a logout token the way a relying party must (Back-Channel Logout 1.0 section 2.6). */
async function verifyLogoutToken(token: string, audience: string) {
  const discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json() as { jwks_uri: string; issuer: string };
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer: discovery.issuer, audience, typ: 'logout+jwt', maxTokenAge: '2m' });
  expect(payload.events).toEqual({ [BACKCHANNEL_EVENT]: {} });
  expect(payload.nonce).toBeUndefined();
  return payload;
}

const tokensAt = (path: string): string[] => receiver.received.filter((r) => r.path === path).map((r) => r.token);
const suiteAudits = async () => db('audit_events').where({ action: 'suite.signed_out' }).orderBy('occurred_at').select('actor_type', 'actor_id', 'target_type', 'target_id', 'changes');
/** Time for the relay and the job queue to have sent anything they were going to send. */
const settle = () => new Promise((r) => setTimeout(r, 2500));

describe('signing out of one app of a suite ("this app only")', () => {
  beforeEach(() => { receiver.received.length = 0; });

  it('leaves the other apps signed in when the suite has no suite sign-out', async () => {
    const browser = new Browser();
    const a = await signIn('A', browser);
    const b = await signIn('B', browser);
    expect(b.singleSignOn).toBe(true);
    await signOut(browser, a, false);
    expect(await refreshWorks(a)).toBe(false);
    expect(await refreshWorks(b)).toBe(true);
    // The app signed out of is told (its sid); B is not.
    const [tokenA] = await until('A\'s logout token', () => tokensAt('/a').length ? tokensAt('/a') : undefined);
    expect(await verifyLogoutToken(tokenA!, apps.A!.client_id)).toMatchObject({ sub: alice, sid: a.sid });
    await settle();
    expect(tokensAt('/b')).toEqual([]);
    expect(await suiteAudits()).toEqual([]);
  }, 60000);

  it('ends the person\'s session in every other app of the suite, and tells B by back-channel logout (retried)', async () => {
    await db('suites').where({ id: suiteId }).update({ suite_signout: true });
    const browser = new Browser();
    const a = await signIn('A', browser);
    const b = await signIn('B', browser);
    const docs = await signIn('Docs', browser);
    const chat = await signIn('Chat', browser);
    expect([b, docs, chat].every((s) => s.singleSignOn)).toBe(true);
    // The person's session at B in another browser is another session: it stays.
    const elsewhere = await signIn('B', new Browser());
    expect(elsewhere.sid).not.toBe(b.sid);
    // B's endpoint is down for its first try.
    receiver.failNext.set('/b', 1);

    await signOut(browser, a, false);

    expect(await refreshWorks(a)).toBe(false);
    expect(await refreshWorks(b)).toBe(false);
    expect(await refreshWorks(docs)).toBe(false);
    // Outside the suite, and in the other browser: untouched.
    expect(await refreshWorks(chat)).toBe(true);
    expect(await refreshWorks(elsewhere)).toBe(true);

    const [token] = await until('B\'s logout token', () => tokensAt('/b').length ? tokensAt('/b') : undefined);
    const payload = await verifyLogoutToken(token!, apps.B!.client_id);
    expect(payload).toMatchObject({ sub: alice, sid: b.sid, aud: apps.B!.client_id });
    expect(receiver.failNext.get('/b')).toBe(0);

    expect(await suiteAudits()).toEqual([{
      actor_type: 'user', actor_id: alice, target_type: 'app', target_id: apps.A!.id,
      changes: {
        fromClientId: apps.A!.client_id,
        suites: [{ id: suiteId, name: 'Office' }],
        apps: [
          { appId: apps.B!.id, clientId: apps.B!.client_id, protocol: 'oidc', sid: b.sid, backchannelLogout: true },
          { appId: apps.Docs!.id, clientId: apps.Docs!.client_id, protocol: 'oidc', sid: docs.sid, backchannelLogout: false },
        ],
      },
    }]);
    await settle();
    // One token for B (its retry is not a second one), none for the app outside the suite.
    expect(tokensAt('/b')).toHaveLength(1);
    expect(tokensAt('/chat')).toEqual([]);

    // The person is still signed in to OneID ("this app only"): B signs them in again without a password.
    const again = await signIn('B', browser);
    expect(again.singleSignOn).toBe(true);
    expect(again.sid).not.toBe(b.sid);
    expect(await refreshWorks(again)).toBe(true);
  }, 90000);

  it('changes nothing in the suite when the person signs out of an app outside it', async () => {
    const browser = new Browser();
    const a = await signIn('A', browser);
    const chat = await signIn('Chat', browser);
    const before = (await suiteAudits()).length;
    await signOut(browser, chat, false);
    expect(await refreshWorks(chat)).toBe(false);
    expect(await refreshWorks(a)).toBe(true);
    await settle();
    expect(tokensAt('/a')).toEqual([]);
    expect(await suiteAudits()).toHaveLength(before);
  }, 60000);
});

describe('signing out of OneID entirely from an app of a suite ("yes")', () => {
  beforeEach(() => { receiver.received.length = 0; });

  // Every app of the session is told at this logout, as before suites: oidc-provider names them,
  // and their logout tokens go through the job queue (also to this test's loopback receiver,
  // which oidc-provider's own request would refuse). The suite adds nothing of its own: no suite
  // record, no second logout token.
  it('ends every app\'s session and tells each app once, without a suite sign-out of its own', async () => {
    const browser = new Browser();
    const a = await signIn('A', browser);
    const b = await signIn('B', browser);
    const before = (await suiteAudits()).length;
    await signOut(browser, a, true);
    expect(await refreshWorks(a)).toBe(false);
    expect(await refreshWorks(b)).toBe(false);
    const [tokenA] = await until('A\'s logout token', () => tokensAt('/a').length ? tokensAt('/a') : undefined);
    const [tokenB] = await until('B\'s logout token', () => tokensAt('/b').length ? tokensAt('/b') : undefined);
    expect(await verifyLogoutToken(tokenA!, apps.A!.client_id)).toMatchObject({ sub: alice, sid: a.sid });
    expect(await verifyLogoutToken(tokenB!, apps.B!.client_id)).toMatchObject({ sub: alice, sid: b.sid });
    await settle();
    expect(tokensAt('/a')).toHaveLength(1);
    expect(tokensAt('/b')).toHaveLength(1);
    expect(await suiteAudits()).toHaveLength(before);
    // Signed out of OneID: the next sign-in asks for the password again.
    expect((await signIn('B', browser)).singleSignOn).toBe(false);
  }, 60000);
});

describe('signing out of OneID itself (the home page\'s button)', () => {
  beforeEach(() => { receiver.received.length = 0; });

  it('ends every app\'s session and tells each OIDC app with a back-channel logout URI once', async () => {
    const browser = new Browser();
    const a = await signIn('A', browser);
    const b = await signIn('B', browser);
    const docs = await signIn('Docs', browser);
    const home = await browser.navigate(`${server.url}/`);
    await browser.submit(home, '/logout', {});
    for (const s of [a, b, docs]) expect(await refreshWorks(s)).toBe(false);
    const [tokenA] = await until('A\'s logout token', () => tokensAt('/a').length ? tokensAt('/a') : undefined);
    const [tokenB] = await until('B\'s logout token', () => tokensAt('/b').length ? tokensAt('/b') : undefined);
    expect(await verifyLogoutToken(tokenA!, apps.A!.client_id)).toMatchObject({ sub: alice, sid: a.sid });
    expect(await verifyLogoutToken(tokenB!, apps.B!.client_id)).toMatchObject({ sub: alice, sid: b.sid });
    await settle();
    expect(receiver.received.map((r) => r.path).sort()).toEqual(['/a', '/b']);
  }, 60000);
});

/** node-saml as Payroll's service provider. */
const payrollSp = (): SAML => new SAML({
  entryPoint: `${server.url}/saml/sso`, logoutUrl: `${server.url}/saml/slo`, issuer: payroll.entityId, callbackUrl: payroll.acsUrl,
  audience: payroll.entityId, idpCert: toPem(idpCert), idpIssuer: `${server.url}/saml/metadata`, wantAssertionsSigned: true,
  wantAuthnResponseSigned: true, privateKey: payrollKeys.privateKeyPem, signatureAlgorithm: 'sha256',
});

/** Payroll signs alice in by SAML in `browser`, which holds her OneID session already (no prompt). */
async function payrollSignIn(browser: Browser): Promise<Profile> {
  const page: Page = await browser.navigate(await payrollSp().getAuthorizeUrlAsync('', undefined, {}));
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/.exec(page.html);
  expect(decodeHtml(form?.[1] ?? '')).toBe(payroll.acsUrl);
  const response = decodeHtml(/name="SAMLResponse" value="([^"]*)"/.exec(form![2]!)![1]!);
  const { profile } = await payrollSp().validatePostResponseAsync({ SAMLResponse: response });
  expect(profile?.nameID).toBe('alice@example.com');
  return profile!;
}

/** A Redirect-binding message as node-saml's validateRedirectAsync takes it. */
function redirectMessage(url: string): { container: Record<string, string>; raw: string; xml: string } {
  const u = new URL(url);
  const container = Object.fromEntries(u.searchParams) as Record<string, string>;
  return { container, raw: u.search.slice(1), xml: inflateRawSync(Buffer.from(container.SAMLRequest ?? container.SAMLResponse!, 'base64')).toString('utf8') };
}

const participants = async (appId: string): Promise<number> => Number((await db('saml_session_participants').where({ app_id: appId }).count<{ count: string }[]>('* as count'))[0]!.count);

describe('suite sign-out and the suite\'s SAML app', () => {
  beforeAll(async () => { await db('suites').where({ id: suiteId }).update({ suite_signout: true }); });
  beforeEach(() => { receiver.received.length = 0; });

  it('signing out of A only takes the browser through Payroll\'s single logout, then back to A; OneID stays signed in', async () => {
    const browser = new Browser();
    const a = await signIn('A', browser);
    const profile = await payrollSignIn(browser);
    expect(await participants(payroll.id)).toBe(1);
    const url = client.buildEndSessionUrl(a.config, { id_token_hint: a.tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
    const confirm = await browser.navigate(url.toString(), POST_LOGOUT);
    const atPayroll = await browser.submit(confirm, '/session/end/confirm', {}, payroll.sloUrl);
    expect(atPayroll.url.startsWith(`${payroll.sloUrl}?`)).toBe(true);
    const request = redirectMessage(atPayroll.url);
    expect(request.container.Signature).toBeTruthy();
    const asPayroll = await payrollSp().validateRedirectAsync(request.container, request.raw);
    expect(asPayroll.loggedOut).toBe(true);
    expect(asPayroll.profile).toMatchObject({ nameID: profile.nameID, sessionIndex: profile.sessionIndex });
    // Payroll's answer ends the chain at A's post-logout URI.
    const end = await browser.navigate(await payrollSp().getLogoutResponseUrlAsync(asPayroll.profile!, request.container.RelayState!, {}, true), POST_LOGOUT);
    expect(end.url).toBe(`${POST_LOGOUT}?state=bye`);
    expect(await participants(payroll.id)).toBe(0);
    const [record] = (await suiteAudits()).slice(-1);
    expect(record!.changes.apps).toEqual([{ appId: payroll.id, clientId: `saml-${payroll.id}`, protocol: 'saml', sid: null, backchannelLogout: false }]);
    // "This app only": OneID's own session goes on, Payroll signs in again without a password.
    expect((await payrollSignIn(browser)).sessionIndex).not.toBe(profile.sessionIndex);
  }, 60000);

  it('Payroll\'s single logout tells B by back-channel logout too', async () => {
    const browser = new Browser();
    await signIn('A', browser);
    const b = await signIn('B', browser);
    const profile = await payrollSignIn(browser);
    const res = await browser.request(await payrollSp().getLogoutUrlAsync(profile, 'relay', {}));
    expect(res.status).toBe(303);
    const answer = redirectMessage(new URL(res.headers.get('location')!).toString());
    expect(answer.xml).toContain('urn:oasis:names:tc:SAML:2.0:status:Success');
    expect(await refreshWorks(b)).toBe(false);
    const [token] = await until('B\'s logout token', () => tokensAt('/b').length ? tokensAt('/b') : undefined);
    expect(await verifyLogoutToken(token!, apps.B!.client_id)).toMatchObject({ sub: alice, sid: b.sid });
    const [record] = (await suiteAudits()).slice(-1);
    expect(record).toMatchObject({ target_id: payroll.id, changes: { fromClientId: `saml-${payroll.id}` } });
    expect(record!.changes.apps.map((x: { clientId: string }) => x.clientId)).toEqual([apps.A!.client_id, apps.B!.client_id]);
  }, 60000);
});
