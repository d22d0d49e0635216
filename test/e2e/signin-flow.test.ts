// Black-box: OneID's own sign-in flow (login/flow.ts) as apps and people meet it, on a port.
// openid-client is the relying party (ID token signatures checked against the JWKS); a
// cookie-keeping browser fills in the pages; authenticator codes are computed here (RFC 6238).
import { jest } from '@jest/globals';
import * as client from 'openid-client';
import pg from 'pg';
import { createHash, createHmac } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, decodeHtml, type Page } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const POST_LOGOUT = 'http://127.0.0.1:9/signed-out';
const PASSWORD = 'correct-horse-battery';
const ACR_PASSWORD = 'urn:oneid:acr:password';
const ACR_MFA = 'urn:oneid:acr:mfa';

let db: TestDatabase;
let server: RunningServer;
let env: Record<string, string>;
let sql: pg.Client;
/** An app with the default policy (password), and one whose policy is mfa. */
let passwordApp: { id: string; client_id: string; client_secret: string };
let mfaApp: { id: string; client_id: string; client_secret: string };
const people: Record<string, { id: string; username: string }> = {};
// A person's authenticator gives one code per 30 s step (each step is accepted once): a test that
// signs the same person in with several codes may wait for the next step.
jest.setTimeout(120_000);

const NAMES = ['pat', 'grace', 'hopper', 'kay', 'lin', 'mal', 'sue', 'max', 'rex', 'ty'] as const;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await Promise.all(NAMES.map((name) => runCli(['users', 'create', '--username', name, '--email', `${name}@example.com`, '--password', PASSWORD], env)));
  for (const [i, c] of created.entries()) {
    expect(c.code).toBe(0);
    people[NAMES[i]!] = c.json;
  }
  const apps = await Promise.all([
    runCli(['apps', 'create', '--name', 'Wiki', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT, '--first-party'], env),
    runCli(['apps', 'create', '--name', 'Payroll', '--redirect-uri', REDIRECT, '--first-party'], env),
  ]);
  for (const a of apps) expect(a.code).toBe(0);
  [passwordApp, mfaApp] = apps.map((a) => a.json);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  // The admin API and CLI for the policy come separately; an administrator's change is a row change.
  await sql.query("update apps set signin_policy = 'mfa' where id = $1", [mfaApp.id]);
  server = await startServer(env);
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

const rp = async (app: { client_id: string; client_secret: string }): Promise<client.Configuration> => {
  const config = await client.discovery(new URL(server.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
  client.enableNonRepudiationChecks(config); // ID token signatures checked against the JWKS
  return config;
};

interface Started { browser: Browser; page: Page; verifier: string; state: string; nonce: string; config: client.Configuration }

async function authorize(app: { client_id: string; client_secret: string }, browser: Browser, extra: Record<string, string> = {}): Promise<Started> {
  const config = await rp(app);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid profile', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
  });
  const page = await browser.navigate(url.toString(), REDIRECT);
  return { browser, page, verifier, state, nonce, config };
}

/** The app redeems the code it got at its redirect_uri. */
async function redeem(started: Started, page: Page) {
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  const tokens = await client.authorizationCodeGrant(started.config, new URL(page.url), {
    pkceCodeVerifier: started.verifier, expectedState: started.state, expectedNonce: started.nonce,
  });
  return tokens.claims()!;
}

/** The error the app reads at its redirect_uri (and that no page was shown instead). */
function errorAtApp(page: Page): { error: string | null; description: string | null; state: string | null } {
  expect(page.url.startsWith(REDIRECT)).toBe(true);
  const params = new URL(page.url).searchParams;
  expect(params.get('code')).toBeNull();
  return { error: params.get('error'), description: params.get('error_description'), state: params.get('state') };
}

const password = (s: Started, page: Page, login: string) => s.browser.submit(page, '/password', { login, password: PASSWORD }, REDIRECT);
const stepOf = (page: Page): string | undefined => /data-step="([^"]+)"/.exec(page.html)?.[1];

/** The browser's live OneID session row. */
async function sessionOf(browser: Browser): Promise<{ id: string; auth_time: Date; acr: string | null; amr: string[] } | undefined> {
  const token = browser.cookies.get(new URL(server.url).host)?.get('oneid.sso');
  if (!token) return undefined;
  const hash = createHash('sha256').update(token).digest('base64url');
  const { rows } = await sql.query('select id, auth_time, acr, amr from sessions where token_hash = $1 and ended_at is null and expires_at > now()', [hash]);
  return rows[0];
}

async function liveSessions(userId: string): Promise<number> {
  const { rows } = await sql.query('select count(*)::int as n from sessions where user_id = $1 and ended_at is null', [userId]);
  return rows[0].n;
}

async function auditOf(userId: string, action: string): Promise<Record<string, any>[]> {
  const { rows } = await sql.query(`select action, actor_type, actor_id, target_type, target_id, changes from audit_events
    where action = $2 and (target_id = $1 or actor_id = $1 or changes->>'userId' = $1) order by seq`, [userId, action]);
  return rows;
}

// RFC 6238 codes, as an authenticator app computes them: HMAC-SHA-1 over the 30 s step, 6 digits.
function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of text.replace(/[=\s]/g, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totpAt(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
const nowStep = (): number => Math.floor(Date.now() / 1000 / 30);

/** A person's authenticator app: each code a step later than the last one used (a step is accepted once). */
class Authenticator {
  lastStep = 0;
  constructor(readonly secret: string) {}
  async next(): Promise<string> {
    const step = Math.max(this.lastStep + 1, nowStep());
    // OneID accepts one step either side of its clock: wait until this step is within reach.
    while (step > nowStep() + 1) await new Promise((r) => setTimeout(r, 500));
    this.lastStep = step;
    return totpAt(this.secret, step);
  }
}

/** Signs `name` in at the mfa app for the first time: password, then setting up an authenticator. */
async function enrolAtMfaApp(name: string) {
  const s = await authorize(mfaApp, new Browser());
  const enrol = await password(s, s.page, name);
  expect(stepOf(enrol)).toBe('enrol');
  const secret = decodeHtml(/id="totp-secret">([^<]+)</.exec(enrol.html)![1]!);
  const app = new Authenticator(secret);
  const codesPage = await s.browser.submit(enrol, '/enrol/totp', { code: await app.next() }, REDIRECT);
  expect(stepOf(codesPage)).toBe('recovery-codes');
  const codes = [...codesPage.html.matchAll(/class="recovery-code">([^<]+)</g)].map((m) => decodeHtml(m[1]!));
  const done = await s.browser.submit(codesPage, '/continue', {}, REDIRECT);
  return { s, enrol, codesPage, codes, done, app, claims: await redeem(s, done) };
}

/** A password session at the password app, in a new browser. */
async function passwordSession(name: string) {
  const s = await authorize(passwordApp, new Browser());
  const done = await password(s, s.page, name);
  return { s, browser: s.browser, claims: await redeem(s, done) };
}

describe('password sign-in', () => {
  it('gives the app amr pwd, acr password and the session\'s auth_time; discovery lists the three levels', async () => {
    const config = await rp(passwordApp);
    expect(config.serverMetadata().acr_values_supported).toEqual([ACR_PASSWORD, ACR_MFA, 'urn:oneid:acr:phishing_resistant']);
    const { browser, claims } = await passwordSession('pat');
    expect(claims.sub).toBe(people.pat!.id);
    expect(claims.amr).toEqual(['pwd']);
    expect(claims.acr).toBe(ACR_PASSWORD);
    const session = (await sessionOf(browser))!;
    expect(session.acr).toBe(ACR_PASSWORD);
    expect(claims.auth_time).toBe(Math.floor(session.auth_time.getTime() / 1000));
    expect(await auditOf(people.pat!.id, 'signin.succeeded')).toEqual([expect.objectContaining({ changes: expect.objectContaining({ method: 'password', clientId: passwordApp.client_id }) })]);
    expect(await auditOf(people.pat!.id, 'session.started')).toEqual([expect.objectContaining({ target_id: session.id, changes: expect.objectContaining({ acr: ACR_PASSWORD, amr: ['pwd'] }) })]);
  });
});

describe('an app whose policy is mfa', () => {
  let grace: Awaited<ReturnType<typeof enrolAtMfaApp>>;

  it('sends a person with a password only to set up an authenticator, shows 10 recovery codes once, and reports mfa', async () => {
    grace = await enrolAtMfaApp('grace');
    expect(grace.enrol.html).not.toContain('name="password"');
    expect(grace.enrol.html).toContain('<svg'); // the QR code
    expect(grace.codes).toHaveLength(10);
    expect(new Set(grace.codes).size).toBe(10);
    expect(grace.claims.sub).toBe(people.grace!.id);
    expect(grace.claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    expect(grace.claims.acr).toBe(ACR_MFA);
    // Shown once: the flow is over; its pages show no codes again.
    const flow = /\/login\/([0-9a-f-]{36})\/continue/.exec(grace.codesPage.html)![1];
    const again = await grace.s.browser.navigate(`${server.url}/login/${flow}`, REDIRECT);
    expect(again.html).not.toContain('recovery-code');
    for (const code of grace.codes) expect(again.html).not.toContain(code);

    const id = people.grace!.id;
    expect(await auditOf(id, 'totp.enrolled')).toHaveLength(1);
    expect(await auditOf(id, 'recovery_codes.generated')).toHaveLength(1);
    expect((await auditOf(id, 'signin.succeeded')).map((e) => e.changes.method)).toEqual(['password']);
    const started = await auditOf(id, 'session.started');
    expect(started).toHaveLength(1);
    expect(started[0]!.changes).toMatchObject({ acr: ACR_MFA, methods: ['password', 'totp'] });
  });

  it('keeps the key being set up when a code is mistyped: the authenticator already scanned still works', async () => {
    const s = await authorize(mfaApp, new Browser());
    const enrol = await password(s, s.page, 'ty');
    const secret = decodeHtml(/id="totp-secret">([^<]+)</.exec(enrol.html)![1]!);
    const app = new Authenticator(secret);
    const right = await app.next();
    const typo = right === '000000' ? '000001' : '000000';
    const again = await s.browser.submit(enrol, '/enrol/totp', { code: typo }, REDIRECT);
    expect(stepOf(again)).toBe('enrol');
    expect(again.html).toContain('id="code-error"');
    expect(decodeHtml(/id="totp-secret">([^<]+)</.exec(again.html)![1]!)).toBe(secret);
    const codes = await s.browser.submit(again, '/enrol/totp', { code: right }, REDIRECT);
    expect(stepOf(codes)).toBe('recovery-codes');
  });

  it('takes a recovery code as the second factor, once', async () => {
    const s = await authorize(mfaApp, new Browser());
    const second = await password(s, s.page, 'grace');
    expect(stepOf(second)).toBe('second-factor');
    // The person is told how many codes are left, then goes on to the app.
    const left = await s.browser.submit(second, '/recovery', { code: grace.codes[0]! }, REDIRECT);
    expect(stepOf(left)).toBe('recovery-left');
    expect(left.html).toContain('You have 9 left');
    const done = await s.browser.submit(left, '/continue', {}, REDIRECT);
    const claims = await redeem(s, done);
    expect(claims.acr).toBe(ACR_MFA);
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));

    const t = await authorize(mfaApp, new Browser());
    const again = await password(t, t.page, 'grace');
    const refused = await t.browser.submit(again, '/recovery', { code: grace.codes[0]! }, REDIRECT);
    expect(refused.url.startsWith(REDIRECT)).toBe(false);
    expect(stepOf(refused)).toBe('second-factor');
    expect(refused.html).toContain('id="code-error"');
    expect(refused.html).toContain('That code is not right, or was already used.');
    expect(await sessionOf(t.browser)).toBeUndefined();
    const methods = (await auditOf(people.grace!.id, 'signin.succeeded')).map((e) => e.changes.method);
    expect(methods.filter((m) => m === 'recovery_code')).toHaveLength(1);
    expect((await auditOf(people.grace!.id, 'signin.failed')).map((e) => e.changes.method)).toEqual(['recovery_code']);
  });
});

describe('step-up', () => {
  let hopper: Awaited<ReturnType<typeof enrolAtMfaApp>>;
  let browser: Browser;
  let first: Record<string, any>;

  it('asks a person signed in with a password only for the second factor, not the password again', async () => {
    hopper = await enrolAtMfaApp('hopper');
    const signedIn = await passwordSession('hopper');
    browser = signedIn.browser;
    first = signedIn.claims;
    expect(first.acr).toBe(ACR_PASSWORD);
    const before = (await sessionOf(browser))!;

    const s = await authorize(mfaApp, browser);
    expect(stepOf(s.page)).toBe('second-factor');
    expect(s.page.html).not.toContain('name="password"');
    expect(s.page.html).toContain('/totp"');
    const done = await s.browser.submit(s.page, '/totp', { code: await hopper.app.next() }, REDIRECT);
    const claims = await redeem(s, done);
    expect(claims.acr).toBe(ACR_MFA);
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    // The same session, stronger: its sign-in time is the password's.
    const after = (await sessionOf(browser))!;
    expect(after.id).toBe(before.id);
    expect(after.acr).toBe(ACR_MFA);
    expect(claims.auth_time).toBe(first.auth_time);
    expect(await auditOf(people.hopper!.id, 'session.stepped_up')).toEqual([expect.objectContaining({ target_id: before.id, changes: expect.objectContaining({ acr: ACR_MFA, added: ['totp'] }) })]);
  });

  it('keeps the first app signed in silently, told what the session now is (or what it asked for)', async () => {
    const silent = await authorize(passwordApp, browser, { prompt: 'none' });
    const claims = await redeem(silent, silent.page);
    expect(claims.sub).toBe(people.hopper!.id);
    // acr is the level the authentication satisfies (OpenID Connect Core 2): the session is now mfa.
    expect(claims.acr).toBe(ACR_MFA);
    expect(claims.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    expect(claims.auth_time).toBe(first.auth_time);
    // An app that asks for the password level is told that (it is met; Core 3.1.2.1 voluntary acr).
    const asked = await authorize(passwordApp, browser, { prompt: 'none', acr_values: ACR_PASSWORD });
    expect((await redeem(asked, asked.page)).acr).toBe(ACR_PASSWORD);
  });

  it('refuses an authenticator code used before', async () => {
    const { browser: other } = await passwordSession('hopper');
    const s = await authorize(mfaApp, other);
    expect(stepOf(s.page)).toBe('second-factor');
    const used = totpAt(hopper.app.secret, hopper.app.lastStep);
    const refused = await s.browser.submit(s.page, '/totp', { code: used }, REDIRECT);
    expect(refused.url.startsWith(REDIRECT)).toBe(false);
    expect(refused.html).toContain('id="code-error"');
    expect((await sessionOf(other))!.acr).toBe(ACR_PASSWORD);
    const failed = await auditOf(people.hopper!.id, 'signin.failed');
    expect(failed.at(-1)!.changes).toMatchObject({ method: 'totp', reason: 'replayed', clientId: mfaApp.client_id });
    // A fresh code still works in the same flow.
    const done = await s.browser.submit(refused, '/totp', { code: await hopper.app.next() }, REDIRECT);
    expect((await redeem(s, done)).acr).toBe(ACR_MFA);
  });
});

describe('what the request asks for', () => {
  let kay: Awaited<ReturnType<typeof enrolAtMfaApp>>;
  beforeAll(async () => { kay = await enrolAtMfaApp('kay'); });

  it('acr_values=mfa on a password app steps the session up', async () => {
    const { browser } = await passwordSession('kay');
    const s = await authorize(passwordApp, browser, { acr_values: ACR_MFA });
    expect(stepOf(s.page)).toBe('second-factor');
    const done = await s.browser.submit(s.page, '/totp', { code: await kay.app.next() }, REDIRECT);
    expect((await redeem(s, done)).acr).toBe(ACR_MFA);
  });

  it('an essential acr claim of mfa likewise', async () => {
    const { browser } = await passwordSession('kay');
    const s = await authorize(passwordApp, browser, { claims: JSON.stringify({ id_token: { acr: { essential: true, value: ACR_MFA } } }) });
    expect(stepOf(s.page)).toBe('second-factor');
    const done = await s.browser.submit(s.page, '/totp', { code: await kay.app.next() }, REDIRECT);
    const claims = await redeem(s, done);
    expect(claims.acr).toBe(ACR_MFA);
  });

  it('an essential acr OneID does not know ends at the app with an error, without a loop', async () => {
    const { browser } = await passwordSession('kay');
    for (const acr of [{ essential: true, value: 'urn:example:acr:gold' }, { essential: true, values: ['urn:example:acr:gold', 'urn:example:acr:silver'] }]) {
      const s = await authorize(passwordApp, browser, { claims: JSON.stringify({ id_token: { acr } }) });
      const { error, description, state } = errorAtApp(s.page);
      expect(error).toBe('access_denied');
      expect(description).toMatch(/acr/i);
      expect(state).toBe(s.state);
      expect(s.browser.visited.length).toBeLessThan(12);
      browser.visited.length = 0;
    }
    // prompt=none: an error at once, no page.
    const silent = await authorize(passwordApp, browser, { prompt: 'none', claims: JSON.stringify({ id_token: { acr: { essential: true, value: 'urn:example:acr:gold' } } }) });
    expect(errorAtApp(silent.page).error).toBeTruthy();
    // Nor with nobody signed in: the person is not asked for anything they cannot give.
    const fresh = await authorize(passwordApp, new Browser(), { claims: JSON.stringify({ id_token: { acr: { essential: true, value: 'urn:example:acr:gold' } } }) });
    expect(errorAtApp(fresh.page).error).toBe('access_denied');
  });
});

describe('max_age and prompt=login', () => {
  it('ask for the password again and move auth_time', async () => {
    const { browser, claims: first } = await passwordSession('max');
    let lastAuthTime = first.auth_time as number;
    for (const extra of [{ max_age: '0' }, { prompt: 'login' }] as Record<string, string>[]) {
      await new Promise((r) => setTimeout(r, 1100)); // auth_time is in whole seconds
      const before = (await auditOf(people.max!.id, 'signin.succeeded')).length;
      const s = await authorize(passwordApp, browser, extra);
      expect(s.page.html).toContain('name="password"');
      const done = await password(s, s.page, 'max');
      const claims = await redeem(s, done);
      expect(claims.auth_time).toBeGreaterThan(lastAuthTime);
      expect(claims.auth_time).toBe(Math.floor((await sessionOf(browser))!.auth_time.getTime() / 1000));
      expect(await auditOf(people.max!.id, 'signin.succeeded')).toHaveLength(before + 1);
      lastAuthTime = claims.auth_time as number;
    }
    expect(await liveSessions(people.max!.id)).toBe(1);
  });

  it('a short max_age still finishes when the way back to the app takes longer than it', async () => {
    const { browser } = await passwordSession('rex');
    await new Promise((r) => setTimeout(r, 2100));
    const s = await authorize(passwordApp, browser, { max_age: '1' });
    expect(s.page.html).toContain('name="password"');
    // Stop on the way back (as a slow network would) for longer than max_age, then go on.
    const back = await s.browser.submit(s.page, '/password', { login: 'rex', password: PASSWORD }, `${server.url}/interaction/`);
    expect(back.url).toContain('/signed-in');
    await new Promise((r) => setTimeout(r, 2100));
    const done = await s.browser.navigate(back.url, REDIRECT);
    expect(done.html).not.toContain('name="password"');
    const claims = await redeem(s, done);
    expect(claims.auth_time).toBe(Math.floor((await sessionOf(browser))!.auth_time.getTime() / 1000));
  });
});

describe('prompt=none', () => {
  it('without a OneID session: login_required at the redirect_uri', async () => {
    const s = await authorize(passwordApp, new Browser(), { prompt: 'none' });
    expect(errorAtApp(s.page).error).toBe('login_required');
  });

  it('with a password session at an mfa app: an error at the redirect_uri, no page', async () => {
    const { browser } = await passwordSession('pat');
    browser.visited.length = 0;
    const s = await authorize(mfaApp, browser, { prompt: 'none' });
    expect(['login_required', 'interaction_required']).toContain(errorAtApp(s.page).error);
    expect(browser.visited.some((v) => new URL(v.url).pathname.startsWith('/login/'))).toBe(false);
  });
});

describe('cancelling', () => {
  it('"I cannot do this now" on the enrol page sends access_denied to the app, with a description it can read', async () => {
    const s = await authorize(mfaApp, new Browser());
    const enrol = await password(s, s.page, 'lin');
    expect(stepOf(enrol)).toBe('enrol');
    expect(enrol.html).toContain('I cannot do this now');
    const out = await s.browser.submit(enrol, '/cancel', {}, REDIRECT);
    const { error, description, state } = errorAtApp(out);
    expect(error).toBe('access_denied');
    expect(description).toMatch(/mfa/);
    expect(state).toBe(s.state);
    expect(await sessionOf(s.browser)).toBeUndefined();
    expect(await auditOf(people.lin!.id, 'signin.unmet')).toHaveLength(1);
  });

  it('Cancel on the second-factor page sends access_denied to the app and leaves the session as it was', async () => {
    const { browser } = await passwordSession('kay');
    const before = (await sessionOf(browser))!;
    const s = await authorize(mfaApp, browser);
    expect(stepOf(s.page)).toBe('second-factor');
    const out = await s.browser.submit(s.page, '/cancel', {}, REDIRECT);
    const { error, description } = errorAtApp(out);
    expect(error).toBe('access_denied');
    expect(description).toMatch(/cancelled/);
    expect(await sessionOf(browser)).toMatchObject({ id: before.id, acr: ACR_PASSWORD });
  });
});

describe('a flow belongs to the browser that started it', () => {
  it('refuses a sign-in form posted without its CSRF token, signs nobody in, and records the refusal', async () => {
    const s = await authorize(passwordApp, new Browser());
    const flow = new URL(s.page.url).pathname.split('/')[2]!;
    const res = await s.browser.request(`${server.url}/login/${flow}/password`, {
      method: 'POST', body: new URLSearchParams({ login: 'pat', password: PASSWORD }),
    });
    expect(res.status).toBe(403);
    expect(await sessionOf(s.browser)).toBeUndefined();
    const { rows } = await sql.query("select actor_type from audit_events where action = 'csrf.refused' and target_id = $1", [`/login/${flow}/password`]);
    expect(rows).toEqual([{ actor_type: 'anonymous' }]);
  });

  it('and to the request it was started for, once: a finished sign-in is not replayed for a later prompt=login', async () => {
    const browser = new Browser();
    const s = await authorize(passwordApp, browser);
    const flow = new URL(s.page.url).pathname.split('/')[2]!;
    await redeem(s, await password(s, s.page, 'pat'));
    // A later request asks for a fresh sign-in; its interaction is answered with the old flow.
    const t = await authorize(passwordApp, browser, { prompt: 'login' });
    expect(t.page.html).toContain('name="password"');
    const uid = browser.visited.map((v) => new URL(v.url).pathname).reverse()
      .find((path) => /^\/interaction\/[^/]+$/.test(path))!.split('/')[2]!;
    const replay = await browser.navigate(`${server.url}/interaction/${uid}/signed-in?flow=${flow}`, REDIRECT);
    expect(replay.url.startsWith(REDIRECT)).toBe(false);
    expect(replay.html).toContain('name="password"');
  });

  it('refuses a step-up posted from another browser with its own cookies and CSRF token', async () => {
    const mal = await enrolAtMfaApp('mal');
    // A: signed in with a password, at the second-factor step of an mfa app.
    const { browser: a } = await passwordSession('mal');
    const sa = await authorize(mfaApp, a);
    expect(stepOf(sa.page)).toBe('second-factor');
    const flowA = /action="\/login\/([0-9a-f-]{36})\/totp"/.exec(sa.page.html)![1];
    const sessionA = (await sessionOf(a))!;
    // B: its own sign-in page (its own CSRF cookie and token), posting A's flow id with a good code.
    const b = new Browser();
    const sb = await authorize(mfaApp, b);
    const tokenB = /name="_csrf" value="([^"]+)"/.exec(sb.page.html)![1]!;
    const before = await liveSessions(people.mal!.id);
    // A code A's authenticator has not used yet: refused here, it must still work for A below.
    const code = totpAt(mal.app.secret, Math.max(mal.app.lastStep + 1, nowStep()));
    const res = await b.request(`${server.url}/login/${flowA}/totp`, { method: 'POST', body: new URLSearchParams({ _csrf: decodeHtml(tokenB), code }) });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get('location')).toBeNull();
    expect(b.cookies.get(new URL(server.url).host)?.has('oneid.sso')).toBe(false);
    expect(await liveSessions(people.mal!.id)).toBe(before);
    expect((await sessionOf(a))!.acr).toBe(ACR_PASSWORD);
    expect((await sessionOf(a))!.id).toBe(sessionA.id);
    // B's flow page (and finishing its interaction with A's flow id) gives B nothing either.
    const uid = b.visited.map((v) => /\/interaction\/([^/?]+)/.exec(v.url)?.[1]).find(Boolean);
    const finished = await b.navigate(`${server.url}/interaction/${uid}/signed-in?flow=${flowA}`, REDIRECT);
    expect(finished.url.startsWith(REDIRECT)).toBe(false);
    expect(finished.html).toContain('name="password"');
    expect(await sessionOf(b)).toBeUndefined();
    // Nor does A's own finished password sign-in answer the mfa app's interaction.
    const finishedFlow = a.visited.map((v) => /\/login\/([0-9a-f-]{36})\/password/.exec(v.url)?.[1]).find(Boolean);
    const other = await authorize(mfaApp, a);
    const uidA = other.browser.visited.map((v) => /\/interaction\/([^/?]+)/.exec(v.url)?.[1]).filter(Boolean).at(-1);
    const replayed = await a.navigate(`${server.url}/interaction/${uidA}/signed-in?flow=${finishedFlow}`, REDIRECT);
    expect(replayed.url.startsWith(REDIRECT)).toBe(false);
    expect(stepOf(replayed)).toBe('second-factor');
    // A can still finish its own step-up (the latest authorization: a browser has one interaction at a time).
    const done = await a.submit(replayed, '/totp', { code: await mal.app.next() }, REDIRECT);
    expect((await redeem(other, done)).acr).toBe(ACR_MFA);
  });
});

describe('signing out', () => {
  it('a step-up under way when the session ends starts over: the flow no longer names the person', async () => {
    const { browser } = await passwordSession('ty');
    const s = await authorize(mfaApp, browser);
    expect(stepOf(s.page)).toBe('second-factor');
    const home = await browser.navigate(`${server.url}/`);
    await browser.submit(home, '/logout', {});
    const again = await browser.navigate(s.page.url, REDIRECT);
    expect(stepOf(again)).toBe('identify');
    expect(again.html).toContain('name="password"');
    expect(again.html).not.toContain('/totp"');
  });

  it('at OneID (the home page\'s form): the app\'s prompt=none gets login_required', async () => {
    const { browser } = await passwordSession('pat');
    const home = await browser.navigate(`${server.url}/`);
    expect(home.html).toContain('id="sign-out"');
    const session = (await sessionOf(browser))!;
    const out = await browser.submit(home, '/logout', {});
    expect(out.html).toContain('id="signed-out"');
    const s = await authorize(passwordApp, browser, { prompt: 'none' });
    expect(errorAtApp(s.page).error).toBe('login_required');
    const ended = await sql.query('select ended_reason from sessions where id = $1', [session.id]);
    expect(ended.rows[0].ended_reason).toBe('signed_out');
  });

  it('at the app\'s request (RP-initiated logout, "yes"): OneID\'s session ends too', async () => {
    const { browser, s } = await passwordSession('pat');
    const session = (await sessionOf(browser))!;
    const again = await authorize(passwordApp, browser, { prompt: 'none' });
    const tokens = await client.authorizationCodeGrant(again.config, new URL(again.page.url), { pkceCodeVerifier: again.verifier, expectedState: again.state, expectedNonce: again.nonce });
    const url = client.buildEndSessionUrl(s.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
    const confirm = await browser.navigate(url.toString(), POST_LOGOUT);
    const out = await browser.submit(confirm, '/session/end/confirm', { logout: 'yes' }, POST_LOGOUT);
    expect(out.url).toBe(`${POST_LOGOUT}?state=bye`);
    expect(await sessionOf(browser)).toBeUndefined();
    const ended = await sql.query('select ended_reason from sessions where id = $1', [session.id]);
    expect(ended.rows[0].ended_reason).toBe('signed_out');
    const home = await browser.navigate(`${server.url}/`);
    expect(home.html).toContain('id="signed-out"');
    const silent = await authorize(mfaApp, browser, { prompt: 'none' });
    expect(errorAtApp(silent.page).error).toBe('login_required');
  });
});

describe('a suspended person', () => {
  it('is no longer signed in anywhere by their OneID session', async () => {
    const { browser } = await passwordSession('sue');
    const ok = await authorize(passwordApp, browser, { prompt: 'none' });
    await redeem(ok, ok.page);
    expect((await runCli(['users', 'suspend', '--id', people.sue!.id], env)).code).toBe(0);
    const s = await authorize(passwordApp, browser, { prompt: 'none' });
    expect(errorAtApp(s.page).error).toBe('login_required');
    const home = await browser.navigate(`${server.url}/`);
    expect(home.html).toContain('id="signed-out"');
  });
});

describe('the audit log', () => {
  it('has every sign-in outcome with its method, and no server error was logged', async () => {
    const { rows } = await sql.query("select action, changes->>'method' as method from audit_events where action like 'signin.%' or action like 'session%' or action in ('totp.enrolled', 'recovery_codes.generated')");
    const seen = new Set(rows.map((r) => `${r.action}${r.method ? `:${r.method}` : ''}`));
    for (const expected of ['signin.succeeded:password', 'signin.succeeded:totp', 'signin.succeeded:recovery_code', 'signin.failed:totp', 'signin.failed:recovery_code',
      'session.started', 'session.stepped_up', 'session.ended', 'totp.enrolled', 'recovery_codes.generated', 'signin.unmet']) {
      expect(seen).toContain(expected);
    }
    expect(server.output().split('\n').filter((line) => line.includes('"level":50'))).toEqual([]);
  });
});
