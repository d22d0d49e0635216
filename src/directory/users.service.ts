import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { foldName } from '../shared/names.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, type PasswordHasher } from '../credentials/password.ts';
import { recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor } from '../audit/audit.service.ts';
import { validateCustomAttributes } from './attributes.service.ts';
import { endAllSessions, keepOnlySession } from '../sessions/sessions.service.ts';
import {
  countAdmins, countUsers, findUsersWithCount, deleteOidcStateOfAccount, findOidcClientsOfAccount, type OidcClientOfAccount, renewSignInTimeOfAccount, findUserById, findUsers, insertUser,
  isSignInNameTaken, updateUserById, upsertPasswordCredential, type DbUserRow, type User, type UserEmail, type UserFilter, type UserStatus,
} from './users.repo.ts';

export const ADMIN_ROLES = ['super_admin', 'user_admin', 'app_admin', 'auditor'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

// A sign-in name as HR systems and identity providers send it (RFC 7643 leaves userName free):
// letters and digits of any script and the punctuation of email addresses and Entra or Okta
// user principal names (a guest's `#EXT#`, `+tags`, apostrophes); no spaces or control
// characters. Stored folded (shared/names.ts: NFKC, lower case, trimmed), as sign-in looks it up.
const username = z.string().overwrite(foldName).regex(
  /^[\p{L}\p{N}_][\p{L}\p{M}\p{N}.@_+'#!$%&*=?^`{|}~/-]{0,253}$/u,
  "letters, digits and the punctuation of email addresses (. _ @ - + ' # and the like), 1-254 characters, no spaces",
);
// Fold (and so trim) before the format check: in z.email().trim() the check sees the untrimmed value.
const email = z.string().overwrite(foldName).max(254).pipe(z.email());
const emails = z.array(z.strictObject({ value: email, type: z.string().max(50).optional(), primary: z.boolean().optional() })).max(20)
  // Compared as stored (folded): D@x.com and d@x.com are one address.
  .refine((list) => new Set(list.map((e) => e.value)).size === list.length, 'each address once (compared in lower case)')
  .refine((list) => list.filter((e) => e.primary).length <= 1, 'at most one primary address');
const text = (max: number) => z.string().trim().min(1).max(max);
const locale = z.string().regex(/^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/, 'a BCP 47 language tag such as en or zh-CN');

export const createUserInput = z.strictObject({
  username,
  email: email.optional(),
  emails: emails.optional(),
  password: z.string().min(PASSWORD_MIN_LENGTH, `at least ${PASSWORD_MIN_LENGTH} characters`).max(PASSWORD_MAX_LENGTH).optional(),
  name: text(200).optional(),
  givenName: text(100).optional(),
  familyName: text(100).optional(),
  locale: locale.optional(),
  emailVerified: z.boolean().optional(),
  phone: text(50).optional(),
  employeeNumber: text(100).optional(),
  title: text(200).optional(),
  managerId: z.uuid().optional(),
  externalId: text(255).optional(),
  customAttributes: z.record(z.string(), z.unknown()).optional(),
  status: z.enum(['active', 'suspended']).optional(),
  adminRoles: z.array(z.enum(ADMIN_ROLES)).optional(),
});
export type CreateUserInput = z.input<typeof createUserInput>;

/** PATCH semantics: absent = unchanged, null = cleared. Status changes go through lifecycle actions. */
export const updateUserInput = z.strictObject({
  username: username.optional(),
  email: email.nullable().optional(),
  emails: emails.optional(),
  name: text(200).nullable().optional(),
  givenName: text(100).nullable().optional(),
  familyName: text(100).nullable().optional(),
  locale: locale.nullable().optional(),
  emailVerified: z.boolean().optional(),
  phone: text(50).nullable().optional(),
  employeeNumber: text(100).nullable().optional(),
  title: text(200).nullable().optional(),
  managerId: z.uuid().nullable().optional(),
  externalId: text(255).nullable().optional(),
  customAttributes: z.record(z.string(), z.unknown()).optional(),
  adminRoles: z.array(z.enum(ADMIN_ROLES)).optional(),
  password: z.string().min(PASSWORD_MIN_LENGTH, `at least ${PASSWORD_MIN_LENGTH} characters`).max(PASSWORD_MAX_LENGTH).optional(),
});
export type UpdateUserInput = z.input<typeof updateUserInput>;

/**
 * A write by a provisioning client (SCIM). The client states every attribute itself, so nothing
 * is derived (a display name is not split into given and family name). Its email list may hold
 * values that are not addresses (RFC 7643: "SHOULD" be addresses) and addresses that other
 * accounts also list; the primary one (else the first) becomes the sign-in email only when it
 * is an address that no other account signs in with (as its username or email), otherwise the
 * account has no sign-in email (the person signs in by username). `scimAttributes` replaces the
 * stored SCIM attributes that OneID does not model; it is opaque to the directory.
 */
export interface ProvisionedWrite {
  scimAttributes?: Record<string, unknown>;
}

const provisionedEmails = z.array(z.strictObject({
  value: z.string().trim().min(1).max(254).refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed'),
  type: z.string().max(50).optional(),
  primary: z.boolean().optional(),
  display: z.string().max(254).optional(),
})).max(20);
const createProvisionedUserInput = createUserInput.extend({ emails: provisionedEmails.optional() });
const updateProvisionedUserInput = updateUserInput.extend({ emails: provisionedEmails.optional() });
const SCIM_ATTRIBUTES_MAX_BYTES = 65536;

function checkScimAttributes(attrs: Record<string, unknown> | undefined): void {
  if (attrs !== undefined && Buffer.byteLength(JSON.stringify(attrs)) > SCIM_ATTRIBUTES_MAX_BYTES) {
    throw new AppError('invalid_argument', 'user.scim_attributes_too_large', `scimAttributes: at most ${SCIM_ATTRIBUTES_MAX_BYTES} bytes of JSON`, { field: 'scimAttributes' });
  }
}

export function parseInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') path = [...path, ...issue.keys];
    const field = path.join('.') || 'body';
    throw new AppError('invalid_argument', 'request.invalid', `${field}: ${issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message}`, { field });
  }
  return parsed.data;
}

function uniqueViolation(err: unknown): never {
  const constraint = String((err as { constraint?: string }).constraint ?? '');
  const field = constraint.includes('email') ? 'email' : constraint.includes('external_id') ? 'externalId' : 'username';
  // sign_in_names__*: the name is another account's username or sign-in email (one namespace,
  // kept by the users__sign_in_names trigger, see migration 20261206130000).
  const message = constraint.startsWith('sign_in_names')
    ? `another account already signs in with this ${field} (as its username or email)`
    : `a user with this ${field} already exists`;
  throw new AppError('already_exists', `user.${field === 'externalId' ? 'external_id' : field}_taken`, message, { field });
}

/** The primary email is mirrored into `email` (used for sign-in and the email claim). */
function reconcileEmails(primary: string | null | undefined, list: { value: string; type?: string; primary?: boolean }[] | undefined) {
  if (list === undefined) {
    if (primary === undefined) return {};
    return { email: primary, emails: primary ? [{ value: primary, type: 'work', primary: true }] : [] };
  }
  const chosen = primary ?? list.find((e) => e.primary)?.value ?? list[0]?.value ?? null;
  const normalised = list.map((e) => ({ ...e, primary: e.value === chosen }));
  if (chosen && !normalised.some((e) => e.value === chosen)) normalised.unshift({ value: chosen, type: 'work', primary: true });
  return { email: chosen, emails: normalised };
}

/**
 * Addresses are stored folded (shared/names.ts), as sign-in names are; other values as sent.
 * At most one primary (the first flagged).
 */
export function normaliseProvisionedEmails(list: UserEmail[]): UserEmail[] {
  let primarySeen = false;
  return list.map((e) => {
    const address = email.safeParse(e.value);
    const out: UserEmail = { value: address.success ? address.data : e.value };
    if (e.type !== undefined) out.type = e.type;
    if (e.display !== undefined) out.display = e.display;
    if (e.primary !== undefined) {
      out.primary = e.primary && !primarySeen;
      if (e.primary) primarySeen = true;
    }
    return out;
  });
}

async function provisionedSignInEmail(trx: Knex.Transaction, list: UserEmail[], userId: string | undefined): Promise<string | null> {
  const chosen = (list.find((e) => e.primary) ?? list[0])?.value;
  if (!chosen || !email.safeParse(chosen).success || chosen !== foldName(chosen)) return null;
  return (await isSignInNameTaken(trx, chosen, userId)) ? null : chosen;
}

function splitName(name: string | null | undefined): { given: string | null; family: string | null } {
  if (!name) return { given: null, family: null };
  const parts = name.split(/\s+/);
  return { given: parts[0] ?? null, family: parts.length > 1 ? parts.slice(1).join(' ') : null };
}

export const LIFECYCLE_ACTIONS = { suspend: 'suspended', reactivate: 'active', deprovision: 'deprovisioned' } as const;
export type LifecycleAction = keyof typeof LIFECYCLE_ACTIONS;

export class UsersService {
  constructor(private readonly db: Knex, private readonly hasher: PasswordHasher) {}

  /** With `provisioned`, the write follows the rules of ProvisionedWrite (SCIM). */
  async createUser(raw: CreateUserInput, actor: Actor = SYSTEM_ACTOR, provisioned?: ProvisionedWrite): Promise<User> {
    const input = parseInput(provisioned ? createProvisionedUserInput : createUserInput, raw);
    checkScimAttributes(provisioned?.scimAttributes);
    const hash = input.password ? await this.hasher.hash(input.password) : undefined;
    let given = input.givenName ?? null;
    let family = input.familyName ?? null;
    if (input.name && !given && !family && !provisioned) ({ given, family } = splitName(input.name));
    let mail: { email?: string | null; emails?: UserEmail[] } = reconcileEmails(input.email, input.emails);
    try {
      return await this.db.transaction(async (trx) => {
        if (provisioned && input.emails && input.email === undefined) {
          const emails = normaliseProvisionedEmails(input.emails);
          mail = { email: await provisionedSignInEmail(trx, emails, undefined), emails };
        }
        const customAttributes = await validateCustomAttributes(trx, input.customAttributes ?? {}, true);
        if (input.managerId) await this.#assertManager(trx, input.managerId);
        const user = await insertUser(trx, {
          id: newId(),
          username: input.username,
          email: mail.email ?? null,
          emails: mail.emails ?? [],
          email_verified: input.emailVerified ?? false,
          given_name: given,
          family_name: family,
          display_name: input.name ?? ([given, family].filter(Boolean).join(' ') || null),
          locale: input.locale ?? null,
          phone: input.phone ?? null,
          employee_number: input.employeeNumber ?? null,
          title: input.title ?? null,
          manager_id: input.managerId ?? null,
          external_id: input.externalId ?? null,
          custom_attributes: customAttributes,
          ...(provisioned?.scimAttributes ? { scim_attributes: provisioned.scimAttributes } : {}),
          status: input.status ?? 'active',
          admin_roles: input.adminRoles ?? [],
        });
        if (hash) await upsertPasswordCredential(trx, newId(), user.id, hash);
        const { password: _p, ...audited } = input;
        await recordAudit(trx, actor, {
          action: 'user.created', targetType: 'user', targetId: user.id,
          changes: { ...audited, passwordSet: Boolean(hash), ...(provisioned?.scimAttributes ? { scimAttributes: Object.keys(provisioned.scimAttributes) } : {}) },
        });
        return user;
      });
    } catch (err) {
      if (isUniqueViolation(err)) uniqueViolation(err);
      throw err;
    }
  }

  async getUser(id: string): Promise<User> {
    const user = await findUserById(this.db, id);
    if (!user) throw new AppError('not_found', 'user.not_found', 'no user with this id');
    return user;
  }

  listUsers(filter: UserFilter): Promise<User[]> {
    return findUsers(this.db, filter);
  }

  /** A page of users and how many match the filter (one pass over a search's matches). */
  listUsersWithCount(filter: UserFilter): Promise<{ users: User[]; total: number }> {
    return findUsersWithCount(this.db, filter);
  }

  /** How many users match the filter (its paging aside). */
  countUsers(filter: Omit<UserFilter, 'limit' | 'after' | 'offset' | 'sort' | 'order'>): Promise<number> {
    return countUsers(this.db, filter);
  }

  /**
   * Partial update; with expectedVersion, a stale version gives failed_precondition (412).
   * A new password ends every session, grant, code and refresh token of the person in the same
   * transaction (whoever set it may have done so because the old one leaked), except, with
   * `keepSessionUid`, the session the person changed their own password from (see setPassword).
   * OneID's own sessions (sessions/) end the same way, except `keepSessionId`.
   */
  async updateUser(id: string, raw: UpdateUserInput, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, provisioned?: ProvisionedWrite, keepSessionUid?: string, keepSessionId?: string): Promise<User> {
    const input = parseInput(provisioned ? updateProvisionedUserInput : updateUserInput, raw);
    checkScimAttributes(provisioned?.scimAttributes);
    const hash = input.password ? await this.hasher.hash(input.password) : undefined;
    try {
      return await this.db.transaction(async (trx) => {
        const current = await findUserById(trx, id);
        if (!current) throw new AppError('not_found', 'user.not_found', 'no user with this id');
        if (expectedVersion !== undefined && current.version !== expectedVersion) {
          throw new AppError('failed_precondition', 'user.version_mismatch', `the user changed since version ${expectedVersion} (now ${current.version})`);
        }
        // As for status changes: a deprovisioned account keeps its id and history, nothing else.
        if (current.status === 'deprovisioned') {
          throw new AppError('failed_precondition', 'user.deprovisioned', 'a deprovisioned user cannot be changed; create a new account');
        }
        const changes: Partial<DbUserRow> = {};
        if (input.username !== undefined) changes.username = input.username;
        let mail: { email?: string | null; emails?: UserEmail[] } = reconcileEmails(input.email, input.emails);
        if (provisioned && input.emails && input.email === undefined) {
          const emails = normaliseProvisionedEmails(input.emails);
          mail = { email: await provisionedSignInEmail(trx, emails, id), emails };
        }
        if (mail.email !== undefined) changes.email = mail.email;
        if (mail.emails !== undefined) changes.emails = mail.emails;
        if (input.name !== undefined) {
          changes.display_name = input.name;
          if (input.givenName === undefined && input.familyName === undefined && !provisioned) {
            const { given, family } = splitName(input.name);
            changes.given_name = given;
            changes.family_name = family;
          }
        }
        if (input.givenName !== undefined) changes.given_name = input.givenName;
        if (input.familyName !== undefined) changes.family_name = input.familyName;
        if (input.locale !== undefined) changes.locale = input.locale;
        // A new sign-in address is unverified unless this same write says it is verified: the
        // verification of the old one says nothing about an address someone else chose.
        if (input.emailVerified !== undefined) changes.email_verified = input.emailVerified;
        else if (changes.email !== undefined && changes.email !== current.email && current.emailVerified) changes.email_verified = false;
        if (input.phone !== undefined) changes.phone = input.phone;
        if (input.employeeNumber !== undefined) changes.employee_number = input.employeeNumber;
        if (input.title !== undefined) changes.title = input.title;
        if (input.externalId !== undefined) changes.external_id = input.externalId;
        if (input.adminRoles !== undefined) changes.admin_roles = input.adminRoles;
        if (input.managerId !== undefined) {
          if (input.managerId === id) throw new AppError('invalid_argument', 'user.self_manager', 'managerId: a user cannot be their own manager', { field: 'managerId' });
          if (input.managerId) await this.#assertManager(trx, input.managerId);
          changes.manager_id = input.managerId;
        }
        if (input.customAttributes !== undefined) {
          changes.custom_attributes = await validateCustomAttributes(trx, { ...current.customAttributes, ...input.customAttributes }, true);
        }
        if (provisioned?.scimAttributes !== undefined) changes.scim_attributes = provisioned.scimAttributes;
        // The person's admin API tokens (JWTs, not recallable) issued before now stop working too.
        const endedAt = new Date();
        if (hash) changes.sessions_ended_at = endedAt;
        const updated = await updateUserById(trx, id, changes, current.version);
        if (!updated) throw new AppError('failed_precondition', 'user.version_mismatch', 'the user changed during the update; retry');
        let ended = 0;
        if (hash) {
          await upsertPasswordCredential(trx, newId(), id, hash);
          ended = await deleteOidcStateOfAccount(trx, id, keepSessionUid);
          // The kept session is checked against the new end of sessions too (oidc/provider.ts):
          // its sign-in time moves past it, as the person just proved who they are there.
          if (keepSessionUid !== undefined) await renewSignInTimeOfAccount(trx, id, Math.floor(endedAt.getTime() / 1000) + 1);
          if (keepSessionId !== undefined) await keepOnlySession(trx, id, keepSessionId, endedAt, 'password_set', actor);
          else await endAllSessions(trx, id, 'password_set', actor);
        }
        const { password: _p, ...audited } = input;
        // A password set shows as passwordChanged: true, beside nothing: neither side holds a hash.
        await recordAudit(trx, actor, {
          action: 'user.updated', targetType: 'user', targetId: id,
          changes: {
            ...audited,
            ...(hash ? { passwordChanged: true, endedOidcRecords: ended, ...(keepSessionUid !== undefined ? { keptSessionUid: keepSessionUid } : {}), ...(keepSessionId !== undefined ? { keptSessionId: keepSessionId } : {}) } : {}),
            ...(input.emailVerified === undefined && changes.email_verified === false ? { emailVerified: false } : {}),
            ...(provisioned?.scimAttributes !== undefined ? { scimAttributes: Object.keys(provisioned.scimAttributes) } : {}),
          },
          before: {
            ...valuesBefore(current, audited, { name: 'displayName' }),
            ...(provisioned?.scimAttributes !== undefined ? { scimAttributes: Object.keys(current.scimAttributes) } : {}),
          },
        });
        return updated;
      });
    } catch (err) {
      if (isUniqueViolation(err)) uniqueViolation(err);
      throw err;
    }
  }

  /**
   * Sets a person's password. Every session, grant, code and refresh token of theirs ends, except,
   * with `keepSessionUid` (the uid of oidc-provider's Session), that session and what was issued
   * under its grants: a person who changes their own password stays signed in where they did it
   * and nowhere else. Their admin API access tokens (JWTs) issued before end in every case; the
   * kept session's app gets new ones with its refresh token. Audited as user.updated with
   * passwordChanged, endedOidcRecords and keptSessionUid. `keepSessionId` does the same for
   * OneID's own session (sessions/): it stays, signed in again now; the person's others end.
   */
  setPassword(id: string, password: string, actor: Actor = SYSTEM_ACTOR, keepSessionUid?: string, keepSessionId?: string): Promise<User> {
    return this.updateUser(id, { password }, actor, undefined, undefined, keepSessionUid, keepSessionId);
  }

  /**
   * suspend / deprovision end every session, grant, code and refresh token of the user in the
   * same transaction (and findAccount refuses inactive users, so nothing issued before works).
   * reactivate restores sign-in but not the old sessions.
   */
  async changeStatus(id: string, action: LifecycleAction, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<User> {
    const target: UserStatus = LIFECYCLE_ACTIONS[action];
    return this.db.transaction(async (trx) => {
      const current = await trx<DbUserRow>('users').where({ id }).forUpdate().first();
      if (!current) throw new AppError('not_found', 'user.not_found', 'no user with this id');
      if (expectedVersion !== undefined && current.version !== expectedVersion) {
        throw new AppError('failed_precondition', 'user.version_mismatch', `the user changed since version ${expectedVersion} (now ${current.version})`);
      }
      if (current.status === 'deprovisioned' && target !== 'deprovisioned') {
        throw new AppError('failed_precondition', 'user.deprovisioned', 'a deprovisioned user cannot be changed; create a new account');
      }
      let ended = 0;
      let oidcClients: OidcClientOfAccount[] | undefined;
      if (target !== 'active') {
        // Which apps held what (with the sids of the sessions) goes into the audit record: the
        // offboarding fan-out that follows a suspension by HR (SCIM) tells those apps.
        oidcClients = await findOidcClientsOfAccount(trx, id);
        ended = await deleteOidcStateOfAccount(trx, id);
        await endAllSessions(trx, id, target === 'suspended' ? 'suspended' : 'deprovisioned', actor);
      }
      const updated = current.status === target
        ? await findUserById(trx, id)
        : await updateUserById(trx, id, { status: target, status_changed_at: new Date() });
      await recordAudit(trx, actor, {
        action: `user.${action === 'reactivate' ? 'reactivated' : action === 'suspend' ? 'suspended' : 'deprovisioned'}`,
        targetType: 'user', targetId: id, changes: { status: { from: current.status, to: target }, endedOidcRecords: ended, ...(oidcClients ? { oidcClients } : {}) }, before: { status: current.status },
      });
      return updated!;
    });
  }

  /**
   * Deprovisions a user and frees what identifies them for a new account: the username becomes
   * `deprovisioned.<id>`, and the sign-in email, the email list and the externalId are cleared
   * (the old values are in the audit event). Like changeStatus('deprovision') it ends every
   * session, grant, code and refresh token in the same transaction; the id and the audit history
   * stay. Used by SCIM DELETE, after which a client may create the same userName again.
   */
  async deprovisionAndRelease(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<User> {
    return this.db.transaction(async (trx) => {
      const current = await trx<DbUserRow>('users').where({ id }).forUpdate().first();
      if (!current) throw new AppError('not_found', 'user.not_found', 'no user with this id');
      if (expectedVersion !== undefined && current.version !== expectedVersion) {
        throw new AppError('failed_precondition', 'user.version_mismatch', `the user changed since version ${expectedVersion} (now ${current.version})`);
      }
      const ended = await deleteOidcStateOfAccount(trx, id);
      await endAllSessions(trx, id, 'deprovisioned', actor);
      const updated = await updateUserById(trx, id, {
        status: 'deprovisioned',
        ...(current.status !== 'deprovisioned' ? { status_changed_at: new Date() } : {}),
        username: `deprovisioned.${id}`,
        email: null,
        emails: [],
        external_id: null,
      });
      await recordAudit(trx, actor, {
        action: 'user.deprovisioned', targetType: 'user', targetId: id,
        changes: {
          status: { from: current.status, to: 'deprovisioned' },
          endedOidcRecords: ended,
          released: { username: current.username, email: current.email, emails: current.emails, externalId: current.external_id },
        },
        before: { status: current.status, username: current.username, email: current.email, emails: current.emails, externalId: current.external_id },
      });
      return updated!;
    });
  }

  async #assertManager(trx: Knex.Transaction, managerId: string): Promise<void> {
    if (!(await findUserById(trx, managerId))) {
      throw new AppError('invalid_argument', 'user.manager_not_found', 'managerId: no user with this id', { field: 'managerId' });
    }
  }

  hasAdmin(): Promise<number> {
    return countAdmins(this.db);
  }
}
