// DPoP (RFC 9449) at OneID's own resource server, the admin API: a token bound to a key (cnf.jkt)
// is accepted only with a fresh proof of possession of that key.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify, type JWTPayload } from 'jose';

/** The proof algorithms accepted: those oidc-provider accepts when it binds a token. */
export const DPOP_ALGS = ['ES256', 'Ed25519', 'EdDSA'];

/** How far a proof's iat may lie from now (seconds): a proof is made for one request, at once. */
const IAT_WINDOW_SECONDS = 60;

export class DpopError extends Error {
  constructor(readonly error: 'invalid_token' | 'invalid_dpop_proof', message: string) {
    super(message);
  }
}

const b64urlSha256 = (value: string): string => createHash('sha256').update(value).digest('base64url');

// One statement: remember the proof unless it was seen (a replay), and let a few expired proofs
// go on the way, so the table holds no more than the proofs of the last minutes.
const REMEMBER = `
  with gone as (
    delete from dpop_proofs where id in (select id from dpop_proofs where expires_at < now() limit 20)
  )
  insert into dpop_proofs (id, expires_at) values (?, now() + make_interval(secs => ?))
  on conflict (id) do nothing
  returning 1 as fresh`;

export interface ProofRequest {
  /** The DPoP header (one proof JWT). */
  proof: string | undefined;
  method: string;
  /** The URL the client addressed, as OneID publishes it (scheme, host and path; no query). */
  url: string;
  /** The access token the proof goes with. */
  accessToken: string;
  /** The token's cnf.jkt. */
  jkt: string;
}

/**
 * Checks a DPoP proof for a bound access token: signature by the embedded public key, typ, alg,
 * htm, htu, iat freshness, ath (the token's hash), the key's thumbprint against cnf.jkt, and a
 * jti not seen before on any node (PostgreSQL). Throws a DpopError saying what is wrong.
 */
export async function verifyDpopProof(db: Knex, req: ProofRequest): Promise<void> {
  if (!req.proof || req.proof.includes(',')) throw new DpopError('invalid_dpop_proof', 'exactly one DPoP proof is required with a DPoP-bound token');
  let payload: JWTPayload;
  let jwk: Record<string, unknown>;
  try {
    const verified = await jwtVerify(req.proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: DPOP_ALGS });
    payload = verified.payload;
    jwk = verified.protectedHeader.jwk as Record<string, unknown>;
  } catch {
    throw new DpopError('invalid_dpop_proof', 'the DPoP proof is not a valid proof JWT');
  }
  if (payload.htm !== req.method) throw new DpopError('invalid_dpop_proof', 'the DPoP proof is for another HTTP method');
  if (typeof payload.htu !== 'string' || !sameResource(payload.htu, req.url)) throw new DpopError('invalid_dpop_proof', 'the DPoP proof is for another URL');
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > IAT_WINDOW_SECONDS) {
    throw new DpopError('invalid_dpop_proof', 'the DPoP proof is too old or from the future');
  }
  if (typeof payload.jti !== 'string' || payload.jti.length < 8 || payload.jti.length > 256) {
    throw new DpopError('invalid_dpop_proof', 'the DPoP proof needs a jti');
  }
  if (payload.ath !== b64urlSha256(req.accessToken)) throw new DpopError('invalid_dpop_proof', 'the DPoP proof is for another access token');
  if (await calculateJwkThumbprint(jwk, 'sha256') !== req.jkt) {
    throw new DpopError('invalid_token', 'the access token is bound to another key than the DPoP proof\'s');
  }
  const id = b64urlSha256(`${req.jkt} ${payload.jti}`);
  const { rows } = await db.raw<{ rows: { fresh: number }[] }>(REMEMBER, [id, 2 * IAT_WINDOW_SECONDS + 5]);
  if (rows.length === 0) throw new DpopError('invalid_dpop_proof', 'the DPoP proof was already used');
}

/** htu and the request's URL name the same resource: compared without query and fragment, normalized. */
function sameResource(htu: string, url: string): boolean {
  try {
    const a = new URL(htu);
    const b = new URL(url);
    return a.origin === b.origin && a.pathname === b.pathname;
  } catch {
    return false;
  }
}
