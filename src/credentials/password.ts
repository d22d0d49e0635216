// Password hashing with argon2id. Parameters come from config; a hash made with weaker
// parameters is replaced at the owner's next successful sign-in.
import { availableParallelism } from 'node:os';
import argon2 from 'argon2';
import pLimit from 'p-limit';

export interface PasswordParams { memoryCost: number; timeCost: number; parallelism: number }

/** libuv's own bounds for UV_THREADPOOL_SIZE: 4 when unset, at most 1024. */
function threadPoolSize(value: string | undefined): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/**
 * How many argon2id hashes run at once: as many as libuv's pool has threads
 * (UV_THREADPOOL_SIZE) or the process has CPUs, whichever is fewer. Further hashes wait here,
 * in order, not in libuv's queue: that queue is shared with RS256 token signatures
 * (keys/signing-key.ts; ES256 ones are signed on the event loop), DNS lookups and file reads.
 * So an RS256 token signed while sign-ins hash waits for one hash at most (the first to
 * finish), not for every hash queued before it (README, Operations). A pool with a thread more
 * than the CPUs keeps that thread for them and nobody waits.
 * More hashes than CPUs at once would not hash faster: on one core, four threads taking turns
 * hash a fifth slower than one.
 */
export function hashSlots(uvThreadPoolSize = process.env.UV_THREADPOOL_SIZE, cpus = availableParallelism()): number {
  return Math.max(1, Math.min(threadPoolSize(uvThreadPoolSize), cpus));
}

export class PasswordHasher {
  readonly #params: PasswordParams;
  readonly #slot: ReturnType<typeof pLimit>;
  #dummyHash: Promise<string> | undefined;

  /** `slots`: hashes at once (see hashSlots). */
  constructor(params: PasswordParams, slots = hashSlots()) {
    this.#params = params;
    this.#slot = pLimit(slots);
  }

  hash(password: string): Promise<string> {
    return this.#slot(() => argon2.hash(password, { type: argon2.argon2id, ...this.#params }));
  }

  async verify(hash: string, password: string): Promise<boolean> {
    try {
      return await this.#slot(() => argon2.verify(hash, password));
    } catch {
      return false;
    }
  }

  needsRehash(hash: string): boolean {
    return argon2.needsRehash(hash, { ...this.#params });
  }

  /**
   * Spends the same work as a real verification, for unknown users, so that a wrong
   * password and an unknown username take the same time.
   */
  async burn(password: string): Promise<false> {
    this.#dummyHash ??= this.hash('oneid-timing-equaliser');
    await this.verify(await this.#dummyHash, password);
    return false;
  }
}

/**
 * The floor for every stored password (NIST SP 800-63B), which administrators and provisioning
 * clients must meet. A password a person chooses for themselves (security page, setup page)
 * meets PASSWORD_MIN_LENGTH from config instead, at least this (password-policy.ts).
 */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;
