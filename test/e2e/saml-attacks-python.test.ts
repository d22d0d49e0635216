// The SP side of signature wrapping, with a strict SP nobody here wrote: Debian's
// python3-onelogin-saml2 (strict, schema-checked, through test/helpers/python-saml.ts). A person
// signs in at OneID on a port; the Response OneID issued is accepted as it is, and refused once
// wrapped the classic ways (test/helpers/saml-wrapping.ts) or with a comment in its NameID.
import { jest } from '@jest/globals';
import { webcrypto } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { pythonSp, type PythonSp } from '../helpers/python-saml.ts';
import { samlSignIn } from '../helpers/saml-browserless.ts';
import { FORGED_NAME_ID, RESPONSE_WRAPPINGS, injectCommentInNameId } from '../helpers/saml-wrapping.ts';

jest.setTimeout(120_000);

const PASSWORD = 'correct-horse-battery';
const ACS = 'http://127.0.0.1:9/acs';
/** One SP wants the Response and the Assertion signed (python-saml's strict defaults); one only the Assertion. */
const BOTH = 'https://py-both.example.com';
const ASSERTION_ONLY = 'https://py-assertion.example.com';

let db: TestDatabase;
let server: RunningServer;
let sql: pg.Client;
const sps: Record<string, PythonSp> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const users = await Promise.all([
    runCli(['users', 'create', '--username', 'alice', '--email', 'alice@example.com', '--password', PASSWORD], env),
    runCli(['users', 'create', '--username', 'mallory', '--email', 'alice@example.com.evil.test', '--password', PASSWORD], env),
  ]);
  for (const u of users) expect(u.code).toBe(0);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  server = await startServer(env);
  for (const [entityId, signResponse] of [[BOTH, true], [ASSERTION_ONLY, false]] as const) {
    const id = webcrypto.randomUUID();
    await sql.query("insert into apps (id, name, protocol, client_id, oidc, access) values ($1, $2, 'saml', $3, '{}', 'everyone')", [id, entityId, `saml-${id}`]);
    await sql.query(`insert into saml_service_providers (app_id, entity_id, acs_urls, sign_response, sign_assertion, name_id_format)
      values ($1, $2, $3, $4, true, 'emailAddress')`, [id, entityId, JSON.stringify([{ location: ACS, binding: 'post', index: 0, isDefault: true }]), signResponse]);
  }
  const metadata = await (await fetch(`${server.url}/saml/metadata`)).text();
  const idpCert = /<ds:X509Certificate>([^<]+)<\/ds:X509Certificate>/.exec(metadata)![1]!;
  sps[BOTH] = pythonSp({ baseUrl: server.url, entityId: BOTH, acsUrl: ACS, idpCertificates: [idpCert] });
  sps[ASSERTION_ONLY] = pythonSp({ baseUrl: server.url, entityId: ASSERTION_ONLY, acsUrl: ACS, idpCertificates: [idpCert], security: { wantMessagesSigned: false } });
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

/** A Response OneID issued for `login`, after an SP-initiated sign-in by the Redirect binding. */
async function issued(entityId: string, login: string): Promise<{ xml: string; requestId: string }> {
  const request = await sps[entityId]!.login();
  const post = await samlSignIn(server.url, { redirectUrl: request.url }, { login, password: PASSWORD });
  return { xml: Buffer.from(post.SAMLResponse, 'base64').toString('utf8'), requestId: request.request_id };
}
const acs = (entityId: string, xml: string, requestId: string) => sps[entityId]!.acs(Buffer.from(xml).toString('base64'), requestId);

test.each([BOTH, ASSERTION_ONLY])('python3-saml strict (%s): the Response as issued is accepted; each wrapping is refused', async (entityId) => {
  const { xml, requestId } = await issued(entityId, 'alice');
  const honest = await acs(entityId, xml, requestId);
  expect({ ok: honest.ok, errors: honest.errors, nameId: honest.name_id }).toEqual({ ok: true, errors: [], nameId: 'alice@example.com' });
  for (const [name, wrap] of RESPONSE_WRAPPINGS) {
    const forged = wrap(xml);
    expect(forged).not.toBe(xml);
    const result = await acs(entityId, forged, requestId);
    expect({ name, ok: result.ok, nameId: result.name_id === FORGED_NAME_ID ? 'forged' : 'not forged' }).toEqual({ name, ok: false, nameId: 'not forged' });
  }
});

test('python3-saml strict: a comment injected into the NameID is refused or read whole, never cut short', async () => {
  const { xml, requestId } = await issued(ASSERTION_ONLY, 'mallory');
  const result = await acs(ASSERTION_ONLY, injectCommentInNameId(xml, 'alice@example.com.evil.test', 'alice@example.com'), requestId);
  expect(result.ok ? `accepted as ${result.name_id}` : 'refused').toMatch(/^(refused|accepted as alice@example\.com\.evil\.test)$/);
});
