// One-time links with which a person chooses their own password: an administrator creates one
// (admin API POST /users/{id}/setup-link) and hands it over; the person opens it at
// /password-setup. Stored like the first-run setup links (setup.service.ts): only the SHA-256
// of the token, used once, until it expires; a newer link for the same person voids the older.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newSecret, sha256 } from '../shared/ids.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import type { PasswordHasher } from '../credentials/password.ts';
import { findUserById, type User } from './users.repo.ts';
import { UsersService } from './users.service.ts';

export const SETUP_LINK_PATH = '/password-setup';
export const SETUP_LINK_DEFAULT_DAYS = 7;

const invalidLink = (): AppError => new AppError('failed_precondition', 'password_setup.invalid_link', 'this set-up link is unknown, used or expired');

interface LinkRow { user_id: string; expires_at: Date }

export class PasswordSetupLinks {
  constructor(private readonly db: Knex, private readonly hasher: PasswordHasher) {}

  /**
   * A new link for the person (inside the caller's transaction, `trx`): the token, shown once,
   * and when it expires. Earlier open links of the person stop working.
   */
  async create(trx: Knex.Transaction, userId: string, days: number, actor: Actor): Promise<{ token: string; expiresAt: Date; user: User }> {
    const user = await findUserById(trx, userId);
    if (!user) throw new AppError('not_found', 'user.not_found', 'no user with this id');
    if (user.status === 'deprovisioned') {
      throw new AppError('failed_precondition', 'user.deprovisioned', 'a deprovisioned user cannot be changed; create a new account');
    }
    const voided = await trx('password_setup_links').where({ user_id: userId }).whereNull('used_at').update({ used_at: trx.fn.now() });
    const token = newSecret(32);
    const expiresAt = new Date(Date.now() + days * 24 * 3600 * 1000);
    await trx('password_setup_links').insert({ token_hash: sha256(token), user_id: userId, expires_at: expiresAt, created_by: JSON.stringify(actor) });
    await recordAudit(trx, actor, {
      action: 'user.password_setup_link_created', targetType: 'user', targetId: userId,
      changes: { expiresAt: expiresAt.toISOString(), voidedLinks: voided },
    });
    return { token, expiresAt, user };
  }

  /** The person an open link is for, or undefined (unknown, used, expired, or the person is gone). */
  async personOf(token: string): Promise<User | undefined> {
    if (!token || token.length > 200) return undefined;
    const row = await this.db('password_setup_links').where({ token_hash: sha256(token) }).whereNull('used_at')
      .andWhere('expires_at', '>', this.db.fn.now()).first<LinkRow | undefined>('user_id', 'expires_at');
    if (!row) return undefined;
    const user = await findUserById(this.db, row.user_id);
    return user && user.status !== 'deprovisioned' ? user : undefined;
  }

  /**
   * Sets the person's password with the link and burns it, in one transaction: of two uses at once
   * the second finds the link used. The password is set as an administrator would set it (every
   * session of the person ends); a refused password (the directory's rules) leaves the link open.
   */
  async use(token: string, password: string, actor: Omit<Actor, 'type' | 'id'>): Promise<User> {
    if (!token || token.length > 200) throw invalidLink();
    return this.db.transaction(async (trx) => {
      const [row] = await trx('password_setup_links').where({ token_hash: sha256(token) }).whereNull('used_at')
        .andWhere('expires_at', '>', trx.fn.now()).update({ used_at: trx.fn.now() }).returning<{ user_id: string }[]>('user_id');
      if (!row) throw invalidLink();
      const person: Actor = { ...actor, type: 'user', id: row.user_id };
      const current = await findUserById(trx, row.user_id);
      if (!current || current.status === 'deprovisioned') throw invalidLink();
      const user = await new UsersService(trx, this.hasher).setPassword(row.user_id, password, person);
      await recordAudit(trx, person, { action: 'user.password_setup_link_used', targetType: 'user', targetId: row.user_id, changes: { passwordChanged: true } });
      return user;
    });
  }
}
