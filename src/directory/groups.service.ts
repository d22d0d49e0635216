// Groups: flat, named sets of users. Members are added and removed one row at a time; every
// membership change bumps the group's version, so SCIM clients see a new ETag.
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../audit/audit.service.ts';
import { parseInput } from './users.service.ts';
import { findUserById, isUuid, type User, type UserStatus } from './users.repo.ts';
import { deleteAssignmentsOfPrincipal } from './departments.repo.ts';
import {
  countGroupMembers, deleteGroupById, deleteGroupMember, findGroupById, findGroupMembers, findGroups, insertGroup, insertGroupMember,
  updateGroupById, type DbGroupRow, type Group, type GroupFilter,
} from './groups.repo.ts';

const name = z.string().trim().min(1).max(200).refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed');
const description = z.string().trim().max(2000);
const externalId = z.string().trim().min(1).max(255);

export const createGroupInput = z.strictObject({
  name,
  description: description.nullable().optional(),
  externalId: externalId.nullable().optional(),
});
export type CreateGroupInput = z.input<typeof createGroupInput>;

/** PATCH semantics: absent = unchanged, null = cleared. */
export const updateGroupInput = z.strictObject({
  name: name.optional(),
  description: description.nullable().optional(),
  externalId: externalId.nullable().optional(),
});
export type UpdateGroupInput = z.input<typeof updateGroupInput>;

export const groupMemberInput = z.strictObject({ userId: z.uuid() });

export interface GroupMemberResult {
  groupId: string;
  userId: string;
  /** false when nothing changed (already a member): no write, no audit event, same version. */
  changed: boolean;
}

const notFound = (): AppError => new AppError('not_found', 'group.not_found', 'no group with this id');
const userNotFound = (): AppError => new AppError('not_found', 'user.not_found', 'userId: no user with this id', { field: 'userId' });

function uniqueViolation(err: unknown): never {
  if (isUniqueViolation(err)) {
    const constraint = String((err as { constraint?: string }).constraint ?? '');
    if (constraint.includes('external_id')) throw new AppError('already_exists', 'group.external_id_taken', 'externalId: a group with this externalId already exists', { field: 'externalId' });
    throw new AppError('already_exists', 'group.name_taken', 'name: a group with this name already exists', { field: 'name' });
  }
  throw err;
}

const isForeignKeyViolation = (err: unknown): boolean => (err as { code?: string }).code === '23503';

export class GroupsService {
  constructor(readonly db: Knex) {}

  async createGroup(raw: CreateGroupInput, actor: Actor = SYSTEM_ACTOR): Promise<Group> {
    const input = parseInput(createGroupInput, raw);
    try {
      return await this.db.transaction(async (trx) => {
        const group = await insertGroup(trx, { id: newId(), name: input.name, description: input.description ?? null, external_id: input.externalId ?? null });
        await recordAudit(trx, actor, { action: 'group.created', targetType: 'group', targetId: group.id, changes: { ...input } });
        return group;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  async getGroup(id: string): Promise<Group> {
    const group = await findGroupById(this.db, id);
    if (!group) throw notFound();
    return group;
  }

  listGroups(filter: GroupFilter): Promise<Group[]> {
    if (filter.memberId && !isUuid(filter.memberId)) return Promise.resolve([]);
    return findGroups(this.db, filter);
  }

  /** Partial update; with expectedVersion, a stale version gives failed_precondition (412). */
  async updateGroup(id: string, raw: UpdateGroupInput, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<Group> {
    const input = parseInput(updateGroupInput, raw);
    try {
      return await this.db.transaction(async (trx) => {
        const current = await findGroupById(trx, id, 'update');
        if (!current) throw notFound();
        assertVersion(current, expectedVersion);
        const changes: Partial<DbGroupRow> = {};
        const audited: Record<string, unknown> = {};
        if (input.name !== undefined && input.name !== current.name) {
          changes.name = input.name;
          audited.name = { from: current.name, to: input.name };
        }
        if (input.description !== undefined && input.description !== current.description) {
          changes.description = input.description;
          audited.description = { from: current.description, to: input.description };
        }
        if (input.externalId !== undefined && input.externalId !== current.externalId) {
          changes.external_id = input.externalId;
          audited.externalId = { from: current.externalId, to: input.externalId };
        }
        if (Object.keys(changes).length === 0) return current;
        const updated = await updateGroupById(trx, id, changes, current.version);
        if (!updated) throw new AppError('failed_precondition', 'group.version_mismatch', 'the group changed during the update; retry');
        await recordAudit(trx, actor, { action: 'group.updated', targetType: 'group', targetId: id, changes: audited });
        return updated;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  /** Deletes the group with its memberships (and any app assignments made to it). */
  async deleteGroup(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number): Promise<void> {
    await this.db.transaction(async (trx) => {
      const current = await findGroupById(trx, id, 'update');
      if (!current) throw notFound();
      assertVersion(current, expectedVersion);
      const members = await countGroupMembers(trx, id);
      const assignments = await deleteAssignmentsOfPrincipal(trx, 'group', id);
      await deleteGroupById(trx, id);
      await recordAudit(trx, actor, {
        action: 'group.deleted', targetType: 'group', targetId: id,
        changes: { name: current.name, externalId: current.externalId, membersRemoved: members, ...(assignments ? { assignmentsRemoved: assignments } : {}) },
      });
    });
  }

  /** Adds one member (one row). Idempotent: adding an existing member changes nothing. */
  async addMember(groupId: string, userId: string, actor: Actor = SYSTEM_ACTOR): Promise<GroupMemberResult> {
    ({ userId } = parseInput(groupMemberInput, { userId }));
    try {
      return await this.db.transaction(async (trx) => {
        if (!(await findGroupById(trx, groupId))) throw notFound();
        if (!(await findUserById(trx, userId))) throw userNotFound();
        const inserted = await insertGroupMember(trx, groupId, userId);
        if (!inserted) return { groupId, userId, changed: false };
        await updateGroupById(trx, groupId, {});
        await recordAudit(trx, actor, { action: 'group.member_added', targetType: 'group', targetId: groupId, changes: { userId } });
        return { groupId, userId, changed: true };
      });
    } catch (err) {
      // The group was deleted between the check and the insert.
      if (isForeignKeyViolation(err)) throw notFound();
      throw err;
    }
  }

  /** Removes one member (one row); not_found when the user is not a member. */
  async removeMember(groupId: string, userId: string, actor: Actor = SYSTEM_ACTOR): Promise<void> {
    await this.db.transaction(async (trx) => {
      if (!(await findGroupById(trx, groupId))) throw notFound();
      const removed = isUuid(userId) && await deleteGroupMember(trx, groupId, userId);
      if (!removed) throw new AppError('not_found', 'group.member_not_found', 'this user is not a member of this group', { field: 'userId' });
      await updateGroupById(trx, groupId, {});
      await recordAudit(trx, actor, { action: 'group.member_removed', targetType: 'group', targetId: groupId, changes: { userId } });
    });
  }

  /** Members ordered by user id, paged with a keyset on the group_members primary key. */
  async listMembers(groupId: string, opts: { status?: UserStatus; afterUserId?: string; limit: number }): Promise<User[]> {
    await this.getGroup(groupId);
    return findGroupMembers(this.db, { groupId, ...opts });
  }

  async countMembers(groupId: string): Promise<number> {
    await this.getGroup(groupId);
    return countGroupMembers(this.db, groupId);
  }
}

function assertVersion(current: Group, expectedVersion: number | undefined): void {
  if (expectedVersion !== undefined && current.version !== expectedVersion) {
    throw new AppError('failed_precondition', 'group.version_mismatch', `the group changed since version ${expectedVersion} (now ${current.version})`);
  }
}
