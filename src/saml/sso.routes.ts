// SAML single sign-on: the second caller of OneID's sign-in flow (login/flow.ts), beside oidc/.
// An AuthnRequest arrives by HTTP-Redirect (GET) or HTTP-POST (POST) at /saml/sso, or a person
// starts at OneID (IdP-initiated, /saml/start/:appId). When the browser's OneID session meets
// what the app requires, the answer goes out at once; otherwise the request waits in
// saml_requests while the flow signs the person in, and /saml/sso/continue/:id answers it.
//
// Answers go to the ACS URL the request was checked against (one the app registered), by an
// auto-submitting form. Refusals the app should hear of (no access, IsPassive without a session,
// a cancelled sign-in, an authentication context OneID cannot give) are Responses with a SAML
// status; a request that is not shown to come from a registered app gets an error page only.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Views } from '../login/views.ts';
import { sessionMeets, type LoginFlows } from '../login/flow.ts';
import type { Session } from '../sessions/sessions.repo.ts';
import type { App } from '../apps/apps.repo.ts';
import { findSamlAppById, type SamlServiceProvider } from '../apps/saml-providers.repo.ts';
import { activeUserWithEntitlements, groupNamesOf } from '../access/entitlements.ts';
import { appPolicy, type DefaultSignInPolicy } from '../access/signin-policy.ts';
import type { User } from '../directory/users.repo.ts';
import { newSecret } from '../shared/ids.ts';
import { NAME_ID_FORMAT_URN, STATUS, nameIdFormatOf } from './constants.ts';
import { checkRelayState, defaultAcs, readAuthnRequest, type CheckedAuthnRequest } from './authn-request.ts';
import { authnContextFor, requiredLevel, signInRequestFor } from './signin-request.ts';
import { attributesFor, wantsGroups } from './attributes.ts';
import { errorResponse, successResponse } from './response.ts';
import type { SigningKey } from './signature.ts';
import { findPendingRequest, persistentNameId, recordParticipant, savePendingRequest, takePendingRequest } from './saml.repo.ts';
import { SAML_PATHS } from './paths.ts';
import { samlRefusals } from './refusals.ts';

export interface SsoDeps {
  db: Knex;
  flows: LoginFlows;
  views: Views;
  log: Logger;
  issuer: string;
  /** The key that signs, with its certificate. */
  signingKey: () => SigningKey;
  /** Apps without their own sign-in policy: the level in force, read per request. */
  defaultPolicy: DefaultSignInPolicy;
  maxBodyBytes: number;
}

interface Target { app: App; sp: SamlServiceProvider; request: CheckedAuthnRequest; pendingId?: string }

/** A refusal that goes back to the app as a Response with this status. */
class SamlRefusal extends Error {
  constructor(readonly second: string, message: string, readonly top: string = STATUS.responder) {
    super(message);
  }
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

export function ssoRouter(deps: SsoDeps): Router {
  const { db, flows, views, log } = deps;
  const paths = SAML_PATHS(deps.issuer);
  const router = new Router();
  // A request refused before OneID knows whom to answer: recorded, then shown as a page.
  router.use(samlRefusals(db, log, 'SAML request refused'));

  /** The HTML page that posts `xml` to the app's ACS (saml-bindings 3.5). */
  const post = (ctx: Context, target: Target, xml: string): void => {
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'saml-post.njk', {
      action: target.request.acsUrl, param: 'SAMLResponse', message: Buffer.from(xml).toString('base64'),
      relayState: target.request.relayState, appName: target.app.name,
    });
  };

  const refuse = async (ctx: Context, target: Target, refusal: SamlRefusal): Promise<void> => {
    if (target.pendingId) await takePendingRequest(db, target.pendingId);
    post(ctx, target, errorResponse(paths.entityId, target.request.acsUrl, target.request.requestId, refusal.top, refusal.second, refusal.message, deps.signingKey()));
  };

  /** The NameID for this person in this app, in the format the request or the app asks for. */
  const nameIdFor = async (target: Target, user: User): Promise<{ value: string; format: string; spNameQualifier?: string; nameQualifier?: string }> => {
    const asked = target.request.nameIdFormat;
    const format = !asked || asked === NAME_ID_FORMAT_URN.unspecified ? target.sp.nameIdFormat : nameIdFormatOf(asked);
    if (!format) throw new SamlRefusal(STATUS.invalidNameIdPolicy, 'OneID does not issue NameIDs in the requested format', STATUS.requester);
    const urn = NAME_ID_FORMAT_URN[format];
    switch (format) {
      case 'emailAddress':
        if (!user.email) throw new SamlRefusal(STATUS.invalidNameIdPolicy, 'the person has no email address for an emailAddress NameID');
        return { value: user.email, format: urn };
      case 'persistent': {
        const value = await persistentNameId(db, target.app.id, user.id, target.request.allowCreate);
        if (!value) throw new SamlRefusal(STATUS.invalidNameIdPolicy, 'no persistent NameID exists yet and the request does not allow creating one');
        return { value, format: urn, nameQualifier: paths.entityId, spNameQualifier: target.sp.entityId };
      }
      case 'transient':
        return { value: `_${newSecret(24)}`, format: urn };
      default:
        return { value: user.username, format: urn };
    }
  };

  /** The signed-in answer for the session, or the refusal the app should hear. */
  const answer = async (ctx: Context, target: Target, session: Session): Promise<void> => {
    if (target.pendingId && !await takePendingRequest(db, target.pendingId)) {
      throw new AppError('invalid_argument', 'saml.request_answered', 'this sign-in request was already answered; go back to the app and start again');
    }
    const key = deps.signingKey();
    const account = await activeUserWithEntitlements(db, session.userId, target.app.id);
    if (!account?.entitlements.allowed) {
      // IsPassive: OneID must not take over the screen (saml-core 3.4.1), so no page waiting
      // for a button: the refusal goes straight back to the app.
      if (target.request.isPassive) {
        return refuse(ctx, { ...target, pendingId: undefined }, new SamlRefusal(STATUS.requestDenied, 'the user has no access to this app'));
      }
      // The same page as OIDC's; its button takes the refusal back to the app.
      const refusal = errorResponse(paths.entityId, target.request.acsUrl, target.request.requestId, STATUS.responder, STATUS.requestDenied, 'the user has no access to this app', key);
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'no-access.njk', {
        appName: target.app.name, username: account?.user.username,
        saml: { action: target.request.acsUrl, message: Buffer.from(refusal).toString('base64'), relayState: target.request.relayState },
      });
      return;
    }
    const { user, entitlements } = account;
    try {
      const nameId = await nameIdFor({ ...target, pendingId: undefined }, user);
      const [groups, sessionIndex] = await Promise.all([
        wantsGroups(target.sp.attributeMapping) ? groupNamesOf(db, user.id) : Promise.resolve(undefined),
        recordParticipant(db, session.id, target.app.id, nameId.value, nameId.format),
      ]);
      const xml = await successResponse({
        issuer: paths.entityId,
        audience: target.sp.entityId,
        acsUrl: target.request.acsUrl,
        inResponseTo: target.request.requestId,
        nameId,
        sessionIndex,
        authnInstant: new Date(session.authTime * 1000),
        sessionNotOnOrAfter: session.expiresAt,
        authnContextClassRef: authnContextFor(session, target.request),
        attributes: attributesFor(user, { roles: entitlements.roles, groups }, target.sp.attributeMapping),
      }, {
        signResponse: target.sp.signResponse,
        signAssertion: target.sp.signAssertion,
        encryptFor: target.sp.encryptAssertions ? target.sp.encryptionCertificate : null,
      }, key);
      post(ctx, target, xml);
    } catch (err) {
      if (err instanceof SamlRefusal) return refuse(ctx, { ...target, pendingId: undefined }, err);
      throw err;
    }
    return undefined;
  };

  /** Answers at once when the session meets the app's requirements; else signs the person in first. */
  const proceed = async (ctx: Context, target: Target): Promise<void> => {
    const level = requiredLevel(appPolicy(target.app) ?? await deps.defaultPolicy(), target.request);
    if (!level) return refuse(ctx, target, new SamlRefusal(STATUS.noAuthnContext, 'OneID cannot meet the requested authentication context', STATUS.requester));
    const signIn = signInRequestFor(target.app.name, target.app.id, target.sp.entityId, level, target.request);
    const session = await flows.currentSession(ctx);
    if (sessionMeets(session, signIn)) return answer(ctx, target, session);
    if (target.request.isPassive) return refuse(ctx, target, new SamlRefusal(STATUS.noPassive, 'the user must sign in, and the request is passive'));
    const pendingId = target.pendingId ?? await savePendingRequest(db, target.app.id, target.request);
    ctx.status = 303;
    ctx.redirect(await flows.start(ctx, signIn, paths.continuePath(pendingId)));
    return undefined;
  };

  router.get(paths.ssoPath, async (ctx) => {
    const message = str(ctx.query.SAMLRequest);
    if (!message) throw new AppError('invalid_argument', 'saml.request_missing', 'SAMLRequest is missing');
    const checked = await readAuthnRequest(db, {
      binding: 'redirect', message, relayState: str(ctx.query.RelayState), rawQuery: ctx.querystring,
    }, paths.sso);
    await proceed(ctx, checked);
  });

  // A cross-site POST does not carry OneID's SameSite=Lax session cookie: the checked request is
  // kept and the browser comes back by GET, which does.
  router.post(paths.ssoPath, bodyParser({ enableTypes: ['form'], formLimit: `${deps.maxBodyBytes}b` }), async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const message = str(body.SAMLRequest);
    if (!message) throw new AppError('invalid_argument', 'saml.request_missing', 'SAMLRequest is missing');
    const checked = await readAuthnRequest(db, { binding: 'post', message, relayState: str(body.RelayState) }, paths.sso);
    const pendingId = await savePendingRequest(db, checked.app.id, checked.request);
    ctx.status = 303;
    ctx.redirect(paths.continuePath(pendingId));
  });

  router.get(`${paths.ssoPath}/continue/:id`, async (ctx) => {
    const pending = await findPendingRequest(db, ctx.params.id!);
    const found = pending && await findSamlAppById(db, pending.appId);
    if (!pending || !found) throw new AppError('invalid_argument', 'saml.request_expired', 'this sign-in request has expired or was already answered; go back to the app and start again');
    const target: Target = { ...found, request: pending.request, pendingId: pending.id };
    const flowId = str(ctx.query.flow);
    if (flowId) {
      const outcome = await flows.outcome(ctx, flowId, paths.continuePath(pending.id));
      if (outcome.status === 'done') return answer(ctx, target, outcome.session);
      if (outcome.status === 'cancelled') return refuse(ctx, target, new SamlRefusal(STATUS.authnFailed, 'the user cancelled the sign-in'));
      if (outcome.status === 'unmet') return refuse(ctx, target, new SamlRefusal(STATUS.authnFailed, outcome.reason || 'the sign-in could not reach the level the app requires'));
    }
    return proceed(ctx, target);
  });

  // IdP-initiated: a person opens an app from OneID; the answer goes to the app's default ACS.
  router.get(`${paths.startPath}/:appId`, async (ctx) => {
    const found = await findSamlAppById(db, ctx.params.appId!);
    if (!found || found.app.protocol !== 'saml') throw new AppError('not_found', 'saml.app_not_found', 'no SAML app with this id');
    const relayState = checkRelayState(str(ctx.query.RelayState));
    await proceed(ctx, {
      ...found,
      request: { acsUrl: defaultAcs(found.sp), relayState, forceAuthn: false, isPassive: false, allowCreate: true, signed: false },
    });
  });

  return router;
}
