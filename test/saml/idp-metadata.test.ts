// OneID's IdP metadata as SPs read it: GET /saml/metadata on a port, with keys from a real
// database, checked by xmlsec1 (the signature), python3-saml (its metadata parser and the SAML
// metadata XSD) and xmldom (structure and element order).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { DOMParser } from '@xmldom/xmldom';
import { MasterKey } from '../../src/keys/master-key.ts';
import { ensureSigningKeys, rotateSigningKeys } from '../../src/keys/keys.service.ts';
import { certificateToPem, ensureSamlCertificates, loadSamlKeys, type SamlKeys } from '../../src/keys/saml-keys.ts';
import { idpMetadataXml } from '../../src/saml/idp-metadata.ts';
import { metadataRouter } from '../../src/saml/metadata.routes.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const ISSUER = 'https://id.example.com';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-idp-metadata-'));
let counter = 0;
const tmpFile = (content: string, ext: string): string => {
  const file = path.join(tmp, `${++counter}.${ext}`);
  fs.writeFileSync(file, content);
  return file;
};

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 30000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** xmlsec1's verdict on the signed metadata, trusting only `certificate` (base64 DER). */
const xmlsecVerify = (xml: string, certificate: string) => run('/usr/bin/xmlsec1', [
  '--verify', '--id-attr:ID', `${MD}:EntityDescriptor`, '--pubkey-cert-pem', tmpFile(certificateToPem(certificate), 'pem'), tmpFile(xml, 'xml'),
]);

interface PythonView {
  parsed: { idp?: { entityId?: string; singleSignOnService?: { url: string; binding: string }; singleLogoutService?: { url: string; binding: string }; x509cert?: string; x509certMulti?: { signing?: string[] } } };
  schemaError: string | null;
}

/** What python3-saml (OneLogin) reads from the document, and the XSD's verdict. */
async function pythonView(xml: string, binding = REDIRECT): Promise<PythonView> {
  const script = [
    'import sys, json',
    'from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser as P',
    'from onelogin.saml2.utils import OneLogin_Saml2_XML as X',
    'xml = sys.stdin.buffer.read()',
    'parsed = P.parse(xml, required_sso_binding=sys.argv[1], required_slo_binding=sys.argv[1])',
    "checked = X.validate_xml(xml, 'saml-schema-metadata-2.0.xsd')",
    "print(json.dumps({'parsed': parsed, 'schemaError': checked if isinstance(checked, str) else None}))",
  ].join('\n');
  const out = await run('/usr/bin/python3', ['-c', script, binding], xml);
  if (out.code !== 0) throw new Error(`python3-saml failed: ${out.stderr}`);
  return JSON.parse(out.stdout) as PythonView;
}

const parse = (xml: string) => new DOMParser().parseFromString(xml, 'text/xml');
const children = (el: Element): Element[] => Array.from(el.childNodes).filter((n): n is Element => n.nodeType === 1);
const descriptorOf = (root: Element) => children(root).find((c) => c.localName === 'IDPSSODescriptor')!;
const certificatesIn = (descriptor: Element) => children(descriptor).filter((c) => c.localName === 'KeyDescriptor')
  .map((k) => k.getElementsByTagNameNS(DS, 'X509Certificate')[0]!.textContent);

describe('GET /saml/metadata', () => {
  let mdb: MigratedDatabase;
  const master = new MasterKey(randomBytes(32));
  let keys: SamlKeys;
  let loads = 0;
  let server: Server;
  let base: string;

  beforeAll(async () => {
    mdb = await createMigratedDatabase('oneid_test_idp_metadata');
    await ensureSigningKeys(mdb.db, master);
    await ensureSamlCertificates(mdb.db, master, 'id.example.com');
    keys = await loadSamlKeys(mdb.db, master);
    const app = new Koa();
    const current = () => { loads++; return keys; };
    // Two deployments side by side: one publishing plain metadata, one signed.
    const plain = metadataRouter({ issuer: ISSUER, keys: current, signed: false });
    const signed = metadataRouter({ issuer: ISSUER, keys: async () => current(), signed: true });
    app.use(async (ctx, next) => {
      if (ctx.path.startsWith('/signed/')) {
        ctx.path = ctx.path.slice('/signed'.length);
        return signed.routes()(ctx as never, next);
      }
      return plain.routes()(ctx as never, next);
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await mdb?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const get = async (p: string) => {
    const res = await fetch(`${base}${p}`);
    return { res, xml: await res.text() };
  };

  it('serves the metadata as application/samlmetadata+xml, cacheable for five minutes', async () => {
    const { res } = await get('/saml/metadata');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/samlmetadata\+xml(;|$)/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
  });

  it('describes OneID as an IdP: entityID at the metadata URL, SSO and SLO for Redirect and POST, schema order', async () => {
    const { xml } = await get('/saml/metadata');
    const root = parse(xml).documentElement!;
    expect(root.namespaceURI).toBe(MD);
    expect(root.localName).toBe('EntityDescriptor');
    expect(root.getAttribute('entityID')).toBe(`${ISSUER}/saml/metadata`);
    expect(root.getElementsByTagNameNS(DS, 'Signature')).toHaveLength(0);
    const descriptor = descriptorOf(root);
    expect(descriptor.getAttribute('protocolSupportEnumeration')).toBe('urn:oasis:names:tc:SAML:2.0:protocol');
    expect(descriptor.getAttribute('WantAuthnRequestsSigned')).toBe('false');
    expect(children(descriptor).map((c) => `${c.localName}${c.getAttribute('Binding') ? ` ${c.getAttribute('Binding')} ${c.getAttribute('Location')}` : ''}`)).toEqual([
      'KeyDescriptor', 'KeyDescriptor',
      `SingleLogoutService ${REDIRECT} ${ISSUER}/saml/slo`, `SingleLogoutService ${POST} ${ISSUER}/saml/slo`,
      'NameIDFormat', 'NameIDFormat', 'NameIDFormat', 'NameIDFormat',
      `SingleSignOnService ${REDIRECT} ${ISSUER}/saml/sso`, `SingleSignOnService ${POST} ${ISSUER}/saml/sso`,
    ]);
    expect(children(descriptor).filter((c) => c.localName === 'NameIDFormat').map((c) => c.textContent)).toEqual([
      'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress', 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
      'urn:oasis:names:tc:SAML:2.0:nameid-format:transient', 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
    ]);
    // Current first, then next: both signing certificates.
    expect(certificatesIn(descriptor)).toEqual(keys.published);
    for (const k of children(descriptor).filter((c) => c.localName === 'KeyDescriptor')) expect(k.getAttribute('use')).toBe('signing');
  });

  it('is read by python3-saml and valid against the SAML metadata schema, signed or not', async () => {
    for (const p of ['/saml/metadata', '/signed/saml/metadata']) {
      const { xml } = await get(p);
      for (const binding of [REDIRECT, POST]) {
        const view = await pythonView(xml, binding);
        expect(view.schemaError).toBeNull();
        expect(view.parsed.idp).toMatchObject({
          entityId: `${ISSUER}/saml/metadata`,
          singleSignOnService: { url: `${ISSUER}/saml/sso`, binding },
          singleLogoutService: { url: `${ISSUER}/saml/slo`, binding },
          x509certMulti: { signing: keys.published },
        });
      }
    }
  });

  it('signs it, when asked, with an enveloped signature xmlsec1 accepts with the current certificate', async () => {
    const { xml } = await get('/signed/saml/metadata');
    const root = parse(xml).documentElement!;
    const first = children(root)[0]!;
    expect(`${first.namespaceURI} ${first.localName}`).toBe(`${DS} Signature`);
    const id = root.getAttribute('ID')!;
    expect(id).toMatch(/^_[0-9a-f]{32}$/);
    const reference = first.getElementsByTagNameNS(DS, 'Reference')[0]!;
    expect(reference.getAttribute('URI')).toBe(`#${id}`);
    expect(first.getElementsByTagNameNS(DS, 'SignatureMethod')[0]!.getAttribute('Algorithm')).toBe('http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
    expect(first.getElementsByTagNameNS(DS, 'DigestMethod')[0]!.getAttribute('Algorithm')).toBe('http://www.w3.org/2001/04/xmlenc#sha256');
    expect(first.getElementsByTagNameNS(DS, 'CanonicalizationMethod')[0]!.getAttribute('Algorithm')).toBe('http://www.w3.org/2001/10/xml-exc-c14n#');
    expect(first.getElementsByTagNameNS(DS, 'X509Certificate')[0]!.textContent).toBe(keys.signing.certificate);

    const ok = await xmlsecVerify(xml, keys.signing.certificate);
    expect(ok.stderr).toContain('OK');
    expect(ok.code).toBe(0);
  });

  it('is refused by xmlsec1 when tampered with or checked against another key', async () => {
    const { xml } = await get('/signed/saml/metadata');
    // An attacker pointing SSO elsewhere.
    const tampered = xml.replace(`Location="${ISSUER}/saml/sso"`, 'Location="https://evil.example/saml/sso"');
    expect(tampered).not.toBe(xml);
    const refused = await xmlsecVerify(tampered, keys.signing.certificate);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/FAIL/);
    // The next key's certificate did not sign it.
    expect((await xmlsecVerify(xml, keys.published[1]!)).code).not.toBe(0);
  });

  it('builds the document once per keys object and anew after a rotation', async () => {
    const first = await get('/signed/saml/metadata');
    const again = await get('/signed/saml/metadata');
    expect(again.xml).toBe(first.xml); // same ID and signature: cached, not re-signed
    const before = loads;

    const oldPublished = keys.published;
    await rotateSigningKeys(mdb.db, master);
    await ensureSamlCertificates(mdb.db, master, 'id.example.com');
    keys = await loadSamlKeys(mdb.db, master);
    const { xml } = await get('/signed/saml/metadata');
    expect(loads).toBe(before + 1);
    expect(xml).not.toBe(first.xml);
    const published = certificatesIn(descriptorOf(parse(xml).documentElement!));
    // Old and new during the rotation: the former current stays as previous.
    expect(published).toEqual(keys.published);
    expect(published).toHaveLength(3);
    expect(published).toEqual(expect.arrayContaining(oldPublished));
    expect(published[0]).toBe(oldPublished[1]);
    expect((await xmlsecVerify(xml, keys.signing.certificate)).code).toBe(0);
  });
});

describe('idpMetadataXml', () => {
  const cert = Buffer.from('not a real certificate, only bytes').toString('base64');

  it('escapes the values it is given', () => {
    const xml = idpMetadataXml({ entityId: 'https://x.example/"><evil a="&', ssoUrl: 'https://x.example/sso?a=1&b=<2>', sloUrl: "https://x.example/slo'", certificates: [cert] });
    const root = parse(xml).documentElement!;
    expect(root.getAttribute('entityID')).toBe('https://x.example/"><evil a="&');
    expect(root.getElementsByTagName('evil')).toHaveLength(0);
    const sso = root.getElementsByTagNameNS(MD, 'SingleSignOnService')[0]!;
    expect(sso.getAttribute('Location')).toBe('https://x.example/sso?a=1&b=<2>');
    expect(root.getElementsByTagNameNS(MD, 'SingleLogoutService')[0]!.getAttribute('Location')).toBe("https://x.example/slo'");
  });

  it('writes validUntil when given', () => {
    const xml = idpMetadataXml({ entityId: 'e', ssoUrl: 's', sloUrl: 'l', certificates: [cert], validUntil: new Date('2027-01-02T03:04:05Z') });
    expect(parse(xml).documentElement!.getAttribute('validUntil')).toBe('2027-01-02T03:04:05.000Z');
  });

  it('refuses certificates that are not base64 DER, and no certificate at all', () => {
    expect(() => idpMetadataXml({ entityId: 'e', ssoUrl: 's', sloUrl: 'l', certificates: ['</ds:X509Certificate><x/>'] })).toThrow(/base64 DER/);
    expect(() => idpMetadataXml({ entityId: 'e', ssoUrl: 's', sloUrl: 'l', certificates: [] })).toThrow(/at least one/);
  });
});
