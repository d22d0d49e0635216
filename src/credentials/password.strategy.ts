// The password method: checks a username-or-email and password for a sign-in. Unknown people,
// people without a password and inactive people cost the same argon2 work as a wrong password
// and get the same answer. Attempts are counted by the throttle (signin-throttle.ts) before any
// password work.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { foldName } from '../shared/names.ts';
import { hasCredentialOfUser } from './credentials.repo.ts';
import { findUserByLoginWithPassword, upsertPasswordCredential, type User } from '../directory/users.repo.ts';
import { PASSWORD_MAX_LENGTH, type PasswordHasher } from './password.ts';
import type { CredentialStrategy, Proof } from './methods.ts';

export interface SignInContext { ip?: string | null; userAgent?: string | null; clientId?: string | null }

/** A sign-in attempt counted by a throttle (see PasswordStrategy.signIn). */
export interface SignInTicket {
  /** Seconds to wait before another attempt; 0: the attempt may check its password. */
  retryAfter: number;
  /** Called after a right password. */
  succeeded(): Promise<void>;
}

/**
 * Whom a sign-in attempt counts against for throttling: the account the name finds (so its
 * username and each of its emails share one count), else the name itself (folded, as stored),
 * by its SHA-256: a typed name of up to 254 characters, longer once folded, must not overflow
 * the counter's key (255 characters).
 */
export function signInSubject(login: string, user?: { id: string }): string {
  return user ? `user:${user.id}` : `name:${createHash('sha256').update(foldName(login)).digest('base64url')}`;
}

export interface PasswordSignIn {
  /** The person the name found: signed in only with a proof (else named for the audit log). */
  user?: User;
  /** Why it was refused (for the audit log only). */
  reason?: string;
  subject: string;
  /** Seconds to wait: the attempt was refused by the throttle without checking the password. */
  retryAfter: number;
  /** What the right password proved; `at` is when the check started (see signIn). */
  proof?: Proof;
}

export class PasswordStrategy implements CredentialStrategy {
  readonly method = 'password' as const;

  constructor(private readonly db: Knex, private readonly hasher: PasswordHasher) {}

  async isEnrolled(userId: string): Promise<boolean> {
    return hasCredentialOfUser(this.db, userId, 'password');
  }

  /** Whether the name and password sign in; the person, or undefined. */
  async authenticate(login: string, password: string): Promise<User | undefined> {
    const result = await this.signIn(login, password);
    return result.proof ? result.user : undefined;
  }

  /**
   * Checks the password, with a gate for throttling: `admit` hears whom the attempt counts
   * against (see signInSubject) before any password work and counts it there; its ticket's
   * retryAfter says to wait (the attempt is refused: no hash, nothing written). The attempt stays
   * counted unless the password is right, when the ticket's succeeded() clears the count.
   *
   * The proof's time (the sign-in's auth_time) is when the check started, before the password
   * was read: a password set meanwhile ends the sign-in (sessions older than the person's
   * sessions_ended_at are not live), whenever its writes land. A password set in that same second
   * and already seen by this check counts from the next second (times are compared in seconds).
   */
  async signIn(login: string, password: string, admit?: (subject: string) => Promise<SignInTicket>): Promise<PasswordSignIn> {
    const startedAt = Math.floor(Date.now() / 1000);
    const malformed = !login || !password || login.length > 254 || password.length > PASSWORD_MAX_LENGTH;
    const found = malformed ? undefined : await findUserByLoginWithPassword(this.db, login);
    const subject = signInSubject(login, found?.user);
    const ticket = admit ? await admit(subject) : undefined;
    if (ticket && ticket.retryAfter > 0) return { subject, retryAfter: ticket.retryAfter, reason: 'throttled' };
    const result = malformed ? await this.#refuse(password, 'malformed') : await this.#check(found, password);
    if (!result.ok) return { subject, retryAfter: 0, user: result.user, reason: result.reason };
    if (ticket) await ticket.succeeded();
    const endedAt = found?.sessionsEndedAt;
    const at = endedAt ? Math.max(startedAt, Math.floor(endedAt.getTime() / 1000) + 1) : startedAt;
    return { user: result.user, subject, retryAfter: 0, proof: { method: 'password', at, amr: ['pwd'] } };
  }

  async #refuse(password: string, reason: string, user?: User): Promise<{ ok: false; user?: User; reason: string }> {
    await this.hasher.burn(password.slice(0, PASSWORD_MAX_LENGTH));
    return { ok: false, user, reason };
  }

  async #check(found: Awaited<ReturnType<typeof findUserByLoginWithPassword>>, password: string): Promise<{ ok: boolean; user?: User; reason?: string }> {
    const user = found?.user;
    const cred = found?.password;
    if (!user || !cred?.data.hash) return this.#refuse(password, user ? 'no_password' : 'unknown_user', user);
    const ok = await this.hasher.verify(cred.data.hash, password);
    if (!ok) return { ok: false, user, reason: 'bad_password' };
    if (user.status !== 'active') return { ok: false, user, reason: `user_${user.status}` };
    if (this.hasher.needsRehash(cred.data.hash)) {
      await upsertPasswordCredential(this.db, cred.id, user.id, await this.hasher.hash(password));
    }
    return { ok: true, user };
  }
}
