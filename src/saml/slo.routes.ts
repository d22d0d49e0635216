// SAML single logout at /saml/slo (HTTP-Redirect GET, HTTP-POST POST). Three kinds of message
// arrive there:
// - an SP's LogoutRequest (SP-initiated): when it names this browser's own OneID session, that
//   session ends, with the browser's OIDC session and grants (the endOtherProtocols hook), and
//   every other SAML app the session signed in to is sent a LogoutRequest, one after another;
//   the initiator gets a LogoutResponse at the end. A request naming any other session ends
//   nothing and is answered RequestDenied;
// - a participant's LogoutResponse: the chain goes on with the next participant;
// - none: GET /saml/slo/continue/:id resumes a chain (a POST LogoutRequest come back by GET with
//   the SameSite=Lax session cookie, or a logout begun at OneID's own sign-out).
// The chain's state is a saml_logouts row; its id is the RelayState of OneID's LogoutRequests.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import type { Session } from '../sessions/sessions.repo.ts';
import { findSamlAppById, type SamlServiceProvider } from '../apps/saml-providers.repo.ts';
import type { App } from '../apps/apps.repo.ts';
import { recordAuditNow, type Actor } from '../audit/audit.service.ts';
import { NAME_ID_FORMAT_URN, STATUS } from './constants.ts';
import { signEnveloped, signedRedirectUrl } from './signature.ts';
import { logoutRequestXml, logoutResponseXml, readLogoutRequest, readLogoutResponse, type CheckedLogoutRequest, type NamedSubject } from './logout.ts';
import {
  deleteParticipants, findLogout, findLogoutWaitingFor, findParticipant, findParticipants, insertLogout, saveLogoutStep, takeLogout,
  type LogoutItem, type LogoutState,
} from './saml.repo.ts';
import { SAML_PATHS, sloContinuePath } from './paths.ts';
import type { SsoDeps } from './sso.routes.ts';
import { samlRefusals } from './refusals.ts';

/** What the SSO routes need, but no sign-in policy (a logout asks for no sign-in). */
export interface SloDeps extends Omit<SsoDeps, 'defaultPolicy'> {
  /**
   * Ends what other protocols keep for this browser (oidc-provider's session, its grants and their
   * tokens): injected by app.ts, as saml/ does not know oidc/.
   */
  endOtherProtocols?: (ctx: Context, ended: { userId: string; app: App }) => Promise<void>;
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * A single logout begun at OneID (its own sign-out): the session's SAML apps with an SLO URL are
 * told one after another, then the browser goes to `returnTo`. Call it with the session that is
 * ending (its participant rows are still there: a session ends by being marked, not deleted).
 * With `onlyAppIds` (a suite's sign-out, the session going on), only those of its apps are told.
 * Returns the path to send the browser to, or undefined when no app needs telling.
 */
export async function startSignOutChain(db: Knex, session: Session, returnTo: string, onlyAppIds?: readonly string[]): Promise<string | undefined> {
  const participants = (await findParticipants(db, session.id)).filter((p) => !onlyAppIds || onlyAppIds.includes(p.appId));
  if (!participants.length) return undefined;
  if (onlyAppIds) await db('saml_session_participants').where({ session_id: session.id }).whereIn('app_id', participants.map((p) => p.appId)).delete();
  else await deleteParticipants(db, session.id);
  const logout = await insertLogout(db, {
    userId: session.userId, initiatorAppId: null, initiatorRequestId: null, relayState: null, returnTo,
    progress: { sessionId: session.id, items: participants.map(({ sessionId: _s, ...p }) => ({ ...p, state: 'pending' as const })) },
    waitingFor: null, partial: false,
  });
  return sloContinuePath(logout.id);
}

export function sloRouter(deps: SloDeps): Router {
  const { db, flows, views, log } = deps;
  const paths = SAML_PATHS(deps.issuer);
  const router = new Router();
  router.use(samlRefusals(db, log, 'SAML logout message refused'));

  const actorOf = (ctx: Context, userId: string | null): Actor => (userId
    ? { type: 'user', id: userId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null }
    : { type: 'anonymous', id: null, ip: ctx.ip, userAgent: ctx.get('user-agent') || null });

  /** Sends a signed message to an SP's SLO endpoint, by the binding it registered (Redirect by default). */
  const send = (ctx: Context, sp: SamlServiceProvider, param: 'SAMLRequest' | 'SAMLResponse', message: { id: string; xml: string }, relayState: string | undefined): void => {
    const key = deps.signingKey();
    if (sp.sloBinding === 'post') {
      const signed = signEnveloped(message.xml, message.id, param === 'SAMLRequest' ? 'LogoutRequest' : 'LogoutResponse', key);
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'saml-post.njk', {
        action: sp.sloUrl, param, message: Buffer.from(signed).toString('base64'), relayState, logout: true,
      });
      return;
    }
    ctx.status = 303;
    ctx.redirect(signedRedirectUrl(sp.sloUrl!, param, message.xml, relayState, key));
  };

  /** The LogoutResponse to the SP whose LogoutRequest this was (no SLO URL: nowhere to answer, a page instead). */
  const answerInitiator = (ctx: Context, app: App, sp: SamlServiceProvider, requestId: string, relayState: string | undefined, top: string, second?: string, message?: string): void => {
    if (!sp.sloUrl) {
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'logged-out.njk', { clientName: app.name });
      return;
    }
    send(ctx, sp, 'SAMLResponse', logoutResponseXml({ issuer: paths.entityId, destination: sp.sloUrl, inResponseTo: requestId, top, second, message }), relayState);
  };

  /** Whether the LogoutRequest names this session (its NameID in this app, and its SessionIndex when given). */
  const namesSession = async (appId: string, named: NamedSubject, session: Session): Promise<boolean> => {
    const lookups = named.sessionIndexes.length ? named.sessionIndexes.map((sessionIndex) => ({ sessionIndex, nameId: named.nameId })) : [{ nameId: named.nameId }];
    for (const by of lookups) {
      if ((await findParticipant(db, appId, by)).some((p) => p.sessionId === session.id)) return true;
    }
    return false;
  };

  /** An SP's checked LogoutRequest, on a request that carries the browser's session cookie. */
  const logoutFor = async (ctx: Context, app: App, sp: SamlServiceProvider, request: CheckedLogoutRequest): Promise<void> => {
    const session = await flows.currentSession(ctx);
    if (!session) {
      // Already signed out here: the logout the SP asks for is done (saml-profiles 4.4.4.2 allows
      // Success), and no other session is looked at, let alone ended.
      return answerInitiator(ctx, app, sp, request.requestId, request.relayState, STATUS.success);
    }
    // An unsigned request (from an app without a certificate) must at least name the SessionIndex,
    // a random value only the app was given: a NameID such as an email address is easily guessed,
    // and any page could then sign its visitors out.
    if ((!request.signed && !request.sessionIndexes.length) || !await namesSession(app.id, request, session)) {
      log.info({ app: app.id, requestId: ctx.state.requestId }, 'SAML LogoutRequest for a session that is not this browser\'s: refused');
      await recordAuditNow(db, actorOf(ctx, session.userId), {
        action: 'saml.logout_refused', targetType: 'app', targetId: app.id, changes: { reason: 'not_this_session', requestId: request.requestId },
      });
      return answerInitiator(ctx, app, sp, request.requestId, request.relayState, STATUS.requester, STATUS.requestDenied, 'the request does not name the session of this browser');
    }
    const participants = await findParticipants(db, session.id);
    await deleteParticipants(db, session.id);
    await flows.endSession(session, 'saml_logout', actorOf(ctx, session.userId));
    flows.setSessionCookie(ctx, null);
    await deps.endOtherProtocols?.(ctx, { userId: session.userId, app });
    const logout = await insertLogout(db, {
      userId: session.userId, initiatorAppId: app.id, initiatorRequestId: request.requestId, relayState: request.relayState ?? null, returnTo: null,
      progress: {
        sessionId: session.id,
        items: participants.filter((p) => p.appId !== app.id).map(({ sessionId: _s, ...p }) => ({ ...p, state: 'pending' as const })),
      },
      waitingFor: null, partial: false,
    });
    return next(ctx, logout);
  };

  /** Tells the next participant, or ends the chain. `logout` is at a step with nothing awaited. */
  const next = async (ctx: Context, logout: LogoutState): Promise<void> => {
    for (const item of logout.progress.items) {
      if (item.state !== 'pending') continue;
      const found = await findSamlAppById(db, item.appId);
      if (!found?.sp.sloUrl) {
        // An app that cannot be told: the logout is partial.
        item.state = 'failed';
        logout.partial = true;
        continue;
      }
      const persistent = item.nameIdFormat === NAME_ID_FORMAT_URN.persistent;
      const message = logoutRequestXml({
        issuer: paths.entityId, destination: found.sp.sloUrl, nameId: item.nameId, nameIdFormat: item.nameIdFormat, sessionIndex: item.sessionIndex,
        ...(persistent ? { nameQualifier: paths.entityId, spNameQualifier: found.sp.entityId } : {}),
      });
      const expected = logout.waitingFor;
      item.state = 'sent';
      logout.waitingFor = message.id;
      if (!await saveLogoutStep(db, logout, expected)) throw new AppError('invalid_argument', 'saml.logout_moved_on', 'this sign-out already went on in another tab');
      return send(ctx, found.sp, 'SAMLRequest', message, logout.id);
    }
    return finish(ctx, logout);
  };

  /** Every participant told: the initiator's answer, or the page the sign-out began for. */
  const finish = async (ctx: Context, logout: LogoutState): Promise<void> => {
    if (!await takeLogout(db, logout.id)) throw new AppError('invalid_argument', 'saml.logout_finished', 'this sign-out has already finished');
    const told = logout.progress.items.filter((i) => i.state === 'done').map((i) => i.appId);
    const failed = logout.progress.items.filter((i) => i.state !== 'done').map((i) => i.appId);
    await recordAuditNow(db, actorOf(ctx, logout.userId), {
      action: 'saml.logout', targetType: 'session', targetId: logout.progress.sessionId ?? null,
      changes: { userId: logout.userId, initiatorAppId: logout.initiatorAppId, told, failed, partial: logout.partial },
    });
    const initiator = logout.initiatorAppId ? await findSamlAppById(db, logout.initiatorAppId) : undefined;
    if (initiator && logout.initiatorRequestId) {
      return answerInitiator(ctx, initiator.app, initiator.sp, logout.initiatorRequestId, logout.relayState ?? undefined, STATUS.success, logout.partial ? STATUS.partialLogout : undefined);
    }
    ctx.status = 303;
    ctx.redirect(logout.returnTo ?? '/');
    return undefined;
  };

  /** A participant's answer to the LogoutRequest OneID sent it. */
  const participantAnswered = async (ctx: Context, input: { binding: 'redirect' | 'post'; message: string; relayState?: string; rawQuery?: string }): Promise<void> => {
    const { app, response } = await readLogoutResponse(db, input, paths.slo);
    const logout = await findLogoutWaitingFor(db, response.inResponseTo);
    const item = logout?.progress.items.find((i) => i.state === 'sent');
    // Only the app that was asked answers for itself; an answer to nothing OneID sent is refused.
    if (!logout || !item || item.appId !== app.id) {
      throw new AppError('invalid_argument', 'saml.logout_unexpected_response', 'this LogoutResponse does not answer a sign-out under way; it may have finished already');
    }
    item.state = response.success ? 'done' : 'failed';
    if (!response.success) logout.partial = true;
    const expected = logout.waitingFor;
    logout.waitingFor = null;
    if (!await saveLogoutStep(db, logout, expected)) throw new AppError('invalid_argument', 'saml.logout_moved_on', 'this sign-out already went on in another tab');
    return next(ctx, logout);
  };

  router.get(paths.sloPath, async (ctx) => {
    const request = str(ctx.query.SAMLRequest);
    const response = str(ctx.query.SAMLResponse);
    const relayState = str(ctx.query.RelayState);
    if (request && !response) {
      const { app, sp, request: checked } = await readLogoutRequest(db, { binding: 'redirect', message: request, relayState, rawQuery: ctx.querystring }, paths.slo);
      return logoutFor(ctx, app, sp, checked);
    }
    if (response && !request) return participantAnswered(ctx, { binding: 'redirect', message: response, relayState, rawQuery: ctx.querystring });
    throw new AppError('invalid_argument', 'saml.request_missing', 'send one SAMLRequest or SAMLResponse');
  });

  // A cross-site POST does not carry OneID's SameSite=Lax session cookie: a LogoutRequest is kept
  // (checked) and the browser comes back by GET, which does. A LogoutResponse needs no cookie.
  router.post(paths.sloPath, bodyParser({ enableTypes: ['form'], formLimit: `${deps.maxBodyBytes}b` }), async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const request = str(body.SAMLRequest);
    const response = str(body.SAMLResponse);
    const relayState = str(body.RelayState);
    if (request && !response) {
      const { app, request: checked } = await readLogoutRequest(db, { binding: 'post', message: request, relayState }, paths.slo);
      const kept = await insertLogout(db, {
        userId: null, initiatorAppId: app.id, initiatorRequestId: checked.requestId, relayState: checked.relayState ?? null, returnTo: null,
        progress: { items: [], named: { nameId: checked.nameId, nameIdFormat: checked.nameIdFormat, sessionIndexes: checked.sessionIndexes, signed: checked.signed } },
        waitingFor: null, partial: false,
      });
      ctx.status = 303;
      ctx.redirect(sloContinuePath(kept.id));
      return undefined;
    }
    if (response && !request) return participantAnswered(ctx, { binding: 'post', message: response, relayState });
    throw new AppError('invalid_argument', 'saml.request_missing', 'send one SAMLRequest or SAMLResponse');
  });

  router.get(`${paths.sloPath}/continue/:id`, async (ctx) => {
    const logout = await findLogout(db, ctx.params.id!);
    if (!logout) throw new AppError('invalid_argument', 'saml.logout_expired', 'this sign-out has expired or has finished');
    const { named } = logout.progress;
    if (named) {
      // A LogoutRequest that came by POST: read once, then handled like one that came by GET.
      const found = logout.initiatorAppId ? await findSamlAppById(db, logout.initiatorAppId) : undefined;
      if (!await takeLogout(db, logout.id) || !found || !logout.initiatorRequestId) {
        throw new AppError('invalid_argument', 'saml.logout_expired', 'this sign-out has expired or has finished');
      }
      return logoutFor(ctx, found.app, found.sp, { ...named, requestId: logout.initiatorRequestId, relayState: logout.relayState ?? undefined });
    }
    // A participant that has not answered and is passed over (the person came back here, e.g. with
    // the browser's Back button) counts as not logged out.
    const waiting = logout.progress.items.find((i): i is LogoutItem => i.state === 'sent');
    if (waiting) {
      waiting.state = 'failed';
      logout.partial = true;
      const expected = logout.waitingFor;
      logout.waitingFor = null;
      if (!await saveLogoutStep(db, logout, expected)) throw new AppError('invalid_argument', 'saml.logout_moved_on', 'this sign-out already went on in another tab');
    }
    return next(ctx, logout);
  });

  return router;
}
