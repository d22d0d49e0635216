// Builds the koa application: shared middleware, OneID's own routes, then the OIDC provider.
import Koa from 'koa';
import Router from '@koa/router';
import mount from 'koa-mount';
import type { Knex } from 'knex';
import type Provider from 'oidc-provider';
import type { AdapterPayload } from 'oidc-provider';
import { ClientCache } from './apps/client-cache.ts';
import type { Config } from './config.ts';
import type { Logger } from './shared/logger.ts';
import { requestContext } from './http/request-context.ts';
import { canonicalHost } from './http/canonical-host.ts';
import { authorizationLimits } from './http/authorization-limits.ts';
import { errorHandler, notFound } from './http/errors.ts';
import { Views } from './login/views.ts';
import { interactionRouter } from './oidc/interaction.routes.ts';
import { loginRouter } from './login/login.routes.ts';
import { LoginFlows, enrolledMethodsOf } from './login/flow.ts';
import { setupRouter } from './login/setup.routes.ts';
import { portalRouter, servesPortal } from './portal/portal.routes.ts';
import { passwordSetupRouter } from './login/password-setup.routes.ts';
import { SETUP_LINK_PATH } from './directory/password-setup.service.ts';
import { accountRouter, SECURITY_PATH } from './account/security.routes.ts';
import { assetsRouter } from './login/assets.routes.ts';
import { createProvider, unavailableAsRetryable, sendsWritesTogether } from './oidc/provider.ts';
import { requestWrites } from './oidc/request-writes.ts';
import { endSuiteSessions, type AppSignOut } from './oidc/suite-signout.ts';
import { publishedDocuments, PUBLISHED_PATHS } from './oidc/published-documents.ts';
import { oauthResponses } from './oidc/oauth-responses.ts';
import { Metrics } from './http/metrics.ts';
import { loadCookieKeys, loadProviderJwks } from './keys/keys.service.ts';
import type { MasterKey } from './keys/master-key.ts';
import type { UsersService } from './directory/users.service.ts';
import type { SetupService } from './directory/setup.service.ts';
import { createServices, type Services } from './services.ts';
import { ADMIN_API_PREFIX, adminRouter, buildAdminApi } from './admin/index.ts';
import { bearerAuthenticator } from './admin/auth.ts';
import { apiResource, AUTHORIZATION_PATH, PAR_PATH } from './oidc/provider.ts';
import { scimRouter, SCIM_PREFIX } from './scim/index.ts';
import { migrationsCurrent } from './db/migrate.ts';
import { samlRouter, startSignOutChain, SAML_PREFIX } from './saml/index.ts';
import { endBrowserOidcSession, PROVIDER_SESSION_COOKIE } from './oidc/browser-signout.ts';
import type { Session } from './sessions/sessions.service.ts';
import type { DefaultSignInPolicy } from './access/signin-policy.ts';
import { loadSamlKeys } from './keys/saml-keys.ts';
import { consoleRouter, CONSOLE_PREFIX } from './console/index.ts';
import { ensureConsoleApp } from './console/console-app.ts';
import { localeRouter } from './login/locale.routes.ts';
import type { JobQueue } from './jobs/queue.ts';

/** `prefix` itself or anything below it. */
const under = (prefix: string) => (path: string): boolean => path === prefix || path.startsWith(`${prefix}/`);

/**
 * Runs a router only for the paths it serves: the OIDC endpoints (token, userinfo, ...) at the
 * end of the chain then skip the route matching of every router before them.
 */
function onlyFor(serves: (path: string) => boolean, middleware: (ctx: never, next: Koa.Next) => unknown): Koa.Middleware {
  return async (ctx, next) => {
    if (serves(ctx.path)) await middleware(ctx as never, next);
    else await next();
  };
}

export interface AppDeps {
  config: Config;
  db: Knex;
  log: Logger;
  masterKey: MasterKey;
  /** The node's job queue, started after the app is built (main.ts); absent in tests that need none. */
  jobs?: JobQueue;
}

export interface OneIdApp {
  app: Koa;
  provider: Provider;
  services: Services;
  /** Started listening for app changes; close it on shutdown. */
  clients: ClientCache<AdapterPayload>;
  users: UsersService;
  setup: SetupService;
  /** Prometheus metrics; main.ts serves them on METRICS_PORT when set. */
  metrics: Metrics;
}

export async function buildApp({ config, db, log, masterKey, jobs }: AppDeps): Promise<OneIdApp> {
  const views = new Views(config.env === 'production');
  const services = createServices(db, config, masterKey, jobs);
  const { users, setup } = services;
  const cookieKeys = await loadCookieKeys(db, masterKey);
  const clients = new ClientCache<AdapterPayload>({ databaseUrl: config.databaseUrl, log });
  await clients.start();
  // Read per request (cached per node): a super_admin can change it in the console.
  const defaultPolicy: DefaultSignInPolicy = () => services.policies.signInPolicyDefault();
  const provider = createProvider({
    config, db, log, views, cookieKeys, clients, jwks: await loadProviderJwks(db, masterKey), sessions: services.sessions, defaultPolicy, jobs,
  });
  const secureCookies = new URL(config.issuer).protocol === 'https:';
  const flows = new LoginFlows(db, services.sessions, enrolledMethodsOf([services.passwords, services.passkeys, services.totp, services.recovery]), secureCookies);

  await ensureConsoleApp(db, config.issuer);
  const adminApi = buildAdminApi(services);

  const metrics = new Metrics(config.metrics, db);
  metrics.observeProvider(provider);

  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: config.proxyHops, keys: cookieKeys });
  app.silent = true;
  // The authorization limits answer before oidc-provider's router: label their answers by endpoint.
  app.use(metrics.http(new Set([...PUBLISHED_PATHS, AUTHORIZATION_PATH, PAR_PATH])));
  app.use(requestContext(log, config.maxBodyBytes));
  app.use(canonicalHost(config.issuer, config.trustProxy));
  app.use(publishedDocuments());

  const ops = new Router();
  let migrationsKnownCurrent = false;
  ops.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  ops.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await db.raw('select 1');
      if (!migrationsKnownCurrent) migrationsKnownCurrent = await migrationsCurrent(db);
      ctx.status = migrationsKnownCurrent ? 200 : 503;
      ctx.body = migrationsKnownCurrent ? { status: 'ready' } : { status: 'not_ready', reason: 'migrations pending' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'not_ready', reason: 'database unreachable' };
    }
  });
  // On the public listener only behind METRICS_TOKEN (else /metrics is not served here).
  if (config.metrics.token !== undefined) ops.get('/metrics', metrics.endpoint(config.metrics.token));
  app.use(onlyFor((path) => path === '/healthz' || path === '/readyz' || path === '/metrics', ops.routes()));

  app.use(errorHandler(log, views));
  app.use(notFound(views));
  app.use(authorizationLimits(db, views, { perIp: config.authorizeMaxPerIp, windowSeconds: config.authorizeWindowSeconds }, AUTHORIZATION_PATH, PAR_PATH, ['/login/start']));
  app.use(onlyFor(servesPortal, portalRouter({ db, flows, users, views, issuer: config.issuer, maxBodyBytes: config.maxBodyBytes, secureCookies }).routes()));
  // Signing out of OneID ends the browser's OIDC session and grants (their refresh tokens too) and
  // takes the browser through its SAML apps' single logout (login/ and account/ know neither protocol).
  const afterSignOut = async (ctx: Koa.Context, session: Session | undefined, returnTo: string): Promise<string | undefined> => {
    await endBrowserOidcSession(db, ctx, jobs);
    return session ? startSignOutChain(db, session, returnTo) : undefined;
  };
  const signInPaths = (path: string): boolean => under('/login')(path) || path === '/logout';
  app.use(onlyFor(signInPaths, metrics.signIns()));
  app.use(onlyFor(signInPaths, loginRouter({
    db, flows, views, log, maxBodyBytes: config.maxBodyBytes, passwords: services.passwords, throttle: services.throttle,
    passkeys: services.passkeys, totp: services.totp, recovery: services.recovery,
    passkeyUserVerification: services.passkeys.userVerification,
    afterSignOut,
  }).routes()));
  app.use(onlyFor(under('/assets'), assetsRouter().routes()));
  app.use(onlyFor(under('/interaction'), interactionRouter({
    provider, users, views, log, maxBodyBytes: config.maxBodyBytes, adminApiResource: apiResource(config.issuer), flows, defaultPolicy,
  }).routes()));
  app.use(onlyFor(under(SAML_PREFIX), samlRouter({
    db, flows, views, log, issuer: config.issuer, keys: await loadSamlKeys(db, masterKey), metadataSigned: config.samlMetadataSigned,
    defaultPolicy, maxBodyBytes: config.maxBodyBytes,
    // The suites of the app that asked (with suite sign-out) tell their OIDC apps first.
    endOtherProtocols: async (ctx, ended) => {
      const oidcSession = ctx.cookies.get(PROVIDER_SESSION_COOKIE, { signed: true });
      if (oidcSession && oidcSession.length <= 200) {
        await endSuiteSessions(db, { accountId: ended.userId, clientId: ended.app.clientId, session: { jti: oidcSession } },
          { type: 'user', id: ended.userId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null });
      }
      await endBrowserOidcSession(db, ctx, jobs);
    },
  }).routes()));
  // The first administrator goes from the setup page straight into the console, signed in.
  app.use(onlyFor(under('/setup'), setupRouter(setup, views, config.maxBodyBytes, services.passwordPolicy, async (ctx, user) => {
    const opened = await services.sessions.start(user.id, [{ method: 'password', at: Math.floor(Date.now() / 1000), amr: ['pwd'] }],
      { ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, { type: 'user', id: user.id, ip: ctx.ip, userAgent: ctx.get('user-agent') || null });
    flows.setSessionCookie(ctx, opened.token, opened.session.expiresAt);
    return `${CONSOLE_PREFIX}?welcome=1`;
  }).routes()));
  // A person's one-time link from an administrator, to choose their own password.
  app.use(onlyFor(under(SETUP_LINK_PATH), passwordSetupRouter(services.setupLinks, views, services.passwordPolicy, config.maxBodyBytes).routes()));
  app.use(onlyFor((path) => path === '/locale', localeRouter(secureCookies).routes()));
  const consolePaths = (path: string): boolean => under(CONSOLE_PREFIX)(path) && !under(ADMIN_API_PREFIX)(path);
  app.use(onlyFor(consolePaths, consoleRouter({
    db, api: adminApi, views, services, issuer: config.issuer, provider, flows, secureCookies, maxBodyBytes: config.maxBodyBytes,
  }).routes()));
  app.use(onlyFor(under(SECURITY_PATH), accountRouter({
    db, views, sessions: services.sessions, users, passwords: services.passwords, throttle: services.throttle,
    passwordPolicy: services.passwordPolicy, maxBodyBytes: config.maxBodyBytes, secureCookies,
    passkeys: services.passkeys, totp: services.totp, recoveryCodes: services.recovery, afterSignOut,
  }).routes()));

  const authenticate = bearerAuthenticator({
    db, issuer: config.issuer, audience: apiResource(config.issuer), loadJwks: () => loadProviderJwks(db, masterKey),
  });
  app.use(onlyFor(under(SCIM_PREFIX), metrics.scim()));
  app.use(onlyFor(under(SCIM_PREFIX), scimRouter({ services, log, issuer: config.issuer, maxBodyBytes: config.maxBodyBytes }).routes()));
  app.use(onlyFor(under(ADMIN_API_PREFIX), adminRouter(adminApi, authenticate, config.issuer, config.maxBodyBytes).routes()));

  app.use(oauthResponses(config.issuer));
  app.use(unavailableAsRetryable());
  app.use(requestWrites(db, log, sendsWritesTogether));
  // See provider.ts ('end_session.success'): the person signed out of OneID from an app. The
  // session's SAML apps are told too: the browser goes through their single logout on its way to
  // where oidc-provider was sending it (the app's registered post_logout_redirect_uri, or its own
  // "signed out" page).
  app.use(async (ctx, next) => {
    await next();
    // Signed out of one app only: its suites with suite sign-out end their other apps' parts too.
    // The suite's SAML apps this browser signed in to are taken through their single logout on the
    // way back to the app, as for a sign-out of OneID, but the OneID session goes on.
    const ofApp = ctx.state.signedOutOfApp as AppSignOut | undefined;
    if (ofApp) {
      const oneIdSession = await flows.currentSession(ctx as never);
      const own = oneIdSession?.userId === ofApp.accountId ? oneIdSession : undefined;
      const ended = await endSuiteSessions(db, ofApp, { type: 'user', id: ofApp.accountId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, own?.id);
      const location = ctx.response.get('location');
      if (own && ended?.samlAppIds.length && ctx.status >= 300 && ctx.status < 400 && location) {
        const chain = await startSignOutChain(db, own, location, ended.samlAppIds);
        if (chain) ctx.redirect(chain);
      }
      return;
    }
    const accountId = ctx.state.signedOutAccount as string | undefined;
    if (!accountId) return;
    const session = await flows.currentSession(ctx as never);
    if (session?.userId !== accountId) return;
    await services.sessions.end(session.userId, session.id, 'signed_out', { type: 'user', id: session.userId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null });
    flows.setSessionCookie(ctx as never, null);
    const location = ctx.response.get('location');
    if (ctx.status < 300 || ctx.status >= 400 || !location) return;
    const chain = await startSignOutChain(db, session, location);
    if (chain) ctx.redirect(chain);
  });
  app.use(mount(provider));
  return { app, provider, services, users, setup, clients, metrics };
}
