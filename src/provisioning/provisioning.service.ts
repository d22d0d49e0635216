// An app's provisioning target as administrators manage it: set or replace it (the token is
// encrypted with the master key and never shown again), remove it, read its status, ask for a
// full sync (an audit record `provisioning.sync_requested`; the provisioning consumer turns it
// into a job) and run the drift report.
import type { Knex } from 'knex';
import { z } from 'zod';
import type { MasterKey } from '../keys/master-key.ts';
import type { Logger } from '../shared/logger.ts';
import { AppError } from '../shared/errors.ts';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../audit/audit.service.ts';
import { findAppById, type App } from '../apps/apps.repo.ts';
import type { AppGuard } from '../apps/apps.service.ts';
import { ScimClient } from './scim-client.ts';
import {
  deleteObjectsOfApp, deleteTargetByAppId, findTargetByAppId, objectStatus, requestFullSync, upsertTarget, type ObjectStatus, type Target,
} from './provisioning.repo.ts';
import { validateMapping, type AttributeMapping } from './mapping.ts';
import { Provisioner, type DriftReport } from './engine.ts';

export const setTargetInput = z.strictObject({
  baseUrl: z.string().max(2000).describe("the app's SCIM base URL, e.g. https://app.example/scim/v2 (http or https, no credentials in it)"),
  token: z.string().min(1).max(4096).describe('the bearer token the app gave for OneID (write-only: never returned)'),
  enabled: z.boolean().default(true),
  pushUsers: z.boolean().default(true),
  pushGroups: z.boolean().default(false).describe('send the groups assigned to the app, with their members'),
  onUnassign: z.enum(['deactivate', 'delete']).default('deactivate').describe('when a person loses the app or leaves: active false, or delete'),
  rolesAs: z.enum(['roles', 'entitlements', 'groups', 'none']).default('roles').describe('app roles go out as SCIM roles, entitlements, one group per role, or not at all'),
  attributeMapping: z.record(z.string().max(64), z.string().max(80).nullable()).nullable().default(null)
    .describe('SCIM attribute -> OneID source over the defaults; null leaves an attribute out (docs/admin-api.md lists both sets)'),
});
export type SetTargetInput = z.input<typeof setTargetInput>;

export interface TargetStatus {
  counts: ObjectStatus['counts'];
  /** Objects the app holds (created and not deleted). */
  held: number;
  /** Objects waiting for their first successful push, or failed and being retried. */
  pending: number;
  lastSuccessAt: string | null;
  failed: { kind: string; localId: string; remoteId: string | null; error: string | null; lastAttemptAt: string | null }[];
  lastFullSyncAt: string | null;
  lastFullSync: Record<string, unknown> | null;
}

/** A target as shown: never the token. */
export interface TargetView {
  appId: string;
  enabled: boolean;
  baseUrl: string;
  pushUsers: boolean;
  pushGroups: boolean;
  onUnassign: Target['onUnassign'];
  rolesAs: Target['rolesAs'];
  attributeMapping: AttributeMapping;
  version: number;
  createdAt: string;
  updatedAt: string;
}

const view = (t: Target): TargetView => ({
  appId: t.appId, enabled: t.enabled, baseUrl: t.baseUrl, pushUsers: t.pushUsers, pushGroups: t.pushGroups, onUnassign: t.onUnassign,
  rolesAs: t.rolesAs, attributeMapping: t.attributeMapping, version: t.version, createdAt: t.createdAt.toISOString(), updatedAt: t.updatedAt.toISOString(),
});

const appNotFound = () => new AppError('not_found', 'app.not_found', 'no app with this id');
const noTarget = () => new AppError('not_found', 'provisioning.no_target', 'this app has no provisioning target');

export class ProvisioningService {
  readonly #db: Knex;
  readonly #masterKey: MasterKey;
  readonly #engine: Provisioner;

  constructor(db: Knex, masterKey: MasterKey, log: Logger) {
    this.#db = db;
    this.#masterKey = masterKey;
    this.#engine = new Provisioner(db, masterKey, log);
  }

  async #app(trx: Knex | Knex.Transaction, appId: string, guard?: AppGuard): Promise<App> {
    const app = await findAppById(trx, appId);
    if (!app) throw appNotFound();
    guard?.(app);
    return app;
  }

  async get(appId: string): Promise<{ target: TargetView; status: TargetStatus } | undefined> {
    await this.#app(this.#db, appId);
    const target = await findTargetByAppId(this.#db, appId);
    if (!target) return undefined;
    return { target: view(target), status: await this.status(target) };
  }

  async status(target: Target, failedLimit = 20): Promise<TargetStatus> {
    const s = await objectStatus(this.#db, target.appId, failedLimit);
    return {
      counts: s.counts, held: s.held, pending: s.counts.pending + s.counts.failed,
      lastSuccessAt: s.lastSuccessAt?.toISOString() ?? null,
      failed: s.failed.map((f) => ({ kind: f.kind, localId: f.localId, remoteId: f.remoteId, error: f.lastError, lastAttemptAt: f.lastAttemptAt?.toISOString() ?? null })),
      lastFullSyncAt: target.lastFullSyncAt?.toISOString() ?? null,
      lastFullSync: target.lastFullSync,
    };
  }

  /** Sets or replaces the app's target; audited provisioning.target_set (without the token), which starts a sync of the app. */
  async set(appId: string, raw: SetTargetInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<TargetView> {
    const parsed = setTargetInput.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new AppError('invalid_argument', 'request.invalid', `${issue.path.join('.') || 'body'}: ${issue.message}`, { field: issue.path.join('.') });
    }
    const input = parsed.data;
    // The client checks the URL (http/https, no credentials) and the token's characters.
    try {
      new ScimClient({ baseUrl: input.baseUrl, token: input.token });
    } catch (err) {
      if (err instanceof AppError) throw new AppError('invalid_argument', err.code, err.message, { field: err.code === 'provisioning.scim_bad_token' ? 'token' : 'baseUrl' });
      throw err;
    }
    const mapping = input.attributeMapping === null ? null : validateMapping(input.attributeMapping);
    return this.#db.transaction(async (trx) => {
      await this.#app(trx, appId, guard);
      const before = await findTargetByAppId(trx, appId);
      const baseUrl = input.baseUrl.replace(/\/+$/, '');
      // Another app (or another tenant of it): the ids OneID kept are not that app's ids. The
      // reconcile the change starts creates everyone again, adopting who is already there.
      if (before && before.baseUrl !== baseUrl) await deleteObjectsOfApp(trx, appId);
      const target = await upsertTarget(trx, appId, {
        enabled: input.enabled, baseUrl, tokenCiphertext: this.#masterKey.encrypt(input.token),
        pushUsers: input.pushUsers, pushGroups: input.pushGroups, onUnassign: input.onUnassign, rolesAs: input.rolesAs, attributeMapping: mapping,
      });
      const { token: _secret, ...audited } = input;
      await recordAudit(trx, actor, { action: 'provisioning.target_set', targetType: 'app', targetId: appId, changes: { ...audited, baseUrl: target.baseUrl } });
      return view(target);
    });
  }

  async remove(appId: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.#db.transaction(async (trx) => {
      await this.#app(trx, appId, guard);
      if (!(await deleteTargetByAppId(trx, appId))) throw noTarget();
      // What the app holds stays there; OneID forgets its ids (a new target starts by matching them again).
      await trx('provisioned_objects').where({ app_id: appId }).delete();
      await recordAudit(trx, actor, { action: 'provisioning.target_removed', targetType: 'app', targetId: appId });
    });
  }

  /** Asks for a full sync: the audit record becomes an event, the consumer queues the job. */
  async requestSync(appId: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.#db.transaction(async (trx) => {
      await this.#app(trx, appId, guard);
      const target = await findTargetByAppId(trx, appId);
      if (!target) throw noTarget();
      if (!target.enabled) throw new AppError('failed_precondition', 'provisioning.target_disabled', 'the provisioning target is disabled');
      await requestFullSync(trx, appId);
      await recordAudit(trx, actor, { action: 'provisioning.sync_requested', targetType: 'app', targetId: appId, changes: { full: true } });
    });
  }

  /** The dry run (changes nothing), bounded in time. */
  async drift(appId: string, options: { limit?: number; timeBudgetMs?: number } = {}): Promise<DriftReport> {
    await this.#app(this.#db, appId);
    const target = await findTargetByAppId(this.#db, appId);
    if (!target) throw noTarget();
    if (!target.enabled) throw new AppError('failed_precondition', 'provisioning.target_disabled', 'the provisioning target is disabled');
    return (await this.#engine.drift(appId, options))!;
  }
}
