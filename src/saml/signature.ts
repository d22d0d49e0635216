// XML signatures on SAML messages: OneID signs its Responses, assertions and logout messages
// (enveloped, RSA-SHA256, exclusive c14n), and checks the signatures of service providers'
// requests, both the enveloped kind (HTTP-POST) and the query-string kind (HTTP-Redirect).
//
// Checking an enveloped signature is where SAML implementations have been broken (signature
// wrapping): a valid signature over one element while the code reads another. Here a signature
// counts only when it is a direct child of the message's root, has exactly one Reference, and
// that Reference names the root's own ID, and that ID occurs once in the document. The caller
// then reads the root it was handed, which is the element that was signed.
import { sign as signData, verify as verifySignature, type KeyObject } from 'node:crypto';
import { SignedXml } from 'xml-crypto';
import { AppError } from '../shared/errors.ts';
import { ACCEPTED_SIG_ALGS, DIGEST_SHA256, ENVELOPED, EXC_C14N, NS, SIG_ALG } from './constants.ts';
import { certificatePem, childElements, deflateToBase64, selectElements } from './xml.ts';

export interface SigningKey {
  privateKey: KeyObject;
  /** base64 DER: goes into KeyInfo so that a peer can see which of the published keys signed. */
  certificate: string;
}

const invalid = (code: string, message: string): AppError => new AppError('invalid_argument', code, message);

/**
 * Signs the message `xml` whose root element has this name and ID (an Assertion, a Response, a LogoutRequest...), placing the
 * signature right after its Issuer as the SAML schema requires (or first, for metadata).
 */
export function signEnveloped(xml: string, id: string, localName: string, key: SigningKey, placement: 'after-issuer' | 'first' = 'after-issuer'): string {
  const sig = new SignedXml({
    privateKey: key.privateKey,
    signatureAlgorithm: SIG_ALG.rsaSha256,
    canonicalizationAlgorithm: EXC_C14N,
    getKeyInfoContent: () => `<ds:X509Data><ds:X509Certificate>${key.certificate}</ds:X509Certificate></ds:X509Data>`,
  });
  // OneID signs whole messages, so the signed element is the document's root: found at '/*'
  // rather than by a search of every element for its ID (a third of the cost of a signature).
  const element = `/*[local-name(.)='${localName}' and @ID='${id}']`;
  sig.addReference({ xpath: element, digestAlgorithm: DIGEST_SHA256, transforms: [ENVELOPED, EXC_C14N] });
  sig.computeSignature(xml, {
    prefix: 'ds',
    location: placement === 'first' ? { reference: element, action: 'prepend' } : { reference: `${element}/*[local-name(.)='Issuer']`, action: 'after' },
  });
  return sig.getSignedXml();
}

/**
 * Whether `root` (the document element of `xml`) carries a valid enveloped signature by one of
 * `certificates` (base64 DER). 'absent' when it carries none; throws when a signature is there
 * but wrong, misplaced or made with an algorithm OneID refuses.
 */
export function verifyEnveloped(xml: string, doc: Document, root: Element, certificates: string[]): 'valid' | 'absent' {
  const all = selectElements('//ds:Signature', doc);
  const own = childElements(root, NS.dsig, 'Signature');
  if (!all.length) return 'absent';
  if (own.length !== 1 || all.length !== 1) throw invalid('saml.signature_misplaced', 'the message must carry exactly one signature, on its root element');
  const signature = own[0]!;
  const id = root.getAttribute('ID');
  const references = selectElements('ds:SignedInfo/ds:Reference', signature);
  if (!id || references.length !== 1 || references[0]!.getAttribute('URI') !== `#${id}`) {
    throw invalid('saml.signature_reference', 'the signature must cover the whole message (one Reference to its ID)');
  }
  if (selectElements(`//*[@ID='${id.replace(/'/g, '')}']`, doc).length !== 1) throw invalid('saml.signature_reference', 'the signed ID occurs more than once');
  const method = selectElements('ds:SignedInfo/ds:SignatureMethod', signature)[0]?.getAttribute('Algorithm') ?? '';
  if (!ACCEPTED_SIG_ALGS[method]) throw invalid('saml.signature_algorithm', `signature algorithm ${method || '(none)'} is refused; sign with RSA-SHA256`);
  if (!certificates.length) throw invalid('saml.signature_unverifiable', 'the message is signed but the app has no signing certificate registered in OneID');
  for (const certificate of certificates) {
    const check = new SignedXml({ publicCert: certificatePem(certificate) });
    check.loadSignature(signature);
    try {
      if (check.checkSignature(xml)) return 'valid';
    } catch {
      // a digest or signature mismatch: try the next certificate
    }
  }
  throw invalid('saml.signature_invalid', 'the message signature does not verify with the app\'s signing certificate');
}

/**
 * A query-string name or value decoded as a form would be; malformed percent-encoding is the
 * sender's error, not a 500. The Signature keeps a literal '+' (base64), as it always has.
 */
function queryDecode(value: string, plusIsSpace = true): string {
  try {
    return decodeURIComponent(plusIsSpace ? value.replace(/\+/g, ' ') : value);
  } catch {
    throw invalid('saml.redirect_encoding', 'the query string has malformed percent-encoding');
  }
}

/**
 * The HTTP-Redirect binding's signature (saml-bindings 3.4.4.1): over the raw query-string
 * parameters `SAMLRequest|SAMLResponse`, `RelayState` (if present) and `SigAlg`, exactly as they
 * were URL-encoded by the sender. 'absent' without a Signature; throws when it is wrong.
 */
export function verifyRedirectSignature(rawQuery: string, messageParam: 'SAMLRequest' | 'SAMLResponse', certificates: string[]): 'valid' | 'absent' {
  // Keyed by the decoded name, as the router reads the query: `Relay%53tate=x` is the RelayState
  // the sign-in carries on, so it must be the one the signature is checked over (or a duplicate).
  const raw = new Map<string, string>();
  for (const part of rawQuery.split('&')) {
    const eq = part.indexOf('=');
    const name = queryDecode(eq < 0 ? part : part.slice(0, eq));
    if (raw.has(name)) throw invalid('saml.redirect_duplicate', `the query names ${name.slice(0, 40)} more than once`);
    raw.set(name, eq < 0 ? '' : part.slice(eq + 1));
  }
  const signature = raw.get('Signature');
  if (signature === undefined) return 'absent';
  const sigAlg = queryDecode(raw.get('SigAlg') ?? '');
  const digest = ACCEPTED_SIG_ALGS[sigAlg];
  if (!digest) throw invalid('saml.signature_algorithm', `signature algorithm ${sigAlg.slice(0, 100) || '(none)'} is refused; sign with RSA-SHA256`);
  if (!certificates.length) throw invalid('saml.signature_unverifiable', 'the request is signed but the app has no signing certificate registered in OneID');
  const signed = [`${messageParam}=${raw.get(messageParam) ?? ''}`];
  if (raw.has('RelayState')) signed.push(`RelayState=${raw.get('RelayState')}`);
  signed.push(`SigAlg=${raw.get('SigAlg')}`);
  const data = Buffer.from(signed.join('&'));
  const sigBytes = Buffer.from(queryDecode(signature, false), 'base64');
  for (const certificate of certificates) {
    if (verifySignature(digest, data, certificatePem(certificate), sigBytes)) return 'valid';
  }
  throw invalid('saml.signature_invalid', 'the request signature does not verify with the app\'s signing certificate');
}

/**
 * A URL carrying `xml` by the HTTP-Redirect binding to `location`, signed (saml-bindings
 * 3.4.4.1): what OneID sends its logout messages with.
 */
export function signedRedirectUrl(location: string, param: 'SAMLRequest' | 'SAMLResponse', xml: string, relayState: string | undefined, key: SigningKey): string {
  let query = `${param}=${encodeURIComponent(deflateToBase64(xml))}`;
  if (relayState) query += `&RelayState=${encodeURIComponent(relayState)}`;
  query += `&SigAlg=${encodeURIComponent(SIG_ALG.rsaSha256)}`;
  const signature = signData('sha256', Buffer.from(query), key.privateKey).toString('base64');
  return `${location}${location.includes('?') ? '&' : '?'}${query}&Signature=${encodeURIComponent(signature)}`;
}
