// OneID's signing keys as oidc-provider sees them: each signs through node:crypto.
//
// By default oidc-provider signs with jose, which goes through WebCrypto: every signature is a
// job on libuv's thread pool, with WebIDL checks and a promise around it. For ES256 that costs
// more than the signature itself (node:crypto's one-shot sign on the calling thread takes a
// fraction of the time), and each token waits for a
// pool thread, which password hashes also occupy. oidc-provider's ExternalSigningKey (feature
// externalSigningSupport) hands the signing to the key itself, so:
// - ES256 signs synchronously on the event loop: a P-256 signature blocks it for ~0.05 ms,
//   less than the round trip to a pool thread.
// - RS256 (2048-bit, ~1 ms) keeps to the pool, through node:crypto's asynchronous sign: a
//   millisecond on the event loop per ID token would hold up every other request.
// The token format is unchanged (JWS compact, ECDSA signatures as r||s per RFC 7518 §3.4):
// relying parties verify with the same JWKS. The private key stays a KeyObject in this process.
import { createPrivateKey, createPublicKey, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { ExternalSigningKey } from 'oidc-provider';
import type { SigningAlg } from './keys.service.ts';

/** How each algorithm OneID's keystore makes keys for (keys.service.ts) is signed. */
const SIGNERS: Record<SigningAlg, (data: Uint8Array, key: KeyObject) => Uint8Array | Promise<Uint8Array>> = {
  ES256: (data: Uint8Array, key: KeyObject): Uint8Array => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }),
  RS256: (data: Uint8Array, key: KeyObject): Promise<Uint8Array> => new Promise((resolve, reject) => {
    sign('sha256', data, key, (err, signature) => (err ? reject(err) : resolve(signature)));
  }),
};

const isAlg = (alg: unknown): alg is SigningAlg => typeof alg === 'string' && Object.hasOwn(SIGNERS, alg);

export class LocalSigningKey extends ExternalSigningKey {
  readonly #private: KeyObject;
  readonly #public: KeyObject;
  readonly #sign: (data: Uint8Array, key: KeyObject) => Uint8Array | Promise<Uint8Array>;

  /** From a private JWK with `kid` and `alg` (as keys.service.ts stores them). */
  constructor(jwk: JWK) {
    super();
    const { kid, alg } = jwk;
    if (!kid) throw new Error('a signing key needs a kid');
    if (!isAlg(alg)) throw new Error(`signing key ${kid}: alg ${String(alg)} is not one OneID signs with`);
    // Throws for a JWK without its private part.
    this.#private = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
    this.#public = createPublicKey(this.#private);
    this.#sign = SIGNERS[alg];
    // The base class keeps kid and alg behind setters its type declarations leave out.
    Object.assign(this as object, { kid, alg });
  }

  /** The public half: oidc-provider publishes it in the JWKS and verifies its own tokens with it. */
  override keyObject(): KeyObject {
    return this.#public;
  }

  override sign(data: Uint8Array): Uint8Array | Promise<Uint8Array> {
    return this.#sign(data, this.#private);
  }
}

/** The private JWKS from keys.service.ts as oidc-provider's `jwks` configuration. */
export function signingKeys(jwks: { keys: JWK[] }): { keys: LocalSigningKey[] } {
  return { keys: jwks.keys.map((jwk) => new LocalSigningKey(jwk)) };
}
