// The SAML e2e harness tested against itself, before OneID's SSO exists: the SPs nobody here
// wrote (node-saml, python3-onelogin-saml2) and xmlsec1 accept a Response built and signed here
// the way an IdP must (xml-crypto, exc-c14n, RSA-SHA256) and refuse a tampered copy, so a failing
// e2e test later points at OneID and not at the harness. The stand-in IdP below is test-only.
import { createPublicKey, createSign, createVerify, randomBytes } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { SignedXml } from 'xml-crypto';
import xmlenc from 'xml-encryption';
import { makeSpKeys, type SpKeys } from '../helpers/saml-keys.ts';
import { authnRequestFromForm, createNodeSamlSp, parseIdpMetadata, readSamlForm, type IdpMetadata } from '../helpers/node-saml-sp.ts';
import { pythonSp } from '../helpers/python-saml.ts';
import { verifyEachSignature, xmlsecDecrypt, xmlsecVerify } from '../helpers/xmlsec.ts';
import { findAutoPostForm } from '../helpers/saml-browserless.ts';

const BASE = 'http://localhost:7777';
const IDP_ENTITY = `${BASE}/saml/metadata`;
const SP_ENTITY = 'https://sp.example.test/saml';
const ACS = 'https://sp.example.test:8443/saml/acs';
const SLO = 'https://sp.example.test:8443/saml/slo';
const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

let idp: SpKeys; // the stand-in IdP's key and certificate
let sp: SpKeys;
let metadata: IdpMetadata;

beforeAll(async () => {
  [idp, sp] = await Promise.all([makeSpKeys('stand-in idp'), makeSpKeys('test sp')]);
  metadata = parseIdpMetadata(`<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${IDP_ENTITY}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${idp.certificateBase64.match(/.{1,64}/g)!.join('\n')}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${BASE}/saml/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${BASE}/saml/sso"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${BASE}/saml/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`);
});

const id = (): string => `_${randomBytes(16).toString('hex')}`;
const iso = (offsetMs: number): string => new Date(Date.now() + offsetMs).toISOString().replace(/\.\d{3}Z$/, 'Z');

function signElement(xml: string, localName: string, key: string, cert: string): string {
  const sig = new SignedXml({ privateKey: key, publicCert: cert, signatureAlgorithm: RSA_SHA256, canonicalizationAlgorithm: EXC_C14N });
  sig.addReference({
    xpath: `//*[local-name(.)='${localName}']`,
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', EXC_C14N],
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
  });
  sig.computeSignature(xml, { prefix: 'ds', location: { reference: `//*[local-name(.)='${localName}']/*[local-name(.)='Issuer']`, action: 'after' } });
  return sig.getSignedXml();
}

async function encryptFor(assertion: string, certPem: string): Promise<string> {
  const encrypted = await new Promise<string>((resolve, reject) => xmlenc.encrypt(assertion, {
    rsa_pub: createPublicKey(certPem).export({ type: 'spki', format: 'pem' }) as string,
    pem: certPem,
    encryptionAlgorithm: 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
    keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  }, (err: Error | null, result: string) => (err ? reject(err) : resolve(result))));
  return `<saml:EncryptedAssertion>${encrypted}</saml:EncryptedAssertion>`;
}

/** A Response as an IdP must send it: Assertion signed, then (encrypted, then) Response signed. */
async function standInResponse(inResponseTo: string, opts: { email?: string; encryptFor?: string; assertionKey?: SpKeys } = {}): Promise<{ xml: string; base64: string }> {
  const email = opts.email ?? 'pat@example.com';
  const responseId = id();
  const assertionId = id();
  const attribute = (name: string, values: string[]) => `<saml:Attribute Name="${name}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${
    values.map((v) => `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">${v}</saml:AttributeValue>`).join('')}</saml:Attribute>`;
  let assertion = `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${assertionId}" Version="2.0" IssueInstant="${iso(0)}">`
    + `<saml:Issuer>${IDP_ENTITY}</saml:Issuer>`
    + `<saml:Subject><saml:NameID Format="${EMAIL_FORMAT}">${email}</saml:NameID>`
    + `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="${inResponseTo}" NotOnOrAfter="${iso(300_000)}" Recipient="${ACS}"/></saml:SubjectConfirmation></saml:Subject>`
    + `<saml:Conditions NotBefore="${iso(-30_000)}" NotOnOrAfter="${iso(300_000)}"><saml:AudienceRestriction><saml:Audience>${SP_ENTITY}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
    + `<saml:AuthnStatement AuthnInstant="${iso(-1000)}" SessionIndex="${id()}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`
    + `<saml:AttributeStatement>${attribute('email', [email])}${attribute('displayName', ['Pat'])}${attribute('groups', ['staff', 'wiki'])}${attribute('roles', ['wiki.editor'])}</saml:AttributeStatement>`
    + '</saml:Assertion>';
  assertion = signElement(assertion, 'Assertion', (opts.assertionKey ?? idp).privateKeyPem, (opts.assertionKey ?? idp).certificatePem);
  if (opts.encryptFor) assertion = await encryptFor(assertion, opts.encryptFor);
  const response = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${responseId}" Version="2.0" IssueInstant="${iso(0)}" Destination="${ACS}" InResponseTo="${inResponseTo}">`
    + `<saml:Issuer>${IDP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>${assertion}</samlp:Response>`;
  const xml = signElement(response, 'Response', idp.privateKeyPem, idp.certificatePem);
  return { xml, base64: Buffer.from(xml).toString('base64') };
}

/** The same Response with the NameID's text changed (signatures left as they were). */
const tamperNameId = (xml: string, to: string): string => xml.replace(/(<saml:NameID[^>]*>)[^<]*(<\/saml:NameID>)/, `$1${to}$2`);
const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('test/helpers/saml-keys', () => {
  it('makes an RSA 2048 key and a self-signed certificate for it', async () => {
    const { X509Certificate, createPrivateKey } = await import('node:crypto');
    const cert = new X509Certificate(sp.certificatePem);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(sp.privateKeyPem))).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(Buffer.from(sp.certificateBase64, 'base64').equals(cert.raw)).toBe(true);
  });
});

describe('test/helpers/xmlsec', () => {
  it('verifies the Response and the Assertion signature each on its own, and refuses a tampered copy', async () => {
    const { xml } = await standInResponse('_req1');
    const all = await verifyEachSignature(xml, idp.certificatePem);
    expect(all.signatures.map((s) => [s.element, s.referencesParent, s.xmlsec.ok])).toEqual([['Response', true, true], ['Assertion', true, true]]);
    expect(all.ok).toBe(true);
    // The Assertion's signature alone, by its own start node.
    expect((await xmlsecVerify(xml, idp.certificatePem, { idAttr: 'urn:oasis:names:tc:SAML:2.0:assertion:Assertion', nodeXpath: all.signatures[1]!.xpath })).ok).toBe(true);

    const tampered = await verifyEachSignature(tamperNameId(xml, 'mallory@example.com'), idp.certificatePem);
    expect(tampered.ok).toBe(false);
    expect(tampered.signatures.map((s) => s.xmlsec.ok)).toEqual([false, false]);
    // Another key: refused.
    expect((await verifyEachSignature(xml, sp.certificatePem)).ok).toBe(false);
  });

  it('sees only the first signature without --node-xpath (why verifyEachSignature exists)', async () => {
    // The Assertion signed with another key (any change inside the Assertion would break the
    // Response's digest too): plain --verify checks the Response's signature only, and passes.
    const { xml: broken } = await standInResponse('_req2', { assertionKey: sp });
    expect((await xmlsecVerify(broken, idp.certificatePem)).ok).toBe(true);
    const each = await verifyEachSignature(broken, idp.certificatePem);
    expect(each.signatures.map((s) => s.xmlsec.ok)).toEqual([true, false]);
  });

  it('decrypts an encrypted assertion (AES-256-GCM, RSA-OAEP) with the SP key only', async () => {
    const { xml } = await standInResponse('_req3', { encryptFor: sp.certificatePem });
    expect(xml).not.toContain('pat@example.com');
    const decrypted = await xmlsecDecrypt(xml, sp.privateKeyPem);
    // xmlsec1 complains on stderr that the certificate in KeyInfo is self-signed (it has no trust
    // store here) and decrypts with the private key all the same.
    expect(decrypted.ok).toBe(true);
    expect(decrypted.xml).toContain('pat@example.com');
    expect(decrypted.xml).toMatch(/<saml:EncryptedAssertion>\s*<saml:Assertion /);
    // The inner Assertion's signature survives decryption.
    const inner = /<saml:Assertion [\s\S]*<\/saml:Assertion>/.exec(decrypted.xml)![0];
    expect((await verifyEachSignature(inner, idp.certificatePem)).ok).toBe(true);
    expect((await xmlsecDecrypt(xml, idp.privateKeyPem)).ok).toBe(false);
  });
});

describe('test/helpers/node-saml-sp', () => {
  it('reads the metadata, builds Redirect and POST AuthnRequests, and validates a Response for its request only', async () => {
    expect(metadata).toMatchObject({ entityId: IDP_ENTITY, signingCertificates: [idp.certificateBase64] });
    const spSigned = await createNodeSamlSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, sloUrl: SLO, metadata, signing: sp });
    const url = new URL(await spSigned.authorizeUrl('relay-1'));
    expect(url.origin + url.pathname).toBe(`${BASE}/saml/sso`);
    expect(url.searchParams.get('RelayState')).toBe('relay-1');
    expect(url.searchParams.get('SigAlg')).toBe(RSA_SHA256);
    const request = inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString();
    const requestId = /ID="([^"]+)"/.exec(request)![1]!;
    expect(request).toContain(`AssertionConsumerServiceURL="${ACS}"`);
    // The query signature verifies with the SP certificate (what OneID will check).
    const raw = url.search.slice(1).split('&').filter((p) => !p.startsWith('Signature=')).join('&');
    expect(createVerify('RSA-SHA256').update(raw).verify(sp.certificatePem, url.searchParams.get('Signature')!, 'base64')).toBe(true);

    // An SP of its own for the POST binding: node-saml deflates a POSTed AuthnRequest unless told
    // not to, which the POST binding does not do (SAML bindings 3.5.4).
    const spPost = await createNodeSamlSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, metadata, signing: sp, postBinding: true, cache: spSigned.cache });
    const form = authnRequestFromForm(await spPost.authorizeForm('relay-2'));
    expect(form.action).toBe(`${BASE}/saml/sso`);
    expect(form.RelayState).toBe('relay-2');
    const postRequest = Buffer.from(form.SAMLRequest, 'base64').toString();
    // An enveloped signature for the POST binding (node-saml writes it in the default namespace:
    // <Signature xmlns="...xmldsig#">, which OneID must read by namespace, not by prefix).
    expect(postRequest).toMatch(/<Signature xmlns="http:\/\/www.w3.org\/2000\/09\/xmldsig#">/);
    const postRequestId = /ID="([^"]+)"/.exec(postRequest)![1]!;
    expect((await verifyEachSignature(postRequest, sp.certificatePem)).ok).toBe(true);

    const ok = await spSigned.validatePostResponse((await standInResponse(requestId)).base64);
    expect(ok.profile).toMatchObject({ nameID: 'pat@example.com', nameIDFormat: EMAIL_FORMAT, email: 'pat@example.com', displayName: 'Pat', groups: ['staff', 'wiki'], roles: 'wiki.editor' });
    // InResponseTo: the same request answered twice, and a request this SP never made, are refused.
    await expect(spSigned.validatePostResponse((await standInResponse(requestId)).base64)).rejects.toThrow(/InResponseTo/);
    await expect(spSigned.validatePostResponse((await standInResponse('_never-asked')).base64)).rejects.toThrow(/InResponseTo/);
    // Tampered NameID.
    await expect(spSigned.validatePostResponse(b64(tamperNameId((await standInResponse(postRequestId)).xml, 'mallory@example.com')))).rejects.toThrow();
  });

  it('decrypts an encrypted assertion with decryptionPvk', async () => {
    const spEnc = await createNodeSamlSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, metadata, decryptionPvk: sp.privateKeyPem });
    const url = new URL(await spEnc.authorizeUrl());
    const requestId = /ID="([^"]+)"/.exec(inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString())![1]!;
    const { profile } = await spEnc.validatePostResponse((await standInResponse(requestId, { encryptFor: sp.certificatePem })).base64);
    expect(profile?.nameID).toBe('pat@example.com');
  });
});

describe('test/helpers/python-saml', () => {
  const strictSp = () => pythonSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, sloUrl: SLO, idpCertificates: [idp.certificateBase64], sp });

  it('login: a deflated AuthnRequest in a Redirect URL whose query signature verifies with the SP certificate', async () => {
    const { url, request_id: requestId } = await strictSp().login({ relay_state: 'back-to-app' });
    const u = new URL(url);
    expect(u.origin + u.pathname).toBe(`${BASE}/saml/sso`);
    const xml = inflateRawSync(Buffer.from(u.searchParams.get('SAMLRequest')!, 'base64')).toString();
    expect(xml).toContain(`ID="${requestId}"`);
    expect(xml).toContain(`Destination="${BASE}/saml/sso"`);
    expect(xml).toContain(`AssertionConsumerServiceURL="${ACS}"`);
    expect(xml).toContain(`<saml:Issuer>${SP_ENTITY}</saml:Issuer>`);
    expect(u.searchParams.get('RelayState')).toBe('back-to-app');
    expect(u.searchParams.get('SigAlg')).toBe(RSA_SHA256);
    // Signed over the query as sent: SAMLRequest=..&RelayState=..&SigAlg=.. (SAML bindings §3.4.4.1).
    const signed = u.search.slice(1).split('&').filter((p) => !p.startsWith('Signature=')).join('&');
    expect(createVerify('RSA-SHA256').update(signed).verify(sp.certificatePem, u.searchParams.get('Signature')!, 'base64')).toBe(true);
    expect(createVerify('RSA-SHA256').update(`${signed}x`).verify(sp.certificatePem, u.searchParams.get('Signature')!, 'base64')).toBe(false);
  });

  it('login-post: an AuthnRequest with an enveloped signature xmlsec1 verifies', async () => {
    const { saml_request: samlRequest, request_id: requestId } = await strictSp().loginPost();
    const xml = Buffer.from(samlRequest, 'base64').toString();
    expect(xml).toContain(`ID="${requestId}"`);
    const checked = await verifyEachSignature(xml, sp.certificatePem);
    expect(checked.signatures.map((s) => s.element)).toEqual(['AuthnRequest']);
    expect(checked.ok).toBe(true);
  });

  it('acs: accepts a well-formed signed Response in strict mode, refuses a tampered one and a wrong InResponseTo', async () => {
    const python = strictSp();
    const { request_id: requestId } = await python.login();
    const { xml, base64 } = await standInResponse(requestId);
    const result = await python.acs(base64, requestId);
    expect(result).toMatchObject({ ok: true, errors: [], name_id: 'pat@example.com', name_id_format: EMAIL_FORMAT,
      attributes: { email: ['pat@example.com'], displayName: ['Pat'], groups: ['staff', 'wiki'], roles: ['wiki.editor'] } });
    expect(result.session_index).toMatch(/^_/);
    const tampered = await python.acs(b64(tamperNameId(xml, 'mallory@example.com')), requestId);
    expect(tampered.ok).toBe(false);
    expect(tampered.errors).toEqual(['invalid_response']);
    expect((await python.acs(base64, '_another-request')).ok).toBe(false);
    expect((await python.acs(b64('not xml at all'), requestId)).ok).toBe(false);
  });

  it('acs: decrypts an encrypted assertion with the SP key', async () => {
    const python = strictSp();
    const { request_id: requestId } = await python.login();
    const result = await python.acs((await standInResponse(requestId, { encryptFor: sp.certificatePem })).base64, requestId);
    expect(result.last_error_reason).toBeNull();
    expect(result).toMatchObject({ ok: true, name_id: 'pat@example.com' });
  });

  it('logout: a signed LogoutRequest for the NameID and SessionIndex', async () => {
    const { url, request_id: requestId } = await strictSp().logout({ name_id: 'pat@example.com', session_index: '_s1', name_id_format: EMAIL_FORMAT });
    const u = new URL(url);
    expect(u.origin + u.pathname).toBe(`${BASE}/saml/slo`);
    const xml = inflateRawSync(Buffer.from(u.searchParams.get('SAMLRequest')!, 'base64')).toString();
    expect(xml).toContain(`ID="${requestId}"`);
    expect(xml).toContain('>pat@example.com</saml:NameID>');
    expect(xml).toContain('<samlp:SessionIndex>_s1</samlp:SessionIndex>');
    expect(u.searchParams.get('Signature')).toBeTruthy();
  });
});

/** A Redirect-binding message from the stand-in IdP, signed over the query as SAML bindings 3.4.4.1 say. */
function idpRedirect(param: 'SAMLRequest' | 'SAMLResponse', xml: string, relayState?: string, key = idp.privateKeyPem): string {
  const q = [`${param}=${encodeURIComponent(deflateRawSync(Buffer.from(xml)).toString('base64'))}`];
  if (relayState !== undefined) q.push(`RelayState=${encodeURIComponent(relayState)}`);
  q.push(`SigAlg=${encodeURIComponent(RSA_SHA256)}`);
  const signature = createSign('RSA-SHA256').update(q.join('&')).sign(key, 'base64');
  return `${SLO}?${q.join('&')}&Signature=${encodeURIComponent(signature)}`;
}
const unsignedOf = (url: string): string => url.replace(/&SigAlg=[^&]*&Signature=[^&]*$/, '');

const logoutResponse = (inResponseTo: string): string => `<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id()}" Version="2.0" IssueInstant="${iso(0)}" Destination="${SLO}" InResponseTo="${inResponseTo}">`
  + `<saml:Issuer>${IDP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>`;
const logoutRequest = (): string => `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id()}" Version="2.0" IssueInstant="${iso(0)}" Destination="${SLO}">`
  + `<saml:Issuer>${IDP_ENTITY}</saml:Issuer><saml:NameID Format="${EMAIL_FORMAT}">pat@example.com</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>`;

describe('single logout messages (Redirect binding) from a stand-in IdP', () => {
  it('python sls-response: accepts a signed LogoutResponse to its LogoutRequest; refuses it unsigned, signed by another key, or for another request', async () => {
    const python = pythonSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, sloUrl: SLO, idpCertificates: [idp.certificateBase64], sp });
    const { request_id: requestId } = await python.logout({ name_id: 'pat@example.com', session_index: '_s1', name_id_format: EMAIL_FORMAT });
    const xml = logoutResponse(requestId);
    expect(await python.slsResponse(idpRedirect('SAMLResponse', xml, 'relay'), requestId)).toMatchObject({ ok: true, errors: [] });
    expect((await python.slsResponse(unsignedOf(idpRedirect('SAMLResponse', xml, 'relay')), requestId)).ok).toBe(false);
    expect((await python.slsResponse(idpRedirect('SAMLResponse', xml, 'relay', sp.privateKeyPem), requestId)).ok).toBe(false);
    expect((await python.slsResponse(idpRedirect('SAMLResponse', xml), '_another')).ok).toBe(false);
  });

  it('python sls-request: accepts a signed LogoutRequest and answers with a signed LogoutResponse URL to the IdP', async () => {
    const python = pythonSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, sloUrl: SLO, idpCertificates: [idp.certificateBase64], sp });
    const request = logoutRequest();
    const answer = await python.slsRequest(idpRedirect('SAMLRequest', request, 'rs'));
    expect(answer).toMatchObject({ ok: true, errors: [], in_response_to: /ID="([^"]+)"/.exec(request)![1] });
    const u = new URL(answer.url!);
    expect(u.origin + u.pathname).toBe(`${BASE}/saml/slo`);
    expect(u.searchParams.get('RelayState')).toBe('rs');
    expect(inflateRawSync(Buffer.from(u.searchParams.get('SAMLResponse')!, 'base64')).toString()).toContain(`InResponseTo="${answer.in_response_to}"`);
    const signed = u.search.slice(1).split('&').filter((p) => !p.startsWith('Signature=')).join('&');
    expect(createVerify('RSA-SHA256').update(signed).verify(sp.certificatePem, u.searchParams.get('Signature')!, 'base64')).toBe(true);
    expect((await python.slsRequest(unsignedOf(idpRedirect('SAMLRequest', request)))).ok).toBe(false);
  });

  it('node-saml validateRedirect: a LogoutResponse to its own LogoutRequest and a LogoutRequest from the IdP; unsigned ones refused', async () => {
    const node = await createNodeSamlSp({ baseUrl: BASE, entityId: SP_ENTITY, acsUrl: ACS, sloUrl: SLO, metadata, signing: sp });
    const profile = { issuer: IDP_ENTITY, nameID: 'pat@example.com', nameIDFormat: EMAIL_FORMAT, sessionIndex: '_s1' };
    const out = new URL(await node.logoutUrl(profile, 'relay'));
    expect(out.searchParams.get('Signature')).toBeTruthy();
    const requestId = /ID="([^"]+)"/.exec(inflateRawSync(Buffer.from(out.searchParams.get('SAMLRequest')!, 'base64')).toString())![1]!;
    const back = idpRedirect('SAMLResponse', logoutResponse(requestId), 'relay');
    await expect(node.validateRedirect(unsignedOf(back))).rejects.toThrow(/unsigned/);
    expect(await node.validateRedirect(back)).toMatchObject({ loggedOut: true });
    await expect(node.validateRedirect(idpRedirect('SAMLResponse', logoutResponse(requestId), 'relay', sp.privateKeyPem))).rejects.toThrow();

    const incoming = await node.validateRedirect(idpRedirect('SAMLRequest', logoutRequest()));
    expect(incoming).toMatchObject({ loggedOut: true, profile: { nameID: 'pat@example.com', sessionIndex: '_s1' } });
    const answer = new URL(await node.logoutResponseUrl(incoming.profile!));
    expect(answer.origin + answer.pathname).toBe(`${BASE}/saml/slo`);
    expect(answer.searchParams.get('Signature')).toBeTruthy();
  });
});

describe('test/helpers/saml-browserless: the auto-post page', () => {
  it('finds the form that posts SAMLResponse and RelayState to the ACS URL, with entities decoded', () => {
    const html = `<!doctype html><html><body><form method="post" action="https://sp.example.test:8443/saml/acs?a=1&amp;b=2">
      <input type="hidden" name="SAMLResponse" value="PD94bWw+Cg=="><input type="hidden" name="RelayState" value="x&amp;y&quot;z">
      <noscript><button type="submit">Continue</button></noscript></form></body></html>`;
    expect(findAutoPostForm(html)).toEqual({ acsUrl: 'https://sp.example.test:8443/saml/acs?a=1&b=2', SAMLResponse: 'PD94bWw+Cg==', RelayState: 'x&y"z' });
    expect(findAutoPostForm('<form action="/login/password"><input type="hidden" name="csrf" value="1"></form>')).toBeUndefined();
    expect(readSamlForm(html).fields.RelayState).toBe('x&y"z');
  });
});

