// The names SAML 2.0 gives things (OASIS saml-core-2.0-os, saml-bindings-2.0-os), in one place.
import type { NameIdFormat } from '../apps/saml-providers.repo.ts';

export const NS = {
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
  xenc: 'http://www.w3.org/2001/04/xmlenc#',
} as const;

export const BINDING = {
  redirect: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
  post: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
} as const;

export const NAME_ID_FORMAT_URN: Record<NameIdFormat, string> = {
  emailAddress: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  persistent: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  transient: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
  unspecified: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
};

/** The format a URN names, or undefined for one OneID does not issue. */
export const nameIdFormatOf = (urn: string): NameIdFormat | undefined =>
  (Object.keys(NAME_ID_FORMAT_URN) as NameIdFormat[]).find((f) => NAME_ID_FORMAT_URN[f] === urn);

export const ATTRNAME_FORMAT = {
  basic: 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
  uri: 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
  unspecified: 'urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified',
} as const;

export const STATUS = {
  success: 'urn:oasis:names:tc:SAML:2.0:status:Success',
  requester: 'urn:oasis:names:tc:SAML:2.0:status:Requester',
  responder: 'urn:oasis:names:tc:SAML:2.0:status:Responder',
  versionMismatch: 'urn:oasis:names:tc:SAML:2.0:status:VersionMismatch',
  // second-level codes
  requestDenied: 'urn:oasis:names:tc:SAML:2.0:status:RequestDenied',
  noPassive: 'urn:oasis:names:tc:SAML:2.0:status:NoPassive',
  authnFailed: 'urn:oasis:names:tc:SAML:2.0:status:AuthnFailed',
  noAuthnContext: 'urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext',
  invalidNameIdPolicy: 'urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy',
  partialLogout: 'urn:oasis:names:tc:SAML:2.0:status:PartialLogout',
  requestUnsupported: 'urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported',
} as const;

export const CONFIRMATION_BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';

export const SIG_ALG = {
  rsaSha256: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  rsaSha384: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha384',
  rsaSha512: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
  rsaSha1: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
} as const;

/** Signature algorithms OneID accepts from service providers, with node:crypto's digest name. SHA-1 is refused. */
export const ACCEPTED_SIG_ALGS: Record<string, string> = {
  [SIG_ALG.rsaSha256]: 'sha256',
  [SIG_ALG.rsaSha384]: 'sha384',
  [SIG_ALG.rsaSha512]: 'sha512',
};

export const DIGEST_SHA256 = 'http://www.w3.org/2001/04/xmlenc#sha256';
export const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
export const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';

/** SAML's authentication context classes OneID can state, besides its own urn:oneid:acr:* values. */
export const AUTHN_CONTEXT = {
  passwordProtectedTransport: 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport',
  password: 'urn:oasis:names:tc:SAML:2.0:ac:classes:Password',
  unspecified: 'urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified',
} as const;

/** How long a Response and its assertion are good for, and the clock skew allowed either way. */
export const ASSERTION_LIFETIME_SECONDS = 300;
export const CLOCK_SKEW_SECONDS = 90;
/** An AuthnRequest older than this (plus skew) is refused. */
export const REQUEST_MAX_AGE_SECONDS = 300;
/** saml-bindings-2.0-os 3.4.3 / 3.5.3: RelayState MUST NOT exceed 80 bytes. */
export const RELAY_STATE_MAX_BYTES = 80;
/** Largest SAML message OneID reads, decoded (a deflated Redirect message is inflated up to this). */
export const MAX_MESSAGE_BYTES = 64 * 1024;
