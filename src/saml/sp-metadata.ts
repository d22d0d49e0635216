// SP metadata (SAML 2.0 metadata, an EntityDescriptor with one SPSSODescriptor) into the fields
// of a SAML app. Metadata arrives from administrators and from URLs they copied it from, so it
// is treated as hostile: no DTD or entity declaration (XXE, entity expansion) is accepted, only
// the few elements OneID uses are read, and every certificate must parse.
import { DOMParser } from '@xmldom/xmldom';
import { AppError } from '../shared/errors.ts';
import type { NameIdFormat } from '../apps/saml-providers.repo.ts';
import { normaliseCertificate } from './certificates.ts';
import { findIllFormedText } from '../shared/text-input.ts';

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

const NAME_ID_FORMAT_OF: Record<string, NameIdFormat> = {
  'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress': 'emailAddress',
  'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent': 'persistent',
  'urn:oasis:names:tc:SAML:2.0:nameid-format:transient': 'transient',
  'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified': 'unspecified',
};

/** The SAML settings metadata gives; what it does not say is left out (the app's defaults apply). */
export interface SpMetadataSettings {
  entityId: string;
  acsUrls: { location: string; index: number; isDefault?: boolean }[];
  sloUrl?: string;
  sloBinding?: 'redirect' | 'post';
  signingCertificates: string[];
  encryptionCertificate?: string;
  nameIdFormat?: NameIdFormat;
  wantAuthnRequestsSigned?: boolean;
  signAssertion?: boolean;
}

const invalid = (why: string): AppError =>
  new AppError('invalid_argument', 'saml.metadata_invalid', `metadataXml: ${why}`, { field: 'metadataXml' });

// Declarations inside a DTD (or a DOCTYPE itself) are refused before parsing: xmldom does not
// expand external entities, but nothing that could ask for it is let near a parser.
const DECLARATION = /<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i;

function parse(text: string): Document {
  if (DECLARATION.test(text)) throw invalid('DTDs and entity declarations are not accepted');
  const problems: string[] = [];
  const report = (msg: string) => {
    problems.push(String(msg).split('\n')[0]!.replace(/^\[xmldom [a-z]+\]\s*/i, ''));
  };
  let doc: Document;
  try {
    doc = new DOMParser({ errorHandler: { warning: () => undefined, error: report, fatalError: report } }).parseFromString(text, 'text/xml') as unknown as Document;
  } catch (err) {
    throw invalid(`not well-formed XML (${String((err as Error).message).split('\n')[0]})`);
  }
  if (problems.length || !doc?.documentElement) throw invalid(`not well-formed XML${problems[0] ? ` (${problems[0]})` : ''}`);
  for (let n = doc.firstChild; n; n = n.nextSibling) {
    // 10 DOCUMENT_TYPE_NODE; 7 PROCESSING_INSTRUCTION_NODE other than the XML declaration.
    if (n.nodeType === 10) throw invalid('DTDs and entity declarations are not accepted');
    if (n.nodeType === 7 && (n as ProcessingInstruction).target.toLowerCase() !== 'xml') throw invalid('processing instructions are not accepted');
  }
  return doc;
}

const childrenNS = (parent: Element, ns: string, name: string): Element[] => {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === name) out.push(n as Element);
  }
  return out;
};

const text = (el: Element): string => (el.textContent ?? '').trim();

/** The one EntityDescriptor with an SPSSODescriptor: the root, or the only SP in an EntitiesDescriptor. */
function spEntity(doc: Document): Element {
  const root = doc.documentElement;
  if (root.namespaceURI !== MD || (root.localName !== 'EntityDescriptor' && root.localName !== 'EntitiesDescriptor')) {
    throw invalid('expected SAML 2.0 metadata: an md:EntityDescriptor (or an md:EntitiesDescriptor holding one service provider)');
  }
  if (root.localName === 'EntityDescriptor') return root;
  // Nested EntitiesDescriptors are allowed by the schema; every EntityDescriptor below counts.
  const entities = Array.from(root.getElementsByTagNameNS(MD, 'EntityDescriptor') as unknown as ArrayLike<Element>)
    .filter((e) => childrenNS(e, MD, 'SPSSODescriptor').length > 0);
  if (entities.length !== 1) throw invalid(`an EntitiesDescriptor must hold exactly one service provider (it holds ${entities.length})`);
  return entities[0]!;
}

function certificatesOf(sp: Element, use: 'signing' | 'encryption'): string[] {
  const out: string[] = [];
  for (const kd of childrenNS(sp, MD, 'KeyDescriptor')) {
    const kdUse = kd.getAttribute('use');
    if (kdUse && kdUse !== use) continue;
    for (const keyInfo of childrenNS(kd, DS, 'KeyInfo')) {
      for (const data of childrenNS(keyInfo, DS, 'X509Data')) {
        for (const certEl of childrenNS(data, DS, 'X509Certificate')) {
          const der = normaliseCertificate(text(certEl));
          if (!der) throw invalid(`a ${use} certificate in a KeyDescriptor is not a valid X.509 certificate`);
          if (!out.includes(der)) out.push(der);
        }
      }
    }
  }
  return out;
}

/** Reads SP metadata; refuses it (invalid_argument saml.metadata_invalid, field metadataXml) when OneID could not use it. */
export function parseSpMetadata(xml: string): SpMetadataSettings {
  const entity = spEntity(parse(xml));
  const entityId = entity.getAttribute('entityID')?.trim();
  if (!entityId) throw invalid('the EntityDescriptor has no entityID');
  const sps = childrenNS(entity, MD, 'SPSSODescriptor');
  if (sps.length !== 1) throw invalid(`expected one SPSSODescriptor, found ${sps.length}`);
  const sp = sps[0]!;
  if (!(sp.getAttribute('protocolSupportEnumeration') ?? '').split(/\s+/).includes('urn:oasis:names:tc:SAML:2.0:protocol')) {
    throw invalid('the SPSSODescriptor does not support SAML 2.0 (protocolSupportEnumeration)');
  }

  const acsUrls: SpMetadataSettings['acsUrls'] = [];
  const acsElements = childrenNS(sp, MD, 'AssertionConsumerService');
  for (const [position, acs] of acsElements.entries()) {
    if (acs.getAttribute('Binding') !== POST) continue;
    const location = acs.getAttribute('Location')?.trim();
    if (!location) throw invalid('an AssertionConsumerService has no Location');
    const indexText = acs.getAttribute('index');
    const index = indexText !== null && /^\d{1,5}$/.test(indexText.trim()) ? Number(indexText.trim()) : position;
    const isDefault = acs.getAttribute('isDefault');
    acsUrls.push({ location, index, ...(isDefault === 'true' || isDefault === '1' ? { isDefault: true } : {}) });
  }
  if (!acsUrls.length) {
    throw invalid(acsElements.length
      ? 'no AssertionConsumerService with the HTTP-POST binding (OneID sends Responses by HTTP-POST only)'
      : 'the SPSSODescriptor has no AssertionConsumerService');
  }

  const slo = childrenNS(sp, MD, 'SingleLogoutService');
  const sloEl = slo.find((s) => s.getAttribute('Binding') === REDIRECT) ?? slo.find((s) => s.getAttribute('Binding') === POST);
  const sloUrl = sloEl?.getAttribute('Location')?.trim();

  const encryption = certificatesOf(sp, 'encryption');
  const formats = childrenNS(sp, MD, 'NameIDFormat').map(text);
  const nameIdFormat = formats.length ? NAME_ID_FORMAT_OF[formats[0]!] : undefined;
  const flag = (name: string) => ['true', '1'].includes((sp.getAttribute(name) ?? '').trim());

  const settings: SpMetadataSettings = {
    entityId,
    acsUrls,
    ...(sloEl && sloUrl ? { sloUrl, sloBinding: sloEl.getAttribute('Binding') === REDIRECT ? 'redirect' as const : 'post' as const } : {}),
    signingCertificates: certificatesOf(sp, 'signing'),
    ...(encryption[0] ? { encryptionCertificate: encryption[0] } : {}),
    ...(nameIdFormat ? { nameIdFormat } : {}),
    ...(flag('AuthnRequestsSigned') ? { wantAuthnRequestsSigned: true } : {}),
    ...(flag('WantAssertionsSigned') ? { signAssertion: true } : {}),
  };
  // A character reference can bring what the request's own text could not (&#0;, a lone
  // surrogate): PostgreSQL cannot store it, so it is the metadata's fault, not a 500.
  if (findIllFormedText(settings)) throw invalid('contains a NUL character or an unpaired surrogate');
  return settings;
}
