// Recovery codes: ten one-time codes a person keeps on paper for when their second factor is
// lost. Each is 10 characters of Crockford's base32 (no I, L, O or U; 50 bits), shown as
// two groups of five joined by a dash (7k2mq-9xw4t); typing is forgiving (case, spaces, dashes, O for 0, I and L for 1).
// One credentials row of type 'recovery' per code: data = { prefix, hash }, last_used_at set
// when it is used. Using a code is one conditional UPDATE of exactly its row, so two nodes
// given the same code at once accept it once.
// `hash` is argon2id (a slow hash for what people type). The first two characters (`prefix`)
// are stored in the clear and differ between a person's ten codes, so a code is checked with
// one argon2 verification, not ten. That leaves 40 secret bits behind argon2id: beyond an
// offline search of a stolen table, and far beyond guessing through a throttled sign-in form.
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import type { CredentialStrategy, Proof, Verified } from './methods.ts';
import type { PasswordHasher } from './password.ts';

export const RECOVERY_CODE_COUNT = 10;
const CODE_LENGTH = 10;
const PREFIX_LENGTH = 2;
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford's base32, lower-case as shown

interface RecoveryRow { id: string; data: { prefix: string; hash: string }; last_used_at: Date | null }

export interface RecoveryOptions {
  /** Seconds since the epoch (Proof.at). */
  now?: () => number;
}

/** What a person typed, as stored: lower-case, no separators, O read as 0 and I, L as 1. Undefined when it cannot be a code. */
export function normaliseRecoveryCode(code: unknown): string | undefined {
  if (typeof code !== 'string' || code.length > 64) return undefined;
  const text = code.toLowerCase().replace(/[\s\-_]/g, '').replace(/o/g, '0').replace(/[il]/g, '1');
  return text.length === CODE_LENGTH && [...text].every((c) => ALPHABET.includes(c)) ? text : undefined;
}

/** Codes as they are shown: two groups of five joined by a dash. */
export const formatRecoveryCode = (code: string): string => `${code.slice(0, 5)}-${code.slice(5)}`;

/** Ten random codes whose prefixes differ. 32 divides 256, so a byte's low five bits are uniform. */
function newCodes(): string[] {
  const codes: string[] = [];
  const prefixes = new Set<string>();
  while (codes.length < RECOVERY_CODE_COUNT) {
    const code = [...randomBytes(CODE_LENGTH)].map((b) => ALPHABET[b & 31]).join('');
    const prefix = code.slice(0, PREFIX_LENGTH);
    if (prefixes.has(prefix)) continue;
    prefixes.add(prefix);
    codes.push(code);
  }
  return codes;
}

export class RecoveryCodes implements CredentialStrategy {
  readonly method = 'recovery_code' as const;
  readonly #db: Knex;
  readonly #hasher: PasswordHasher;
  readonly #now: () => number;

  constructor(db: Knex, hasher: PasswordHasher, options: RecoveryOptions = {}) {
    this.#db = db;
    this.#hasher = hasher;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** At least one unused code. */
  async isEnrolled(userId: string): Promise<boolean> {
    return (await this.remaining(userId)) > 0;
  }

  /** Ten new codes (shown once, never stored in the clear); the earlier ones stop working. */
  async generate(userId: string, actor: Actor): Promise<string[]> {
    const codes = newCodes();
    // Hashed before the transaction: the person's row stays locked for milliseconds, not the
    // second ten argon2 hashes take.
    const hashes = await Promise.all(codes.map((code) => this.#hasher.hash(code)));
    await this.#db.transaction(async (trx) => {
      // Two generations at once would otherwise each delete only what they saw and leave twenty.
      const user = await trx('users').where({ id: userId }).forNoKeyUpdate().first('id');
      if (!user) throw new AppError('not_found', 'user.not_found', 'no such user');
      const voided = await trx('credentials').where({ user_id: userId, type: 'recovery' }).del();
      await trx('credentials').insert(codes.map((code, i) => ({
        id: newId(), user_id: userId, type: 'recovery',
        data: JSON.stringify({ prefix: code.slice(0, PREFIX_LENGTH), hash: hashes[i] }),
      })));
      await recordAudit(trx, actor, { action: 'recovery_codes.generated', targetType: 'user', targetId: userId, changes: { count: codes.length, voided } });
    });
    return codes.map(formatRecoveryCode);
  }

  /** Uses up one code. The caller audits the sign-in; `remaining` tells it how many are left. */
  async verify(userId: string, code: string): Promise<Verified & { remaining?: number }> {
    const typed = normaliseRecoveryCode(code);
    if (!typed) return { ok: false, reason: 'malformed', userId };
    const rows: RecoveryRow[] = await this.#db('credentials').where({ user_id: userId, type: 'recovery' }).select('id', 'data', 'last_used_at');
    if (!rows.length) return { ok: false, reason: 'not_enrolled', userId };
    const row = rows.find((r) => r.data.prefix === typed.slice(0, PREFIX_LENGTH));
    // An unknown prefix takes as long as a wrong code: the time does not tell prefixes apart.
    if (!row) {
      await this.#hasher.burn(typed);
      return { ok: false, reason: 'invalid', userId };
    }
    if (!(await this.#hasher.verify(row.data.hash, typed))) return { ok: false, reason: 'invalid', userId };
    if (row.last_used_at) return { ok: false, reason: 'used', userId };
    const taken = await this.#db('credentials').where({ id: row.id }).whereNull('last_used_at').update({ last_used_at: this.#db.fn.now() });
    if (taken !== 1) return { ok: false, reason: 'used', userId };
    const proof: Proof = { method: 'recovery_code', at: this.#now(), amr: ['otp'] };
    return { ok: true, userId, proof, remaining: await this.remaining(userId) };
  }

  async remaining(userId: string): Promise<number> {
    const [row] = await this.#db('credentials').where({ user_id: userId, type: 'recovery' }).whereNull('last_used_at').count<{ n: number }[]>({ n: '*' });
    return Number(row?.n ?? 0);
  }
}
