// Black-box: OneID as a SAML 2.0 IdP (#19) for service providers nobody here wrote, on a port:
// @node-saml/node-saml and Debian's python3-onelogin-saml2 (strict, schema-checked) as SPs, and
// Debian's xmlsec1 checking every signature and decrypting an encrypted assertion on its own.
// The person signs in through OneID's real sign-in pages (test/helpers/browser.ts's cookie jar).
// SAML apps are created with the repository (the registration service comes separately).
import { jest } from '@jest/globals';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import type { Knex } from 'knex';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser } from '../helpers/browser.ts';
import { makeSpKeys, toPem, type SpKeys } from '../helpers/saml-keys.ts';
import { authnRequestFromForm, createNodeSamlSp, fetchIdpMetadata, type IdpMetadata } from '../helpers/node-saml-sp.ts';
import { pythonSp, NAMEID_EMAIL } from '../helpers/python-saml.ts';
import { verifyEachSignature, xmlsecDecrypt } from '../helpers/xmlsec.ts';
import { continueToAutoPost, followRedirects, samlSignIn, startSaml } from '../helpers/saml-browserless.ts';
import { attributeValues as values, decodeSamlResponse as decode } from '../helpers/saml-response.ts';
import { createDb } from '../../src/db/knex.ts';
import { insertApp, type OidcClientSettings } from '../../src/apps/apps.repo.ts';
import { insertSamlSp, type SamlSpValues } from '../../src/apps/saml-providers.repo.ts';

const PASSWORD = 'correct-horse-battery';
const PAT = { login: 'pat', password: PASSWORD };
const EMAIL = 'pat@example.com';
const DISPLAY_NAME = 'Pat Example';
const GROUP = 'Wiki editors';
const ROLE = 'wiki.editor';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let knex: Knex;
let closeKnex: () => Promise<void>;
let patId: string;
/** The SP's request-signing key, and the key OneID encrypts assertions for. */
let spKeys: SpKeys;
let encKeys: SpKeys;

interface SpApp { appId: string; entityId: string; acsUrl: string; sloUrl: string }
const apps: Record<'redirect' | 'post' | 'python' | 'encrypted', SpApp> = {} as never;

jest.setTimeout(120_000);

/** A SAML app as an administrator would register it: an apps row (protocol saml) and its SP record. */
async function samlApp(name: string, sp: Partial<SamlSpValues> = {}): Promise<SpApp> {
  const appId = randomUUID();
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  // The SP never receives a request: the tests read the Response off OneID's auto-post page.
  const acsUrl = `https://${slug}.sp.example.test/saml/acs`;
  const sloUrl = `https://${slug}.sp.example.test/saml/slo`;
  const entityId = `https://${slug}.sp.example.test/saml/metadata`;
  await insertApp(knex, {
    id: appId, name, description: null, logo_url: null, protocol: 'saml', first_party: true,
    client_id: randomBytes(16).toString('base64url'), client_secret_hash: null, allow_no_pkce: false,
    oidc: {} as OidcClientSettings, access: 'assigned', admin_roles: [], signin_policy: null,
  });
  await insertSamlSp(knex, {
    app_id: appId, entity_id: entityId, acs_urls: [{ location: acsUrl, binding: 'post', index: 0, isDefault: true }],
    slo_url: sloUrl, slo_binding: 'redirect', signing_certificates: [], encryption_certificate: null, encrypt_assertions: false,
    name_id_format: 'emailAddress', attribute_mapping: null, sign_response: true, sign_assertion: true, want_authn_requests_signed: false,
    ...sp,
  });
  return { appId, entityId, acsUrl, sloUrl };
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  [spKeys, encKeys] = await Promise.all([makeSpKeys('saml-sso test sp'), makeSpKeys('saml-sso test sp encryption')]);
  const created = await runCli(['users', 'create', '--username', 'pat', '--email', EMAIL, '--name', DISPLAY_NAME, '--password', PASSWORD], env);
  expect(created.code).toBe(0);
  patId = created.json.id;

  const handle = createDb({ databaseUrl: db.url, databasePoolMax: 2, dataDir: '/nonexistent/unused' });
  knex = handle.db;
  closeKnex = handle.close;
  apps.redirect = await samlApp('Wiki');
  apps.post = await samlApp('Payroll', { signing_certificates: [spKeys.certificateBase64], want_authn_requests_signed: true });
  apps.python = await samlApp('Helpdesk', { signing_certificates: [spKeys.certificateBase64], want_authn_requests_signed: true });
  apps.encrypted = await samlApp('Vault', { encryption_certificate: encKeys.certificateBase64, encrypt_assertions: true });

  server = await startServer(env);
  admin = await adminClient(server.url, env, ['super_admin']);
  // Pat's group and this app's role, the same entitlements OIDC claims are made of.
  const group = await admin.call('POST', '/groups', { name: GROUP });
  expect(group.status).toBe(201);
  expect((await admin.call('POST', `/groups/${group.body.id}/members`, { userId: patId })).status).toBe(204);
  for (const app of Object.values(apps)) {
    expect((await admin.call('POST', `/apps/${app.appId}/roles`, { key: ROLE, name: 'Wiki editor' })).status).toBe(201);
    expect((await admin.call('POST', `/apps/${app.appId}/assignments`, { principalType: 'user', principalId: patId, roleKeys: [ROLE] })).status).toBe(201);
  }
});

afterAll(async () => {
  await closeKnex?.();
  await server?.stop();
  await db?.drop();
});

let metadataCache: IdpMetadata | undefined;
/** OneID's IdP metadata, read once from <ISSUER>/saml/metadata as an SP administrator would. */
async function idpMetadata(): Promise<IdpMetadata> {
  metadataCache ??= await fetchIdpMetadata(server.url);
  return metadataCache;
}
const oneIdCertPem = async (): Promise<string> => toPem((await idpMetadata()).signingCertificates[0]!);

/** The Response with the NameID's text changed and everything else (signatures too) as OneID sent it. */
const tamperNameId = (xml: string): string => {
  const changed = xml.replace(/(<(?:\w+:)?NameID\b[^>]*>)[^<]*(<\/(?:\w+:)?NameID>)/, '$1mallory@example.com$2');
  expect(changed).not.toBe(xml);
  return changed;
};
/** Whether the browser's OneID session (its oneid.sso cookie) is still live. */
async function hasLiveSession(browser: Browser): Promise<boolean> {
  const token = browser.cookies.get(new URL(server.url).host)?.get('oneid.sso');
  if (!token) return false;
  const hash = createHash('sha256').update(token).digest('base64url');
  const row = await knex('sessions').where({ token_hash: hash }).whereNull('ended_at').where('expires_at', '>', knex.fn.now()).first('id');
  return row !== undefined;
}

describe('node-saml SP, HTTP-Redirect binding, unsigned AuthnRequest', () => {
  it('signs the person in with the password; node-saml accepts the Response: NameID the email, attributes email, displayName, groups and roles', async () => {
    const sp = await createNodeSamlSp({ baseUrl: server.url, entityId: apps.redirect.entityId, acsUrl: apps.redirect.acsUrl, metadata: await idpMetadata() });
    const result = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl('relay-a') }, PAT);
    expect(result.signedIn).toBe(true);
    expect(result.acsUrl).toBe(apps.redirect.acsUrl);
    expect(result.RelayState).toBe('relay-a');
    const { profile, loggedOut } = await sp.validatePostResponse(result.SAMLResponse, result.RelayState);
    expect(loggedOut).toBe(false);
    expect(profile).toMatchObject({ issuer: `${server.url}/saml/metadata`, nameID: EMAIL, nameIDFormat: NAMEID_EMAIL, email: EMAIL, displayName: DISPLAY_NAME });
    expect(values(profile!.groups)).toEqual([GROUP]);
    expect(values(profile!.roles)).toEqual([ROLE]);
    expect(profile!.sessionIndex).toEqual(expect.any(String));
    // The same Response a second time: node-saml has used up the request it answered.
    await expect(sp.validatePostResponse(result.SAMLResponse)).rejects.toThrow(/InResponseTo/);
  });
});

describe('node-saml SP, HTTP-POST binding, signed AuthnRequests required', () => {
  it('accepts the signed AuthnRequest posted to /saml/sso and answers with a Response node-saml accepts', async () => {
    const sp = await createNodeSamlSp({
      baseUrl: server.url, entityId: apps.post.entityId, acsUrl: apps.post.acsUrl, metadata: await idpMetadata(), signing: spKeys, postBinding: true,
    });
    const form = authnRequestFromForm(await sp.authorizeForm('relay-b'));
    expect(form.action).toBe(`${server.url}/saml/sso`);
    const result = await samlSignIn(server.url, { post: form }, PAT);
    expect(result.acsUrl).toBe(apps.post.acsUrl);
    expect(result.RelayState).toBe('relay-b');
    const { profile } = await sp.validatePostResponse(result.SAMLResponse);
    expect(profile).toMatchObject({ nameID: EMAIL, email: EMAIL });
    expect(values(profile!.roles)).toEqual([ROLE]);
  });

  it('gives no assertion for an unsigned AuthnRequest to the app that requires signed ones', async () => {
    const unsigned = await createNodeSamlSp({ baseUrl: server.url, entityId: apps.post.entityId, acsUrl: apps.post.acsUrl, metadata: await idpMetadata(), postBinding: true });
    const browser = new Browser();
    const first = await startSaml(server.url, { post: authnRequestFromForm(await unsigned.authorizeForm()) }, browser);
    const { page, post, signedIn } = await continueToAutoPost(browser, first, PAT);
    expect(signedIn).toBe(false); // refused before any sign-in
    // Not shown to come from the app: a page for the person, nothing posted to the app.
    expect(post).toBeUndefined();
    expect(page.status).toBe(400);
    expect(page.html).toContain('saml.signature_required');
    // and the refusal is in the audit log with its code
    const refusals = await knex('audit_events').where({ action: 'saml.request_refused' }).select('changes');
    expect(refusals.map((r: { changes: unknown }) => (typeof r.changes === 'string' ? JSON.parse(r.changes) : r.changes))).toContainEqual({ code: 'saml.signature_required' });
  });
});

/** The strict python SP of the Helpdesk app, which signs its AuthnRequests. */
const python = async () => pythonSp({
  baseUrl: server.url, entityId: apps.python.entityId, acsUrl: apps.python.acsUrl, sloUrl: apps.python.sloUrl,
  idpCertificates: (await idpMetadata()).signingCertificates, sp: spKeys,
});

describe('python3-onelogin-saml2 strict SP, HTTP-Redirect binding, signed AuthnRequest', () => {

  it('accepts the Response in strict mode with schema checks, with the attributes; a second app visit needs no second sign-in', async () => {
    const sp = await python();
    const login = await sp.login({ relay_state: 'relay-c' });
    const result = await samlSignIn(server.url, { redirectUrl: login.url }, PAT);
    expect(result.RelayState).toBe('relay-c');
    const acs = await sp.acs(result.SAMLResponse, login.request_id);
    expect(acs.last_error_reason).toBeNull();
    expect(acs).toMatchObject({
      ok: true, errors: [], name_id: EMAIL, name_id_format: NAMEID_EMAIL,
      attributes: { email: [EMAIL], displayName: [DISPLAY_NAME], groups: [GROUP], roles: [ROLE] },
    });
    expect(acs.session_index).toEqual(expect.any(String));

    // Same browser, new AuthnRequest: OneID's session answers without the sign-in page.
    const again = await sp.login();
    const second = await samlSignIn(server.url, { redirectUrl: again.url }, undefined, result.browser);
    expect(second.signedIn).toBe(false);
    expect((await sp.acs(second.SAMLResponse, again.request_id)).ok).toBe(true);
    // The first AuthnRequest's ID is not what the second Response answers.
    expect((await sp.acs(second.SAMLResponse, login.request_id)).ok).toBe(false);
  });
});

describe('python3-onelogin-saml2 strict SP, HTTP-POST binding, signed AuthnRequest', () => {
  it('posts its signed AuthnRequest to /saml/sso and accepts the Response in strict mode, with the roles', async () => {
    const sp = await python();
    const login = await sp.loginPost({ relay_state: 'relay-post' });
    expect(login.xml).toMatch(/<ds:Signature/);
    const result = await samlSignIn(server.url, { post: { SAMLRequest: login.saml_request, RelayState: 'relay-post' } }, PAT);
    expect(result.signedIn).toBe(true);
    expect(result.acsUrl).toBe(apps.python.acsUrl);
    expect(result.RelayState).toBe('relay-post');
    const acs = await sp.acs(result.SAMLResponse, login.request_id);
    expect(acs.last_error_reason).toBeNull();
    expect(acs).toMatchObject({ ok: true, name_id: EMAIL, attributes: { roles: [ROLE], email: [EMAIL] } });
  });
});

describe('xmlsec1 on OneID\'s signatures', () => {
  it('verifies the Response\'s and the Assertion\'s signature, each on its own, with the certificate from the metadata', async () => {
    const sp = await createNodeSamlSp({ baseUrl: server.url, entityId: apps.redirect.entityId, acsUrl: apps.redirect.acsUrl, metadata: await idpMetadata() });
    const { SAMLResponse } = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() }, PAT);
    const xml = decode(SAMLResponse);
    const checked = await verifyEachSignature(xml, await oneIdCertPem());
    expect(checked.signatures.map((s) => [s.element, s.referencesParent, s.xmlsec.ok, s.xmlsec.output])).toEqual([
      ['Response', true, true, expect.any(String)], ['Assertion', true, true, expect.any(String)],
    ]);
    expect(checked.ok).toBe(true);
    // Not a check that passes anything: another key, or a changed NameID, fails.
    expect((await verifyEachSignature(xml, spKeys.certificatePem)).ok).toBe(false);
    expect((await verifyEachSignature(tamperNameId(xml), await oneIdCertPem())).signatures.map((s) => s.xmlsec.ok)).toEqual([false, false]);
  });

  it('verifies the signature of a Response that refuses (IsPassive without a session: NoPassive)', async () => {
    const sp = await createNodeSamlSp({ baseUrl: server.url, entityId: apps.redirect.entityId, acsUrl: apps.redirect.acsUrl, metadata: await idpMetadata(), extra: { passive: true } });
    const { SAMLResponse, signedIn } = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() });
    expect(signedIn).toBe(false);
    const xml = decode(SAMLResponse);
    expect(xml).toContain('urn:oasis:names:tc:SAML:2.0:status:NoPassive');
    expect(xml).not.toMatch(/Assertion/);
    const checked = await verifyEachSignature(xml, await oneIdCertPem());
    expect(checked.signatures.map((s) => [s.element, s.xmlsec.ok])).toEqual([['Response', true]]);
  });
});

describe('encrypted assertion (AES-256-GCM content, RSA-OAEP key transport)', () => {
  it('node-saml decrypts it with its key; xmlsec1 verifies the Response signature over the encrypted assertion and decrypts it with the SP key', async () => {
    const sp = await createNodeSamlSp({
      baseUrl: server.url, entityId: apps.encrypted.entityId, acsUrl: apps.encrypted.acsUrl, metadata: await idpMetadata(), decryptionPvk: encKeys.privateKeyPem,
    });
    const { SAMLResponse } = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() }, PAT);
    const xml = decode(SAMLResponse);
    expect(xml).toMatch(/EncryptedAssertion/);
    expect(xml).not.toContain(EMAIL);
    expect(xml).toContain('http://www.w3.org/2009/xmlenc11#aes256-gcm');
    expect(xml).toMatch(/rsa-oaep/);

    const { profile } = await sp.validatePostResponse(SAMLResponse);
    expect(profile).toMatchObject({ nameID: EMAIL, email: EMAIL });
    expect(values(profile!.roles)).toEqual([ROLE]);

    // Signed after encrypting: the Response's signature holds as sent.
    const outer = await verifyEachSignature(xml, await oneIdCertPem());
    expect(outer.signatures.map((s) => [s.element, s.xmlsec.ok])).toEqual([['Response', true]]);
    expect(outer.ok).toBe(true);

    const decrypted = await xmlsecDecrypt(xml, encKeys.privateKeyPem);
    expect(decrypted.ok).toBe(true);
    expect(decrypted.xml).toContain(EMAIL);
    const assertion = /<(\w+:)?Assertion\b[\s\S]*<\/(\w+:)?Assertion>/.exec(decrypted.xml);
    expect(assertion).not.toBeNull();
    // The assertion inside is signed too (sign_assertion), and that signature holds on its own.
    const inner = await verifyEachSignature(assertion![0], await oneIdCertPem());
    expect(inner.signatures.map((s) => [s.element, s.xmlsec.ok])).toEqual([['Assertion', true]]);
    // Only the SP's key opens it.
    expect((await xmlsecDecrypt(xml, spKeys.privateKeyPem)).ok).toBe(false);
  });
});

describe('a tampered Response', () => {
  it('is refused by node-saml and by the strict python SP when its NameID text is changed', async () => {
    const metadata = await idpMetadata();
    const node = await createNodeSamlSp({ baseUrl: server.url, entityId: apps.redirect.entityId, acsUrl: apps.redirect.acsUrl, metadata });
    const browser = new Browser();
    const viaNode = await samlSignIn(server.url, { redirectUrl: await node.authorizeUrl() }, PAT, browser);
    const nodeError = await node.validatePostResponse(Buffer.from(tamperNameId(decode(viaNode.SAMLResponse))).toString('base64')).then(() => undefined, (err: Error) => err);
    expect(nodeError).toBeInstanceOf(Error);
    expect(nodeError!.message).not.toMatch(/InResponseTo/); // refused for its signature, not for the request

    const python = pythonSp({
      baseUrl: server.url, entityId: apps.python.entityId, acsUrl: apps.python.acsUrl, sloUrl: apps.python.sloUrl,
      idpCertificates: metadata.signingCertificates, sp: spKeys,
    });
    const login = await python.login();
    const viaPython = await samlSignIn(server.url, { redirectUrl: login.url }, PAT, browser);
    const tampered = await python.acs(Buffer.from(tamperNameId(decode(viaPython.SAMLResponse))).toString('base64'), login.request_id);
    expect(tampered.ok).toBe(false);
    expect(tampered.name_id).toBeNull();
    // The Response as OneID sent it passes the same checks: the change alone was refused.
    expect((await python.acs(viaPython.SAMLResponse, login.request_id)).ok).toBe(true);
  });
});

/**
 * One browser signed in to the node-saml Wiki (with the password) and then to the strict python
 * Helpdesk (without a second prompt): both SPs, the browser, and what each SP was told.
 */
async function signedInToNodeAndPython() {
  const node = await createNodeSamlSp({ baseUrl: server.url, entityId: apps.redirect.entityId, acsUrl: apps.redirect.acsUrl, sloUrl: apps.redirect.sloUrl, metadata: await idpMetadata() });
  const sp = await python();
  const browser = new Browser();
  const atNode = await samlSignIn(server.url, { redirectUrl: await node.authorizeUrl() }, PAT, browser);
  const { profile: nodeProfile } = await node.validatePostResponse(atNode.SAMLResponse);
  const login = await sp.login();
  const atPython = await samlSignIn(server.url, { redirectUrl: login.url }, PAT, browser);
  expect(atPython.signedIn).toBe(false);
  const session = await sp.acs(atPython.SAMLResponse, login.request_id);
  expect(session.ok).toBe(true);
  return { node, python: sp, browser, nodeProfile, session };
}

describe('single logout, HTTP-Redirect binding', () => {
  it('node-saml: SP-initiated SLO ends the OneID session and node-saml accepts the signed LogoutResponse; the next AuthnRequest shows the sign-in page', async () => {
    const sp = await createNodeSamlSp({
      baseUrl: server.url, entityId: apps.redirect.entityId, acsUrl: apps.redirect.acsUrl, sloUrl: apps.redirect.sloUrl, metadata: await idpMetadata(),
    });
    const signIn = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() }, PAT);
    const { profile } = await sp.validatePostResponse(signIn.SAMLResponse);
    expect(await hasLiveSession(signIn.browser)).toBe(true);

    const out = await followRedirects(signIn.browser, await sp.logoutUrl(profile!, 'bye'), (u) => u.startsWith(apps.redirect.sloUrl));
    expect(out.stopped).toBe(true);
    expect(new URL(out.url).searchParams.get('RelayState')).toBe('bye');
    // validateRedirect refuses an unsigned one: OneID signs every LogoutResponse it sends.
    expect(await sp.validateLogoutResponseRedirect(out.url)).toMatchObject({ loggedOut: true });
    expect(await hasLiveSession(signIn.browser)).toBe(false);

    const again = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() }, PAT, signIn.browser);
    expect(again.signedIn).toBe(true);
  });

  it('python strict: SP-initiated SLO sends a signed LogoutRequest to the other SAML app of the session (node-saml), then answers python with a LogoutResponse it accepts', async () => {
    const { node, python, browser, nodeProfile, session } = await signedInToNodeAndPython();

    const logout = await python.logout({ name_id: session.name_id!, session_index: session.session_index!, name_id_format: session.name_id_format!, relay_state: 'python-bye' });
    const isSlo = (u: string) => u.startsWith(apps.redirect.sloUrl) || u.startsWith(apps.python.sloUrl);
    const toNode = await followRedirects(browser, logout.url, isSlo);
    expect(toNode.stopped).toBe(true);
    expect(toNode.url.startsWith(apps.redirect.sloUrl)).toBe(true);
    const incoming = await node.validateRedirect(toNode.url);
    expect(incoming).toMatchObject({ loggedOut: true, profile: { nameID: EMAIL, sessionIndex: nodeProfile!.sessionIndex } });

    const relay = new URL(toNode.url).searchParams.get('RelayState') ?? '';
    const toPython = await followRedirects(browser, await node.logoutResponseUrl(incoming.profile!, relay), isSlo);
    expect(toPython.stopped).toBe(true);
    expect(toPython.url.startsWith(apps.python.sloUrl)).toBe(true);
    expect(new URL(toPython.url).searchParams.get('RelayState')).toBe('python-bye');
    expect(await python.slsResponse(toPython.url, logout.request_id)).toMatchObject({ ok: true, errors: [] });
    expect(await hasLiveSession(browser)).toBe(false);
  });

  it('python strict receives OneID\'s LogoutRequest: node-saml starts SLO, python accepts the signed LogoutRequest, its signed LogoutResponse lets OneID answer node-saml with a full Success', async () => {
    const { node, python, browser, nodeProfile: profile } = await signedInToNodeAndPython();

    const isSlo = (u: string) => u.startsWith(apps.redirect.sloUrl) || u.startsWith(apps.python.sloUrl);
    const toPython = await followRedirects(browser, await node.logoutUrl(profile!, 'node-bye'), isSlo);
    expect(toPython.url.startsWith(apps.python.sloUrl)).toBe(true);
    const answered = await python.slsRequest(toPython.url);
    expect(answered).toMatchObject({ ok: true, errors: [] });
    const toNode = await followRedirects(browser, answered.url!, isSlo);
    expect(toNode.url.startsWith(apps.redirect.sloUrl)).toBe(true);
    expect(new URL(toNode.url).searchParams.get('RelayState')).toBe('node-bye');
    expect(await node.validateLogoutResponseRedirect(toNode.url)).toMatchObject({ loggedOut: true });
    const xml = inflateRawSync(Buffer.from(new URL(toNode.url).searchParams.get('SAMLResponse')!, 'base64')).toString('utf8');
    expect(xml).not.toContain('PartialLogout');
    expect(await hasLiveSession(browser)).toBe(false);
  });
});
