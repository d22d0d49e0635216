// Password hashing with argon2id. Parameters come from config; a hash made with weaker
// parameters is replaced at the owner's next successful sign-in.
import argon2 from 'argon2';

export interface PasswordParams { memoryCost: number; timeCost: number; parallelism: number }

export class PasswordHasher {
  readonly #params: PasswordParams;
  #dummyHash: Promise<string> | undefined;

  constructor(params: PasswordParams) {
    this.#params = params;
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, { type: argon2.argon2id, ...this.#params });
  }

  async verify(hash: string, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, password);
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

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;
