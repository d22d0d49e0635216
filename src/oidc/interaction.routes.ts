// oidc-provider's interactions (GET /interaction/:uid): the sign-in is OneID's own flow
// (login/flow.ts), started here from the authorization request and finished from its result;
// account choice, "no access" and consent are pages of this protocol, answered here.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type Provider from 'oidc-provider';
import { errors as provider_errors } from 'oidc-provider';
import type { Context } from 'koa';
import type { Logger } from '../shared/logger.ts';
import type { UsersService } from '../directory/users.service.ts';
import type { Views } from '../login/views.ts';
import { csrf } from '../http/csrf.ts';
import { oneIdClientFacts } from './adapter.ts';
import { acrToReport, sessionMeets, type LoginFlows } from '../login/flow.ts';
import { amrOf } from '../access/signin-policy.ts';
import { essentialAcrUnknown, signInRequestOf } from './signin-request.ts';
import { ACR_VALUES } from '../access/signin-policy.ts';
import type { DefaultSignInPolicy } from '../access/signin-policy.ts';

interface Deps {
  provider: Provider;
  users: UsersService;
  views: Views;
  log: Logger;
  maxBodyBytes: number;
  flows: LoginFlows;
  /** The sign-in policy of apps that have none of their own. */
  /** Apps without their own sign-in policy: the level in force, read per request. */
  defaultPolicy: DefaultSignInPolicy;
  /** The resource indicator of OneID's admin API (`<ISSUER>/api`): named on the consent page. */
  adminApiResource: string;
}

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

/**
 * The prompt oidc-provider raises for a signed-in user who is not entitled to an app that is
 * open to assigned users only (the check lives in oidc/provider.ts). We show the "no access"
 * page; its button finishes the interaction with access_denied, back to the app.
 */
export const APP_ACCESS_PROMPT = 'app_access';

/** `prompt=select_account`: choose between the signed-in person and another account (oidc/provider.ts). */
export const SELECT_ACCOUNT_PROMPT = 'select_account';

/** Scopes the consent page explains (the others are resource scopes or unknown). */
const EXPLAINED_SCOPES = ['openid', 'profile', 'email', 'groups', 'roles', 'offline_access'];

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

type InteractionResult = Parameters<Provider['interactionFinished']>[2];

/**
 * Hands the result back to oidc-provider and sends the browser on (303 to the resume URL), with
 * the interaction this request already read: what provider.interactionFinished does, without
 * reading the interaction a second time (one statement less per sign-in, consent or abort).
 * With `merge`, the result is added to what earlier steps submitted, as interactionFinished's
 * mergeWithLastSubmission does.
 */
async function finishInteraction(ctx: Context, details: Details, result: InteractionResult, merge: boolean): Promise<void> {
  details.result = merge && !('error' in result) ? { ...details.lastSubmission, ...result } : result;
  await details.save(details.exp - Math.floor(Date.now() / 1000));
  ctx.status = 303;
  ctx.redirect(details.returnTo); // oidc-provider's own resume URL on this issuer
}

export function interactionRouter({ provider, users, views, maxBodyBytes, flows, defaultPolicy, adminApiResource }: Deps): Router {
  const router = new Router({ prefix: '/interaction' });
  router.use(bodyParser({ enableTypes: ['form'], formLimit: `${maxBodyBytes}b` }));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    return next();
  });
  router.use(csrf());

  const appNameOf = async (details: Details): Promise<string> => {
    const client = await provider.Client.find(str(details.params.client_id));
    return client?.clientName ?? str(details.params.client_id);
  };

  const isFirstParty = async (details: Details): Promise<boolean> => {
    const client = await provider.Client.find(str(details.params.client_id));
    return oneIdClientFacts(client).firstParty;
  };

  /** Grants every scope, claim and resource scope the app asked for and that is still missing. */
  const finishConsent = async (ctx: Context, details: Details): Promise<void> => {
    const { prompt, params, session } = details;
    const accountId = session?.accountId;
    const promptDetails = prompt.details as {
      missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]>;
    };
    const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    const grant = existing ?? new provider.Grant({ accountId, clientId: str(params.client_id) });
    if (promptDetails.missingOIDCScope) grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
    if (promptDetails.missingOIDCClaims) grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const result = existing ? { consent: {} } : { consent: { grantId } };
    await finishInteraction(ctx, details, result, true);
  };

  /**
   * The sign-in this authorization request needs: finished at once from the browser's OneID
   * session when it meets the app's requirements (its policy, acr_values, max_age), else OneID's
   * sign-in flow, which comes back to `/interaction/:uid/signed-in`.
   */
  const signIn = async (ctx: Context, details: Details, force = false): Promise<void> => {
    // oidc-provider raises the login prompt again after every sign-in while the essential acr is
    // not the session's: one OneID never gives ends the request instead of a loop.
    if (essentialAcrUnknown(details.params)) {
      return finishInteraction(ctx, details, {
        error: 'access_denied', error_description: `the essential acr requested cannot be met; OneID offers ${ACR_VALUES.join(', ')}`,
      }, false);
    }
    const client = await provider.Client.find(str(details.params.client_id));
    const request = signInRequestOf(client, details.params, await defaultPolicy(), force || details.prompt.reasons.includes('login_prompt'));
    request.appName = client?.clientName ?? str(details.params.client_id);
    const session = await flows.currentSession(ctx);
    if (sessionMeets(session, request.request)) {
      return finishWithSession(ctx, details, session, request.acrValues);
    }
    ctx.status = 303;
    ctx.redirect(await flows.start(ctx, { ...request.request, appName: request.appName }, `/interaction/${details.uid}/signed-in`));
    return undefined;
  };

  const finishWithSession = async (ctx: Context, details: Details, session: NonNullable<Awaited<ReturnType<LoginFlows['currentSession']>>>, acrValues: string[]): Promise<void> => {
    const choosing = details.prompt.name === SELECT_ACCOUNT_PROMPT;
    const acr = acrToReport(session, acrValues);
    // A sign-in answers prompt=select_account as well: the person chose this account.
    await finishInteraction(ctx, details, {
      login: { accountId: session.userId, amr: amrOf(session.methods), ...(acr ? { acr } : {}), ts: session.authTime },
      ...(choosing ? { select_account: {} } : {}),
    }, false);
  };

  const renderNoAccess = async (ctx: Context, details: Details): Promise<void> => {
    const accountId = details.session?.accountId;
    const user = accountId ? await users.getUser(accountId).catch(() => undefined) : undefined;
    ctx.status = 403;
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'no-access.njk', {
      uid: details.uid, appName: await appNameOf(details), username: user?.username,
    }, str(details.params.ui_locales) || undefined);
  };

  const renderSelectAccount = async (ctx: Context, details: Details, accountId: string): Promise<void> => {
    const user = await users.getUser(accountId).catch(() => undefined);
    if (!user) return signIn(ctx, details, true);
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'select-account.njk', {
      uid: details.uid, appName: await appNameOf(details), username: user.username, displayName: user.displayName ?? user.username,
    }, str(details.params.ui_locales) || undefined);
    return undefined;
  };

  router.get('/:uid', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid) throw new provider_errors.SessionNotFound('interaction mismatch');
    switch (details.prompt.name) {
      case 'login':
        return signIn(ctx, details);
      case SELECT_ACCOUNT_PROMPT: {
        // Without a signed-in person there is no account to choose: the sign-in page answers it.
        const accountId = details.session?.accountId;
        if (!accountId || ctx.query.another === '1') return signIn(ctx, details, true);
        return renderSelectAccount(ctx, details, accountId);
      }
      case APP_ACCESS_PROMPT:
        return renderNoAccess(ctx, details);
      case 'consent': {
        if (await isFirstParty(details)) return finishConsent(ctx, details);
        const scopes = String(details.params.scope ?? '').split(' ').filter((s) => EXPLAINED_SCOPES.includes(s));
        // A token for OneID's admin API acts with the person's administrator powers (as far as the
        // app's own admin roles reach): the page says so, apart from the profile data.
        const missing = (details.prompt.details as { missingResourceScopes?: Record<string, string[]> }).missingResourceScopes ?? {};
        const adminApi = Object.keys(missing).includes(adminApiResource);
        ctx.type = 'html';
        ctx.body = views.render(ctx, 'consent.njk', {
          uid: details.uid, appName: await appNameOf(details), scopes, adminApi,
        }, str(details.params.ui_locales) || undefined);
        return undefined;
      }
      default:
        throw new provider_errors.InvalidRequest(`unsupported prompt ${details.prompt.name}`);
    }
  });

  // Back from OneID's sign-in flow: its outcome finishes the interaction.
  router.get('/:uid/signed-in', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const choosing = details.prompt.name === SELECT_ACCOUNT_PROMPT;
    if (details.uid !== ctx.params.uid || (details.prompt.name !== 'login' && !choosing)) throw new provider_errors.SessionNotFound('interaction mismatch');
    const outcome = await flows.outcome(ctx, str(ctx.query.flow), `/interaction/${details.uid}/signed-in`);
    if (outcome.status === 'done') {
      const client = await provider.Client.find(str(details.params.client_id));
      return finishWithSession(ctx, details, outcome.session, signInRequestOf(client, details.params, await defaultPolicy(), false).acrValues);
    }
    if (outcome.status === 'cancelled' || outcome.status === 'unmet') {
      return finishInteraction(ctx, details, { error: 'access_denied', error_description: outcome.reason }, false);
    }
    // No outcome for this browser (expired, or a flow id from elsewhere): start the sign-in again.
    return signIn(ctx, details);
  });

  router.post('/:uid/select', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid || details.prompt.name !== SELECT_ACCOUNT_PROMPT || !details.session?.accountId) {
      throw new provider_errors.SessionNotFound('interaction mismatch');
    }
    await finishInteraction(ctx, details, { select_account: {} }, true);
  });

  router.post('/:uid/confirm', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid || details.prompt.name !== 'consent') throw new provider_errors.SessionNotFound('interaction mismatch');
    await finishConsent(ctx, details);
  });

  router.post('/:uid/abort', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid) throw new provider_errors.SessionNotFound('interaction mismatch');
    await finishInteraction(ctx, details, {
      error: 'access_denied',
      error_description: details.prompt.name === APP_ACCESS_PROMPT ? 'the user has no access to this app' : 'the user cancelled the sign-in',
    }, false);
  });

  return router;
}
