import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, type PasswordHasher } from '../credentials/password.ts';
import {
  countAdmins, findPasswordCredential, findUserByLogin, insertUser, upsertPasswordCredential, type User,
} from './users.repo.ts';

export const ADMIN_ROLES = ['super_admin', 'user_admin', 'app_admin', 'auditor'] as const;

export const createUserInput = z.object({
  username: z.string().trim().toLowerCase().regex(/^[a-z0-9][a-z0-9._@-]{0,99}$/, 'letters, digits and . _ @ - only, 1-100 characters, starting with a letter or digit'),
  email: z.email().trim().toLowerCase().max(254).optional(),
  password: z.string().min(PASSWORD_MIN_LENGTH, `at least ${PASSWORD_MIN_LENGTH} characters`).max(PASSWORD_MAX_LENGTH).optional(),
  name: z.string().trim().min(1).max(200).optional(),
  givenName: z.string().trim().min(1).max(100).optional(),
  familyName: z.string().trim().min(1).max(100).optional(),
  locale: z.string().regex(/^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/).optional(),
  emailVerified: z.boolean().optional(),
  adminRoles: z.array(z.enum(ADMIN_ROLES)).optional(),
}).strict();

export type CreateUserInput = z.input<typeof createUserInput>;

export function parseInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'body';
    throw new AppError('invalid_argument', 'request.invalid', `${field}: ${issue.message}`, { field });
  }
  return parsed.data;
}

export class UsersService {
  constructor(private readonly db: Knex, private readonly hasher: PasswordHasher) {}

  async createUser(raw: CreateUserInput): Promise<User> {
    const input = parseInput(createUserInput, raw);
    const hash = input.password ? await this.hasher.hash(input.password) : undefined;
    let given = input.givenName ?? null;
    let family = input.familyName ?? null;
    if (input.name && !given && !family) {
      const parts = input.name.split(/\s+/);
      given = parts[0] ?? null;
      family = parts.length > 1 ? parts.slice(1).join(' ') : null;
    }
    try {
      return await this.db.transaction(async (trx) => {
        const user = await insertUser(trx, {
          id: newId(),
          username: input.username,
          email: input.email ?? null,
          email_verified: input.emailVerified ?? false,
          given_name: given,
          family_name: family,
          display_name: input.name ?? ([given, family].filter(Boolean).join(' ') || null),
          locale: input.locale ?? null,
          status: 'active',
          admin_roles: input.adminRoles ?? [],
        });
        if (hash) await upsertPasswordCredential(trx, newId(), user.id, hash);
        return user;
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        const field = String((err as { constraint?: string }).constraint).includes('email') ? 'email' : 'username';
        throw new AppError('already_exists', `user.${field}_taken`, `a user with this ${field} already exists`, { field });
      }
      throw err;
    }
  }

  /**
   * Checks a username-or-email and password. Unknown users, users without a password and
   * inactive users cost the same argon2 work as a wrong password and get the same answer.
   */
  async authenticate(login: string, password: string): Promise<User | undefined> {
    if (!login || !password || login.length > 254 || password.length > PASSWORD_MAX_LENGTH) {
      await this.hasher.burn(password.slice(0, PASSWORD_MAX_LENGTH));
      return undefined;
    }
    const user = await findUserByLogin(this.db, login);
    const cred = user ? await findPasswordCredential(this.db, user.id) : undefined;
    if (!user || !cred?.data.hash) {
      await this.hasher.burn(password);
      return undefined;
    }
    const ok = await this.hasher.verify(cred.data.hash, password);
    if (!ok || user.status !== 'active') return undefined;
    if (this.hasher.needsRehash(cred.data.hash)) {
      await upsertPasswordCredential(this.db, cred.id, user.id, await this.hasher.hash(password));
    }
    return user;
  }

  hasAdmin(): Promise<number> {
    return countAdmins(this.db);
  }
}
