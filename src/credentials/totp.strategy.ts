// Authenticator apps (TOTP, RFC 6238): 30 s steps, 6 digits, HMAC-SHA-1, what every app
// supports. One credentials row of type 'totp' per person:
//   data = { secret, confirmed, lastStep, pending? }
// `secret` is the base32 seed encrypted with the master key (we must compute codes from it).
// While confirmed is false the row is an enrolment in progress and `secret` is its new seed.
// Once confirmed, a new enrolment does not touch the working seed: it waits in `pending`
// (encrypted too) and replaces `secret` only when a code from it is confirmed, so a person who
// abandons a re-enrolment keeps the app that works.
// `lastStep` is the time step of the last code accepted; a code of that step or an earlier one
// is refused, on every node: accepting is one conditional UPDATE on it.
import QRCode from 'qrcode';
import { generateSecret, generateURI, NobleCryptoPlugin, ScureBase32Plugin, TOTP } from 'otplib';
import type { Knex } from 'knex';
import type { MasterKey } from '../keys/master-key.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import type { CredentialStrategy, Proof, Verified } from './methods.ts';

export const TOTP_PERIOD = 30;
export const TOTP_DIGITS = 6;
/** Steps accepted either side of the current one: clocks of phones drift and people are slow. */
export const TOTP_WINDOW = 1;

interface TotpData {
  secret: string;
  confirmed: boolean;
  lastStep: number;
  pending?: string | null;
}

interface TotpRow { id: string; data: TotpData }

export interface TotpOptions {
  /** Seconds since the epoch; tests move it to check the window. */
  now?: () => number;
}

/** "123 456" -> "123456"; anything that is not then six digits is undefined. */
export function normaliseTotpCode(code: unknown): string | undefined {
  if (typeof code !== 'string' || code.length > 32) return undefined;
  const digits = code.replace(/[\s-]/g, '');
  return /^\d{6}$/.test(digits) ? digits : undefined;
}

type Match = { step: number } | { reason: 'invalid' | 'replayed' };

export class TotpStrategy implements CredentialStrategy {
  readonly method = 'totp' as const;
  readonly #db: Knex;
  readonly #key: MasterKey;
  readonly #issuer: string;
  readonly #now: () => number;
  readonly #totp = new TOTP({ crypto: new NobleCryptoPlugin(), base32: new ScureBase32Plugin(), algorithm: 'sha1', digits: TOTP_DIGITS, period: TOTP_PERIOD });

  constructor(db: Knex, masterKey: MasterKey, issuerLabel: string, options: TotpOptions = {}) {
    this.#db = db;
    this.#key = masterKey;
    this.#issuer = issuerLabel;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  async isEnrolled(userId: string): Promise<boolean> {
    const row = await this.#db('credentials').where({ user_id: userId, type: 'totp' }).whereRaw("(data->>'confirmed')::boolean").first('id');
    return row !== undefined;
  }

  /**
   * A new seed, pending until confirmEnrolment proves a code from it. It replaces any earlier
   * pending seed; a confirmed one keeps working meanwhile. `secret` is for typing in by hand.
   */
  async beginEnrolment(userId: string, accountLabel: string): Promise<{ secret: string; otpauthUri: string; qrSvg: string }> {
    const secret = generateSecret({ length: 20 }); // 160 bits, RFC 4226's recommendation
    const sealed = this.#key.encrypt(secret);
    await this.#db.transaction(async (trx) => {
      await lockUser(trx, userId);
      const row = await findTotpRow(trx, userId);
      if (!row) {
        await trx('credentials').insert({ id: newId(), user_id: userId, type: 'totp', data: JSON.stringify({ secret: sealed, confirmed: false, lastStep: 0 } satisfies TotpData) });
      } else if (!row.data.confirmed) {
        await trx('credentials').where({ id: row.id }).update({ data: JSON.stringify({ secret: sealed, confirmed: false, lastStep: 0 } satisfies TotpData), updated_at: trx.fn.now() });
      } else {
        await trx('credentials').where({ id: row.id }).update({ data: trx.raw("data || jsonb_build_object('pending', ?::text)", [sealed]) });
      }
    });
    return this.#setup(secret, accountLabel);
  }

  /**
   * The enrolment in progress, shown again (after a mistyped code the person keeps the key they
   * have already scanned); undefined when none is pending.
   */
  async pendingEnrolment(userId: string, accountLabel: string): Promise<{ secret: string; otpauthUri: string; qrSvg: string } | undefined> {
    const row = await findTotpRow(this.#db, userId);
    const sealed = row && (row.data.confirmed ? row.data.pending : row.data.secret);
    return sealed ? this.#setup(this.#key.decrypt(sealed), accountLabel) : undefined;
  }

  async #setup(secret: string, accountLabel: string): Promise<{ secret: string; otpauthUri: string; qrSvg: string }> {
    const otpauthUri = generateURI({ issuer: this.#issuer, label: accountLabel, secret, algorithm: 'sha1', digits: TOTP_DIGITS, period: TOTP_PERIOD });
    const qrSvg = await QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { secret, otpauthUri, qrSvg };
  }

  /** Proves a code from the pending seed; that seed becomes the person's authenticator. */
  /** Confirms the pending authenticator with a code from it; a refused code is audited. */
  async confirmEnrolment(userId: string, code: string, actor: Actor): Promise<{ ok: true; proof: Proof } | { ok: false; reason: string }> {
    const result = await this.#confirm(userId, code, actor);
    if (!result.ok) {
      await recordAudit(this.#db, actor, { action: 'totp.enrolment_refused', targetType: 'user', targetId: userId, changes: { reason: result.reason } });
    }
    return result;
  }

  async #confirm(userId: string, code: string, actor: Actor): Promise<{ ok: true; proof: Proof } | { ok: false; reason: string }> {
    const token = normaliseTotpCode(code);
    if (!token) return { ok: false, reason: 'malformed' };
    return this.#db.transaction(async (trx) => {
      // One confirmation at a time per person: a second node confirming the same code finds
      // nothing pending any more.
      await lockUser(trx, userId);
      const row = await findTotpRow(trx, userId);
      const sealed = row && (row.data.confirmed ? row.data.pending : row.data.secret);
      if (!row || !sealed) return { ok: false as const, reason: 'not_pending' };
      const match = await this.#match(this.#key.decrypt(sealed), token, undefined);
      if ('reason' in match) return { ok: false as const, reason: match.reason };
      const replaced = row.data.confirmed;
      // The confirming code counts as used: it cannot sign in again.
      await trx('credentials').where({ id: row.id }).update({
        data: JSON.stringify({ secret: sealed, confirmed: true, lastStep: match.step } satisfies TotpData),
        updated_at: trx.fn.now(), last_used_at: trx.fn.now(),
      });
      await recordAudit(trx, actor, { action: 'totp.enrolled', targetType: 'user', targetId: userId, changes: { replaced } });
      return { ok: true as const, proof: this.#proof() };
    });
  }

  /** A code from the person's confirmed authenticator; each time step is accepted once, cluster-wide. */
  async verify(userId: string, code: string): Promise<Verified> {
    const token = normaliseTotpCode(code);
    if (!token) return { ok: false, reason: 'malformed', userId };
    const row = await findTotpRow(this.#db, userId);
    if (!row?.data.confirmed) return { ok: false, reason: 'not_enrolled', userId };
    const lastStep = Number(row.data.lastStep);
    const match = await this.#match(this.#key.decrypt(row.data.secret), token, lastStep);
    if ('reason' in match) return { ok: false, reason: match.reason, userId };
    // Two nodes verifying the same code at once: only one of them moves lastStep past it. The
    // seed must still be the one the code was checked against (a re-enrolment confirmed meanwhile).
    const accepted = await this.#db('credentials')
      .where({ id: row.id })
      .whereRaw("(data->>'lastStep')::bigint < ?", [match.step])
      .whereRaw("data->>'secret' = ?", [row.data.secret])
      .whereRaw("(data->>'confirmed')::boolean")
      .update({ data: this.#db.raw("jsonb_set(data, '{lastStep}', to_jsonb(?::bigint))", [match.step]), last_used_at: this.#db.fn.now() });
    if (accepted !== 1) return { ok: false, reason: 'replayed', userId };
    return { ok: true, userId, proof: this.#proof() };
  }

  /**
   * Removes the person's authenticator (and any enrolment in progress). True when a confirmed
   * one was removed; cancelling an unconfirmed enrolment alone changes no credential, so it is
   * not audited and gives false.
   */
  async remove(userId: string, actor: Actor): Promise<boolean> {
    return this.#db.transaction(async (trx) => {
      const removed = await trx.raw("delete from credentials where user_id = ? and type = 'totp' returning (data->>'confirmed')::boolean as confirmed", [userId]);
      if (!(removed.rows as { confirmed: boolean }[]).some((r) => r.confirmed)) return false;
      await recordAudit(trx, actor, { action: 'totp.removed', targetType: 'user', targetId: userId });
      return true;
    });
  }

  /**
   * The time step of `token` within the window around now. otplib's afterTimeStep skips the
   * steps already used; it throws when that bound lies past the window (a code of a later step
   * was accepted, and this node's clock is behind), so it is capped there: every step in the
   * window is then used. A code refused only because of that bound is told apart (a second
   * check without it) so the audit log can say 'replayed'.
   */
  async #match(secret: string, token: string, lastStep: number | undefined): Promise<Match> {
    const epoch = this.#now();
    const options = { secret, epoch, epochTolerance: TOTP_WINDOW * TOTP_PERIOD };
    const last = lastStep !== undefined && Number.isSafeInteger(lastStep) && lastStep > 0 ? lastStep : undefined;
    const highest = Math.floor(epoch / TOTP_PERIOD) + TOTP_WINDOW;
    const result = await this.#totp.verify(token, last !== undefined ? { ...options, afterTimeStep: Math.min(last, highest) } : options);
    if (result.valid) return { step: result.timeStep };
    if (last !== undefined && (await this.#totp.verify(token, options)).valid) return { reason: 'replayed' };
    return { reason: 'invalid' };
  }

  #proof(): Proof {
    return { method: 'totp', at: this.#now(), amr: ['otp'] };
  }
}

async function findTotpRow(db: Knex | Knex.Transaction, userId: string): Promise<TotpRow | undefined> {
  return db('credentials').where({ user_id: userId, type: 'totp' }).orderBy('created_at').first<TotpRow | undefined>('id', 'data');
}

/**
 * Serialises changes to one person's credentials of a kind across nodes. NO KEY UPDATE: rows
 * that merely reference the person (sessions, audit) are not held up.
 */
async function lockUser(trx: Knex.Transaction, userId: string): Promise<void> {
  const user = await trx('users').where({ id: userId }).forNoKeyUpdate().first('id');
  if (!user) throw new AppError('not_found', 'user.not_found', 'no such user');
}
