// Reading and writing SAML's XML safely. Messages from service providers are parsed only after
// the checks an attacker's XML would need to slip past: no DTD (so no entity expansion and no
// external entity), a bounded size, and a parser that fails on malformed input rather than
// guessing. Everything OneID writes is built from templates whose values go through escapeXml.
import { inflateRawSync, deflateRawSync } from 'node:zlib';
import { DOMParser } from '@xmldom/xmldom';
import * as xpath from 'xpath';
import { AppError } from '../shared/errors.ts';
import { MAX_MESSAGE_BYTES, NS } from './constants.ts';
import { certificateToPem } from '../keys/saml-keys.ts';

const invalid = (code: string, message: string): AppError => new AppError('invalid_argument', code, message);

/** Parses a SAML message; a DTD, an entity, malformed XML or an oversized message is refused. */
export function parseXml(text: string): Document {
  if (Buffer.byteLength(text) > MAX_MESSAGE_BYTES) throw invalid('saml.message_too_large', `the SAML message is larger than ${MAX_MESSAGE_BYTES} bytes`);
  // A DOCTYPE is never part of a SAML message (saml-core 1.3.1 forbids DTDs): refusing it outright
  // closes external entities (XXE) and entity expansion, whatever the parser would do with them.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw invalid('saml.dtd_refused', 'the SAML message contains a DTD, which SAML does not allow');
  const problems: string[] = [];
  const fail = (message: string): void => { problems.push(message); };
  let doc: Document;
  try {
    doc = new DOMParser({ errorHandler: { warning: () => undefined, error: fail, fatalError: fail } })
      .parseFromString(text, 'text/xml') as unknown as Document;
  } catch {
    throw invalid('saml.xml_malformed', 'the SAML message is not well-formed XML');
  }
  if (problems.length || !doc?.documentElement) throw invalid('saml.xml_malformed', 'the SAML message is not well-formed XML');
  return doc;
}

const select = xpath.useNamespaces({ samlp: NS.protocol, saml: NS.assertion, md: NS.metadata, ds: NS.dsig, xenc: NS.xenc });

export function selectElements(expression: string, node: Node): Element[] {
  return (select(expression, node) as Node[]).filter((n): n is Element => n.nodeType === 1);
}

export function selectElement(expression: string, node: Node): Element | undefined {
  return selectElements(expression, node)[0];
}

/** Child elements of `parent` with this namespace and local name. */
export function childElements(parent: Element, ns: string, localName: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === localName) out.push(n as Element);
  }
  return out;
}

/**
 * The text of an element, refusing anything but text inside it: a comment or an element in a
 * NameID or Issuer (a trick to make two parsers read different values) is an error, not skipped.
 */
export function textOf(el: Element): string {
  let text = '';
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 3 || n.nodeType === 4) text += n.nodeValue ?? '';
    else throw invalid('saml.xml_unexpected_content', `${el.localName} must hold text only`);
  }
  return text.trim();
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
/** For text and attribute values in OneID's templates. Control characters XML cannot carry are dropped. */
export function escapeXml(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** The Redirect binding's DEFLATE (raw, RFC 1951) + base64. */
export function deflateToBase64(xml: string): string {
  return deflateRawSync(Buffer.from(xml, 'utf8')).toString('base64');
}

// Checked with whitespace removed first: a pattern allowing whitespace both inside and after the
// padding backtracks quadratically on a long run of spaces ending in a bad character (a request
// body of 56 KB of '+' held the event loop for about a second).
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (value: string): boolean => BASE64.test(value.replace(/\s+/g, ''));

/** base64 -> inflated text, bounded (a small deflated message cannot expand past the limit). */
export function inflateFromBase64(value: string): string {
  if (!isBase64(value)) throw invalid('saml.encoding', 'SAMLRequest is not base64');
  try {
    return inflateRawSync(Buffer.from(value, 'base64'), { maxOutputLength: MAX_MESSAGE_BYTES }).toString('utf8');
  } catch {
    throw invalid('saml.encoding', 'SAMLRequest is not a DEFLATE-compressed SAML message (HTTP-Redirect binding), or it is too large');
  }
}

/** base64 -> text (the POST binding). */
export function decodeBase64(value: string): string {
  if (!isBase64(value)) throw invalid('saml.encoding', 'the SAML message is not base64');
  const buf = Buffer.from(value, 'base64');
  if (buf.length > MAX_MESSAGE_BYTES) throw invalid('saml.message_too_large', `the SAML message is larger than ${MAX_MESSAGE_BYTES} bytes`);
  return buf.toString('utf8');
}

/** A SAML ID: an xsd:ID (NCName), bounded. */
export const isSamlId = (value: string | null | undefined): value is string => !!value && value.length <= 256 && /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(value);

/** A fresh SAML ID ('_' + 40 hex characters: an NCName, 160 random bits). */
export function newSamlId(): string {
  return `_${Buffer.from(crypto.getRandomValues(new Uint8Array(20))).toString('hex')}`;
}

/** xsd:dateTime in UTC with milliseconds trimmed, as SAML peers expect it. */
export const samlTime = (date: Date): string => `${date.toISOString().slice(0, 19)}Z`;

/** PEM armour around a base64 DER certificate. */
export const certificatePem = (base64Der: string): string => certificateToPem(base64Der.replace(/\s+/g, ''));
