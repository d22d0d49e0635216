// XML signature wrapping, the classic ways, for tests that show an SP library refuses them: a
// Response OneID signed is edited so that a naive reader would find a forged Assertion (another
// NameID) while a valid signature still sits somewhere in the document.
import { randomBytes } from 'node:crypto';
import { DOMParser, XMLSerializer } from '@xmldom/xmldom';

export const NS_P = 'urn:oasis:names:tc:SAML:2.0:protocol';
export const NS_A = 'urn:oasis:names:tc:SAML:2.0:assertion';
export const NS_DS = 'http://www.w3.org/2000/09/xmldsig#';
/** The NameID the forged assertions claim. */
export const FORGED_NAME_ID = 'admin@example.com';

export const parseXml = (xml: string): Document => new DOMParser().parseFromString(xml, 'text/xml') as unknown as Document;
export const serializeXml = (node: Node): string => new XMLSerializer().serializeToString(node as never);
export const descendants = (el: Element | Document, ns: string, name: string): Element[] => Array.from(el.getElementsByTagNameNS(ns, name) as unknown as Element[]);
export const childOf = (el: Element, ns: string, name: string): Element | undefined =>
  Array.from(el.childNodes as unknown as Node[]).find((n): n is Element => n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === name);

const newId = (): string => `_${randomBytes(16).toString('hex')}`;

/** An unsigned copy of the signed assertion claiming FORGED_NAME_ID, with this ID. */
function forgedAssertion(signedAssertion: Element, doc: Document, id: string): Element {
  const forged = signedAssertion.cloneNode(true) as Element;
  forged.setAttribute('ID', id);
  const sig = childOf(forged, NS_DS, 'Signature');
  if (sig) forged.removeChild(sig);
  descendants(forged, NS_A, 'NameID')[0]!.textContent = FORGED_NAME_ID;
  return doc.importNode(forged, true) as Element;
}

/** Each wrapping of a Response (XML text in, XML text out), by name. */
export const RESPONSE_WRAPPINGS: [string, (xml: string) => string][] = [
  ['the signed Assertion moved into Extensions, a forged one in its place', (xml) => {
    const doc = parseXml(xml); const root = doc.documentElement!;
    const assertion = childOf(root, NS_A, 'Assertion')!;
    const forged = forgedAssertion(assertion, doc, newId());
    const ext = doc.createElementNS(NS_P, 'samlp:Extensions');
    root.replaceChild(forged, assertion);
    ext.appendChild(assertion);
    root.insertBefore(ext, childOf(root, NS_P, 'Status')!);
    return serializeXml(doc);
  }],
  ['the signed Assertion moved inside a forged Assertion (in its Subject)', (xml) => {
    const doc = parseXml(xml); const root = doc.documentElement!;
    const assertion = childOf(root, NS_A, 'Assertion')!;
    const forged = forgedAssertion(assertion, doc, newId());
    root.replaceChild(forged, assertion);
    childOf(forged, NS_A, 'Subject')!.appendChild(assertion);
    return serializeXml(doc);
  }],
  ['a forged Assertion with the same ID before the signed one (duplicate ID)', (xml) => {
    const doc = parseXml(xml); const root = doc.documentElement!;
    const assertion = childOf(root, NS_A, 'Assertion')!;
    root.insertBefore(forgedAssertion(assertion, doc, assertion.getAttribute('ID')!), assertion);
    return serializeXml(doc);
  }],
  ['a second, unsigned Assertion after the signed one', (xml) => {
    const doc = parseXml(xml); const root = doc.documentElement!;
    const assertion = childOf(root, NS_A, 'Assertion')!;
    root.appendChild(forgedAssertion(assertion, doc, newId()));
    return serializeXml(doc);
  }],
  ['the NameID changed in the signed Assertion', (xml) => xml.replace(/(<saml:NameID[^>]*>)[^<]*/, `$1${FORGED_NAME_ID}`)],
];

/**
 * The NameID `value` with an XML comment inserted after `prefix` (exclusive c14n drops comments,
 * so the signature still verifies; a reader taking the first text node would see only `prefix`).
 */
export function injectCommentInNameId(xml: string, value: string, prefix: string): string {
  const out = xml.replace(`>${value}</saml:NameID>`, `>${prefix}<!---->${value.slice(prefix.length)}</saml:NameID>`);
  if (out === xml) throw new Error(`NameID ${value} not found`);
  return out;
}
