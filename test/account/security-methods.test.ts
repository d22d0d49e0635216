// The security page's passkey, authenticator-app and recovery-code sections, served on a port by
// the account router alone (real PostgreSQL for people and sessions). The three strategies are
// small in-memory stand-ins with the design's signatures: their own tests (and the browser tests
// with real WebAuthn ceremonies) cover them; here what matters is what the page does with them.
import http from 'node:http';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { Browser, type Page } from '../helpers/browser.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { PasswordPolicy } from '../../src/credentials/password-policy.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { SessionsService } from '../../src/sessions/sessions.service.ts';
import { SignInThrottle } from '../../src/credentials/signin-throttle.ts';
import { PasswordStrategy } from '../../src/credentials/password.strategy.ts';
import { errorHandler } from '../../src/http/errors.ts';
import { Views } from '../../src/login/views.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { nowSeconds, type Proof } from '../../src/credentials/methods.ts';
import type { Actor } from '../../src/audit/audit.service.ts';
import { accountRouter } from '../../src/account/security.routes.ts';
import type { PasskeyInfo, PasskeyMethods, RecoveryCodeMethods, TotpMethods } from '../../src/account/methods.ts';

/** Every call a stand-in heard, with the actor, so a test can tell who was acted for. */
const heard: { call: string; userId: string; actor?: Actor; args?: unknown[] }[] = [];

class FakePasskeys implements PasskeyMethods {
  readonly keys = new Map<string, PasskeyInfo & { userId: string }>();
  readonly bindings: string[] = [];
  async isEnrolled(userId: string) {
    return [...this.keys.values()].some((k) => k.userId === userId);
  }
  async registrationOptions(binding: string, user: { id: string }) {
    this.bindings.push(binding);
    heard.push({ call: 'registrationOptions', userId: user.id });
    // Only what the page passes on to the browser; the real options come from the strategy.
    return { challenge: 'Y2hhbGxlbmdl', rp: { name: 'OneID' }, user: { id: user.id, name: user.id, displayName: user.id }, pubKeyCredParams: [] };
  }
  async register(binding: string, userId: string, response: unknown, name: string | undefined, actor: Actor) {
    heard.push({ call: 'register', userId, actor, args: [binding, response, name] });
    if ((response as { ok?: boolean }).ok !== true) return { ok: false as const, reason: 'verification_failed' };
    const passkey = { id: crypto.randomUUID(), name: name ?? 'Passkey', createdAt: new Date(), lastUsedAt: null, synced: true };
    this.keys.set(passkey.id, { ...passkey, userId });
    return { ok: true as const, passkey, proof: { method: 'passkey' as const, at: nowSeconds(), amr: ['swk'] } };
  }
  async list(userId: string) { return [...this.keys.values()].filter((k) => k.userId === userId); }
  async rename(userId: string, id: string, name: string, actor: Actor) {
    heard.push({ call: 'rename', userId, actor });
    const key = this.keys.get(id);
    if (!key || key.userId !== userId) return false;
    key.name = name;
    return true;
  }
  async remove(userId: string, id: string, actor: Actor) {
    heard.push({ call: 'remove', userId, actor });
    const key = this.keys.get(id);
    if (!key || key.userId !== userId) return false;
    return this.keys.delete(id);
  }
}

class FakeTotp implements TotpMethods {
  readonly enrolled = new Set<string>();
  begun = 0;
  async isEnrolled(userId: string) { return this.enrolled.has(userId); }
  async beginEnrolment(userId: string) {
    this.begun += 1;
    heard.push({ call: 'beginEnrolment', userId });
    return { secret: `SECRET${this.begun}`, otpauthUri: 'otpauth://totp/OneID', qrSvg: '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>' };
  }
  async confirmEnrolment(userId: string, code: string, actor: Actor) {
    heard.push({ call: 'confirmEnrolment', userId, actor });
    if (code !== '123456') return { ok: false as const, reason: 'wrong_code' };
    this.enrolled.add(userId);
    return { ok: true as const, proof: { method: 'totp' as const, at: nowSeconds(), amr: ['otp'] } };
  }
  async verify() { return { ok: false as const, reason: 'unused' }; }
  async remove(userId: string, actor: Actor) {
    heard.push({ call: 'removeTotp', userId, actor });
    return this.enrolled.delete(userId);
  }
}

class FakeRecoveryCodes implements RecoveryCodeMethods {
  readonly codes = new Map<string, string[]>();
  generations = 0;
  async isEnrolled(userId: string) { return (this.codes.get(userId)?.length ?? 0) > 0; }
  async generate(userId: string, actor: Actor) {
    this.generations += 1;
    heard.push({ call: 'generate', userId, actor });
    const codes = Array.from({ length: 10 }, (_, i) => `code-${this.generations}-${i}`);
    this.codes.set(userId, codes);
    return codes;
  }
  async remaining(userId: string) { return this.codes.get(userId)?.length ?? 0; }
}

let database: MigratedDatabase;
let server: http.Server;
let base: string;
let users: UsersService;
let sessions: SessionsService;
const passkeys = new FakePasskeys();
const totp = new FakeTotp();
const recoveryCodes = new FakeRecoveryCodes();

beforeAll(async () => {
  database = await createMigratedDatabase();
  const { db } = database;
  const hasher = new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
  users = new UsersService(db, hasher);
  sessions = new SessionsService(db, { ttlSeconds: 3600 });
  const views = new Views(false);
  const app = new Koa({ keys: ['test-cookie-key'] });
  app.use(errorHandler(createLogger('silent'), views));
  app.use(accountRouter({
    db, views, sessions, users, passwords: new PasswordStrategy(db, hasher), passwordPolicy: new PasswordPolicy(8), throttle: new SignInThrottle(db), maxBodyBytes: 100 * 1024, secureCookies: false,
    passkeys, totp, recoveryCodes,
  }).routes());
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await database?.close();
});

let counter = 0;
/**
 * A browser signed in as a new person. `level: 'mfa'` signs in with a second factor too, as
 * someone who has one must before managing their methods (see the step-up tests).
 */
async function signedIn(level: 'password' | 'mfa' = 'mfa'): Promise<{ browser: Browser; userId: string; sessionId: string }> {
  counter += 1;
  const user = await users.createUser({ username: `member${counter}`, password: 'first-password-1' });
  const proofs: Proof[] = [{ method: 'password', at: nowSeconds(), amr: ['pwd'] }];
  if (level === 'mfa') proofs.push({ method: 'totp', at: nowSeconds(), amr: ['otp'] });
  const { session, token } = await sessions.start(user.id, proofs, { ip: '192.0.2.1', userAgent: 'test' }, { type: 'user', id: user.id });
  const browser = new Browser();
  browser.cookies.set(new URL(base).host, new Map([['oneid.sso', token]]));
  return { browser, userId: user.id, sessionId: session.id };
}

const page = (browser: Browser): Promise<Page> => browser.navigate(`${base}/account/security`);
const csrfOf = (p: Page): string => /<meta name="csrf-token" content="([^"]+)">/.exec(p.html)![1]!;

async function json(browser: Browser, path: string, body: unknown, csrf?: string): Promise<{ status: number; body: any }> {
  // As the passkey script's fetch sends it: the browser's cookies, a JSON body, the token in a header.
  const jar = browser.cookies.get(new URL(base).host) ?? new Map<string, string>();
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json', accept: 'application/json', cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
      ...(csrf ? { 'x-csrf-token': csrf } : {}),
    },
    body: JSON.stringify(body),
    redirect: 'manual',
  });
  // As a browser does with a fetch's answer: a new session cookie (a step-up) replaces the old one.
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const eq = pair!.indexOf('=');
    jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
  }
  browser.cookies.set(new URL(base).host, jar);
  return { status: res.status, body: await res.json() };
}

describe('passkeys on /account/security', () => {
  it('offers the add button with the passkey script contract', async () => {
    const { browser } = await signedIn();
    const shown = await page(browser);
    expect(shown.html).toMatch(/<button type="button" id="passkey-register" data-passkey="register"\s+data-options-url="\/account\/security\/passkeys\/options" data-verify-url="\/account\/security\/passkeys">/);
    expect(shown.html).toContain('data-passkey-error');
    expect(shown.html).toContain('<script src="/assets/webauthn.js"></script>');
    expect(shown.html).toContain('<script src="/assets/passkey.js"></script>');
    expect(shown.html).toContain('You have no passkeys yet.');
  });

  it('registers through the JSON endpoints bound to this session, with the CSRF header required', async () => {
    const { browser, userId, sessionId } = await signedIn();
    const csrf = csrfOf(await page(browser));
    expect((await json(browser, '/account/security/passkeys/options', {})).status).toBe(403);
    const options = await json(browser, '/account/security/passkeys/options', {}, csrf);
    expect(options.status).toBe(200);
    expect(options.body.challenge).toBe('Y2hhbGxlbmdl');
    expect(passkeys.bindings.at(-1)).toBe(sessionId);

    const refused = await json(browser, '/account/security/passkeys', { response: { ok: false } }, csrf);
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'verification_failed', message: 'The passkey could not be added. Try again.' });

    const done = await json(browser, '/account/security/passkeys', { response: { ok: true }, name: 'Work laptop' }, csrf);
    expect(done).toEqual({ status: 200, body: { redirect: '/account/security?done=passkey_added' } });
    const registered = heard.filter((h) => h.call === 'register').at(-1)!;
    expect(registered.args?.[0]).toBe(sessionId);
    expect(registered.actor).toMatchObject({ type: 'user', id: userId });

    const shown = await browser.navigate(`${base}${done.body.redirect}`);
    expect(shown.html).toContain('Your passkey has been added.');
    expect(shown.html).toContain('Work laptop');
    expect(shown.html).toContain('Synced across your devices');
  });

  it('answers a JSON request without a session with 401 JSON', async () => {
    const anonymous = new Browser();
    const res = await json(anonymous, '/account/security/passkeys/options', {});
    expect(res).toEqual({ status: 401, body: { error: 'unauthenticated', message: 'sign in again' } });
  });

  it('renames and removes the person\'s own passkey; another person\'s id changes nothing', async () => {
    const me = await signedIn();
    const other = await signedIn();
    const mine = (await passkeys.register(me.sessionId, me.userId, { ok: true }, 'Phone', { type: 'user', id: me.userId }) as { passkey: PasskeyInfo }).passkey;
    const theirs = (await passkeys.register(other.sessionId, other.userId, { ok: true }, 'Theirs', { type: 'user', id: other.userId }) as { passkey: PasskeyInfo }).passkey;
    const shown = await page(me.browser);
    const renamed = await me.browser.submit(shown, `/passkeys/${mine.id}/rename`, { name: 'My phone' });
    expect(renamed.url).toBe(`${base}/account/security?done=passkey_renamed`);
    expect(renamed.html).toContain('My phone');

    const csrf = csrfOf(renamed);
    const foreign = await me.browser.request(`${base}/account/security/passkeys/${theirs.id}/delete`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) });
    expect(foreign.status).toBe(404);
    expect(passkeys.keys.has(theirs.id)).toBe(true);
    const blank = await me.browser.request(`${base}/account/security/passkeys/${mine.id}/rename`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf, name: '   ' }) });
    expect(blank.status).toBe(400);
    expect(await blank.text()).toContain('A passkey name has 1 to 64 characters.');
    const noCsrf = await me.browser.request(`${base}/account/security/passkeys/${mine.id}/delete`, { method: 'POST', body: new URLSearchParams({}) });
    expect(noCsrf.status).toBe(403);
    expect(passkeys.keys.has(mine.id)).toBe(true);

    const removed = await me.browser.submit(renamed, `/passkeys/${mine.id}/delete`, {});
    expect(removed.url).toBe(`${base}/account/security?done=passkey_removed`);
    expect(passkeys.keys.has(mine.id)).toBe(false);
  });
});

describe('authenticator app and recovery codes on /account/security', () => {
  it('sets up the app: QR as an image, manual key, a wrong code refused (400), the right one shows recovery codes once', async () => {
    const { browser, userId } = await signedIn();
    const shown = await page(browser);
    expect(shown.html).toContain('No authenticator app is set up.');
    const setup = await browser.submit(shown, '/totp/setup', {});
    expect(setup.status).toBe(200);
    expect(setup.html).toContain('<code id="totp-secret">SECRET');
    // The strategy's SVG goes in as a data: image, never as markup in the page.
    expect(setup.html).toMatch(/<img src="data:image\/svg\+xml;base64,[A-Za-z0-9+/=]+"/);
    expect(setup.html).not.toContain('<script>alert(1)</script>');

    const wrong = await browser.submit(setup, '/totp/confirm', { code: '000000' });
    expect(wrong.status).toBe(400);
    expect(wrong.html).toContain('That code is not right.');
    expect(totp.enrolled.has(userId)).toBe(false);

    const confirmed = await browser.submit(wrong, '/totp/confirm', { code: '123 456' });
    expect(confirmed.status).toBe(200);
    const codes = [...confirmed.html.matchAll(/<code class="recovery-code">([^<]+)<\/code>/g)].map((m) => m[1]);
    expect(codes).toHaveLength(10);
    expect(totp.enrolled.has(userId)).toBe(true);
    expect(heard.filter((h) => h.call === 'confirmEnrolment' && h.userId === userId).every((h) => h.actor?.id === userId)).toBe(true);

    // Shown once: the page afterwards has the count, not the codes.
    const after = await page(browser);
    expect(after.html).toContain('An authenticator app is set up.');
    expect(after.html).toContain('Unused recovery codes: 10');
    expect(after.html).not.toContain(codes[0]);
  });

  it('does not replace existing recovery codes when the app is set up again', async () => {
    const { browser, userId } = await signedIn();
    await recoveryCodes.generate(userId, { type: 'user', id: userId });
    const setup = await browser.submit(await page(browser), '/totp/setup', {});
    const confirmed = await browser.submit(setup, '/totp/confirm', { code: '123456' });
    expect(confirmed.url).toBe(`${base}/account/security?done=totp_added`);
    expect(confirmed.html).not.toContain('class="recovery-code"');
  });

  it('removes the app, and regenerates recovery codes showing the new ones', async () => {
    const { browser, userId } = await signedIn();
    totp.enrolled.add(userId);
    const removed = await browser.submit(await page(browser), '/totp/remove', {});
    expect(removed.url).toBe(`${base}/account/security?done=totp_removed`);
    expect(totp.enrolled.has(userId)).toBe(false);

    const first = await browser.submit(removed, '/recovery-codes', {});
    const again = await browser.submit(await page(browser), '/recovery-codes', {});
    const codesOf = (p: Page) => [...p.html.matchAll(/<code class="recovery-code">([^<]+)<\/code>/g)].map((m) => m[1]);
    expect(codesOf(again)).toHaveLength(10);
    expect(codesOf(again)).not.toEqual(codesOf(first));
    expect(again.html).toContain('they are shown only once');
  });

  it('speaks Simplified Chinese on the set-up step', async () => {
    const { browser } = await signedIn();
    browser.acceptLanguage = 'zh-CN';
    const setup = await browser.submit(await page(browser), '/totp/setup', {});
    expect(setup.html).toContain('用身份验证器应用扫描此二维码');
  });
});

describe('a password-only session of someone who has a second factor', () => {
  it('is sent to confirm the second factor before the page, and its JSON calls are refused: nothing changes', async () => {
    const { browser, userId, sessionId } = await signedIn('password');
    // Without a second factor the password is enough to set one up.
    const before = await page(browser);
    expect(before.status).toBe(200);
    totp.enrolled.add(userId);
    const stepUp = await browser.request(`${base}/account/security`);
    expect(stepUp.status).toBe(303);
    expect(stepUp.headers.get('location')).toBe('/login/start?return_to=%2Faccount%2Fsecurity&policy=mfa');
    const csrf = csrfOf(before);
    const options = await json(browser, '/account/security/passkeys/options', {}, csrf);
    expect(options.status).toBe(401);
    expect(options.body.error).toBe('step_up_required');
    const remove = await browser.request(`${base}/account/security/totp/remove`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) });
    expect(remove.status).toBe(303);
    expect(totp.enrolled.has(userId)).toBe(true);
    expect(heard.filter((h) => h.userId === userId && h.call === 'registrationOptions')).toEqual([]);
    expect(sessionId).toBeTruthy();
  });
});
