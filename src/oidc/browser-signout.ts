// Ending oidc-provider's side of a browser's sign-in when the person signs out of OneID (its own
// sign-out, or a SAML single logout). oidc-provider keeps its own Session for the browser (cookie
// `oneid.session`, whose value is the Session's id, signed with the app's cookie keys like every
// koa signed cookie) with one grant per app signed in to (authorizations[clientId].grantId). Ending
// only OneID's session left them alive: refresh tokens kept working after sign-out. Here the
// Session, its grants, and every code and token issued under those grants are deleted, so a
// refresh gets invalid_grant and prompt=none gets login_required. The apps of the Session that
// registered a backchannel_logout_uri are told (their sid), from the job queue, queued in the same
// transaction as the deletion.
import type { Context } from 'koa';
import type { Knex } from 'knex';
import type { JobQueue } from '../jobs/queue.ts';
import { BACKCHANNEL_LOGOUT_QUEUE, type BackchannelLogoutJob } from './suite-signout.ts';

/** The name given in provider.ts (cookies.names.session). */
export const PROVIDER_SESSION_COOKIE = 'oneid.session';

/** The queue's sender in this transaction; none while the queue is not running (a node shutting down): the sign-out still happens. */
function enqueueOf(jobs: Pick<JobQueue, 'within'>, trx: Knex.Transaction) {
  try {
    return jobs.within(trx);
  } catch {
    return undefined;
  }
}

/**
 * Deletes the browser's oidc-provider Session and everything issued under its grants; the number
 * of rows deleted (0 without a session). The cookie is cleared too.
 */
export async function endBrowserOidcSession(db: Knex, ctx: Context, jobs?: Pick<JobQueue, 'within'>): Promise<number> {
  // signed: a cookie value not signed with one of the app's keys is not read (koa checks `.sig`).
  const sessionId = ctx.cookies.get(PROVIDER_SESSION_COOKIE, { signed: true });
  if (!sessionId || sessionId.length > 200) return 0;
  const deleted = await db.transaction(async (trx) => {
    const session = await trx('oidc_payloads').where({ model: 'Session', id: sessionId }).first('payload') as { payload: { accountId?: unknown; authorizations?: Record<string, { grantId?: unknown; sid?: unknown }> } } | undefined;
    if (!session) return 0;
    const { accountId } = session.payload;
    const sids = new Map(Object.entries(session.payload.authorizations ?? {}).flatMap(([clientId, a]) => (typeof a?.sid === 'string' ? [[clientId, a.sid] as const] : [])));
    const enqueue = jobs && typeof accountId === 'string' && sids.size ? enqueueOf(jobs, trx) : undefined;
    if (enqueue) {
      const apps = await trx('apps').whereIn('client_id', [...sids.keys()]).whereRaw("oidc->>'backchannel_logout_uri' is not null").select<{ id: string; client_id: string }[]>('id', 'client_id');
      await enqueue.sendMany(BACKCHANNEL_LOGOUT_QUEUE, apps.map((a) => ({ data: { userId: accountId as string, appId: a.id, sid: sids.get(a.client_id)! } satisfies BackchannelLogoutJob })));
    }
    const grantIds = Object.values(session.payload.authorizations ?? {})
      .map((a) => a?.grantId)
      .filter((g): g is string => typeof g === 'string');
    let count = await trx('oidc_payloads').where({ model: 'Session', id: sessionId }).delete();
    if (grantIds.length) {
      count += await trx('oidc_payloads')
        .where((q) => q.where('model', 'Grant').whereIn('id', grantIds))
        .orWhereIn('grant_id', grantIds)
        .delete();
    }
    return count;
  });
  ctx.cookies.set(PROVIDER_SESSION_COOKIE, null, { signed: true, path: '/', httpOnly: true });
  return deleted;
}
