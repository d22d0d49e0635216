// Password hashing: argon2id, and how many hashes run at once so that a token's signature never
// waits behind them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { hashSlots, PasswordHasher } from '../../src/credentials/password.ts';

const PARAMS = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

describe('hashSlots', () => {
  it('hashes as many at once as libuv\'s pool has threads or the process has CPUs, whichever is fewer', () => {
    expect(hashSlots('1', 2)).toBe(1);
    expect(hashSlots('2', 2)).toBe(2);
    expect(hashSlots('3', 2)).toBe(2); // the third thread stays free for signatures
    expect(hashSlots('8', 1)).toBe(1);
    // libuv's default pool (4) when unset or not a count; its maximum (1024) above that.
    expect(hashSlots(undefined, 2)).toBe(2);
    expect(hashSlots(undefined, 16)).toBe(4);
    expect(hashSlots('', 16)).toBe(4);
    expect(hashSlots('two', 16)).toBe(4);
    expect(hashSlots('0', 16)).toBe(4);
    expect(hashSlots('5000', 2048)).toBe(1024);
    expect(hashSlots('4', 0)).toBe(1);
  });
});

describe('PasswordHasher', () => {
  it('verifies what it hashed, refuses other passwords and malformed hashes', async () => {
    const hasher = new PasswordHasher(PARAMS, 1);
    const hashes = await Promise.all(['first password', 'second password'].map((p) => hasher.hash(p)));
    expect(hashes[0]).toMatch(/^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    const checks = await Promise.all([
      hasher.verify(hashes[0]!, 'first password'), hasher.verify(hashes[1]!, 'second password'),
      hasher.verify(hashes[0]!, 'second password'), hasher.verify('not a hash', 'first password'),
    ]);
    expect(checks).toEqual([true, true, false, false]);
    expect(await hasher.burn('anything')).toBe(false);
  });

  // Four sign-ins' hashes are under way when an RS256 token is signed by OneID's signing key
  // (keys/signing-key.ts, which hands RS256 to libuv's pool), in a node with a pool of `pool`
  // threads. `slots`: the hasher's hashes at once (hashSlots() when undefined). Gives the order
  // in which they finished.
  const run = promisify(execFile);
  const orderWith = async (pool: string, slots: string): Promise<{ order: string[]; verified: boolean[] }> => {
    const module = new URL('../../src/credentials/password.ts', import.meta.url).href;
    const signingKey = new URL('../../src/keys/signing-key.ts', import.meta.url).href;
    const script = `
      import { generateKeyPairSync } from 'node:crypto';
      import { PasswordHasher } from ${JSON.stringify(module)};
      import { LocalSigningKey } from ${JSON.stringify(signingKey)};
      const hasher = new PasswordHasher(${JSON.stringify(PARAMS)}, ${slots});
      const hash = await hasher.hash('a password');
      const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
      const key = new LocalSigningKey({ ...jwk, kid: 'rs', alg: 'RS256' });
      const order = [];
      const verifies = [1, 2, 3, 4].map((i) => hasher.verify(hash, 'a password').then((ok) => { order.push('hash ' + i); return ok; }));
      // The hashes are handed on within this tick; a hash takes far longer than 2 ms.
      await new Promise((resolve) => setTimeout(resolve, 2));
      const signed = Promise.resolve(key.sign(new Uint8Array(300))).then(() => order.push('signature'));
      const verified = await Promise.all(verifies);
      await signed;
      process.stdout.write(JSON.stringify({ order, verified }));`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, UV_THREADPOOL_SIZE: pool }, encoding: 'utf8',
    });
    const out = JSON.parse(stdout) as { order: string[]; verified: boolean[] };
    expect(out.verified).toEqual([true, true, true, true]);
    expect(out.order).toHaveLength(5);
    return out;
  };

  it('makes a token signed during sign-ins wait for one hash at most, not for every hash queued', async () => {
    // npm start on one core: one thread. The signature comes right after the hash under way.
    expect((await orderWith('1', 'undefined')).order.indexOf('signature')).toBeLessThanOrEqual(1);
    // The same node with every hash handed to libuv at once: the signature comes last.
    expect((await orderWith('1', '4')).order.indexOf('signature')).toBe(4);
  });

  it('leaves a thread free for signatures when the pool has one more than the hashes allowed', async () => {
    expect((await orderWith('2', '1')).order[0]).toBe('signature');
  });
});
