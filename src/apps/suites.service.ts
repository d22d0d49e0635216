// Suites (#22): a named set of apps that a company picks and that behave as one product.
//
// A suite assignment is kept as real rows in `assignments`, one per member app (see
// #materialize): entitlements, SCIM provisioning, webhooks and the portal read them like any other
// assignment, with no knowledge of suites. Whatever can change those rows (members, role maps,
// suite roles, suite assignments, the suite itself) recomputes them in its own transaction, with
// an assignment.* audit record per row changed (those are events: provisioning and webhooks react).
//
// Every write takes the suite row FOR UPDATE first (one writer per suite), then its member apps in
// id order (a suite write may update their suite_signin_policy; the order keeps two suites sharing
// apps from deadlocking), and runs the caller's guard on each: an app a caller may not change
// cannot be changed through a suite either.
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { parseInput } from '../directory/users.service.ts';
import { recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor } from '../audit/audit.service.ts';
import { SIGN_IN_POLICIES, type SignInPolicy } from '../access/signin-policy.ts';
import {
  deleteAssignmentById, insertAssignment, principalExists, replaceAssignmentRoles, updateAssignmentById, PRINCIPAL_TYPES,
} from '../access/assignments.repo.ts';
import { findAppById, findAppRoles, isUuid, type App } from './apps.repo.ts';
import { APP_ROLE_KEY, type AppGuard } from './apps.service.ts';
import {
  appRoleKeys, countSuiteAssignments, countSuites, deleteSuiteApp, deleteSuiteAssignmentById, deleteSuiteById, deleteSuiteGrantById,
  deleteSuiteRoleById, existingSuiteRows, findSuiteAssignmentById, findSuiteAssignments, findSuiteById, findSuiteGrantById, findSuiteGrants,
  findSuiteRoleById, findSuites, insertSuite, insertSuiteAssignment, insertSuiteGrant, insertSuiteRole, memberAppIds, refreshSuiteSignInPolicy,
  replaceRoleMap, replaceSuiteAssignmentRoles, updateSuiteAssignmentById, updateSuiteById, updateSuiteGrantById, updateSuiteRoleById,
  upsertSuiteApp, wantedSuiteRows,
  type Suite, type SuiteAssignment, type SuiteAssignmentFilter, type SuiteChanges, type SuiteFilter, type SuiteGrant, type SuiteRole,
} from './suites.repo.ts';

const roleKey = z.string().regex(APP_ROLE_KEY, 'lower-case letters, digits and _ . : - only, 1-100 characters, starting with a letter (e.g. crm.sales)');
const policy = z.enum(SIGN_IN_POLICIES as [SignInPolicy, ...SignInPolicy[]], { error: 'must be password, mfa or phishing_resistant (or null)' });
const suiteName = z.string().trim().min(1).max(200);
const description = z.string().trim().max(2000);
const iconUrl = z.url({ protocol: /^https$/, error: 'must be an https URL' }).max(2048);
const position = z.number().int().min(-1_000_000).max(1_000_000);

export const createSuiteInput = z.strictObject({
  name: suiteName,
  description: description.nullable().optional(),
  /** Shown beside the suite's name in the portal. */
  iconUrl: iconUrl.nullable().optional(),
  /** Order in the portal: lowest first, then by name. */
  position: position.optional(),
  /** Inherited by the member apps unless theirs is stronger. */
  signInPolicy: policy.nullable().optional(),
  /** Signing out of one member app ends the person's sessions in every member app. */
  suiteSignout: z.boolean().optional(),
});
export type CreateSuiteInput = z.input<typeof createSuiteInput>;

/** PATCH semantics: absent = unchanged, null = cleared. */
export const updateSuiteInput = z.strictObject({
  name: suiteName.optional(),
  description: description.nullable().optional(),
  iconUrl: iconUrl.nullable().optional(),
  position: position.optional(),
  signInPolicy: policy.nullable().optional(),
  suiteSignout: z.boolean().optional(),
});
export type UpdateSuiteInput = z.input<typeof updateSuiteInput>;

export const suiteAppInput = z.strictObject({
  position: position.optional(),
  /** Suite role key -> keys of this app's roles it gives; replaces the app's whole map (absent: unchanged). */
  roleMap: z.record(roleKey, z.array(roleKey).max(100)).refine((m) => Object.keys(m).length <= 100, 'at most 100 suite roles').optional(),
});
export type SuiteAppInput = z.input<typeof suiteAppInput>;

export const createSuiteRoleInput = z.strictObject({
  key: roleKey,
  name: z.string().trim().min(1).max(200),
  description: description.optional(),
});
export type CreateSuiteRoleInput = z.input<typeof createSuiteRoleInput>;

export const updateSuiteRoleInput = z.strictObject({
  key: roleKey.optional(),
  name: z.string().trim().min(1).max(200).optional(),
  description: description.nullable().optional(),
});
export type UpdateSuiteRoleInput = z.input<typeof updateSuiteRoleInput>;

export const createSuiteAssignmentInput = z.strictObject({
  principalType: z.enum(PRINCIPAL_TYPES),
  principalId: z.uuid(),
  /** Only for departments: everyone in the department's subtree, all levels down. */
  includeSubdepartments: z.boolean().optional(),
  /** Suite roles, by key. */
  roleKeys: z.array(roleKey).max(100).optional(),
});
export type CreateSuiteAssignmentInput = z.input<typeof createSuiteAssignmentInput>;

export const updateSuiteAssignmentInput = z.strictObject({
  includeSubdepartments: z.boolean().optional(),
  /** Replaces the suite roles (absent: unchanged). */
  roleKeys: z.array(roleKey).max(100).optional(),
});
export type UpdateSuiteAssignmentInput = z.input<typeof updateSuiteAssignmentInput>;

/** RFC 6749 section 3.3 scope-token: printable ASCII but space, double quote and backslash. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,200}$/, 'an OAuth scope token (printable ASCII, no spaces, quotes or backslashes; at most 200 characters)');
const maxAge = z.number().int().positive().max(31_536_000);

export const createSuiteGrantInput = z.strictObject({
  /** App A, which acts for the signed-in person. */
  clientAppId: z.uuid(),
  /** App B, whose API A calls. */
  audienceAppId: z.uuid(),
  /** The most A may ask for at B. */
  scopes: z.array(scopeToken).max(50),
  /** B's role keys the tokens may carry; null or absent: all the person holds. */
  roles: z.array(roleKey).max(100).nullable().optional(),
  /** The least the person's sign-in must reach. */
  minSignInPolicy: policy.nullable().optional(),
  /** The oldest the person's sign-in may be, in seconds. */
  maxAgeSeconds: maxAge.nullable().optional(),
});
export type CreateSuiteGrantInput = z.input<typeof createSuiteGrantInput>;

export const updateSuiteGrantInput = z.strictObject({
  scopes: z.array(scopeToken).max(50).optional(),
  roles: z.array(roleKey).max(100).nullable().optional(),
  minSignInPolicy: policy.nullable().optional(),
  maxAgeSeconds: maxAge.nullable().optional(),
});
export type UpdateSuiteGrantInput = z.input<typeof updateSuiteGrantInput>;

const suiteNotFound = (): AppError => new AppError('not_found', 'suite.not_found', 'no suite with this id');
const appNotFound = (): AppError => new AppError('not_found', 'app.not_found', 'no app with this id');
const notMember = (): AppError => new AppError('not_found', 'suite_app.not_found', 'this app is not in the suite');
const roleNotFound = (): AppError => new AppError('not_found', 'suite_role.not_found', 'no role with this id in this suite');
const assignmentNotFound = (): AppError => new AppError('not_found', 'suite_assignment.not_found', 'no assignment with this id in this suite');
const grantNotFound = (): AppError => new AppError('not_found', 'suite_grant.not_found', 'no grant with this id in this suite');

/** The suite's unique constraints, as the error a client can act on. */
function uniqueViolation(err: unknown): never {
  if (!isUniqueViolation(err)) throw err;
  const constraint = String((err as { constraint?: string }).constraint ?? '');
  if (constraint === 'suites__name') throw new AppError('already_exists', 'suite.name_taken', 'name: a suite with this name already exists (compared case-insensitively)', { field: 'name' });
  if (constraint === 'suite_roles__suite_key') throw new AppError('already_exists', 'suite_role.key_taken', 'key: this suite already has a role with this key', { field: 'key' });
  if (constraint === 'suite_assignments__suite_principal') {
    throw new AppError('already_exists', 'suite_assignment.exists', 'principalId: already assigned to this suite; change that assignment instead', { field: 'principalId' });
  }
  if (constraint === 'suite_grants__pair') {
    throw new AppError('already_exists', 'suite_grant.exists', 'this suite already has a grant for these two apps; change it instead', { field: 'audienceAppId' });
  }
  throw err;
}

const subdepartmentsNeedDepartment = (): AppError => new AppError('invalid_argument', 'suite_assignment.subdepartments_need_department',
  'includeSubdepartments: only a department assignment can include sub-departments', { field: 'includeSubdepartments' });

const sameRoles = (a: string[], b: string[]): boolean => a.length === b.length && a.every((id, i) => id === b[i]);

export class SuitesService {
  constructor(readonly db: Knex) {}

  // ---- suites --------------------------------------------------------------------------

  async createSuite(raw: CreateSuiteInput, actor: Actor = SYSTEM_ACTOR): Promise<Suite> {
    const input = parseInput(createSuiteInput, raw);
    const id = newId();
    try {
      return await this.db.transaction(async (trx) => {
        await insertSuite(trx, {
          id, name: input.name, description: input.description || null, icon_url: input.iconUrl ?? null, position: input.position ?? 0,
          signin_policy: input.signInPolicy ?? null, suite_signout: input.suiteSignout ?? false,
        });
        await recordAudit(trx, actor, { action: 'suite.created', targetType: 'suite', targetId: id, changes: { ...input } });
        return (await findSuiteById(trx, id))!;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  async getSuite(id: string): Promise<Suite> {
    const suite = await findSuiteById(this.db, id);
    if (!suite) throw suiteNotFound();
    return suite;
  }

  listSuites(filter: SuiteFilter): Promise<Suite[]> {
    return findSuites(this.db, filter);
  }

  countSuites(appId?: string): Promise<number> {
    return countSuites(this.db, appId);
  }

  /** With expectedVersion, a stale version gives failed_precondition (412). */
  async updateSuite(id: string, raw: UpdateSuiteInput, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, guard?: AppGuard): Promise<Suite> {
    const input = parseInput(updateSuiteInput, raw);
    try {
      return await this.#write(id, guard, async (trx, current) => {
        checkVersion(current, expectedVersion);
        const changes: SuiteChanges = {};
        if (input.name !== undefined) changes.name = input.name;
        if (input.description !== undefined) changes.description = input.description || null;
        if (input.iconUrl !== undefined) changes.icon_url = input.iconUrl;
        if (input.position !== undefined) changes.position = input.position;
        if (input.signInPolicy !== undefined) changes.signin_policy = input.signInPolicy;
        if (input.suiteSignout !== undefined) changes.suite_signout = input.suiteSignout;
        await updateSuiteById(trx, id, changes);
        if (input.signInPolicy !== undefined && input.signInPolicy !== current.signInPolicy) {
          await refreshSuiteSignInPolicy(trx, current.apps.map((a) => a.appId));
        }
        await recordAudit(trx, actor, { action: 'suite.updated', targetType: 'suite', targetId: id, changes: input, before: valuesBefore(current, input) });
        return (await findSuiteById(trx, id))!;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  /** Deletes the suite: the assignments it gave go (each audited), its grants end, its apps lose its sign-in policy. */
  async deleteSuite(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, guard?: AppGuard): Promise<void> {
    await this.#write(id, guard, async (trx, current) => {
      checkVersion(current, expectedVersion);
      await this.#materialize(trx, id, actor, 'all');
      await deleteSuiteById(trx, id);
      await refreshSuiteSignInPolicy(trx, current.apps.map((a) => a.appId));
      await recordAudit(trx, actor, {
        action: 'suite.deleted', targetType: 'suite', targetId: id, changes: { name: current.name, apps: current.apps.map((a) => a.appId) },
      });
    });
  }

  // ---- members -------------------------------------------------------------------------

  /**
   * Adds the app to the suite, or changes its position or role map. A new member reaches everyone
   * the suite is assigned to at once.
   */
  async putApp(suiteId: string, appId: string, raw: SuiteAppInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<Suite> {
    const input = parseInput(suiteAppInput, raw);
    return this.#write(suiteId, guard, async (trx, current) => {
      const added = await upsertSuiteApp(trx, suiteId, appId, input.position);
      if (input.roleMap !== undefined) {
        const suiteRoles = new Map(current.roles.map((r) => [r.key, r.id]));
        const appRoles = new Map((await findAppRoles(trx, appId)).map((r) => [r.key, r.id]));
        const pairs: { suiteRoleId: string; appRoleId: string }[] = [];
        for (const [suiteKey, appKeys] of Object.entries(input.roleMap)) {
          const suiteRoleId = suiteRoles.get(suiteKey);
          if (!suiteRoleId) throw new AppError('not_found', 'suite_role.not_found', `roleMap: this suite has no role with key ${suiteKey}`, { field: 'roleMap' });
          for (const appKey of appKeys) {
            const appRoleId = appRoles.get(appKey);
            if (!appRoleId) throw new AppError('not_found', 'app_role.not_found', `roleMap.${suiteKey}: this app has no role with key ${appKey}`, { field: 'roleMap' });
            pairs.push({ suiteRoleId, appRoleId });
          }
        }
        await replaceRoleMap(trx, suiteId, appId, pairs);
      }
      await updateSuiteById(trx, suiteId, {});
      await this.#materialize(trx, suiteId, actor);
      if (added) await refreshSuiteSignInPolicy(trx, [appId]);
      const before = current.apps.find((a) => a.appId === appId);
      await recordAudit(trx, actor, {
        action: added ? 'suite.app_added' : 'suite.app_updated', targetType: 'suite', targetId: suiteId, changes: { appId, ...input },
        ...(before ? { before: { position: before.position, roleMap: before.roleMap } } : {}),
      });
      return (await findSuiteById(trx, suiteId))!;
    }, [appId]);
  }

  /** Removes the app: the assignments the suite gave in it go, and so do grants naming it. */
  async removeApp(suiteId: string, appId: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.#write(suiteId, guard, async (trx, current) => {
      if (!current.apps.some((a) => a.appId === appId)) throw notMember();
      await deleteSuiteApp(trx, suiteId, appId);
      await updateSuiteById(trx, suiteId, {});
      await this.#materialize(trx, suiteId, actor);
      await refreshSuiteSignInPolicy(trx, [appId]);
      await recordAudit(trx, actor, { action: 'suite.app_removed', targetType: 'suite', targetId: suiteId, changes: { appId } });
    });
  }

  // ---- suite roles ---------------------------------------------------------------------

  async createRole(suiteId: string, raw: CreateSuiteRoleInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<SuiteRole> {
    const input = parseInput(createSuiteRoleInput, raw);
    const id = newId();
    try {
      return await this.#write(suiteId, guard, async (trx) => {
        await insertSuiteRole(trx, { id, suite_id: suiteId, key: input.key, name: input.name, description: input.description || null });
        await updateSuiteById(trx, suiteId, {});
        await recordAudit(trx, actor, { action: 'suite_role.created', targetType: 'suite', targetId: suiteId, changes: { roleId: id, ...input } });
        return (await findSuiteRoleById(trx, suiteId, id))!;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  async updateRole(suiteId: string, roleId: string, raw: UpdateSuiteRoleInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<SuiteRole> {
    const input = parseInput(updateSuiteRoleInput, raw);
    try {
      return await this.#write(suiteId, guard, async (trx) => {
        const current = await findSuiteRoleById(trx, suiteId, roleId);
        if (!current) throw roleNotFound();
        const changes: Partial<SuiteRole> = {};
        if (input.key !== undefined) changes.key = input.key;
        if (input.name !== undefined) changes.name = input.name;
        if (input.description !== undefined) changes.description = input.description || null;
        await updateSuiteRoleById(trx, suiteId, roleId, changes);
        await updateSuiteById(trx, suiteId, {});
        await recordAudit(trx, actor, { action: 'suite_role.updated', targetType: 'suite', targetId: suiteId, changes: { roleId, ...input }, before: valuesBefore(current, input) });
        return (await findSuiteRoleById(trx, suiteId, roleId))!;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  /** Deletes the suite role: the assignments it gave roles through lose those roles. */
  async deleteRole(suiteId: string, roleId: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.#write(suiteId, guard, async (trx) => {
      const current = await findSuiteRoleById(trx, suiteId, roleId);
      if (!current) throw roleNotFound();
      await deleteSuiteRoleById(trx, suiteId, roleId);
      await updateSuiteById(trx, suiteId, {});
      await this.#materialize(trx, suiteId, actor);
      await recordAudit(trx, actor, { action: 'suite_role.deleted', targetType: 'suite', targetId: suiteId, changes: { roleId, key: current.key } });
    });
  }

  // ---- suite assignments ---------------------------------------------------------------

  async listAssignments(filter: SuiteAssignmentFilter): Promise<SuiteAssignment[]> {
    await this.getSuite(filter.suiteId);
    return findSuiteAssignments(this.db, filter);
  }

  countAssignments(suiteId: string): Promise<number> {
    return countSuiteAssignments(this.db, suiteId);
  }

  async getAssignment(suiteId: string, id: string): Promise<SuiteAssignment> {
    const found = await findSuiteAssignmentById(this.db, suiteId, id);
    if (!found) {
      await this.getSuite(suiteId);
      throw assignmentNotFound();
    }
    return found;
  }

  /**
   * Assigns the suite: every member app, now and later, with the app roles the given suite roles
   * map to. A person must be active (a suspended or deprovisioned one is refused).
   */
  async createAssignment(suiteId: string, raw: CreateSuiteAssignmentInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<SuiteAssignment> {
    const input = parseInput(createSuiteAssignmentInput, raw);
    if (input.includeSubdepartments && input.principalType !== 'department') throw subdepartmentsNeedDepartment();
    const id = newId();
    try {
      return await this.#write(suiteId, guard, async (trx, suite) => {
        if (!(await principalExists(trx, input.principalType, input.principalId))) {
          throw new AppError('not_found', `suite_assignment.${input.principalType}_not_found`, `principalId: no ${input.principalType} with this id`, { field: 'principalId' });
        }
        if (input.principalType === 'user') {
          const user: { status: string } | undefined = await trx('users').where({ id: input.principalId }).forShare().first('status');
          if (user?.status !== 'active') {
            throw new AppError('failed_precondition', 'suite_assignment.user_not_active',
              `principalId: this person is ${user?.status ?? 'gone'}; only an active person can be assigned a suite`, { field: 'principalId' });
          }
        }
        const roles = resolveSuiteRoles(suite, input.roleKeys ?? []);
        await insertSuiteAssignment(trx, {
          id, suite_id: suiteId, principal_type: input.principalType, principal_id: input.principalId, include_subdepartments: input.includeSubdepartments ?? false,
        });
        await replaceSuiteAssignmentRoles(trx, id, roles.map((r) => r.id));
        // The suite's record comes before the rows it gives, so that the log reads in order.
        await recordAudit(trx, actor, {
          action: 'suite_assignment.created', targetType: 'suite', targetId: suiteId,
          changes: {
            suiteAssignmentId: id, principalType: input.principalType, principalId: input.principalId,
            includeSubdepartments: input.includeSubdepartments ?? false, roleKeys: roles.map((r) => r.key).sort(),
          },
        });
        await this.#materialize(trx, suiteId, actor);
        return (await findSuiteAssignmentById(trx, suiteId, id))!;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  async updateAssignment(suiteId: string, id: string, raw: UpdateSuiteAssignmentInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<SuiteAssignment> {
    const input = parseInput(updateSuiteAssignmentInput, raw);
    return this.#write(suiteId, guard, async (trx, suite) => {
      const current = await findSuiteAssignmentById(trx, suiteId, id);
      if (!current) throw assignmentNotFound();
      if (input.includeSubdepartments && current.principalType !== 'department') throw subdepartmentsNeedDepartment();
      const changes: Record<string, unknown> = {};
      if (input.includeSubdepartments !== undefined) {
        await updateSuiteAssignmentById(trx, id, { include_subdepartments: input.includeSubdepartments });
        changes.includeSubdepartments = input.includeSubdepartments;
      }
      if (input.roleKeys !== undefined) {
        const roles = resolveSuiteRoles(suite, input.roleKeys);
        await replaceSuiteAssignmentRoles(trx, id, roles.map((r) => r.id));
        changes.roleKeys = roles.map((r) => r.key).sort();
      }
      await recordAudit(trx, actor, {
        action: 'suite_assignment.updated', targetType: 'suite', targetId: suiteId, changes: { suiteAssignmentId: id, ...changes },
        before: valuesBefore({ ...current, roleKeys: current.roles.map((r) => r.key) }, changes),
      });
      await this.#materialize(trx, suiteId, actor);
      return (await findSuiteAssignmentById(trx, suiteId, id))!;
    });
  }

  /** Removes the suite assignment and exactly the rows it gave (a direct assignment of the same principal stays). */
  async deleteAssignment(suiteId: string, id: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.#write(suiteId, guard, async (trx) => {
      const current = await findSuiteAssignmentById(trx, suiteId, id);
      if (!current) throw assignmentNotFound();
      await recordAudit(trx, actor, {
        action: 'suite_assignment.deleted', targetType: 'suite', targetId: suiteId,
        changes: { suiteAssignmentId: id, principalType: current.principalType, principalId: current.principalId, roleKeys: current.roles.map((r) => r.key) },
      });
      // Its rows go first, each audited; the cascade would remove them silently.
      await this.#materialize(trx, suiteId, actor, [id]);
      await deleteSuiteAssignmentById(trx, id);
    });
  }

  // ---- suite grants --------------------------------------------------------------------

  async listGrants(suiteId: string): Promise<SuiteGrant[]> {
    await this.getSuite(suiteId);
    return findSuiteGrants(this.db, suiteId);
  }

  async getGrant(suiteId: string, id: string): Promise<SuiteGrant> {
    const grant = await findSuiteGrantById(this.db, suiteId, id);
    if (!grant) {
      await this.getSuite(suiteId);
      throw grantNotFound();
    }
    return grant;
  }

  /**
   * The administrator's one-time consent that the client app may act for the signed-in person at
   * the audience app, within these scopes, roles and sign-in conditions.
   */
  async createGrant(suiteId: string, raw: CreateSuiteGrantInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<SuiteGrant> {
    const input = parseInput(createSuiteGrantInput, raw);
    if (input.clientAppId === input.audienceAppId) {
      throw new AppError('invalid_argument', 'suite_grant.same_app', 'audienceAppId: an app does not need a grant to call itself; name two different apps', { field: 'audienceAppId' });
    }
    const id = newId();
    try {
      return await this.#write(suiteId, guard, async (trx, suite) => {
        for (const [field, appId] of [['clientAppId', input.clientAppId], ['audienceAppId', input.audienceAppId]] as const) {
          if (!suite.apps.some((a) => a.appId === appId)) {
            throw new AppError('failed_precondition', 'suite_grant.not_member', `${field}: this app is not in the suite; add it first`, { field });
          }
        }
        const client = (await findAppById(trx, input.clientAppId))!;
        if (client.protocol !== 'oidc' || !client.oidc.token_endpoint_auth_method || client.oidc.token_endpoint_auth_method === 'none') {
          throw new AppError('failed_precondition', 'suite_grant.client_public', client.protocol !== 'oidc'
            ? 'clientAppId: a SAML app has no token endpoint credentials; the acting app must be an OpenID Connect app'
            : 'clientAppId: a public app cannot prove who it is at the token endpoint; the acting app must be confidential', { field: 'clientAppId' });
        }
        const roles = input.roles ? await checkAudienceRoles(trx, input.audienceAppId, input.roles) : null;
        await insertSuiteGrant(trx, {
          id, suite_id: suiteId, client_app_id: input.clientAppId, audience_app_id: input.audienceAppId, scopes: [...new Set(input.scopes)],
          roles, min_signin_policy: input.minSignInPolicy ?? null, max_age_seconds: input.maxAgeSeconds ?? null,
        });
        const grant = (await findSuiteGrantById(trx, suiteId, id))!;
        await recordAudit(trx, actor, { action: 'suite_grant.created', targetType: 'suite', targetId: suiteId, changes: { grantId: id, ...grantFields(grant) } });
        return grant;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  async updateGrant(suiteId: string, id: string, raw: UpdateSuiteGrantInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<SuiteGrant> {
    const input = parseInput(updateSuiteGrantInput, raw);
    return this.#write(suiteId, guard, async (trx) => {
      const current = await findSuiteGrantById(trx, suiteId, id);
      if (!current) throw grantNotFound();
      const changes: Parameters<typeof updateSuiteGrantById>[2] = {};
      if (input.scopes !== undefined) changes.scopes = [...new Set(input.scopes)];
      if (input.roles !== undefined) changes.roles = input.roles === null ? null : await checkAudienceRoles(trx, current.audienceAppId, input.roles);
      if (input.minSignInPolicy !== undefined) changes.min_signin_policy = input.minSignInPolicy;
      if (input.maxAgeSeconds !== undefined) changes.max_age_seconds = input.maxAgeSeconds;
      await updateSuiteGrantById(trx, id, changes);
      await recordAudit(trx, actor, {
        action: 'suite_grant.updated', targetType: 'suite', targetId: suiteId, changes: { grantId: id, ...input }, before: valuesBefore(current, input),
      });
      return (await findSuiteGrantById(trx, suiteId, id))!;
    });
  }

  /** Revokes the grant: the client app can no longer act for anyone at the audience app through it. */
  async deleteGrant(suiteId: string, id: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.#write(suiteId, guard, async (trx) => {
      const current = await findSuiteGrantById(trx, suiteId, id);
      if (!current) throw grantNotFound();
      await deleteSuiteGrantById(trx, id);
      await recordAudit(trx, actor, { action: 'suite_grant.deleted', targetType: 'suite', targetId: suiteId, changes: { grantId: id, ...grantFields(current) } });
    });
  }

  // ---- the machinery -------------------------------------------------------------------

  /**
   * One write to a suite: the suite row locked (404 if unknown), then its member apps and `alsoApps`
   * (404 app.not_found for an unknown one) locked in id order, each passed to the guard.
   */
  async #write<T>(suiteId: string, guard: AppGuard | undefined, fn: (trx: Knex.Transaction, suite: Suite) => Promise<T>, alsoApps: string[] = []): Promise<T> {
    return this.db.transaction(async (trx) => {
      const suite = await findSuiteById(trx, suiteId, { forUpdate: true });
      if (!suite) throw suiteNotFound();
      for (const appId of alsoApps) if (!isUuid(appId)) throw appNotFound();
      const ids = [...new Set([...(await memberAppIds(trx, suiteId)), ...alsoApps])].sort();
      if (ids.length) {
        // NO KEY UPDATE: rows elsewhere that reference these apps can still be written meanwhile.
        const locked: { id: string }[] = (await trx.raw('select id from apps where id = any(?::uuid[]) order by id for no key update', [ids])).rows;
        if (locked.length !== ids.length) throw appNotFound();
        if (guard) {
          for (const { id } of locked) guard((await findAppById(trx, id)) as App);
        }
      }
      return fn(trx, suite);
    });
  }

  /**
   * Makes the suite's rows in `assignments` what its assignments, members and role maps say:
   * inserts the missing, updates roles (and includeSubdepartments) that differ, deletes the rest,
   * each with its assignment.* audit record in this transaction. `without`: suite assignments
   * whose rows go (one being deleted; 'all' when the suite is).
   */
  async #materialize(trx: Knex.Transaction, suiteId: string, actor: Actor, without: 'all' | string[] = []): Promise<void> {
    const wanted = await wantedSuiteRows(trx, suiteId, without);
    const existing = await existingSuiteRows(trx, suiteId);
    const keys = await appRoleKeys(trx, [...wanted, ...existing].flatMap((r) => r.roleIds));
    const keysOf = (ids: string[]): string[] => ids.map((i) => keys.get(i) ?? i).sort();
    const rowKey = (r: { suiteAssignmentId: string; appId: string }): string => `${r.suiteAssignmentId}/${r.appId}`;
    const byKey = new Map(existing.map((r) => [rowKey(r), r]));
    const about = (r: { suiteAssignmentId: string; appId: string; principalType: string; principalId: string }, assignmentId: string) => ({
      assignmentId, principalType: r.principalType, principalId: r.principalId, suiteId, suiteAssignmentId: r.suiteAssignmentId,
    });
    for (const w of wanted) {
      const e = byKey.get(rowKey(w));
      byKey.delete(rowKey(w));
      if (!e) {
        const id = newId();
        await insertAssignment(trx, {
          id, app_id: w.appId, principal_type: w.principalType, principal_id: w.principalId, include_subdepartments: w.includeSubdepartments,
          suite_assignment_id: w.suiteAssignmentId,
        });
        await replaceAssignmentRoles(trx, id, w.roleIds);
        await recordAudit(trx, actor, {
          action: 'assignment.created', targetType: 'app', targetId: w.appId,
          changes: { ...about(w, id), includeSubdepartments: w.includeSubdepartments, roleKeys: keysOf(w.roleIds) },
        });
        continue;
      }
      const rolesChanged = !sameRoles(e.roleIds, w.roleIds);
      if (!rolesChanged && e.includeSubdepartments === w.includeSubdepartments) continue;
      const changes: Record<string, unknown> = {};
      if (e.includeSubdepartments !== w.includeSubdepartments) {
        await updateAssignmentById(trx, e.id, { include_subdepartments: w.includeSubdepartments });
        changes.includeSubdepartments = w.includeSubdepartments;
      }
      if (rolesChanged) {
        await replaceAssignmentRoles(trx, e.id, w.roleIds);
        changes.roleKeys = keysOf(w.roleIds);
      }
      await recordAudit(trx, actor, {
        action: 'assignment.updated', targetType: 'app', targetId: e.appId, changes: { ...about(e, e.id), ...changes },
        before: valuesBefore({ includeSubdepartments: e.includeSubdepartments, roleKeys: keysOf(e.roleIds) }, changes),
      });
    }
    for (const gone of byKey.values()) {
      await deleteAssignmentById(trx, gone.id);
      await recordAudit(trx, actor, {
        action: 'assignment.deleted', targetType: 'app', targetId: gone.appId, changes: { ...about(gone, gone.id), roleKeys: keysOf(gone.roleIds) },
      });
    }
  }
}

function checkVersion(current: Suite, expectedVersion: number | undefined): void {
  if (expectedVersion !== undefined && current.version !== expectedVersion) {
    throw new AppError('failed_precondition', 'suite.version_mismatch', `the suite changed since version ${expectedVersion} (now ${current.version})`);
  }
}

/** The suite's roles with these keys; every one must exist. */
function resolveSuiteRoles(suite: Suite, keys: string[]): SuiteRole[] {
  const roles: SuiteRole[] = [];
  for (const key of new Set(keys)) {
    const role = suite.roles.find((r) => r.key === key);
    if (!role) throw new AppError('not_found', 'suite_role.not_found', `roleKeys: this suite has no role with key ${key}`, { field: 'roleKeys' });
    roles.push(role);
  }
  return roles;
}

/** The audience app's role keys, each checked to exist there, deduplicated and sorted. */
async function checkAudienceRoles(trx: Knex.Transaction, audienceAppId: string, keys: string[]): Promise<string[]> {
  const known = new Set((await findAppRoles(trx, audienceAppId)).map((r) => r.key));
  const missing = keys.find((k) => !known.has(k));
  if (missing) throw new AppError('not_found', 'app_role.not_found', `roles: the audience app has no role with key ${missing}`, { field: 'roles' });
  return [...new Set(keys)].sort();
}

const grantFields = (g: SuiteGrant) => ({
  clientAppId: g.clientAppId, audienceAppId: g.audienceAppId, scopes: g.scopes, roles: g.roles, minSignInPolicy: g.minSignInPolicy, maxAgeSeconds: g.maxAgeSeconds,
});
