// SP certificates as OneID keeps them: base64 DER without PEM armour or whitespace (what
// metadata carries in ds:X509Certificate), checked to be a real X.509 certificate on the way in.
import { X509Certificate } from 'node:crypto';

/** A certificate is a few kilobytes; anything far larger is not one. */
const MAX_CERTIFICATE_CHARS = 16 * 1024;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * PEM (one CERTIFICATE block) or base64 DER, whitespace anywhere, to base64 DER; undefined when
 * the text is not one parseable X.509 certificate.
 */
export function normaliseCertificate(text: string): string | undefined {
  if (text.length > MAX_CERTIFICATE_CHARS) return undefined;
  let body = text.trim();
  const pem = /^-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----$/.exec(body);
  if (pem) body = pem[1]!;
  body = body.replace(/\s+/g, '');
  if (!body || body.length % 4 !== 0 || !BASE64.test(body)) return undefined;
  try {
    const der = Buffer.from(body, 'base64');
    new X509Certificate(der);
    return der.toString('base64');
  } catch {
    return undefined;
  }
}

export interface CertificateSummary {
  /** SHA-256 of the DER, upper-case hex pairs joined by colons (as `openssl x509 -fingerprint -sha256` prints it). */
  sha256: string;
  subject: string;
  notAfter: string;
}

/** What an admin sees of a certificate (and the audit log records): never the certificate itself. */
export function summariseCertificate(der64: string): CertificateSummary {
  const cert = new X509Certificate(Buffer.from(der64, 'base64'));
  return { sha256: cert.fingerprint256, subject: cert.subject.replace(/\n/g, ', '), notAfter: new Date(cert.validTo).toISOString() };
}
