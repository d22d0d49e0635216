// The Response OneID posts to a service provider's ACS: an assertion about the person (NameID,
// audience, validity window, subject confirmation bound to the request and the ACS, how and
// when the session signed in, attributes), signed, then encrypted for the SP when it asked for
// that, and the Response signed last, so that its signature covers the encrypted form the SP
// receives. Error answers are Responses too, with a status and no assertion.
import { encrypt as xmlEncrypt } from 'xml-encryption';
import { ASSERTION_LIFETIME_SECONDS, CLOCK_SKEW_SECONDS, CONFIRMATION_BEARER, NS, STATUS } from './constants.ts';
import { certificatePem, escapeXml as x, newSamlId, samlTime } from './xml.ts';
import { signEnveloped, type SigningKey } from './signature.ts';
import type { AttributeValues } from './attributes.ts';

export interface AssertionFacts {
  /** OneID's entityID. */
  issuer: string;
  audience: string;
  acsUrl: string;
  inResponseTo?: string;
  nameId: { value: string; format: string; spNameQualifier?: string; nameQualifier?: string };
  sessionIndex: string;
  authnInstant: Date;
  /** When the OneID session ends: the SP should not keep its own session longer. */
  sessionNotOnOrAfter?: Date;
  authnContextClassRef: string;
  attributes: AttributeValues[];
}

export interface ResponseOptions {
  signResponse: boolean;
  signAssertion: boolean;
  /** base64 DER: encrypt the assertion for this certificate. */
  encryptFor?: string | null;
}

const attr = (name: string, value: string | undefined): string => (value === undefined ? '' : ` ${name}="${x(value)}"`);

function attributeStatement(attributes: AttributeValues[]): string {
  if (!attributes.length) return '';
  const items = attributes.map((a) => `<saml:Attribute${attr('Name', a.name)}${attr('NameFormat', a.nameFormat)}${attr('FriendlyName', a.friendlyName)}>${
    a.values.map((v) => `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">${x(v)}</saml:AttributeValue>`).join('')
  }</saml:Attribute>`).join('');
  return `<saml:AttributeStatement>${items}</saml:AttributeStatement>`;
}

/** The assertion's XML, unsigned, with its ID. */
export function assertionXml(f: AssertionFacts, now = new Date()): { id: string; xml: string } {
  const id = newSamlId();
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000);
  const notOnOrAfter = new Date(now.getTime() + ASSERTION_LIFETIME_SECONDS * 1000);
  const xml = `<saml:Assertion xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${samlTime(now)}">`
    + `<saml:Issuer>${x(f.issuer)}</saml:Issuer>`
    + '<saml:Subject>'
    + `<saml:NameID${attr('NameQualifier', f.nameId.nameQualifier)}${attr('SPNameQualifier', f.nameId.spNameQualifier)} Format="${x(f.nameId.format)}">${x(f.nameId.value)}</saml:NameID>`
    + `<saml:SubjectConfirmation Method="${CONFIRMATION_BEARER}">`
    + `<saml:SubjectConfirmationData${attr('InResponseTo', f.inResponseTo)} NotOnOrAfter="${samlTime(notOnOrAfter)}" Recipient="${x(f.acsUrl)}"/>`
    + '</saml:SubjectConfirmation>'
    + '</saml:Subject>'
    + `<saml:Conditions NotBefore="${samlTime(notBefore)}" NotOnOrAfter="${samlTime(notOnOrAfter)}">`
    + `<saml:AudienceRestriction><saml:Audience>${x(f.audience)}</saml:Audience></saml:AudienceRestriction>`
    + '</saml:Conditions>'
    + `<saml:AuthnStatement AuthnInstant="${samlTime(f.authnInstant)}" SessionIndex="${x(f.sessionIndex)}"${f.sessionNotOnOrAfter ? ` SessionNotOnOrAfter="${samlTime(f.sessionNotOnOrAfter)}"` : ''}>`
    + `<saml:AuthnContext><saml:AuthnContextClassRef>${x(f.authnContextClassRef)}</saml:AuthnContextClassRef></saml:AuthnContext>`
    + '</saml:AuthnStatement>'
    + attributeStatement(f.attributes)
    + '</saml:Assertion>';
  return { id, xml };
}

function encryptAssertion(xml: string, certificate: string): Promise<string> {
  const pem = certificatePem(certificate);
  return new Promise((resolve, reject) => {
    xmlEncrypt(xml, {
      rsa_pub: pem,
      pem,
      // AES-256-GCM for the content, RSA-OAEP (MGF1 SHA-1, what SAML peers implement) for its key.
      encryptionAlgorithm: 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
      keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
      disallowEncryptionWithInsecureAlgorithm: true,
      warnInsecureAlgorithm: false,
    }, (err: Error | null, result?: string) => (err || !result ? reject(err ?? new Error('encryption failed')) : resolve(result)));
  });
}

function responseXml(issuer: string, destination: string, inResponseTo: string | undefined, status: string, body: string, now: Date): { id: string; xml: string } {
  const id = newSamlId();
  const xml = `<samlp:Response xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${samlTime(now)}" Destination="${x(destination)}"${attr('InResponseTo', inResponseTo)}>`
    + `<saml:Issuer>${x(issuer)}</saml:Issuer>`
    + status
    + body
    + '</samlp:Response>';
  return { id, xml };
}

/** A successful Response carrying the assertion: signed, encrypted, signed, as the SP's settings say. */
export async function successResponse(f: AssertionFacts, options: ResponseOptions, key: SigningKey, now = new Date()): Promise<string> {
  const assertion = assertionXml(f, now);
  let assertionPart = options.signAssertion ? signEnveloped(assertion.xml, assertion.id, 'Assertion', key) : assertion.xml;
  if (options.encryptFor) assertionPart = `<saml:EncryptedAssertion>${await encryptAssertion(assertionPart, options.encryptFor)}</saml:EncryptedAssertion>`;
  const response = responseXml(f.issuer, f.acsUrl, f.inResponseTo, `<samlp:Status><samlp:StatusCode Value="${STATUS.success}"/></samlp:Status>`, assertionPart, now);
  // An SP that wants neither signed still gets a signed Response: an unsigned assertion would be
  // a bearer token anyone on the way could alter.
  return options.signResponse || !options.signAssertion ? signEnveloped(response.xml, response.id, 'Response', key) : response.xml;
}

/** A Response refusing the request (no assertion), signed: e.g. Responder + RequestDenied. */
export function errorResponse(issuer: string, acsUrl: string, inResponseTo: string | undefined, top: string, second: string | undefined, message: string | undefined, key: SigningKey, now = new Date()): string {
  const status = '<samlp:Status>'
    + `<samlp:StatusCode Value="${x(top)}">${second ? `<samlp:StatusCode Value="${x(second)}"/>` : ''}</samlp:StatusCode>`
    + (message ? `<samlp:StatusMessage>${x(message)}</samlp:StatusMessage>` : '')
    + '</samlp:Status>';
  const response = responseXml(issuer, acsUrl, inResponseTo, status, '', now);
  return signEnveloped(response.xml, response.id, 'Response', key);
}
