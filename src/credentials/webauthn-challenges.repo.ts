// WebAuthn challenges, kept in the database so that any node can check the answer to one that
// another node issued. Each is taken out with one DELETE ... RETURNING: of two nodes handed the
// same answer at once, only one gets the row, so a challenge is accepted once in the cluster.
import type { Tx } from '../db/knex.ts';

export type ChallengePurpose = 'register' | 'authenticate';

export interface DbWebauthnChallengeRow {
  challenge: string;
  binding: string;
  purpose: ChallengePurpose;
  user_id: string | null;
  expires_at: Date;
}

export interface IssuedChallenge {
  challenge: string;
  binding: string;
  purpose: ChallengePurpose;
  userId: string | null;
}

/**
 * Stores a challenge valid for `ttlSeconds` (database clock, the same on every node). Expired
 * challenges are removed in the same statement: nothing else cleans the table, and the index on
 * expires_at keeps that cheap.
 */
export async function insertWebauthnChallenge(db: Tx, c: IssuedChallenge, ttlSeconds: number): Promise<void> {
  await db.raw(
    `with expired as (delete from webauthn_challenges where expires_at < now())
     insert into webauthn_challenges (challenge, binding, purpose, user_id, expires_at)
     values (?, ?, ?, ?, now() + make_interval(secs => ?))`,
    [c.challenge, c.binding, c.purpose, c.userId, ttlSeconds],
  );
}

export type ConsumedChallenge =
  | { ok: true; challenge: IssuedChallenge }
  /** unknown: never issued, or already used (a replay); other_binding: issued to another flow or session. */
  | { ok: false; reason: 'challenge_unknown' | 'challenge_other_binding' | 'challenge_wrong_purpose' | 'challenge_expired' };

/**
 * Takes a challenge out, if it was issued to `binding` for `purpose` and has not expired. A
 * challenge presented by another binding is left in place (its own browser may still answer it);
 * the reason of a refusal is looked up afterwards, for the audit log only.
 */
export async function consumeWebauthnChallenge(db: Tx, challenge: string, binding: string, purpose: ChallengePurpose): Promise<ConsumedChallenge> {
  const [row] = await db('webauthn_challenges')
    .where({ challenge, binding, purpose })
    .andWhere('expires_at', '>', db.fn.now())
    .delete()
    .returning('*') as DbWebauthnChallengeRow[];
  if (row) return { ok: true, challenge: { challenge: row.challenge, binding: row.binding, purpose: row.purpose, userId: row.user_id } };
  const other = await db('webauthn_challenges').where({ challenge }).first<DbWebauthnChallengeRow | undefined>();
  if (!other) return { ok: false, reason: 'challenge_unknown' };
  if (other.binding !== binding) return { ok: false, reason: 'challenge_other_binding' };
  if (other.purpose !== purpose) return { ok: false, reason: 'challenge_wrong_purpose' };
  return { ok: false, reason: 'challenge_expired' };
}
