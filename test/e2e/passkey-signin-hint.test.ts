// Black-box: a passkey sign-in at an app, over HTTP with a software authenticator (no browser):
// discoverable (the passkey says whose it is) and username-first (the name typed before asking
// for options limits the sign-in to that person). A name typed and then taken back must not keep
// limiting the flow, and a passkey of someone other than the named person is refused.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';
import { SoftAuthenticator } from '../helpers/soft-authenticator.ts';
import { createDb } from '../../src/db/knex.ts';
import { loadConfig } from '../../src/config.ts';
import { createServices } from '../../src/services.ts';
import type { Knex } from 'knex';

const REDIRECT = 'http://127.0.0.1:9/callback';

let db: TestDatabase;
let server: RunningServer;
let clientId: string;
const people: Record<'ada' | 'bob', { id: string; authenticator: SoftAuthenticator }> = {} as never;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const app = await runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env);
  clientId = app.json.client_id;
  server = await startServer(env);
  // Passkeys registered as the security page would, for this server's RP ID and origin.
  const config = loadConfig({ ...env, ISSUER: server.url });
  const handle = createDb(config);
  try {
    const { users, passkeys } = createServices(handle.db as Knex, config);
    for (const name of ['ada', 'bob'] as const) {
      const user = await users.createUser({ username: name, email: `${name}@example.com` });
      const authenticator = new SoftAuthenticator({ origin: server.url, synced: true });
      const options = await passkeys.registrationOptions(`setup-${name}`, { id: user.id, username: name, displayName: null });
      const result = await passkeys.register(`setup-${name}`, user.id, authenticator.register(options), undefined, { type: 'system', id: null });
      if (!result.ok) throw new Error(result.reason);
      people[name] = { id: user.id, authenticator };
    }
  } finally {
    await handle.close();
  }
}, 120000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** A browser at the sign-in page of an authorization request; the page's flow and CSRF token. */
async function atSignInPage(): Promise<{ browser: Browser; flow: string; csrf: string }> {
  const browser = new Browser();
  const auth = new URL('/auth', server.url);
  auth.search = new URLSearchParams({
    client_id: clientId, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT, state: 's1',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  }).toString();
  const page = await browser.navigate(auth.toString(), REDIRECT);
  const flow = /\/login\/([0-9a-f-]{36})$/.exec(new URL(page.url).pathname)?.[1];
  const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page.html)?.[1];
  if (!flow || !csrf) throw new Error(`not at the sign-in page: ${page.url}`);
  return { browser, flow, csrf };
}

async function postJson(b: { browser: Browser; csrf: string }, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await b.browser.request(new URL(path, server.url).toString(), {
    method: 'POST', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': b.csrf },
  });
  return { status: res.status, json: await res.json() };
}

async function signInWith(who: 'ada' | 'bob', at: Awaited<ReturnType<typeof atSignInPage>>, login?: string): Promise<{ status: number; json: any }> {
  const options = await postJson(at, `/login/${at.flow}/passkey/options`, login === undefined ? {} : { login });
  expect(options.status).toBe(200);
  // The credential is named outright: a browser offers only the allowed ones, an attacker's script need not.
  const authenticator = people[who].authenticator;
  const response = authenticator.authenticate(options.json, { credentialId: authenticator.credentials[0]!.id });
  return postJson(at, `/login/${at.flow}/passkey`, { response });
}

it('a discoverable passkey sign-in comes back to the app with a code', async () => {
  const at = await atSignInPage();
  const done = await signInWith('bob', at);
  expect(done.status).toBe(200);
  const back = await at.browser.navigate(new URL(done.json.redirect, server.url).toString(), REDIRECT);
  expect(new URL(back.url).searchParams.get('code')).toBeTruthy();
});

it('after a name is typed, a passkey of someone else is refused', async () => {
  const at = await atSignInPage();
  const refused = await signInWith('bob', at, 'ada');
  expect(refused.status).toBe(400);
  expect(refused.json.error).toBe('passkey_refused');
});

it('a name typed and then cleared no longer limits the sign-in', async () => {
  const at = await atSignInPage();
  const named = await postJson(at, `/login/${at.flow}/passkey/options`, { login: 'ada' });
  // The options never list a person's passkeys: they would tell whether the name exists.
  expect(named.json.allowCredentials ?? []).toHaveLength(0);
  const done = await signInWith('bob', at);
  expect(done.status).toBe(200);
  expect(done.json.redirect).toMatch(/^\/interaction\/[^/]+\/signed-in\?flow=/);
});
