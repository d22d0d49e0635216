// Black-box: the pages a person can land on when something goes wrong, and `/`. Each says in
// their language what happened and what to do; the library's own text (error and
// error_description) is only in the collapsed block for the app's developer; never a stack.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser, decodeHtml } from '../helpers/browser.ts';

const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'analytical-engine';

let db: TestDatabase;
let server: RunningServer;
let app: { client_id: string };

beforeAll(async () => {
  db = await createTestDatabase('oneid_test_errpages');
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const [user, created] = await Promise.all([
    runCli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', PASSWORD, '--name', 'Ada Lovelace'], env),
    runCli(['apps', 'create', '--name', 'Wiki', '--redirect-uri', REDIRECT], env),
  ]);
  expect(user.code).toBe(0);
  expect(created.code).toBe(0);
  app = created.json;
  server = await startServer(env);
}, 180000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** The text a person sees: without the collapsed developer details, styles and tags. */
const visible = (html: string): string => decodeHtml(html
  .replace(/<details[\s\S]*?<\/details>/g, ' ')
  .replace(/<style[\s\S]*?<\/style>/g, ' ')
  .replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ');
const developerDetails = (html: string): string => decodeHtml(/<details[\s\S]*?<\/details>/.exec(html)?.[0] ?? '');

const STACK = /at .*\.(js|ts):\d+|node:internal|node_modules/;

async function page(path: string, lang: 'en' | 'zh-CN', init: { method?: string; body?: URLSearchParams } = {}) {
  const browser = new Browser();
  browser.acceptLanguage = lang === 'zh-CN' ? 'zh-CN,zh;q=0.9' : 'en-US,en;q=0.9';
  const res = await browser.request(`${server.url}${path}`, init);
  const html = await res.text();
  expect(html).not.toMatch(STACK);
  return { status: res.status, html, text: visible(html), details: developerDetails(html), type: res.headers.get('content-type') ?? '' };
}

// Every app must send PKCE; any valid S256 challenge will do for pages that never redeem a code.
const authUrl = (params: Record<string, string>) => `/auth?${new URLSearchParams({
  response_type: 'code', scope: 'openid', code_challenge_method: 'S256', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', ...params,
})}`;

describe('error pages', () => {
  it('an unknown app: says the app is not registered, keeps invalid_client for the developer', async () => {
    const path = authUrl({ client_id: 'no-such-app', redirect_uri: REDIRECT });
    const en = await page(path, 'en');
    expect(en.status).toBe(400);
    expect(en.text).toContain('The app that sent you here is not registered with OneID');
    expect(en.text).not.toContain('invalid_client');
    expect(en.details).toContain('invalid_client');
    const zh = await page(path, 'zh-CN');
    expect(zh.text).toContain('将您带到这里的应用未在 OneID 中注册');
    expect(zh.text).not.toContain('invalid_client');
  });

  it('a redirect_uri the app did not register: explains and does not show the library text', async () => {
    const path = authUrl({ client_id: app.client_id, redirect_uri: 'https://attacker.example/cb' });
    const raw = "redirect_uri did not match any of the client's registered redirect_uris";
    const en = await page(path, 'en');
    expect(en.status).toBe(400);
    expect(en.text).toContain('an address the app has not registered');
    expect(en.text).toContain('Go back to the app.');
    expect(en.text).not.toContain(raw);
    expect(en.text).not.toContain('invalid_redirect_uri');
    expect(en.details).toContain('invalid_redirect_uri');
    expect(en.details).toContain(raw);
    const zh = await page(path, 'zh-CN');
    expect(zh.text).toContain('未登记的地址');
    expect(zh.text).not.toContain(raw);
  });

  it('an interaction opened without its cookie (another browser, or expired): says to start again', async () => {
    // Begin a sign-in in one browser, open its page in another.
    const first = new Browser();
    const start = await first.navigate(`${server.url}${authUrl({ client_id: app.client_id, redirect_uri: REDIRECT })}`);
    expect(start.url).toMatch(/\/login\//);
    const visited = first.visited.find((v) => /\/interaction\/[^/]+$/.test(new URL(v.url).pathname));
    const interaction = new URL(visited!.url).pathname;
    for (const [lang, human] of [['en', 'This sign-in link has expired or was opened in another browser.'], ['zh-CN', '此登录链接已过期，或是在另一个浏览器中打开的。']] as const) {
      const p = await page(interaction, lang);
      expect(p.status).toBe(400);
      expect(p.text).toContain(human);
      expect(p.text).not.toContain('interaction session id cookie not found');
      expect(p.text).not.toContain('invalid_request');
      expect(p.details).toContain('interaction session id cookie not found');
    }
  });

  it('a sign-in page opened in another browser: says to start again, and signs nobody in', async () => {
    const first = new Browser();
    const start = await first.navigate(`${server.url}${authUrl({ client_id: app.client_id, redirect_uri: REDIRECT })}`);
    const flowPath = new URL(start.url).pathname;
    expect(flowPath).toMatch(/^\/login\/[0-9a-f-]{36}$/);
    for (const [lang, human] of [['en', 'This sign-in link has expired or was opened in another browser.'], ['zh-CN', '此登录链接已过期，或是在另一个浏览器中打开的。']] as const) {
      const p = await page(flowPath, lang);
      expect(p.text).toContain(human);
      expect(p.text).not.toMatch(/<form[^>]*\/password"/);
    }
    // Its password form, posted from the other browser with a CSRF token of its own: refused.
    const other = new Browser();
    const own = await other.navigate(`${server.url}/`);
    const csrf = /name="csrf-token" content="([^"]+)"/.exec(own.html)![1]!;
    const posted = await other.navigate(`${server.url}${flowPath}/password`, undefined, {
      method: 'POST', body: new URLSearchParams({ _csrf: csrf, login: 'ada', password: PASSWORD }),
    });
    expect(posted.html).toContain('This sign-in link has expired or was opened in another browser.');
    expect(other.cookies.get(new URL(server.url).host)?.has('oneid.sso')).toBeFalsy();
  });

  it('an authorization resumed without its session: says to start again', async () => {
    const p = await page('/auth/made-up-interaction-id', 'en');
    expect(p.status).toBe(400);
    expect(p.text).toContain('This sign-in link has expired or was opened in another browser.');
    expect(p.text).toContain('Go back to the app and start signing in again.');
    expect(p.text).not.toMatch(/not found|has expired\b(?! or)/);
  });

  it('an invalid request in general: says the app made a request OneID cannot accept', async () => {
    const path = `/auth?${new URLSearchParams({ client_id: app.client_id, scope: 'openid', response_type: 'code' })}`;
    const en = await page(path, 'en');
    expect(en.status).toBe(400);
    expect(en.text).toContain('The app that sent you here made a request OneID cannot accept.');
    expect(en.text).not.toContain('missing required parameter');
    expect(en.details).toContain("missing required parameter 'redirect_uri'");
    const zh = await page(path, 'zh-CN');
    expect(zh.text).toContain('将您带到这里的应用发出了 OneID 无法接受的请求。');
  });

  it('a form posted without its CSRF token: 403 and says to reload', async () => {
    const body = new URLSearchParams({ login: 'ada', password: 'x' });
    const en = await page('/login/anything/password', 'en', { method: 'POST', body });
    expect(en.status).toBe(403);
    expect(en.text).toContain('Your form has expired.');
    expect(en.text).not.toContain('csrf.invalid');
    const zh = await page('/login/anything/password', 'zh-CN', { method: 'POST', body });
    expect(zh.text).toContain('表单已过期');
  });

  it('an unknown path: an HTML 404 page for a browser, JSON for API clients', async () => {
    const en = await page('/no/such/page', 'en');
    expect(en.status).toBe(404);
    expect(en.type).toMatch(/text\/html/);
    expect(en.text).toContain('There is no page at this address.');
    const zh = await page('/no/such/page', 'zh-CN');
    expect(zh.text).toContain('此地址没有页面。');
    for (const path of ['/no/such/page', '/admin/api/no-such-thing']) {
      const res = await fetch(`${server.url}${path}`, { headers: { accept: path.startsWith('/admin') ? 'text/html' : 'application/json' } });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(await res.json()).toMatchObject({ status: 404, code: 'not_found' });
    }
  });
});

describe('GET /', () => {
  it('is a small page with the product name and a sign-in link, in the person\'s language', async () => {
    const en = await page('/', 'en');
    expect(en.status).toBe(200);
    expect(en.text).toContain('OneID is the single sign-in for your organization\'s apps.');
    expect(en.text).toContain('You are not signed in.');
    expect(en.html).toMatch(/<a href="\/login\/start\?return_to=%2F" id="sign-in">Sign in to OneID<\/a>/);
    const zh = await page('/', 'zh-CN');
    expect(zh.status).toBe(200);
    expect(zh.text).toContain('您尚未登录。');
    expect(zh.text).toContain('登录 OneID');
  });

  it('signs in through its link, comes back to / and shows who is signed in; signs out again', async () => {
    const browser = new Browser();
    const home = await browser.navigate(`${server.url}/`);
    const link = decodeHtml(/href="([^"]+)" id="sign-in"/.exec(home.html)![1]!);
    const login = await browser.navigate(new URL(link, server.url).toString());
    expect(login.html).toContain('to continue to OneID');
    const back = await browser.submit(login, '/login', { login: 'ada', password: PASSWORD });
    expect(back.url).toBe(`${server.url}/`);
    expect(visible(back.html)).toContain('You are signed in as Ada Lovelace (ada).');
    // Signing out is a form (POST, CSRF): a link or an image elsewhere cannot sign anyone out.
    const after = await browser.submit(back, '/logout', {});
    expect(after.url).toBe(`${server.url}/`);
    expect(visible(after.html)).toContain('You are not signed in.');
  });
});
