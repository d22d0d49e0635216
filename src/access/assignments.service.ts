// Assignments: a user, a group or a department (optionally with its sub-departments) is
// assigned to an app, optionally with some of the app's roles. entitlements.ts turns them
// into "may this user sign in, and with which roles".
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { parseInput } from '../directory/users.service.ts';
import { findUserById } from '../directory/users.repo.ts';
import { recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor } from '../audit/audit.service.ts';
import { findAppById, findAppRolesByIdsOrKeys, type AppRole } from '../apps/apps.repo.ts';
import { APP_ROLE_KEY, type AppGuard } from '../apps/apps.service.ts';
import { entitlements, explainedEntitledApps, type Entitlements, type ExplainedEntitlements } from './entitlements.ts';
import {
  countAssignments, deleteAssignmentById, findAssignmentById, findAssignments, insertAssignment, principalExists, replaceAssignmentRoles,
  updateAssignmentById, PRINCIPAL_TYPES, type Assignment, type AssignmentFilter,
} from './assignments.repo.ts';

const roleIds = z.array(z.uuid()).max(100);
const roleKeys = z.array(z.string().regex(APP_ROLE_KEY, 'not a role key')).max(100);

export const createAssignmentInput = z.strictObject({
  principalType: z.enum(PRINCIPAL_TYPES),
  principalId: z.uuid(),
  /** Only for departments: everyone in the department's subtree, all levels down. */
  includeSubdepartments: z.boolean().optional(),
  /** Roles of this app, by id and/or by key. */
  roleIds: roleIds.optional(),
  roleKeys: roleKeys.optional(),
});
export type CreateAssignmentInput = z.input<typeof createAssignmentInput>;

/** Roles given (by ids and/or keys) replace the assignment's roles; absent = unchanged. */
export const updateAssignmentInput = z.strictObject({
  includeSubdepartments: z.boolean().optional(),
  roleIds: roleIds.optional(),
  roleKeys: roleKeys.optional(),
});
export type UpdateAssignmentInput = z.input<typeof updateAssignmentInput>;

const appNotFound = (): AppError => new AppError('not_found', 'app.not_found', 'no app with this id');
const assignmentNotFound = (): AppError => new AppError('not_found', 'assignment.not_found', 'no assignment with this id');

/** A row a suite assignment keeps changes only through it: otherwise the suite would undo or lose the change. */
function refuseSuiteRow(a: Assignment): void {
  if (a.suiteAssignmentId) {
    throw new AppError('failed_precondition', 'assignment.from_suite',
      `this assignment is managed by suite ${a.suiteName ?? a.suiteId}; change the suite assignment (suite ${a.suiteId}, assignment ${a.suiteAssignmentId})`);
  }
}

/**
 * The app whose assignments change, locked against changes (FOR SHARE: its admin roles stay as
 * the guard saw them until the write commits); 404 if unknown.
 */
async function lockApp(trx: Knex.Transaction, appId: string, guard?: AppGuard): Promise<void> {
  const app = await findAppById(trx, appId, { forShare: true });
  if (!app) throw appNotFound();
  guard?.(app);
}

export class AccessService {
  constructor(readonly db: Knex) {}

  async createAssignment(appId: string, raw: CreateAssignmentInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<Assignment> {
    const input = parseInput(createAssignmentInput, raw);
    if (input.includeSubdepartments && input.principalType !== 'department') {
      throw new AppError('invalid_argument', 'assignment.subdepartments_need_department',
        'includeSubdepartments: only a department assignment can include sub-departments', { field: 'includeSubdepartments' });
    }
    const id = newId();
    try {
      return await this.db.transaction(async (trx) => {
        await lockApp(trx, appId, guard);
        if (!(await principalExists(trx, input.principalType, input.principalId))) {
          throw new AppError('not_found', `assignment.${input.principalType}_not_found`, `principalId: no ${input.principalType} with this id`, { field: 'principalId' });
        }
        const roles = await this.#resolveRoles(trx, appId, input.roleIds, input.roleKeys);
        await insertAssignment(trx, {
          id, app_id: appId, principal_type: input.principalType, principal_id: input.principalId,
          include_subdepartments: input.includeSubdepartments ?? false,
        });
        await replaceAssignmentRoles(trx, id, roles.map((r) => r.id));
        await recordAudit(trx, actor, {
          action: 'assignment.created', targetType: 'app', targetId: appId,
          changes: {
            assignmentId: id, principalType: input.principalType, principalId: input.principalId,
            includeSubdepartments: input.includeSubdepartments ?? false, roles: roles.map((r) => r.key).sort(),
          },
        });
        return (await findAssignmentById(trx, id))!;
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw new AppError('already_exists', 'assignment.exists', `this ${input.principalType} is already assigned to the app; change that assignment instead`, { field: 'principalId' });
      }
      throw err;
    }
  }

  async getAssignment(appId: string, id: string): Promise<Assignment> {
    const assignment = await findAssignmentById(this.db, id);
    if (!assignment || assignment.appId !== appId) {
      if (!(await findAppById(this.db, appId))) throw appNotFound();
      throw assignmentNotFound();
    }
    return assignment;
  }

  async listAssignments(filter: AssignmentFilter): Promise<Assignment[]> {
    if (!(await findAppById(this.db, filter.appId))) throw appNotFound();
    return findAssignments(this.db, filter);
  }

  countAssignments(filter: Omit<AssignmentFilter, 'after' | 'limit'>): Promise<number> {
    return countAssignments(this.db, filter);
  }

  async updateAssignment(appId: string, id: string, raw: UpdateAssignmentInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<Assignment> {
    const input = parseInput(updateAssignmentInput, raw);
    return this.db.transaction(async (trx) => {
      await lockApp(trx, appId, guard);
      const current = await findAssignmentById(trx, id);
      if (!current || current.appId !== appId) throw assignmentNotFound();
      refuseSuiteRow(current);
      if (input.includeSubdepartments && current.principalType !== 'department') {
        throw new AppError('invalid_argument', 'assignment.subdepartments_need_department',
          'includeSubdepartments: only a department assignment can include sub-departments', { field: 'includeSubdepartments' });
      }
      const changes: Record<string, unknown> = {};
      if (input.includeSubdepartments !== undefined) {
        await updateAssignmentById(trx, id, { include_subdepartments: input.includeSubdepartments });
        changes.includeSubdepartments = input.includeSubdepartments;
      }
      if (input.roleIds !== undefined || input.roleKeys !== undefined) {
        const roles = await this.#resolveRoles(trx, appId, input.roleIds, input.roleKeys);
        await replaceAssignmentRoles(trx, id, roles.map((r) => r.id));
        changes.roles = { from: current.roles.map((r) => r.key), to: roles.map((r) => r.key).sort() };
      }
      await recordAudit(trx, actor, {
        action: 'assignment.updated', targetType: 'app', targetId: appId, changes: { assignmentId: id, ...changes },
        before: valuesBefore({ ...current, roles: current.roles.map((r) => r.key) }, changes),
      });
      return (await findAssignmentById(trx, id))!;
    });
  }

  /** Deletes an assignment; with appId, only if it belongs to that app (and the guard allows changing that app). */
  async deleteAssignment(id: string, actor: Actor = SYSTEM_ACTOR, appId?: string, guard?: AppGuard): Promise<void> {
    await this.db.transaction(async (trx) => {
      if (appId !== undefined) await lockApp(trx, appId, guard);
      const current = await findAssignmentById(trx, id);
      if (!current || (appId !== undefined && current.appId !== appId)) throw assignmentNotFound();
      refuseSuiteRow(current);
      await deleteAssignmentById(trx, id);
      await recordAudit(trx, actor, {
        action: 'assignment.deleted', targetType: 'app', targetId: current.appId,
        changes: { assignmentId: id, principalType: current.principalType, principalId: current.principalId, roles: current.roles.map((r) => r.key) },
      });
    });
  }

  /** What the user may do in the app; 404 for an unknown user or app. */
  async entitlementsOf(userId: string, appId: string): Promise<Entitlements> {
    if (!(await findUserById(this.db, userId))) throw new AppError('not_found', 'user.not_found', 'no user with this id');
    if (!(await findAppById(this.db, appId))) throw appNotFound();
    return entitlements(this.db, userId, appId);
  }

  /** Every app the user may sign in to, with roles and the assignment paths that give them; 404 for an unknown user. */
  async entitledAppsOf(userId: string): Promise<ExplainedEntitlements[]> {
    if (!(await findUserById(this.db, userId))) throw new AppError('not_found', 'user.not_found', 'no user with this id');
    return explainedEntitledApps(this.db, userId);
  }

  /** The app's roles named by ids and keys; every one must exist in this app. */
  async #resolveRoles(trx: Knex.Transaction, appId: string, ids: string[] = [], keys: string[] = []): Promise<AppRole[]> {
    const roles = await findAppRolesByIdsOrKeys(trx, appId, ids, keys);
    const missingId = ids.find((id) => !roles.some((r) => r.id === id));
    if (missingId) throw new AppError('not_found', 'app_role.not_found', `roleIds: this app has no role with id ${missingId}`, { field: 'roleIds' });
    const missingKey = keys.find((key) => !roles.some((r) => r.key === key));
    if (missingKey) throw new AppError('not_found', 'app_role.not_found', `roleKeys: this app has no role with key ${missingKey}`, { field: 'roleKeys' });
    return roles;
  }
}
