// Groups: flat, named sets of users. Members are added and removed one row at a time; every
// membership change bumps the group's version, so SCIM clients see a new ETag.
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { auditInsert, auditInsertWhere, recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor, type AuditEntry } from '../audit/audit.service.ts';
import { parseInput } from './users.service.ts';
import { findUserById, findUsersByReferences, isUuid, type User, type UserStatus } from './users.repo.ts';
import { deleteAssignmentsOfPrincipal } from './departments.repo.ts';
import {
  countGroupMembers, countGroups, deleteGroupById, deleteGroupMember, findGroupById, findGroupMembers, findGroups, insertGroup, insertGroupMember,
  updateGroupById, type DbGroupRow, type Group, type GroupFilter,
  changeMembersAtOnce, deleteGroupMembers, deleteGroupMembersExcept, findVisibleUserIds, insertGroupMembers, insertVisibleGroupMembers, relabelGroupMembers, bumpUserVersions, bumpMemberVersions, userVersionsBump,
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

/** At most this many references in one batch (one transaction; the audit log summarises beyond MEMBER_AUDIT_EVENTS_LIMIT). */
export const MEMBER_BATCH_LIMIT = 1000;

const memberRef = z.string().trim().min(1).max(254).describe('a user id, username or email');
export const groupMembersBatchInput = z.strictObject({
  add: z.array(memberRef).max(MEMBER_BATCH_LIMIT).default([]),
  remove: z.array(memberRef).max(MEMBER_BATCH_LIMIT).default([]),
}).refine((b) => b.add.length + b.remove.length >= 1, 'add or remove at least one member')
  .refine((b) => b.add.length + b.remove.length <= MEMBER_BATCH_LIMIT, `at most ${MEMBER_BATCH_LIMIT} members in one batch`);
export type GroupMembersBatchInput = z.input<typeof groupMembersBatchInput>;

export type GroupMemberBatchOutcomeKind = 'added' | 'already_member' | 'removed' | 'not_member' | 'not_found' | 'deprovisioned' | 'duplicate';
export interface GroupMemberBatchOutcome { ref: string; userId: string | null; outcome: GroupMemberBatchOutcomeKind }
export interface GroupMembersBatchResult { group: Group; added: number; removed: number; results: GroupMemberBatchOutcome[] }

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
    throw new AppError('already_exists', 'group.name_taken', 'name: a group with this name already exists', { field: 'name' });
  }
  throw err;
}

const isForeignKeyViolation = (err: unknown): boolean => (err as { code?: string }).code === '23503';

/**
 * One step of a multi-step group change (applied in order, in one transaction). Member steps are
 * set-based: each touches only the membership rows that change.
 */
export type GroupChange =
  | { kind: 'set'; name?: string; externalId?: string | null }
  /**
   * Adds visible users (see GroupChangeOptions) who are not members yet, with the labels given
   * (by lower-cased user id) for the new rows; ids of no visible user are skipped (see `ignored`).
   */
  | { kind: 'addMembers'; userIds: string[]; labels?: ReadonlyMap<string, string> }
  /** Removes these members; ids that are no member (or no visible user) are a no-op. */
  | { kind: 'removeMembers'; userIds: string[] }
  /**
   * Makes the visible members exactly the visible users among these ids (removes the others, adds
   * the missing), and sets the labels given on the members that stay.
   */
  | { kind: 'replaceMembers'; userIds: string[]; labels?: ReadonlyMap<string, string> }
  /** Removes every visible member. */
  | { kind: 'removeAllMembers' };

export interface GroupChangeOptions {
  /** The group must be at one of these versions, else failed_precondition (HTTP 412). */
  expectedVersions?: number[];
  /**
   * A department path ('/root/.../dept/'): only users with a department in this subtree may be
   * added or removed; anyone else counts as an unknown user, and set-wide steps (replace, remove
   * all) leave their memberships alone. Without it, every user who is not deprovisioned.
   */
  memberScope?: string | null;
}

export interface GroupChangeResult {
  group: Group;
  /** Net membership changes (a user removed and added back in the same request is in neither). */
  added: string[];
  removed: string[];
  /** Ids that were to be added but name no visible user: skipped, and recorded in the audit log. */
  ignored: string[];
  changed: boolean;
}

/** A request that changes more members than this writes one group.members_changed audit event instead of one event per member. */
export const MEMBER_AUDIT_EVENTS_LIMIT = 100;

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
        if (changes.name !== undefined) await bumpMemberVersions(trx, id);
        await recordAudit(trx, actor, { action: 'group.updated', targetType: 'group', targetId: id, changes: audited, before: valuesBefore(current, audited) });
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
      await bumpMemberVersions(trx, id);
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
        await bumpUserVersions(trx, [userId]);
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
      await bumpUserVersions(trx, [userId]);
      await updateGroupById(trx, groupId, {});
      await recordAudit(trx, actor, { action: 'group.member_removed', targetType: 'group', targetId: groupId, changes: { userId } });
    });
  }

  /** Members ordered by user id, paged with a keyset on the group_members primary key. */
  async listMembers(groupId: string, opts: { status?: UserStatus; afterUserId?: string; limit: number }): Promise<User[]> {
    await this.getGroup(groupId);
    return findGroupMembers(this.db, { groupId, ...opts });
  }

  async countMembers(groupId: string, status?: UserStatus): Promise<number> {
    await this.getGroup(groupId);
    return countGroupMembers(this.db, groupId, status);
  }

  /** How many groups the filter matches, over all pages. */
  countGroups(filter: Omit<GroupFilter, 'afterName' | 'limit'>): Promise<number> {
    if (filter.memberId && !isUuid(filter.memberId)) return Promise.resolve(0);
    return countGroups(this.db, filter);
  }

  /**
   * Adds and removes many members at once, named by user id, username or email (what an admin
   * pastes), in one transaction with the usual audit events (see changeGroup), and says what
   * happened to each reference: added, already a member, removed, not a member, no such person,
   * deprovisioned (not added), or a repeat of an earlier reference to the same person.
   */
  async changeMembersByReference(groupId: string, raw: GroupMembersBatchInput, actor: Actor = SYSTEM_ACTOR): Promise<GroupMembersBatchResult> {
    const input = parseInput(groupMembersBatchInput, raw);
    if (!isUuid(groupId)) throw notFound();
    return this.db.transaction(async (trx) => {
      if (!(await findGroupById(trx, groupId, 'key share'))) throw notFound();
      const users = await findUsersByReferences(trx, [...input.add, ...input.remove]);
      const seen = new Set<string>();
      const plan = (refs: string[], kind: 'add' | 'remove') => refs.map((ref) => {
        const user = users.get(ref);
        if (!user) return { ref, kind, userId: null, outcome: 'not_found' as const };
        if (seen.has(user.id)) return { ref, kind, userId: user.id, outcome: 'duplicate' as const };
        seen.add(user.id);
        if (kind === 'add' && user.status === 'deprovisioned') return { ref, kind, userId: user.id, outcome: 'deprovisioned' as const };
        return { ref, kind, userId: user.id, outcome: undefined };
      });
      const adds = plan(input.add, 'add');
      const removes = plan(input.remove, 'remove');
      const toAdd = adds.filter((a) => !a.outcome).map((a) => a.userId!);
      const toRemove = removes.filter((r) => !r.outcome).map((r) => r.userId!);
      const changes: GroupChange[] = [
        ...(toAdd.length ? [{ kind: 'addMembers' as const, userIds: toAdd }] : []),
        ...(toRemove.length ? [{ kind: 'removeMembers' as const, userIds: toRemove }] : []),
      ];
      const done = changes.length ? await new GroupsService(trx).changeGroup(groupId, changes, actor) : undefined;
      const added = new Set(done?.added ?? []);
      const removed = new Set(done?.removed ?? []);
      const results = [...adds, ...removes].map(({ ref, kind, userId, outcome }): GroupMemberBatchOutcome => ({
        ref, userId,
        outcome: outcome ?? (kind === 'add' ? (added.has(userId!) ? 'added' : 'already_member') : (removed.has(userId!) ? 'removed' : 'not_member')),
      }));
      return { group: done?.group ?? (await findGroupById(trx, groupId))!, added: added.size, removed: removed.size, results };
    });
  }

  /**
   * Creates a group with its first members in one transaction (SCIM POST /Groups). Ids that name
   * no visible user are skipped and audited (group.members_ignored), as in changeGroup.
   */
  async createGroupWithMembers(
    raw: CreateGroupInput, userIds: string[], actor: Actor = SYSTEM_ACTOR, opts: Pick<GroupChangeOptions, 'memberScope'> & { labels?: ReadonlyMap<string, string> } = {},
  ): Promise<Group> {
    const input = parseInput(createGroupInput, raw);
    try {
      return await this.db.transaction(async (trx) => {
        const group = await insertGroup(trx, { id: newId(), name: input.name, description: input.description ?? null, external_id: input.externalId ?? null });
        await recordAudit(trx, actor, { action: 'group.created', targetType: 'group', targetId: group.id, changes: { ...input } });
        if (!userIds.length) return group;
        const { visible, added } = await insertVisibleGroupMembers(trx, group.id, userIds, opts.labels, opts.memberScope);
        await bumpUserVersions(trx, added);
        const events = memberEvents(group.id, added, [], invisible(userIds, visible));
        if (events.length) await auditInsert(trx, actor, events);
        return group;
      });
    } catch (err) {
      return uniqueViolation(err);
    }
  }

  /**
   * Applies several changes to a group atomically (SCIM PATCH and PUT): attributes and members,
   * in order, with one version bump and the audit events in the same transaction. Nothing is
   * written when any step fails.
   *
   * Concurrent changes to one group serialise on its row (the version bump). A change that
   * only adds or removes members, without If-Match, takes that lock last: the membership rows
   * are written first (their foreign key only share-locks the group row, which does not block
   * other member writes), so the lock is held for one statement (the bump, which carries the
   * users' versions and the audit rows) and the commit. The most common of these (one add or
   * remove step, as SCIM clients send them) is a single statement without a transaction
   * (#changeMembersAtOnce): nothing waits on OneID while the row is locked. Renames and
   * If-Match need the row as it is, so they lock it first.
   */
  async changeGroup(id: string, changes: GroupChange[], actor: Actor = SYSTEM_ACTOR, opts: GroupChangeOptions = {}): Promise<GroupChangeResult> {
    const membersOnly = !opts.expectedVersions && changes.every((c) => c.kind !== 'set');
    try {
      const [only] = changes;
      if (membersOnly && changes.length === 1 && (only!.kind === 'addMembers' || only!.kind === 'removeMembers')) {
        const done = await this.#changeMembersAtOnce(id, only!, actor, opts.memberScope);
        if (done) return done;
      }
      return await this.db.transaction(async (trx) => {
        const locked = membersOnly ? undefined : await findGroupById(trx, id, 'update');
        if (!membersOnly && !locked) throw notFound();
        if (locked && opts.expectedVersions && !opts.expectedVersions.includes(locked.version)) {
          throw new AppError('failed_precondition', 'group.version_mismatch', `the group is at version ${locked.version}, not ${opts.expectedVersions.join(' or ')}`);
        }
        const net = new Map<string, 'added' | 'removed'>();
        const track = (ids: string[], what: 'added' | 'removed') => {
          for (const userId of ids) {
            if (net.get(userId) && net.get(userId) !== what) net.delete(userId);
            else net.set(userId, what);
          }
        };
        let rowsTouched = false;
        const ignored = new Set<string>();
        let name = locked?.name;
        let externalId = locked?.externalId;
        for (const change of changes) {
          switch (change.kind) {
            case 'set': {
              const input = parseInput(updateGroupInput, { name: change.name, externalId: change.externalId });
              if (input.name !== undefined) name = input.name;
              if (input.externalId !== undefined) externalId = input.externalId;
              break;
            }
            case 'addMembers': {
              const { visible, added } = await insertVisibleGroupMembers(trx, id, change.userIds, change.labels, opts.memberScope);
              for (const userId of invisible(change.userIds, visible)) ignored.add(userId);
              track(added, 'added');
              rowsTouched ||= added.length > 0;
              break;
            }
            case 'removeMembers': {
              const removed = await deleteGroupMembers(trx, id, change.userIds.map((u) => u.toLowerCase()), opts.memberScope);
              track(removed, 'removed');
              rowsTouched ||= removed.length > 0;
              break;
            }
            case 'replaceMembers': {
              const { visible, ignored: skipped } = await this.#visible(trx, change.userIds, opts.memberScope);
              for (const userId of skipped) ignored.add(userId);
              const removed = await deleteGroupMembersExcept(trx, id, visible, opts.memberScope);
              const added = await insertGroupMembers(trx, id, visible, change.labels);
              const stays = new Set(visible);
              for (const userId of added) stays.delete(userId);
              const keptLabels = new Map([...(change.labels ?? [])].filter(([userId]) => stays.has(userId)));
              const relabelled = await relabelGroupMembers(trx, id, keptLabels);
              track(removed, 'removed');
              track(added, 'added');
              rowsTouched ||= removed.length > 0 || added.length > 0 || relabelled.length > 0;
              break;
            }
            case 'removeAllMembers': {
              const removed = await deleteGroupMembersExcept(trx, id, [], opts.memberScope);
              track(removed, 'removed');
              rowsTouched ||= removed.length > 0;
              break;
            }
          }
        }
        const columns: Partial<DbGroupRow> = {};
        const audited: Record<string, unknown> = {};
        if (locked && name !== locked.name) {
          columns.name = name;
          audited.name = { from: locked.name, to: name };
        }
        if (locked && externalId !== locked.externalId) {
          columns.external_id = externalId;
          audited.externalId = { from: locked.externalId, to: externalId };
        }
        const added = [...net].filter(([, what]) => what === 'added').map(([userId]) => userId);
        const removed = [...net].filter(([, what]) => what === 'removed').map(([userId]) => userId);
        if (!rowsTouched && Object.keys(columns).length === 0) {
          const group = locked ?? await findGroupById(trx, id);
          if (!group) throw notFound();
          if (ignored.size) await auditInsert(trx, actor, memberEvents(id, [], [], [...ignored]));
          return { group, added, removed, ignored: [...ignored], changed: false };
        }
        // The rest goes with the version bump, in one statement (see updateGroupById). Each user
        // whose membership changed, and on a rename every member, shows a new `groups`.
        const renamed = columns.name !== undefined;
        const bumped = renamed ? removed : [...added, ...removed];
        const events = [
          ...(Object.keys(audited).length ? [{ action: 'group.updated', targetType: 'group', targetId: id, changes: audited, before: valuesBefore(locked!, audited) }] : []),
          ...memberEvents(id, added, removed, [...ignored]),
        ];
        const alongside = [
          ...(renamed || bumped.length ? [userVersionsBump(trx, bumped, renamed ? id : undefined)] : []),
          ...(events.length ? [auditInsert(trx, actor, events)] : []),
        ];
        // Locked first: the row must still be at the version read. Members only: bump whatever it is now.
        const updated = await updateGroupById(trx, id, columns, locked?.version, alongside);
        if (!updated && !locked) throw notFound();
        if (!updated) throw new AppError('failed_precondition', 'group.version_mismatch', 'the group changed during the update; retry');
        return { group: updated, added, removed, ignored: [...ignored], changed: true };
      });
    } catch (err) {
      // Members only: a member row for a group that does not exist (any more) fails its foreign key.
      if (membersOnly && isForeignKeyViolation(err)) throw notFound();
      return uniqueViolation(err);
    }
  }

  /**
   * The common SCIM PATCH (add or remove some members, no If-Match) in one statement without a
   * transaction (see changeMembersAtOnce), with the same outcome as the general path. Undefined
   * when it does not apply, having written nothing: more ids than get an audit event each, or an
   * id to add that is no visible user (the general path skips it and audits that).
   */
  async #changeMembersAtOnce(
    id: string, change: Extract<GroupChange, { kind: 'addMembers' | 'removeMembers' }>, actor: Actor, scope: string | null | undefined,
  ): Promise<GroupChangeResult | undefined> {
    const add = change.kind === 'addMembers';
    const wanted = [...new Set(change.userIds.map((u) => u.toLowerCase()))];
    // Removing an id that is no uuid removes nothing; adding one is skipped and audited (general path).
    const ids = wanted.filter(isUuid);
    if (!ids.length || ids.length > MEMBER_AUDIT_EVENTS_LIMIT || (add && ids.length < wanted.length)) return undefined;
    const result = await changeMembersAtOnce(this.db, id, add ? 'add' : 'remove', ids, {
      scopePath: scope,
      ...(add && change.labels ? { labels: change.labels } : {}),
      events: (changed) => auditInsertWhere(this.db, actor, add ? memberEvents(id, ids, []) : memberEvents(id, [], ids), changed),
    });
    if (!result.complete) return undefined;
    if (!result.group) throw notFound();
    return {
      group: result.group,
      added: add ? result.changed : [],
      removed: add ? [] : result.changed,
      ignored: [],
      changed: result.changed.length > 0,
    };
  }

  /**
   * The distinct, lower-cased ids split into visible users and the rest (unknown, deprovisioned,
   * outside the scope, or not a user id at all). Provisioning clients routinely send members
   * OneID does not have (not provisioned yet, or out of their scope): those are skipped rather
   * than failing the whole request, and the audit log says which.
   */
  async #visible(trx: Knex.Transaction, userIds: string[], scope: string | null | undefined): Promise<{ visible: string[]; ignored: string[] }> {
    const wanted = [...new Set(userIds.map((u) => u.toLowerCase()))];
    const found = await findVisibleUserIds(trx, wanted, scope);
    return { visible: wanted.filter((u) => found.has(u)), ignored: invisible(userIds, found) };
  }
}

/** The ids (distinct, as given) that name no visible user. */
function invisible(userIds: readonly string[], visible: ReadonlySet<string>): string[] {
  return [...new Set(userIds.filter((u) => !visible.has(u.toLowerCase())))];
}

/** Member changes keep the admin API's events (one per member) unless a request changes very many at once. */
function memberEvents(groupId: string, added: string[], removed: string[], ignored: string[] = []): AuditEntry[] {
  const events: AuditEntry[] = [];
  if (ignored.length) {
    events.push({
      action: 'group.members_ignored', targetType: 'group', targetId: groupId,
      changes: { count: ignored.length, userIds: ignored.slice(0, MEMBER_AUDIT_EVENTS_LIMIT).map((id) => (id.length > 64 ? `${id.slice(0, 64)}...` : id)) },
    });
  }
  if (added.length + removed.length > MEMBER_AUDIT_EVENTS_LIMIT) {
    events.push({
      action: 'group.members_changed', targetType: 'group', targetId: groupId,
      changes: { addedCount: added.length, removedCount: removed.length, added, removed },
    });
    return events;
  }
  for (const userId of added) events.push({ action: 'group.member_added', targetType: 'group', targetId: groupId, changes: { userId } });
  for (const userId of removed) events.push({ action: 'group.member_removed', targetType: 'group', targetId: groupId, changes: { userId } });
  return events;
}

function assertVersion(current: Group, expectedVersion: number | undefined): void {
  if (expectedVersion !== undefined && current.version !== expectedVersion) {
    throw new AppError('failed_precondition', 'group.version_mismatch', `the group changed since version ${expectedVersion} (now ${current.version})`);
  }
}
