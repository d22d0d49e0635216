// Black-box: SAML single logout (#19) on OneID on a port, with @node-saml/node-saml as the
// service providers (it builds and signs their LogoutRequests and LogoutResponses and checks
// OneID's), openid-client as an OIDC app in the same browser, and Debian's xmlsec1 checking the
// signature of a LogoutRequest OneID posts. The browser is test/helpers/browser.ts's cookie jar;
// SP endpoints are never contacted: the tests read OneID's redirects and auto-post pages.
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Knex } from 'knex';
import * as client from 'openid-client';
import { SAML, type Profile } from '@node-saml/node-saml';
import { SignedXml } from 'xml-crypto';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, decodeHtml, startSignIn, type Page } from '../helpers/browser.ts';
import { discover, redeem } from '../helpers/oidc-app.ts';
import { createDb } from '../../src/db/knex.ts';
import { insertApp, type OidcClientSettings } from '../../src/apps/apps.repo.ts';
import { insertSamlSp, type SamlSpValues } from '../../src/apps/saml-providers.repo.ts';
import { x509 } from '../../src/keys/x509.ts';

const PASSWORD = 'correct-horse-battery';
const REDIRECT = 'http://127.0.0.1:9/callback';
const POST_LOGOUT = 'http://127.0.0.1:9/signed-out';
const PROTOCOL = 'urn:oasis:names:tc:SAML:2.0:protocol';
const ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';

jest.setTimeout(120_000);

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let sql: pg.Client;
let knex: Knex;
let closeKnex: () => Promise<void>;
let idpCert: string;
const people: Record<'alice' | 'bob' | 'carol' | 'dan', string> = {} as never;
let oidcApp: { client_id: string; client_secret: string };

interface SpKeys { privateKeyPem: string; certificateBase64: string }
/** `signs`: the app registered its certificate (its messages are signed, as OneID then requires). */
interface SpApp { appId: string; entityId: string; acsUrl: string; sloUrl: string; keys: SpKeys; signs: boolean }
/** a, b: Redirect SLO; p: POST SLO (all with a signing certificate); n: no certificate (signs nothing). */
const apps: Record<'a' | 'b' | 'p' | 'n', SpApp> = {} as never;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-saml-slo-'));

/** An SP's request-signing key and its self-signed certificate (base64 DER). */
async function spKeys(name: string): Promise<SpKeys> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^./, '1'), name: `CN=${name}`,
    notBefore: new Date(Date.now() - 86400_000), notAfter: new Date(Date.now() + 365 * 86400_000), signingAlgorithm: alg, keys,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return {
    privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`,
    certificateBase64: Buffer.from(cert.rawData).toString('base64'),
  };
}

const pem = (base64Der: string): string => `-----BEGIN CERTIFICATE-----\n${base64Der.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;

/** A SAML app as an administrator registers it: open to everyone, signing certificate, SLO URL. */
async function samlApp(slug: string, sp: Partial<SamlSpValues> = {}): Promise<SpApp> {
  const appId = randomUUID();
  const keys = await spKeys(`${slug} sp`);
  const base = `http://${slug}.sp.example.test`;
  const app: SpApp = { appId, entityId: `${base}/metadata`, acsUrl: `${base}/acs`, sloUrl: `${base}/slo`, keys, signs: sp.signing_certificates?.length !== 0 };
  await insertApp(knex, {
    id: appId, name: `App ${slug}`, description: null, logo_url: null, protocol: 'saml', first_party: true,
    client_id: `saml-${appId}`, client_secret_hash: null, allow_no_pkce: false,
    oidc: {} as OidcClientSettings, access: 'everyone', admin_roles: [], signin_policy: null,
  });
  await insertSamlSp(knex, {
    app_id: appId, entity_id: app.entityId, acs_urls: [{ location: app.acsUrl, binding: 'post', index: 0, isDefault: true }],
    slo_url: app.sloUrl, slo_binding: 'redirect', signing_certificates: [keys.certificateBase64], encryption_certificate: null,
    encrypt_assertions: false, name_id_format: 'emailAddress', attribute_mapping: null, sign_response: true, sign_assertion: true,
    want_authn_requests_signed: false, ...sp,
  });
  return app;
}

/** node-saml configured as the app's SP; without `signed`, it signs nothing. */
function nodeSp(app: SpApp, signed = app.signs): SAML {
  return new SAML({
    entryPoint: `${server.url}/saml/sso`,
    logoutUrl: `${server.url}/saml/slo`,
    issuer: app.entityId,
    callbackUrl: app.acsUrl,
    audience: app.entityId,
    idpCert: pem(idpCert),
    idpIssuer: `${server.url}/saml/metadata`,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: true,
    validateInResponseTo: 'always' as never,
    ...(signed ? { privateKey: app.keys.privateKeyPem, signatureAlgorithm: 'sha256' as const } : {}),
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await Promise.all((['alice', 'bob', 'carol', 'dan'] as const).map((u) => runCli(['users', 'create', '--username', u, '--email', `${u}@example.com`, '--password', PASSWORD], env)));
  for (const [i, u] of (['alice', 'bob', 'carol', 'dan'] as const).entries()) {
    expect(created[i]!.code).toBe(0);
    people[u] = created[i]!.json.id;
  }
  const oidc = await runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT, '--first-party'], env);
  expect(oidc.code).toBe(0);
  oidcApp = oidc.json;
  const handle = createDb({ databaseUrl: db.url, databasePoolMax: 2, dataDir: '/nonexistent/unused' });
  knex = handle.db;
  closeKnex = handle.close;
  apps.a = await samlApp('a');
  apps.b = await samlApp('b');
  apps.p = await samlApp('p', { slo_binding: 'post' });
  apps.n = await samlApp('n', { signing_certificates: [] });
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  server = await startServer(env);
  const metadata = await (await fetch(`${server.url}/saml/metadata`)).text();
  idpCert = /<(?:ds:)?X509Certificate>([^<]+)</.exec(metadata)![1]!.replace(/\s+/g, '');
});

afterAll(async () => {
  await sql?.end();
  await closeKnex?.();
  await server?.stop();
  await db?.drop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The hidden field `name` of the auto-post form on `page`, and the form's action. */
function autoPost(page: Page): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*action="([^"]*)"[^>]*id="saml-post"[^>]*>([\s\S]*?)<\/form>/.exec(page.html);
  if (!form) throw new Error(`no auto-post form on ${page.url} (${page.status}):\n${page.html.slice(0, 1500)}`);
  const fields: Record<string, string> = {};
  for (const input of form[2]!.matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
    fields[/name="([^"]*)"/.exec(input[0])![1]!] = decodeHtml(/value="([^"]*)"/.exec(input[0])?.[1] ?? '');
  }
  return { action: decodeHtml(form[1]!), fields };
}

/**
 * SP-initiated sign-in to `app` in `browser`: the password is typed when OneID asks for it (it
 * must, when `expectPrompt`, and must not otherwise). node-saml checks the Response.
 */
async function samlSignIn(browser: Browser, app: SpApp, login: string, expectPrompt: boolean): Promise<Profile> {
  const sp = nodeSp(app);
  let page = await browser.navigate(await sp.getAuthorizeUrlAsync('', undefined, {}));
  expect(page.html.includes('data-step="identify"')).toBe(expectPrompt);
  if (expectPrompt) page = await browser.submit(page, '/password', { login, password: PASSWORD });
  const post = autoPost(page);
  expect(post.action).toBe(app.acsUrl);
  const { profile } = await sp.validatePostResponseAsync({ SAMLResponse: post.fields.SAMLResponse! });
  expect(profile?.nameID).toBe(`${login}@example.com`);
  return profile!;
}

/**
 * The OIDC app signs in in `browser`, which already holds a OneID session: no prompt, straight
 * back to the redirect URI; its tokens.
 */
async function oidcSignedIn(browser: Browser, scope: string): Promise<{ config: Awaited<ReturnType<typeof discover>>; tokens: Awaited<ReturnType<typeof redeem>> }> {
  const config = await discover(server.url, oidcApp);
  const started = await startSignIn(config, { redirect_uri: REDIRECT, scope }, browser);
  expect(started.page.url.startsWith(REDIRECT)).toBe(true);
  return { config, tokens: await redeem(config, started, started.page.url) };
}

/** One request without following the redirect: where OneID sends the browser. */
async function hop(browser: Browser, url: string, init: { method?: string; body?: URLSearchParams } = {}): Promise<string> {
  const res = await browser.request(url, init);
  const body = await res.text();
  if (res.status !== 303) throw new Error(`expected a redirect from ${url}, got ${res.status}:\n${body.slice(0, 1500)}`);
  return new URL(res.headers.get('location')!, url).toString();
}

/** A Redirect-binding URL as node-saml's validateRedirectAsync takes it. */
function redirectMessage(url: string): { container: Record<string, string>; raw: string; xml: string } {
  const u = new URL(url);
  const container = Object.fromEntries(u.searchParams) as Record<string, string>;
  const message = container.SAMLRequest ?? container.SAMLResponse!;
  return { container, raw: u.search.slice(1), xml: inflateRawSync(Buffer.from(message, 'base64')).toString('utf8') };
}

const statusCodes = (xml: string): string[] => [...xml.matchAll(/<(?:\w+:)?StatusCode Value="([^"]+)"/g)].map((m) => m[1]!);

/** The browser's OneID session row, live or not. */
async function sessionOf(browser: Browser): Promise<{ id: string; ended_at: Date | null; ended_reason: string | null } | undefined> {
  const token = browser.cookies.get(new URL(server.url).host)?.get('oneid.sso');
  if (!token) return undefined;
  const { rows } = await sql.query('select id, ended_at, ended_reason from sessions where token_hash = $1', [createHash('sha256').update(token).digest('base64url')]);
  return rows[0];
}

const liveSessionIds = async (userId: string): Promise<string[]> =>
  (await sql.query('select id from sessions where user_id = $1 and ended_at is null order by id', [userId])).rows.map((r) => r.id);

async function auditOf(action: string, userId: string): Promise<Record<string, any>[]> {
  const { rows } = await sql.query('select actor_id, target_id, changes from audit_events where action = $1 and actor_id = $2 order by seq', [action, userId]);
  return rows;
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

describe('SP-initiated single logout (HTTP-Redirect)', () => {
  it('A asks: OneID tells B with a signed LogoutRequest, takes B\'s answer, answers A with a signed Success; the OneID session is over', async () => {
    const browser = new Browser();
    const profileA = await samlSignIn(browser, apps.a, 'alice', true);
    const profileB = await samlSignIn(browser, apps.b, 'alice', false);
    const session = await sessionOf(browser);
    expect(session?.ended_at).toBeNull();

    const spA = nodeSp(apps.a);
    const spB = nodeSp(apps.b);
    const toB = await hop(browser, await spA.getLogoutUrlAsync(profileA, 'relay-of-a', {}));
    expect(toB.startsWith(`${apps.b.sloUrl}?`)).toBe(true);
    const requestToB = redirectMessage(toB);
    // node-saml accepts an unsigned Redirect message: that OneID signed is checked here.
    expect(requestToB.container.Signature).toBeTruthy();
    expect(requestToB.container.SigAlg).toBe('http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
    const asB = await spB.validateRedirectAsync(requestToB.container, requestToB.raw);
    expect(asB.loggedOut).toBe(true);
    expect(asB.profile).toMatchObject({ nameID: profileB.nameID, sessionIndex: profileB.sessionIndex });
    expect(requestToB.xml).toContain(`Destination="${apps.b.sloUrl}"`);
    // The chain's state travels as RelayState (at most 80 bytes).
    const chain = requestToB.container.RelayState!;
    expect(Buffer.byteLength(chain)).toBeLessThanOrEqual(80);

    // B's answer comes back; OneID answers A.
    const toA = await hop(browser, await spB.getLogoutResponseUrlAsync(asB.profile!, chain, {}, true));
    expect(toA.startsWith(`${apps.a.sloUrl}?`)).toBe(true);
    const responseToA = redirectMessage(toA);
    expect(responseToA.container.Signature).toBeTruthy();
    expect(responseToA.container.RelayState).toBe('relay-of-a');
    const asA = await spA.validateRedirectAsync(responseToA.container, responseToA.raw); // InResponseTo checked against A's request
    expect(asA.loggedOut).toBe(true);
    expect(statusCodes(responseToA.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success']);
    expect(responseToA.xml).toContain(`Destination="${apps.a.sloUrl}"`);

    // The session is over: the cookie is gone, the row ended, and A's next request asks for a sign-in.
    expect(await sessionOf(browser)).toBeUndefined();
    const { rows } = await sql.query('select ended_reason from sessions where id = $1', [session!.id]);
    expect(rows[0].ended_reason).toBe('saml_logout');
    const again = await browser.navigate(await spA.getAuthorizeUrlAsync('', undefined, {}));
    expect(again.html).toContain('data-step="identify"');
    const audit = await auditOf('saml.logout', people.alice);
    expect(audit.at(-1)).toMatchObject({ target_id: session!.id, changes: { initiatorAppId: apps.a.appId, told: [apps.b.appId], failed: [], partial: false } });
    expect((await sql.query('select count(*)::int as n from saml_session_participants where session_id = $1', [session!.id])).rows[0].n).toBe(0);
  });

  it('a participant that refuses makes the logout partial: A gets Success with PartialLogout', async () => {
    const browser = new Browser();
    const profileA = await samlSignIn(browser, apps.a, 'carol', true);
    await samlSignIn(browser, apps.b, 'carol', false);
    const spA = nodeSp(apps.a);
    const spB = nodeSp(apps.b);
    const requestToB = redirectMessage(await hop(browser, await spA.getLogoutUrlAsync(profileA, '', {})));
    const asB = await spB.validateRedirectAsync(requestToB.container, requestToB.raw);
    const toA = await hop(browser, await spB.getLogoutResponseUrlAsync(asB.profile!, requestToB.container.RelayState!, {}, false));
    const responseToA = redirectMessage(toA);
    expect(statusCodes(responseToA.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success', 'urn:oasis:names:tc:SAML:2.0:status:PartialLogout']);
    expect((await auditOf('saml.logout', people.carol)).at(-1)?.changes).toMatchObject({ told: [], failed: [apps.b.appId], partial: true });
    // The same LogoutResponse again moves nothing: the chain has finished.
    const replayed = await browser.request(await spB.getLogoutResponseUrlAsync(asB.profile!, requestToB.container.RelayState!, {}, true));
    expect(replayed.status).toBe(400);
  });

  it('ends the OIDC app\'s grant in the same browser: its refresh token gets invalid_grant, prompt=none gets login_required', async () => {
    const browser = new Browser();
    const profileA = await samlSignIn(browser, apps.a, 'dan', true);
    // The OIDC app signs in without a prompt (the SAML sign-in's session), with a refresh token.
    const { config, tokens } = await oidcSignedIn(browser, 'openid profile offline_access');
    expect(tokens.refresh_token).toBeTruthy();
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!); // works before the logout
    expect(refreshed.refresh_token).toBeTruthy();

    const toA = await hop(browser, await nodeSp(apps.a).getLogoutUrlAsync(profileA, '', {}));
    const responseToA = redirectMessage(toA);
    expect(statusCodes(responseToA.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success']);

    await expect(client.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const passive = await startSignIn(config, { redirect_uri: REDIRECT, scope: 'openid', prompt: 'none' }, browser);
    expect(passive.page.url.startsWith(REDIRECT)).toBe(true);
    expect(new URL(passive.page.url).searchParams.get('error')).toBe('login_required');
    expect((await sql.query("select count(*)::int as n from oidc_payloads where account_id = $1 and model in ('Session', 'Grant', 'RefreshToken', 'AccessToken')", [people.dan])).rows[0].n).toBe(0);
  });
});

/**
 * A LogoutRequest for the HTTP-POST binding as an SP signs it (xml-crypto: enveloped, exclusive
 * c14n, RSA-SHA256, the signature after the Issuer); node-saml sends LogoutRequests by Redirect only.
 */
function postLogoutRequest(app: SpApp, profile: Profile): { id: string; SAMLRequest: string } {
  const id = `_${randomBytes(16).toString('hex')}`;
  const xml = `<samlp:LogoutRequest xmlns:samlp="${PROTOCOL}" xmlns:saml="${ASSERTION}" ID="${id}" Version="2.0" IssueInstant="${new Date().toISOString()}" Destination="${server.url}/saml/slo">`
    + `<saml:Issuer>${app.entityId}</saml:Issuer><saml:NameID Format="${profile.nameIDFormat}">${profile.nameID}</saml:NameID>`
    + `<samlp:SessionIndex>${profile.sessionIndex}</samlp:SessionIndex></samlp:LogoutRequest>`;
  const sig = new SignedXml({
    privateKey: app.keys.privateKeyPem, signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  });
  sig.addReference({
    xpath: '/*', digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
  });
  sig.computeSignature(xml, { prefix: 'ds', location: { reference: "/*/*[local-name(.)='Issuer']", action: 'after' } });
  return { id, SAMLRequest: Buffer.from(sig.getSignedXml()).toString('base64') };
}

describe('SP-initiated single logout (HTTP-POST)', () => {
  it('P posts a signed LogoutRequest cross-site: OneID comes back by GET with its cookie, tells A, and posts P a signed LogoutResponse', async () => {
    const browser = new Browser();
    const profileP = await samlSignIn(browser, apps.p, 'dan', true);
    const profileA = await samlSignIn(browser, apps.a, 'dan', false);
    const session = await sessionOf(browser);
    const request = postLogoutRequest(apps.p, profileP);
    // A cross-site POST carries no SameSite=Lax cookie: sent without the browser's cookies.
    const posted = await fetch(`${server.url}/saml/slo`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ SAMLRequest: request.SAMLRequest, RelayState: 'from-p' }),
    });
    expect(posted.status).toBe(303);
    const resume = new URL(posted.headers.get('location')!, server.url).toString();
    expect(new URL(resume).pathname).toMatch(/^\/saml\/slo\/continue\//);
    expect((await sessionOf(browser))?.ended_at).toBeNull(); // nothing ended before the browser's own session is known

    const toA = redirectMessage(await hop(browser, resume));
    const asA = await nodeSp(apps.a).validateRedirectAsync(toA.container, toA.raw);
    expect(asA.profile).toMatchObject({ nameID: profileA.nameID, sessionIndex: profileA.sessionIndex });
    const page = await browser.navigate(await nodeSp(apps.a).getLogoutResponseUrlAsync(asA.profile!, toA.container.RelayState!, {}, true));
    const post = autoPost(page);
    expect(post.action).toBe(apps.p.sloUrl);
    expect(post.fields.RelayState).toBe('from-p');
    const xml = Buffer.from(post.fields.SAMLResponse!, 'base64').toString('utf8');
    expect(xml).toContain(`InResponseTo="${request.id}"`);
    expect(statusCodes(xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success']);
    // node-saml looks for InResponseTo on a Response only (checked above): its signature check here.
    const asP = new SAML({ ...nodeSp(apps.p).options, validateInResponseTo: 'never' as never });
    expect(await asP.validatePostResponseAsync({ SAMLResponse: post.fields.SAMLResponse! })).toMatchObject({ loggedOut: true });
    const file = path.join(tmp, 'logout-response.xml');
    const certFile = path.join(tmp, 'oneid-response.pem');
    fs.writeFileSync(file, xml);
    fs.writeFileSync(certFile, pem(idpCert));
    expect((await run('/usr/bin/xmlsec1', ['--verify', '--id-attr:ID', `${PROTOCOL}:LogoutResponse`, '--pubkey-cert-pem', certFile, file])).code).toBe(0);
    const { rows } = await sql.query('select ended_reason from sessions where id = $1', [session!.id]);
    expect(rows[0].ended_reason).toBe('saml_logout');

    // The kept request is used once: the resume URL again ends nothing more.
    expect((await browser.request(resume)).status).toBe(400);
  });

  it('a posted LogoutRequest whose signature does not match its content is refused before anything is kept', async () => {
    const browser = new Browser();
    const profile = await samlSignIn(browser, apps.p, 'alice', true);
    const request = postLogoutRequest(apps.p, profile);
    const forged = Buffer.from(Buffer.from(request.SAMLRequest, 'base64').toString('utf8').replace(profile.nameID, 'bob@example.com')).toString('base64');
    const res = await browser.request(`${server.url}/saml/slo`, { method: 'POST', body: new URLSearchParams({ SAMLRequest: forged }) });
    expect(res.status).toBe(400);
    expect((await sessionOf(browser))?.ended_at).toBeNull();
    expect((await sql.query('select count(*)::int as n from saml_logouts where initiator_request_id = $1', [request.id])).rows[0].n).toBe(0);
  });
});

describe('LogoutRequests that must change nothing', () => {
  it('one naming another person\'s session is answered Requester/RequestDenied and both sessions stay', async () => {
    const aliceBrowser = new Browser();
    const bobBrowser = new Browser();
    const aliceProfile = await samlSignIn(aliceBrowser, apps.a, 'alice', true);
    await samlSignIn(bobBrowser, apps.a, 'bob', true);
    const before = { alice: await liveSessionIds(people.alice), bob: await liveSessionIds(people.bob) };
    const own = { alice: (await sessionOf(aliceBrowser))!.id, bob: (await sessionOf(bobBrowser))!.id };
    expect(before.alice).toContain(own.alice);
    expect(before.bob).toContain(own.bob);

    // A signs a LogoutRequest for Alice's session, and it arrives in Bob's browser.
    const answer = redirectMessage(await hop(bobBrowser, await nodeSp(apps.a).getLogoutUrlAsync(aliceProfile, 'r', {})));
    expect(answer.container.Signature).toBeTruthy();
    expect(statusCodes(answer.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Requester', 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied']);
    await expect(nodeSp(apps.a).validateRedirectAsync(answer.container, answer.raw)).rejects.toThrow(/Bad status code/);

    expect(await liveSessionIds(people.alice)).toEqual(before.alice);
    expect(await liveSessionIds(people.bob)).toEqual(before.bob);
    await samlSignIn(aliceBrowser, apps.a, 'alice', false);
    await samlSignIn(bobBrowser, apps.a, 'bob', false);
    expect((await sql.query('select count(*)::int as n from saml_session_participants where session_id = any($1)', [[own.alice, own.bob]])).rows[0].n).toBe(2);
  });

  it('one without a session here is answered Success and ends no other session', async () => {
    const browser = new Browser();
    const profile = await samlSignIn(browser, apps.a, 'alice', true);
    const live = await liveSessionIds(people.alice);
    const elsewhere = new Browser();
    const answer = redirectMessage(await hop(elsewhere, await nodeSp(apps.a).getLogoutUrlAsync(profile, '', {})));
    expect(statusCodes(answer.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success']);
    expect(await liveSessionIds(people.alice)).toEqual(live);
  });

  it('an unsigned one from an app with a signing certificate is refused, nothing ended', async () => {
    const browser = new Browser();
    const profile = await samlSignIn(browser, apps.a, 'bob', true);
    const session = await sessionOf(browser);
    const res = await browser.request(await nodeSp(apps.a, false).getLogoutUrlAsync(profile, '', {}));
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('must be signed');
    expect((await sessionOf(browser))?.ended_at).toBeNull();
    expect(session?.ended_at).toBeNull();
    await samlSignIn(browser, apps.a, 'bob', false);
  });

  it('an unsigned one from an app without a certificate must name the SessionIndex: by NameID alone it is denied', async () => {
    const browser = new Browser();
    const profile = await samlSignIn(browser, apps.n, 'dan', true);
    const sp = nodeSp(apps.n, false);
    const byNameId = redirectMessage(await hop(browser, await sp.getLogoutUrlAsync({ ...profile, sessionIndex: undefined }, '', {})));
    expect(byNameId.container.Signature).toBeTruthy();
    expect(statusCodes(byNameId.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Requester', 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied']);
    expect((await sessionOf(browser))?.ended_at).toBeNull();
    const withIndex = redirectMessage(await hop(browser, await sp.getLogoutUrlAsync(profile, '', {})));
    expect(statusCodes(withIndex.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success']);
    expect(await sessionOf(browser)).toBeUndefined();
  });

  it('one signed with another key is refused, nothing ended', async () => {
    const browser = new Browser();
    const profile = await samlSignIn(browser, apps.a, 'bob', true);
    const impostor = new SAML({ ...nodeSp(apps.a).options, privateKey: apps.b.keys.privateKeyPem });
    const res = await browser.request(await impostor.getLogoutUrlAsync(profile, '', {}));
    expect(res.status).toBe(400);
    expect((await sessionOf(browser))?.ended_at).toBeNull();
  });

  it('one replayed is refused: the session signed in again stays', async () => {
    const browser = new Browser();
    const profile = await samlSignIn(browser, apps.a, 'carol', true);
    const url = await nodeSp(apps.a).getLogoutUrlAsync(profile, '', {});
    const first = redirectMessage(await hop(browser, url));
    expect(statusCodes(first.xml)).toEqual(['urn:oasis:names:tc:SAML:2.0:status:Success']);
    expect(await sessionOf(browser)).toBeUndefined();
    await samlSignIn(browser, apps.a, 'carol', true);
    const replay = await browser.request(url);
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain('already used');
    expect((await sessionOf(browser))?.ended_at).toBeNull();
  });
});

describe('an OIDC app\'s RP-initiated logout with SAML participants', () => {
  it('tells A with a signed LogoutRequest, then goes on to the app\'s post_logout_redirect_uri', async () => {
    const browser = new Browser();
    const profileA = await samlSignIn(browser, apps.a, 'carol', true);
    const { config, tokens } = await oidcSignedIn(browser, 'openid');
    const url = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
    const confirm = await browser.navigate(url.toString(), POST_LOGOUT);
    const atA = await browser.submit(confirm, '/session/end/confirm', { logout: 'yes' }, apps.a.sloUrl);
    expect(atA.url.startsWith(`${apps.a.sloUrl}?`)).toBe(true);
    expect(await sessionOf(browser)).toBeUndefined();
    const requestToA = redirectMessage(atA.url);
    expect(requestToA.container.Signature).toBeTruthy();
    const asA = await nodeSp(apps.a).validateRedirectAsync(requestToA.container, requestToA.raw);
    expect(asA.profile).toMatchObject({ nameID: profileA.nameID, sessionIndex: profileA.sessionIndex });
    // A's answer ends the chain at the OIDC app's post-logout URI, state and all.
    const end = await browser.navigate(await nodeSp(apps.a).getLogoutResponseUrlAsync(asA.profile!, requestToA.container.RelayState!, {}, true), POST_LOGOUT);
    expect(end.url).toBe(`${POST_LOGOUT}?state=bye`);
  });
});

describe('OneID\'s own sign-out with SAML participants', () => {
  it('tells A (Redirect) then P (POST, signed: xmlsec1 verifies it) and ends on the signed-out home page', async () => {
    const browser = new Browser();
    const profileA = await samlSignIn(browser, apps.a, 'bob', true);
    const profileP = await samlSignIn(browser, apps.p, 'bob', false);
    const session = await sessionOf(browser);
    const home = await browser.navigate(`${server.url}/`);
    expect(home.html).toContain('id="sign-out"');

    const atA = await browser.submit(home, '/logout', {}, apps.a.sloUrl);
    expect(atA.url.startsWith(`${apps.a.sloUrl}?`)).toBe(true);
    expect(await sessionOf(browser)).toBeUndefined();
    const requestToA = redirectMessage(atA.url);
    expect(requestToA.container.Signature).toBeTruthy();
    const asA = await nodeSp(apps.a).validateRedirectAsync(requestToA.container, requestToA.raw);
    expect(asA.profile).toMatchObject({ nameID: profileA.nameID, sessionIndex: profileA.sessionIndex });

    // A's answer; OneID posts the next LogoutRequest to P.
    const postPage = await browser.navigate(await nodeSp(apps.a).getLogoutResponseUrlAsync(asA.profile!, requestToA.container.RelayState!, {}, true));
    const post = autoPost(postPage);
    expect(post.action).toBe(apps.p.sloUrl);
    const xml = Buffer.from(post.fields.SAMLRequest!, 'base64').toString('utf8');
    const file = path.join(tmp, 'logout-request.xml');
    const certFile = path.join(tmp, 'oneid.pem');
    fs.writeFileSync(file, xml);
    fs.writeFileSync(certFile, pem(idpCert));
    const verified = await run('/usr/bin/xmlsec1', ['--verify', '--id-attr:ID', `${PROTOCOL}:LogoutRequest`, '--pubkey-cert-pem', certFile, file]);
    expect(verified.stderr).toContain('OK');
    expect(verified.code).toBe(0);
    const tampered = path.join(tmp, 'logout-request-tampered.xml');
    fs.writeFileSync(tampered, xml.replace(profileP.nameID, 'mallory@example.com'));
    expect((await run('/usr/bin/xmlsec1', ['--verify', '--id-attr:ID', `${PROTOCOL}:LogoutRequest`, '--pubkey-cert-pem', certFile, tampered])).code).not.toBe(0);
    const asP = await nodeSp(apps.p).validatePostRequestAsync({ SAMLRequest: post.fields.SAMLRequest! });
    expect(asP.profile).toMatchObject({ nameID: profileP.nameID, sessionIndex: profileP.sessionIndex });

    // P answers (by Redirect); the chain ends where OneID's sign-out was going: the home page, signed out.
    const end = await browser.navigate(await nodeSp(apps.p).getLogoutResponseUrlAsync(asP.profile!, post.fields.RelayState!, {}, true));
    expect(end.url).toBe(`${server.url}/`);
    expect(end.html).toContain('id="signed-out"');
    expect((await auditOf('saml.logout', people.bob)).at(-1)).toMatchObject({
      target_id: session!.id, changes: { initiatorAppId: null, told: [apps.a.appId, apps.p.appId], partial: false },
    });
  });

  it('"sign out everywhere" on the security page takes this browser through its SAML apps\' logout, then to the sign-in page', async () => {
    const browser = new Browser();
    const profileA = await samlSignIn(browser, apps.a, 'carol', true);
    const other = new Browser();
    await samlSignIn(other, apps.b, 'carol', true);
    // The other browser holds an OIDC app's refresh token too: "everywhere" reaches it.
    const { config, tokens } = await oidcSignedIn(other, 'openid offline_access');
    expect(tokens.refresh_token).toBeTruthy();
    const security = await browser.navigate(`${server.url}/account/security`);
    const atA = await browser.submit(security, '/sessions/end-all', {}, apps.a.sloUrl);
    expect(atA.url.startsWith(`${apps.a.sloUrl}?`)).toBe(true);
    expect(await liveSessionIds(people.carol)).toEqual([]);
    const requestToA = redirectMessage(atA.url);
    const asA = await nodeSp(apps.a).validateRedirectAsync(requestToA.container, requestToA.raw);
    expect(asA.profile).toMatchObject({ nameID: profileA.nameID, sessionIndex: profileA.sessionIndex });
    const end = await hop(browser, await nodeSp(apps.a).getLogoutResponseUrlAsync(asA.profile!, requestToA.container.RelayState!, {}, true));
    expect(new URL(end).pathname).toBe('/login/start');
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('without SAML participants, goes straight to where it was going', async () => {
    const browser = new Browser();
    const config = await discover(server.url, oidcApp);
    const started = await startSignIn(config, { redirect_uri: REDIRECT, scope: 'openid offline_access' }, browser);
    const signedIn = await browser.submit(started.page, '/password', { login: 'carol', password: PASSWORD }, REDIRECT);
    const tokens = await redeem(config, started, signedIn.url);
    const home = await browser.navigate(`${server.url}/`);
    const end = await browser.submit(home, '/logout', {});
    expect(end.url).toBe(`${server.url}/`);
    expect(end.html).toContain('id="signed-out"');
    // OneID's sign-out ends the OIDC grant too (its refresh token outlived the sign-out before).
    await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });
});
