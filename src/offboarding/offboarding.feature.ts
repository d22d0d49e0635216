// The offboarding fan-out in the background. Its consumer acts on two kinds of events:
// - `user.offboarded`: one `offboarding.backchannel` job per app line waiting for a logout token;
// - a suspension (or deprovisioning) of an active person by a SCIM client (HR deactivated them):
//   it writes the offboarding receipt (OffboardingService.recordAfterSuspension), whose own
//   `user.offboarded` event then queues the jobs, as for an offboarding by an administrator.
// The job sends the logout token and writes the app's answer on the receipt line.
import type { BackgroundContext, BackgroundFeature } from '../jobs/background.ts';
import type { DomainEvent } from '../events/events.ts';
import type { Actor, ActorType } from '../audit/audit.service.ts';
import type { OidcClientOfAccount } from '../directory/users.repo.ts';
import { findAppById } from '../apps/apps.repo.ts';
import { OffboardingService, OFFBOARDED_ACTION } from './offboarding.service.ts';
import { findLine, updateLine } from './offboarding.repo.ts';
import { sendBackchannelLogout } from './backchannel-logout.ts';

export const BACKCHANNEL_QUEUE = 'offboarding.backchannel';

interface BackchannelJob { offboardingId: string; appId: string }

/** What a SCIM suspension's audit record says the person held in OIDC apps (users.service.ts changeStatus). */
function oidcClientsOf(event: DomainEvent): OidcClientOfAccount[] {
  const list = event.data?.oidcClients;
  if (!Array.isArray(list)) return [];
  return list.flatMap((c: unknown) => {
    const { clientId, sids } = (c ?? {}) as { clientId?: unknown; sids?: unknown };
    return typeof clientId === 'string' ? [{ clientId, sids: Array.isArray(sids) ? sids.filter((s): s is string => typeof s === 'string') : [] }] : [];
  });
}

const deactivatedByScim = (e: DomainEvent): boolean => {
  if (e.actor.type !== 'scim_client' || e.target.type !== 'user' || !e.target.id) return false;
  if (e.type !== 'user.suspended' && e.type !== 'user.deprovisioned') return false;
  return (e.data?.status as { from?: unknown } | undefined)?.from === 'active';
};

export function offboardingFeature(ctx: BackgroundContext): BackgroundFeature {
  const { db, config, log, masterKey, services } = ctx;
  const offboarding = new OffboardingService(db, services.hasher);

  return {
    consumer: {
      name: 'offboarding',
      consume: async (events, trx, enqueue) => {
        for (const e of events) {
          if (e.type === OFFBOARDED_ACTION && typeof e.data?.offboardingId === 'string') {
            const lines: { app_id: string }[] = await trx('offboarding_lines')
              .where({ offboarding_id: e.data.offboardingId, action: 'oidc_backchannel_logout', state: 'pending' }).select('app_id');
            await enqueue.sendMany(BACKCHANNEL_QUEUE, lines.map((l) => ({ data: { offboardingId: e.data!.offboardingId as string, appId: l.app_id } })));
          } else if (deactivatedByScim(e)) {
            const actor: Actor = { type: e.actor.type as ActorType, id: e.actor.id, clientId: e.actor.clientId };
            await offboarding.recordAfterSuspension(trx, e.target.id!, actor, oidcClientsOf(e));
          }
        }
      },
    },
    queues: [{
      name: BACKCHANNEL_QUEUE,
      concurrency: 4,
      expireInSeconds: 60,
      handler: async (job) => {
        const { offboardingId, appId } = job.data as BackchannelJob;
        const line = await findLine(db, offboardingId, appId, 'oidc_backchannel_logout');
        // Answered already (a retried job whose earlier run succeeded), or the receipt is gone.
        if (!line || line.state === 'acknowledged' || line.state === 'not_applicable') return { skipped: true };
        const off = await db('offboardings').where({ id: offboardingId }).first<{ user_id: string }>('user_id');
        const app = await findAppById(db, appId);
        if (!off || !app || !app.oidc.backchannel_logout_uri) {
          await updateLine(db, offboardingId, appId, 'oidc_backchannel_logout', 'not_applicable', app ? 'the app no longer registers a backchannel_logout_uri' : 'the app was deleted', false);
          return { skipped: true };
        }
        const outcome = await sendBackchannelLogout(db, masterKey, config.issuer, app, off.user_id, line.data?.sids ?? []);
        if (outcome.ok) {
          await updateLine(db, offboardingId, appId, 'oidc_backchannel_logout', 'acknowledged', outcome.detail, true);
          return { acknowledged: true };
        }
        const attempts = line.attempts + 1;
        // The queue runs a job 1 + JOBS_RETRY_LIMIT times before it dead-letters it.
        const lastTry = !outcome.retryable || attempts > config.jobs.retryLimit;
        await updateLine(db, offboardingId, appId, 'oidc_backchannel_logout', lastTry ? 'failed' : 'failed_retrying', outcome.detail, true);
        log.info({ event: 'offboarding.backchannel_failed', offboardingId, appId, detail: outcome.detail, retrying: !lastTry }, 'back-channel logout not acknowledged');
        if (!outcome.retryable) return { failed: outcome.detail };
        throw new Error(`back-channel logout to app ${appId}: ${outcome.detail}`);
      },
    }],
  };
}
