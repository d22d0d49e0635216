// The sync engine of outbound provisioning: makes one app hold exactly the people (and groups)
// OneID entitles to it. Every operation is LEVEL-TRIGGERED: it reads the current state in OneID
// and in provisioned_objects and sends what makes the app match, whatever event caused it. So a
// job that runs twice, late, or after a crash does no harm, and a burst of changes collapses into
// one push.
//
// Failures: an answer worth retrying (network, timeout, 429, 5xx) is recorded on the object and
// thrown, so the job queue retries it with backoff (then dead-letters it); any other refusal
// (4xx) is recorded with the app's own error and returned, since sending it again cannot help.
import type { Knex } from 'knex';
import pLimit from 'p-limit';
import type { MasterKey } from '../keys/master-key.ts';
import type { Logger } from '../shared/logger.ts';
import { AppError } from '../shared/errors.ts';
import { foldName } from '../shared/names.ts';
import { findUserById, type User } from '../directory/users.repo.ts';
import { entitlements } from '../access/entitlements.ts';
import { ScimClient, ScimClientError, ScimConflict, type ScimClientOptions, type ScimUser } from './scim-client.ts';
import {
  findTargetByAppId, findObject, markAttempt, markFailure, markSuccess, remoteIdsOf, objectsByRemoteIds, linkRemote,
  unlinkRemote, forgetPushedHash, heldObjectsPage, recordFullSync, type Target, type DbObjectRow, type ObjectKind,
} from './provisioning.repo.ts';
import { entitledUserPages, heldNotEntitledPage, roleHolderIdsPage, assignedGroups, isGroupAssigned, groupMemberIdsPage } from './entitled.ts';
import {
  representUser, representationHash, patchOperations, withActive, differingAttributes, type PersonFacts, type Representation,
} from './mapping.ts';

/** pushed_hash of a person the app holds deactivated: nothing more to send while they stay out. */
const DEACTIVATED = 'deactivated';
const PAGE = 200;

export type SyncOutcome = 'created' | 'adopted' | 'updated' | 'unchanged' | 'deactivated' | 'deleted' | 'failed' | 'skipped';

export interface SyncResult { outcome: SyncOutcome; error?: string }

export interface ReconcileSummary {
  full: boolean;
  startedAt: string;
  finishedAt?: string;
  entitled: number;
  outcomes: Partial<Record<SyncOutcome, number>>;
  groups: number;
  /** Set when the app stopped answering: the job is retried. */
  interrupted?: string;
  /** The first few non-retryable refusals. */
  errors: { userId: string; error: string }[];
}

export interface DriftEntry { userId: string | null; remoteId: string | null; userName: string }
export interface DriftReport {
  /** false when the time budget ran out before the whole app was compared. */
  complete: boolean;
  checkedAt: string;
  /** Users the app listed. */
  appUsers: number;
  counts: { missing: number; unexpected: number; different: number; unmanaged: number };
  /** Entitled people the app does not hold. */
  missing: DriftEntry[];
  /** People the app holds (active, or at all when the target deletes) who should not be there. */
  unexpected: (DriftEntry & { active: boolean; expected: 'inactive' | 'absent' })[];
  /** People the app holds with attributes that differ from what OneID would send. */
  different: (DriftEntry & { attributes: string[] })[];
}

export interface ProvisionerOptions {
  /** Pushes in flight at once during a reconcile. */
  concurrency?: number;
  /** Options for every SCIM client (timeouts, member batch size). */
  client?: Partial<Omit<ScimClientOptions, 'baseUrl' | 'token'>>;
}

export class Provisioner {
  readonly #db: Knex;
  readonly #masterKey: MasterKey;
  readonly #log: Logger;
  readonly #opts: ProvisionerOptions;

  constructor(db: Knex, masterKey: MasterKey, log: Logger, opts: ProvisionerOptions = {}) {
    this.#db = db;
    this.#masterKey = masterKey;
    this.#log = log;
    this.#opts = opts;
  }

  /** The enabled target of the app and a client for it; undefined without one. */
  async #target(appId: string): Promise<{ target: Target; client: ScimClient } | undefined> {
    const target = await findTargetByAppId(this.#db, appId);
    if (!target || !target.enabled) return undefined;
    const token = this.#masterKey.decrypt(target.tokenCiphertext);
    return { target, client: new ScimClient({ ...this.#opts.client, baseUrl: target.baseUrl, token }) };
  }

  // People

  /** Makes the app hold the person as OneID says it should (see the head of this file). */
  async syncUser(appId: string, userId: string, options: { roleGroups?: boolean } = {}): Promise<SyncResult> {
    const t = await this.#target(appId);
    if (!t) return { outcome: 'skipped' };
    return this.#syncUser(t.target, t.client, userId, await this.#roleNames(appId), options.roleGroups ?? true);
  }

  async #syncUser(target: Target, client: ScimClient, userId: string, roleNames: Map<string, string>, roleGroups: boolean): Promise<SyncResult> {
    const db = this.#db;
    const appId = target.appId;
    const row = await findObject(db, appId, 'user', userId);
    const held = row?.remote_id && !row.deleted_at ? row.remote_id : undefined;
    const user = await findUserById(db, userId);
    const ent = user?.status === 'active' ? await entitlements(db, userId, appId) : undefined;
    if (!user || !ent?.allowed || !target.pushUsers) {
      if (!held) return { outcome: 'unchanged' };
      return this.#remove(target, client, userId, row!, held);
    }
    const rep = representUser(await this.#facts(appId, user, ent.roles, roleNames), target.attributeMapping, target.rolesAs, true);
    const hash = representationHash(rep);
    if (held && row!.pushed_hash === hash) return { outcome: 'unchanged' };

    // No "attempt" row is written first: a push that dies half way is found again by the next
    // one (a create that happened is adopted on its conflict), so a person costs one write.
    let remoteId = held;
    const groupsFollow = target.pushGroups || (roleGroups && target.rolesAs === 'groups');
    try {
      let outcome: SyncOutcome = 'updated';
      if (!remoteId) {
        ({ remoteId, outcome } = await this.#createOrAdopt(client, rep, userId));
        // Keep the app's id before more requests: a failure in them must not lead to a second create.
        if (outcome === 'adopted' || groupsFollow) await linkRemote(db, appId, 'user', userId, remoteId, null);
        if (outcome === 'adopted') await this.#update(client, remoteId, rep);
      } else if (!(await this.#update(client, remoteId, rep))) {
        // The app lost the person (deleted behind OneID's back): create them again.
        ({ remoteId, outcome } = await this.#createOrAdopt(client, rep, userId));
        await linkRemote(db, appId, 'user', userId, remoteId, null);
      }
      if (outcome !== 'updated') await this.#joinPushedGroups(target, client, userId, remoteId);
      if (roleGroups && target.rolesAs === 'groups') await this.#userRoleGroups(target, client, remoteId, rep.roleGroups);
      await markSuccess(db, appId, 'user', userId, { remoteId, active: true, deleted: false, pushedHash: hash });
      return { outcome };
    } catch (err) {
      return this.#failed(appId, 'user', userId, err, remoteId);
    }
  }

  /** POST; on a conflict, adopt the app's existing user found by userName, then by externalId. */
  async #createOrAdopt(client: ScimClient, rep: Representation, userId: string): Promise<{ remoteId: string; outcome: SyncOutcome }> {
    try {
      return { remoteId: (await client.createUser(rep.user)).id, outcome: 'created' };
    } catch (err) {
      if (!(err instanceof ScimConflict)) throw err;
      const existing = (await client.findUserBy('userName', String(rep.user.userName))) ?? (await client.findUserBy('externalId', userId));
      if (!existing) throw err;
      return { remoteId: existing.id, outcome: 'adopted' };
    }
  }

  /** PATCH the managed attributes (PUT when the app refuses PATCH). false when the app no longer has the user. */
  async #update(client: ScimClient, remoteId: string, rep: Representation): Promise<boolean> {
    try {
      try {
        await client.patchUser(remoteId, patchOperations(rep));
      } catch (err) {
        if (!(err instanceof ScimClientError) || !err.patchUnsupported) throw err;
        await client.replaceUser(remoteId, rep.user);
      }
      return true;
    } catch (err) {
      if (err instanceof ScimClientError && err.status === 404) return false;
      throw err;
    }
  }

  /** The person lost the app (or left): deactivate or delete, as the target says. */
  async #remove(target: Target, client: ScimClient, userId: string, row: DbObjectRow, remoteId: string): Promise<SyncResult> {
    const db = this.#db;
    const appId = target.appId;
    if (target.onUnassign === 'deactivate' && row.active === false && row.pushed_hash === DEACTIVATED) return { outcome: 'unchanged' };
    await markAttempt(db, appId, 'user', userId);
    try {
      if (target.onUnassign === 'delete') {
        await ignoreNotFound(client.deleteUser(remoteId));
        await markSuccess(db, appId, 'user', userId, { remoteId, active: false, deleted: true, pushedHash: null });
        return { outcome: 'deleted' };
      }
      const found = await ignoreNotFound(this.#deactivate(client, remoteId));
      await markSuccess(db, appId, 'user', userId, found === undefined
        ? { remoteId, active: false, deleted: true, pushedHash: null } // already gone from the app
        : { remoteId, active: false, deleted: false, pushedHash: DEACTIVATED });
      return { outcome: 'deactivated' };
    } catch (err) {
      return this.#failed(appId, 'user', userId, err, remoteId);
    }
  }

  async #deactivate(client: ScimClient, remoteId: string): Promise<true> {
    try {
      await client.patchUser(remoteId, [{ op: 'replace', path: 'active', value: false }]);
    } catch (err) {
      if (!(err instanceof ScimClientError) || !err.patchUnsupported) throw err;
      // PUT replaces everything: send back the app's own copy with active false.
      await client.replaceUser(remoteId, withActive(await client.getUser(remoteId), false));
    }
    return true;
  }

  /** Records a failed push; throws again what is worth retrying. */
  async #failed(appId: string, kind: ObjectKind, localId: string, err: unknown, remoteId?: string): Promise<SyncResult> {
    if (!(err instanceof AppError)) throw err; // a database or programming error: the job retries
    await markFailure(this.#db, appId, kind, localId, err.message, remoteId);
    if (err instanceof ScimClientError && err.retryable) throw err;
    this.#log.info({ event: 'provisioning.refused', appId, kind, localId, code: err.code }, 'the app refused a push');
    return { outcome: 'failed', error: err.message };
  }

  /** What the mapping reads about a person besides the users row. */
  async #facts(appId: string, user: User, roleKeys: string[], roleNames: Map<string, string>): Promise<PersonFacts> {
    const dept = await this.#db('user_departments as ud').join('departments as d', 'd.id', 'ud.department_id')
      .where({ 'ud.user_id': user.id, 'ud.is_primary': true }).first<{ name: string } | undefined>('d.name');
    const manager = user.managerId ? (await remoteIdsOf(this.#db, appId, [user.managerId])).get(user.managerId) ?? null : null;
    return { user, departmentName: dept?.name ?? null, managerRemoteId: manager, roles: roleKeys.map((key) => ({ key, name: roleNames.get(key) ?? key })) };
  }

  async #roleNames(appId: string): Promise<Map<string, string>> {
    const rows: { key: string; name: string }[] = await this.#db('app_roles').where({ app_id: appId }).select('key', 'name');
    return new Map(rows.map((r) => [r.key, r.name]));
  }

  // Groups

  /** A newly created person joins the pushed groups they belong to (their group's sync may have run before they existed). */
  async #joinPushedGroups(target: Target, client: ScimClient, userId: string, remoteUserId: string): Promise<void> {
    if (!target.pushGroups) return;
    const groups: { remote_id: string }[] = (await this.#db.raw(`
      select po.remote_id from provisioned_objects po
        join group_members gm on gm.group_id::text = po.local_id
       where po.app_id = ? and po.kind = 'group' and gm.user_id = ? and po.remote_id is not null and po.deleted_at is null`, [target.appId, userId])).rows;
    for (const g of groups) await client.addGroupMembers(g.remote_id, [remoteUserId]);
  }

  /** The person's memberships of the role groups (roles_as 'groups'): in the groups of their roles, out of the others. */
  async #userRoleGroups(target: Target, client: ScimClient, remoteUserId: string, roleKeys: string[]): Promise<void> {
    const groups = await this.#ensureRoleGroups(target, client);
    for (const g of groups) {
      if (roleKeys.includes(g.key)) await client.addGroupMembers(g.remoteId, [remoteUserId]);
      else await client.removeGroupMembers(g.remoteId, [remoteUserId]).catch(ignoreNoTarget);
    }
  }

  /** One downstream group per app role, created when missing (local id role:<role id>). */
  async #ensureRoleGroups(target: Target, client: ScimClient): Promise<{ roleId: string; key: string; remoteId: string }[]> {
    const roles: { id: string; key: string; name: string }[] = await this.#db('app_roles').where({ app_id: target.appId }).orderBy('key').select('id', 'key', 'name');
    const out = [];
    for (const role of roles) {
      const localId = `role:${role.id}`;
      const row = await findObject(this.#db, target.appId, 'group', localId);
      let remoteId = row?.remote_id && !row.deleted_at ? row.remote_id : undefined;
      if (!remoteId) {
        remoteId = await this.#createOrAdoptGroup(client, role.name, localId);
        await markSuccess(this.#db, target.appId, 'group', localId, { remoteId, active: null, deleted: false, pushedHash: role.name });
      }
      out.push({ roleId: role.id, key: role.key, remoteId });
    }
    return out;
  }

  async #createOrAdoptGroup(client: ScimClient, displayName: string, externalId: string): Promise<string> {
    try {
      return (await client.createGroup({ displayName, externalId })).id;
    } catch (err) {
      if (!(err instanceof ScimConflict)) throw err;
      const existing = (await client.findGroupBy('externalId', externalId)) ?? (await client.findGroupBy('displayName', displayName));
      if (!existing) throw err;
      return existing.id;
    }
  }

  /**
   * Makes the app's copy of a OneID group match: present with its active members (those the app
   * holds) while the group is assigned to the app and the target pushes groups, else deleted.
   */
  async syncGroup(appId: string, groupId: string): Promise<SyncResult> {
    const t = await this.#target(appId);
    if (!t) return { outcome: 'skipped' };
    return this.#syncGroup(t.target, t.client, groupId);
  }

  async #syncGroup(target: Target, client: ScimClient, groupId: string): Promise<SyncResult> {
    const db = this.#db;
    const appId = target.appId;
    const row = await findObject(db, appId, 'group', groupId);
    const held = row?.remote_id && !row.deleted_at ? row.remote_id : undefined;
    const group = await db('groups').where({ id: groupId }).first<{ id: string; name: string } | undefined>('id', 'name');
    const wanted = Boolean(group && target.pushGroups && (await isGroupAssigned(db, appId, groupId)));
    if (!wanted) {
      if (!held) return { outcome: 'unchanged' };
      await markAttempt(db, appId, 'group', groupId);
      try {
        await ignoreNotFound(client.deleteGroup(held));
        await markSuccess(db, appId, 'group', groupId, { remoteId: held, active: null, deleted: true, pushedHash: null });
        return { outcome: 'deleted' };
      } catch (err) {
        return this.#failed(appId, 'group', groupId, err, held);
      }
    }
    const members = new Set<string>();
    for (let after = ''; ;) {
      const page = await groupMemberIdsPage(db, groupId, after, 1000);
      if (!page.length) break;
      for (const remote of (await remoteIdsOf(db, appId, page)).values()) members.add(remote);
      after = page[page.length - 1]!;
    }
    return this.#pushGroup(target, client, 'group', groupId, group!.name, held, row?.pushed_hash ?? null, members);
  }

  /**
   * Role groups (roles_as 'groups'): each role's group holds exactly the role's holders the app
   * has. The groups of deleted roles (or all of them, once roles go out another way) are deleted.
   */
  async syncRoleGroups(appId: string): Promise<number> {
    const t = await this.#target(appId);
    if (!t) return 0;
    if (t.target.rolesAs !== 'groups') {
      await this.#dropRoleGroups(t.target, t.client, new Set());
      return 0;
    }
    const groups = await this.#ensureRoleGroups(t.target, t.client);
    await this.#dropRoleGroups(t.target, t.client, new Set(groups.map((g) => `role:${g.roleId}`)));
    const names = await this.#roleNames(appId);
    const keyName = new Map([...names].map(([k, n]) => [k, n]));
    for (const g of groups) {
      const members = new Set<string>();
      for (let after = ''; ;) {
        const page = await roleHolderIdsPage(this.#db, appId, g.roleId, after, 1000);
        if (!page.length) break;
        for (const remote of (await remoteIdsOf(this.#db, appId, page)).values()) members.add(remote);
        after = page[page.length - 1]!;
      }
      const localId = `role:${g.roleId}`;
      const row = await findObject(this.#db, appId, 'group', localId);
      const result = await this.#pushGroup(t.target, t.client, 'group', localId, keyName.get(g.key) ?? g.key, g.remoteId, row?.pushed_hash ?? null, members);
      if (result.outcome === 'failed') this.#log.info({ event: 'provisioning.role_group_failed', appId, role: g.key }, 'a role group was refused');
    }
    return groups.length;
  }

  async #dropRoleGroups(target: Target, client: ScimClient, keep: Set<string>): Promise<void> {
    const rows: DbObjectRow[] = await this.#db('provisioned_objects')
      .where({ app_id: target.appId, kind: 'group' }).andWhere('local_id', 'like', 'role:%').whereNotNull('remote_id').whereNull('deleted_at').select('*');
    for (const row of rows) {
      if (keep.has(row.local_id)) continue;
      await ignoreNotFound(client.deleteGroup(row.remote_id!));
      await markSuccess(this.#db, target.appId, 'group', row.local_id, { remoteId: row.remote_id, active: null, deleted: true, pushedHash: null });
    }
  }

  /** Creates (or adopts) a group, renames it when needed and brings its members to `members` (app ids). */
  async #pushGroup(target: Target, client: ScimClient, kind: ObjectKind, localId: string, displayName: string, held: string | undefined, pushedName: string | null, members: Set<string>): Promise<SyncResult> {
    const db = this.#db;
    const appId = target.appId;
    await markAttempt(db, appId, kind, localId);
    let remoteId = held;
    try {
      let outcome: SyncOutcome = 'updated';
      let current: Set<string>;
      const fresh = async () => {
        remoteId = await this.#createOrAdoptGroup(client, displayName, localId);
        await linkRemote(db, appId, kind, localId, remoteId, null);
        outcome = 'created';
      };
      if (!remoteId) await fresh();
      try {
        current = new Set((await client.getGroup(remoteId!)).members?.map((m) => m.value) ?? []);
      } catch (err) {
        if (!(err instanceof ScimClientError) || err.status !== 404) throw err;
        await fresh(); // deleted behind OneID's back
        current = new Set();
      }
      const add = [...members].filter((m) => !current.has(m));
      const remove = [...current].filter((m) => !members.has(m));
      try {
        if (pushedName !== displayName && outcome === 'updated') await client.patchGroup(remoteId!, [{ op: 'replace', path: 'displayName', value: displayName }]);
        await client.addGroupMembers(remoteId!, add);
        await client.removeGroupMembers(remoteId!, remove);
      } catch (err) {
        if (!(err instanceof ScimClientError) || !err.patchUnsupported) throw err;
        await client.replaceGroup(remoteId!, { displayName, externalId: localId, members: [...members].map((value) => ({ value })) });
      }
      await markSuccess(db, appId, kind, localId, { remoteId: remoteId!, active: null, deleted: false, pushedHash: displayName });
      return { outcome: add.length || remove.length || outcome !== 'updated' || pushedName !== displayName ? outcome : 'unchanged' };
    } catch (err) {
      return this.#failed(appId, kind, localId, err, remoteId);
    }
  }

  // Whole app

  /**
   * Pushes every entitled person (in keyset pages, a bounded number at once) and removes the
   * people the app holds who are no longer entitled; then the groups. With `full`, first compares
   * with what the app actually has (so differences made behind OneID's back are sent again)
   * instead of trusting what was last pushed. Running it again after a crash is harmless.
   */
  async reconcile(appId: string, options: { full?: boolean } = {}): Promise<ReconcileSummary | undefined> {
    const t = await this.#target(appId);
    if (!t) return undefined;
    const { target, client } = t;
    // A full sync asked for through the API is remembered on the target (it may have been
    // collapsed into this job): whichever reconcile runs next does it.
    const full = Boolean(options.full) || target.fullSyncRequestedAt !== null;
    const started = new Date();
    const summary: ReconcileSummary = { full, startedAt: started.toISOString(), entitled: 0, outcomes: {}, groups: 0, errors: [] };
    const roleNames = await this.#roleNames(appId);
    const limit = pLimit(this.#opts.concurrency ?? 8);
    let retryable: ScimClientError | undefined;
    const push = (userId: string) => limit(async () => {
      if (retryable) return; // the app stopped answering: stop sending, the job is retried
      try {
        const r = await this.#syncUser(target, client, userId, roleNames, false);
        summary.outcomes[r.outcome] = (summary.outcomes[r.outcome] ?? 0) + 1;
        if (r.error && summary.errors.length < 20) summary.errors.push({ userId, error: r.error });
      } catch (err) {
        if (err instanceof ScimClientError) retryable ??= err;
        else throw err;
      }
    });

    try {
      if (full) await this.#compareWithApp(target, client, roleNames);
      for await (const page of entitledUserPages(this.#db, appId, PAGE)) {
        summary.entitled += page.length;
        await Promise.all(page.map(push));
        if (retryable) break;
      }
      // People the app holds who are no longer entitled (syncUser removes them).
      for (let after = ''; !retryable;) {
        const stale = await heldNotEntitledPage(this.#db, appId, after, PAGE);
        if (!stale.length) break;
        await Promise.all(stale.map(push));
        after = stale[stale.length - 1]!;
      }
      if (!retryable && target.pushGroups) summary.groups += await this.#reconcileGroups(target, client);
      if (!retryable) summary.groups += await this.syncRoleGroups(appId);
    } catch (err) {
      if (!(err instanceof ScimClientError)) throw err;
      // A refusal of the walk itself (a wrong token, a listing the app does not offer) is kept in
      // the summary; sending the same requests again cannot help, so only retryable ones throw.
      if (err.retryable) retryable = err;
      else summary.interrupted = err.message;
    }
    summary.finishedAt = new Date().toISOString();
    if (retryable) summary.interrupted = retryable.message;
    // An interrupted full sync keeps the request: its retry runs full again.
    if (full) await recordFullSync(this.#db, appId, retryable ? new Date(0) : started, summary as unknown as Record<string, unknown>);
    if (retryable) throw retryable;
    return summary;
  }

  async #reconcileGroups(target: Target, client: ScimClient): Promise<number> {
    let n = 0;
    for (const g of await assignedGroups(this.#db, target.appId)) {
      await this.#syncGroup(target, client, g.id);
      n += 1;
    }
    // Groups the app holds that are no longer assigned (role groups excepted: syncRoleGroups keeps them).
    for (let after = ''; ;) {
      const held = (await heldObjectsPage(this.#db, target.appId, 'group', after, PAGE));
      if (!held.length) break;
      for (const h of held) if (!h.local_id.startsWith('role:')) await this.#syncGroup(target, client, h.local_id);
      after = held[held.length - 1]!.local_id;
    }
    return n;
  }

  /**
   * Full sync, first step: walks the app's users and corrects what provisioned_objects believes.
   * A person the app holds under another id is linked to it; one whose copy differs is marked to
   * be sent again; an id the app no longer has is forgotten (so the person is created again).
   */
  async #compareWithApp(target: Target, client: ScimClient, roleNames: Map<string, string>): Promise<void> {
    const seen = new Set<string>();
    await this.#walkApp(target, client, roleNames, async (item) => {
      if (!item.userId) return;
      seen.add(item.remoteId);
      if (item.row?.remote_id !== item.remoteId || item.row.deleted_at) {
        await linkRemote(this.#db, target.appId, 'user', item.userId, item.remoteId, item.active);
      } else if (item.differs.length || item.expected === 'absent' || (item.expected === 'inactive' && item.active)) {
        await forgetPushedHash(this.#db, target.appId, 'user', [item.userId]);
      }
    });
    for (let after = ''; ;) {
      const held = await heldObjectsPage(this.#db, target.appId, 'user', after, PAGE);
      if (!held.length) break;
      for (const h of held) if (!seen.has(h.remote_id!)) await unlinkRemote(this.#db, target.appId, 'user', h.local_id);
      after = held[held.length - 1]!.local_id;
    }
  }

  /**
   * The dry run: what the app has against what it should have. Changes nothing. Stops comparing
   * after `timeBudgetMs` (the report then says it is not complete).
   */
  async drift(appId: string, options: { limit?: number; timeBudgetMs?: number } = {}): Promise<DriftReport | undefined> {
    const t = await this.#target(appId);
    if (!t) return undefined;
    const limit = options.limit ?? 50;
    const deadline = Date.now() + (options.timeBudgetMs ?? 20_000);
    const report: DriftReport = {
      complete: true, checkedAt: new Date().toISOString(), appUsers: 0,
      counts: { missing: 0, unexpected: 0, different: 0, unmanaged: 0 }, missing: [], unexpected: [], different: [],
    };
    const seenLocal = new Set<string>();
    const roleNames = await this.#roleNames(appId);
    const finished = await this.#walkApp(t.target, t.client, roleNames, async (item) => {
      report.appUsers += 1;
      const entry = { userId: item.userId, remoteId: item.remoteId, userName: item.userName };
      if (!item.userId) {
        report.counts.unmanaged += 1;
        return;
      }
      seenLocal.add(item.userId);
      if (item.expected === 'absent' || (item.expected === 'inactive' && item.active)) {
        report.counts.unexpected += 1;
        if (report.unexpected.length < limit) report.unexpected.push({ ...entry, active: item.active, expected: item.expected });
      } else if (item.differs.length) {
        report.counts.different += 1;
        if (report.different.length < limit) report.different.push({ ...entry, attributes: item.differs });
      }
    }, deadline);
    if (!finished) report.complete = false;
    if (finished) {
      for await (const page of entitledUserPages(this.#db, appId, PAGE)) {
        if (Date.now() > deadline) {
          report.complete = false;
          break;
        }
        const missing = page.filter((id) => !seenLocal.has(id));
        report.counts.missing += missing.length;
        for (const id of missing.slice(0, Math.max(0, limit - report.missing.length))) {
          const user = await findUserById(this.#db, id);
          report.missing.push({ userId: id, remoteId: null, userName: user?.username ?? '' });
        }
      }
    }
    return report;
  }

  /**
   * Walks the app's users in pages and, for each, finds the OneID person it is (by the app's id in
   * provisioned_objects, else externalId, else userName) and what the app should hold for them.
   * Returns false when the deadline passed before the end.
   */
  async #walkApp(target: Target, client: ScimClient, roleNames: Map<string, string>, visit: (item: AppUserItem) => Promise<void>, deadline = Infinity): Promise<boolean> {
    let batch: ScimUser[] = [];
    const flush = async () => {
      const rows = new Map((await objectsByRemoteIds(this.#db, target.appId, 'user', batch.map((u) => u.id))).map((r) => [r.remote_id!, r]));
      const byName = await this.#usersByName(batch.filter((u) => !rows.has(u.id)).map((u) => u.userName));
      for (const remote of batch) {
        let row = rows.get(remote.id);
        let userId = row?.local_id;
        if (!userId && typeof remote.externalId === 'string' && (await findUserById(this.#db, remote.externalId))) userId = remote.externalId;
        userId ??= byName.get(foldName(String(remote.userName ?? '')));
        if (userId && !row) row = await findObject(this.#db, target.appId, 'user', userId);
        await visit(await this.#expectation(target, roleNames, remote, userId, row));
      }
      batch = [];
    };
    for await (const remote of client.listUsers({ pageSize: PAGE })) {
      batch.push(remote);
      if (batch.length >= PAGE) {
        await flush();
        if (Date.now() > deadline) return false;
      }
    }
    await flush();
    return true;
  }

  async #usersByName(names: string[]): Promise<Map<string, string>> {
    const folded = [...new Set(names.filter(Boolean).map((n) => foldName(n)))];
    if (!folded.length) return new Map();
    const rows: { id: string; username: string }[] = await this.#db('users').whereIn('username', folded).select('id', 'username');
    return new Map(rows.map((r) => [r.username, r.id]));
  }

  async #expectation(target: Target, roleNames: Map<string, string>, remote: ScimUser, userId: string | undefined, row: DbObjectRow | undefined): Promise<AppUserItem> {
    const base = { remoteId: remote.id, userName: String(remote.userName ?? ''), active: remote.active !== false, row };
    if (!userId) return { ...base, userId: null, expected: 'present', differs: [] };
    const user = await findUserById(this.#db, userId);
    const ent = user?.status === 'active' ? await entitlements(this.#db, userId, target.appId) : undefined;
    if (!user || !ent?.allowed || !target.pushUsers) {
      return { ...base, userId, expected: target.onUnassign === 'delete' ? 'absent' : 'inactive', differs: [] };
    }
    const rep = representUser(await this.#facts(target.appId, user, ent.roles, roleNames), target.attributeMapping, target.rolesAs, true);
    return { ...base, userId, expected: 'present', differs: differingAttributes(rep, remote) };
  }
}

interface AppUserItem {
  remoteId: string;
  userName: string;
  active: boolean;
  /** The OneID person the app's user is; null for a user OneID does not manage. */
  userId: string | null;
  row: DbObjectRow | undefined;
  expected: 'present' | 'inactive' | 'absent';
  differs: string[];
}

/** A 404 means the app no longer has the resource: for a delete or a deactivation, that is done. */
async function ignoreNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ScimClientError && err.status === 404) return undefined;
    throw err;
  }
}

/** Removing a member who is not in the group: RFC 7644 lets an app answer 400 noTarget, which is done too. */
function ignoreNoTarget(err: unknown): void {
  if (err instanceof ScimClientError && err.status === 400 && err.scimType === 'noTarget') return;
  throw err;
}
