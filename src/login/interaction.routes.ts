// The sign-in interaction: oidc-provider hands the browser here (GET /interaction/:uid);
// we run the steps (password, consent) and hand the result back to the provider.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type Provider from 'oidc-provider';
import { errors as provider_errors } from 'oidc-provider';
import type { Context } from 'koa';
import type { Logger } from '../shared/logger.ts';
import type { UsersService } from '../directory/users.service.ts';
import type { Views } from './views.ts';
import { csrf } from '../http/csrf.ts';
import { textProblem } from '../shared/text-input.ts';
import { oneIdClientFacts } from '../oidc/adapter.ts';
import type { SignInThrottle } from '../http/signin-throttle.ts';

interface Deps {
  provider: Provider;
  users: UsersService;
  views: Views;
  log: Logger;
  maxBodyBytes: number;
  throttle: SignInThrottle;
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

export function interactionRouter({ provider, users, views, log, maxBodyBytes, throttle, adminApiResource }: Deps): Router {
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

  const renderLogin = async (ctx: Context, details: Details, failed = false, login = '', retryAfter = 0): Promise<void> => {
    ctx.type = 'html';
    if (retryAfter > 0) {
      ctx.status = 429;
      ctx.set('Retry-After', String(retryAfter));
    }
    ctx.body = views.render(ctx, 'login.njk', {
      uid: details.uid, appName: await appNameOf(details), failed, login: login || str(details.params.login_hint),
      retryMinutes: retryAfter > 0 ? Math.max(1, Math.ceil(retryAfter / 60)) : 0,
    }, str(details.params.ui_locales) || undefined);
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
    if (!user) return renderLogin(ctx, details);
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
        return renderLogin(ctx, details);
      case SELECT_ACCOUNT_PROMPT: {
        // Without a signed-in person there is no account to choose: the sign-in page answers it.
        const accountId = details.session?.accountId;
        if (!accountId || ctx.query.another === '1') return renderLogin(ctx, details);
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

  router.post('/:uid/login', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const choosing = details.prompt.name === SELECT_ACCOUNT_PROMPT;
    if (details.uid !== ctx.params.uid || (details.prompt.name !== 'login' && !choosing)) throw new provider_errors.SessionNotFound('interaction mismatch');
    const body = ctx.request.body as Record<string, unknown>;
    const login = str(body.login).slice(0, 254);
    if (textProblem(login)) {
      // No account name holds a NUL or an unpaired surrogate (shared/text-input.ts): a failed
      // sign-in, nothing to look up or count.
      log.info({ requestId: ctx.state.requestId, event: 'signin.failed' }, 'sign-in failed: ill-formed text in the account name');
      return renderLogin(ctx, details, true);
    }
    // The sign-in's time (auth_time) is when it started, before its password was checked: a
    // password set meanwhile ends it (oidc/provider.ts, endedSince), whenever its writes land.
    const startedAt = Math.floor(Date.now() / 1000);
    // The attempt is counted against this account (whichever of its names was typed) and this
    // address before any password work; over either limit it is refused without saying whether
    // the account exists.
    const { user, retryAfter, sessionsEndedAt } = await users.signIn(login, str(body.password), {
      ip: ctx.ip, userAgent: ctx.get('user-agent') || null, clientId: str(details.params.client_id) || null,
    }, (who) => throttle.reserve(who, ctx.ip));
    if (retryAfter > 0) {
      log.info({ requestId: ctx.state.requestId, event: 'signin.throttled' }, 'sign-in throttled');
      return renderLogin(ctx, details, false, login, retryAfter);
    }
    if (!user) {
      log.info({ requestId: ctx.state.requestId, event: 'signin.failed' }, 'sign-in failed');
      return renderLogin(ctx, details, true, login);
    }
    log.info({ requestId: ctx.state.requestId, event: 'signin.succeeded', userId: user.id }, 'sign-in succeeded');
    // A password set in the second the sign-in started, and already seen by its check: the new
    // password was checked, so the sign-in counts from the next second (seconds are compared).
    const ts = sessionsEndedAt ? Math.max(startedAt, Math.floor(sessionsEndedAt.getTime() / 1000) + 1) : startedAt;
    // A sign-in answers prompt=select_account as well: the person chose this account.
    await finishInteraction(ctx, details, { login: { accountId: user.id, amr: ['pwd'], ts }, ...(choosing ? { select_account: {} } : {}) }, false);
    return undefined;
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
