// SamlAppsService on a real database: SAML apps from fields and from metadata, the checks that
// refuse settings which could not work (each changing nothing), updates, audit records, and the
// OIDC app code paths a SAML app must not crash or fool.
import type { Knex } from 'knex';
import { generateServiceProviderMetadata } from '@node-saml/node-saml';
import { AppsService } from '../../src/apps/apps.service.ts';
import { SamlAppsService, type CreateSamlAppInput } from '../../src/apps/saml-apps.service.ts';
import { findSamlAppByEntityId } from '../../src/apps/saml-providers.repo.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { makeSpCertificate, oneloginStyleMetadata, type SpCertificate } from '../helpers/sp-certificates.ts';

let mdb: MigratedDatabase;
let db: Knex;
let saml: SamlAppsService;
let apps: AppsService;
let signing: SpCertificate;
let encryption: SpCertificate;
const actor: Actor = { type: 'admin_client', id: 'client-under-test' };

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_saml_apps');
  db = mdb.db;
  saml = new SamlAppsService(db);
  apps = new AppsService(db);
  signing = makeSpCertificate('sp-signing.example');
  encryption = makeSpCertificate('sp-encryption.example');
});

afterAll(async () => {
  await mdb?.close();
});

async function appError(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

let n = 0;
const entity = () => `https://sp${++n}.example/metadata`;
const fields = (extra: Partial<CreateSamlAppInput> = {}): CreateSamlAppInput => ({ name: 'Wiki', entityId: entity(), acsUrls: [{ location: 'https://wiki.example/acs' }], ...extra });
const counts = async () => ({
  apps: Number((await db('apps').count({ n: '*' }))[0]!.n),
  sps: Number((await db('saml_service_providers').count({ n: '*' }))[0]!.n),
  audit: Number((await db('audit_events').count({ n: '*' }))[0]!.n),
});

describe('createSamlApp', () => {
  it('registers from fields with the defaults: assigned, emailAddress, both signed, no encryption, one default ACS', async () => {
    const { app, sp } = await saml.createSamlApp(fields({ name: 'Wiki' }), actor);
    expect(app).toMatchObject({ name: 'Wiki', protocol: 'saml', access: 'assigned', signInPolicy: null, clientSecretHash: null, oidc: {}, version: 1 });
    expect(app.clientId).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(app.clientId).not.toBe(sp.entityId);
    expect(sp).toMatchObject({
      acsUrls: [{ location: 'https://wiki.example/acs', binding: 'post', index: 0, isDefault: true }],
      sloUrl: null, sloBinding: null, signingCertificates: [], encryptionCertificate: null, encryptAssertions: false,
      nameIdFormat: 'emailAddress', attributeMapping: null, signResponse: true, signAssertion: true, wantAuthnRequestsSigned: false,
    });
    // What the SSO code reads by the entityID of a request.
    expect((await findSamlAppByEntityId(db, sp.entityId))?.app.id).toBe(app.id);
  });

  it('registers from node-saml metadata, explicit fields overriding it, certificates from PEM stored as base64 DER', async () => {
    const entityId = entity();
    const metadataXml = generateServiceProviderMetadata({
      issuer: entityId, callbackUrl: 'https://node.example/acs', logoutCallbackUrl: 'https://node.example/slo',
      privateKey: signing.keyPem, publicCerts: signing.certPem, decryptionPvk: encryption.keyPem, decryptionCert: encryption.certPem,
      identifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    });
    const { app, sp } = await saml.createSamlApp({ name: 'Node SP', metadataXml, nameIdFormat: 'transient', access: 'everyone', signInPolicy: 'mfa' }, actor);
    expect(app).toMatchObject({ access: 'everyone', signInPolicy: 'mfa' });
    expect(sp).toMatchObject({
      entityId, acsUrls: [{ location: 'https://node.example/acs', binding: 'post', index: 1, isDefault: true }],
      sloUrl: 'https://node.example/slo', sloBinding: 'post', nameIdFormat: 'transient',
      signingCertificates: [signing.der64], encryptionCertificate: encryption.der64, encryptAssertions: true, wantAuthnRequestsSigned: true,
    });

    const [event] = await db('audit_events').where({ target_id: app.id, action: 'app.created' });
    expect(event.actor_id).toBe('client-under-test');
    expect(event.changes).toMatchObject({ protocol: 'saml', fromMetadata: true, clientId: app.clientId, saml: {
      entityId, signingCertificates: [signing.sha256], encryptionCertificate: encryption.sha256, nameIdFormat: 'transient',
    } });
    // The audit log names certificates by fingerprint; it does not hold them (nor the metadata).
    expect(JSON.stringify(event.changes)).not.toContain(signing.der64.slice(0, 60));
    expect(JSON.stringify(event.changes)).not.toContain('EntityDescriptor');
  });

  it('registers from onelogin-style metadata and takes a preset attribute mapping', async () => {
    const entityId = entity();
    const { sp } = await saml.createSamlApp({
      name: 'Python SP', attributePreset: 'azure-style-claims',
      metadataXml: oneloginStyleMetadata({ entityId, acs: 'https://py.example/?acs', slo: 'https://py.example/?sls', signing, wantAssertionsSigned: true }),
    }, actor);
    expect(sp).toMatchObject({ entityId, sloBinding: 'redirect', nameIdFormat: 'unspecified', signAssertion: true, signingCertificates: [signing.der64] });
    expect(sp.attributeMapping).toContainEqual({ name: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress', source: 'email', nameFormat: 'uri' });
    expect(sp.attributeMapping).toContainEqual({ name: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role', source: 'roles', nameFormat: 'uri' });
    const plain = await saml.createSamlApp(fields({ attributePreset: 'plain' }), actor);
    expect(plain.sp.attributeMapping!.map((m) => m.name)).toEqual(['uid', 'mail', 'cn', 'givenName', 'sn', 'memberOf', 'roles']);
  });

  it('numbers ACS URLs by position and keeps the one marked default', async () => {
    const { sp } = await saml.createSamlApp(fields({ acsUrls: [{ location: 'https://a.example/acs' }, { location: 'http://b.example/acs', isDefault: true }, { location: 'https://c.example/acs', index: 9 }] }), actor);
    expect(sp.acsUrls.map((a) => [a.index, a.isDefault])).toEqual([[0, false], [1, true], [9, false]]);
  });

  it.each([
    ['no entity ID', { entityId: undefined }, 'saml.entity_id_required', 'entityId'],
    ['no ACS URL', { acsUrls: undefined }, 'saml.acs_url_required', 'acsUrls'],
    ['an ACS URL with a fragment', { acsUrls: [{ location: 'https://a.example/acs#x' }] }, 'request.invalid', 'acsUrls.0.location'],
    ['a relative ACS URL', { acsUrls: [{ location: '/acs' }] }, 'request.invalid', 'acsUrls.0.location'],
    ['a javascript: ACS URL', { acsUrls: [{ location: 'javascript:alert(1)' }] }, 'request.invalid', 'acsUrls.0.location'],
    ['two default ACS URLs', { acsUrls: [{ location: 'https://a.example/1', isDefault: true }, { location: 'https://a.example/2', isDefault: true }] }, 'saml.acs_default_ambiguous', 'acsUrls'],
    ['an ACS index used twice', { acsUrls: [{ location: 'https://a.example/1', index: 1 }, { location: 'https://a.example/2' }] }, 'saml.acs_index_duplicate', 'acsUrls.1.index'],
    ['a garbage signing certificate', { signingCertificates: ['MIIBnotacert'] }, 'saml.certificate_invalid', 'signingCertificates.0'],
    ['a garbage encryption certificate', { encryptionCertificate: 'hello' }, 'saml.certificate_invalid', 'encryptionCertificate.0'],
    ['signed requests without a certificate', { wantAuthnRequestsSigned: true }, 'saml.signing_certificate_required', 'wantAuthnRequestsSigned'],
    ['encryption without a certificate', { encryptAssertions: true }, 'saml.encryption_certificate_required', 'encryptAssertions'],
    ['nothing signed', { signResponse: false, signAssertion: false }, 'saml.unsigned', 'signResponse'],
    ['a preset and a mapping', { attributePreset: 'plain', attributeMapping: [] }, 'saml.attribute_mapping_conflict', 'attributePreset'],
    ['an attribute mapped twice', { attributeMapping: [{ name: 'mail', source: 'email' }, { name: 'mail', source: 'username' }] }, 'saml.attribute_duplicate', 'attributeMapping.1.name'],
    ['an unknown attribute source', { attributeMapping: [{ name: 'x', source: 'password' }] }, 'request.invalid', 'attributeMapping.0.source'],
    ['an unknown preset', { attributePreset: 'okta' }, 'request.invalid', 'attributePreset'],
    ['an unknown NameID format', { nameIdFormat: 'x509SubjectName' }, 'request.invalid', 'nameIdFormat'],
    ['an entity ID over 1024 characters', { entityId: `https://sp.example/${'a'.repeat(1024)}` }, 'request.invalid', 'entityId'],
    ['an OIDC setting', { redirectUris: ['https://a.example/cb'] }, 'request.invalid', 'redirectUris'],
    ['metadata with a DTD', { entityId: undefined, acsUrls: undefined, metadataXml: '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>' }, 'saml.metadata_invalid', 'metadataXml'],
  ])('refuses %s with a clear error naming the field, and changes nothing', async (_what, extra, code, field) => {
    const before = await counts();
    const err = await appError(saml.createSamlApp(fields(extra as Partial<CreateSamlAppInput>), actor));
    expect(err).toMatchObject({ kind: 'invalid_argument', code, details: { field } });
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(await counts()).toEqual(before);
  });

  it('refuses metadata whose values do not pass the field checks (an ACS URL that is not http)', async () => {
    const xml = oneloginStyleMetadata({ entityId: entity(), acs: 'ftp://files.example/acs' });
    const err = await appError(saml.createSamlApp({ name: 'X', metadataXml: xml }, actor));
    expect(err).toMatchObject({ code: 'saml.metadata_invalid', details: { field: 'metadataXml' } });
    expect(err.message).toContain('acsUrls.0.location');
  });

  it('refuses a second app with the same entity ID (already_exists saml.entity_id_taken), keeping the first', async () => {
    const first = await saml.createSamlApp(fields(), actor);
    const before = await counts();
    const err = await appError(saml.createSamlApp(fields({ name: 'Copy', entityId: first.sp.entityId }), actor));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'saml.entity_id_taken', details: { field: 'entityId' } });
    expect(await counts()).toEqual(before);
  });
});

describe('updateSamlApp', () => {
  it('changes only what it is given, bumps the version and records old and new values (certificates by fingerprint)', async () => {
    const { app, sp } = await saml.createSamlApp(fields({ signingCertificates: [signing.certPem] }), actor);
    const updated = await saml.updateSamlApp(app.id, { name: 'Wiki 2', sloUrl: 'https://wiki.example/slo', encryptionCertificate: encryption.certPem, wantAuthnRequestsSigned: true }, actor, 1);
    expect(updated.app).toMatchObject({ name: 'Wiki 2', version: 2 });
    expect(updated.sp).toMatchObject({
      entityId: sp.entityId, acsUrls: sp.acsUrls, sloUrl: 'https://wiki.example/slo', sloBinding: 'redirect',
      encryptionCertificate: encryption.der64, encryptAssertions: true, wantAuthnRequestsSigned: true, signingCertificates: [signing.der64],
    });
    const [event] = await db('audit_events').where({ target_id: app.id, action: 'app.updated' });
    expect(event.changes).toEqual({ name: 'Wiki 2', saml: {
      sloUrl: 'https://wiki.example/slo', sloBinding: 'redirect', encryptionCertificate: encryption.sha256, encryptAssertions: true, wantAuthnRequestsSigned: true,
    } });
    expect(event.before).toEqual({ name: 'Wiki', saml: { sloUrl: null, sloBinding: null, encryptionCertificate: null, encryptAssertions: false, wantAuthnRequestsSigned: false } });

    // Clearing the encryption certificate turns encryption off; clearing the SLO URL its binding.
    const cleared = await saml.updateSamlApp(app.id, { encryptionCertificate: null, sloUrl: null }, actor);
    expect(cleared.sp).toMatchObject({ encryptionCertificate: null, encryptAssertions: false, sloUrl: null, sloBinding: null });
    expect(cleared.app.version).toBe(3);
  });

  it('refuses a stale version (412), an OIDC app, an unknown app, and settings that cannot work, changing nothing', async () => {
    const { app, sp } = await saml.createSamlApp(fields(), actor);
    expect(await appError(saml.updateSamlApp(app.id, { name: 'X' }, actor, 7))).toMatchObject({ kind: 'failed_precondition', code: 'app.version_mismatch' });
    expect(await appError(saml.updateSamlApp(app.id, { wantAuthnRequestsSigned: true }, actor))).toMatchObject({ code: 'saml.signing_certificate_required' });
    expect(await appError(saml.updateSamlApp(app.id, { signAssertion: false, signResponse: false }, actor))).toMatchObject({ code: 'saml.unsigned' });
    const other = await saml.createSamlApp(fields(), actor);
    expect(await appError(saml.updateSamlApp(app.id, { entityId: other.sp.entityId }, actor))).toMatchObject({ code: 'saml.entity_id_taken' });
    const oidc = await apps.createApp({ name: 'OIDC', redirectUris: ['https://o.example/cb'] }, actor);
    expect(await appError(saml.updateSamlApp(oidc.id, { name: 'X' }, actor))).toMatchObject({ kind: 'invalid_argument', code: 'app.not_saml' });
    expect(await appError(saml.getSamlApp(oidc.id))).toMatchObject({ code: 'app.not_saml' });
    expect(await appError(saml.updateSamlApp('7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f', { name: 'X' }, actor))).toMatchObject({ kind: 'not_found', code: 'app.not_found' });
    const now = await saml.getSamlApp(app.id);
    expect(now.app.version).toBe(1);
    expect(now.sp).toEqual(sp);
    expect(await db('audit_events').where({ target_id: app.id, action: 'app.updated' })).toHaveLength(0);
  });

  it('replaces settings from new metadata, explicit fields still overriding', async () => {
    const { app, sp } = await saml.createSamlApp(fields(), actor);
    const xml = oneloginStyleMetadata({ entityId: sp.entityId, acs: 'https://new.example/acs', signing, authnRequestsSigned: true });
    const { sp: next } = await saml.updateSamlApp(app.id, { metadataXml: xml, nameIdFormat: 'persistent' }, actor);
    expect(next).toMatchObject({ acsUrls: [{ location: 'https://new.example/acs', index: 1, isDefault: true }], signingCertificates: [signing.der64], wantAuthnRequestsSigned: true, nameIdFormat: 'persistent' });
  });
});

describe('a SAML app through the OIDC app code', () => {
  it('is listed and read, refuses OIDC-only settings and secret rotation, takes name/access/policy changes and is deleted with its SP', async () => {
    const { app } = await saml.createSamlApp(fields({ name: 'Shared' }), actor);
    expect((await apps.getApp(app.id)).protocol).toBe('saml');
    expect((await apps.listApps({ clientId: app.clientId, limit: 5 })).map((a) => a.id)).toEqual([app.id]);
    for (const change of [{ redirectUris: ['https://x.example/cb'] }, { idTokenSigningAlg: 'ES256' as const }, { allowNoPkce: true }, { adminRoles: ['auditor' as const] }]) {
      const err = await appError(apps.updateApp(app.id, change, actor));
      expect(err).toMatchObject({ kind: 'invalid_argument', code: 'app.oidc_only_field', details: { field: Object.keys(change)[0] } });
    }
    expect(await appError(apps.rotateSecret(app.id, actor))).toMatchObject({ kind: 'invalid_argument', code: 'app.saml_has_no_secret' });
    expect((await apps.getApp(app.id))).toMatchObject({ clientSecretHash: null, version: 1 });
    expect(await apps.updateApp(app.id, { access: 'everyone', signInPolicy: 'phishing_resistant', name: 'Renamed' }, actor)).toMatchObject({ access: 'everyone', name: 'Renamed', version: 2 });
    await apps.deleteApp(app.id, actor);
    expect(await db('saml_service_providers').where({ app_id: app.id })).toHaveLength(0);
  });
});
