// First run: while no administrator exists, a one-time setup link lets a person create one.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newSecret, sha256 } from '../shared/ids.ts';
import type { User } from './users.repo.ts';
import { countAdmins } from './users.repo.ts';
import type { UsersService } from './users.service.ts';

const SETUP_TTL_MS = 24 * 3600 * 1000;

export class SetupService {
  constructor(private readonly db: Knex, private readonly users: UsersService) {}

  /** Returns a fresh one-time token when no administrator exists, otherwise undefined. */
  async issueTokenIfNeeded(): Promise<string | undefined> {
    if ((await countAdmins(this.db)) > 0) return undefined;
    const token = newSecret(32);
    await this.db('setup_tokens').insert({ token_hash: sha256(token), expires_at: new Date(Date.now() + SETUP_TTL_MS) });
    return token;
  }

  async isValid(token: string): Promise<boolean> {
    if (!token) return false;
    const row = await this.db('setup_tokens').where({ token_hash: sha256(token) }).whereNull('used_at').andWhere('expires_at', '>', this.db.fn.now()).first();
    return Boolean(row) && (await countAdmins(this.db)) === 0;
  }

  /** Creates the first administrator and burns the token (and every other setup token). */
  async complete(token: string, input: { username: string; email: string; name?: string; password: string }): Promise<User> {
    // Burn every open link in one statement: of two people using two links at once, the
    // second waits on the first's row locks and then finds its own link already used.
    // Only a valid link can burn the others (a made-up token must not lock the admin out).
    const burned: string[] = await this.db('setup_tokens').whereNull('used_at').andWhere('expires_at', '>', this.db.fn.now())
      .whereExists((q) => q.select(this.db.raw('1')).from('setup_tokens as t')
        .where('t.token_hash', sha256(token)).whereNull('t.used_at').andWhere('t.expires_at', '>', this.db.fn.now()))
      .update({ used_at: this.db.fn.now() }).returning('token_hash').then((rows) => rows.map((r: { token_hash: string }) => r.token_hash));
    if (!burned.includes(sha256(token)) || (await countAdmins(this.db)) > 0) {
      throw new AppError('failed_precondition', 'setup.invalid_token', 'setup.invalid');
    }
    try {
      return await this.users.createUser({ ...input, name: input.name || undefined, adminRoles: ['super_admin'] });
    } catch (err) {
      // Bad input must not burn the link: give it back so the person can correct the form.
      await this.db('setup_tokens').where({ token_hash: sha256(token) }).update({ used_at: null });
      throw err;
    }
  }
}
