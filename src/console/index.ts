// The admin console at /admin (not the API under /admin/api/v1): server-rendered pages with htmx,
// a first-party OIDC app of OneID (console-app.ts, auth.ts). Every page acts through the admin
// API's own routes in process (pages.ts), so the console can do nothing the API would refuse.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { csrf } from '../http/csrf.ts';
import { AppError, HTTP_STATUS } from '../shared/errors.ts';
import type { LoginFlows } from '../login/flow.ts';
import type { MessageKey } from '../login/i18n.ts';
import { policyOfAcr } from '../access/signin-policy.ts';
import { ConsoleAuth, consoleReturnTo } from './auth.ts';
import { CONSOLE_PREFIX } from './console-app.ts';
import { navFor, type ConsoleDeps, type ConsolePage, type RegisterPages } from './pages.ts';
import { registerPeoplePages } from './people.pages.ts';
import { registerDirectoryPages } from './directory.pages.ts';
import { registerAppsPages } from './apps.pages.ts';
import { registerAuditPages } from './audit.pages.ts';
import { registerSettingsPages } from './settings.pages.ts';
import { registerWebhooksPages } from './webhooks.pages.ts';
import { registerJobsPages } from './jobs.pages.ts';
import { registerProvisioningPages } from './provisioning.pages.ts';
import { registerSuitesPages } from './suites.pages.ts';

export { CONSOLE_PREFIX } from './console-app.ts';

const AREAS: RegisterPages[] = [registerPeoplePages, registerDirectoryPages, registerAppsPages, registerAuditPages, registerSettingsPages, registerWebhooksPages, registerJobsPages, registerProvisioningPages, registerSuitesPages];

export interface ConsoleRouterDeps extends ConsoleDeps {
  provider: Provider;
  flows: LoginFlows;
  secureCookies: boolean;
  maxBodyBytes: number;
}

/** What a failed call means to the admin, in their language; the API's own (English) detail goes beside it. */
function problemKey(err: AppError): MessageKey {
  switch (err.kind) {
    case 'permission_denied': return 'console.error.forbidden';
    case 'not_found': return 'console.error.not_found';
    case 'already_exists': return 'console.error.conflict';
    case 'failed_precondition': return 'console.error.precondition';
    default: return 'console.error.invalid';
  }
}

/**
 * The page a form was posted from (htmx names it; a plain form's Referer, when it is this site's),
 * so that after signing in again the admin is back where they were. Checked by consoleReturnTo.
 */
function pageOfPost(ctx: Context, issuer: string): string {
  for (const value of [ctx.get('hx-current-url'), ctx.get('referer')]) {
    try {
      const url = new URL(value);
      if (url.origin === new URL(issuer).origin) return `${url.pathname}${url.search}`;
    } catch { /* absent or not a URL */ }
  }
  return CONSOLE_PREFIX;
}

export function consoleRouter(deps: ConsoleRouterDeps): Router {
  const auth = new ConsoleAuth({ db: deps.db, provider: deps.provider, flows: deps.flows, issuer: deps.issuer, secureCookies: deps.secureCookies });
  const router = new Router({ prefix: CONSOLE_PREFIX });
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    return next();
  });
  router.use(bodyParser({ enableTypes: ['form'], formLimit: `${deps.maxBodyBytes}b` }));
  router.use(csrf());

  router.get('/login', (ctx) => {
    const level = typeof ctx.query.acr === 'string' ? policyOfAcr(ctx.query.acr) ?? undefined : undefined;
    auth.start(ctx, consoleReturnTo(ctx.query.return_to), level);
  });
  router.get('/callback', async (ctx) => {
    const outcome = await auth.finish(ctx);
    if ('returnTo' in outcome) {
      ctx.redirect(outcome.returnTo);
      return;
    }
    ctx.status = outcome.error === 'denied' ? 403 : 400;
    ctx.type = 'html';
    ctx.body = deps.views.render(ctx, 'console/signin-failed.njk', { reason: outcome.error });
  });

  // Everything else needs a signed-in admin.
  router.use(async (ctx: Context, next: Next) => {
    const signedIn = await auth.principal(ctx);
    const here = ctx.method === 'GET' ? ctx.originalUrl : pageOfPost(ctx, deps.issuer);
    if (!signedIn) {
      const login = `${CONSOLE_PREFIX}/login?return_to=${encodeURIComponent(consoleReturnTo(here))}`;
      if (ctx.get('hx-request')) {
        ctx.status = 204;
        ctx.set('HX-Redirect', login);
      } else {
        ctx.redirect(login);
      }
      return;
    }
    const { principal, user } = signedIn;
    ctx.state.uiLocales ??= user.locale ?? undefined;
    const nav = navFor(principal, (method, path) => deps.api.may(principal, method, path));
    const partial = Boolean(ctx.get('hx-request')) && !ctx.get('hx-boosted');
    const console: ConsolePage = {
      principal, user, partial,
      call: (method, path, input = {}) => deps.api.call(principal, method, path, input, ctx) as never,
      may: (method, path) => deps.api.may(principal, method, path),
      render: (template, vars = {}, status = 200) => {
        ctx.status = status;
        ctx.type = 'html';
        ctx.body = deps.views.render(ctx, `console/${template}`, {
          ...vars, nav, me: user, currentPath: ctx.path, returnTo: encodeURIComponent(ctx.originalUrl),
        });
      },
    };
    ctx.state.console = console;
    if (!user.adminRoles.length) {
      console.render('no-role.njk', {}, 403);
      return;
    }
    try {
      await next();
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      // The operation needs a stronger sign-in (RFC 9470 in the API): sign in again, then come back.
      if (err.code === 'admin.insufficient_user_authentication') {
        const level = /acr_values="([^"]+)"/.exec(String(ctx.response.get('www-authenticate')))?.[1];
        ctx.remove('WWW-Authenticate');
        const stepUp = `${CONSOLE_PREFIX}/login?acr=${encodeURIComponent(level ?? '')}&return_to=${encodeURIComponent(consoleReturnTo(here))}`;
        console.render(console.partial ? 'step-up-fragment.njk' : 'step-up.njk', { stepUp }, 401);
        if (console.partial) {
          ctx.set('HX-Retarget', '#flash');
          ctx.set('HX-Reswap', 'innerHTML');
        }
        return;
      }
      if (err.kind === 'unauthenticated' || err.kind === 'internal' || err.kind === 'unavailable') throw err;
      const vars = { messageKey: problemKey(err), detail: err.message };
      if (console.partial) {
        console.render('error-fragment.njk', vars, HTTP_STATUS[err.kind]);
        ctx.set('HX-Retarget', '#flash');
        ctx.set('HX-Reswap', 'innerHTML');
      } else {
        console.render('error.njk', vars, HTTP_STATUS[err.kind]);
      }
    }
  });

  router.get('/', (ctx) => {
    const console = ctx.state.console as ConsolePage;
    console.render('home.njk', { section: 'home', firstRun: ctx.query.welcome === '1' });
  });

  for (const register of AREAS) register(router, deps);
  return router;
}
