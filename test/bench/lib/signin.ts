// One full password sign-in, the way a browser and a confidential web app do it:
// GET /auth -> login form (CSRF cookie + field) -> POST password -> (first-party: no consent
// page, the consent interaction finishes by itself) -> code at the redirect_uri -> POST /token.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { CookieJar, FORM, basicAuth, request, type HttpResponse } from './http.ts';

export interface WebApp {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

export interface Tokens {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

export interface SignInResult {
  tokens: Tokens;
  /** HTTP requests this sign-in needed. */
  requests: number;
}

const b64url = (b: Buffer): string => b.toString('base64url');

/** Called before each HTTP request of the flow (test/bench/lib/queries.ts counts database queries per step). */
export type StepHook = (step: string) => Promise<void>;

/** "/interaction/abc123/signed-in" -> "/interaction/:uid/signed-in", "/login/<uuid>/password" -> "/login/:flow/password" */
const stepName = (method: string, url: URL): string => `${method} ${url.pathname
  .replace(/^\/(auth|interaction)\/[^/]+/, '/$1/:uid')
  .replace(/^\/login\/[0-9a-f-]{36}/, '/login/:flow')}`;

export async function signIn(base: string, agent: http.Agent, app: WebApp, login: string, password: string, onStep?: StepHook): Promise<SignInResult> {
  const jar = new CookieJar();
  let requests = 0;
  const send = async (url: URL, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<HttpResponse> => {
    if (onStep) await onStep(stepName(init.method ?? 'GET', url));
    const headers: Record<string, string> = { accept: 'text/html', 'accept-language': 'en', ...init.headers };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    requests += 1;
    const res = await request(agent, url, { ...init, headers });
    jar.store(res.headers);
    return res;
  };
  /** Follows redirects inside OneID; stops at a rendered page or at the app's redirect_uri. */
  const follow = async (url: URL, first: HttpResponse): Promise<{ url: URL; res?: HttpResponse }> => {
    let current = url;
    let res = first;
    for (let hops = 0; hops < 10; hops += 1) {
      const location = res.headers.location;
      if (!(res.status >= 300 && res.status < 400 && location)) return { url: current, res };
      current = new URL(location, current);
      if (current.href.startsWith(app.redirectUri)) return { url: current };
      res = await send(current);
    }
    throw new Error('too many redirects');
  };

  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(12));
  const authorize = new URL('/auth', base);
  authorize.search = new URLSearchParams({
    client_id: app.clientId, response_type: 'code', scope: 'openid profile email', redirect_uri: app.redirectUri,
    state, nonce: b64url(randomBytes(12)), code_challenge: b64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
  }).toString();

  const form = await follow(authorize, await send(authorize));
  if (!form.res || form.res.status !== 200) throw new Error(`authorize: expected the sign-in form, got ${form.res?.status ?? 'a redirect'} at ${form.url.pathname}`);
  // The password form: /login/:flow/password since OneID's own sign-in flow (login/flow.ts).
  const action = /<form method="post" action="([^"]*\/login\/[^"/]+\/password)"/.exec(form.res.body)?.[1];
  const csrf = /name="_csrf" value="([^"]*)"/.exec(form.res.body)?.[1];
  if (!action || !csrf) throw new Error('sign-in form without action or _csrf');

  const post = new URL(action.replace(/&amp;/g, '&'), form.url);
  const body = new URLSearchParams({ _csrf: csrf, login, password }).toString();
  const done = await follow(post, await send(post, { method: 'POST', body, headers: { 'content-type': FORM } }));
  if (done.res) throw new Error(`sign-in: expected a redirect to the app, got ${done.res.status} at ${done.url.pathname}`);
  if (done.url.searchParams.get('state') !== state) throw new Error('sign-in: state mismatch');
  const code = done.url.searchParams.get('code');
  if (!code) throw new Error(`sign-in: no code (${done.url.searchParams.get('error') ?? 'no error'})`);

  requests += 1;
  if (onStep) await onStep('POST /token (authorization_code)');
  const token = await request(agent, new URL('/token', base), {
    method: 'POST',
    headers: { 'content-type': FORM, authorization: basicAuth(app.clientId, app.clientSecret), accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: app.redirectUri, code_verifier: verifier }).toString(),
  });
  if (token.status !== 200) throw new Error(`token: ${token.status} ${token.body.slice(0, 200)}`);
  return { tokens: JSON.parse(token.body) as Tokens, requests };
}
