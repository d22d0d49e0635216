// OpenID Connect Back-Channel Logout 1.0 from OneID's job queue: a logout token (section 2.4),
// signed with OneID's current key of the algorithm the app's ID tokens use (the same JWKS that
// verifies them), POSTed as `logout_token` to the app's backchannel_logout_uri (section 2.5).
// 200 or 204 is the app's acknowledgement; a network error, a timeout, 408, 429 or a 5xx is
// retried by the queue; any other answer (400: the app refused the token) fails the line for good.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { importJWK, SignJWT } from 'jose';
import { loadCurrentSigningJwk } from '../keys/keys.service.ts';
import type { MasterKey } from '../keys/master-key.ts';
import type { App } from '../apps/apps.repo.ts';
import { readBounded } from '../shared/bounded-body.ts';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Seconds a logout token is good for: long enough for clock skew, short against replay (the app also checks jti). */
const LOGOUT_TOKEN_LIFETIME = 120;
const SEND_TIMEOUT_MS = 10_000;

/** The current private signing key of `alg`, decrypted (kept a minute: rotations are rare and every node publishes next keys ahead). */
const keyCache = new Map<string, { at: number; key: { kid: string; key: CryptoKey | Uint8Array } }>();
async function currentKey(db: Knex, master: MasterKey, alg: 'RS256' | 'ES256'): Promise<{ kid: string; key: CryptoKey | Uint8Array }> {
  const cached = keyCache.get(alg);
  if (cached && Date.now() - cached.at < 60_000) return cached.key;
  const { kid, jwk } = await loadCurrentSigningJwk(db, master, alg);
  const key = { kid, key: await importJWK(jwk, alg) };
  keyCache.set(alg, { at: Date.now(), key });
  return key;
}

export interface LogoutTokenInput { issuer: string; clientId: string; sub: string; sid?: string; alg: 'RS256' | 'ES256' }

export async function signLogoutToken(db: Knex, master: MasterKey, t: LogoutTokenInput): Promise<string> {
  const { kid, key } = await currentKey(db, master, t.alg);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...(t.sid ? { sid: t.sid } : {}) })
    .setProtectedHeader({ alg: t.alg, kid, typ: 'logout+jwt' })
    .setIssuer(t.issuer).setAudience(t.clientId).setSubject(t.sub)
    .setIssuedAt(now).setExpirationTime(now + LOGOUT_TOKEN_LIFETIME).setJti(randomUUID())
    .sign(key);
}

/** The app's answer to one attempt. */
export type SendOutcome = { ok: true; detail: string } | { ok: false; retryable: boolean; detail: string };

/** Text from an app fit for the receipt: printable, short. */
const tidy = (text: string): string => text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 200);

async function post(uri: string, token: string): Promise<SendOutcome> {
  let res: Response;
  try {
    res = await fetch(uri, {
      method: 'POST', redirect: 'manual', signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ logout_token: token }),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    return { ok: false, retryable: true, detail: `could not reach the app (${tidy(String(cause))})` };
  }
  // Section 2.8: the app answers 200 (or 204), or 400 with an OAuth error in JSON.
  // The answer is read only far enough to quote an OAuth error; a larger one is not quoted.
  const body = await readBounded(res, 4096).catch(() => '');
  if (res.status === 200 || res.status === 204) return { ok: true, detail: `HTTP ${res.status}` };
  let said = '';
  try {
    const json = JSON.parse(body) as { error?: unknown; error_description?: unknown };
    said = [json.error, json.error_description].filter((v) => typeof v === 'string').join(': ');
  } catch { /* not JSON: the status says enough */ }
  const detail = `HTTP ${res.status}${said ? ` ${tidy(said)}` : ''}`;
  return { ok: false, retryable: res.status >= 500 || res.status === 408 || res.status === 429, detail };
}

/**
 * Sends the app one logout token per session OneID knew (with its sid) when the app requires the
 * sid, else one token naming the person (sub): every session of theirs at the app ends.
 */
export async function sendBackchannelLogout(db: Knex, master: MasterKey, issuer: string, app: App, sub: string, sids: string[]): Promise<SendOutcome> {
  const uri = app.oidc.backchannel_logout_uri!;
  const alg = app.oidc.id_token_signed_response_alg ?? 'RS256';
  const perSession = app.oidc.backchannel_logout_session_required && sids.length ? sids : [undefined];
  let last: SendOutcome = { ok: true, detail: 'HTTP 200' };
  for (const sid of perSession) {
    last = await post(uri, await signLogoutToken(db, master, { issuer, clientId: app.clientId, sub, sid, alg }));
    if (!last.ok) return last;
  }
  return last;
}

/**
 * Sends the app one logout token for one session of the person there (its sid, with sub), whatever
 * backchannel_logout_session_required says: the person's other sessions at the app stay (suite
 * sign-out, oidc/suite-signout.ts).
 */
export async function sendSessionLogout(db: Knex, master: MasterKey, issuer: string, app: App, sub: string, sid: string): Promise<SendOutcome> {
  const alg = app.oidc.id_token_signed_response_alg ?? 'RS256';
  return post(app.oidc.backchannel_logout_uri!, await signLogoutToken(db, master, { issuer, clientId: app.clientId, sub, sid, alg }));
}
