// Black-box: SAML apps in the admin API (POST /apps/saml with JSON or SP metadata XML,
// GET/PATCH /apps/{id}/saml, the saml object of every app), and a SAML app's client_id being no
// OIDC client, on a real server and database.
import { generateServiceProviderMetadata } from '@node-saml/node-saml';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { makeSpCertificate, oneloginStyleMetadata, type SpCertificate } from '../helpers/sp-certificates.ts';

let db: TestDatabase;
let server: RunningServer;
let appAdmin: AdminClient;
let userAdmin: AdminClient;
let signing: SpCertificate;
let encryption: SpCertificate;

beforeAll(async () => {
  db = await createTestDatabase('oneid_test_admin_saml');
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  [appAdmin, userAdmin] = await Promise.all([adminClient(server.url, env, ['app_admin']), adminClient(server.url, env, ['user_admin'])]);
  signing = makeSpCertificate('sp-signing.example');
  encryption = makeSpCertificate('sp-encryption.example');
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const postXml = (xml: string, query: string, type = 'application/samlmetadata+xml', token = appAdmin.token) =>
  fetch(`${server.url}/admin/api/v1/apps/saml${query}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body: xml })
    .then(async (r) => ({ status: r.status, body: await r.json() as any, headers: r.headers }));

describe('POST /admin/api/v1/apps/saml', () => {
  it('registers from JSON fields: the app with its saml settings, certificates as fingerprints, no secret', async () => {
    const res = await appAdmin.call('POST', '/apps/saml', {
      name: 'Wiki', entityId: 'https://wiki.example/saml', acsUrls: [{ location: 'https://wiki.example/acs' }],
      signingCertificates: [signing.certPem], attributePreset: 'plain', signInPolicy: 'mfa',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/admin/api/v1/apps/${res.body.id}`);
    expect(res.headers.get('etag')).toBe('W/"1"');
    expect(res.body).toMatchObject({
      name: 'Wiki', protocol: 'saml', access: 'assigned', signInPolicy: 'mfa', redirectUris: [], grantTypes: [], version: 1,
      saml: {
        entityId: 'https://wiki.example/saml', acsUrls: [{ location: 'https://wiki.example/acs', binding: 'post', index: 0, isDefault: true }],
        sloUrl: null, sloBinding: null, nameIdFormat: 'emailAddress', signResponse: true, signAssertion: true, wantAuthnRequestsSigned: false,
        encryptAssertions: false, encryptionCertificate: null,
        signingCertificates: [{ sha256: signing.sha256, subject: 'CN=sp-signing.example' }],
      },
    });
    expect(res.body.saml.signingCertificates[0].notAfter).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(res.body.saml.attributeMapping).toContainEqual({ name: 'mail', source: 'email' });
    expect(res.body).not.toHaveProperty('client_secret');
    expect(JSON.stringify(res.body)).not.toContain(signing.der64.slice(0, 60));

    const got = await appAdmin.call('GET', `/apps/${res.body.id}`);
    expect(got.body).toEqual(res.body);
    const listed = await appAdmin.call('GET', '/apps?limit=500');
    expect(listed.body.items.find((a: any) => a.id === res.body.id)).toEqual(res.body);
    expect(listed.body.items.find((a: any) => a.protocol === 'oidc').saml).toBeNull();
  });

  it('registers from a metadata XML body with ?name= (application/samlmetadata+xml and application/xml)', async () => {
    const nodeXml = generateServiceProviderMetadata({
      issuer: 'https://node.example/saml', callbackUrl: 'https://node.example/acs', logoutCallbackUrl: 'https://node.example/slo',
      privateKey: signing.keyPem, publicCerts: signing.certPem, decryptionPvk: encryption.keyPem, decryptionCert: encryption.certPem,
    });
    const node = await postXml(nodeXml, '?name=Node%20SP');
    expect(node.status).toBe(201);
    expect(node.body).toMatchObject({ name: 'Node SP', protocol: 'saml', saml: {
      entityId: 'https://node.example/saml', sloUrl: 'https://node.example/slo', sloBinding: 'post', wantAuthnRequestsSigned: true,
      encryptAssertions: true, encryptionCertificate: { sha256: encryption.sha256 }, signingCertificates: [{ sha256: signing.sha256 }],
    } });
    const py = await postXml(oneloginStyleMetadata({ entityId: 'https://py.example/metadata/', acs: 'https://py.example/?acs' }), '?name=Python', 'application/xml; charset=utf-8');
    expect(py.status).toBe(201);
    expect(py.body.saml).toMatchObject({ entityId: 'https://py.example/metadata/', nameIdFormat: 'unspecified' });
  });

  it('refuses bad metadata, a missing name, an unknown content type and a taken entity ID with 400/409 problems, creating nothing', async () => {
    const before = (await appAdmin.call('GET', '/apps?limit=500')).body.items.length;
    const xxe = await postXml('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', '?name=Evil');
    expect(xxe.status).toBe(400);
    expect(xxe.body).toMatchObject({ code: 'saml.metadata_invalid', field: 'metadataXml' });
    expect(JSON.stringify(xxe.body)).not.toContain('root:');
    const noPost = await postXml(oneloginStyleMetadata({ entityId: 'https://np.example', acs: 'https://np.example/acs' }).replace('HTTP-POST', 'HTTP-Artifact'), '?name=NoPost');
    expect(noPost.body).toMatchObject({ status: 400, code: 'saml.metadata_invalid' });
    expect(noPost.body.detail).toContain('HTTP-POST');
    const noName = await postXml(oneloginStyleMetadata({ entityId: 'https://nn.example', acs: 'https://nn.example/acs' }), '');
    expect(noName.body).toMatchObject({ status: 400, field: 'name' });
    const form = await fetch(`${server.url}/admin/api/v1/apps/saml`, { method: 'POST', headers: { authorization: `Bearer ${appAdmin.token}`, 'content-type': 'text/plain' }, body: 'x' });
    expect(form.status).toBe(400);
    expect(await form.json()).toMatchObject({ code: 'request.content_type' });
    const badCert = await appAdmin.call('POST', '/apps/saml', { name: 'X', entityId: 'https://x.example', acsUrls: [{ location: 'https://x.example/acs' }], signingCertificates: ['bm90IGEgY2VydA=='] });
    expect(badCert.body).toMatchObject({ status: 400, code: 'saml.certificate_invalid', field: 'signingCertificates.0' });
    const taken = await appAdmin.call('POST', '/apps/saml', { name: 'Copy', entityId: 'https://wiki.example/saml', acsUrls: [{ location: 'https://copy.example/acs' }] });
    expect(taken.body).toMatchObject({ status: 409, code: 'saml.entity_id_taken', field: 'entityId' });
    const tooBig = await postXml(`<x>${'a'.repeat(200 * 1024)}</x>`, '?name=Big');
    expect(tooBig.status).toBe(413);
    expect((await appAdmin.call('GET', '/apps?limit=500')).body.items.length).toBe(before);
  });

  it('is for app_admin: a user_admin is refused (403) before the body is read', async () => {
    const res = await postXml(oneloginStyleMetadata({ entityId: 'https://ua.example', acs: 'https://ua.example/acs' }), '?name=UA', 'application/xml', userAdmin.token);
    expect(res.status).toBe(403);
    expect((await userAdmin.call('POST', '/apps/saml', { name: 'UA', entityId: 'https://ua.example', acsUrls: [{ location: 'https://ua.example/acs' }] })).status).toBe(403);
  });
});

describe('GET/PATCH /admin/api/v1/apps/{id}/saml', () => {
  it('reads and updates the SAML settings with If-Match; stale versions get 412; OIDC apps 400 app.not_saml', async () => {
    const created = (await appAdmin.call('POST', '/apps/saml', { name: 'HR', entityId: 'https://hr.example/saml', acsUrls: [{ location: 'https://hr.example/acs' }] })).body;
    const got = await userAdmin.call('GET', `/apps/${created.id}/saml`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ appId: created.id, version: 1, ...created.saml });

    const patched = await appAdmin.call('PATCH', `/apps/${created.id}/saml`, { name: 'HR 2', sloUrl: 'https://hr.example/slo', nameIdFormat: 'persistent', encryptionCertificate: encryption.der64 }, { 'if-match': 'W/"1"' });
    expect(patched.status).toBe(200);
    expect(patched.headers.get('etag')).toBe('W/"2"');
    expect(patched.body).toMatchObject({ name: 'HR 2', version: 2, saml: { sloUrl: 'https://hr.example/slo', sloBinding: 'redirect', nameIdFormat: 'persistent', encryptAssertions: true } });

    const stale = await appAdmin.call('PATCH', `/apps/${created.id}/saml`, { nameIdFormat: 'transient' }, { 'if-match': 'W/"1"' });
    expect(stale.body).toMatchObject({ status: 412, code: 'app.version_mismatch' });
    expect((await userAdmin.call('PATCH', `/apps/${created.id}/saml`, { nameIdFormat: 'transient' })).status).toBe(403);
    expect((await appAdmin.call('PATCH', `/apps/${created.id}/saml`, { wantAuthnRequestsSigned: true })).body).toMatchObject({ status: 400, code: 'saml.signing_certificate_required' });
    expect((await appAdmin.call('GET', `/apps/${created.id}/saml`)).body).toMatchObject({ version: 2, nameIdFormat: 'persistent' });

    const oidc = (await appAdmin.call('POST', '/apps', { name: 'OIDC', redirectUris: ['https://o.example/cb'] })).body;
    expect((await appAdmin.call('GET', `/apps/${oidc.id}/saml`)).body).toMatchObject({ status: 400, code: 'app.not_saml' });
    expect((await appAdmin.call('PATCH', `/apps/${oidc.id}/saml`, { name: 'X' })).body).toMatchObject({ status: 400, code: 'app.not_saml' });
    expect((await appAdmin.call('GET', '/apps/7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f/saml')).status).toBe(404);
  });

  it('the generic app routes work on a SAML app: PATCH (not OIDC settings), no secret rotation, DELETE', async () => {
    const app = (await appAdmin.call('POST', '/apps/saml', { name: 'Mail', entityId: 'https://mail.example/saml', acsUrls: [{ location: 'https://mail.example/acs' }] })).body;
    const renamed = await appAdmin.call('PATCH', `/apps/${app.id}`, { name: 'Mail 2', access: 'everyone' });
    expect(renamed.body).toMatchObject({ name: 'Mail 2', access: 'everyone', saml: { entityId: 'https://mail.example/saml' } });
    expect((await appAdmin.call('PATCH', `/apps/${app.id}`, { redirectUris: ['https://x.example/cb'] })).body).toMatchObject({ status: 400, code: 'app.oidc_only_field', field: 'redirectUris' });
    expect((await appAdmin.call('POST', `/apps/${app.id}/secret`)).body).toMatchObject({ status: 400, code: 'app.saml_has_no_secret' });
    expect((await appAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'mail.reader' })).status).toBe(201);
    expect((await appAdmin.call('DELETE', `/apps/${app.id}`)).status).toBe(204);
    expect((await appAdmin.call('GET', `/apps/${app.id}`)).status).toBe(404);
    // The entity ID is free again.
    expect((await appAdmin.call('POST', '/apps/saml', { name: 'Mail', entityId: 'https://mail.example/saml', acsUrls: [{ location: 'https://mail.example/acs' }] })).status).toBe(201);
  });

  it('OpenAPI documents the routes, with the metadata XML body', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as any;
    const create = doc.paths['/apps/saml'].post;
    expect(Object.keys(create.requestBody.content)).toEqual(['application/json', 'application/samlmetadata+xml', 'application/xml', 'text/xml']);
    expect(create.requestBody.content['application/json'].schema.properties).toHaveProperty('metadataXml');
    expect(create.parameters).toContainEqual(expect.objectContaining({ name: 'name', in: 'query' }));
    expect(doc.paths['/apps/{id}/saml'].get.responses['200'].content['application/json'].schema.properties).toHaveProperty('entityId');
    expect(doc.paths['/apps/{id}/saml'].patch).toBeDefined();
    expect(doc.paths['/apps/{id}'].get.responses['200'].content['application/json'].schema.properties).toHaveProperty('saml');
  });
});

describe("a SAML app's client_id is no OIDC client", () => {
  it('an authorization request naming it gets the unknown-app error page (400), a token request invalid_client (401), never a 500', async () => {
    const app = (await appAdmin.call('POST', '/apps/saml', { name: 'Notes', entityId: 'https://notes.example/saml', acsUrls: [{ location: 'https://notes.example/acs' }], access: 'everyone' })).body;
    const auth = await fetch(`${server.url}/auth?${new URLSearchParams({
      client_id: app.clientId, response_type: 'code', scope: 'openid', redirect_uri: 'https://notes.example/acs',
      code_challenge_method: 'S256', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    })}`, { redirect: 'manual' });
    expect(auth.status).toBe(400);
    expect(auth.headers.get('location')).toBeNull();
    expect(await auth.text()).toContain('invalid_client');
    const token = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.clientId}:anything`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    expect(token.status).toBe(401);
    expect(await token.json()).toMatchObject({ error: 'invalid_client' });
  });
});
