// Self-signed certificates for test service providers, made by openssl (not by OneID's code).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface SpCertificate {
  certPem: string;
  keyPem: string;
  /** base64 DER, as metadata carries it. */
  der64: string;
  /** `openssl x509 -fingerprint -sha256` of it: AA:BB:... */
  sha256: string;
}

export function makeSpCertificate(cn: string): SpCertificate {
  const dir = mkdtempSync(path.join(tmpdir(), 'oneid-sp-cert-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${cn}`], { stdio: 'ignore' });
    const fingerprint = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
    const certPem = readFileSync(cert, 'utf8');
    return {
      certPem,
      keyPem: readFileSync(key, 'utf8'),
      der64: certPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''),
      sha256: fingerprint.trim().split('=')[1]!,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** SP metadata in the style python3-onelogin-saml2 writes it (md: prefix, wrapped certificate lines). */
export function oneloginStyleMetadata(opts: {
  entityId: string; acs: string; slo?: string; signing?: SpCertificate; encryption?: SpCertificate;
  authnRequestsSigned?: boolean; wantAssertionsSigned?: boolean; nameIdFormat?: string;
}): string {
  const wrap = (c: SpCertificate) => c.der64.match(/.{1,64}/g)!.join('\n          ');
  const key = (use: string, c: SpCertificate) => `
    <md:KeyDescriptor use="${use}">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data>
          <ds:X509Certificate>
          ${wrap(c)}
          </ds:X509Certificate>
        </ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>`;
  return `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
                     validUntil="2030-01-01T00:00:00Z"
                     cacheDuration="PT604800S"
                     entityID="${opts.entityId}">
  <md:SPSSODescriptor AuthnRequestsSigned="${opts.authnRequestsSigned ? 'true' : 'false'}" WantAssertionsSigned="${opts.wantAssertionsSigned ? 'true' : 'false'}" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">${opts.signing ? key('signing', opts.signing) : ''}${opts.encryption ? key('encryption', opts.encryption) : ''}${opts.slo ? `
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                            Location="${opts.slo}" />` : ''}
    <md:NameIDFormat>${opts.nameIdFormat ?? 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
                                 Location="${opts.acs}"
                                 index="1" />
  </md:SPSSODescriptor>
</md:EntityDescriptor>`;
}
