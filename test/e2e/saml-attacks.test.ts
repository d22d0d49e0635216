// Black-box: attacks on OneID's SAML single sign-on, against OneID on a port with a real
// database. Each attack is paired with the honest message it was made from, accepted the same
// way, so a refusal is shown to come from the attack and not from a broken setup. A refusal must
// be clean (a 4xx page saying what was wrong, never a 500, a stack trace or SQL, never a form
// posting anywhere) and change nothing (no pending request, no request ID used up, no session,
// no SAML session participant).
//
// The SP side: Responses OneID issued, wrapped the classic ways, are refused by
// @node-saml/node-saml's validatePostResponseAsync (python3-saml is not driven here: there is no
// python-saml test helper yet).
import { jest } from '@jest/globals';
import { createSign, generateKeyPairSync, sign as signBytes, webcrypto, randomBytes, type KeyObject } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import pg from 'pg';
import { SAML } from '@node-saml/node-saml';
import { SignedXml } from 'xml-crypto';
import { x509 } from '../../src/keys/x509.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, decodeHtml } from '../helpers/browser.ts';
import { RESPONSE_WRAPPINGS, childOf, descendants, injectCommentInNameId, parseXml, serializeXml } from '../helpers/saml-wrapping.ts';

jest.setTimeout(120_000);

const PASSWORD = 'correct-horse-battery';
const NS_P = 'urn:oasis:names:tc:SAML:2.0:protocol';
const NS_A = 'urn:oasis:names:tc:SAML:2.0:assertion';
const NS_DS = 'http://www.w3.org/2000/09/xmldsig#';
const POST_BINDING = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const RSA_SHA1 = 'http://www.w3.org/2000/09/xmldsig#rsa-sha1';

/** An SP that must sign its AuthnRequests, with two ACS URLs (a wrapped request could switch between them). */
const SIGNED_SP = 'https://signed-sp.example.com';
const SIGNED_ACS = 'https://signed-sp.example.com/acs';
const SIGNED_ACS_OTHER = 'https://signed-sp.example.com/acs-other';
/** An SP whose requests may be unsigned. */
const OPEN_SP = 'https://sp.example.com';
const OPEN_ACS = 'https://sp.example.com/acs';
/** SPs that receive real Responses (their ACS is never contacted: the test reads the auto-post page). */
const RP_BOTH = 'https://rp-both.example.com';
const RP_ASSERTION = 'https://rp-assertion.example.com';
const RP_ACS = 'http://127.0.0.1:9/acs';
const EVIL = 'https://evil.example.net/steal';

let db: TestDatabase;
let server: RunningServer;
let sql: pg.Client;
let base: string;
let idpCert: string;
let spKey: KeyObject;
let spKeyPem: string;
let spCert: string;

async function spCertificate(): Promise<{ key: KeyObject; cert: string }> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keys = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify']),
  };
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=signed-sp.example.com', notBefore: new Date(Date.now() - 86400_000),
    notAfter: new Date(Date.now() + 365 * 86400_000), signingAlgorithm: alg, keys: keys as CryptoKeyPair,
  });
  return { key: privateKey, cert: Buffer.from(cert.rawData).toString('base64') };
}

async function insertSamlApp(entityId: string, sp: { acs: { location: string; index: number; isDefault: boolean }[]; signed?: boolean; signResponse?: boolean }): Promise<string> {
  const id = webcrypto.randomUUID();
  await sql.query("insert into apps (id, name, protocol, client_id, oidc, access) values ($1, $2, 'saml', $3, '{}', 'everyone')", [id, `SP ${entityId}`, `saml-${id}`]);
  await sql.query(`insert into saml_service_providers (app_id, entity_id, acs_urls, signing_certificates, want_authn_requests_signed, sign_response, sign_assertion, name_id_format)
    values ($1, $2, $3, $4, $5, $6, true, 'emailAddress')`, [
    id, entityId, JSON.stringify(sp.acs.map((a) => ({ ...a, binding: 'post' }))), JSON.stringify(sp.signed ? [spCert] : []), !!sp.signed, sp.signResponse ?? true,
  ]);
  return id;
}

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const users = await Promise.all([
    runCli(['users', 'create', '--username', 'alice', '--email', 'alice@example.com', '--password', PASSWORD], env),
    runCli(['users', 'create', '--username', 'mallory', '--email', 'alice@example.com.evil.test', '--password', PASSWORD], env),
  ]);
  for (const u of users) expect(u.code).toBe(0);
  ({ key: spKey, cert: spCert } = await spCertificate());
  spKeyPem = spKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  server = await startServer(env);
  base = server.url;
  await insertSamlApp(SIGNED_SP, { signed: true, acs: [{ location: SIGNED_ACS, index: 0, isDefault: true }, { location: SIGNED_ACS_OTHER, index: 1, isDefault: false }] });
  await insertSamlApp(OPEN_SP, { acs: [{ location: OPEN_ACS, index: 0, isDefault: true }] });
  await insertSamlApp(RP_BOTH, { acs: [{ location: RP_ACS, index: 0, isDefault: true }] });
  await insertSamlApp(RP_ASSERTION, { signResponse: false, acs: [{ location: RP_ACS, index: 0, isDefault: true }] });
  const metadata = await (await fetch(`${base}/saml/metadata`)).text();
  idpCert = /<ds:X509Certificate>([^<]+)<\/ds:X509Certificate>/.exec(metadata)![1]!;
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

// ---------- messages ----------

const samlTime = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19)}Z`;
const newId = (): string => `_${randomBytes(16).toString('hex')}`;

interface RequestFields { id?: string; issuer?: string; acs?: string | null; acsIndex?: number; issueInstant?: string; destination?: string | null; inner?: string }

function authnRequest(f: RequestFields = {}): { id: string; xml: string } {
  const id = f.id ?? newId();
  const acs = f.acs === undefined ? OPEN_ACS : f.acs;
  const destination = f.destination === undefined ? `${base}/saml/sso` : f.destination;
  const xml = `<samlp:AuthnRequest xmlns:samlp="${NS_P}" xmlns:saml="${NS_A}" ID="${id}" Version="2.0" IssueInstant="${f.issueInstant ?? samlTime(Date.now())}"`
    + `${destination ? ` Destination="${destination}"` : ''} ProtocolBinding="${POST_BINDING}"`
    + `${acs ? ` AssertionConsumerServiceURL="${acs}"` : ''}${f.acsIndex !== undefined ? ` AssertionConsumerServiceIndex="${f.acsIndex}"` : ''}>`
    + `<saml:Issuer>${f.issuer ?? OPEN_SP}</saml:Issuer>${f.inner ?? ''}`
    + '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>';
  return { id, xml };
}

/** A signed request from the signed SP, as SP libraries make them (enveloped, exc-c14n, after Issuer). */
function signedRequest(f: RequestFields = {}, algorithm = RSA_SHA256): { id: string; xml: string } {
  const { id, xml } = authnRequest({ issuer: SIGNED_SP, acs: SIGNED_ACS, ...f });
  const sig = new SignedXml({ privateKey: spKeyPem, signatureAlgorithm: algorithm, canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#' });
  sig.addReference({
    xpath: `/*[@ID='${id}']`,
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
  });
  sig.computeSignature(xml, { prefix: 'ds', location: { reference: "/*/*[local-name(.)='Issuer']", action: 'after' } });
  return { id, xml: sig.getSignedXml() };
}

const b64 = (xml: string): string => Buffer.from(xml, 'utf8').toString('base64');
const deflated = (xml: string | Buffer): string => deflateRawSync(typeof xml === 'string' ? Buffer.from(xml) : xml).toString('base64');

interface Answer { status: number; body: string; location: string | null; ms: number }

async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const started = Date.now();
  const res = await fetch(url, { redirect: 'manual', ...init, headers: { accept: 'text/html', ...init.headers } });
  const body = await res.text();
  return { status: res.status, body, location: res.headers.get('location'), ms: Date.now() - started };
}

/** POST binding: the form an SP's page would auto-submit. */
const postSso = (message: string, relayState?: string): Promise<Answer> => {
  const form = new URLSearchParams({ SAMLRequest: message });
  if (relayState !== undefined) form.set('RelayState', relayState);
  return send(`${base}/saml/sso`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
};

/** Redirect binding: the query as an SP builds it, signed over the encoded parameters when asked. */
function redirectQuery(xml: string, o: { relayState?: string; sign?: 'sha256' | 'sha1'; key?: KeyObject } = {}): string {
  let query = `SAMLRequest=${encodeURIComponent(deflated(xml))}`;
  if (o.relayState !== undefined) query += `&RelayState=${encodeURIComponent(o.relayState)}`;
  if (o.sign) {
    query += `&SigAlg=${encodeURIComponent(o.sign === 'sha1' ? RSA_SHA1 : RSA_SHA256)}`;
    query += `&Signature=${encodeURIComponent(signBytes(o.sign, Buffer.from(query), o.key ?? spKey).toString('base64'))}`;
  }
  return query;
}
const getSso = (query: string): Promise<Answer> => send(`${base}/saml/sso?${query}`);

/** Accepted: the request goes on to the sign-in (Redirect) or to its continue URL (POST), and nothing was posted anywhere. */
function expectAccepted(a: Answer): void {
  expect({ status: a.status, refusal: /<code>([^<]*)<\/code>/.exec(a.body)?.[1] }).toEqual({ status: 303, refusal: undefined });
  expect(a.location).toMatch(/\/saml\/sso\/continue\/|\/login\//);
}

/**
 * Refused cleanly: a 4xx page naming the problem, nothing posted, nothing leaked. Several codes
 * where either is a right answer (a POST message that is not XML may be read as deflated first).
 */
function expectRefused(a: Answer, code: string | string[]): void {
  const shown = /<code>([^<]*)<\/code>/.exec(a.body)?.[1];
  const expected = Array.isArray(code) && shown && code.includes(shown) ? shown : code;
  expect({ status: a.status, code: shown }).toEqual({ status: 400, code: expected });
  expect(a.body).toContain('role="alert"');
  expect(a.body).not.toMatch(/\n\s+at [\w.<]+ \(|node_modules|\.ts:\d+|\bsrc\//);
  expect(a.body).not.toMatch(/\b(select .* from|insert into|update .* set|delete from)\b/i);
  expect(a.body).not.toMatch(/SAMLResponse|<form[^>]*action="http/);
  expect(a.body).not.toContain('root:x:0');
}

interface Counts { pending: number; seen: number; participants: number; sessions: number }
async function counts(): Promise<Counts> {
  const { rows } = await sql.query<Record<keyof Counts, string>>(`select (select count(*) from saml_requests) as pending,
    (select count(*) from saml_seen_request_ids) as seen, (select count(*) from saml_session_participants) as participants,
    (select count(*) from sessions) as sessions`);
  const r = rows[0]!;
  return { pending: Number(r.pending), seen: Number(r.seen), participants: Number(r.participants), sessions: Number(r.sessions) };
}
const seen = async (id: string): Promise<boolean> => (await sql.query('select 1 from saml_seen_request_ids where request_id = $1', [id])).rowCount === 1;

/** Runs an attack and checks it was refused with `code` and changed nothing. */
async function refusedUnchanged(attack: () => Promise<Answer>, code: string | string[]): Promise<Answer> {
  const before = await counts();
  const a = await attack();
  expectRefused(a, code);
  expect(await counts()).toEqual(before);
  return a;
}

// ---------- XML editing for wrapping ----------

const parse = parseXml;
const serialize = serializeXml;
const byLocal = descendants;

/** `evil` (an unsigned request) with `signed` (a whole signed request) inside its Extensions. */
function wrapInExtensions(evilXml: string, signedXml: string): string {
  const evil = parse(evilXml);
  const root = evil.documentElement!;
  const ext = evil.createElementNS(NS_P, 'samlp:Extensions');
  ext.appendChild(evil.importNode(parse(signedXml).documentElement!, true));
  root.insertBefore(ext, childOf(root, NS_A, 'Issuer')!.nextSibling);
  return serialize(evil);
}

// ================= the IdP side: AuthnRequests =================

describe('honest requests (the controls the attacks are made from)', () => {
  test('a signed request by POST, an unsigned one by Redirect, a signed Redirect with RelayState, and node-saml\'s signed POST form are accepted', async () => {
    expectAccepted(await postSso(b64(signedRequest().xml)));
    expectAccepted(await getSso(redirectQuery(authnRequest().xml, { relayState: 'r'.repeat(80) })));
    expectAccepted(await getSso(redirectQuery(signedRequest().xml, { relayState: 'state-1', sign: 'sha256' })));
    const sp = new SAML({
      entryPoint: `${base}/saml/sso`, issuer: SIGNED_SP, callbackUrl: SIGNED_ACS, idpCert, privateKey: spKeyPem,
      signatureAlgorithm: 'sha256', digestAlgorithm: 'sha256', authnRequestBinding: 'HTTP-POST', wantAssertionsSigned: true,
      // node-saml deflates POST-binding requests unless told not to; saml-bindings 3.5.4 says base64 only.
      skipRequestCompression: true,
    });
    const form = await sp.getAuthorizeFormAsync('relay-1', undefined, {});
    const message = decodeHtml(/name="SAMLRequest" value="([^"]+)"/.exec(form)![1]!);
    expect(Buffer.from(message, 'base64').toString()).toMatch(/<SignatureValue>[^<]+<\/SignatureValue>/);
    expectAccepted(await postSso(message, 'relay-1'));
  });

});

describe('1. signature wrapping on signed AuthnRequests (POST binding)', () => {
  test('a signed request moved into the Extensions of an attacker\'s root with another ID and ACS URL is refused, and its ID stays unused', async () => {
    const signed = signedRequest();
    const wrapped = wrapInExtensions(authnRequest({ issuer: SIGNED_SP, acs: SIGNED_ACS_OTHER }).xml, signed.xml);
    await refusedUnchanged(() => postSso(b64(wrapped)), 'saml.signature_misplaced');
    expect(await seen(signed.id)).toBe(false);
    expectAccepted(await postSso(b64(signed.xml)));
  });

  test('the same with the attacker\'s root using the signed ID (a duplicate ID) and another Issuer', async () => {
    const signed = signedRequest();
    await refusedUnchanged(() => postSso(b64(wrapInExtensions(authnRequest({ id: signed.id, issuer: SIGNED_SP, acs: SIGNED_ACS_OTHER }).xml, signed.xml))), 'saml.signature_misplaced');
    // Another Issuer, one that need not sign: a signature anywhere but on the root is still refused.
    await refusedUnchanged(() => postSso(b64(wrapInExtensions(authnRequest({ id: signed.id, issuer: OPEN_SP }).xml, signed.xml))), 'saml.signature_misplaced');
    expect(await seen(signed.id)).toBe(false);
  });

  test('the signature hoisted onto an attacker\'s root with the signed ID, the signed original kept inside (duplicate ID) is refused', async () => {
    const signed = signedRequest();
    const original = parse(signed.xml);
    const signature = byLocal(original, NS_DS, 'Signature')[0]!;
    const evil = parse(wrapInExtensions(authnRequest({ id: signed.id, issuer: SIGNED_SP, acs: SIGNED_ACS_OTHER }).xml,
      serialize(original.documentElement!).replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, '')));
    const root = evil.documentElement!;
    root.insertBefore(evil.importNode(signature, true), childOf(root, NS_A, 'Issuer')!.nextSibling);
    await refusedUnchanged(() => postSso(b64(serialize(evil))), 'saml.signature_reference');
  });

  test('the signature hoisted onto an attacker\'s root with the signed ID, the original inside with its ID renamed to Id, is refused', async () => {
    const signed = signedRequest();
    const original = parse(signed.xml);
    const signature = byLocal(original, NS_DS, 'Signature')[0]!;
    const inner = serialize(original.documentElement!).replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, '').replace(` ID="${signed.id}"`, ` Id="${signed.id}"`);
    const evil = parse(wrapInExtensions(authnRequest({ id: signed.id, issuer: SIGNED_SP, acs: SIGNED_ACS_OTHER }).xml, inner));
    const root = evil.documentElement!;
    root.insertBefore(evil.importNode(signature, true), childOf(root, NS_A, 'Issuer')!.nextSibling);
    // xpath matches @ID case-blind, so OneID counts ID, Id and id alike (as xml-crypto does).
    await refusedUnchanged(() => postSso(b64(serialize(evil))), 'saml.signature_reference');
  });

  test('a duplicate of the signed request with the same ID inside it, or a second unsigned AuthnRequest added, is refused', async () => {
    const signed = signedRequest();
    const copy = authnRequest({ id: signed.id, issuer: SIGNED_SP, acs: SIGNED_ACS_OTHER }).xml;
    const duplicate = signed.xml.replace('</samlp:AuthnRequest>', `<samlp:Extensions>${copy}</samlp:Extensions></samlp:AuthnRequest>`);
    await refusedUnchanged(() => postSso(b64(duplicate)), 'saml.signature_reference');
    const second = signed.xml.replace('</samlp:AuthnRequest>', `<samlp:Extensions>${authnRequest({ issuer: SIGNED_SP, acs: SIGNED_ACS_OTHER }).xml}</samlp:Extensions></samlp:AuthnRequest>`);
    await refusedUnchanged(() => postSso(b64(second)), 'saml.signature_invalid');
    // An attribute changed after signing (the ACS URL), with nothing added: the digest no longer matches.
    await refusedUnchanged(() => postSso(b64(signed.xml.replace(`"${SIGNED_ACS}"`, `"${SIGNED_ACS_OTHER}"`))), 'saml.signature_invalid');
    expect(await seen(signed.id)).toBe(false);
    expectAccepted(await postSso(b64(signed.xml)));
  });

  test('a request signed by another key that names its own certificate in KeyInfo is refused (only the registered certificate counts)', async () => {
    const other = await spCertificate();
    const { id, xml } = authnRequest({ issuer: SIGNED_SP, acs: SIGNED_ACS });
    const sig = new SignedXml({
      privateKey: other.key.export({ type: 'pkcs8', format: 'pem' }).toString(), signatureAlgorithm: RSA_SHA256,
      canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
      getKeyInfoContent: () => `<ds:X509Data><ds:X509Certificate>${other.cert}</ds:X509Certificate></ds:X509Data>`,
    });
    sig.addReference({ xpath: `/*[@ID='${id}']`, digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256', transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'] });
    sig.computeSignature(xml, { prefix: 'ds', location: { reference: "/*/*[local-name(.)='Issuer']", action: 'after' } });
    await refusedUnchanged(() => postSso(b64(sig.getSignedXml())), 'saml.signature_invalid');
  });

  test('a signature whose Reference is the whole document (URI=""), or whose method is HMAC (the certificate as a shared secret), is refused', async () => {
    const signed = signedRequest();
    await refusedUnchanged(() => postSso(b64(signed.xml.replace(`URI="#${signed.id}"`, 'URI=""'))), 'saml.signature_reference');
    await refusedUnchanged(() => postSso(b64(signed.xml.replace(RSA_SHA256, 'http://www.w3.org/2000/09/xmldsig#hmac-sha1'))), 'saml.signature_algorithm');
  });

  test('a signed request without a Destination (one the SP could have signed for another IdP) is refused by both bindings', async () => {
    const post = signedRequest({ destination: null });
    await refusedUnchanged(() => postSso(b64(post.xml)), 'saml.destination_missing');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ issuer: SIGNED_SP, acs: SIGNED_ACS, destination: null }).xml, { sign: 'sha256' })), 'saml.destination_missing');
    // Unsigned, from an SP that need not sign, it may leave Destination out.
    expectAccepted(await getSso(redirectQuery(authnRequest({ destination: null }).xml)));
  });

  test('a comment injected into a signed Issuer (the signature still verifies: c14n drops comments) is refused, not read as the text before it', async () => {
    const signed = signedRequest();
    const injected = signed.xml.replace(`<saml:Issuer>${SIGNED_SP}</saml:Issuer>`, '<saml:Issuer>https://signed-sp.example<!---->.com</saml:Issuer>');
    expect(injected).not.toBe(signed.xml);
    await refusedUnchanged(() => postSso(b64(injected)), 'saml.xml_unexpected_content');
    // A comment that would make a naive reader see another registered SP's entity ID.
    const { xml } = authnRequest({ issuer: `${OPEN_SP}<!---->/evil` });
    await refusedUnchanged(() => postSso(b64(xml)), 'saml.xml_unexpected_content');
    await refusedUnchanged(() => getSso(redirectQuery(xml)), 'saml.xml_unexpected_content');
  });
});

describe('2. XML external entities and DTDs', () => {
  const xxe = `<?xml version="1.0"?><!DOCTYPE samlp:AuthnRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${
    authnRequest({ issuer: '&xxe;' }).xml}`;
  const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lollollollollollollollollollol">${
    Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('')}]>${authnRequest({ issuer: '&lol9;' }).xml}`;

  test.each([['an external entity (file:///etc/passwd)', xxe], ['an entity-expansion bomb', bomb]])('%s is refused by Redirect and by POST, with nothing of the file in the answer', async (_, xml) => {
    const viaRedirect = await refusedUnchanged(() => getSso(redirectQuery(xml)), 'saml.dtd_refused');
    const viaPost = await refusedUnchanged(() => postSso(b64(xml)), 'saml.dtd_refused');
    for (const a of [viaRedirect, viaPost]) expect(a.body).not.toMatch(/root:|lollol/);
  });

  test('the same deflated and sent by POST (as some SP libraries do) is refused', async () => {
    await refusedUnchanged(() => postSso(deflated(xxe)), ['saml.dtd_refused', 'saml.xml_malformed']);
    await refusedUnchanged(() => postSso(deflated(bomb)), ['saml.dtd_refused', 'saml.xml_malformed']);
  });

  test('the same DTD in UTF-16 (so that a byte search for <!DOCTYPE misses it) is refused', async () => {
    const utf16 = Buffer.from(`\ufeff${xxe.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')}`, 'utf16le');
    const viaPost = await refusedUnchanged(() => postSso(utf16.toString('base64')), ['saml.xml_malformed', 'saml.encoding']);
    const viaRedirect = await refusedUnchanged(() => getSso(`SAMLRequest=${encodeURIComponent(deflated(utf16))}`), 'saml.xml_malformed');
    for (const a of [viaRedirect, viaPost]) expect(a.body).not.toContain('root:');
  });
});

describe('3. replay', () => {
  test('the same AuthnRequest sent five times at once is accepted once', async () => {
    const { xml } = authnRequest();
    const answers = await Promise.all(Array.from({ length: 5 }, () => getSso(redirectQuery(xml))));
    expect(answers.map((a) => a.status).sort()).toEqual([303, 400, 400, 400, 400]);
    for (const a of answers.filter((x) => x.status === 400)) expectRefused(a, 'saml.replayed');
  });

  test('the same AuthnRequest twice: the second is refused, by either binding', async () => {
    const { xml } = authnRequest();
    expectAccepted(await getSso(redirectQuery(xml)));
    await refusedUnchanged(() => getSso(redirectQuery(xml)), 'saml.replayed');
    await refusedUnchanged(() => postSso(b64(xml)), 'saml.replayed');
    const signed = signedRequest();
    expectAccepted(await postSso(b64(signed.xml)));
    await refusedUnchanged(() => postSso(b64(signed.xml)), 'saml.replayed');
  });
});

describe('refusals an SP hears of go to its registered ACS only', () => {
  test('IsPassive without a session: a NoPassive Response posted to the registered ACS, no assertion, RelayState escaped', async () => {
    const relay = '"><script>alert(1)</script>';
    const { id, xml } = authnRequest();
    const before = await counts();
    const a = await getSso(redirectQuery(xml.replace('Version="2.0"', 'Version="2.0" IsPassive="true"'), { relayState: relay }));
    expect(a.status).toBe(200);
    const forms = [...a.body.matchAll(/<form[^>]*action="([^"]*)"/g)].map((m) => decodeHtml(m[1]!));
    expect(forms).toEqual([OPEN_ACS]);
    expect(a.body).not.toContain('<script>alert(1)');
    expect(decodeHtml(/name="RelayState" value="([^"]*)"/.exec(a.body)![1]!)).toBe(relay);
    const response = Buffer.from(decodeHtml(/name="SAMLResponse" value="([^"]+)"/.exec(a.body)![1]!), 'base64').toString();
    expect(response).toContain(`InResponseTo="${id}"`);
    expect(response).toContain('urn:oasis:names:tc:SAML:2.0:status:NoPassive');
    expect(response).not.toMatch(/Assertion/);
    const after = await counts();
    expect({ ...after, seen: before.seen }).toEqual(before);
  });
});

describe('4. an ACS the SP did not register (no open redirect)', () => {
  test('an unregistered AssertionConsumerServiceURL or a missing index is refused with a page that posts nowhere, and the ID stays usable', async () => {
    const bad = authnRequest({ acs: EVIL });
    const a = await refusedUnchanged(() => getSso(redirectQuery(bad.xml, { relayState: 'x' })), 'saml.acs_unregistered');
    const b = await refusedUnchanged(() => postSso(b64(bad.xml)), 'saml.acs_unregistered');
    for (const page of [a, b]) {
      expect(page.body).not.toContain('evil.example.net');
      expect(page.body).not.toMatch(/<form[^>]*action=/);
    }
    expect(await seen(bad.id)).toBe(false);
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ acs: null, acsIndex: 7 }).xml)), 'saml.acs_unregistered');
    // The ACS URL another SP registered.
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ acs: SIGNED_ACS }).xml)), 'saml.acs_unregistered');
    // A registered URL that differs only in case or a trailing slash is another URL.
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ acs: `${OPEN_ACS}/` }).xml)), 'saml.acs_unregistered');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ acs: OPEN_ACS.toUpperCase() }).xml)), 'saml.acs_unregistered');
    // Corrected, the same ID is accepted: a refusal did not use it up.
    expectAccepted(await getSso(redirectQuery(authnRequest({ id: bad.id }).xml)));
    expectAccepted(await getSso(redirectQuery(authnRequest({ acs: null, acsIndex: 0 }).xml)));
  });
});

describe('5. unsigned or wrongly signed where signatures are required', () => {
  test('an unsigned request from an SP that must sign is refused by Redirect and by POST', async () => {
    const { id, xml } = authnRequest({ issuer: SIGNED_SP, acs: SIGNED_ACS });
    await refusedUnchanged(() => getSso(redirectQuery(xml)), 'saml.signature_required');
    await refusedUnchanged(() => postSso(b64(xml)), 'saml.signature_required');
    expect(await seen(id)).toBe(false);
  });

  test('a Redirect signature over another RelayState, or another key, or a tampered SAMLRequest is refused', async () => {
    const { xml } = signedRequest();
    const query = redirectQuery(xml, { relayState: 'honest', sign: 'sha256' });
    await refusedUnchanged(() => getSso(query.replace('RelayState=honest', 'RelayState=evil')), 'saml.signature_invalid');
    // The RelayState dropped from a query signed with one.
    await refusedUnchanged(() => getSso(query.replace('&RelayState=honest', '')), 'saml.signature_invalid');
    await refusedUnchanged(() => getSso(redirectQuery(xml, { relayState: 'honest', sign: 'sha256', key: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })), 'saml.signature_invalid');
    const other = redirectQuery(signedRequest({ acs: SIGNED_ACS_OTHER }).xml);
    await refusedUnchanged(() => getSso(query.replace(/^SAMLRequest=[^&]*/, other)), 'saml.signature_invalid');
    expectAccepted(await getSso(query));
  });

  test('a RelayState added to a signed Redirect query under a percent-encoded name (outside the signature) is refused', async () => {
    const query = redirectQuery(signedRequest().xml, { sign: 'sha256' });
    await refusedUnchanged(() => getSso(`${query}&Relay%53tate=evil`), 'saml.signature_invalid');
    const withState = redirectQuery(signedRequest().xml, { relayState: 'honest', sign: 'sha256' });
    await refusedUnchanged(() => getSso(`${withState}&Relay%53tate=evil`), 'saml.redirect_duplicate');
    await refusedUnchanged(() => getSso(`${withState}&RelayState=evil`), 'saml.redirect_duplicate');
  });

  test('a Redirect signature with malformed percent-encoding is refused, not a 500', async () => {
    const query = redirectQuery(signedRequest().xml, { sign: 'sha256' });
    await refusedUnchanged(() => getSso(query.replace(/Signature=[^&]*/, 'Signature=%E0%A4%A')), 'saml.redirect_encoding');
    await refusedUnchanged(() => getSso(query.replace(/SigAlg=[^&]*/, 'SigAlg=%E0%A4%A')), 'saml.redirect_encoding');
    await refusedUnchanged(() => getSso(`${query}&%ZZ=1`), 'saml.redirect_encoding');
  });

  test('RSA-SHA1 is refused by Redirect and by POST', async () => {
    await refusedUnchanged(() => getSso(redirectQuery(signedRequest().xml, { sign: 'sha1' })), 'saml.signature_algorithm');
    await refusedUnchanged(() => postSso(b64(signedRequest({}, RSA_SHA1).xml)), 'saml.signature_algorithm');
  });
});

describe('6. RelayState', () => {
  test('over 80 bytes is refused by both bindings (81 ASCII bytes, or 27 three-byte characters); 80 is accepted', async () => {
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest().xml, { relayState: 'r'.repeat(81) })), 'saml.relay_state_too_long');
    await refusedUnchanged(() => postSso(b64(authnRequest().xml), '中'.repeat(27)), 'saml.relay_state_too_long');
    expectAccepted(await postSso(b64(authnRequest().xml), 'r'.repeat(80)));
  });
});

describe('7. freshness', () => {
  test('a request issued an hour ago, or dated an hour ahead, is refused; its ID stays usable', async () => {
    const old = authnRequest({ issueInstant: samlTime(Date.now() - 3600_000) });
    await refusedUnchanged(() => getSso(redirectQuery(old.xml)), 'saml.request_expired');
    await refusedUnchanged(() => postSso(b64(authnRequest({ issueInstant: samlTime(Date.now() + 3600_000) }).xml)), 'saml.issue_instant_future');
    await refusedUnchanged(() => postSso(b64(signedRequest({ issueInstant: samlTime(Date.now() + 3600_000) }).xml)), 'saml.issue_instant_future');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ issueInstant: 'yesterday' }).xml)), 'saml.issue_instant');
    expect(await seen(old.id)).toBe(false);
  });
});

describe('8. malformed and misaddressed messages', () => {
  test('an unknown Issuer, a missing Issuer, a non-AuthnRequest root and another Destination are refused', async () => {
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ issuer: 'https://nobody.example.org' }).xml)), 'saml.unknown_sp');
    // The refusal names the Issuer it did not know: as text, never as markup.
    const xss = await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ issuer: '&lt;script&gt;alert(1)&lt;/script&gt;' }).xml)), 'saml.unknown_sp');
    expect(xss.body).toContain('&lt;script&gt;alert(1)');
    expect(xss.body).not.toContain('<script>alert(1)');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest().xml.replace(/<saml:Issuer>[^<]*<\/saml:Issuer>/, ''))), 'saml.issuer_missing');
    const logout = `<samlp:LogoutRequest xmlns:samlp="${NS_P}" xmlns:saml="${NS_A}" ID="${newId()}" Version="2.0" IssueInstant="${samlTime(Date.now())}"><saml:Issuer>${OPEN_SP}</saml:Issuer><saml:NameID>alice@example.com</saml:NameID></samlp:LogoutRequest>`;
    await refusedUnchanged(() => getSso(redirectQuery(logout)), 'saml.not_authn_request');
    await refusedUnchanged(() => postSso(b64('<Response xmlns="urn:oasis:names:tc:SAML:2.0:protocol"/>')), 'saml.not_authn_request');
    await refusedUnchanged(() => postSso(b64(authnRequest({ destination: 'https://other-idp.example.org/sso' }).xml)), 'saml.destination');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest().xml.replace('Version="2.0"', 'Version="1.1"'))), 'saml.version');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest({ id: '1-not-an-ncname' }).xml)), 'saml.id_invalid');
    await refusedUnchanged(() => getSso(redirectQuery(authnRequest().xml.replace(POST_BINDING, 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact'))), 'saml.binding_unsupported');
  });

  test('IdP-initiated sign-in and the continue URL refuse unknown or malformed ids and a long RelayState', async () => {
    for (const path of ['/saml/start/not-a-uuid', `/saml/start/${webcrypto.randomUUID()}`]) {
      const a = await send(`${base}${path}`);
      expect({ status: a.status, code: /<code>([^<]*)<\/code>/.exec(a.body)?.[1] }).toEqual({ status: 404, code: 'saml.app_not_found' });
    }
    await refusedUnchanged(() => send(`${base}/saml/sso/continue/not-a-uuid`), 'saml.request_expired');
    await refusedUnchanged(() => send(`${base}/saml/sso/continue/${webcrypto.randomUUID()}`), 'saml.request_expired');
    const { rows } = await sql.query<{ app_id: string }>('select app_id from saml_service_providers where entity_id = $1', [OPEN_SP]);
    await refusedUnchanged(() => send(`${base}/saml/start/${rows[0]!.app_id}?RelayState=${'r'.repeat(81)}`), 'saml.relay_state_too_long');
  });

  test('an Issuer with a NUL or a lone surrogate (text PostgreSQL cannot take) is refused as an unknown SP, not a 500', async () => {
    for (const bad of ['&#0;', '&#xD800;']) {
      const before = await counts();
      const a = await getSso(redirectQuery(authnRequest({ issuer: `${OPEN_SP}${bad}` }).xml));
      expect({ status: a.status, code: /<code>([^<]*)<\/code>/.exec(a.body)?.[1] }).toEqual({ status: 400, code: 'saml.unknown_sp' });
      expect(a.body).not.toMatch(/\n\s+at |node_modules|insert into|select /i);
      expect(await counts()).toEqual(before);
    }
  });

  test('malformed base64, a message that is not DEFLATE, malformed XML and a missing SAMLRequest are refused', async () => {
    await refusedUnchanged(() => getSso('SAMLRequest=%%%not-base64!!'), 'saml.encoding');
    await refusedUnchanged(() => getSso(`SAMLRequest=${encodeURIComponent(b64(authnRequest().xml))}`), 'saml.encoding');
    await refusedUnchanged(() => postSso('not base64 at all!'), 'saml.encoding');
    await refusedUnchanged(() => postSso(b64('<samlp:AuthnRequest xmlns:samlp="x"><unclosed>')), 'saml.xml_malformed');
    await refusedUnchanged(() => getSso('RelayState=x'), 'saml.request_missing');
    await refusedUnchanged(() => send(`${base}/saml/sso`, { method: 'POST', body: new URLSearchParams({ RelayState: 'x' }) }), 'saml.request_missing');
  });

  test('a deflate bomb (10 MB of spaces) is refused quickly, by Redirect and by POST', async () => {
    const bomb = deflated(Buffer.alloc(10 * 1024 * 1024, ' '));
    expect(bomb.length).toBeLessThan(15_000);
    const a = await refusedUnchanged(() => getSso(`SAMLRequest=${encodeURIComponent(bomb)}`), 'saml.encoding');
    expect(a.ms).toBeLessThan(2000);
    // Deflated by POST (some SP libraries deflate there too): read as deflated or not at all, bounded either way.
    const c = await refusedUnchanged(() => postSso(bomb), ['saml.encoding', 'saml.xml_malformed']);
    expect(c.ms).toBeLessThan(2000);
    // Plain base64 by POST: 10 MB of it is over the body limit.
    const big = Buffer.alloc(10 * 1024 * 1024, ' ').toString('base64');
    const before = await counts();
    const b = await postSso(big);
    expect(b.status).toBe(413);
    expect(b.body).not.toMatch(/\n\s+at |node_modules/);
    expect(await counts()).toEqual(before);
  });

  test('a body of whitespace with one bad character (a slow case for a backtracking base64 check) is refused quickly', async () => {
    // Just under the 56 KB body limit of /saml/sso. Before the fix each took about a second.
    const spaces = `${' '.repeat(57_000)}!`;
    let total = 0;
    for (let i = 0; i < 3; i += 1) total += (await refusedUnchanged(() => postSso(spaces), 'saml.encoding')).ms;
    expect(total).toBeLessThan(1200);
  });
});

// ================= the SP side: Responses OneID issued, wrapped =================

describe('signature wrapping against node-saml, on Responses OneID issued', () => {
  /** A real Response for `login`, from a browser sign-in through OneID's page. */
  async function issuedResponse(spEntity: string, login: string): Promise<{ xml: string; sp: SAML }> {
    const sp = new SAML({
      entryPoint: `${base}/saml/sso`, issuer: spEntity, callbackUrl: RP_ACS, idpCert, audience: spEntity,
      wantAssertionsSigned: true, wantAuthnResponseSigned: spEntity === RP_BOTH, idpIssuer: `${base}/saml/metadata`,
    });
    const browser = new Browser();
    const page = await browser.navigate(await sp.getAuthorizeUrlAsync('', undefined, {}));
    const done = await browser.submit(page, '/password', { login, password: PASSWORD });
    const message = /name="SAMLResponse" value="([^"]+)"/.exec(done.html);
    if (!message) throw new Error(`no SAMLResponse on ${done.url}: ${done.html.slice(0, 500)}`);
    return { xml: Buffer.from(decodeHtml(message[1]!), 'base64').toString('utf8'), sp };
  }
  const validate = (sp: SAML, xml: string) => sp.validatePostResponseAsync({ SAMLResponse: b64(xml) });


  test.each([RP_BOTH, RP_ASSERTION])('for an SP wanting %s: the Response as issued is accepted; each wrapping is refused', async (spEntity) => {
    const { xml, sp } = await issuedResponse(spEntity, 'alice');
    const honest = await validate(sp, xml);
    expect(honest.profile?.nameID).toBe('alice@example.com');
    for (const [name, wrap] of RESPONSE_WRAPPINGS) {
      const forged = wrap(xml);
      expect(forged).not.toBe(xml);
      const outcome = await validate(sp, forged).then((r) => `accepted as ${r.profile?.nameID}`, (e: Error) => `refused: ${e.message}`);
      expect({ name, outcome }).toEqual({ name, outcome: expect.stringMatching(/^refused: /) });
    }
  });

  test('a comment injected into the NameID (alice@example.com<!---->.evil.test) is read whole by node-saml, never cut short', async () => {
    const { xml, sp } = await issuedResponse(RP_ASSERTION, 'mallory');
    const injected = injectCommentInNameId(xml, 'alice@example.com.evil.test', 'alice@example.com');
    const outcome = await validate(sp, injected).then((r) => `accepted as ${r.profile?.nameID}`, () => 'refused');
    expect(['refused', 'accepted as alice@example.com.evil.test']).toContain(outcome);
  });
});
