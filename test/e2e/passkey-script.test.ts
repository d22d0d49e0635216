// The passkey page script (/assets/passkey.js) in a real browser: Debian's Chromium with a DevTools
// virtual authenticator, on a small page served with OneID's own headers (CSP included) whose JSON
// endpoints are backed by PasskeyStrategy on real PostgreSQL. The login flow's own pages are
// tested elsewhere; this checks the script's contract: the data-passkey elements, the CSRF
// header, the {login} of username-first, conditional UI aborted by the button, redirects, and
// errors shown as text.
import http from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import coBody from 'co-body';
import { pino } from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { assetsRouter } from '../../src/login/assets.routes.ts';
import { requestContext } from '../../src/http/request-context.ts';
import { PasskeyStrategy } from '../../src/credentials/passkey.strategy.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CSRF = 'csrf-token-of-this-page';
const BINDING = 'page-flow';
const alice = { id: randomUUID(), username: 'alice', displayName: 'Alice' };

let m: MigratedDatabase;
let server: http.Server;
let origin: string;
let context: BrowserContext;
let profile: string;
/** What the page sent to the options endpoints, in order, and the challenge each got. */
const optionsCalls: { path: string; body: unknown; challenge: string }[] = [];
/** Challenges of the sign-ins the server verified. */
const verified: string[] = [];
let refuseNext: string | undefined;

const pageHtml = (autofill: boolean): string => `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="csrf-token" content="${CSRF}">
<script src="/assets/webauthn.js" defer></script><script src="/assets/passkey.js" defer></script>
</head><body><form>
<input name="login" id="login" ${autofill ? 'autocomplete="username webauthn" data-passkey="autofill" data-options-url="/opts/signin" data-verify-url="/verify/signin"' : 'autocomplete="username"'}>
<button id="passkey-signin" data-passkey="signin" data-options-url="/opts/signin" data-verify-url="/verify/signin" data-login-field="#login" data-error-text="Passkey sign-in failed">Sign in with a passkey</button>
<input id="name" data-passkey-name>
<button id="passkey-register" data-passkey="register" data-options-url="/opts/register" data-verify-url="/verify/register">Create a passkey</button>
<p id="error" data-passkey-error hidden role="alert"></p>
</form></body></html>`;

function challengeOf(response: unknown): string {
  const encoded = (response as { response?: { clientDataJSON?: string } })?.response?.clientDataJSON ?? '';
  return (JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as { challenge: string }).challenge;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
  m = await createMigratedDatabase('oneid_passkey_js');
  await m.db('users').insert({ id: alice.id, username: alice.username, display_name: alice.displayName });

  const app = new Koa();
  app.use(requestContext(pino({ level: 'silent' }), 64 * 1024));
  app.use(assetsRouter().routes());
  const router = new Router();
  let passkeys: PasskeyStrategy | undefined;
  router.get('/page', (ctx) => {
    ctx.type = 'html';
    ctx.body = pageHtml(ctx.query.autofill !== 'no');
  });
  router.get('/done', (ctx) => {
    ctx.type = 'html';
    ctx.body = '<!DOCTYPE html><p>done</p>';
  });
  router.post(/^\/(opts|verify)\/(signin|register)$/, async (ctx) => {
    if (ctx.get('x-csrf-token') !== CSRF) {
      ctx.status = 403;
      ctx.body = { error: 'csrf', message: 'CSRF token missing' };
      return;
    }
    const body = (await coBody.json(ctx.req)) as Record<string, unknown>;
    const [, step, kind] = /^\/(opts|verify)\/(signin|register)$/.exec(ctx.path)!;
    if (step === 'opts') {
      const options = kind === 'register'
        ? await passkeys!.registrationOptions(BINDING, alice)
        : await passkeys!.authenticationOptions(BINDING);
      optionsCalls.push({ path: ctx.path, body, challenge: options.challenge });
      ctx.body = options;
      return;
    }
    if (kind === 'register') {
      const result = await passkeys!.register(BINDING, alice.id, body.response, body.name as string | undefined, { type: 'user', id: alice.id });
      ctx.status = result.ok ? 200 : 400;
      ctx.body = result.ok ? { redirect: `/done?registered=${result.passkey.id}` } : { error: 'passkey_failed', message: result.reason };
      return;
    }
    if (refuseNext) {
      ctx.status = 400;
      ctx.body = { error: 'passkey_failed', message: refuseNext };
      refuseNext = undefined;
      return;
    }
    const result = await passkeys!.authenticate(BINDING, body.response);
    if (result.ok) verified.push(challengeOf(body.response));
    ctx.status = result.ok ? 200 : 400;
    ctx.body = result.ok ? { redirect: `/done?user=${result.userId}` } : { error: 'passkey_failed', message: result.reason };
  });
  app.use(router.routes());
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // localhost: a secure context without TLS, and a valid RP ID.
  origin = `http://localhost:${(server.address() as AddressInfo).port}`;
  passkeys = new PasskeyStrategy(m.db, { rpId: 'localhost', rpName: 'OneID', origin, userVerification: 'preferred' });

  profile = await mkdtemp(path.join(tmpdir(), 'oneid-passkey-js-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(20000);
  // Counts the conditional (autofill) WebAuthn requests the page has handed to the browser, so a
  // test can wait until one is really pending before it lets the authenticator answer.
  await context.addInitScript(() => {
    const credentials = navigator.credentials;
    const get = credentials.get.bind(credentials);
    (window as unknown as { conditionalGets: number }).conditionalGets = 0;
    credentials.get = (options?: CredentialRequestOptions) => {
      if (options?.mediation === 'conditional') (window as unknown as { conditionalGets: number }).conditionalGets += 1;
      return get(options);
    };
  });
}, 120000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  if (profile) await rm(profile, { recursive: true, force: true });
  if (server) await new Promise((resolve) => server.close(resolve));
  await m?.close();
});

let tab: Page;
let setPresence: (present: boolean) => Promise<void>;

async function until(condition: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('/assets/passkey.js in Chromium', () => {
  it('creates a passkey with the name typed in, and follows the redirect', async () => {
    tab = context.pages()[0] ?? await context.newPage();
    const cdp = await context.newCDPSession(tab);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    setPresence = async (enabled) => { await cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled }); };
    // Registration first: no passkey yet, so the autofill request started on load waits.
    await tab.goto(`${origin}/page`);
    await tab.fill('#name', '  My laptop ');
    await tab.click('#passkey-register');
    await tab.waitForURL(/\/done\?registered=/);
    const id = new URL(tab.url()).searchParams.get('registered');
    const row = await m.db('credentials').where({ id }).first();
    expect(row).toMatchObject({ user_id: alice.id, type: 'webauthn', name: 'My laptop' });
  });

  it('signs in from the username field\'s autofill as soon as the page loads (conditional UI)', async () => {
    optionsCalls.length = 0;
    await tab.goto(`${origin}/page`);
    // The virtual authenticator answers a conditional request at once, as a person picking the
    // passkey offered under the username field would.
    await tab.waitForURL(/\/done\?user=/);
    expect(new URL(tab.url()).searchParams.get('user')).toBe(alice.id);
    expect(optionsCalls).toEqual([{ path: '/opts/signin', body: {}, challenge: verified.at(-1) }]);
  });

  it('signs in with the button (username-first), which aborts the autofill request still waiting', async () => {
    // No one touches the authenticator: the autofill request started on load stays pending.
    await setPresence(false);
    optionsCalls.length = 0;
    await tab.goto(`${origin}/page`);
    await until(() => optionsCalls.length === 1);
    // Presence comes back only once the autofill request waits at the authenticator: turned on
    // before it got there, the authenticator would answer it and sign in before the button.
    await tab.waitForFunction(() => (window as unknown as { conditionalGets: number }).conditionalGets === 1);
    await tab.fill('#login', 'alice');
    await setPresence(true);
    await tab.click('#passkey-signin');
    await until(() => optionsCalls.length === 2);
    expect(optionsCalls[1]).toMatchObject({ path: '/opts/signin', body: { login: 'alice' } });
    await tab.waitForURL(/\/done\?user=/);
    expect(new URL(tab.url()).searchParams.get('user')).toBe(alice.id);
    // The button's ceremony signed in; the aborted autofill one never reached the server.
    expect(verified.at(-1)).toBe(optionsCalls[1]!.challenge);
    expect(verified).not.toContain(optionsCalls[0]!.challenge);
  });

  it('shows the server\'s message as text in the error box, and stays on the page', async () => {
    await tab.goto(`${origin}/page?autofill=no`);
    const verifiedBefore = verified.length;
    refuseNext = 'Refused: <b id="injected">no</b>';
    await tab.click('#passkey-signin');
    await tab.locator('#error:not([hidden])').waitFor();
    expect(await tab.locator('#error').textContent()).toBe('Refused: <b id="injected">no</b>');
    expect(await tab.locator('#injected').count()).toBe(0);
    expect(new URL(tab.url()).pathname).toBe('/page');
    expect(verified).toHaveLength(verifiedBefore);
    expect(await tab.locator('#passkey-signin').isEnabled()).toBe(true);
  });

  it('sends the CSRF token: a page without it is refused with the server\'s message', async () => {
    await tab.goto(`${origin}/page?autofill=no`);
    await tab.evaluate(() => document.querySelector('meta[name="csrf-token"]')!.setAttribute('content', 'wrong'));
    await tab.click('#passkey-signin');
    await tab.locator('#error:not([hidden])').waitFor();
    expect(await tab.locator('#error').textContent()).toBe('CSRF token missing');
  });
});
