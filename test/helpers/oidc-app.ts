// A relying party the way a real app is written: openid-client v6 against OneID's discovery
// document, the code flow with PKCE (S256), state and nonce, and every ID token check on
// (signature against the published JWKS, issuer, audience, nonce, expiry). Plain http is allowed
// because test servers listen on http://localhost:<port>.
import http from 'node:http';
import type net from 'node:net';
import * as client from 'openid-client';

export interface RegisteredApp { client_id: string; client_secret?: string }

/** openid-client's configuration for an app registered in the OneID at `issuer`. */
export async function discover(issuer: string, app: RegisteredApp): Promise<client.Configuration> {
  const config = await client.discovery(
    new URL(issuer), app.client_id, undefined,
    app.client_secret ? client.ClientSecretBasic(app.client_secret) : client.None(),
    { execute: [client.allowInsecureRequests] },
  );
  // Also checks the ID token's signature (openid-client skips it for tokens from the token endpoint by default).
  client.enableNonRepudiationChecks(config);
  return config;
}

/** The authorization request parameters: redirect_uri and scope, plus any others (prompt, acr_values, ...). */
export type AuthParams = { redirect_uri: string; scope: string } & Record<string, string>;

/** One authorization request and the secrets its callback is checked against. */
export interface AuthRequest { url: URL; verifier: string; state: string; nonce: string }

export async function authorizationRequest(config: client.Configuration, params: AuthParams): Promise<AuthRequest> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    state, nonce, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...params,
  });
  return { url, verifier, state, nonce };
}

/** Redeems the code in the callback URL (authorization_code grant), checking state, nonce and PKCE. */
export const redeem = (config: client.Configuration, request: AuthRequest, callback: string) => client.authorizationCodeGrant(config, new URL(callback), {
  pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce,
});

/** What an app learns about a sign-in from its ID token. */
export interface IdClaims { sub: string; amr?: string[]; acr?: string; auth_time?: number; sid?: string; [claim: string]: unknown }

export interface SignInOptions {
  scope?: string;
  acr_values?: string;
  max_age?: number;
  prompt?: string;
  /** The claims request parameter (OIDC Core 5.5), e.g. { id_token: { acr: { essential: true, values: [...] } } }. */
  claims?: unknown;
  [param: string]: unknown;
}

export interface SignedIn { tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers; claims: IdClaims }

/** A registered app with its own redirect URI: builds authorization URLs and handles callbacks. */
export interface OidcApp {
  config: client.Configuration;
  redirectUri: string;
  authorizationUrl(opts?: SignInOptions): Promise<AuthRequest>;
  /** Redeems the callback URL's code and returns the checked ID token's claims; throws on an error response. */
  handleCallback(request: AuthRequest, callback: string): Promise<SignedIn>;
}

export async function oidcApp(issuer: string, app: RegisteredApp, redirectUri: string): Promise<OidcApp> {
  const config = await discover(issuer, app);
  return {
    config,
    redirectUri,
    authorizationUrl: (opts = {}) => {
      const { scope = 'openid profile', claims, max_age: maxAge, ...rest } = opts;
      const params: AuthParams = { redirect_uri: redirectUri, scope };
      for (const [k, v] of Object.entries(rest)) if (v !== undefined) params[k] = String(v);
      if (maxAge !== undefined) params.max_age = String(maxAge);
      if (claims !== undefined) params.claims = JSON.stringify(claims);
      return authorizationRequest(config, params);
    },
    handleCallback: async (request, callback) => {
      const tokens = await redeem(config, request, callback);
      const claims = tokens.claims();
      if (!claims) throw new Error('the token response has no ID token');
      return { tokens, claims: claims as IdClaims };
    },
  };
}

/**
 * The app's web server, as far as a browser sees it: every path answers a small page, so a
 * browser sent to the redirect URI lands somewhere real and the test reads the URL it reached.
 * Listens on 127.0.0.1; close() ends it (and any kept-alive connection) so jest does not wait.
 */
export interface CallbackServer { origin: string; redirectUri: string; close(): Promise<void> }

export async function startCallbackServer(): Promise<CallbackServer> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><title>App</title><p id="app-callback">${req.method} ${req.url?.length ?? 0}</p>`);
  });
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    redirectUri: `${origin}/callback`,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
