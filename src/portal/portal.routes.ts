// The employee portal: `/` (the apps a person may open, searchable), `/launch/:appId` (opens one:
// the entitlement is checked again, then the app's own sign-in starts) and `/account` (the
// person's profile; the language is theirs to change, the rest the administrator's). It needs
// OneID's own session (sessions/), like the security page at /account/security, and knows no
// protocol: where an app's sign-in starts is launch.ts's answer.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { csrf } from '../http/csrf.ts';
import { entitlements } from '../access/entitlements.ts';
import { recordAuditNow, type Actor } from '../audit/audit.service.ts';
import type { UsersService } from '../directory/users.service.ts';
import type { User } from '../directory/users.repo.ts';
import type { LoginFlows } from '../login/flow.ts';
import type { Views } from '../login/views.ts';
import { LOCALES } from '../login/i18n.ts';
import { LOCALE_COOKIE } from '../login/locale.routes.ts';
import { summarizeUserAgent } from '../account/devices.ts';
import { SECURITY_PATH } from '../account/security.routes.ts';
import { CONSOLE_CLIENT_ID } from '../console/console-app.ts';
import { AppError } from '../shared/errors.ts';
import { findLauncherAppById, findLauncherSections, findPlacement, findRecentSignIns, type LauncherApp, type LauncherSuite } from './portal.repo.ts';
import { launchUrlOf } from './launch.ts';

export const PORTAL_PATH = '/';
export const LAUNCH_PREFIX = '/launch';
export const PROFILE_PATH = '/account';

/** The paths this router answers (app.ts runs it for these only). */
export const servesPortal = (path: string): boolean =>
  path === PORTAL_PATH || path === PROFILE_PATH || path.startsWith(`${LAUNCH_PREFIX}/`);

export interface PortalDeps {
  db: Knex;
  flows: LoginFlows;
  users: UsersService;
  views: Views;
  issuer: string;
  maxBodyBytes: number;
  secureCookies: boolean;
}

const SEARCH_MAX = 100;
const RECENT_SIGN_INS = 10;
const signInTo = (path: string): string => `/login/start?return_to=${encodeURIComponent(path)}`;

/**
 * The page's CSP with the logos' origins allowed as images (the shared CSP allows this origin's
 * images only; an app's logo is wherever its admin put it, an https or http address).
 */
function allowLogos(ctx: Context, logos: (string | null)[]): void {
  const origins = new Set<string>();
  for (const logo of logos) {
    try {
      const url = logo ? new URL(logo) : undefined;
      if (url && (url.protocol === 'https:' || url.protocol === 'http:')) origins.add(url.origin);
    } catch { /* an address that does not parse is not shown */ }
  }
  const csp = ctx.response.get('Content-Security-Policy');
  if (!origins.size || !csp) return;
  ctx.set('Content-Security-Policy', csp.replace(/img-src ([^;]*)/, (_all, sources: string) => `img-src ${sources} ${[...origins].join(' ')}`));
}

/** The address if it is a web address (http or https), else null: a suite's icon is shown only then. */
function webAddress(url: string | null): string | null {
  try {
    return url && ['https:', 'http:'].includes(new URL(url).protocol) ? url : null;
  } catch {
    return null;
  }
}

interface Card { id: string; name: string; description: string | null; logoUrl: string | null; protocol: string; href: string }
interface SuiteSection { suite: LauncherSuite; apps: Card[] }

export function portalRouter(deps: PortalDeps): Router {
  const { db, flows, users, views } = deps;
  const router = new Router();
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    return next();
  });
  router.use(bodyParser({ enableTypes: ['form'], formLimit: `${deps.maxBodyBytes}b` }));
  router.use(csrf());

  /** The active person of this browser's OneID session, if any; their language becomes the page's. */
  const signedIn = async (ctx: Context): Promise<User | undefined> => {
    const session = await flows.currentSession(ctx);
    if (!session) return undefined;
    const user = await users.getUser(session.userId).catch((err: unknown) => {
      if (err instanceof AppError && err.kind === 'not_found') return undefined;
      throw err;
    });
    if (!user || user.status !== 'active') return undefined;
    ctx.state.uiLocales ??= user.locale ?? undefined;
    return user;
  };
  const actorOf = (ctx: Context, user: User): Actor => ({ type: 'user', id: user.id, ip: ctx.ip, userAgent: ctx.get('user-agent').slice(0, 500) || null });
  const render = (ctx: Context, template: string, vars: Record<string, unknown>, status = 200): void => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render(ctx, `portal/${template}`, vars);
  };
  const cardOf = (app: LauncherApp): Card | undefined => {
    const launch = launchUrlOf(app, deps.issuer);
    return launch ? { id: app.id, name: app.name, description: app.description, logoUrl: app.logoUrl, protocol: app.protocol, href: `${LAUNCH_PREFIX}/${app.id}` } : undefined;
  };

  router.get(PORTAL_PATH, async (ctx) => {
    // Back from a sign-in: the session is all this page needs; drop the flow id from the address bar.
    const extra = Object.keys(ctx.query).filter((k) => k !== 'q');
    if (extra.length) {
      ctx.status = 303;
      ctx.redirect(typeof ctx.query.q === 'string' && ctx.query.q ? `/?q=${encodeURIComponent(ctx.query.q)}` : '/');
      return;
    }
    const user = await signedIn(ctx);
    if (!user) {
      render(ctx, 'signed-out.njk', { signIn: signInTo(PORTAL_PATH) });
      return;
    }
    const q = (typeof ctx.query.q === 'string' ? ctx.query.q : '').trim().slice(0, SEARCH_MAX);
    const sections = await findLauncherSections(db, user.id, q);
    const everyApp = sections.flatMap((s) => s.apps);
    // The console is an app like any other for OneID, but only an administrator has use for it.
    const console = user.adminRoles.length ? everyApp.find((a) => a.clientId === CONSOLE_CLIENT_ID) : undefined;
    const cardsOf = (apps: LauncherApp[]): Card[] => apps.filter((a) => a.clientId !== CONSOLE_CLIENT_ID).map(cardOf).filter((c): c is Card => c !== undefined);
    const suites: SuiteSection[] = [];
    let others: Card[] = [];
    for (const section of sections) {
      const cards = cardsOf(section.apps);
      if (!section.suite) others = cards;
      else if (cards.length) suites.push({ suite: { ...section.suite, iconUrl: webAddress(section.suite.iconUrl) }, apps: cards });
    }
    // An app in two suites is one app: counted once.
    const count = new Set([...suites.flatMap((s) => s.apps), ...others].map((c) => c.id)).size;
    allowLogos(ctx, [...suites.flatMap((s) => [s.suite.iconUrl, ...s.apps.map((c) => c.logoUrl)]), ...others.map((c) => c.logoUrl)]);
    const vars = { me: user, suites, others, count, q, adminConsole: Boolean(console), section: 'apps' };
    // The search box asks htmx for the list alone.
    if (ctx.get('hx-request') && !ctx.get('hx-boosted')) render(ctx, 'apps.njk', vars);
    else render(ctx, 'home.njk', vars);
  });

  router.get(`${LAUNCH_PREFIX}/:appId`, async (ctx) => {
    const user = await signedIn(ctx);
    if (!user) {
      ctx.status = 303;
      ctx.redirect(signInTo(ctx.path));
      return;
    }
    const app = await findLauncherAppById(db, ctx.params.appId!);
    if (!app) {
      render(ctx, 'not-found.njk', { me: user }, 404);
      return;
    }
    const allowed = (await entitlements(db, user.id, app.id)).allowed && (app.clientId !== CONSOLE_CLIENT_ID || user.adminRoles.length > 0);
    if (!allowed) {
      render(ctx, 'denied.njk', { me: user, app: app.name }, 403);
      return;
    }
    const target = launchUrlOf(app, deps.issuer);
    if (!target) {
      render(ctx, 'not-found.njk', { me: user, app: app.name }, 404);
      return;
    }
    // Which apps people open from the portal (not their sign-ins, which are recorded where they happen).
    await recordAuditNow(db, actorOf(ctx, user), { action: 'app.launched', targetType: 'app', targetId: app.id, changes: { protocol: app.protocol } });
    ctx.status = 303;
    ctx.redirect(target);
  });

  async function renderProfile(ctx: Context, user: User, extra: { saved?: boolean; problem?: string; chosen?: string } = {}, status = 200): Promise<void> {
    const [placement, recent] = await Promise.all([findPlacement(db, user.id, user.managerId), findRecentSignIns(db, user.id, RECENT_SIGN_INS)]);
    const locale = views.localeOf(ctx);
    const when = new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC', timeZoneName: 'short' });
    const now = Date.now();
    render(ctx, 'account.njk', {
      me: user, section: 'account', ...placement, ...extra,
      chosenLocale: extra.chosen ?? user.locale ?? '',
      locales: LOCALES,
      securityPath: SECURITY_PATH,
      signIns: recent.map((s) => ({
        at: when.format(s.at), device: summarizeUserAgent(s.userAgent), ip: s.ip, methods: s.methods,
        status: s.endedAt ? 'ended' : s.expiresAt.getTime() <= now ? 'expired' : 'active',
      })),
    }, status);
  }

  router.get(PROFILE_PATH, async (ctx) => {
    const user = await signedIn(ctx);
    if (!user) {
      ctx.status = 303;
      ctx.redirect(signInTo(PROFILE_PATH));
      return;
    }
    await renderProfile(ctx, user, { saved: ctx.query.saved === '1' });
  });

  // The language is the one thing of the profile a person changes themselves (an HR system or
  // the administrator owns the rest): through the directory's own update, audited with the person as actor.
  router.post(PROFILE_PATH, async (ctx) => {
    const user = await signedIn(ctx);
    if (!user) {
      ctx.status = 303;
      ctx.redirect(signInTo(PROFILE_PATH));
      return;
    }
    const raw = (ctx.request.body as Record<string, unknown> | undefined)?.locale;
    const chosen = typeof raw === 'string' ? raw : '';
    if (chosen !== '' && !(LOCALES as readonly string[]).includes(chosen)) {
      await renderProfile(ctx, user, { problem: 'portal.account.invalid_language' }, 400);
      return;
    }
    const locale = chosen === '' ? null : chosen;
    if (locale !== user.locale) await users.updateUser(user.id, { locale }, actorOf(ctx, user));
    // The language switch's cookie would outrank the profile on this browser: the profile now says.
    ctx.cookies.set(LOCALE_COOKIE, null, { httpOnly: true, sameSite: 'lax', secure: deps.secureCookies, overwrite: true });
    ctx.status = 303;
    ctx.redirect(`${PROFILE_PATH}?saved=1`);
  });

  return router;
}
