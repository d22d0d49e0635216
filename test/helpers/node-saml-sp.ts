// A service provider nobody here wrote: @node-saml/node-saml's SAML class, configured from
// OneID's published IdP metadata the way an operator would set it up, so e2e tests check OneID's
// output against a widely used SP library rather than against OneID's own parsing.
import { SAML, ValidateInResponseTo, type Profile, type SamlConfig } from '@node-saml/node-saml';
import { InMemoryCacheProvider } from '@node-saml/node-saml/lib/in-memory-cache-provider.js';
import { DOMParser } from '@xmldom/xmldom';
import xpath from 'xpath';

export const MD_NS = 'urn:oasis:names:tc:SAML:2.0:metadata';
export const DS_NS = 'http://www.w3.org/2000/09/xmldsig#';

export interface IdpMetadata {
  xml: string;
  entityId: string;
  /** base64 DER of every certificate OneID signs with (current first, then next/previous). */
  signingCertificates: string[];
  /** Binding URN -> Location, for SingleSignOnService and SingleLogoutService. */
  sso: Record<string, string>;
  slo: Record<string, string>;
}

/** GETs `<base>/saml/metadata` and reads what an SP needs from it (fails loudly when it is not metadata). */
export async function fetchIdpMetadata(baseUrl: string): Promise<IdpMetadata> {
  const res = await fetch(`${baseUrl}/saml/metadata`);
  const xml = await res.text();
  if (res.status !== 200) throw new Error(`GET ${baseUrl}/saml/metadata answered ${res.status}: ${xml.slice(0, 500)}`);
  return parseIdpMetadata(xml);
}

export function parseIdpMetadata(xml: string): IdpMetadata {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const select = xpath.useNamespaces({ md: MD_NS, ds: DS_NS });
  const entity = select('/md:EntityDescriptor', doc as unknown as Node) as Element[];
  if (entity.length !== 1) throw new Error(`not SAML metadata (no md:EntityDescriptor): ${xml.slice(0, 300)}`);
  const idp = '/md:EntityDescriptor/md:IDPSSODescriptor';
  // A KeyDescriptor without use serves both signing and encryption (SAML metadata §2.4.1.1).
  const certs = (select(`${idp}/md:KeyDescriptor[not(@use) or @use="signing"]//ds:X509Certificate`, doc as unknown as Node) as Node[])
    .map((n) => (n.textContent ?? '').replace(/\s+/g, ''));
  const endpoints = (name: string): Record<string, string> => Object.fromEntries(
    (select(`${idp}/md:${name}`, doc as unknown as Node) as Element[]).map((e) => [e.getAttribute('Binding') ?? '', e.getAttribute('Location') ?? '']),
  );
  return { xml, entityId: entity[0]!.getAttribute('entityID') ?? '', signingCertificates: certs, sso: endpoints('SingleSignOnService'), slo: endpoints('SingleLogoutService') };
}

export interface NodeSamlSpOptions {
  /** OneID's base URL (its ISSUER). */
  baseUrl: string;
  /** The SP's entityID (the AuthnRequest's Issuer, the assertion's Audience). */
  entityId: string;
  acsUrl: string;
  /** Where OneID sends LogoutResponses/LogoutRequests for this SP (node-saml's logoutCallbackUrl). */
  sloUrl?: string;
  /** OneID's metadata, fetched from `<baseUrl>/saml/metadata` when not given. */
  metadata?: IdpMetadata;
  /** Signs AuthnRequests and LogoutRequests (PEM private key and certificate). */
  signing?: { privateKeyPem: string; certificatePem: string };
  /** The SP's private key for encrypted assertions. */
  decryptionPvk?: string;
  /** default true / true: OneID signs both unless the app says otherwise. */
  wantAssertionsSigned?: boolean;
  wantAuthnResponseSigned?: boolean;
  /** default emailAddress. null: no NameIDPolicy Format. */
  identifierFormat?: string | null;
  /**
   * An SP that sends AuthnRequests by HTTP-POST (authorizeForm): the request is base64 XML with an
   * enveloped signature, not deflated (node-saml deflates it unless skipRequestCompression, and
   * that setting also turns off deflating the Redirect binding: use authorizeUrl on another SP).
   */
  postBinding?: boolean;
  /** Share request IDs with another SP object of the same SP (one cache per SP by default). */
  cache?: InMemoryCacheProvider;
  /** Anything else for node-saml's SAML constructor. */
  extra?: Partial<SamlConfig>;
}

export interface NodeSamlSp {
  saml: SAML;
  metadata: IdpMetadata;
  options: NodeSamlSpOptions;
  /** The IDs of the AuthnRequests and LogoutRequests made and not yet answered (node-saml's cache). */
  cache: InMemoryCacheProvider;
  /** An AuthnRequest for the HTTP-Redirect binding: the full URL at `<base>/saml/sso`. */
  authorizeUrl(relayState?: string): Promise<string>;
  /** The auto-posting form node-saml builds for the HTTP-POST binding. */
  authorizeForm(relayState?: string): Promise<string>;
  /** Checks a Response as it arrived at the ACS by POST (signature, audience, time, InResponseTo). */
  validatePostResponse(samlResponse: string, relayState?: string): Promise<{ profile: Profile | null; loggedOut: boolean }>;
  /** A LogoutRequest for the HTTP-Redirect binding for the person of `profile`. */
  logoutUrl(profile: Profile, relayState?: string): Promise<string>;
  /**
   * An incoming Redirect-binding message (LogoutResponse or LogoutRequest) as its full URL or its
   * query string. node-saml checks a query signature only when one is present: OneID signs every
   * LogoutRequest and LogoutResponse it sends, so an unsigned one is refused here.
   */
  validateRedirect(urlOrQuery: string): Promise<{ profile: Profile | null; loggedOut: boolean }>;
  /** validateRedirect for a LogoutResponse only (refuses a LogoutRequest). */
  validateLogoutResponseRedirect(urlOrQuery: string): Promise<{ profile: Profile | null; loggedOut: boolean }>;
  /** The LogoutResponse URL answering a LogoutRequest validateRedirect accepted. */
  logoutResponseUrl(profile: Profile, relayState?: string, success?: boolean): Promise<string>;
}

const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

export async function createNodeSamlSp(options: NodeSamlSpOptions): Promise<NodeSamlSp> {
  const metadata = options.metadata ?? await fetchIdpMetadata(options.baseUrl);
  if (metadata.signingCertificates.length === 0) throw new Error('OneID metadata lists no signing certificate');
  const cache = options.cache ?? new InMemoryCacheProvider({ keyExpirationPeriodMs: 10 * 60_000 });
  const saml = new SAML({
    issuer: options.entityId,
    callbackUrl: options.acsUrl,
    idpCert: metadata.signingCertificates,
    idpIssuer: `${options.baseUrl}/saml/metadata`,
    audience: options.entityId,
    entryPoint: `${options.baseUrl}/saml/sso`,
    logoutUrl: `${options.baseUrl}/saml/slo`,
    ...(options.sloUrl ? { logoutCallbackUrl: options.sloUrl } : {}),
    identifierFormat: options.identifierFormat === undefined ? EMAIL_FORMAT : options.identifierFormat,
    wantAssertionsSigned: options.wantAssertionsSigned ?? true,
    wantAuthnResponseSigned: options.wantAuthnResponseSigned ?? true,
    validateInResponseTo: ValidateInResponseTo.always,
    cacheProvider: cache,
    acceptedClockSkewMs: 5_000,
    signatureAlgorithm: 'sha256',
    digestAlgorithm: 'sha256',
    ...(options.signing ? { privateKey: options.signing.privateKeyPem, publicCert: options.signing.certificatePem } : {}),
    ...(options.decryptionPvk ? { decryptionPvk: options.decryptionPvk } : {}),
    ...(options.postBinding ? { authnRequestBinding: 'HTTP-POST', skipRequestCompression: true } : {}),
    ...options.extra,
  });
  const queryOf = (urlOrQuery: string): string => (urlOrQuery.includes('?') ? urlOrQuery.slice(urlOrQuery.indexOf('?') + 1) : urlOrQuery);
  const sp: NodeSamlSp = {
    saml,
    metadata,
    options,
    cache,
    authorizeUrl: (relayState = '') => saml.getAuthorizeUrlAsync(relayState, undefined, {}),
    authorizeForm: (relayState = '') => saml.getAuthorizeFormAsync(relayState),
    validatePostResponse: (samlResponse, relayState) => saml.validatePostResponseAsync({ SAMLResponse: samlResponse, ...(relayState !== undefined ? { RelayState: relayState } : {}) }),
    logoutUrl: (profile, relayState = '') => saml.getLogoutUrlAsync(profile, relayState, {}),
    validateRedirect: async (urlOrQuery) => {
      const query = queryOf(urlOrQuery);
      const container = Object.fromEntries(new URLSearchParams(query));
      if (!container.SAMLRequest && !container.SAMLResponse) throw new Error(`no SAMLRequest or SAMLResponse in ${query.slice(0, 200)}`);
      if (!container.Signature || !container.SigAlg) throw new Error('unsigned Redirect-binding logout message (OneID must sign every one)');
      return saml.validateRedirectAsync(container, query);
    },
    validateLogoutResponseRedirect: async (urlOrQuery) => {
      if (!new URLSearchParams(queryOf(urlOrQuery)).has('SAMLResponse')) throw new Error('not a LogoutResponse (no SAMLResponse in the query)');
      return sp.validateRedirect(urlOrQuery);
    },
    logoutResponseUrl: (profile, relayState = '', success = true) => saml.getLogoutResponseUrlAsync(profile, relayState, {}, success),
  };
  return sp;
}

/** The hidden fields of an auto-posting SAML form (node-saml's or OneID's), and where it posts. */
export function readSamlForm(html: string): { action: string; fields: Record<string, string> } {
  const form = /<form\b[^>]*\baction=(["'])(.*?)\1[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error(`no form in ${html.slice(0, 500)}`);
  const fields: Record<string, string> = {};
  for (const input of form[3]!.matchAll(/<input\b[^>]*>/gi)) {
    const name = /\bname=(["'])(.*?)\1/i.exec(input[0])?.[2];
    const value = /\bvalue=(["'])([\s\S]*?)\1/i.exec(input[0])?.[2];
    if (name && value !== undefined) fields[decodeEntities(name)] = decodeEntities(value);
  }
  return { action: decodeEntities(form[2]!), fields };
}

/** SAMLRequest and RelayState of node-saml's POST-binding form. */
export function authnRequestFromForm(html: string): { action: string; SAMLRequest: string; RelayState?: string } {
  const { action, fields } = readSamlForm(html);
  if (!fields.SAMLRequest) throw new Error(`no SAMLRequest in the form posting to ${action}`);
  return { action, SAMLRequest: fields.SAMLRequest, ...(fields.RelayState !== undefined ? { RelayState: fields.RelayState } : {}) };
}

/** HTML character references as they appear in attribute values (named, decimal, hex). */
export function decodeEntities(s: string): string {
  const named: Record<string, string> = { amp: '&', quot: '"', apos: "'", lt: '<', gt: '>' };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, ref: string) => {
    if (ref[0] === '#') return String.fromCodePoint(ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10));
    return named[ref.toLowerCase()] ?? m;
  });
}
