// The browserless SAML driver (test/helpers/saml-browserless.ts) on OneID's real sign-in pages,
// before OneID speaks SAML: an OIDC authorization request stands in for the AuthnRequest, and the
// app's redirect URI answers with an auto-post page like the one OneID will send to an ACS. If
// the sign-in pages change shape, this fails here rather than in every SAML e2e test.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { samlSignIn } from '../helpers/saml-browserless.ts';

const PASSWORD = 'correct-horse-battery';
const ACS = 'https://sp.example.test/saml/acs?x=1&y=2';

let db: TestDatabase;
let server: RunningServer;
let app: { client_id: string };
let callback: http.Server;
let callbackUrl: string;

beforeAll(async () => {
  callback = http.createServer((req, res) => {
    const code = new URL(req.url!, 'http://x').searchParams.get('code') ?? '';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" action="${ACS.replace(/&/g, '&amp;')}">`
      + `<input type="hidden" name="SAMLResponse" value="${Buffer.from(`<r code="${code}"/>`).toString('base64')}">`
      + '<input type="hidden" name="RelayState" value="a&amp;b"><noscript><button>Continue</button></noscript></form></body></html>');
  });
  await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
  callbackUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/callback`;
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  expect((await runCli(['users', 'create', '--username', 'pat', '--email', 'pat@example.com', '--password', PASSWORD], env)).code).toBe(0);
  const created = await runCli(['apps', 'create', '--name', 'Stand-in', '--redirect-uri', callbackUrl, '--first-party'], env);
  expect(created.code).toBe(0);
  app = created.json;
  server = await startServer(env);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  await new Promise((resolve) => callback?.close(resolve));
});

const authorizeUrl = (): string => `${server.url}/auth?${new URLSearchParams({
  client_id: app.client_id, redirect_uri: callbackUrl, response_type: 'code', scope: 'openid', state: 'state-1',
  code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
})}`;

it('signs in through the sign-in page and returns the auto-post form; a second round uses the session', async () => {
  const first = await samlSignIn(server.url, { redirectUrl: authorizeUrl() }, { login: 'pat', password: PASSWORD });
  expect(first.signedIn).toBe(true);
  expect(first.acsUrl).toBe(ACS);
  expect(first.RelayState).toBe('a&b');
  expect(Buffer.from(first.SAMLResponse, 'base64').toString()).toMatch(/^<r code="[^"]+"\/>$/);
  expect(first.page.url.startsWith(callbackUrl)).toBe(true);

  const second = await samlSignIn(server.url, { redirectUrl: authorizeUrl() }, undefined, first.browser);
  expect(second.signedIn).toBe(false);
  expect(second.acsUrl).toBe(ACS);
});

it('stops with the page it reached when the password is wrong (no form to post)', async () => {
  await expect(samlSignIn(server.url, { redirectUrl: authorizeUrl() }, { login: 'pat', password: 'wrong-password' })).rejects.toThrow(/no SAMLResponse form at .*\/login\//);
});
