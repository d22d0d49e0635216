// Reading a SAML Response as an SP receives it (the base64 SAMLResponse field), for checks that a
// SP library's profile object hides: status codes, the NameID's format, AuthnInstant, attribute
// NameFormats, InResponseTo. Parsed with @xmldom/xmldom and xpath, not with OneID's own code.
import { DOMParser } from '@xmldom/xmldom';
import xpath from 'xpath';

const select = xpath.useNamespaces({
  samlp: 'urn:oasis:names:tc:SAML:2.0:protocol',
  saml: 'urn:oasis:names:tc:SAML:2.0:assertion',
});

/** The XML of a SAMLResponse form field. */
export const decodeSamlResponse = (samlResponse: string): string => Buffer.from(samlResponse, 'base64').toString('utf8');

/** A node-saml profile's attribute as a list (node-saml gives one value as a string). */
export const attributeValues = (v: unknown): unknown[] => (v === undefined ? [] : [v].flat());

export interface ResponseFacts {
  /** Top-level StatusCode, then the nested one (if any). */
  status: string[];
  statusMessage?: string;
  /** Response/@InResponseTo, null when absent. */
  inResponseTo: string | null;
  /** SubjectConfirmationData/@InResponseTo, null when absent or no (plain) assertion. */
  confirmationInResponseTo: string | null;
  hasAssertion: boolean;
  encrypted: boolean;
  nameId?: { value: string; format: string | null };
  authnInstant?: string;
  authnContextClassRef?: string;
  attributes: { name: string; nameFormat: string | null; values: string[] }[];
}

/** An attribute's value, null when absent (xmldom's getAttribute gives '' for a missing one). */
const attribute = (e: Element, name: string): string | null => (e.hasAttribute(name) ? e.getAttribute(name) : null);

/** What a plain (not encrypted) Response says; an encrypted one gives status and InResponseTo only. */
export function readResponse(samlResponseOrXml: string): ResponseFacts {
  const xml = samlResponseOrXml.trimStart().startsWith('<') ? samlResponseOrXml : decodeSamlResponse(samlResponseOrXml);
  const doc = new DOMParser().parseFromString(xml, 'text/xml') as unknown as Node;
  const nodes = (path: string, from: Node = doc) => select(path, from) as Element[];
  const root = nodes('/samlp:Response')[0];
  if (!root) throw new Error(`not a SAML Response: ${xml.slice(0, 300)}`);
  const status = nodes('samlp:Status//samlp:StatusCode', root).map((e) => e.getAttribute('Value') ?? '');
  const message = nodes('samlp:Status/samlp:StatusMessage', root)[0]?.textContent ?? undefined;
  const assertion = nodes('saml:Assertion', root)[0];
  const facts: ResponseFacts = {
    status,
    ...(message !== undefined ? { statusMessage: message } : {}),
    inResponseTo: attribute(root, 'InResponseTo'),
    confirmationInResponseTo: null,
    hasAssertion: assertion !== undefined,
    encrypted: nodes('saml:EncryptedAssertion', root).length > 0,
    attributes: [],
  };
  if (!assertion) return facts;
  const nameId = nodes('saml:Subject/saml:NameID', assertion)[0];
  if (nameId) facts.nameId = { value: nameId.textContent ?? '', format: attribute(nameId, 'Format') };
  const confirmation = nodes('saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData', assertion)[0];
  facts.confirmationInResponseTo = confirmation ? attribute(confirmation, 'InResponseTo') : null;
  const authn = nodes('saml:AuthnStatement', assertion)[0];
  if (authn) {
    facts.authnInstant = authn.getAttribute('AuthnInstant') ?? undefined;
    facts.authnContextClassRef = nodes('saml:AuthnContext/saml:AuthnContextClassRef', authn)[0]?.textContent ?? undefined;
  }
  facts.attributes = nodes('saml:AttributeStatement/saml:Attribute', assertion).map((a) => ({
    name: a.getAttribute('Name') ?? '',
    nameFormat: attribute(a, 'NameFormat'),
    values: nodes('saml:AttributeValue', a).map((v) => v.textContent ?? ''),
  }));
  return facts;
}
