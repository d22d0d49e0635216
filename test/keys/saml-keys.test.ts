// SAML certificates of OneID's RS256 keys on a real database: made once per key, the same bytes on
// every load, old and new published through a rotation, and the CLI (start and `keys rotate`)
// making them for the keys it creates.
import { createPublicKey, randomBytes, sign, verify, X509Certificate, type JsonWebKey } from 'node:crypto';
import type { Knex } from 'knex';
import { MasterKey } from '../../src/keys/master-key.ts';
import { ensureSigningKeys, rotateSigningKeys } from '../../src/keys/keys.service.ts';
import { ensureSamlCertificates, loadSamlKeys, samlCertificateSubject } from '../../src/keys/saml-keys.ts';
import { x509 } from '../../src/keys/x509.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, testMasterKey } from '../helpers/server.ts';

interface Row { kid: string; alg: string; state: string; public_jwk: JsonWebKey; private_jwk_encrypted: string; certificate: string | null }

const rowsOf = (db: Knex): Promise<Row[]> =>
  db('signing_keys').select('kid', 'alg', 'state', 'public_jwk', 'private_jwk_encrypted', 'certificate').orderBy('kid');

const rsa = (rows: Row[], state: string): Row => {
  const found = rows.filter((r) => r.alg === 'RS256' && r.state === state);
  expect(found).toHaveLength(1);
  return found[0]!;
};

const certOf = (der: string) => new X509Certificate(Buffer.from(der, 'base64'));

describe('SAML certificates of the RS256 signing keys', () => {
  let mdb: MigratedDatabase;
  let db: Knex;
  const master = new MasterKey(randomBytes(32));
  const subject = samlCertificateSubject('https://id.example.com:8443/');

  beforeAll(async () => {
    mdb = await createMigratedDatabase('oneid_test_saml_keys', 4);
    db = mdb.db;
    await ensureSigningKeys(db, master);
  });

  afterAll(async () => {
    await mdb?.close();
  });

  it('names the issuer host as the subject', () => {
    expect(subject).toBe('id.example.com');
  });

  it('makes one certificate per published RS256 key, once, even when two nodes start together', async () => {
    const before = await rowsOf(db);
    expect(before.every((r) => r.certificate === null)).toBe(true);
    await Promise.all([ensureSamlCertificates(db, master, subject), ensureSamlCertificates(db, master, subject)]);
    const after = await rowsOf(db);
    expect(rsa(after, 'current').certificate).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(rsa(after, 'next').certificate).toMatch(/^[A-Za-z0-9+/]+=*$/);
    // ES256 keys are not SAML's: they get none.
    expect(after.filter((r) => r.alg === 'ES256').map((r) => r.certificate)).toEqual([null, null]);

    await ensureSamlCertificates(db, master, subject);
    expect(await rowsOf(db)).toEqual(after);
  });

  it('makes a self-signed RSA-SHA256 certificate of the key itself, valid from yesterday for ten years', async () => {
    const rows = await rowsOf(db);
    for (const state of ['current', 'next']) {
      const row = rsa(rows, state);
      const cert = certOf(row.certificate!);
      expect(cert.subject).toBe('CN=id.example.com');
      expect(cert.issuer).toBe(cert.subject);
      expect(cert.verify(cert.publicKey)).toBe(true);
      expect(cert.ca).toBe(false);
      expect(new x509.X509Certificate(row.certificate!).signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
      // The certificate's public key is the JWK's.
      const fromCert = cert.publicKey.export({ format: 'jwk' });
      expect({ n: fromCert.n, e: fromCert.e }).toEqual({ n: row.public_jwk.n, e: row.public_jwk.e });
      const from = Date.parse(cert.validFrom);
      const to = Date.parse(cert.validTo);
      expect(Date.now() - from).toBeGreaterThan(23 * 3600 * 1000);
      expect(Date.now() - from).toBeLessThan(25 * 3600 * 1000);
      expect((to - Date.now()) / (365.25 * 24 * 3600 * 1000)).toBeCloseTo(10, 1);
      expect(cert.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/);
    }
    // Serials differ (random), so two keys never share an issuer+serial.
    expect(certOf(rsa(rows, 'current').certificate!).serialNumber).not.toBe(certOf(rsa(rows, 'next').certificate!).serialNumber);
  });

  it('stores only the certificate: the private key stays sealed with the master key', async () => {
    const rows = await rowsOf(db);
    for (const row of rows.filter((r) => r.certificate)) {
      const der = Buffer.from(row.certificate!, 'base64');
      // The column decodes to exactly one DER certificate and nothing else.
      expect(Buffer.from(certOf(row.certificate!).raw).equals(der)).toBe(true);
      const d = (JSON.parse(master.decrypt(row.private_jwk_encrypted)) as JsonWebKey).d!;
      expect(der.includes(Buffer.from(d, 'base64url'))).toBe(false);
      expect(row.private_jwk_encrypted).toMatch(/^v1\./);
      expect(row.private_jwk_encrypted).not.toContain('"d"');
    }
  });

  it('loads the current key to sign with and publishes current then next, the same on every load', async () => {
    const rows = await rowsOf(db);
    const keys = await loadSamlKeys(db, master);
    const again = await loadSamlKeys(db, master);
    expect(keys.signing.kid).toBe(rsa(rows, 'current').kid);
    expect(keys.signing.certificate).toBe(rsa(rows, 'current').certificate);
    expect(keys.published).toEqual([rsa(rows, 'current').certificate, rsa(rows, 'next').certificate]);
    expect(again.published).toEqual(keys.published);
    expect(again.signing.certificatePem).toBe(keys.signing.certificatePem);
    // The PEM is the same certificate, and the private key is its pair.
    expect(new X509Certificate(keys.signing.certificatePem).raw.toString('base64')).toBe(keys.signing.certificate);
    const data = Buffer.from('SignedInfo');
    const signature = sign('sha256', data, keys.signing.privateKey);
    expect(verify('sha256', data, new X509Certificate(keys.signing.certificatePem).publicKey, signature)).toBe(true);
    expect(verify('sha256', data, createPublicKey(keys.signing.privateKey), signature)).toBe(true);
  });

  it('through a rotation publishes the old and the new certificate, unchanged, and drops retired ones', async () => {
    const before = await loadSamlKeys(db, master);
    const [oldCurrent, oldNext] = before.published;
    await rotateSigningKeys(db, master);
    await ensureSamlCertificates(db, master, subject);
    const after = await loadSamlKeys(db, master);
    const rows = await rowsOf(db);
    // The former next signs now, with the certificate SPs already had from the metadata.
    expect(after.signing.certificate).toBe(oldNext);
    expect(after.signing.kid).toBe(rsa(rows, 'current').kid);
    const freshNext = rsa(rows, 'next').certificate!;
    expect([oldCurrent, oldNext]).not.toContain(freshNext);
    expect(after.published).toEqual([oldNext, freshNext, oldCurrent]);

    await rotateSigningKeys(db, master);
    await ensureSamlCertificates(db, master, subject);
    const third = await loadSamlKeys(db, master);
    expect(third.published[0]).toBe(freshNext);
    expect(third.published[2]).toBe(oldNext);
    expect(third.published).not.toContain(oldCurrent); // retired
    expect(third.published).toHaveLength(3);
  });

  it('refuses to load without a current certificate rather than publish nothing', async () => {
    await db('signing_keys').where({ alg: 'RS256', state: 'current' }).update({ certificate: null });
    await expect(loadSamlKeys(db, master)).rejects.toThrow(/no current RS256 signing key with a certificate/);
    await ensureSamlCertificates(db, master, subject);
    expect((await loadSamlKeys(db, master)).published).toHaveLength(3);
  });
});

describe('oneid start and `oneid keys rotate`', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('oneid_test_saml_keys_cli');
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('give every published RS256 key a certificate naming the issuer host', async () => {
    const env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey(), ISSUER: 'https://login.example.org' };
    expect((await runCli(['migrate'], env)).code).toBe(0);
    const rotated = await runCli(['keys', 'rotate'], env);
    expect(rotated.code).toBe(0);
    const rsaStates = (rotated.json.keys as { alg: string; state: string }[]).filter((k) => k.alg === 'RS256').map((k) => k.state).sort();
    expect(rsaStates).toEqual(['current', 'next', 'previous']);

    const { Client } = (await import('pg')).default;
    const pg = new Client({ connectionString: database.url });
    await pg.connect();
    try {
      const { rows } = await pg.query<{ state: string; certificate: string | null }>(
        "select state, certificate from signing_keys where alg = 'RS256' and state <> 'retired'");
      expect(rows).toHaveLength(3);
      for (const row of rows) expect(certOf(row.certificate!).subject).toBe('CN=login.example.org');
    } finally {
      await pg.end();
    }
  }, 60000);
});
