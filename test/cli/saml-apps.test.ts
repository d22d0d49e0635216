// `oneid apps create --type saml` and `oneid apps get` on a SAML app, as an operator runs them: a
// subprocess against a real database, the app as JSON, one clean line for a mistake.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { generateServiceProviderMetadata } from '@node-saml/node-saml';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, testMasterKey, type CliResult } from '../helpers/server.ts';
import { makeSpCertificate, oneloginStyleMetadata, type SpCertificate } from '../helpers/sp-certificates.ts';

let database: TestDatabase;
let env: Record<string, string>;
let sql: pg.Client;
let dir: string;
let signing: SpCertificate;

const cli = (...args: string[]) => runCli(args, env);

function expectOneCleanLine(r: CliResult, code: number): void {
  expect(r.code).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^oneid: /);
  expect(r.stderr).not.toMatch(/\bselect\b|\binsert into\b|\.ts:\d+|ZodError/);
}

const samlAppCount = async () => (await sql.query("select count(*)::int as n from apps where protocol = 'saml'")).rows[0].n as number;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_cli_saml');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  expect((await cli('migrate')).code).toBe(0);
  sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
  dir = mkdtempSync(path.join(tmpdir(), 'oneid-cli-saml-'));
  signing = makeSpCertificate('cli-sp.example');
}, 120000);

afterAll(async () => {
  await sql?.end();
  await database?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('oneid apps create --type saml', () => {
  it('registers from --entity-id and --acs-url, printing the app as `apps get` does', async () => {
    const created = await cli('apps', 'create', '--type', 'saml', '--name', 'Wiki', '--entity-id', 'https://wiki.example/saml',
      '--acs-url', 'https://wiki.example/acs', '--acs-url', 'https://wiki.example/acs2', '--slo-url', 'https://wiki.example/slo', '--name-id-format', 'persistent');
    expect(created.code).toBe(0);
    expect(created.json).toMatchObject({
      name: 'Wiki', protocol: 'saml', access: 'everyone', redirect_uris: [], grant_types: [], version: 1,
      saml: {
        entity_id: 'https://wiki.example/saml',
        acs_urls: [
          { location: 'https://wiki.example/acs', binding: 'post', index: 0, is_default: true },
          { location: 'https://wiki.example/acs2', binding: 'post', index: 1, is_default: false },
        ],
        slo_url: 'https://wiki.example/slo', slo_binding: 'redirect', name_id_format: 'persistent',
        sign_response: true, sign_assertion: true, want_authn_requests_signed: false, encrypt_assertions: false,
        signing_certificates: [], encryption_certificate: null,
      },
    });
    const got = await cli('apps', 'get', '--id', created.json.id);
    expect(got.json).toEqual(created.json);
    const { rows } = await sql.query('select actor_id from audit_events where target_id = $1 and action = $2', [created.json.id, 'app.created']);
    expect(rows[0].actor_id).toMatch(/^cli:/);
  });

  it('registers from --metadata-file (node-saml and onelogin-style), flags overriding the metadata', async () => {
    const nodeFile = path.join(dir, 'node-sp.xml');
    writeFileSync(nodeFile, generateServiceProviderMetadata({
      issuer: 'https://node.example/saml', callbackUrl: 'https://node.example/acs', privateKey: signing.keyPem, publicCerts: signing.certPem,
    }));
    const node = await cli('apps', 'create', '--type', 'saml', '--name', 'Node', '--metadata-file', nodeFile, '--name-id-format', 'transient');
    expect(node.code).toBe(0);
    expect(node.json.saml).toMatchObject({
      entity_id: 'https://node.example/saml', name_id_format: 'transient', want_authn_requests_signed: true,
      signing_certificates: [{ sha256: signing.sha256, subject: 'CN=cli-sp.example' }],
    });
    const pyFile = path.join(dir, 'py-sp.xml');
    writeFileSync(pyFile, oneloginStyleMetadata({ entityId: 'https://py.example/metadata/', acs: 'https://py.example/?acs', slo: 'https://py.example/?sls' }));
    const py = await cli('apps', 'create', '--type', 'saml', '--name', 'Py', '--metadata-file', pyFile, '--acs-url', 'https://py.example/other-acs');
    expect(py.code).toBe(0);
    expect(py.json.saml).toMatchObject({ entity_id: 'https://py.example/metadata/', slo_url: 'https://py.example/?sls', acs_urls: [{ location: 'https://py.example/other-acs' }] });
  });

  it('refuses mistakes with one line naming the flag, creating nothing', async () => {
    const before = await samlAppCount();
    const dtdFile = path.join(dir, 'xxe.xml');
    writeFileSync(dtdFile, '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>');
    const cases: [string[], number, string][] = [
      [['--metadata-file', dtdFile], 1, '--metadata-file: DTDs and entity declarations are not accepted'],
      [['--metadata-file', path.join(dir, 'missing.xml')], 2, '--metadata-file: cannot read'],
      [['--entity-id', 'https://x.example'], 2, '--type saml needs --metadata-file, or --entity-id and --acs-url'],
      [['--entity-id', 'https://x.example', '--acs-url', 'not a url'], 1, '--acs-url: must be an absolute https or http URL without a fragment'],
      [['--entity-id', 'https://x.example', '--acs-url', 'https://x.example/acs', '--name-id-format', 'email'], 2, '--name-id-format must be emailAddress, persistent, transient, unspecified'],
      [['--entity-id', 'https://x.example', '--acs-url', 'https://x.example/acs', '--redirect-uri', 'https://x.example/cb'], 2, '--redirect-uri is for OpenID Connect apps'],
      [['--entity-id', 'https://wiki.example/saml', '--acs-url', 'https://x.example/acs'], 1, '--entity-id: another app already has this SP entity ID'],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli('apps', 'create', '--type', 'saml', '--name', 'Bad', ...args);
      expectOneCleanLine(r, code);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain('root:');
    }
    const badType = await cli('apps', 'create', '--type', 'ws-fed', '--name', 'Bad');
    expectOneCleanLine(badType, 2);
    expect(badType.stderr).toContain('--type must be oidc or saml');
    const samlFlagOnOidc = await cli('apps', 'create', '--name', 'Bad', '--entity-id', 'https://x.example');
    expectOneCleanLine(samlFlagOnOidc, 2);
    expect(samlFlagOnOidc.stderr).toContain('--entity-id is for SAML apps; add --type saml');
    expect(await samlAppCount()).toBe(before);
  });

  it('leaves OIDC apps as they were: apps create prints the secret once, apps get shows saml null', async () => {
    const oidc = await cli('apps', 'create', '--name', 'OIDC', '--redirect-uri', 'https://o.example/cb');
    expect(oidc.code).toBe(0);
    expect(Object.keys(oidc.json)).toEqual(['id', 'client_id', 'client_secret']);
    expect((await cli('apps', 'get', '--id', oidc.json.id)).json).toMatchObject({ protocol: 'oidc', redirect_uris: ['https://o.example/cb'], saml: null });
  });
});
