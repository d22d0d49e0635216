// A minimal browser for protocol tests: a cookie jar, manual redirects, and form submission
// the way a browser does it (hidden fields, including the CSRF token, are sent back).
import type * as client from 'openid-client';
import { authorizationRequest, type AuthParams, type AuthRequest } from './oidc-app.ts';

export interface Page { url: string; status: number; html: string; headers: Headers }

export class Browser {
  readonly cookies = new Map<string, Map<string, string>>(); // host -> name -> value
  acceptLanguage = 'en';
  /** Every request made, in order: method and URL as written. */
  readonly visited: { method: string; url: string }[] = [];
  /**
   * Where a request really goes, with any headers a load balancer would add. Cookies and
   * relative redirects follow the URL as written; only the connection is re-targeted.
   */
  route: (url: URL) => { url: URL; headers?: Record<string, string> } = (url) => ({ url });

  #cookieHeader(url: URL): string {
    const jar = this.cookies.get(url.host);
    return jar ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }

  #store(url: URL, headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const jar = this.cookies.get(url.host) ?? new Map<string, string>();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') jar.delete(name); else jar.set(name, value);
      this.cookies.set(url.host, jar);
    }
  }

  /** One request, no redirect following. */
  async request(url: string, init: { method?: string; body?: URLSearchParams | string; headers?: Record<string, string> } = {}): Promise<Response> {
    const u = new URL(url);
    this.visited.push({ method: init.method ?? 'GET', url });
    const headers: Record<string, string> = { 'accept': 'text/html', 'accept-language': this.acceptLanguage, ...init.headers };
    const cookie = this.#cookieHeader(u);
    if (cookie) headers.cookie = cookie;
    // A string body (JSON, as the pages' scripts send) names its own content type.
    if (init.body && !headers['content-type']) headers['content-type'] = 'application/x-www-form-urlencoded';
    const target = this.route(u);
    Object.assign(headers, target.headers);
    const res = await fetch(target.url, { method: init.method ?? 'GET', body: init.body, headers, redirect: 'manual' });
    this.#store(u, res.headers);
    return res;
  }

  /**
   * Follows redirects until a page renders or a redirect leaves for `stopAt` (the app's
   * redirect_uri), returning that final URL without requesting it.
   */
  async navigate(url: string, stopAt?: string, init: { method?: string; body?: URLSearchParams } = {}): Promise<Page> {
    let current = url;
    let res = await this.request(current, init);
    for (let hops = 0; hops < 20; hops += 1) {
      const location = res.headers.get('location');
      if (!(res.status >= 300 && res.status < 400 && location)) break;
      current = new URL(location, current).toString();
      if (stopAt && current.startsWith(stopAt)) return { url: current, status: res.status, html: '', headers: res.headers };
      res = await this.request(current);
    }
    return { url: current, status: res.status, html: await res.text(), headers: res.headers };
  }

  /** Submits the form whose action contains `actionPart`, with its hidden fields plus `fields`. */
  async submit(page: Page, actionPart: string, fields: Record<string, string>, stopAt?: string): Promise<Page> {
    const forms = [...page.html.matchAll(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/g)];
    const form = forms.find((f) => f[1]!.includes(actionPart));
    if (!form) throw new Error(`no form with action ${actionPart} on ${page.url}:\n${page.html.slice(0, 2000)}`);
    const body = new URLSearchParams();
    for (const input of form[2]!.matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
      const name = /name="([^"]*)"/.exec(input[0])?.[1];
      const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
      if (name) body.set(name, decodeHtml(value));
    }
    for (const [k, v] of Object.entries(fields)) body.set(k, v);
    const action = new URL(decodeHtml(form[1]!), page.url).toString();
    return this.navigate(action, stopAt, { method: 'POST', body });
  }
}

export function decodeHtml(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/**
 * Whether `login` / `password` signs in to a first-party app (client `clientId`, redirect URI
 * `redirect`) on the OneID at `issuer`: the authorization request, the sign-in form, and a code at
 * the redirect URI.
 */
export async function canSignIn(issuer: string, app: { clientId: string; redirect: string }, login: string, password: string): Promise<boolean> {
  const browser = new Browser();
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: app.clientId, redirect_uri: app.redirect, response_type: 'code', scope: 'openid', state: 'state-1',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  }).toString();
  const page = await browser.navigate(url.toString(), app.redirect);
  const done = await browser.submit(page, '/login', { login, password }, app.redirect);
  return done.url.startsWith(app.redirect) && new URL(done.url).searchParams.has('code');
}

/** An authorization request made in a Browser: where it landed (the sign-in page, or the redirect URI). */
export interface Started extends AuthRequest { browser: Browser; page: Page }

/**
 * Sends `browser` (a fresh one unless given) to the app's authorization URL and follows redirects
 * until a page renders or the redirect URI is reached. Redeem its code with `redeem` (oidc-app.ts).
 */
export async function startSignIn(config: client.Configuration, params: AuthParams, browser = new Browser()): Promise<Started> {
  const request = await authorizationRequest(config, params);
  return { ...request, browser, page: await browser.navigate(request.url.toString(), params.redirect_uri) };
}
