// Row 7's set-up: two SAML apps in the bench database (rows as the registration service writes
// them; the admin API and CLI for SAML apps are not on this branch yet), one browser per
// connection signed in once through SAML with a password, and what the ceiling signs: an
// assertion from a real Response and OneID's SAML signing key.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { loadConfig } from '../../../src/config.ts';
import { createDb } from '../../../src/db/knex.ts';
import { resolveMasterKey } from '../../../src/keys/master-key.ts';
import { loadSamlKeys } from '../../../src/keys/saml-keys.ts';
import { samlSignIn, unsignedAssertionOf, type BenchSp } from './saml.ts';

export interface SamlSetup {
  /** sign_assertion true, sign_response false: one signature per Response, the row's setting. */
  assertionSigned: BenchSp;
  /** Both signed: two signatures per Response (a diagnostic line). */
  bothSigned: BenchSp;
  /** One browser's cookies per connection, each a OneID session of its own. */
  cookies: string[];
  /** What baselines/saml-sign.ts signs. */
  ceilingInput: { xml: string; id: string; privateKeyPem: string; certificate: string };
}

async function registerSamlApp(db: Knex, name: string, signResponse: boolean): Promise<BenchSp> {
  const id = randomUUID();
  const sp = { entityId: `https://${name}.bench.example/saml`, acsUrl: `https://${name}.bench.example/saml/acs` };
  await db('apps').insert({ id, name: `bench ${name}`, protocol: 'saml', client_id: `saml-${id}`, oidc: '{}', access: 'everyone' });
  await db('saml_service_providers').insert({
    app_id: id, entity_id: sp.entityId,
    acs_urls: JSON.stringify([{ location: sp.acsUrl, binding: 'post', index: 0, isDefault: true }]),
    signing_certificates: '[]', want_authn_requests_signed: false, encrypt_assertions: false,
    name_id_format: 'emailAddress', sign_assertion: true, sign_response: signResponse,
  });
  return sp;
}

export async function setupSaml(env: NodeJS.ProcessEnv, users: { login: string; password: string }[], browsers: number): Promise<SamlSetup> {
  const config = loadConfig(env);
  const handle = createDb(config);
  try {
    const db = handle.db as Knex;
    const assertionSigned = await registerSamlApp(db, 'saml-assertion-signed', false);
    const bothSigned = await registerSamlApp(db, 'saml-both-signed', true);
    const cookies: string[] = [];
    let response = '';
    for (let i = 0; i < browsers; i += 1) {
      const user = users[i % users.length]!;
      const r = await samlSignIn(config.issuer, assertionSigned, user.login, user.password);
      cookies.push(r.cookie);
      response ||= r.response;
    }
    if (/<samlp:Response[^>]*>\s*<saml:Issuer>[^<]*<\/saml:Issuer>\s*<ds:Signature/.test(response)) {
      throw new Error('the Response is signed although the app asks for the assertion alone to be signed');
    }
    const assertion = unsignedAssertionOf(response);
    const keys = await loadSamlKeys(db, resolveMasterKey(config.masterKey, config.dataDir));
    return {
      assertionSigned, bothSigned, cookies,
      ceilingInput: {
        ...assertion,
        privateKeyPem: keys.signing.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
        certificate: keys.signing.certificate,
      },
    };
  } finally {
    await handle.close();
  }
}
