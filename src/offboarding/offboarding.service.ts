// Offboarding in one action (#21): in one transaction, the apps the person could use are found,
// a receipt is written with a line per app and action, the person is suspended (which ends their
// OneID sessions and deletes every grant, code, refresh token and opaque access token they hold:
// UsersService.changeStatus), and `user.offboarded` is recorded. The outbound work (logout tokens
// to apps) is queued by the offboarding consumer from that event (offboarding.feature.ts); apps
// with a provisioning target are deactivated by the provisioning engine, which acts on the
// suspension, and their line reads its outcome from provisioned_objects.
//
// Offboarding a person again (already suspended, or offboarded before) writes a new receipt and
// sends the logout tokens again: the old receipts stay as they were. An administrator re-runs it
// to prove the cut-off again after a failure.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId } from '../shared/ids.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import { appsReachingPerson } from '../access/entitlements.ts';
import type { PasswordHasher } from '../credentials/password.ts';
import { UsersService } from '../directory/users.service.ts';
import { deleteOidcStateOfAccount, findOidcClientsOfAccount, type OidcClientOfAccount } from '../directory/users.repo.ts';
import type { OidcClientSettings } from '../apps/apps.repo.ts';
import {
  findLines, findOffboardingById, findOffboardingsOfUser, insertOffboarding,
  type DbOffboardingRow, type LineAction, type LineState, type NewLine, type OffboardingSource, type ProvisionedUser,
} from './offboarding.repo.ts';

export const OFFBOARDED_ACTION = 'user.offboarded';

export interface ReceiptAction { action: LineAction; state: LineState; detail: string | null; attempts: number; updatedAt: string }
export interface ReceiptApp { appId: string; appName: string; protocol: string; state: LineState; actions: ReceiptAction[] }
export interface Receipt {
  id: string;
  userId: string;
  source: OffboardingSource;
  actor: { type: string; id: string | null };
  startedAt: string;
  /** complete: every app answered or had nothing to do; in_progress: answers awaited or retried; failed: some app failed for good. */
  status: 'complete' | 'in_progress' | 'failed';
  apps: ReceiptApp[];
}

const NOT_SIGNED_UP_BACKCHANNEL = 'the app did not register a backchannel_logout_uri';
const SAML_FRONT_CHANNEL = 'the app has no SOAP single logout endpoint (front-channel only): its session ends when it next asks OneID';
const NO_SAML_SESSION = 'the person had no SAML session with this app';
const NO_PROVISIONING = 'the app has no provisioning target';
const PROVISIONING_OFF = 'provisioning to this app is turned off';
const NEVER_PROVISIONED = 'OneID has not created this person in the app';

interface AppRow { id: string; name: string; protocol: string; client_id: string; oidc: OidcClientSettings }

/**
 * The receipt's lines: for every app the person could use (assignments, apps open to everyone),
 * holds the person (provisioned_objects), holds their grants or tokens (`oidcClients`), or shares
 * a SAML session with them. Read before the suspension deletes the OIDC state.
 */
async function linesFor(trx: Knex.Transaction, userId: string, oidcClients: OidcClientOfAccount[]): Promise<NewLine[]> {
  const reaching = await appsReachingPerson(trx, userId);
  const provisioned: string[] = await trx('provisioned_objects').where({ kind: 'user', local_id: userId }).pluck('app_id');
  const clientIds = oidcClients.map((c) => c.clientId);
  const clientApps: { id: string; client_id: string }[] = clientIds.length
    ? await trx('apps').whereIn('client_id', clientIds).select('id', 'client_id') : [];
  // SAML sessions still live at the SP: OneID's session is live, or just ended by this suspension.
  const saml: { app_id: string }[] = await trx('saml_session_participants as p').join('sessions as s', 's.id', 'p.session_id')
    .where('s.user_id', userId).where('s.expires_at', '>', trx.fn.now())
    .where((q) => q.whereNull('s.ended_at').orWhereIn('s.ended_reason', ['suspended', 'deprovisioned']))
    .distinct('p.app_id');
  const ids = [...new Set([...reaching, ...provisioned, ...clientApps.map((a) => a.id), ...saml.map((s) => s.app_id)])];
  if (!ids.length) return [];
  const apps: AppRow[] = await trx('apps').whereIn('id', ids).orderBy(['name', 'id']).select('id', 'name', 'protocol', 'client_id', 'oidc');
  const targets = new Map<string, boolean>((await trx('provisioning_targets').whereIn('app_id', ids).select('app_id', 'enabled'))
    .map((t: { app_id: string; enabled: boolean }) => [t.app_id, t.enabled]));
  const sidsOf = new Map(oidcClients.map((c) => [c.clientId, c.sids]));
  const samlApps = new Set(saml.map((s) => s.app_id));

  const lines: NewLine[] = [];
  for (const app of apps) {
    const base = { app_id: app.id, app_name: app.name, protocol: app.protocol };
    if (app.protocol === 'oidc') {
      const held = sidsOf.has(app.client_id);
      lines.push({ ...base, action: 'tokens_revoked', state: 'done', detail: held ? 'grants and tokens deleted' : 'the person held no grant or token' });
      // Sent whether or not OneID knows a session: the app's own session may outlive the tokens.
      lines.push(app.oidc.backchannel_logout_uri
        ? { ...base, action: 'oidc_backchannel_logout', state: 'pending', detail: null, data: { sids: sidsOf.get(app.client_id) ?? [] } }
        : { ...base, action: 'oidc_backchannel_logout', state: 'not_applicable', detail: NOT_SIGNED_UP_BACKCHANNEL });
    } else if (app.protocol === 'saml') {
      // SAML apps registered with OneID have HTTP-Redirect or HTTP-POST single logout only: a
      // LogoutRequest needs the person's browser, which an offboarding does not have.
      lines.push({ ...base, action: 'saml_logout', state: 'not_applicable', detail: samlApps.has(app.id) ? SAML_FRONT_CHANNEL : NO_SAML_SESSION });
    }
    const target = targets.get(app.id);
    lines.push(target === undefined
      ? { ...base, action: 'provisioning_deactivate', state: 'not_applicable', detail: NO_PROVISIONING }
      : { ...base, action: 'provisioning_deactivate', state: target ? 'pending' : 'not_applicable', detail: target ? null : PROVISIONING_OFF });
  }
  return lines;
}

/**
 * A provisioning line as the engine's record says: acknowledged when the app acknowledged
 * active=false or a delete after the offboarding started; failed_retrying with the app's error
 * when the last push failed; pending until then.
 */
function provisioningState(startedAt: Date, po: ProvisionedUser | null): { state: LineState; detail: string | null } {
  if (!po) return { state: 'not_applicable', detail: NEVER_PROVISIONED };
  const after = (t: Date | string | null): boolean => t !== null && new Date(t).getTime() >= startedAt.getTime();
  if (po.deleted_at !== null && after(po.deleted_at)) return { state: 'acknowledged', detail: 'deleted' };
  if (po.active === false && after(po.last_success_at)) return { state: 'acknowledged', detail: 'deactivated (active false)' };
  if (po.last_error && after(po.last_attempt_at)) return { state: 'failed_retrying', detail: po.last_error };
  return { state: 'pending', detail: null };
}

const RANK: Record<LineState, number> = { failed: 5, failed_retrying: 4, pending: 3, acknowledged: 2, done: 1, not_applicable: 0 };

async function presentReceipts(db: Knex, rows: DbOffboardingRow[]): Promise<Receipt[]> {
  const lines = await findLines(db, rows.map((r) => r.id));
  return rows.map((o) => {
    const apps = new Map<string, ReceiptApp>();
    for (const l of lines.filter((x) => x.offboarding_id === o.id)) {
      const { state, detail } = l.action === 'provisioning_deactivate' && l.state === 'pending'
        ? provisioningState(new Date(o.started_at), l.po) : { state: l.state, detail: l.detail };
      const app = apps.get(l.app_id) ?? { appId: l.app_id, appName: l.app_name, protocol: l.protocol, state: 'not_applicable' as LineState, actions: [] };
      app.actions.push({ action: l.action, state, detail, attempts: l.attempts, updatedAt: new Date(l.updated_at).toISOString() });
      if (RANK[state] > RANK[app.state]) app.state = state;
      apps.set(l.app_id, app);
    }
    const states = [...apps.values()].flatMap((a) => a.actions.map((x) => x.state));
    const status = states.some((s) => s === 'pending' || s === 'failed_retrying') ? 'in_progress' : states.includes('failed') ? 'failed' : 'complete';
    return {
      id: o.id, userId: o.user_id, source: o.source, actor: { type: o.actor_type, id: o.actor_id },
      startedAt: new Date(o.started_at).toISOString(), status, apps: [...apps.values()],
    };
  });
}

export class OffboardingService {
  constructor(private readonly db: Knex, private readonly hasher: PasswordHasher) {}

  /**
   * Offboards a person (see the head of this file) and returns the receipt. `guard` runs on the
   * locked user row first (the admin API's check of the admin roles the person holds).
   */
  async offboard(userId: string, actor: Actor, guard?: (row: { admin_roles: string[] }) => void): Promise<Receipt> {
    const id = await this.db.transaction(async (trx) => {
      const row = await trx('users').where({ id: userId }).forUpdate().first<{ status: string; admin_roles: string[] } | undefined>('status', 'admin_roles');
      if (!row) throw new AppError('not_found', 'user.not_found', 'no user with this id');
      guard?.(row);
      const oidcClients = await findOidcClientsOfAccount(trx, userId);
      const lines = await linesFor(trx, userId, oidcClients);
      if (row.status === 'deprovisioned') {
        // Nothing to suspend; whatever an app still holds goes all the same.
        await deleteOidcStateOfAccount(trx, userId);
      } else {
        await new UsersService(trx, this.hasher).changeStatus(userId, 'suspend', actor);
      }
      return this.#record(trx, userId, actor, 'admin', lines);
    });
    return this.receipt(id);
  }

  /**
   * The receipt for a suspension that happened already (HR deactivated the person over SCIM): the
   * OIDC clients and sids come from the suspension's audit record, since the suspension deleted
   * them. Runs in the relay's transaction; its `user.offboarded` event queues the outbound work.
   */
  async recordAfterSuspension(trx: Knex.Transaction, userId: string, actor: Actor, oidcClients: OidcClientOfAccount[]): Promise<string | undefined> {
    if (!(await trx('users').where({ id: userId }).first('id'))) return undefined;
    return this.#record(trx, userId, actor, 'scim', await linesFor(trx, userId, oidcClients));
  }

  async #record(trx: Knex.Transaction, userId: string, actor: Actor, source: OffboardingSource, lines: NewLine[]): Promise<string> {
    const id = newId();
    await insertOffboarding(trx, { id, user_id: userId, source, actor_type: actor.type, actor_id: actor.id ?? null }, lines);
    await recordAudit(trx, actor, {
      action: OFFBOARDED_ACTION, targetType: 'user', targetId: userId,
      changes: { offboardingId: id, source, apps: new Set(lines.map((l) => l.app_id)).size },
    });
    return id;
  }

  async receipt(id: string): Promise<Receipt> {
    const row = await findOffboardingById(this.db, id);
    if (!row) throw new AppError('not_found', 'offboarding.not_found', 'no offboarding with this id');
    return (await presentReceipts(this.db, [row]))[0]!;
  }

  /** A person's receipts, newest first; 404 for an unknown person. */
  async receiptsOfUser(userId: string, limit: number, before?: { startedAt: string; id: string }): Promise<{ items: Receipt[]; more: boolean }> {
    if (!(await this.db('users').where({ id: userId }).first('id'))) throw new AppError('not_found', 'user.not_found', 'no user with this id');
    const rows = await findOffboardingsOfUser(this.db, userId, limit + 1, before);
    return { items: await presentReceipts(this.db, rows.slice(0, limit)), more: rows.length > limit };
  }
}
