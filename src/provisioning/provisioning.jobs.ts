// Outbound provisioning in the background: which jobs each domain event causes, and the queues
// that run them. Jobs name only what to look at (an app and a person, group or the whole app);
// the engine reads the current state when the job runs (level-triggered), so a late, repeated or
// collapsed job still leaves the app right. Per person and app, the `stately` policy with the key
// app:person keeps one push waiting and one running: two pushes for one person never overlap.
import type { Knex } from 'knex';
import type { BackgroundContext, BackgroundFeature } from '../jobs/background.ts';
import type { Enqueue } from '../jobs/queue.ts';
import type { DomainEvent, EventConsumer } from '../events/events.ts';
import { entitledApps } from '../access/entitlements.ts';
import { Provisioner } from './engine.ts';
import { findEnabledTargetAppIds } from './provisioning.repo.ts';
import { appsAssignedTo } from './entitled.ts';

export const USER_QUEUE = 'provision.user';
export const GROUP_QUEUE = 'provision.group';
export const RECONCILE_QUEUE = 'provision.reconcile';

export interface UserJob { appId: string; userId: string }
export interface GroupJob { appId: string; groupId: string }
export interface ReconcileJob { appId: string; full?: boolean }

/** Events after which the whole app is compared again: who is entitled, or with which roles, changed. */
const APP_WIDE = new Set(['assignment.created', 'assignment.updated', 'assignment.deleted', 'app_role.created', 'app_role.updated', 'app_role.deleted', 'app.updated']);
/** Events that may change any app's people (a subtree moved, a department or group gone, a department renamed). */
const EVERY_APP = new Set(['department.moved', 'department.deleted', 'department.updated', 'group.deleted']);
const MEMBER_EVENTS = new Set(['group.member_added', 'group.member_removed', 'department.member_added', 'department.member_updated', 'department.member_removed']);

/** The jobs a batch of events causes, de-duplicated, then queued in the relay's transaction. */
class Jobs {
  readonly users = new Map<string, UserJob>();
  readonly groups = new Map<string, GroupJob>();
  readonly reconciles = new Map<string, ReconcileJob>();

  user(appId: string, userId: string): void {
    this.users.set(`${appId}:${userId}`, { appId, userId });
  }

  group(appId: string, groupId: string): void {
    this.groups.set(`${appId}:${groupId}`, { appId, groupId });
  }

  /**
   * One key per app: two reconciles of one app never run at once. Whether it runs full is read
   * from the target when it starts (a full sync asked for is remembered there), so a request
   * collapsed into a waiting job is not lost.
   */
  reconcile(appId: string): void {
    this.reconciles.set(appId, { appId });
  }

  async send(enqueue: Enqueue): Promise<void> {
    await enqueue.sendMany(USER_QUEUE, [...this.users].map(([singletonKey, data]) => ({ data, singletonKey })));
    await enqueue.sendMany(GROUP_QUEUE, [...this.groups].map(([singletonKey, data]) => ({ data, singletonKey })));
    await enqueue.sendMany(RECONCILE_QUEUE, [...this.reconciles].map(([singletonKey, data]) => ({ data, singletonKey })));
  }
}

/** Apps with an enabled target that entitle the person or hold them (to push them or take them out). */
async function appsForUser(trx: Knex.Transaction, userId: string, targets: Set<string>): Promise<string[]> {
  const entitled = (await entitledApps(trx, userId)).map((e) => e.appId).filter((id) => targets.has(id));
  const held: { app_id: string }[] = await trx('provisioned_objects').where({ kind: 'user', local_id: userId }).whereNull('deleted_at').whereNotNull('remote_id').select('app_id');
  return [...new Set([...entitled, ...held.map((h) => h.app_id).filter((id) => targets.has(id))])];
}

export const provisioningConsumer: EventConsumer = {
  name: 'provisioning',
  async consume(events: readonly DomainEvent[], trx: Knex.Transaction, enqueue: Enqueue): Promise<void> {
    const targets = new Set(await findEnabledTargetAppIds(trx));
    if (!targets.size) return;
    const pushGroups = new Set((await trx('provisioning_targets').where({ enabled: true, push_groups: true }).select<{ app_id: string }[]>('app_id')).map((r) => r.app_id));
    const jobs = new Jobs();
    const data = (e: DomainEvent, key: string): string | undefined => {
      const v = e.data?.[key];
      return typeof v === 'string' ? v : undefined;
    };

    for (const e of events) {
      if (e.type.startsWith('user.') && e.target.type === 'user' && e.target.id) {
        for (const appId of await appsForUser(trx, e.target.id, targets)) jobs.user(appId, e.target.id);
      } else if (MEMBER_EVENTS.has(e.type)) {
        const userId = data(e, 'userId');
        if (userId) for (const appId of await appsForUser(trx, userId, targets)) jobs.user(appId, userId);
        if (e.type.startsWith('group.') && e.target.id) {
          for (const appId of await appsAssignedTo(trx, 'group', [e.target.id])) if (pushGroups.has(appId)) jobs.group(appId, e.target.id);
        }
      } else if (e.type === 'group.updated' && e.target.id) {
        for (const appId of await appsAssignedTo(trx, 'group', [e.target.id])) if (pushGroups.has(appId)) jobs.group(appId, e.target.id);
      } else if (APP_WIDE.has(e.type) && e.target.type === 'app' && e.target.id) {
        if (targets.has(e.target.id)) jobs.reconcile(e.target.id);
      } else if (EVERY_APP.has(e.type)) {
        for (const appId of targets) jobs.reconcile(appId);
      } else if ((e.type === 'provisioning.sync_requested' || e.type === 'provisioning.target_set') && e.target.id && targets.has(e.target.id)) {
        // A new or changed target starts an ordinary reconcile: everyone entitled is created (or
        // adopted on a conflict). A full sync is the admin's sync_requested (see reconcile()).
        jobs.reconcile(e.target.id);
      }
    }
    await jobs.send(enqueue);
  },
};

/** The background feature: the consumer above and the three queues the engine runs on. */
export function provisioningFeature(ctx: BackgroundContext): BackgroundFeature {
  const engine = new Provisioner(ctx.db, ctx.masterKey, ctx.log);
  return {
    consumer: provisioningConsumer,
    queues: [
      {
        name: USER_QUEUE, policy: 'stately', concurrency: 4, expireInSeconds: 300,
        handler: async (job) => {
          const { appId, userId } = job.data as UserJob;
          return engine.syncUser(appId, userId);
        },
      },
      {
        name: GROUP_QUEUE, policy: 'stately', concurrency: 2, expireInSeconds: 1800,
        handler: async (job) => {
          const { appId, groupId } = job.data as GroupJob;
          return engine.syncGroup(appId, groupId);
        },
      },
      {
        // A sync of a large app takes minutes; a dead node's job comes back after the missed
        // heartbeats, not after this expiry.
        name: RECONCILE_QUEUE, policy: 'stately', concurrency: 2, expireInSeconds: 6 * 3600,
        handler: async (job) => {
          const { appId, full } = job.data as ReconcileJob;
          return engine.reconcile(appId, { full: Boolean(full) });
        },
      },
    ],
  };
}
