// SP metadata into a SAML app's settings: metadata as real SPs write it (node-saml's generator,
// python3-onelogin-saml2's layout), and metadata OneID must refuse (DTDs/XXE, no HTTP-POST ACS,
// a certificate that is not one, not SP metadata at all).
import { generateServiceProviderMetadata } from '@node-saml/node-saml';
import { parseSpMetadata } from '../../src/saml/sp-metadata.ts';
import { normaliseCertificate, summariseCertificate } from '../../src/saml/certificates.ts';
import { AppError } from '../../src/shared/errors.ts';
import { makeSpCertificate, oneloginStyleMetadata, type SpCertificate } from '../helpers/sp-certificates.ts';

let signing: SpCertificate;
let encryption: SpCertificate;

beforeAll(() => {
  signing = makeSpCertificate('sp-signing.example');
  encryption = makeSpCertificate('sp-encryption.example');
});

function refusal(xml: string): AppError {
  try {
    parseSpMetadata(xml);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ kind: 'invalid_argument', code: 'saml.metadata_invalid', details: { field: 'metadataXml' } });
    return err as AppError;
  }
  throw new Error('the metadata was accepted');
}

const MD = 'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"';
const minimal = (inner: string, entityId = 'https://sp.example/metadata') =>
  `<md:EntityDescriptor ${MD} entityID="${entityId}"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">${inner}</md:SPSSODescriptor></md:EntityDescriptor>`;
const postAcs = (location: string, index: number, extra = '') =>
  `<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${location}" index="${index}"${extra}/>`;

describe('parseSpMetadata', () => {
  it('reads the metadata node-saml generates for a signing, decrypting SP', () => {
    const xml = generateServiceProviderMetadata({
      issuer: 'https://node-sp.example/saml',
      callbackUrl: 'https://node-sp.example/saml/acs',
      logoutCallbackUrl: 'https://node-sp.example/saml/logout',
      identifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
      wantAssertionsSigned: true,
      privateKey: signing.keyPem,
      publicCerts: signing.certPem,
      decryptionPvk: encryption.keyPem,
      decryptionCert: encryption.certPem,
    });
    expect(parseSpMetadata(xml)).toEqual({
      entityId: 'https://node-sp.example/saml',
      acsUrls: [{ location: 'https://node-sp.example/saml/acs', index: 1, isDefault: true }],
      sloUrl: 'https://node-sp.example/saml/logout',
      sloBinding: 'post',
      signingCertificates: [signing.der64],
      encryptionCertificate: encryption.der64,
      nameIdFormat: 'persistent',
      wantAuthnRequestsSigned: true,
      signAssertion: true,
    });
  });

  it('reads onelogin-style metadata: wrapped certificate lines, Redirect SLO, unspecified NameID', () => {
    const xml = oneloginStyleMetadata({
      entityId: 'https://py-sp.example/metadata/', acs: 'https://py-sp.example/?acs', slo: 'https://py-sp.example/?sls', signing,
    });
    expect(parseSpMetadata(xml)).toEqual({
      entityId: 'https://py-sp.example/metadata/',
      acsUrls: [{ location: 'https://py-sp.example/?acs', index: 1 }],
      sloUrl: 'https://py-sp.example/?sls',
      sloBinding: 'redirect',
      signingCertificates: [signing.der64],
      nameIdFormat: 'unspecified',
    });
  });

  it('keeps HTTP-POST ACS URLs only, with index and isDefault; prefers a Redirect SLO; a KeyDescriptor without use serves both', () => {
    const xml = minimal(`
      <md:KeyDescriptor><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${signing.der64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
      <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/slo-post"/>
      <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://sp.example/slo"/>
      <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
      <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="https://sp.example/artifact" index="0"/>
      ${postAcs('https://sp.example/acs', 3)}
      ${postAcs('https://sp.example/acs2', 7, ' isDefault="true"')}`);
    expect(parseSpMetadata(xml)).toEqual({
      entityId: 'https://sp.example/metadata',
      acsUrls: [{ location: 'https://sp.example/acs', index: 3 }, { location: 'https://sp.example/acs2', index: 7, isDefault: true }],
      sloUrl: 'https://sp.example/slo',
      sloBinding: 'redirect',
      signingCertificates: [signing.der64],
      encryptionCertificate: signing.der64,
      nameIdFormat: 'emailAddress',
    });
  });

  it('accepts an EntitiesDescriptor holding exactly one SP, and refuses one holding two', () => {
    const entity = (id: string) => minimal(postAcs(`https://${id}/acs`, 0), `https://${id}`).replace(` ${MD}`, '');
    const idp = '<md:EntityDescriptor entityID="https://idp.example"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>';
    expect(parseSpMetadata(`<md:EntitiesDescriptor ${MD}>${idp}${entity('one.example')}</md:EntitiesDescriptor>`).entityId).toBe('https://one.example');
    expect(refusal(`<md:EntitiesDescriptor ${MD}>${entity('one.example')}${entity('two.example')}</md:EntitiesDescriptor>`).message)
      .toContain('exactly one service provider (it holds 2)');
  });

  it('refuses a DOCTYPE, an internal entity and an external entity (XXE), never reading the file', () => {
    const body = minimal(postAcs('https://sp.example/&xxe;', 0));
    for (const xml of [
      `<!DOCTYPE md:EntityDescriptor>${minimal(postAcs('https://sp.example/acs', 0))}`,
      `<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${body}`,
      `<!DOCTYPE foo [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>${body.replace('&xxe;', '&b;')}`,
      `<!doctype foo SYSTEM "http://127.0.0.1:9/evil.dtd">${body}`,
    ]) {
      const err = refusal(xml);
      expect(err.message).toBe('metadataXml: DTDs and entity declarations are not accepted');
      expect(err.message).not.toContain('root:');
    }
  });

  it('refuses metadata without an HTTP-POST AssertionConsumerService, and without any', () => {
    const redirectOnly = minimal('<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://sp.example/acs" index="0"/>');
    expect(refusal(redirectOnly).message).toContain('no AssertionConsumerService with the HTTP-POST binding');
    expect(refusal(minimal('')).message).toContain('has no AssertionConsumerService');
  });

  it('refuses a NUL or an unpaired surrogate brought in by a character reference', () => {
    expect(refusal(minimal(postAcs('https://sp.example/acs', 0), 'https://sp.example/a&#0;b')).message).toContain('NUL character');
    expect(refusal(minimal(postAcs('https://sp.example/&#xD800;', 0))).message).toContain('unpaired surrogate');
  });

  it('refuses a certificate that is not one', () => {
    const withCert = (cert: string) => minimal(`<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>${cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>${postAcs('https://sp.example/acs', 0)}`);
    for (const cert of ['not base64 at all!', Buffer.from('garbage that is base64').toString('base64'), signing.der64.slice(0, 400), '']) {
      expect(refusal(withCert(cert)).message).toContain('signing certificate in a KeyDescriptor is not a valid X.509 certificate');
    }
  });

  it('refuses what is not SP metadata: broken XML, another root, no entityID, an IdP, a processing instruction', () => {
    expect(refusal('<md:EntityDescriptor').message).toContain('not well-formed XML');
    expect(refusal('').message).toContain('not well-formed XML');
    expect(refusal('<html><body>hello</body></html>').message).toContain('expected SAML 2.0 metadata');
    expect(refusal(minimal(postAcs('https://sp.example/acs', 0)).replace(' entityID="https://sp.example/metadata"', '')).message).toContain('no entityID');
    expect(refusal(`<md:EntityDescriptor ${MD} entityID="x"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/></md:EntityDescriptor>`).message)
      .toContain('expected one SPSSODescriptor, found 0');
    expect(refusal(`<?xml-stylesheet href="x.xsl"?>${minimal(postAcs('https://sp.example/acs', 0))}`).message).toContain('processing instructions');
  });
});

describe('certificates', () => {
  it('takes PEM or base64 DER with whitespace to base64 DER, and summarises it by its SHA-256 fingerprint', () => {
    expect(normaliseCertificate(signing.certPem)).toBe(signing.der64);
    expect(normaliseCertificate(` ${signing.der64.match(/.{1,64}/g)!.join('\r\n')}\n`)).toBe(signing.der64);
    expect(normaliseCertificate(signing.keyPem)).toBeUndefined();
    expect(summariseCertificate(signing.der64)).toMatchObject({ sha256: signing.sha256, subject: 'CN=sp-signing.example' });
  });
});
