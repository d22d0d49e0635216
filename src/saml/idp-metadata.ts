// OneID's SAML IdP metadata: what an SP imports once to trust OneID (entityID, endpoints, the
// certificates its signatures verify with). Built from a template: every value is escaped, and
// element order follows saml-schema-metadata-2.0.xsd (SSODescriptorType's KeyDescriptor,
// SingleLogoutService, NameIDFormat, then IDPSSODescriptor's SingleSignOnService).
import { randomBytes } from 'node:crypto';
import type { SamlSigningKey } from '../keys/saml-keys.ts';
import { escapeXml } from './xml.ts';
import { signEnveloped } from './signature.ts';
import { BINDING, NAME_ID_FORMAT_URN } from './constants.ts';
import { SAML_PATHS } from './paths.ts';

export interface IdpMetadataInput {
  entityId: string;
  ssoUrl: string;
  sloUrl: string;
  /** base64 DER; during a rotation the old and the new, so SPs trust both. */
  certificates: string[];
  validUntil?: Date;
}

/** OneID's SAML addresses under its issuer (the entityID is where its metadata lives). */
export function idpUrls(issuer: string): { entityId: string; ssoUrl: string; sloUrl: string } {
  const paths = SAML_PATHS(issuer);
  return { entityId: paths.entityId, ssoUrl: paths.sso, sloUrl: paths.slo };
}

const BINDING_REDIRECT = BINDING.redirect;
const BINDING_POST = BINDING.post;
// The formats OneID can answer with (the SP picks one per app, saml_service_providers.name_id_format).
const NAME_ID_FORMATS = Object.values(NAME_ID_FORMAT_URN);

const esc = escapeXml;

const isBase64 = (value: string): boolean => /^[A-Za-z0-9+/]+={0,2}$/.test(value);

/** The metadata document; signed (enveloped XML-DSig, RSA-SHA256, exc-c14n) when a key is given. */
export function idpMetadataXml(input: IdpMetadataInput, signWith?: SamlSigningKey): string {
  if (input.certificates.length === 0) throw new Error('IdP metadata needs at least one signing certificate');
  for (const cert of input.certificates) if (!isBase64(cert)) throw new Error('certificates must be base64 DER');
  // An ID the signature's Reference points at: an NCName, so it starts with a letter or "_".
  const id = `_${randomBytes(16).toString('hex')}`;
  const keyDescriptors = input.certificates.map((cert) => `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`);
  const xml = [
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="${id}" entityID="${esc(input.entityId)}"${input.validUntil ? ` validUntil="${input.validUntil.toISOString()}"` : ''}>`,
    '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">',
    ...keyDescriptors,
    `<md:SingleLogoutService Binding="${BINDING_REDIRECT}" Location="${esc(input.sloUrl)}"/>`,
    `<md:SingleLogoutService Binding="${BINDING_POST}" Location="${esc(input.sloUrl)}"/>`,
    ...NAME_ID_FORMATS.map((f) => `<md:NameIDFormat>${f}</md:NameIDFormat>`),
    `<md:SingleSignOnService Binding="${BINDING_REDIRECT}" Location="${esc(input.ssoUrl)}"/>`,
    `<md:SingleSignOnService Binding="${BINDING_POST}" Location="${esc(input.ssoUrl)}"/>`,
    '</md:IDPSSODescriptor>',
    '</md:EntityDescriptor>',
  ].join('');
  return signWith ? signMetadata(xml, id, signWith) : `<?xml version="1.0" encoding="UTF-8"?>${xml}`;
}

function signMetadata(xml: string, id: string, key: SamlSigningKey): string {
  // The schema puts ds:Signature first in EntityDescriptor.
  return `<?xml version="1.0" encoding="UTF-8"?>${signEnveloped(xml, id, 'EntityDescriptor', key, 'first')}`;
}
