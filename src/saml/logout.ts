// SAML single logout messages (saml-core 3.7): reading and checking the LogoutRequests and
// LogoutResponses service providers send to /saml/slo, and building the ones OneID sends.
// Every message OneID sends is signed (many SPs refuse unsigned logout messages); a message from
// an SP is checked the way an AuthnRequest is (registered Issuer, signature, freshness, replay),
// except that a signature is REQUIRED whenever the SP registered a certificate: a forged
// LogoutRequest would sign a person out, and a forged LogoutResponse would hide a failed logout.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import type { App } from '../apps/apps.repo.ts';
import type { SamlServiceProvider } from '../apps/saml-providers.repo.ts';
import { NS, STATUS } from './constants.ts';
import { childElements, escapeXml as x, isSamlId, newSamlId, parseXml, samlTime, textOf } from './xml.ts';
import { checkIssueInstant, checkRelayState, checkSignature, decodeMessage, firstSighting, issuingApp, type IncomingMessage } from './authn-request.ts';

const invalid = (code: string, message: string): AppError => new AppError('invalid_argument', code, message);

/** Whom a LogoutRequest names: the NameID, and the SessionIndexes if it gives any. */
export interface NamedSubject {
  nameId: string;
  nameIdFormat?: string;
  sessionIndexes: string[];
}

export interface CheckedLogoutRequest extends NamedSubject {
  requestId: string;
  relayState?: string;
  /** Whether it carried a valid signature (possible only for an SP with a certificate, and then required). */
  signed: boolean;
}

export interface CheckedLogoutResponse {
  inResponseTo: string;
  /** Top-level StatusCode is Success. */
  success: boolean;
  status: string;
  relayState?: string;
}

/** Reads the root of a message and checks what every SAML protocol message must carry. */
function messageRoot(input: IncomingMessage, localName: 'LogoutRequest' | 'LogoutResponse'): { xml: string; doc: Document; root: Element } {
  const xml = decodeMessage(input);
  const doc = parseXml(xml);
  const root = doc.documentElement!;
  if (root.namespaceURI !== NS.protocol || root.localName !== localName) throw invalid('saml.unexpected_message', `the message is not a SAML 2.0 ${localName}`);
  if (root.getAttribute('Version') !== '2.0') throw invalid('saml.version', 'only SAML 2.0 messages are accepted');
  return { xml, doc, root };
}

/** The sender's signature: checked when present, and required when the SP has a signing certificate. */
function requireSignature(input: IncomingMessage, xml: string, doc: Document, root: Element, sp: SamlServiceProvider, param: 'SAMLRequest' | 'SAMLResponse'): boolean {
  const signed = checkSignature(input, xml, doc, root, sp, param);
  if (!signed && sp.signingCertificates.length) throw invalid('saml.signature_required', 'this app has a signing certificate in OneID, and its logout messages must be signed');
  return signed;
}

function checkDestination(root: Element, sloUrl: string): void {
  const destination = root.getAttribute('Destination');
  if (destination && destination !== sloUrl) throw invalid('saml.destination', 'the message is addressed to another Destination');
}

/**
 * Reads and checks a LogoutRequest from an SP. Throws AppError (an error page: nothing is ended,
 * and nothing goes back to an app that has not been shown to be the sender) when it is not a
 * valid, signed-when-required, fresh, first-seen request addressed to OneID.
 */
export async function readLogoutRequest(db: Knex, input: IncomingMessage, sloUrl: string): Promise<{ app: App; sp: SamlServiceProvider; request: CheckedLogoutRequest }> {
  const relayState = checkRelayState(input.relayState);
  const { xml, doc, root } = messageRoot(input, 'LogoutRequest');
  const requestId = root.getAttribute('ID');
  if (!isSamlId(requestId)) throw invalid('saml.id_invalid', 'the request ID is missing or malformed');
  const { app, sp, issuer } = await issuingApp(db, root);
  const signed = requireSignature(input, xml, doc, root, sp, 'SAMLRequest');
  checkIssueInstant(root);
  checkDestination(root, sloUrl);
  const notOnOrAfter = root.getAttribute('NotOnOrAfter');
  if (notOnOrAfter && !(Date.parse(notOnOrAfter) > Date.now())) throw invalid('saml.request_expired', 'the LogoutRequest has expired (NotOnOrAfter)');
  // An encrypted NameID would need OneID's decryption key: OneID never issues one, so none comes back.
  if (childElements(root, NS.assertion, 'EncryptedID').length || childElements(root, NS.assertion, 'BaseID').length) {
    throw invalid('saml.name_id_unsupported', 'the LogoutRequest must name the person with a NameID');
  }
  const nameIds = childElements(root, NS.assertion, 'NameID');
  if (nameIds.length !== 1) throw invalid('saml.name_id_missing', 'the LogoutRequest must carry exactly one NameID');
  const nameId = textOf(nameIds[0]!);
  if (!nameId) throw invalid('saml.name_id_missing', 'the LogoutRequest NameID is empty');
  const sessionIndexes = childElements(root, NS.protocol, 'SessionIndex').map(textOf).filter(Boolean);
  if (sessionIndexes.length > 20) throw invalid('saml.session_index', 'the LogoutRequest names too many SessionIndexes');
  // Checked last, as for AuthnRequests: a request refused for another reason may be sent again.
  if (!await firstSighting(db, issuer, requestId)) throw invalid('saml.replayed', 'this LogoutRequest was already used');
  return {
    app,
    sp,
    request: { requestId, relayState, nameId, nameIdFormat: nameIds[0]!.getAttribute('Format') || undefined, sessionIndexes, signed },
  };
}

/** Reads and checks a LogoutResponse from an SP (an answer to a LogoutRequest OneID sent). */
export async function readLogoutResponse(db: Knex, input: IncomingMessage, sloUrl: string): Promise<{ app: App; sp: SamlServiceProvider; response: CheckedLogoutResponse }> {
  const relayState = checkRelayState(input.relayState);
  const { xml, doc, root } = messageRoot(input, 'LogoutResponse');
  if (!isSamlId(root.getAttribute('ID'))) throw invalid('saml.id_invalid', 'the response ID is missing or malformed');
  const inResponseTo = root.getAttribute('InResponseTo');
  if (!isSamlId(inResponseTo)) throw invalid('saml.in_response_to', 'the LogoutResponse does not name the request it answers');
  const { app, sp } = await issuingApp(db, root);
  requireSignature(input, xml, doc, root, sp, 'SAMLResponse');
  checkIssueInstant(root);
  checkDestination(root, sloUrl);
  const status = childElements(root, NS.protocol, 'Status')[0];
  const code = status && childElements(status, NS.protocol, 'StatusCode')[0]?.getAttribute('Value');
  if (!code) throw invalid('saml.status_missing', 'the LogoutResponse has no StatusCode');
  return { app, sp, response: { inResponseTo, success: code === STATUS.success, status: code, relayState } };
}

export interface LogoutRequestFacts {
  /** OneID's entityID. */
  issuer: string;
  destination: string;
  nameId: string;
  nameIdFormat: string;
  sessionIndex: string;
  /** For persistent NameIDs, as the assertion qualified them. */
  nameQualifier?: string;
  spNameQualifier?: string;
}

/** How long a LogoutRequest OneID sends stays good (NotOnOrAfter). */
const LOGOUT_REQUEST_LIFETIME_SECONDS = 300;

const attr = (name: string, value: string | undefined): string => (value === undefined ? '' : ` ${name}="${x(value)}"`);

/** An unsigned LogoutRequest and its ID (the caller signs it for the binding it uses). */
export function logoutRequestXml(f: LogoutRequestFacts, now = new Date()): { id: string; xml: string } {
  const id = newSamlId();
  const notOnOrAfter = new Date(now.getTime() + LOGOUT_REQUEST_LIFETIME_SECONDS * 1000);
  const xml = `<samlp:LogoutRequest xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${samlTime(now)}" Destination="${x(f.destination)}" NotOnOrAfter="${samlTime(notOnOrAfter)}">`
    + `<saml:Issuer>${x(f.issuer)}</saml:Issuer>`
    + `<saml:NameID${attr('NameQualifier', f.nameQualifier)}${attr('SPNameQualifier', f.spNameQualifier)} Format="${x(f.nameIdFormat)}">${x(f.nameId)}</saml:NameID>`
    + `<samlp:SessionIndex>${x(f.sessionIndex)}</samlp:SessionIndex>`
    + '</samlp:LogoutRequest>';
  return { id, xml };
}

export interface LogoutResponseFacts {
  issuer: string;
  destination: string;
  inResponseTo: string;
  top: string;
  second?: string;
  message?: string;
}

/** An unsigned LogoutResponse and its ID. */
export function logoutResponseXml(f: LogoutResponseFacts, now = new Date()): { id: string; xml: string } {
  const id = newSamlId();
  const xml = `<samlp:LogoutResponse xmlns:samlp="${NS.protocol}" xmlns:saml="${NS.assertion}" ID="${id}" Version="2.0" IssueInstant="${samlTime(now)}" Destination="${x(f.destination)}" InResponseTo="${x(f.inResponseTo)}">`
    + `<saml:Issuer>${x(f.issuer)}</saml:Issuer>`
    + '<samlp:Status>'
    + `<samlp:StatusCode Value="${x(f.top)}">${f.second ? `<samlp:StatusCode Value="${x(f.second)}"/>` : ''}</samlp:StatusCode>`
    + (f.message ? `<samlp:StatusMessage>${x(f.message)}</samlp:StatusMessage>` : '')
    + '</samlp:Status>'
    + '</samlp:LogoutResponse>';
  return { id, xml };
}
