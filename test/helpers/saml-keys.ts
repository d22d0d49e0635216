// A service provider's key pair and self-signed certificate for SAML tests: the SP signs its
// AuthnRequests and LogoutRequests with it, and OneID encrypts assertions for its certificate.
import { generateKeyPairSync, webcrypto } from 'node:crypto';
// tsyringe, which @peculiar/x509 uses inside, needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 works on WebCrypto; node's implementation serves it in every test process.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface SpKeys {
  privateKeyPem: string;
  certificatePem: string;
  /** base64 DER, as metadata's ds:X509Certificate and saml_service_providers carry it. */
  certificateBase64: string;
}

const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** A fresh RSA 2048 key pair and a certificate for it, valid from an hour ago for a year. */
export async function makeSpKeys(commonName = 'test service provider'): Promise<SpKeys> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keys = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), RSA_SHA256, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), RSA_SHA256, true, ['verify']),
  };
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex')}`,
    name: `CN=${commonName.replace(/[,=+<>#;"\\]/g, ' ')}`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 365 * 24 * 3600_000),
    signingAlgorithm: RSA_SHA256,
    keys: keys as CryptoKeyPair,
  });
  const certificateBase64 = Buffer.from(certificate.rawData).toString('base64');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificatePem: toPem(certificateBase64),
    certificateBase64,
  };
}

/** PEM armour around base64 DER (64-character lines). */
export function toPem(base64Der: string, label = 'CERTIFICATE'): string {
  const body = base64Der.replace(/\s+/g, '').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** base64 DER out of a PEM certificate. */
export const pemToBase64 = (pem: string): string => pem.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, '');
