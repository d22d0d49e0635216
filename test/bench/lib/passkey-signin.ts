// Scenario 6's sign-ins, the way a browser with a passkey does them, and its ceiling's:
//
//   OneID (8 requests): GET /auth -> /interaction/:uid -> /login/:flow (the page: CSRF meta tag
//   and cookie) -> POST /login/:flow/passkey/options (a discoverable request, as the passkey
//   button and autofill send it) -> the authenticator signs -> POST /login/:flow/passkey ->
//   GET the {redirect} (/interaction/:uid/signed-in) -> /auth/:uid (resume) -> code -> POST /token.
//   The authenticator is test/helpers/soft-authenticator.ts, on the load core.
//
//   Ceiling (4 requests): GET /auth -> /interaction/:uid (baselines/oidc-code-flow.ts signs in
//   anyone) -> /auth/:uid -> code -> POST /token.
import http from 'node:http';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { SoftAuthenticator, type SoftCredential } from '../../helpers/soft-authenticator.ts';
import { CookieJar, FORM, basicAuth, request, type HttpResponse } from './http.ts';
import type { SignInResult, StepHook, Tokens, WebApp } from './signin.ts';

/** A soft authenticator's credential as JSON, to hand it from run.ts to a load generator. */
export interface PasskeyJSON {
  id: string;
  rpId: string;
  userHandle: string;
  /** PKCS#8 DER, base64url. */
  privateKey: string;
  backupEligible: boolean;
  counter: number;
}

export const passkeyToJSON = (c: SoftCredential): PasskeyJSON => ({
  id: c.id, rpId: c.rpId, userHandle: c.userHandle, backupEligible: c.backupEligible, counter: c.counter,
  privateKey: (c.privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).toString('base64url'),
});

/** An authenticator holding one credential, answering for `origin` (the issuer's). */
export function authenticatorOf(origin: string, p: PasskeyJSON): SoftAuthenticator {
  const a = new SoftAuthenticator({ origin, synced: p.backupEligible });
  a.credentials.push({
    id: p.id, rpId: p.rpId, userHandle: p.userHandle, backupEligible: p.backupEligible, counter: p.counter,
    privateKey: createPrivateKey({ key: Buffer.from(p.privateKey, 'base64url'), format: 'der', type: 'pkcs8' }),
  });
  return a;
}

const b64url = (b: Buffer): string => b.toString('base64url');

/** "/login/<uuid>/passkey" -> "/login/:flow/passkey", "/auth/abc" -> "/auth/:uid" */
const stepName = (method: string, url: URL): string => `${method} ${url.pathname
  .replace(/^\/(auth|interaction)\/[^/]+/, '/$1/:uid')
  .replace(/^\/login\/[0-9a-f-]{36}/, '/login/:flow')}`;

/** One browser (cookie jar) on one keep-alive socket; counts requests and reports steps. */
class Browser {
  readonly jar = new CookieJar();
  requests = 0;
  constructor(private readonly agent: http.Agent, private readonly app: WebApp, private readonly onStep?: StepHook) {}

  async send(url: URL, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<HttpResponse> {
    if (this.onStep) await this.onStep(stepName(init.method ?? 'GET', url));
    const headers: Record<string, string> = { accept: 'text/html', 'accept-language': 'en', ...init.headers };
    const cookie = this.jar.header();
    if (cookie) headers.cookie = cookie;
    this.requests += 1;
    const res = await request(this.agent, url, { ...init, headers });
    this.jar.store(res.headers);
    return res;
  }

  /** Follows redirects on the server; stops at a page (res) or at the app's redirect_uri (no res). */
  async follow(url: URL, first: HttpResponse): Promise<{ url: URL; res?: HttpResponse }> {
    let current = url;
    let res = first;
    for (let hops = 0; hops < 10; hops += 1) {
      const location = res.headers.location;
      if (!(res.status >= 300 && res.status < 400 && location)) return { url: current, res };
      current = new URL(location, current);
      if (current.href.startsWith(this.app.redirectUri)) return { url: current };
      res = await this.send(current);
    }
    throw new Error('too many redirects');
  }

  /** An authorization request with PKCE, as the bench web app sends it (scope as in signin.ts). */
  authorizeUrl(base: string): { url: URL; verifier: string; state: string } {
    const verifier = b64url(randomBytes(32));
    const state = b64url(randomBytes(12));
    const url = new URL('/auth', base);
    url.search = new URLSearchParams({
      client_id: this.app.clientId, response_type: 'code', scope: 'openid profile email', redirect_uri: this.app.redirectUri,
      state, nonce: b64url(randomBytes(12)), code_challenge: b64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
    }).toString();
    return { url, verifier, state };
  }

  /** The code at the redirect_uri, exchanged at the token endpoint. */
  async exchange(base: string, done: { url: URL; res?: HttpResponse }, state: string, verifier: string): Promise<Tokens> {
    if (done.res) throw new Error(`expected a redirect to the app, got ${done.res.status} at ${done.url.pathname}: ${done.res.body.slice(0, 200)}`);
    if (done.url.searchParams.get('state') !== state) throw new Error('state mismatch');
    const code = done.url.searchParams.get('code');
    if (!code) throw new Error(`no code (${done.url.searchParams.get('error') ?? 'no error'}: ${done.url.searchParams.get('error_description') ?? ''})`);
    this.requests += 1;
    if (this.onStep) await this.onStep('POST /token (authorization_code)');
    const token = await request(this.agent, new URL('/token', base), {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basicAuth(this.app.clientId, this.app.clientSecret), accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: this.app.redirectUri, code_verifier: verifier }).toString(),
    });
    if (token.status !== 200) throw new Error(`token: ${token.status} ${token.body.slice(0, 200)}`);
    return JSON.parse(token.body) as Tokens;
  }
}

const json = (res: HttpResponse, what: string): unknown => {
  if (res.status !== 200) throw new Error(`${what}: ${res.status} ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body) as unknown;
};

export async function passkeySignIn(base: string, agent: http.Agent, app: WebApp, authenticator: SoftAuthenticator, onStep?: StepHook): Promise<SignInResult> {
  const b = new Browser(agent, app, onStep);
  const { url, verifier, state } = b.authorizeUrl(base);
  const page = await b.follow(url, await b.send(url));
  const flow = /^\/login\/([0-9a-f-]{36})$/.exec(page.url.pathname)?.[1];
  if (!page.res || page.res.status !== 200 || !flow) throw new Error(`authorize: expected the sign-in page, got ${page.res?.status ?? 'a redirect'} at ${page.url.pathname}`);
  const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page.res.body)?.[1];
  if (!csrf) throw new Error('sign-in page without a csrf-token meta tag');
  const headers = { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': csrf };

  const options = json(await b.send(new URL(`/login/${flow}/passkey/options`, base), { method: 'POST', body: '{}', headers }), 'passkey options') as PublicKeyCredentialRequestOptionsJSON;
  const response = authenticator.authenticate(options);
  const verified = json(await b.send(new URL(`/login/${flow}/passkey`, base), { method: 'POST', body: JSON.stringify({ response }), headers }), 'passkey') as { redirect?: string };
  if (typeof verified.redirect !== 'string') throw new Error('passkey: no redirect in the answer');

  const next = new URL(verified.redirect, base);
  const done = await b.follow(next, await b.send(next));
  return { tokens: await b.exchange(base, done, state, verifier), requests: b.requests };
}

/** The ceiling's sign-in: nothing to prove, the interaction finishes at once. */
export async function bareCodeFlow(base: string, agent: http.Agent, app: WebApp, onStep?: StepHook): Promise<SignInResult> {
  const b = new Browser(agent, app, onStep);
  const { url, verifier, state } = b.authorizeUrl(base);
  const done = await b.follow(url, await b.send(url));
  return { tokens: await b.exchange(base, done, state, verifier), requests: b.requests };
}
