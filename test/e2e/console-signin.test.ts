// Signing in to the console, from outside: it is an OIDC app of OneID (code flow with PKCE and
// state), its code works once and only in the browser that asked for it, it never sends anyone off
// the site, and it closes with the OneID session. A person without admin roles is told so.
import { Browser } from '../helpers/browser.ts';
import { startTestbed, type ConsoleTestbed } from '../helpers/console.ts';

const PASSWORD = 'correct-horse-battery';
let bed: ConsoleTestbed;
let admin: Browser;

async function signedInAdmin(): Promise<Browser> {
  const browser = new Browser();
  const signIn = await browser.navigate(`${bed.url}/admin`);
  expect(new URL(signIn.url).pathname).toMatch(/^\/login\//);
  const page = await browser.submit(signIn, '/login', { login: 'grace', password: PASSWORD });
  expect(page.url).toBe(`${bed.url}/admin`);
  return browser;
}

beforeAll(async () => {
  bed = await startTestbed('oneid_test_console_signin');
  admin = new Browser();
  const form = await admin.navigate(bed.setupLink);
  const landed = await admin.submit(form, '/setup', { username: 'grace', email: 'grace@example.com', password: PASSWORD });
  expect(landed.url).toBe(`${bed.url}/admin?welcome=1`);
  const made = await bed.cli(['users', 'create', '--username', 'alan', '--email', 'alan@example.com', '--password', PASSWORD]);
  expect(made.code).toBe(0);
}, 60000);

afterAll(async () => {
  await bed?.stop();
});

describe('console sign-in', () => {
  it('goes through the authorization endpoint as the console app, with PKCE and state', async () => {
    const browser = new Browser();
    const first = await browser.request(`${bed.url}/admin?q=x`);
    expect(first.status).toBe(302);
    expect(first.headers.get('location')).toBe('/admin/login?return_to=%2Fadmin%3Fq%3Dx');
    const login = await browser.request(`${bed.url}/admin/login?return_to=%2Fadmin%3Fq%3Dx`);
    const authorize = new URL(login.headers.get('location')!, bed.url);
    expect(authorize.pathname).toBe('/auth');
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      client_id: 'oneid-console', response_type: 'code', redirect_uri: `${bed.url}/admin/callback`, scope: 'openid', code_challenge_method: 'S256',
    });
    expect(authorize.searchParams.get('state')!.length).toBeGreaterThanOrEqual(32);
    expect(authorize.searchParams.get('code_challenge')!.length).toBe(43);
  });

  it('brings the admin back to the page they asked for', async () => {
    const browser = new Browser();
    const signIn = await browser.navigate(`${bed.url}/admin?from=test`);
    const page = await browser.submit(signIn, '/login', { login: 'grace', password: PASSWORD });
    expect(page.url).toBe(`${bed.url}/admin?from=test`);
    expect(page.status).toBe(200);
  });

  it.each([
    ['another site', 'https://evil.example/'],
    ['a protocol-relative address', '//evil.example/admin'],
    ['a backslash trick', '/\\evil.example'],
    ['the API', '/admin/api/v1/users'],
    ['a path outside the console', '/account/security'],
  ])('never returns to %s after signing in', async (_what, returnTo) => {
    const browser = new Browser();
    const signIn = await browser.navigate(`${bed.url}/admin/login?return_to=${encodeURIComponent(returnTo)}`);
    const page = await browser.submit(signIn, '/login', { login: 'grace', password: PASSWORD });
    expect(page.url).toBe(`${bed.url}/admin`);
  });

  it('refuses a callback this browser did not start, and a code used twice', async () => {
    const browser = new Browser();
    const signIn = await browser.navigate(`${bed.url}/admin`);
    // Stop at the callback to hold the code.
    const atCallback = await browser.submit(signIn, '/login', { login: 'grace', password: PASSWORD }, `${bed.url}/admin/callback`);
    const callback = atCallback.url;
    expect(new URL(callback).searchParams.get('code')).toBeTruthy();

    // Another browser (no state cookie, no session) cannot use it.
    const stranger = await new Browser().navigate(callback);
    expect(stranger.status).toBe(400);
    expect(stranger.html).toContain('This sign-in expired or was started in another browser.');

    // A forged state in the right browser is refused too. The started sign-in is spent by any
    // callback, so the admin simply starts again (their OneID session makes that silent).
    const forged = new URL(callback);
    forged.searchParams.set('state', 'x'.repeat(32));
    expect((await browser.navigate(forged.toString())).status).toBe(400);
    expect((await browser.navigate(callback)).status).toBe(400);

    const again = await browser.navigate(`${bed.url}/admin`);
    expect(again.url).toBe(`${bed.url}/admin`);
    expect(again.status).toBe(200);
  });

  it('accepts a code once', async () => {
    const browser = new Browser();
    const signIn = await browser.navigate(`${bed.url}/admin/login`);
    const atCallback = await browser.submit(signIn, '/login', { login: 'grace', password: PASSWORD }, `${bed.url}/admin/callback`);
    const saved = new Map(browser.cookies.get(new URL(bed.url).host));
    const first = await browser.navigate(atCallback.url);
    expect(first.url).toBe(`${bed.url}/admin`);
    // Replay with the same cookies as before the first use (state cookie included).
    const replay = new Browser();
    replay.cookies.set(new URL(bed.url).host, saved);
    const second = await replay.request(atCallback.url);
    expect(second.status).toBe(400);
  });

  it('tells a person without an admin role that they have none, and shows no section', async () => {
    const browser = new Browser();
    const signIn = await browser.navigate(`${bed.url}/admin`);
    const page = await browser.submit(signIn, '/login', { login: 'alan', password: PASSWORD });
    expect(page.status).toBe(403);
    expect(page.html).toContain('you hold no administrator role');
    expect(page.html).not.toContain('id="nav-people"');
    for (const section of ['/admin/people', '/admin/apps', '/admin/audit']) {
      expect((await browser.navigate(`${bed.url}${section}`)).status).toBe(403);
    }
  });

  it('closes when the OneID session ends', async () => {
    const browser = await signedInAdmin();
    const home = await browser.navigate(`${bed.url}/admin`);
    expect(home.status).toBe(200);
    await browser.submit(home, '/logout', {});
    const after = await browser.request(`${bed.url}/admin`);
    expect(after.status).toBe(302);
    expect(after.headers.get('location')).toMatch(/^\/admin\/login/);
  });

  it('answers an htmx request without a session with HX-Redirect to the sign-in', async () => {
    const res = await new Browser().request(`${bed.url}/admin`, { headers: { 'hx-request': 'true' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('hx-redirect')).toMatch(/^\/admin\/login\?return_to=/);
  });
});

describe('language switch', () => {
  it('sets the language and returns only to a path on this site', async () => {
    const browser = new Browser();
    const res = await browser.request(`${bed.url}/locale?to=zh-CN&return_to=%2Fadmin`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/admin');
    for (const evil of ['//evil.example', 'https://evil.example', '/\\evil.example']) {
      const away = await browser.request(`${bed.url}/locale?to=en&return_to=${encodeURIComponent(evil)}`);
      expect(away.headers.get('location')).toBe('/');
    }
    const page = await browser.navigate(`${bed.url}/locale?to=zh-CN&return_to=%2F`);
    expect(page.html).toContain('lang="zh-CN"');
  });
});
