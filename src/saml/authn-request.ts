// An AuthnRequest from a service provider, read and checked before anyone is asked to sign in:
// who sent it (a registered SP), that it is fresh, not seen before and signed when it must be,
// and where the answer may go (only an ACS URL the SP registered: an unregistered one is refused,
// never used, so OneID cannot be made to post an assertion somewhere else).
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import type { App } from '../apps/apps.repo.ts';
import { findSamlAppByEntityId, type SamlServiceProvider } from '../apps/saml-providers.repo.ts';
import { BINDING, CLOCK_SKEW_SECONDS, NS, RELAY_STATE_MAX_BYTES, REQUEST_MAX_AGE_SECONDS } from './constants.ts';
import { childElements, decodeBase64, inflateFromBase64, isSamlId, parseXml, textOf } from './xml.ts';
import { verifyEnveloped, verifyRedirectSignature } from './signature.ts';

/** What OneID keeps of a checked AuthnRequest until the sign-in it needs is done. */
export interface CheckedAuthnRequest {
  /** The request's ID (the Response's InResponseTo); absent for an IdP-initiated sign-in. */
  requestId?: string;
  acsUrl: string;
  relayState?: string;
  forceAuthn: boolean;
  isPassive: boolean;
  /** NameIDPolicy/@Format as sent (a URN); absent: the app's own format. */
  nameIdFormat?: string;
  /** NameIDPolicy/@AllowCreate; true when absent. */
  allowCreate: boolean;
  requestedContext?: { comparison: 'exact' | 'minimum' | 'maximum' | 'better'; classRefs: string[] };
  signed: boolean;
}

export interface IncomingMessage {
  binding: 'redirect' | 'post';
  /** The SAMLRequest parameter as received (decoded from the URL or form). */
  message: string;
  relayState?: string;
  /** The raw query string (Redirect binding), for its signature. */
  rawQuery?: string;
}

const invalid = (code: string, message: string): AppError => new AppError('invalid_argument', code, message);

export function checkRelayState(relayState: string | undefined): string | undefined {
  if (relayState === undefined || relayState === '') return undefined;
  if (Buffer.byteLength(relayState) > RELAY_STATE_MAX_BYTES) {
    throw invalid('saml.relay_state_too_long', `RelayState is longer than the ${RELAY_STATE_MAX_BYTES} bytes SAML allows`);
  }
  return relayState;
}

/** Reads the message's XML from its binding's encoding. */
export function decodeMessage(input: IncomingMessage): string {
  if (input.binding === 'redirect') return inflateFromBase64(input.message);
  const text = decodeBase64(input.message);
  // The POST binding carries plain base64, but some SP libraries deflate it as for a redirect:
  // what is not XML is read as a deflated message, with the same bound on its size.
  return /^\s*</.test(text) ? text : inflateFromBase64(input.message);
}

/** The SAML app named by a message's Issuer. */
export async function issuingApp(db: Knex, root: Element): Promise<{ app: App; sp: SamlServiceProvider; issuer: string }> {
  const issuerEl = childElements(root, NS.assertion, 'Issuer')[0];
  const issuer = issuerEl ? textOf(issuerEl) : '';
  if (!issuer) throw invalid('saml.issuer_missing', 'the message has no Issuer');
  const found = await findSamlAppByEntityId(db, issuer);
  if (!found || found.app.protocol !== 'saml') throw invalid('saml.unknown_sp', `no SAML app is registered with the entity ID ${issuer.slice(0, 200)}`);
  return { ...found, issuer };
}

/** Checks the message's signature for its binding; whether it was signed. */
export function checkSignature(input: IncomingMessage, xml: string, doc: Document, root: Element, sp: SamlServiceProvider, param: 'SAMLRequest' | 'SAMLResponse'): boolean {
  const outcome = input.binding === 'redirect'
    ? verifyRedirectSignature(input.rawQuery ?? '', param, sp.signingCertificates)
    : verifyEnveloped(xml, doc, root, sp.signingCertificates);
  return outcome === 'valid';
}

/** IssueInstant within the window: not older than REQUEST_MAX_AGE_SECONDS, not in the future (each with skew). */
export function checkIssueInstant(root: Element, now = Date.now()): void {
  const instant = Date.parse(root.getAttribute('IssueInstant') ?? '');
  if (Number.isNaN(instant)) throw invalid('saml.issue_instant', 'IssueInstant is missing or not a date');
  if (instant > now + CLOCK_SKEW_SECONDS * 1000) throw invalid('saml.issue_instant_future', 'the request is dated in the future');
  if (instant < now - (REQUEST_MAX_AGE_SECONDS + CLOCK_SKEW_SECONDS) * 1000) throw invalid('saml.request_expired', 'the request has expired (IssueInstant is too old)');
}

/**
 * Remembers a request ID until it could no longer be accepted anyway; false when it was seen
 * before (a replay).
 */
export async function firstSighting(db: Knex, issuer: string, requestId: string): Promise<boolean> {
  if (Math.random() < 0.02) {
    await db.raw('delete from saml_seen_request_ids where ctid in (select ctid from saml_seen_request_ids where expires_at < now() limit 500)');
  }
  const expiresAt = new Date(Date.now() + (REQUEST_MAX_AGE_SECONDS + 2 * CLOCK_SKEW_SECONDS) * 1000);
  const rows = await db.raw('insert into saml_seen_request_ids (issuer, request_id, expires_at) values (?, ?, ?) on conflict do nothing returning 1 as inserted', [issuer, requestId, expiresAt]);
  return rows.rows.length === 1;
}

/** The ACS URL the request asks for, which must be one the SP registered; else the default. */
export function resolveAcs(root: Element, sp: SamlServiceProvider): string {
  const url = root.getAttribute('AssertionConsumerServiceURL');
  const index = root.getAttribute('AssertionConsumerServiceIndex');
  const binding = root.getAttribute('ProtocolBinding');
  if (binding && binding !== BINDING.post) throw invalid('saml.binding_unsupported', `OneID answers by HTTP-POST only, not ${binding.slice(0, 100)}`);
  if (url) {
    const match = sp.acsUrls.find((a) => a.location === url);
    if (!match) throw invalid('saml.acs_unregistered', 'AssertionConsumerServiceURL is not one the app registered in OneID');
    return match.location;
  }
  if (index) {
    const match = sp.acsUrls.find((a) => String(a.index) === index);
    if (!match) throw invalid('saml.acs_unregistered', 'AssertionConsumerServiceIndex is not one the app registered in OneID');
    return match.location;
  }
  return defaultAcs(sp);
}

export const defaultAcs = (sp: SamlServiceProvider): string => (sp.acsUrls.find((a) => a.isDefault) ?? sp.acsUrls[0]!).location;

/**
 * Reads and checks an AuthnRequest. Throws AppError (a page for the person: nothing goes back
 * to an SP that has not been shown to be the sender) for anything wrong with it.
 */
export async function readAuthnRequest(db: Knex, input: IncomingMessage, ssoUrl: string): Promise<{ app: App; sp: SamlServiceProvider; request: CheckedAuthnRequest }> {
  const relayState = checkRelayState(input.relayState);
  const xml = decodeMessage(input);
  const doc = parseXml(xml);
  const root = doc.documentElement!;
  if (root.namespaceURI !== NS.protocol || root.localName !== 'AuthnRequest') throw invalid('saml.not_authn_request', 'the message is not a SAML 2.0 AuthnRequest');
  if (root.getAttribute('Version') !== '2.0') throw invalid('saml.version', 'only SAML 2.0 requests are accepted');
  const requestId = root.getAttribute('ID');
  if (!isSamlId(requestId)) throw invalid('saml.id_invalid', 'the request ID is missing or malformed');
  const { app, sp, issuer } = await issuingApp(db, root);
  const signed = checkSignature(input, xml, doc, root, sp, 'SAMLRequest');
  if (!signed && sp.wantAuthnRequestsSigned) throw invalid('saml.signature_required', 'this app must sign its AuthnRequests, and this one is not signed');
  checkIssueInstant(root);
  const destination = root.getAttribute('Destination');
  if (destination && destination !== ssoUrl) throw invalid('saml.destination', 'the request is addressed to another Destination');
  // saml-bindings 3.4.5.2 / 3.5.5.2: a signed message MUST name where it was sent, or a request
  // the SP signed for another identity provider could be replayed here under its signature.
  if (signed && !destination) throw invalid('saml.destination_missing', 'a signed request must carry a Destination');
  const acsUrl = resolveAcs(root, sp);
  const policy = childElements(root, NS.protocol, 'NameIDPolicy')[0];
  const context = childElements(root, NS.protocol, 'RequestedAuthnContext')[0];
  const comparison = (context?.getAttribute('Comparison') || 'exact') as NonNullable<CheckedAuthnRequest['requestedContext']>['comparison'];
  if (!['exact', 'minimum', 'maximum', 'better'].includes(comparison)) throw invalid('saml.authn_context', 'RequestedAuthnContext has an unknown Comparison');
  // Checked last: a request refused for another reason may be corrected and sent again.
  if (!await firstSighting(db, issuer, requestId)) throw invalid('saml.replayed', 'this AuthnRequest was already used');
  return {
    app,
    sp,
    request: {
      requestId,
      acsUrl,
      relayState,
      forceAuthn: root.getAttribute('ForceAuthn') === 'true' || root.getAttribute('ForceAuthn') === '1',
      isPassive: root.getAttribute('IsPassive') === 'true' || root.getAttribute('IsPassive') === '1',
      nameIdFormat: policy?.getAttribute('Format') || undefined,
      allowCreate: !(policy?.getAttribute('AllowCreate') === 'false' || policy?.getAttribute('AllowCreate') === '0'),
      requestedContext: context ? { comparison, classRefs: childElements(context, NS.assertion, 'AuthnContextClassRef').map(textOf) } : undefined,
      signed,
    },
  };
}
