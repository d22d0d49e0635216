// Departments: a tree of any depth, people in one primary and any number of secondary
// departments, an optional manager. Subtree reads and moves are single indexed SQL statements.
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor } from '../audit/audit.service.ts';
import { parseInput } from './users.service.ts';
import { findUserById, isUuid, type UserStatus } from './users.repo.ts';
import {
  countDepartmentDependents, countDepartmentMembers, countDepartments, deleteAssignmentsOfPrincipal, deleteDepartmentById, deleteMembership, demotePrimary,
  findDepartmentById, findDepartmentMembers, findDepartments, findDescendants, findMembership, findPrimaryDepartmentId,
  insertDepartment, moveSubtree, pathOf, updateDepartmentById, upsertMembership,
  type DbDepartmentRow, type Department, type DepartmentFilter, type DepartmentMember,
} from './departments.repo.ts';

const name = z.string().trim().min(1).max(200).refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed');
const externalId = z.string().trim().min(1).max(255);

export const createDepartmentInput = z.strictObject({
  name,
  parentId: z.uuid().nullable().optional(),
  managerId: z.uuid().nullable().optional(),
  externalId: externalId.nullable().optional(),
});
export type CreateDepartmentInput = z.input<typeof createDepartmentInput>;

/** PATCH semantics: absent = unchanged, null = cleared (parentId null = move to the top level). */
export const updateDepartmentInput = z.strictObject({
  name: name.optional(),
  parentId: z.uuid().nullable().optional(),
  managerId: z.uuid().nullable().optional(),
  externalId: externalId.nullable().optional(),
});
export type UpdateDepartmentInput = z.input<typeof updateDepartmentInput>;

export const departmentMemberInput = z.strictObject({
  userId: z.uuid(),
  /** true: this becomes the person's primary department (their previous primary becomes secondary). */
  primary: z.boolean().default(false),
});
export type DepartmentMemberInput = z.input<typeof departmentMemberInput>;

export interface MembershipResult {
  departmentId: string;
  userId: string;
  primary: boolean;
  /** false when the membership already was exactly this (nothing written, no audit event). */
  changed: boolean;
}

/**
 * Orders tree writers: a move takes it exclusively, creating a child takes it shared, so a
 * child never gets the path of a parent that is moving under it.
 */
const TREE_LOCK = 727010;

const notFound = (): AppError => new AppError('not_found', 'department.not_found', 'no department with this id');

function nameTaken(err: unknown): never {
  if (isUniqueViolation(err)) {
    throw new AppError('already_exists', 'department.name_taken', 'name: a department with this name already exists under the same parent', { field: 'name' });
  }
  throw err;
}

const isForeignKeyViolation = (err: unknown): boolean => (err as { code?: string }).code === '23503';

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export class DepartmentsService {
  constructor(readonly db: Knex) {}

  async createDepartment(raw: CreateDepartmentInput, actor: Actor = SYSTEM_ACTOR): Promise<Department> {
    const input = parseInput(createDepartmentInput, raw);
    try {
      return await this.db.transaction(async (trx) => {
        let parent: Department | undefined;
        if (input.parentId) {
          await trx.raw('select pg_advisory_xact_lock_shared(?)', [TREE_LOCK]);
          parent = await findDepartmentById(trx, input.parentId, 'key share');
          if (!parent) throw new AppError('invalid_argument', 'department.parent_not_found', 'parentId: no department with this id', { field: 'parentId' });
        }
        if (input.managerId) await assertManager(trx, input.managerId);
        const id = newId();
        const department = await insertDepartment(trx, {
          id,
          name: input.name,
          parent_id: parent?.id ?? null,
          path: pathOf(parent?.path ?? null, id),
          depth: parent ? parent.depth + 1 : 0,
          manager_id: input.managerId ?? null,
          external_id: input.externalId ?? null,
        });
        await recordAudit(trx, actor, { action: 'department.created', targetType: 'department', targetId: id, changes: { ...input } });
        return department;
      });
    } catch (err) {
      return nameTaken(err);
    }
  }

  async getDepartment(id: string): Promise<Department> {
    const department = await findDepartmentById(this.db, id);
    if (!department) throw notFound();
    return department;
  }

  listDepartments(filter: DepartmentFilter): Promise<Department[]> {
    if (filter.parentId && !isUuid(filter.parentId)) return Promise.resolve([]);
    if (filter.memberId && !isUuid(filter.memberId)) return Promise.resolve([]);
    return findDepartments(this.db, filter);
  }

  /** How many departments the filter matches, over all pages. */
  countDepartments(filter: Omit<DepartmentFilter, 'after' | 'limit' | 'withCounts'>): Promise<number> {
    if (filter.parentId && !isUuid(filter.parentId)) return Promise.resolve(0);
    if (filter.memberId && !isUuid(filter.memberId)) return Promise.resolve(0);
    return countDepartments(this.db, filter);
  }

  /** Every department below this one, all levels down, in tree order. */
  async listDescendants(id: string, opts: { afterPath?: string; maxDepth?: number; limit: number }): Promise<Department[]> {
    const department = await this.getDepartment(id);
    const maxDepth = opts.maxDepth === undefined ? undefined : department.depth + opts.maxDepth;
    return findDescendants(this.db, department.path, { ...opts, maxDepth });
  }

  /**
   * Partial update; a changed parentId moves the department with its whole subtree. With
   * expectedVersion, a stale version gives failed_precondition (412).
   */
  async updateDepartment(id: string, raw: UpdateDepartmentInput, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<Department> {
    const input = parseInput(updateDepartmentInput, raw);
    if (!isUuid(id)) throw notFound();
    try {
      return await this.db.transaction(async (trx) => {
        const moving = input.parentId !== undefined;
        if (moving) await trx.raw('select pg_advisory_xact_lock(?)', [TREE_LOCK]);
        const current = await findDepartmentById(trx, id, 'update');
        if (!current) throw notFound();
        if (expectedVersion !== undefined && current.version !== expectedVersion) {
          throw new AppError('failed_precondition', 'department.version_mismatch', `the department changed since version ${expectedVersion} (now ${current.version})`);
        }

        const changes: Partial<DbDepartmentRow> = {};
        const audited: Record<string, unknown> = {};
        if (input.name !== undefined && input.name !== current.name) {
          changes.name = input.name;
          audited.name = { from: current.name, to: input.name };
        }
        if (input.managerId !== undefined && input.managerId !== current.managerId) {
          if (input.managerId) await assertManager(trx, input.managerId);
          changes.manager_id = input.managerId;
          audited.managerId = { from: current.managerId, to: input.managerId };
        }
        if (input.externalId !== undefined && input.externalId !== current.externalId) {
          changes.external_id = input.externalId;
          audited.externalId = { from: current.externalId, to: input.externalId };
        }

        let newPath: string | undefined;
        if (moving && input.parentId !== current.parentId) {
          let parent: Department | undefined;
          if (input.parentId) {
            parent = await findDepartmentById(trx, input.parentId, 'key share');
            if (!parent) throw new AppError('invalid_argument', 'department.parent_not_found', 'parentId: no department with this id', { field: 'parentId' });
            if (parent.path.startsWith(current.path)) {
              throw new AppError('invalid_argument', 'department.move_cycle',
                parent.id === id ? 'parentId: a department cannot be its own parent' : 'parentId: a department cannot be moved under one of its own sub-departments',
                { field: 'parentId' });
            }
          }
          changes.parent_id = parent?.id ?? null;
          newPath = pathOf(parent?.path ?? null, id);
        }

        if (Object.keys(changes).length === 0) return current;
        const updated = await updateDepartmentById(trx, id, changes, current.version);
        if (!updated) throw new AppError('failed_precondition', 'department.version_mismatch', 'the department changed during the update; retry');

        if (newPath !== undefined) {
          const moved = await moveSubtree(trx, id, current.path, newPath);
          await recordAudit(trx, actor, {
            action: 'department.moved', targetType: 'department', targetId: id,
            changes: { parentId: { from: current.parentId, to: changes.parent_id }, path: { from: current.path, to: newPath }, departmentsMoved: moved },
            before: { parentId: current.parentId, path: current.path },
          });
        }
        const fieldChanges = Object.keys(audited).length > 0;
        if (fieldChanges) await recordAudit(trx, actor, { action: 'department.updated', targetType: 'department', targetId: id, changes: audited, before: valuesBefore(current, audited) });
        return (await findDepartmentById(trx, id))!;
      });
    } catch (err) {
      return nameTaken(err);
    }
  }

  /** Moves a department (and everything below it) under `parentId`, or to the top level with null. */
  moveDepartment(id: string, parentId: string | null, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<Department> {
    return this.updateDepartment(id, { parentId }, actor, expectedVersion);
  }

  /** Refuses (409) while people or sub-departments are in it, naming how many of each. */
  async deleteDepartment(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<void> {
    if (!isUuid(id)) throw notFound();
    try {
      await this.db.transaction(async (trx) => {
        const current = await findDepartmentById(trx, id, 'update');
        if (!current) throw notFound();
        if (expectedVersion !== undefined && current.version !== expectedVersion) {
          throw new AppError('failed_precondition', 'department.version_mismatch', `the department changed since version ${expectedVersion} (now ${current.version})`);
        }
        const { people, subDepartments } = await countDepartmentDependents(trx, id);
        if (people > 0 || subDepartments > 0) throw notEmpty(people, subDepartments);
        await deleteDepartmentById(trx, id);
        const assignments = await deleteAssignmentsOfPrincipal(trx, 'department', id);
        await recordAudit(trx, actor, {
          action: 'department.deleted', targetType: 'department', targetId: id,
          changes: { name: current.name, parentId: current.parentId, path: current.path, ...(assignments ? { assignmentsRemoved: assignments } : {}) },
        });
      });
    } catch (err) {
      // A member or child added by a concurrent transaction: the RESTRICT foreign keys refuse the delete.
      if (isForeignKeyViolation(err)) {
        const { people, subDepartments } = await countDepartmentDependents(this.db, id);
        throw notEmpty(people, subDepartments);
      }
      throw err;
    }
  }

  /**
   * Adds a person to a department, or changes whether it is their primary one. Making it
   * primary turns their previous primary department into a secondary one.
   */
  async addMember(departmentId: string, raw: DepartmentMemberInput, actor: Actor = SYSTEM_ACTOR): Promise<MembershipResult> {
    const input = parseInput(departmentMemberInput, raw);
    if (!isUuid(departmentId)) throw notFound();
    return this.db.transaction(async (trx) => {
      const department = await findDepartmentById(trx, departmentId, 'key share');
      if (!department) throw notFound();
      // Serialises membership changes of this person (one primary at a time).
      const user = await trx('users').where({ id: input.userId }).forNoKeyUpdate().first('id');
      if (!user) throw new AppError('not_found', 'user.not_found', 'userId: no user with this id', { field: 'userId' });
      const existing = await findMembership(trx, departmentId, input.userId);
      const result = { departmentId, userId: input.userId, primary: input.primary };
      if (existing && existing.is_primary === input.primary) return { ...result, changed: false };
      const previousPrimary = input.primary ? await findPrimaryDepartmentId(trx, input.userId) : undefined;
      if (input.primary) await demotePrimary(trx, input.userId, departmentId);
      await upsertMembership(trx, departmentId, input.userId, input.primary);
      await recordAudit(trx, actor, {
        action: existing ? 'department.member_updated' : 'department.member_added', targetType: 'department', targetId: departmentId,
        changes: {
          userId: input.userId, primary: input.primary,
          ...(previousPrimary && previousPrimary !== departmentId ? { previousPrimaryDepartmentId: previousPrimary } : {}),
        },
      });
      return { ...result, changed: true };
    });
  }

  async removeMember(departmentId: string, userId: string, actor: Actor = SYSTEM_ACTOR): Promise<void> {
    if (!isUuid(departmentId)) throw notFound();
    await this.db.transaction(async (trx) => {
      if (!(await findDepartmentById(trx, departmentId))) throw notFound();
      const removed = isUuid(userId) ? await deleteMembership(trx, departmentId, userId) : undefined;
      if (!removed) throw new AppError('not_found', 'department.member_not_found', 'this user is not a member of this department', { field: 'userId' });
      await recordAudit(trx, actor, {
        action: 'department.member_removed', targetType: 'department', targetId: departmentId, changes: { userId, primary: removed.is_primary },
      });
    });
  }

  /** How many people listMembers lists, over all pages. */
  async countMembers(departmentId: string, opts: { recursive?: boolean; status?: UserStatus }): Promise<number> {
    const department = await this.getDepartment(departmentId);
    return countDepartmentMembers(this.db, { departmentId, subtreePath: opts.recursive ? department.path : undefined, status: opts.status });
  }

  /** People in the department; with recursive, everyone in it and in every department below it. */
  async listMembers(departmentId: string, opts: { recursive?: boolean; status?: UserStatus; afterUserId?: string; limit: number }): Promise<DepartmentMember[]> {
    const department = await this.getDepartment(departmentId);
    return findDepartmentMembers(this.db, {
      departmentId,
      subtreePath: opts.recursive ? department.path : undefined,
      status: opts.status,
      afterUserId: opts.afterUserId,
      limit: opts.limit,
    });
  }
}

function notEmpty(people: number, subDepartments: number): AppError {
  const blockers = [people ? plural(people, 'person', 'people') : '', subDepartments ? plural(subDepartments, 'sub-department', 'sub-departments') : ''].filter(Boolean);
  if (blockers.length === 0) return new AppError('already_exists', 'department.not_empty', 'the department gained members or sub-departments while being deleted; retry');
  return new AppError('already_exists', 'department.not_empty',
    `the department still has ${blockers.join(' and ')}; move or remove them first`, { people, subDepartments });
}

async function assertManager(trx: Knex.Transaction, managerId: string): Promise<void> {
  if (!(await findUserById(trx, managerId))) {
    throw new AppError('invalid_argument', 'department.manager_not_found', 'managerId: no user with this id', { field: 'managerId' });
  }
}
