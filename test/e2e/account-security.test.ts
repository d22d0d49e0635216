// Black-box: the security page at /account/security against a server on a port. A OneID session
// is made the way a sign-in makes it (SessionsService.start) and its token put in a test browser's
// oneid.sso cookie; everything else goes through the page's forms.
import { createHmac } from 'node:crypto';
import type { Knex } from 'knex';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, type Page } from '../helpers/browser.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { SessionsService } from '../../src/sessions/sessions.service.ts';
import { PasswordStrategy } from '../../src/credentials/password.strategy.ts';
import { nowSeconds } from '../../src/credentials/methods.ts';
import { SoftAuthenticator } from '../helpers/soft-authenticator.ts';

const PASSWORD = 'first-password-1';
const SIGN_IN = '/login/start?return_to=%2Faccount%2Fsecurity';

let database: MigratedDatabase;
let db: Knex;
let server: RunningServer;
let users: UsersService;
let sessions: SessionsService;
let passwords: PasswordStrategy;

beforeAll(async () => {
  database = await createMigratedDatabase();
  db = database.db;
  server = await startServer({ DATABASE_URL: database.database.url, ONEID_MASTER_KEY: testMasterKey(), PASSWORD_MIN_LENGTH: '10' });
  const hasher = new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
  users = new UsersService(db, hasher);
  passwords = new PasswordStrategy(db, hasher);
  sessions = new SessionsService(db, { ttlSeconds: 3600 });
}, 120000);

afterAll(async () => {
  if (process.env.DEBUG_SERVER) console.log(server?.output().slice(-3000));
  await server?.stop();
  await database?.close();
});

let counter = 0;
async function newPerson(): Promise<{ id: string; username: string }> {
  counter += 1;
  const user = await users.createUser({ username: `person${counter}`, password: PASSWORD, name: `Person ${counter}` });
  return { id: user.id, username: user.username };
}

/** A browser signed in as `userId`: a session started as a password sign-in would, its token in the cookie. */
async function signedInBrowser(userId: string, userAgent = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0'): Promise<{ browser: Browser; sessionId: string }> {
  const { session, token } = await sessions.start(userId, [{ method: 'password', at: nowSeconds(), amr: ['pwd'] }], { ip: '192.0.2.7', userAgent }, { type: 'user', id: userId });
  const browser = new Browser();
  browser.cookies.set(new URL(server.url).host, new Map([['oneid.sso', token]]));
  return { browser, sessionId: session.id };
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** The authenticator app's current code for a key shown on the page (RFC 6238: HMAC-SHA-1, 30 s, six digits). */
function totpNow(secret: string): string {
  let bits = '';
  for (const c of secret.replace(/[\s=]+/g, '').toUpperCase()) bits += BASE32.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(Array.from({ length: Math.floor(bits.length / 8) }, (_, i) => parseInt(bits.slice(i * 8, i * 8 + 8), 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[19]! & 0xf;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, '0');
}

const page = (browser: Browser): Promise<Page> => browser.navigate(`${server.url}/account/security`);
const liveSessionIds = async (userId: string): Promise<string[]> => (await sessions.listForUser(userId)).map((s) => s.id).sort();
const auditActions = async (userId: string): Promise<string[]> =>
  (await db('audit_events').where({ actor_id: userId }).orderBy('seq').select('action')).map((r: { action: string }) => r.action);

describe('GET /account/security', () => {
  it('sends a browser without a session to the sign-in (303), and one with an unknown token too', async () => {
    const anonymous = new Browser();
    const res = await anonymous.request(`${server.url}/account/security`);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(SIGN_IN);

    const forged = new Browser();
    forged.cookies.set(new URL(server.url).host, new Map([['oneid.sso', 'not-a-session-token']]));
    const again = await forged.request(`${server.url}/account/security`);
    expect(again.status).toBe(303);
    expect(again.headers.get('location')).toBe(SIGN_IN);
    const post = await forged.request(`${server.url}/account/security/sessions/end-all`, { method: 'POST', body: new URLSearchParams({ _csrf: 'x' }) });
    expect(post.status).toBe(303);
    expect(post.headers.get('location')).toBe(SIGN_IN);
  });

  it('brings a browser through OneID\'s sign-in and back to the page, signed in', async () => {
    const person = await newPerson();
    const browser = new Browser();
    const signIn = await browser.navigate(`${server.url}/account/security`);
    expect(new URL(signIn.url).pathname).toMatch(/^\/login\/[0-9a-f-]+$/);
    const back = await browser.submit(signIn, '/password', { login: person.username, password: PASSWORD });
    expect(back.status).toBe(200);
    expect(new URL(back.url).pathname).toBe('/account/security');
    expect(back.html).toContain('data-current="true"');
    expect(await liveSessionIds(person.id)).toHaveLength(1);
  });

  it('shows the person, their sessions with this device marked, and is not cached', async () => {
    const person = await newPerson();
    const { browser, sessionId } = await signedInBrowser(person.id);
    const other = await signedInBrowser(person.id, 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Mobile/15E148 Safari/604.1');
    const shown = await page(browser);
    expect(shown.status).toBe(200);
    expect(shown.headers.get('cache-control')).toBe('no-store');
    expect(shown.html).toContain(`Person ${counter}`);
    expect(shown.html).toMatch(new RegExp(`data-session-id="${sessionId}" data-current="true"`));
    expect(shown.html).toMatch(new RegExp(`data-session-id="${other.sessionId}">`));
    expect(shown.html).toContain('Firefox on Windows');
    expect(shown.html).toContain('Safari on iOS');
    expect(shown.html).toContain('192.0.2.7');
    expect(shown.html).toContain('This device');
    expect((shown.html.match(/class="item session"/g) ?? []).length).toBe(2);
  });

  it('speaks Simplified Chinese to a zh-CN browser', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    browser.acceptLanguage = 'zh-CN,zh;q=0.9';
    const shown = await page(browser);
    expect(shown.html).toContain('安全设置');
    expect(shown.html).toContain('当前设备');
  });
});

describe('POST /account/security/password', () => {
  it('changes the password: the old one stops working, this session stays, the person\'s other session ends', async () => {
    const person = await newPerson();
    const { browser, sessionId } = await signedInBrowser(person.id);
    const other = await signedInBrowser(person.id);
    const done = await browser.submit(await page(browser), '/password', { current_password: PASSWORD, new_password: 'correct horse battery staple', confirm_password: 'correct horse battery staple' });
    expect(done.status).toBe(200);
    expect(done.url).toBe(`${server.url}/account/security?done=password`);
    expect(done.html).toContain('Your password has been changed');

    expect(await passwords.authenticate(person.username, PASSWORD)).toBeUndefined();
    expect((await passwords.authenticate(person.username, 'correct horse battery staple'))?.id).toBe(person.id);
    // This browser is still signed in; the other one is sent to the sign-in.
    expect((await page(browser)).status).toBe(200);
    const otherRes = await other.browser.request(`${server.url}/account/security`);
    expect(otherRes.status).toBe(303);
    expect(await liveSessionIds(person.id)).toEqual([sessionId]);

    const actions = await auditActions(person.id);
    expect(actions).toContain('user.updated');
    expect(actions).toContain('sessions.ended');
    const updated = await db('audit_events').where({ actor_id: person.id, action: 'user.updated' }).first('changes');
    expect(updated.changes).toMatchObject({ passwordChanged: true, keptSessionId: sessionId });
    expect(JSON.stringify(updated.changes)).not.toContain('correct horse');
  });

  it.each([
    ['en', 'too short', 'short-1', 'The new password must have at least 10 characters.'],
    ['zh-CN', 'too short', 'short-1', '新密码至少需要 10 个字符。'],
    ['en', 'too common', 'Password123', 'This password is too common'],
    ['zh-CN', 'too common', 'iloveyou12', '此密码过于常见'],
    ['en', 'wrong current password', 'a fine new password', 'The current password is incorrect.'],
    ['zh-CN', 'wrong current password', 'a fine new password', '当前密码不正确。'],
  ])('answers 400 in %s (%s) and changes nothing', async (language, reason, next, message) => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const other = await signedInBrowser(person.id);
    browser.acceptLanguage = language;
    const current = reason === 'wrong current password' ? 'not-my-password' : PASSWORD;
    const res = await browser.submit(await page(browser), '/password', { current_password: current, new_password: next, confirm_password: next });
    expect(res.status).toBe(400);
    expect(res.html).toContain(message);
    expect(res.headers.get('content-language')).toBe(language);
    expect((await passwords.authenticate(person.username, PASSWORD))?.id).toBe(person.id);
    expect((await liveSessionIds(person.id)).length).toBe(2);
    expect((await other.browser.request(`${server.url}/account/security`)).status).toBe(200);
    if (reason === 'wrong current password') expect(await auditActions(person.id)).toContain('user.password_change_refused');
  });

  it('counts wrong current passwords as failed sign-ins: past the limit even the right one is refused (429)', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    let shown = await page(browser);
    for (let i = 0; i < 10; i += 1) {
      shown = await browser.submit(shown, '/password', { current_password: `guess-${i}`, new_password: 'a fine new password', confirm_password: 'a fine new password' });
      expect(shown.status).toBe(400);
    }
    const locked = await browser.submit(shown, '/password', { current_password: PASSWORD, new_password: 'a fine new password', confirm_password: 'a fine new password' });
    expect(locked.status).toBe(429);
    expect(locked.html).toContain('Too many wrong passwords.');
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await passwords.authenticate(person.username, 'a fine new password')).toBeUndefined();
  });

  it('answers 400 when the two new passwords differ', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const res = await browser.submit(await page(browser), '/password', { current_password: PASSWORD, new_password: 'a fine new password', confirm_password: 'a fine new passw0rd' });
    expect(res.status).toBe(400);
    expect(res.html).toContain('The two new passwords do not match.');
    expect((await passwords.authenticate(person.username, PASSWORD))?.id).toBe(person.id);
  });

  it('refuses a form without the CSRF token: nothing changes', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    await page(browser);
    const res = await browser.request(`${server.url}/account/security/password`, {
      method: 'POST', body: new URLSearchParams({ current_password: PASSWORD, new_password: 'a fine new password', confirm_password: 'a fine new password' }),
    });
    expect(res.status).toBe(403);
    expect((await passwords.authenticate(person.username, PASSWORD))?.id).toBe(person.id);
    expect(await auditActions(person.id)).not.toContain('user.updated');
    // The refusal itself is recorded, with the person and the form.
    const refused = await db('audit_events').where({ actor_id: person.id, action: 'csrf.refused' }).select('target_id');
    expect(refused.map((r: { target_id: string }) => r.target_id)).toEqual(['/account/security/password']);
  });
});

describe('POST /account/security/sessions', () => {
  it('signs out one other session of the person, audited', async () => {
    const person = await newPerson();
    const { browser, sessionId } = await signedInBrowser(person.id);
    const other = await signedInBrowser(person.id);
    const shown = await page(browser);
    const done = await browser.submit(shown, `/sessions/${other.sessionId}/end`, {});
    expect(done.url).toBe(`${server.url}/account/security?done=session_ended`);
    expect(await liveSessionIds(person.id)).toEqual([sessionId]);
    expect((await other.browser.request(`${server.url}/account/security`)).status).toBe(303);
    expect(await auditActions(person.id)).toContain('session.ended');
  });

  it('leaves another person\'s session alone when its id is sent', async () => {
    const person = await newPerson();
    const stranger = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const theirs = await signedInBrowser(stranger.id);
    const shown = await page(browser);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(shown.html)![1]!;
    const res = await browser.request(`${server.url}/account/security/sessions/${theirs.sessionId}/end`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/account/security');
    expect(await liveSessionIds(stranger.id)).toEqual([theirs.sessionId]);
    expect((await theirs.browser.request(`${server.url}/account/security`)).status).toBe(200);
    // Not a session id at all: no error page, nothing ended.
    const odd = await browser.request(`${server.url}/account/security/sessions/'%20or%201=1/end`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) });
    expect(odd.status).toBe(303);
    expect((await liveSessionIds(person.id)).length).toBe(1);
  });

  it('signs out this browser from its own row: it meets the sign-in, the other session stays', async () => {
    const person = await newPerson();
    const { browser, sessionId } = await signedInBrowser(person.id);
    const other = await signedInBrowser(person.id);
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await page(browser)).html)![1]!;
    const res = await browser.request(`${server.url}/account/security/sessions/${sessionId}/end`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(SIGN_IN);
    expect(browser.cookies.get(new URL(server.url).host)?.has('oneid.sso')).toBe(false);
    expect(await liveSessionIds(person.id)).toEqual([other.sessionId]);
  });

  it('signs out everywhere, this browser included, which then meets the sign-in', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    await signedInBrowser(person.id);
    const shown = await page(browser);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(shown.html)![1]!;
    const res = await browser.request(`${server.url}/account/security/sessions/end-all`, { method: 'POST', body: new URLSearchParams({ _csrf: csrf }) });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(SIGN_IN);
    expect(await liveSessionIds(person.id)).toEqual([]);
    expect((await browser.request(`${server.url}/account/security`)).headers.get('location')).toBe(SIGN_IN);
    expect(await auditActions(person.id)).toContain('sessions.ended');
  });

  it('refuses sign-out without the CSRF token: every session stays', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const other = await signedInBrowser(person.id);
    await page(browser);
    const one = await browser.request(`${server.url}/account/security/sessions/${other.sessionId}/end`, { method: 'POST', body: new URLSearchParams({}) });
    const all = await browser.request(`${server.url}/account/security/sessions/end-all`, { method: 'POST', body: new URLSearchParams({ _csrf: 'forged' }) });
    expect(one.status).toBe(403);
    expect(all.status).toBe(403);
    expect((await liveSessionIds(person.id)).length).toBe(2);
  });
});

describe('authenticator app and recovery codes (the real strategies)', () => {
  it('sets up the app from the page, shows ten recovery codes once, regenerates them, removes the app: each step audited', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const setup = await browser.submit(await page(browser), '/totp/setup', {});
    expect(setup.status).toBe(200);
    const secret = /<code id="totp-secret">([^<]+)<\/code>/.exec(setup.html)![1]!;
    expect(setup.html).toMatch(/<img src="data:image\/svg\+xml;base64,/);

    const wrong = await browser.submit(setup, '/totp/confirm', { code: totpNow(secret) === '000000' ? '111111' : '000000' });
    expect(wrong.status).toBe(400);
    const newSecret = /<code id="totp-secret">([^<]+)<\/code>/.exec(wrong.html)![1]!;
    const confirmed = await browser.submit(wrong, '/totp/confirm', { code: totpNow(newSecret) });
    expect(confirmed.status).toBe(200);
    const codes = [...confirmed.html.matchAll(/<code class="recovery-code">([^<]+)<\/code>/g)].map((m) => m[1]!);
    expect(codes).toHaveLength(10);

    const after = await page(browser);
    expect(after.html).toContain('An authenticator app is set up.');
    expect(after.html).toContain('Unused recovery codes: 10');
    expect(after.html).not.toContain(codes[0]);

    const regenerated = await browser.submit(after, '/recovery-codes', {});
    const fresh = [...regenerated.html.matchAll(/<code class="recovery-code">([^<]+)<\/code>/g)].map((m) => m[1]!);
    expect(fresh).toHaveLength(10);
    expect(fresh.some((c) => codes.includes(c))).toBe(false);

    const removed = await browser.submit(await page(browser), '/totp/remove', {});
    expect(removed.url).toBe(`${server.url}/account/security?done=totp_removed`);
    expect(removed.html).toContain('No authenticator app is set up.');
    const actions = await auditActions(person.id);
    expect(actions.filter((a) => a === 'recovery_codes.generated')).toHaveLength(2);
    expect(actions).toEqual(expect.arrayContaining(['totp.enrolled', 'totp.removed']));
  });

  it('lists no passkeys for a new person and offers the add button', async () => {
    const person = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const shown = await page(browser);
    expect(shown.html).toContain('You have no passkeys yet.');
    expect(shown.html).toContain('id="passkey-register" data-passkey="register"');
    expect(shown.html).toMatch(/<meta name="csrf-token" content="[^"]+">/);
  });
});

describe('passkeys (the real strategy, a software authenticator in place of the browser)', () => {
  /** What /assets/passkey.js sends: the browser's cookies, JSON, the page's CSRF token in x-csrf-token. */
  async function postJson(browser: Browser, path: string, body: unknown, csrf?: string): Promise<{ status: number; body: any }> {
    const jar = browser.cookies.get(new URL(server.url).host)!;
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST', redirect: 'manual', body: JSON.stringify(body),
      headers: {
        'content-type': 'application/json', accept: 'application/json', cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(csrf ? { 'x-csrf-token': csrf } : {}),
      },
    });
    // As a browser does with a fetch's answer: a new session cookie (the step-up a passkey set up
    // here makes) replaces the old one.
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
    return { status: res.status, body: await res.json() };
  }
  const csrfOf = (p: Page): string => /<meta name="csrf-token" content="([^"]+)">/.exec(p.html)![1]!;

  it('adds a passkey from the page, lists, renames and removes it; another person cannot touch it; audited', async () => {
    const person = await newPerson();
    const stranger = await newPerson();
    const { browser } = await signedInBrowser(person.id);
    const csrf = csrfOf(await page(browser));
    const authenticator = new SoftAuthenticator({ origin: server.url, synced: true });

    expect((await postJson(browser, '/account/security/passkeys/options', {})).status).toBe(403);
    const options = await postJson(browser, '/account/security/passkeys/options', {}, csrf);
    expect(options.status).toBe(200);
    const garbage = await postJson(browser, '/account/security/passkeys', { response: { id: 'x' } }, csrf);
    expect(garbage.status).toBe(400);
    expect(garbage.body.message).toBe('The passkey could not be added. Try again.');
    const done = await postJson(browser, '/account/security/passkeys', { response: authenticator.register(options.body), name: 'Work laptop' }, csrf);
    expect(done).toEqual({ status: 200, body: { redirect: '/account/security?done=passkey_added' } });

    const listed = await browser.navigate(`${server.url}${done.body.redirect}`);
    expect(listed.html).toContain('Your passkey has been added.');
    expect(listed.html).toContain('Work laptop');
    expect(listed.html).toContain('Synced across your devices');
    const id = /data-passkey-id="([^"]+)"/.exec(listed.html)![1]!;

    const theirs = await signedInBrowser(stranger.id);
    const theirCsrf = csrfOf(await page(theirs.browser));
    const foreign = await theirs.browser.request(`${server.url}/account/security/passkeys/${id}/delete`, { method: 'POST', body: new URLSearchParams({ _csrf: theirCsrf }) });
    expect(foreign.status).toBe(404);

    const renamed = await browser.submit(listed, `/passkeys/${id}/rename`, { name: 'My phone' });
    expect(renamed.html).toContain('My phone');
    const removed = await browser.submit(renamed, `/passkeys/${id}/delete`, {});
    expect(removed.url).toBe(`${server.url}/account/security?done=passkey_removed`);
    expect(removed.html).toContain('You have no passkeys yet.');
    expect(await auditActions(person.id)).toEqual(expect.arrayContaining(['passkey.registered', 'passkey.renamed', 'passkey.removed']));
  });
});
