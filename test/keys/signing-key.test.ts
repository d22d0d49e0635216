// OneID's keys sign through node:crypto (src/keys/signing-key.ts): tokens they sign verify with
// the published public key like any JWS, and an ES256 token does not wait for libuv's pool.
import { pbkdf2 } from 'node:crypto';
import { compactVerify, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { LocalSigningKey, signingKeys } from '../../src/keys/signing-key.ts';

async function privateJwk(alg: 'ES256' | 'RS256', kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

const b64 = (value: string | Uint8Array): string => Buffer.from(value).toString('base64url');

/** A JWS compact serialization signed by `key`, as oidc-provider puts one together. */
async function jws(key: LocalSigningKey, payload: object): Promise<string> {
  const input = `${b64(JSON.stringify({ alg: key.alg, kid: key.kid }))}.${b64(JSON.stringify(payload))}`;
  return `${input}.${b64(await key.sign(Buffer.from(input)))}`;
}

/** What oidc-provider publishes for a key (initialize_keystore.js reads these members). */
const published = (key: LocalSigningKey): JWK => JSON.parse(JSON.stringify({
  kty: key.kty, use: key.use, kid: key.kid, alg: key.alg, crv: key.crv, e: key.e, n: key.n, x: key.x, y: key.y,
})) as JWK;

describe('LocalSigningKey', () => {
  it.each(['ES256', 'RS256'] as const)('signs %s tokens that verify against the published public key, which carries nothing private', async (alg) => {
    const jwk = await privateJwk(alg, `k-${alg}`);
    const key = new LocalSigningKey(jwk);
    expect(key.kid).toBe(`k-${alg}`);
    expect(key.alg).toBe(alg);
    const pub = published(key);
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(pub).not.toHaveProperty(member);
    expect(pub.kty).toBe(jwk.kty);
    if (alg === 'ES256') expect([pub.crv, pub.x, pub.y]).toEqual([jwk.crv, jwk.x, jwk.y]);
    else expect([pub.n, pub.e]).toEqual([jwk.n, jwk.e]);

    const token = await jws(key, { sub: 'someone', aud: 'app' });
    const { payload, protectedHeader } = await compactVerify(token, await importJWK(pub, alg));
    expect(protectedHeader).toEqual({ alg, kid: `k-${alg}` });
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ sub: 'someone', aud: 'app' });
    // JWS ECDSA signatures are r || s (RFC 7518 §3.4), 64 bytes for P-256, not DER.
    if (alg === 'ES256') expect(Buffer.from(token.split('.')[2]!, 'base64url')).toHaveLength(64);

    // A token changed after signing does not verify.
    const [h, , s] = token.split('.');
    const forged = `${h}.${b64(JSON.stringify({ sub: 'someone-else', aud: 'app' }))}.${s}`;
    await expect(compactVerify(forged, await importJWK(pub, alg))).rejects.toThrow(/signature verification failed/);
  });

  it('refuses a key without kid, with an algorithm OneID does not sign with, or without its private part', async () => {
    const es = await privateJwk('ES256', 'k1');
    expect(() => new LocalSigningKey({ ...es, kid: undefined })).toThrow(/needs a kid/);
    expect(() => new LocalSigningKey({ ...es, alg: 'HS256' })).toThrow(/alg HS256 is not one OneID signs with/);
    expect(() => new LocalSigningKey({ ...es, alg: undefined })).toThrow(/is not one OneID signs with/);
    const { d: _private, ...publicOnly } = es;
    expect(() => new LocalSigningKey(publicOnly)).toThrow();
  });

  it('turns the stored private JWKS into one signing key per entry, in order', async () => {
    const keys = [await privateJwk('ES256', 'a'), await privateJwk('RS256', 'b'), await privateJwk('ES256', 'c')];
    expect(signingKeys({ keys }).keys.map((k) => `${k.kid}:${k.alg}`)).toEqual(['a:ES256', 'b:RS256', 'c:ES256']);
  });

  it('signs ES256 without waiting for libuv pool threads that other work holds', async () => {
    const key = new LocalSigningKey(await privateJwk('ES256', 'k'));
    const order: string[] = [];
    // More slow pool jobs than the pool has threads (4 by default; at most 128).
    const busy = Array.from({ length: 8 }, (_, i) => new Promise<void>((resolve, reject) => {
      pbkdf2('secret', 'salt', 200_000, 32, 'sha256', (err) => {
        if (err) reject(err);
        order.push(`pool job ${i}`);
        resolve();
      });
    }));
    const signed = Promise.resolve(key.sign(Buffer.from('header.payload'))).then(() => order.push('ES256 signature'));
    await Promise.all([...busy, signed]);
    expect(order[0]).toBe('ES256 signature');
  });

  it('signs RS256 on libuv\'s pool, so the event loop runs other work meanwhile', async () => {
    const key = new LocalSigningKey(await privateJwk('RS256', 'k'));
    let done = false;
    const signed = Promise.resolve(key.sign(Buffer.from('header.payload'))).then(() => { done = true; });
    // Signed on the event loop, the signature (about 1 ms) would be there within these microtasks;
    // from the pool it comes back in a later turn of the loop at the earliest.
    for (let i = 0; i < 10; i += 1) await Promise.resolve();
    expect(done).toBe(false);
    await signed;
    expect(done).toBe(true);
  });
});
