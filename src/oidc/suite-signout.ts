// Suite-wide sign-out (#22): a suite with suite_signout behaves as one product, so signing out of
// one member app ends the person's sessions in its other member apps too.
//
// "Yes" on the logout page (all of OneID) already ends every app's part. "No" (this app only)
// makes oidc-provider end only that client's part of its Session; right after, here, the other
// OIDC member apps' parts end as well: their grants and every token under them (offline access
// excepted, as oidc-provider does) and their entries in the Session. The same runs when a SAML
// member app's single logout ends the browser's sessions, as deleting oidc-provider's Session
// alone tells no app. One audit record, `suite.signed_out`, names the app, the suites and the apps
// told; its event queues a logout token per app with a backchannel_logout_uri (its sid), retried
// while the app is down. The SAML member apps of the OneID session are named (samlAppIds) for
// app.ts to take the browser through their single logout.
import type { Knex } from 'knex';
import type { BackgroundContext, BackgroundFeature } from '../jobs/background.ts';
import type { DomainEvent } from '../events/events.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import { findAppById } from '../apps/apps.repo.ts';
import { sendSessionLogout } from '../offboarding/backchannel-logout.ts';

export const SUITE_SIGNED_OUT = 'suite.signed_out';
/**
 * One OpenID Connect back-channel logout token to send (its app, the person, that app's sid):
 * suite sign-outs queue them here, and so does oidc-provider at RP-initiated logout (provider.ts).
 */
export const BACKCHANNEL_LOGOUT_QUEUE = 'oidc.backchannel-logout';

/**
 * What provider.ts keeps (ctx.state.signedOutOfApp) when a person signs out of one app only: the
 * person, the app, and oidc-provider's Session, whose id is read once it has been saved (the
 * provider gives the Session a new id, its jti, as it ends the app's part).
 */
export interface AppSignOut { accountId: string; clientId: string; session: { readonly jti: string } }

/** One member app whose part of the session ended with the app signed out of. */
export interface SuiteAppTold { appId: string; clientId: string; protocol: 'oidc' | 'saml'; sid: string | null; backchannelLogout: boolean }

export interface SuiteSignOut {
  fromAppId: string;
  suites: { id: string; name: string }[];
  apps: SuiteAppTold[];
  /** The SAML member apps of the OneID session given, to take through their single logout. */
  samlAppIds: string[];
}

interface DbMemberRow { suite_id: string; suite_name: string; from_app_id: string; app_id: string; client_id: string; protocol: string; backchannel: boolean; in_saml_session: boolean }
interface Authorization { sid?: unknown; grantId?: unknown; persistsLogout?: unknown }

/**
 * Ends, in the browser's oidc-provider Session, the parts of the other OIDC member apps of the
 * suites (with suite_signout) of the app the person just signed out of; with `samlSessionId` (the
 * OneID session), also names the SAML member apps it signed in to. Undefined when no such app was
 * signed in to (nothing is written then).
 */
export async function endSuiteSessions(db: Knex, signOut: AppSignOut, actor: Actor, samlSessionId?: string): Promise<SuiteSignOut | undefined> {
  const sessionId = signOut.session.jti;
  if (typeof sessionId !== 'string' || !sessionId) return undefined;
  return db.transaction(async (trx) => {
    // Locked: a sign-in to another app of this browser at the same moment writes the Session after us.
    const row = await trx('oidc_payloads').where({ model: 'Session', id: sessionId }).forUpdate()
      .first<{ payload: { accountId?: unknown; authorizations?: Record<string, Authorization> } } | undefined>('payload');
    const authorizations = row?.payload.accountId === signOut.accountId ? row.payload.authorizations ?? {} : {};
    const signedIn = Object.keys(authorizations).filter((c) => c !== signOut.clientId);
    if (!signedIn.length && !samlSessionId) return undefined;
    const members: DbMemberRow[] = await trx('apps as a')
      .join('suite_apps as sa', 'sa.app_id', 'a.id')
      .join('suites as s', 's.id', 'sa.suite_id')
      .join('suite_apps as so', function joinOthers() { this.on('so.suite_id', '=', 's.id').andOn('so.app_id', '<>', 'a.id'); })
      .join('apps as o', 'o.id', 'so.app_id')
      .where({ 'a.client_id': signOut.clientId, 's.suite_signout': true })
      .orderBy([{ column: 's.position' }, { column: 's.name' }, { column: 's.id' }, { column: 'so.position' }, { column: 'o.name' }])
      .select('s.id as suite_id', 's.name as suite_name', 'a.id as from_app_id', 'o.id as app_id', 'o.client_id', 'o.protocol',
        trx.raw("(o.oidc->>'backchannel_logout_uri') is not null as backchannel"),
        trx.raw('exists (select 1 from saml_session_participants p where p.session_id = ? and p.app_id = o.id) as in_saml_session', [samlSessionId ?? null]));
    const ended = members.filter((m) => (m.protocol === 'oidc' && signedIn.includes(m.client_id)) || (m.protocol === 'saml' && m.in_saml_session));
    if (!ended.length) return undefined;

    const suites = new Map<string, string>();
    const apps = new Map<string, SuiteAppTold>();
    for (const m of ended) {
      suites.set(m.suite_id, m.suite_name);
      if (apps.has(m.client_id)) continue;
      const oidc = m.protocol === 'oidc';
      const sid = oidc ? authorizations[m.client_id]?.sid : undefined;
      apps.set(m.client_id, {
        appId: m.app_id, clientId: m.client_id, protocol: oidc ? 'oidc' : 'saml', sid: typeof sid === 'string' ? sid : null, backchannelLogout: oidc && Boolean(m.backchannel),
      });
    }
    const clientIds = [...apps.values()].filter((a) => a.protocol === 'oidc').map((a) => a.clientId);
    // As oidc-provider does for the app signed out of: a grant whose tokens were issued for
    // offline access (persistsLogout) outlives the session, the rest ends with it.
    const grantIds = clientIds.filter((c) => authorizations[c]?.persistsLogout !== true)
      .map((c) => authorizations[c]?.grantId).filter((g): g is string => typeof g === 'string');
    if (grantIds.length) {
      await trx('oidc_payloads').where((q) => q.where('model', 'Grant').whereIn('id', grantIds)).orWhereIn('grant_id', grantIds).delete();
    }
    if (clientIds.length) {
      const remaining = Object.fromEntries(Object.entries(authorizations).filter(([c]) => !clientIds.includes(c)));
      await trx('oidc_payloads').where({ model: 'Session', id: sessionId })
        .update({ payload: trx.raw("jsonb_set(payload, '{authorizations}', ?::jsonb)", [JSON.stringify(remaining)]) });
    }

    const result: SuiteSignOut = {
      fromAppId: ended[0]!.from_app_id,
      suites: [...suites].map(([id, name]) => ({ id, name })),
      apps: [...apps.values()],
      samlAppIds: [...apps.values()].filter((a) => a.protocol === 'saml').map((a) => a.appId),
    };
    await recordAudit(trx, actor, {
      action: SUITE_SIGNED_OUT, targetType: 'app', targetId: result.fromAppId,
      changes: { fromClientId: signOut.clientId, suites: result.suites, apps: result.apps },
    });
    return result;
  });
}

/** The apps a `suite.signed_out` event says are to get a logout token, with the person (its actor). */
function logoutJobsOf(e: DomainEvent): BackchannelLogoutJob[] {
  const userId = e.actor.type === 'user' ? e.actor.id : null;
  const apps = e.data?.apps;
  if (!userId || !Array.isArray(apps)) return [];
  return apps.flatMap((a: unknown) => {
    const { appId, sid, backchannelLogout } = (a ?? {}) as { appId?: unknown; sid?: unknown; backchannelLogout?: unknown };
    return backchannelLogout === true && typeof appId === 'string' && typeof sid === 'string' ? [{ userId, appId, sid }] : [];
  });
}

export interface BackchannelLogoutJob { userId: string; appId: string; sid: string }

/** Back-channel logout tokens (suite sign-outs, RP-initiated logout), through the job queue (jobs/features.ts). */
export function suiteSignOutFeature(ctx: BackgroundContext): BackgroundFeature {
  const { db, config, log, masterKey } = ctx;
  return {
    consumer: {
      name: 'suite-signout',
      consume: async (events, _trx, enqueue) => {
        const jobs = events.filter((e) => e.type === SUITE_SIGNED_OUT).flatMap(logoutJobsOf);
        if (jobs.length) await enqueue.sendMany(BACKCHANNEL_LOGOUT_QUEUE, jobs.map((data) => ({ data })));
      },
    },
    queues: [{
      name: BACKCHANNEL_LOGOUT_QUEUE,
      concurrency: 4,
      expireInSeconds: 60,
      handler: async (job) => {
        const { userId, appId, sid } = job.data as BackchannelLogoutJob;
        const app = await findAppById(db, appId);
        if (!app?.oidc.backchannel_logout_uri) return { skipped: true };
        // The logout token names this session (sid): the person's other sessions at the app stay.
        const outcome = await sendSessionLogout(db, masterKey, config.issuer, app, userId, sid);
        if (outcome.ok) return { acknowledged: true };
        log.info({ event: 'oidc.backchannel_logout_failed', appId, detail: outcome.detail, retrying: outcome.retryable }, 'back-channel logout not acknowledged');
        if (!outcome.retryable) return { failed: outcome.detail };
        throw new Error(`back-channel logout to app ${appId}: ${outcome.detail}`);
      },
    }],
  };
}
