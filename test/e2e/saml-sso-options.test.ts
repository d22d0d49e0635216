// Black-box: the SAML SSO options an SP administrator and an AuthnRequest choose (#19), on OneID
// on a port with a real database, @node-saml/node-saml as the SP and test/helpers/browser.ts's
// cookie jar as the browser: registration from SP metadata by the CLI and by the admin API,
// NameID formats and NameIDPolicy, ForceAuthn, IsPassive, RequestedAuthnContext, attribute
// presets and mappings, and IdP-initiated sign-on. Responses are checked by node-saml and read
// as XML (test/helpers/saml-response.ts) for what node-saml's profile does not show.
import { jest } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { inflateRawSync } from 'node:zlib';
import path from 'node:path';
import { generateServiceProviderMetadata, SamlStatusError, ValidateInResponseTo } from '@node-saml/node-saml';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { Browser, type Page } from '../helpers/browser.ts';
import { makeSpKeys, type SpKeys } from '../helpers/saml-keys.ts';
import { createNodeSamlSp, fetchIdpMetadata, type IdpMetadata, type NodeSamlSp, type NodeSamlSpOptions } from '../helpers/node-saml-sp.ts';
import { continueToAutoPost, findAutoPostForm, samlSignIn, startSaml, type Credentials } from '../helpers/saml-browserless.ts';
import { attributeValues, decodeSamlResponse, readResponse } from '../helpers/saml-response.ts';

jest.setTimeout(120_000);

const PASSWORD = 'correct-horse-battery';
const PAT: Credentials = { login: 'pat', password: PASSWORD };
const SAM: Credentials = { login: 'sam', password: PASSWORD };
const PAT_EMAIL = 'pat@example.com';
const SAM_EMAIL = 'sam@example.com';
const GROUP = 'Wiki editors';
const ROLE = 'wiki.editor';

const FORMAT = {
  emailAddress: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  persistent: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  transient: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
  unspecified: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
  x509: 'urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName',
};
const STATUS = {
  success: 'urn:oasis:names:tc:SAML:2.0:status:Success',
  requester: 'urn:oasis:names:tc:SAML:2.0:status:Requester',
  responder: 'urn:oasis:names:tc:SAML:2.0:status:Responder',
  requestDenied: 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied',
  invalidNameIdPolicy: 'urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy',
  noPassive: 'urn:oasis:names:tc:SAML:2.0:status:NoPassive',
  authnFailed: 'urn:oasis:names:tc:SAML:2.0:status:AuthnFailed',
  noAuthnContext: 'urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext',
};
const URI_FORMAT = 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri';
const BASIC_FORMAT = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let admin: AdminClient;
let patId: string;
let samId: string;
let metadata: IdpMetadata;
let tmp: string;

interface Registered { appId: string; entityId: string; acsUrl: string }
/** The SAML apps made through the admin API in beforeAll, by their NameID format or purpose. */
const apps = {} as Record<'email' | 'persistentA' | 'persistentB' | 'transient' | 'unspecified' | 'azure' | 'custom' | 'idpInitiated', Registered>;

const spUrls = (slug: string): { entityId: string; acsUrl: string } => ({
  // Never contacted: the tests read the Response off OneID's auto-post page.
  entityId: `https://${slug}.sp.example.test/saml/metadata`,
  acsUrl: `https://${slug}.sp.example.test/saml/acs`,
});

/** A SAML app registered from fields with POST /admin/api/v1/apps/saml, open to everyone unless `fields` say otherwise. */
async function registerApp(slug: string, fields: Record<string, unknown> = {}): Promise<Registered> {
  const { entityId, acsUrl } = spUrls(slug);
  const res = await admin.call('POST', '/apps/saml', { name: `SP ${slug}`, entityId, acsUrls: [{ location: acsUrl }], access: 'everyone', ...fields });
  if (res.status !== 201) throw new Error(`could not register ${slug}: ${res.status} ${JSON.stringify(res.body)}`);
  return { appId: res.body.id, entityId, acsUrl };
}

/** A node-saml SP for a registered app; by default its AuthnRequests name no NameID format (the app's own applies). */
const spFor = (app: Registered, options: Partial<NodeSamlSpOptions> = {}): Promise<NodeSamlSp> =>
  createNodeSamlSp({ baseUrl: server.url, entityId: app.entityId, acsUrl: app.acsUrl, metadata, identifierFormat: null, ...options });

/** A full SP-initiated sign-on by `who` (in `browser`, signed in or not); node-saml validates the Response. */
async function signOn(sp: NodeSamlSp, who: Credentials, browser = new Browser()) {
  const result = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() }, who, browser);
  const { profile } = await sp.validatePostResponse(result.SAMLResponse);
  return { ...result, profile: profile!, facts: readResponse(result.SAMLResponse) };
}

/** The page OneID shows first for the SP's AuthnRequest, and the Response on it if it is an auto-post page. */
async function firstPage(sp: NodeSamlSp, browser: Browser): Promise<{ page: Page; post?: ReturnType<typeof findAutoPostForm> }> {
  const page = await startSaml(server.url, { redirectUrl: await sp.authorizeUrl() }, browser);
  return { page, post: findAutoPostForm(page.html) };
}

/** The Status XML of node-saml's SamlStatusError for a Response it refuses for its status (fails if it accepts it). */
async function statusErrorOf(sp: NodeSamlSp, samlResponse: string): Promise<string> {
  const err = await sp.validatePostResponse(samlResponse).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SamlStatusError);
  return (err as SamlStatusError).xmlStatus;
}

/** OneID's auto-posting page (saml-post.njk), as opposed to a page with a button the person must press. */
const isAutoPost = (page: Page): boolean => /<form[^>]*id="saml-post"/.test(page.html) && findAutoPostForm(page.html) !== undefined;

const isSignInPage = (page: Page): boolean => /\/login\//.test(new URL(page.url).pathname) && /<form[^>]*action="[^"]*\/password"/.test(page.html);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  tmp = await mkdtemp(path.join(tmpdir(), 'oneid-saml-options-'));
  const [pat, sam] = await Promise.all([
    runCli(['users', 'create', '--username', 'pat', '--email', PAT_EMAIL, '--name', 'Pat Example', '--password', PASSWORD], env),
    runCli(['users', 'create', '--username', 'sam', '--email', SAM_EMAIL, '--name', 'Sam Other', '--password', PASSWORD], env),
  ]);
  expect([pat.code, sam.code]).toEqual([0, 0]);
  patId = pat.json.id;
  samId = sam.json.id;

  server = await startServer(env);
  admin = await adminClient(server.url, env, ['super_admin']);
  metadata = await fetchIdpMetadata(server.url);

  const group = await admin.call('POST', '/groups', { name: GROUP });
  expect(group.status).toBe(201);
  expect((await admin.call('POST', `/groups/${group.body.id}/members`, { userId: patId })).status).toBe(204);

  apps.email = await registerApp('email');
  apps.persistentA = await registerApp('persistent-a', { nameIdFormat: 'persistent' });
  apps.persistentB = await registerApp('persistent-b', { nameIdFormat: 'persistent' });
  apps.transient = await registerApp('transient', { nameIdFormat: 'transient' });
  apps.unspecified = await registerApp('unspecified', { nameIdFormat: 'unspecified' });
  apps.azure = await registerApp('azure');
  apps.custom = await registerApp('custom', { attributeMapping: [{ name: 'memberOf', source: 'groups' }, { name: 'uid', source: 'username' }] });
  // Two ACS URLs, the second the default: an IdP-initiated Response must go to that one.
  const idp = spUrls('idp-initiated');
  apps.idpInitiated = await registerApp('idp-initiated', {
    acsUrls: [{ location: `${idp.acsUrl}-first` }, { location: idp.acsUrl, isDefault: true }],
  });
  // Pat has a role in the azure-style and the default-mapping apps; Sam has none anywhere.
  for (const app of [apps.azure, apps.email]) {
    expect((await admin.call('POST', `/apps/${app.appId}/roles`, { key: ROLE, name: 'Wiki editor' })).status).toBe(201);
    expect((await admin.call('POST', `/apps/${app.appId}/assignments`, { principalType: 'user', principalId: patId, roleKeys: [ROLE] })).status).toBe(201);
  }
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('registration as an administrator does it, then single sign-on', () => {
  let signing: SpKeys;
  let encryption: SpKeys;
  beforeAll(async () => {
    [signing, encryption] = await Promise.all([makeSpKeys('options sp signing'), makeSpKeys('options sp encryption')]);
  });

  /** node-saml's own SP metadata for an SP that signs its requests and takes encrypted assertions. */
  const nodeSamlMetadata = (slug: string): string => {
    const { entityId, acsUrl } = spUrls(slug);
    return generateServiceProviderMetadata({
      issuer: entityId, callbackUrl: acsUrl, identifierFormat: FORMAT.emailAddress, wantAssertionsSigned: true,
      privateKey: signing.privateKeyPem, publicCerts: signing.certificatePem,
      decryptionPvk: encryption.privateKeyPem, decryptionCert: encryption.certificatePem,
    });
  };
  /** The node-saml SP the metadata describes, with its keys. */
  const registeredSp = (slug: string): Promise<NodeSamlSp> => {
    const { entityId, acsUrl } = spUrls(slug);
    return createNodeSamlSp({
      baseUrl: server.url, entityId, acsUrl, metadata, signing, decryptionPvk: encryption.privateKeyPem,
    });
  };

  it('oneid apps create --type saml --metadata-file, then oneid assignments create: node-saml signs its AuthnRequest and decrypts the assertion', async () => {
    const file = path.join(tmp, 'cli-sp.xml');
    await writeFile(file, nodeSamlMetadata('cli'));
    // --access assigned: the CLI opens apps to everyone unless told (as for OIDC apps).
    const created = await runCli(['apps', 'create', '--type', 'saml', '--name', 'CLI SP', '--metadata-file', file, '--access', 'assigned'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.json).toMatchObject({
      name: 'CLI SP', protocol: 'saml', access: 'assigned',
      saml: { entity_id: spUrls('cli').entityId, want_authn_requests_signed: true, encrypt_assertions: true, acs_urls: [{ location: spUrls('cli').acsUrl }] },
    });
    const appId = created.json.id as string;
    const sp = await registeredSp('cli');

    // Registered with access "assigned": before the assignment Pat gets the no-access page, no assertion.
    const browser = new Browser();
    const before = await continueToAutoPost(browser, await startSaml(server.url, { redirectUrl: await sp.authorizeUrl() }, browser), PAT);
    expect(before.signedIn).toBe(true);
    expect(before.page.status).toBe(403);
    // The no-access page's "back to the app" form carries a RequestDenied Response, never an assertion.
    expect(before.page.html).toMatch(/id="back-to-app"/);
    expect(readResponse(before.post!.SAMLResponse)).toMatchObject({ status: [STATUS.responder, STATUS.requestDenied], hasAssertion: false, encrypted: false });

    const assigned = await runCli(['assignments', 'create', '--app', appId, '--user', patId], env);
    expect(assigned.code).toBe(0);

    const url = await sp.authorizeUrl('cli-relay');
    expect(new URL(url).searchParams.get('Signature')).toEqual(expect.any(String)); // node-saml signed it (Redirect binding)
    const result = await samlSignIn(server.url, { redirectUrl: url }, PAT, browser);
    expect(result.signedIn).toBe(false); // the session from the first try
    expect(result.acsUrl).toBe(spUrls('cli').acsUrl);
    expect(result.RelayState).toBe('cli-relay');
    const facts = readResponse(result.SAMLResponse);
    expect(facts).toMatchObject({ encrypted: true, hasAssertion: false, status: [STATUS.success] });
    expect(decodeSamlResponse(result.SAMLResponse)).not.toContain(PAT_EMAIL);
    const { profile } = await sp.validatePostResponse(result.SAMLResponse, result.RelayState);
    expect(profile).toMatchObject({ nameID: PAT_EMAIL, nameIDFormat: FORMAT.emailAddress, email: PAT_EMAIL, displayName: 'Pat Example' });
  });

  it('POST /admin/api/v1/apps/saml?name= with the metadata XML as the body, assignment through the admin API: node-saml signs in', async () => {
    const res = await fetch(`${server.url}/admin/api/v1/apps/saml?name=${encodeURIComponent('API SP')}`, {
      method: 'POST', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/samlmetadata+xml' }, body: nodeSamlMetadata('api'),
    });
    const body = await res.json() as any;
    expect(res.status).toBe(201);
    expect(body).toMatchObject({ name: 'API SP', protocol: 'saml', saml: { entityId: spUrls('api').entityId, wantAuthnRequestsSigned: true, encryptAssertions: true } });
    expect((await admin.call('POST', `/apps/${body.id}/assignments`, { principalType: 'user', principalId: patId })).status).toBe(201);

    const sp = await registeredSp('api');
    const result = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl() }, PAT);
    expect(result.signedIn).toBe(true);
    expect(readResponse(result.SAMLResponse).encrypted).toBe(true);
    const { profile } = await sp.validatePostResponse(result.SAMLResponse);
    expect(profile).toMatchObject({ nameID: PAT_EMAIL, email: PAT_EMAIL });
    // Sam is not assigned: no assertion for Sam.
    const samBrowser = new Browser();
    const sam = await continueToAutoPost(samBrowser, await startSaml(server.url, { redirectUrl: await sp.authorizeUrl() }, samBrowser), SAM);
    expect(sam.page.status).toBe(403);
    expect(sam.page.html).toMatch(/id="back-to-app"/);
    expect(readResponse(sam.post!.SAMLResponse)).toMatchObject({ status: [STATUS.responder, STATUS.requestDenied], hasAssertion: false, encrypted: false });
  });
});

describe('NameID formats', () => {
  it('persistent: the same opaque value on two sign-ins of the same person to the same app; another for another app, another for another person', async () => {
    const spA = await spFor(apps.persistentA);
    const spB = await spFor(apps.persistentB);
    const first = await signOn(spA, PAT);
    const second = await signOn(spA, PAT); // a new browser: a new session, the same NameID
    expect(second.signedIn).toBe(true);
    expect(first.profile.nameIDFormat).toBe(FORMAT.persistent);
    expect(first.profile.nameID).toEqual(expect.any(String));
    expect(second.profile.nameID).toBe(first.profile.nameID);
    const otherApp = await signOn(spB, PAT, first.browser);
    expect(otherApp.profile.nameIDFormat).toBe(FORMAT.persistent);
    expect(otherApp.profile.nameID).not.toBe(first.profile.nameID);
    const otherPerson = await signOn(spA, SAM);
    expect(otherPerson.profile.nameID).not.toBe(first.profile.nameID);
    // Opaque: none of what identifies Pat elsewhere.
    for (const known of [PAT_EMAIL, 'pat', patId]) {
      for (const nameId of [first.profile.nameID, otherApp.profile.nameID]) expect(nameId.toLowerCase()).not.toContain(known);
    }
    expect(first.profile.nameQualifier).toBe(metadata.entityId);
    expect(first.profile.spNameQualifier).toBe(apps.persistentA.entityId);
  });

  it('transient: a different value on each sign-in, in the same session', async () => {
    const sp = await spFor(apps.transient);
    const first = await signOn(sp, PAT);
    const second = await signOn(sp, PAT, first.browser);
    expect(second.signedIn).toBe(false);
    expect([first.profile.nameIDFormat, second.profile.nameIDFormat]).toEqual([FORMAT.transient, FORMAT.transient]);
    expect(second.profile.nameID).not.toBe(first.profile.nameID);
    for (const nameId of [first.profile.nameID, second.profile.nameID]) {
      expect(nameId).not.toContain(PAT_EMAIL);
      expect(nameId).not.toBe('pat');
    }
  });

  it('unspecified: the username; emailAddress: the email', async () => {
    const unspecified = await signOn(await spFor(apps.unspecified), PAT);
    expect(unspecified.profile).toMatchObject({ nameID: 'pat', nameIDFormat: FORMAT.unspecified });
    const email = await signOn(await spFor(apps.email), SAM);
    expect(email.profile).toMatchObject({ nameID: SAM_EMAIL, nameIDFormat: FORMAT.emailAddress });
    // node-saml asks for PasswordProtectedTransport (exact) by default: a password sign-in is that.
    expect(email.facts.authnContextClassRef).toBe('urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport');
  });

  it('the request\'s NameIDPolicy Format overrides the app\'s format; unspecified in the request leaves the app\'s', async () => {
    const browser = new Browser();
    const asEmail = await signOn(await spFor(apps.persistentA, { identifierFormat: FORMAT.emailAddress }), PAT, browser);
    expect(asEmail.profile).toMatchObject({ nameID: PAT_EMAIL, nameIDFormat: FORMAT.emailAddress });
    const asPersistent = await signOn(await spFor(apps.email, { identifierFormat: FORMAT.persistent }), PAT, browser);
    expect(asPersistent.profile.nameIDFormat).toBe(FORMAT.persistent);
    expect(asPersistent.profile.nameID).not.toBe(PAT_EMAIL);
    const asUnspecified = await signOn(await spFor(apps.persistentA, { identifierFormat: FORMAT.unspecified }), PAT, browser);
    expect(asUnspecified.profile.nameIDFormat).toBe(FORMAT.persistent);
  });

  it('a format OneID does not issue (X509SubjectName): a Response with InvalidNameIDPolicy, no assertion; node-saml refuses it with that status', async () => {
    const sp = await spFor(apps.email, { identifierFormat: FORMAT.x509 });
    const result = await samlSignIn(server.url, { redirectUrl: await sp.authorizeUrl('x509') }, PAT);
    expect(result.acsUrl).toBe(apps.email.acsUrl);
    expect(result.RelayState).toBe('x509');
    const facts = readResponse(result.SAMLResponse);
    expect(facts.status).toEqual([STATUS.requester, STATUS.invalidNameIdPolicy]);
    expect(facts.hasAssertion).toBe(false);
    expect(facts.encrypted).toBe(false);
    expect(facts.inResponseTo).toMatch(/^_/);
    expect(await statusErrorOf(sp, result.SAMLResponse)).toContain(STATUS.invalidNameIdPolicy);
  });

  it('AllowCreate="false" for persistent: InvalidNameIDPolicy while the person has no NameID at the app, the existing one once they have', async () => {
    const app = await registerApp('allow-create', { nameIdFormat: 'persistent' });
    const noCreate = await spFor(app, { identifierFormat: FORMAT.persistent, extra: { allowCreate: false } });
    const url = await noCreate.authorizeUrl();
    expect(decodeRedirectRequest(url)).toMatch(/AllowCreate="false"/);
    const refused = await samlSignIn(server.url, { redirectUrl: url }, PAT);
    const facts = readResponse(refused.SAMLResponse);
    expect(facts.status[1]).toBe(STATUS.invalidNameIdPolicy);
    expect([STATUS.requester, STATUS.responder]).toContain(facts.status[0]);
    expect(facts.hasAssertion).toBe(false);
    expect(await statusErrorOf(noCreate, refused.SAMLResponse)).toContain(STATUS.invalidNameIdPolicy);

    // Created by a request that allows it; then AllowCreate=false gets that same NameID.
    const created = await signOn(await spFor(app), PAT, refused.browser);
    expect(created.profile.nameIDFormat).toBe(FORMAT.persistent);
    const again = await signOn(noCreate, PAT, refused.browser);
    expect(again.profile).toMatchObject({ nameID: created.profile.nameID, nameIDFormat: FORMAT.persistent });
  });
});

/** The AuthnRequest XML of a Redirect-binding URL (deflated, base64). */
function decodeRedirectRequest(url: string): string {
  const message = new URL(url).searchParams.get('SAMLRequest')!;
  return inflateRawSync(Buffer.from(message, 'base64')).toString('utf8');
}

describe('ForceAuthn and IsPassive', () => {
  it('ForceAuthn="true": a signed-in person is asked for the password again, and the new AuthnInstant is later than the first', async () => {
    const plain = await spFor(apps.email);
    const first = await signOn(plain, PAT);
    // Without ForceAuthn the session answers at once (the contrast that makes the next check mean something).
    const reused = await signOn(plain, PAT, first.browser);
    expect(reused.signedIn).toBe(false);
    expect(reused.facts.authnInstant).toBe(first.facts.authnInstant);

    await sleep(1100); // AuthnInstant has whole seconds
    const forced = await spFor(apps.email, { extra: { forceAuthn: true } });
    const url = await forced.authorizeUrl();
    expect(decodeRedirectRequest(url)).toMatch(/ForceAuthn="true"/);
    const page = await startSaml(server.url, { redirectUrl: url }, first.browser);
    expect(findAutoPostForm(page.html)).toBeUndefined();
    expect(isSignInPage(page)).toBe(true);
    const { post, signedIn } = await continueToAutoPost(first.browser, page, PAT);
    expect(signedIn).toBe(true);
    const { profile } = await forced.validatePostResponse(post!.SAMLResponse);
    expect(profile!.nameID).toBe(PAT_EMAIL);
    const facts = readResponse(post!.SAMLResponse);
    expect(Date.parse(facts.authnInstant!)).toBeGreaterThan(Date.parse(first.facts.authnInstant!));
  });

  it('IsPassive="true" with a session: answered at once with an assertion', async () => {
    const first = await signOn(await spFor(apps.email), PAT);
    const passive = await spFor(apps.email, { extra: { passive: true } });
    const url = await passive.authorizeUrl();
    expect(decodeRedirectRequest(url)).toMatch(/IsPassive="true"/);
    const page = await startSaml(server.url, { redirectUrl: url }, first.browser);
    expect(isAutoPost(page)).toBe(true);
    const post = findAutoPostForm(page.html);
    const { profile } = await passive.validatePostResponse(post!.SAMLResponse);
    expect(profile).toMatchObject({ nameID: PAT_EMAIL, email: PAT_EMAIL });
  });

  it('IsPassive="true" without a session: a NoPassive Response at once, no sign-in page; node-saml takes it as "no profile"', async () => {
    const passive = await spFor(apps.email, { extra: { passive: true } });
    const browser = new Browser();
    const page = await startSaml(server.url, { redirectUrl: await passive.authorizeUrl('passive') }, browser);
    expect(isSignInPage(page)).toBe(false);
    expect(browser.visited.some((v) => /\/login\//.test(new URL(v.url).pathname))).toBe(false);
    expect(isAutoPost(page)).toBe(true);
    const post = findAutoPostForm(page.html);
    expect(post).toMatchObject({ acsUrl: apps.email.acsUrl, RelayState: 'passive' });
    const facts = readResponse(post!.SAMLResponse);
    expect(facts.status).toEqual([STATUS.responder, STATUS.noPassive]);
    expect(facts.hasAssertion).toBe(false);
    expect(await passive.validatePostResponse(post!.SAMLResponse)).toEqual({ profile: null, loggedOut: false });
  });
  it('IsPassive and ForceAuthn both "true" with a session: NoPassive at once (the password cannot be asked for)', async () => {
    const first = await signOn(await spFor(apps.email), PAT);
    const both = await spFor(apps.email, { extra: { passive: true, forceAuthn: true } });
    const page = await startSaml(server.url, { redirectUrl: await both.authorizeUrl() }, first.browser);
    expect(isSignInPage(page)).toBe(false);
    expect(isAutoPost(page)).toBe(true);
    const facts = readResponse(findAutoPostForm(page.html)!.SAMLResponse);
    expect(facts).toMatchObject({ status: [STATUS.responder, STATUS.noPassive], hasAssertion: false });
  });

  it('IsPassive="true" with a session but no access to the app: a RequestDenied Response posted at once, not the no-access page', async () => {
    const app = await registerApp('passive-assigned', { access: 'assigned' });
    const first = await signOn(await spFor(apps.email), SAM);
    // Without IsPassive Sam sees the no-access page, which waits for a button press.
    const interactive = await startSaml(server.url, { redirectUrl: await (await spFor(app)).authorizeUrl() }, first.browser);
    expect(interactive.status).toBe(403);
    expect(interactive.html).toMatch(/id="no-access"/);
    expect(isAutoPost(interactive)).toBe(false);

    // IsPassive: the IdP must not take over the screen (saml-core 3.4.1), so the refusal goes straight back.
    const passive = await spFor(app, { extra: { passive: true } });
    const page = await startSaml(server.url, { redirectUrl: await passive.authorizeUrl('denied') }, first.browser);
    expect(page.html).not.toMatch(/id="no-access"/);
    expect(isAutoPost(page)).toBe(true);
    const post = findAutoPostForm(page.html)!;
    expect(post).toMatchObject({ acsUrl: app.acsUrl, RelayState: 'denied' });
    expect(readResponse(post.SAMLResponse)).toMatchObject({ status: [STATUS.responder, STATUS.requestDenied], hasAssertion: false });
    expect(await statusErrorOf(passive, post.SAMLResponse)).toContain(STATUS.requestDenied);
  });
});

describe('RequestedAuthnContext', () => {
  it('urn:oneid:acr:mfa, comparison minimum, for a person signed in with a password and no second factor: the enrolment page, not an assertion', async () => {
    const first = await signOn(await spFor(apps.email), SAM);
    const mfa = await spFor(apps.email, { extra: { authnContext: ['urn:oneid:acr:mfa'], racComparison: 'minimum' } });
    const page = await startSaml(server.url, { redirectUrl: await mfa.authorizeUrl() }, first.browser);
    expect(findAutoPostForm(page.html)).toBeUndefined();
    expect(page.status).toBe(200);
    expect(new URL(page.url).pathname).toMatch(/^\/login\//);
    // login-enrol.njk: set up a second factor (an authenticator's secret, a passkey, or "I cannot").
    expect(page.html).toMatch(/id="enrol-cannot"/);
    expect(page.html).toMatch(/id="totp-secret"|id="passkey-register"/);
    expect(isSignInPage(page)).toBe(false); // the password is not asked again

    // "I cannot set one up": the app hears the sign-in failed, and gets no assertion.
    const back = await first.browser.submit(page, '/cancel', {});
    expect(isAutoPost(back)).toBe(true);
    const post = findAutoPostForm(back.html)!;
    expect(post.acsUrl).toBe(apps.email.acsUrl);
    const facts = readResponse(post.SAMLResponse);
    expect(facts.hasAssertion).toBe(false);
    expect(facts.status).toEqual([STATUS.responder, STATUS.authnFailed]);
    expect(await statusErrorOf(mfa, post.SAMLResponse)).toContain(STATUS.authnFailed);
  });

  it('only a class OneID does not know (Kerberos, exact): a NoAuthnContext Response, no sign-in page', async () => {
    const kerberos = await spFor(apps.email, { extra: { authnContext: ['urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos'], racComparison: 'exact' } });
    const browser = new Browser();
    const page = await startSaml(server.url, { redirectUrl: await kerberos.authorizeUrl() }, browser);
    expect(isSignInPage(page)).toBe(false);
    const post = findAutoPostForm(page.html);
    expect(post?.acsUrl).toBe(apps.email.acsUrl);
    const facts = readResponse(post!.SAMLResponse);
    expect(facts.status).toEqual([STATUS.requester, STATUS.noAuthnContext]);
    expect(facts.hasAssertion).toBe(false);
    expect(await statusErrorOf(kerberos, post!.SAMLResponse)).toContain(STATUS.noAuthnContext);
  });
});

describe('attributes', () => {
  const CLAIMS = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';
  const MS_CLAIMS = 'http://schemas.microsoft.com/ws/2008/06/identity/claims';

  it('preset azure-style-claims (PATCH /apps/{id}/saml): the claim URIs with NameFormat uri; no role claim for a person with no roles', async () => {
    const patched = await admin.call('PATCH', `/apps/${apps.azure.appId}/saml`, { attributePreset: 'azure-style-claims' });
    expect(patched.status).toBe(200);
    const sp = await spFor(apps.azure);
    const pat = await signOn(sp, PAT);
    expect(pat.facts.attributes).toEqual([
      { name: `${CLAIMS}/emailaddress`, nameFormat: URI_FORMAT, values: [PAT_EMAIL] },
      { name: `${CLAIMS}/name`, nameFormat: URI_FORMAT, values: ['pat'] },
      { name: `${CLAIMS}/givenname`, nameFormat: URI_FORMAT, values: ['Pat'] },
      { name: `${CLAIMS}/surname`, nameFormat: URI_FORMAT, values: ['Example'] },
      { name: 'http://schemas.microsoft.com/identity/claims/displayname', nameFormat: URI_FORMAT, values: ['Pat Example'] },
      { name: `${MS_CLAIMS}/groups`, nameFormat: URI_FORMAT, values: [GROUP] },
      { name: `${MS_CLAIMS}/role`, nameFormat: URI_FORMAT, values: [ROLE] },
    ]);
    expect(pat.profile[`${CLAIMS}/emailaddress`]).toBe(PAT_EMAIL);
    expect(attributeValues(pat.profile[`${MS_CLAIMS}/role`])).toEqual([ROLE]);

    const sam = await signOn(sp, SAM);
    expect(sam.facts.attributes.map((a) => a.name)).toEqual([
      `${CLAIMS}/emailaddress`, `${CLAIMS}/name`, `${CLAIMS}/givenname`, `${CLAIMS}/surname`, 'http://schemas.microsoft.com/identity/claims/displayname',
    ]);
    expect(sam.profile[`${MS_CLAIMS}/role`]).toBeUndefined();
  });

  it('a custom mapping [memberOf <- groups, uid <- username]: exactly those attributes', async () => {
    const sp = await spFor(apps.custom);
    const pat = await signOn(sp, PAT);
    expect(pat.facts.attributes).toEqual([
      { name: 'memberOf', nameFormat: BASIC_FORMAT, values: [GROUP] },
      { name: 'uid', nameFormat: BASIC_FORMAT, values: ['pat'] },
    ]);
    expect(pat.profile).toMatchObject({ memberOf: GROUP, uid: 'pat' });
    expect(pat.profile.email).toBeUndefined();
    // Sam is in no group: uid only.
    const sam = await signOn(sp, SAM);
    expect(sam.facts.attributes).toEqual([{ name: 'uid', nameFormat: BASIC_FORMAT, values: ['sam'] }]);
  });

  it('no mapping: email, displayName, groups, roles; a person with no roles in the app gets no roles attribute', async () => {
    const sp = await spFor(apps.email);
    const pat = await signOn(sp, PAT);
    expect(pat.facts.attributes.map((a) => [a.name, a.values])).toEqual([
      ['email', [PAT_EMAIL]], ['displayName', ['Pat Example']], ['groups', [GROUP]], ['roles', [ROLE]],
    ]);
    const sam = await signOn(sp, SAM);
    expect(sam.facts.attributes.map((a) => [a.name, a.values])).toEqual([['email', [SAM_EMAIL]], ['displayName', ['Sam Other']]]);
    expect(sam.profile.roles).toBeUndefined();
  });
});

describe('IdP-initiated sign-on (GET /saml/start/<appId>)', () => {
  const startUrl = (appId: string, relayState?: string) =>
    `${server.url}/saml/start/${appId}${relayState !== undefined ? `?RelayState=${encodeURIComponent(relayState)}` : ''}`;

  it('signed in: an auto-post to the app\'s default ACS with no InResponseTo and RelayState=abc; node-saml (validateInResponseTo ifPresent) accepts it', async () => {
    const first = await signOn(await spFor(apps.email), PAT);
    const page = await first.browser.navigate(startUrl(apps.idpInitiated.appId, 'abc'));
    const post = findAutoPostForm(page.html);
    expect(post).toEqual({ acsUrl: apps.idpInitiated.acsUrl, SAMLResponse: expect.any(String), RelayState: 'abc' });
    const facts = readResponse(post!.SAMLResponse);
    expect(facts).toMatchObject({ status: [STATUS.success], hasAssertion: true, inResponseTo: null, confirmationInResponseTo: null });
    const sp = await spFor(apps.idpInitiated, { extra: { validateInResponseTo: ValidateInResponseTo.ifPresent } });
    const { profile } = await sp.validatePostResponse(post!.SAMLResponse, post!.RelayState);
    expect(profile).toMatchObject({ nameID: PAT_EMAIL, email: PAT_EMAIL });
  });

  it('not signed in: the sign-in page first, then the auto-post', async () => {
    const browser = new Browser();
    const page = await browser.navigate(startUrl(apps.idpInitiated.appId, 'xyz'));
    expect(isSignInPage(page)).toBe(true);
    const { post, signedIn } = await continueToAutoPost(browser, page, SAM);
    expect(signedIn).toBe(true);
    expect(post).toMatchObject({ acsUrl: apps.idpInitiated.acsUrl, RelayState: 'xyz' });
    const sp = await spFor(apps.idpInitiated, { extra: { validateInResponseTo: ValidateInResponseTo.never } });
    expect((await sp.validatePostResponse(post!.SAMLResponse)).profile).toMatchObject({ nameID: SAM_EMAIL });
  });

  it('a person without access to the app: the no-access page, whose button posts RequestDenied with no InResponseTo', async () => {
    const app = await registerApp('idp-initiated-assigned', { access: 'assigned' });
    const first = await signOn(await spFor(apps.email), SAM);
    const page = await first.browser.navigate(startUrl(app.appId, 'abc'));
    expect(page.status).toBe(403);
    expect(page.html).toMatch(/id="no-access"/);
    const post = findAutoPostForm(page.html)!;
    expect(post).toMatchObject({ acsUrl: app.acsUrl, RelayState: 'abc' });
    expect(readResponse(post.SAMLResponse)).toMatchObject({ status: [STATUS.responder, STATUS.requestDenied], hasAssertion: false, inResponseTo: null });
  });

  it('a RelayState over 80 bytes: a 400 page, nothing posted', async () => {
    const first = await signOn(await spFor(apps.email), PAT);
    const page = await first.browser.navigate(startUrl(apps.idpInitiated.appId, 'r'.repeat(81)));
    expect(page.status).toBe(400);
    expect(findAutoPostForm(page.html)).toBeUndefined();
    const ok = await first.browser.navigate(startUrl(apps.idpInitiated.appId, 'r'.repeat(80)));
    expect(findAutoPostForm(ok.html)?.RelayState).toBe('r'.repeat(80));
  });

  it('an unknown app id, an OpenID Connect app\'s id, or no id at all: a 404 page, nothing posted', async () => {
    const oidc = await runCli(['apps', 'create', '--name', 'An OIDC app', '--redirect-uri', 'https://oidc.example.test/cb', '--first-party'], env);
    expect(oidc.code).toBe(0);
    const first = await signOn(await spFor(apps.email), PAT);
    for (const id of ['00000000-0000-4000-8000-000000000000', oidc.json.id as string, 'not-an-id', `${apps.idpInitiated.appId}x`, '']) {
      const page = await first.browser.navigate(startUrl(id, 'abc'));
      expect([id, page.status]).toEqual([id, 404]);
      expect(findAutoPostForm(page.html)).toBeUndefined();
      expect(page.html).not.toMatch(/at .*\.ts:\d+|stack|select .* from/i);
    }
  });
});
