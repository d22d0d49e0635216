// What an administrator sees of a person's sign-in methods and may take away: whether they have a
// password, their passkeys (name and dates), whether an authenticator app is set up and how many
// recovery codes are left. Never a secret: no hash, no public key, no TOTP seed. A removal is
// the help desk's answer to a lost phone or security key; the person sets the method up again at
// their next sign-in or on their security page.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { isUuid } from '../directory/users.repo.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';

export interface PasskeySummary { id: string; name: string; createdAt: Date; lastUsedAt: Date | null }

export interface MethodsSummary {
  password: boolean;
  passkeys: PasskeySummary[];
  totp: boolean;
  recoveryCodesRemaining: number;
}

export type RemovableMethod = 'passkey' | 'totp' | 'recovery_codes';

// An authenticator app counts once a code from it was confirmed; before that the row is an
// enrolment in progress (totp.strategy.ts: data.confirmed).
const TOTP_CONFIRMED = "coalesce((c.data->>'confirmed')::boolean, false)";

const userNotFound = (): AppError => new AppError('not_found', 'user.not_found', 'no user with this id');

/** A passkey the person did not name: shown as their security page shows it. */
const passkeyName = (name: string | null): string => name ?? 'Passkey';

export class MethodsService {
  constructor(private readonly db: Knex | Knex.Transaction) {}

  async listMethods(userId: string): Promise<MethodsSummary> {
    if (!isUuid(userId)) throw userNotFound();
    // Whether the user exists and what they have set up, counted in SQL: one row back, plus
    // the passkeys (a person has a handful).
    const [facts] = (await this.db.raw(`
      select exists (select 1 from credentials c where c.user_id = u.id and c.type = 'password') as password,
             exists (select 1 from credentials c where c.user_id = u.id and c.type = 'totp' and ${TOTP_CONFIRMED}) as totp,
             (select count(*) from credentials c where c.user_id = u.id and c.type = 'recovery' and c.last_used_at is null)::int as recovery
        from users u where u.id = ?`, [userId])).rows as { password: boolean; totp: boolean; recovery: number }[];
    if (!facts) throw userNotFound();
    const passkeys = await this.db('credentials').where({ user_id: userId, type: 'webauthn' })
      .orderBy([{ column: 'created_at' }, { column: 'id' }])
      .select<{ id: string; name: string | null; created_at: Date; last_used_at: Date | null }[]>('id', 'name', 'created_at', 'last_used_at');
    return {
      password: facts.password,
      passkeys: passkeys.map((p) => ({ id: p.id, name: passkeyName(p.name), createdAt: p.created_at, lastUsedAt: p.last_used_at })),
      totp: facts.totp,
      recoveryCodesRemaining: facts.recovery,
    };
  }

  /**
   * Removes one passkey (`id`: its id as listMethods gives it), the authenticator app, or every
   * recovery code, and records it in the audit log with the administrator who did it, in one
   * transaction. Nothing to remove is a not_found naming what was missing. The person's current
   * sessions are left alone: a lost device is not a stolen account (suspend the person for that).
   */
  async removeMethod(userId: string, kind: RemovableMethod, id: string | undefined, actor: Actor): Promise<void> {
    if (!isUuid(userId)) throw userNotFound();
    await this.db.transaction(async (trx) => {
      // The person's row, locked: a removal and a concurrent change of the same person queue up.
      const user = await trx('users').where({ id: userId }).forUpdate().first('id');
      if (!user) throw userNotFound();
      if (kind === 'passkey') {
        const [removed] = id && isUuid(id)
          ? await trx('credentials').where({ id, user_id: userId, type: 'webauthn' }).delete().returning<{ id: string; name: string | null }[]>(['id', 'name'])
          : [];
        if (!removed) throw new AppError('not_found', 'passkey.not_found', 'this person has no passkey with this id');
        await recordAudit(trx, actor, {
          action: 'passkey.removed', targetType: 'user', targetId: userId,
          // As the passkey strategy records a removal by the person (keyId: not redacted as a credential).
          changes: { keyId: removed.id, name: removed.name },
        });
        return;
      }
      if (kind === 'totp') {
        // Only a working authenticator app is removed by name; an enrolment the person has not
        // finished goes with it (it would otherwise replace the removed app when confirmed).
        const confirmed = await trx('credentials as c').where({ 'c.user_id': userId, 'c.type': 'totp' }).whereRaw(TOTP_CONFIRMED).first('c.id');
        if (!confirmed) throw new AppError('not_found', 'totp.not_enrolled', 'this person has no authenticator app set up');
        await trx('credentials').where({ user_id: userId, type: 'totp' }).delete();
        await recordAudit(trx, actor, { action: 'totp.removed', targetType: 'user', targetId: userId });
        return;
      }
      const removed = await trx('credentials').where({ user_id: userId, type: 'recovery' }).delete().returning<{ last_used_at: Date | null }[]>('last_used_at');
      if (!removed.length) throw new AppError('not_found', 'recovery_codes.none', 'this person has no recovery codes');
      await recordAudit(trx, actor, {
        action: 'recovery_codes.removed', targetType: 'user', targetId: userId, changes: { unusedCodes: removed.filter((r) => r.last_used_at === null).length },
      });
    });
  }
}
