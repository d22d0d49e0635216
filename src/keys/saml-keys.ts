// SAML publishes signing keys as X.509 certificates, so each RS256 key of keys.service.ts gets a
// self-signed one (nobody checks its chain: SPs pin the certificate from OneID's metadata). The
// certificate is made once per key and stored beside it, so every node publishes the same bytes
// and SPs that pinned it keep working across restarts. The private key stays encrypted at rest.
import { createPrivateKey, randomBytes, webcrypto, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { Knex } from 'knex';
import type { MasterKey } from './master-key.ts';
import { x509 } from './x509.ts';

export interface SamlSigningKey {
  kid: string;
  privateKey: KeyObject;
  /** base64 DER, no armour. */
  certificate: string;
  certificatePem: string;
}

export interface SamlKeys {
  signing: SamlSigningKey;
  /** base64 DER: current first, then next, previous. */
  published: string[];
}

type PublishedState = 'current' | 'next' | 'previous';
const PUBLISHED_STATES: PublishedState[] = ['current', 'next', 'previous'];

interface DbRsaKeyRow {
  kid: string;
  state: PublishedState;
  public_jwk: JsonWebKey | string;
  private_jwk_encrypted: string;
  certificate: string | null;
}

const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;

/** The subject OneID's certificates name: the host of its issuer URL. */
export function samlCertificateSubject(issuer: string): string {
  return new URL(issuer).hostname;
}

const asJwk = (value: JsonWebKey | string): JsonWebKey => (typeof value === 'string' ? JSON.parse(value) as JsonWebKey : value);

async function selfSignedCertificate(row: DbRsaKeyRow, master: MasterKey, subject: string): Promise<string> {
  const privateJwk = JSON.parse(master.decrypt(row.private_jwk_encrypted)) as JsonWebKey;
  // WebCrypto refuses a JWK whose key_ops/use disagree with the usage; the stored ones say sig.
  const privateKey = await webcrypto.subtle.importKey('jwk', privateJwk, RSA_SHA256, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('jwk', asJwk(row.public_jwk), RSA_SHA256, true, ['verify']);
  // A positive serial of 128 random bits (RFC 5280 asks for at most 20 octets, positive).
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const now = Date.now();
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + 10);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    // The JSON form, so nothing in the host name is read as name syntax.
    name: [{ CN: [subject] }],
    notBefore: new Date(now - DAY_MS),
    notAfter,
    signingAlgorithm: RSA_SHA256,
    keys: { privateKey, publicKey } as CryptoKeyPair,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
  return Buffer.from(cert.rawData).toString('base64');
}

/**
 * Makes the missing certificates of the published RS256 keys (next, current, previous). Runs at
 * start after ensureSigningKeys and after a rotation; under keys.service.ts's advisory lock, so
 * nodes starting together make one certificate per key.
 */
export async function ensureSamlCertificates(db: Knex, master: MasterKey, subject: string): Promise<void> {
  // Most starts find nothing to do: look before taking the lock.
  const missing = await db('signing_keys').where({ alg: 'RS256' }).whereIn('state', PUBLISHED_STATES).whereNull('certificate').first('kid');
  if (!missing) return;
  await db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(727001)');
    const rows: DbRsaKeyRow[] = await trx('signing_keys').where({ alg: 'RS256' }).whereIn('state', PUBLISHED_STATES).whereNull('certificate')
      .select('kid', 'state', 'public_jwk', 'private_jwk_encrypted', 'certificate');
    for (const row of rows) {
      await trx('signing_keys').where({ kid: row.kid }).update({ certificate: await selfSignedCertificate(row, master, subject) });
    }
  });
}

/** base64 DER as PEM (64-character lines). */
export function certificateToPem(der: string): string {
  return `-----BEGIN CERTIFICATE-----\n${der.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** The current RS256 key (signs) and the certificates SAML metadata publishes. */
export async function loadSamlKeys(db: Knex, master: MasterKey): Promise<SamlKeys> {
  const rows: DbRsaKeyRow[] = await db('signing_keys').where({ alg: 'RS256' }).whereIn('state', PUBLISHED_STATES)
    .select('kid', 'state', 'public_jwk', 'private_jwk_encrypted', 'certificate');
  rows.sort((a, b) => PUBLISHED_STATES.indexOf(a.state) - PUBLISHED_STATES.indexOf(b.state));
  const current = rows.find((r) => r.state === 'current');
  if (!current?.certificate) {
    throw new Error('no current RS256 signing key with a certificate: ensureSigningKeys and ensureSamlCertificates run at start');
  }
  const privateKey = createPrivateKey({ key: JSON.parse(master.decrypt(current.private_jwk_encrypted)) as JsonWebKey, format: 'jwk' });
  return {
    signing: { kid: current.kid, privateKey, certificate: current.certificate, certificatePem: certificateToPem(current.certificate) },
    published: rows.flatMap((r) => (r.certificate ? [r.certificate] : [])),
  };
}
