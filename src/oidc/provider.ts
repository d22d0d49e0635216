// oidc-provider configured for OneID: PostgreSQL adapter, keys from the database,
// accounts from the directory, JWT access tokens for resource servers (RFC 9068).
import Provider, { errors, interactionPolicy, type ClientMetadata, type AdapterPayload, type Configuration, type KoaContextWithOIDC, type Account } from 'oidc-provider';
import type { Knex } from 'knex';
import { decodeJwt, type JWK } from 'jose';
import type { Config } from '../config.ts';
import type { Middleware } from 'koa';
import { isDbUnavailable } from '../db/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { digestsEqual, sha256 } from '../shared/ids.ts';
import { findUserWithSessionsEnd, type User } from '../directory/users.repo.ts';
import { activeUserWithEntitlements, entitlements, groupNamesOf, type Entitlements } from '../access/entitlements.ts';
import { recordAuditNow } from '../audit/audit.service.ts';
import { createAdapterFactory, oneIdClientFacts, rememberOnce, takePrefetchedAccount } from './adapter.ts';
import type { ClientCache } from '../apps/client-cache.ts';
import { claimsFor, scopeSet, SCOPES, CLAIMS, type AccessClaims } from './claims.ts';
import type { Views } from '../login/views.ts';
import { pageForOAuthError } from '../login/error-page.ts';
import { APP_ACCESS_PROMPT, SELECT_ACCOUNT_PROMPT } from './interaction.routes.ts';
import { SESSION_COOKIE, acrToReport, sessionMeets } from '../login/flow.ts';
import type { SessionsService } from '../sessions/sessions.service.ts';
import { ACR_VALUES, amrOf, type DefaultSignInPolicy } from '../access/signin-policy.ts';
import { signInRequestOf } from './signin-request.ts';
import { BACKCHANNEL_LOGOUT_QUEUE, type AppSignOut, type BackchannelLogoutJob } from './suite-signout.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { signingKeys } from '../keys/signing-key.ts';
import { exchangedTokenAllowed, ID_JAG_TYPE, isExchangedToken, registerTokenExchange } from './token-exchange.ts';

/**
 * OneID's own first-party client: public, no consent, back to `<issuer>/`. The home page signs in
 * with OneID's flow directly; the client stays for tools that sign in to OneID itself over OIDC.
 */
const homeClient = (issuer: string): ClientMetadata => ({
  client_id: 'oneid',
  client_name: 'OneID',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: [`${issuer}/`],
  post_logout_redirect_uris: [`${issuer}/`],
  'urn:oneid:first_party': true,
});

export interface ProviderDeps {
  config: Config;
  db: Knex;
  log: Logger;
  jwks: { keys: JWK[] };
  cookieKeys: string[];
  views: Views;
  clients: ClientCache<AdapterPayload>;
  sessions: SessionsService;
  /** Apps without their own sign-in policy: the level in force, read per request. */
  defaultPolicy: DefaultSignInPolicy;
  /** The job queue, where back-channel logout tokens are sent from (retried); none: oidc-provider sends them itself. */
  jobs?: Pick<JobQueue, 'send'>;
}

const TOKEN_PATH = '/token';
/**
 * Not a parameter any app sends: oidc-provider calls the validator of each extra parameter on
 * every authorization request, after its own scope check, which is where keepOfflineAccess runs.
 */
const KEEP_OFFLINE_ACCESS_HOOK = 'x_oneid_offline_access';
export const AUTHORIZATION_PATH = '/auth';
/** oidc-provider's pushed authorization request endpoint (its default path, named here). */
export const PAR_PATH = '/request';

/**
 * The requests whose writes are sent together when the response is ready (request-writes.ts):
 * the token endpoint, and the authorization endpoint's resume after an interaction (`/auth/<uid>`).
 */
export const sendsWritesTogether = (method: string, path: string): boolean =>
  (method === 'POST' && path === TOKEN_PATH) || (method === 'GET' && path.startsWith(`${AUTHORIZATION_PATH}/`));

/** The audience of OneID's own APIs; client_credentials tokens default to it. */
export const apiResource = (issuer: string): string => `${issuer}/api`;

/** An oidc-provider Account that also answers the permission-model claims for one app. */
interface OneIdAccount extends Account {
  accessClaims(scopes: Set<string>): Promise<AccessClaims>;
  /** The app the account was read for (the request's client), if any. */
  appId?: string;
  /** The user's entitlements in that app, read with the user (none without an app). */
  entitlements: Entitlements;
  /** When every session of the user was last ended (a password set by someone else), read with the user. */
  sessionsEndedAt: Date | null;
}

/**
 * Whether a sign-in made at `authTime` (seconds) is older than the end of the person's sessions.
 * A password set ends every session by deleting oidc-provider's rows, but a sign-in whose password
 * was checked before that and whose session, grant and code were written after it would survive
 * the delete: so the sign-in time is also checked at each use, whatever order the writes landed
 * in. Whole seconds, as auth_time has them: a sign-in started in the same second counts as older,
 * unless its password check already saw the new password (login/interaction.routes.ts).
 */
function endedSince(authTime: number | undefined, sessionsEndedAt: Date | null): boolean {
  if (!sessionsEndedAt) return false;
  return typeof authTime !== 'number' || authTime <= Math.floor(sessionsEndedAt.getTime() / 1000);
}

/** The token kinds that carry the sign-in's time (authTime): what the token endpoint redeems. */
const SIGN_IN_TOKENS = new Set(['AuthorizationCode', 'RefreshToken']);

/**
 * A session signed in before the person's sessions were ended (see endedSince) is no longer signed
 * in: the 'login' prompt is raised again (login_required with prompt=none).
 */
function sessionsEndedCheck(db: Knex): interactionPolicy.Check {
  const { Check } = interactionPolicy;
  return new Check('sessions_ended', 'End-User authentication is required', 'login_required', async (ctx) => {
    const { session } = ctx.oidc;
    const accountId = session?.accountId;
    if (!session || !accountId) return Check.NO_NEED_TO_PROMPT;
    // The account oidc-provider loaded for this request was read with the end of sessions.
    const account = ctx.oidc.account as OneIdAccount | undefined;
    const endedAt = account?.accountId === accountId && account.sessionsEndedAt !== undefined
      ? account.sessionsEndedAt
      : (await findUserWithSessionsEnd(db, accountId))?.sessionsEndedAt ?? null;
    return endedSince(session.authTime(), endedAt) ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
  });
}

/**
 * The person's sign-in is OneID's session (sessions/, cookie oneid.sso), which every protocol
 * shares; oidc-provider's own session follows it. First of the login prompt's checks: when the
 * browser's OneID session meets what the request requires (the app's policy, acr_values,
 * max_age), oidc-provider's session is brought in line with it (person, auth_time, acr, amr),
 * so a person signed in for a SAML app or on the account pages is not asked again and prompt=none
 * works; when it does not, the login prompt is raised and the interaction runs OneID's sign-in
 * flow (interaction.routes.ts). A provider session without a OneID session (signed out
 * everywhere, ended by an administrator) no longer signs anyone in.
 */
function oneIdSessionCheck(sessions: SessionsService, defaultPolicy: DefaultSignInPolicy): interactionPolicy.Check {
  const { Check } = interactionPolicy;
  return new Check('oneid_session', 'End-User authentication is required', 'login_required', async (ctx) => {
    const providerSession = ctx.oidc.session!;
    const session = await sessions.find(ctx.cookies.get(SESSION_COOKIE) ?? undefined);
    if (!session) return providerSession.accountId ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
    // Another person's provider session is replaced through the interaction (oidc-provider ends it).
    if (providerSession.accountId && providerSession.accountId !== session.userId) return Check.REQUEST_PROMPT;
    const { request, acrValues } = signInRequestOf(ctx.oidc.client, ctx.oidc.params as Record<string, unknown>, await defaultPolicy(), false);
    // Resuming after this request's own sign-in: it meets max_age however long the way back took
    // (as oidc-provider's max_age check); asking again would send the person round in a loop.
    if (ctx.oidc.result?.login) delete request.maxAge;
    if (!sessionMeets(session, request)) return Check.REQUEST_PROMPT;
    const acr = acrToReport(session, acrValues);
    const amr = amrOf(session.methods);
    if (providerSession.accountId !== session.userId || providerSession.loginTs !== session.authTime
      || providerSession.acr !== acr || JSON.stringify(providerSession.amr ?? []) !== JSON.stringify(amr)) {
      providerSession.loginAccount({ accountId: session.userId, loginTs: session.authTime, amr, acr });
    }
    return Check.NO_NEED_TO_PROMPT;
  });
}

/**
 * Sign-in enforcement, in two places that together cover every way to a token:
 *
 * 1. At the authorization endpoint, an extra interaction-policy prompt (APP_ACCESS_PROMPT) runs
 *    after 'login' and before 'consent' on every request with a signed-in user: fresh
 *    interactive sign-ins, existing sessions (SSO) and existing grants alike. When the user is
 *    not entitled to the app, its check fails with the error access_denied: with prompt=none
 *    oidc-provider redirects access_denied to the app at once; otherwise the browser goes to
 *    the interaction, which shows the localized 403 "no access" page whose button finishes
 *    the interaction with access_denied. No code is issued either way.
 * 2. At redemption, findAccount is called with the token being used (authorization code or
 *    refresh token at the token endpoint, access token at userinfo) and ctx.oidc.client set to
 *    the app. It answers "no such account" when the user is no longer entitled, which
 *    oidc-provider turns into invalid_grant / invalid_token. So an assignment removed after
 *    sign-in stops the next refresh, and a code issued a moment before cannot be redeemed.
 *
 * findAccount without a token (the session at the authorization endpoint) does not refuse:
 * oidc-provider needs the account there to build the grant, and (1) decides.
 */
function appAccessPrompt(db: Knex): interactionPolicy.Prompt {
  const { Prompt, Check } = interactionPolicy;
  return new Prompt(
    { name: APP_ACCESS_PROMPT, requestable: false },
    new Check('not_entitled', 'the user has no access to this app', 'access_denied', async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const appId = oneIdClientFacts(ctx.oidc.client).appId;
      if (!accountId || !appId) return Check.NO_NEED_TO_PROMPT;
      // The account oidc-provider loaded for this request read the entitlements with the user.
      const account = ctx.oidc.account as OneIdAccount | undefined;
      const known = account?.accountId === accountId && account.appId === appId ? account.entitlements : undefined;
      if ((known ?? await entitlements(db, accountId, appId)).allowed) return Check.NO_NEED_TO_PROMPT;
      await recordAuditNow(db, { type: 'user', id: accountId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, {
        action: 'signin.denied', targetType: 'app', targetId: appId,
        changes: { clientId: ctx.oidc.client?.clientId ?? null, reason: 'not_entitled', promptNone: ctx.oidc.promptPending('none') },
      });
      return Check.REQUEST_PROMPT;
    }),
  );
}

/**
 * Resource indicators (RFC 8707) for OneID's one resource server, `<issuer>/api`: a
 * client_credentials request without `resource` gets it, and its access tokens are ES256 JWTs
 * (RFC 9068). Exported so that the bench's bare-library ceiling issues exactly the same tokens.
 */
export function apiResourceIndicators(api: string, accessTokenTtlSeconds: number): NonNullable<Configuration['features']>['resourceIndicators'] {
  return {
    enabled: true,
    defaultResource: async (ctx, _client, oneOf) => {
      if (oneOf) return oneOf;
      return ctx.oidc.route === 'token' && ctx.oidc.params?.grant_type === 'client_credentials' ? api : undefined;
    },
    useGrantedResource: async () => true,
    getResourceServerInfo: async (_ctx, resourceIndicator) => {
      if (resourceIndicator !== api) throw new errors.InvalidTarget();
      return { scope: 'api', audience: api, accessTokenTTL: accessTokenTtlSeconds, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
    },
  };
}

/**
 * `prompt=select_account` (OpenID Connect Core 3.1.2.1): with a signed-in person, the interaction
 * asks whether to continue as them or sign in as someone else; without one, it is the sign-in
 * page. First in the policy, so that a sign-in made there answers it too.
 */
function selectAccountPrompt(): interactionPolicy.Prompt {
  // Requestable: oidc-provider itself adds the check that raises it while the parameter asks for it.
  return new interactionPolicy.Prompt({ name: SELECT_ACCOUNT_PROMPT, requestable: true });
}

/** The scope the app sent, before oidc-provider took offline_access out of it (see keepOfflineAccess). */
function scopeAsSent(ctx: KoaContextWithOIDC): string | undefined {
  const pushed = ctx.oidc.entities.PushedAuthorizationRequest as { request?: string } | undefined;
  if (pushed?.request) {
    try {
      const scope = decodeJwt(pushed.request).scope;
      return typeof scope === 'string' ? scope : undefined;
    } catch {
      return undefined;
    }
  }
  const source = (ctx.method === 'POST' ? ctx.oidc.body : ctx.query) as Record<string, unknown> | undefined;
  return typeof source?.scope === 'string' ? source.scope : undefined;
}

/**
 * First-party apps get offline_access without asking (they skip consent). oidc-provider drops
 * offline_access from every authorization request without prompt=consent, and OneID would then
 * issue a refresh token bound to the browser session, for a scope without offline_access: a
 * relying party re-sending the scope it asked for at refresh got invalid_scope, and signing out
 * at OneID killed the token. Run where oidc-provider checks extra parameters, after its scope
 * check, this puts offline_access back for a first-party app that may refresh and asked for it;
 * the grant then covers it (loadExistingGrant) and the refresh token outlives the session.
 * Third-party apps keep the rule: their person consents to offline access explicitly.
 */
async function keepOfflineAccess(ctx: KoaContextWithOIDC, _value: unknown, client: unknown): Promise<void> {
  const c = client as { grantTypeAllowed(type: string): boolean } | undefined;
  if (!c || !oneIdClientFacts(c).firstParty || !c.grantTypeAllowed('refresh_token')) return;
  if (!['authorization', 'pushed_authorization_request'].includes(ctx.oidc.route)) return;
  const params = ctx.oidc.params as { scope?: string; response_type?: string };
  if (!params.response_type?.split(' ').includes('code')) return;
  const granted = scopeSet(params.scope);
  if (granted.has('offline_access') || !scopeSet(scopeAsSent(ctx)).has('offline_access')) return;
  params.scope = [...granted, 'offline_access'].join(' ');
}

/** Adds to a grant what the request asks for (scopes, claims, resource scopes); whether it changed. */
function coverRequest(ctx: KoaContextWithOIDC, grant: InstanceType<Provider['Grant']>): boolean {
  const g = grant as unknown as { openid?: unknown; resources?: unknown };
  const before = JSON.stringify([g.openid, g.resources]);
  const scopes = [...ctx.oidc.requestParamOIDCScopes];
  if (scopes.length) grant.addOIDCScope(scopes.join(' '));
  const claims = [...ctx.oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  const requested = [...ctx.oidc.requestParamScopes];
  for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
    const resourceScopes = requested.filter((scope) => server.scopes.has(scope));
    if (resourceScopes.length) grant.addResourceScope(indicator, resourceScopes.join(' '));
  }
  return JSON.stringify([g.openid, g.resources]) !== before;
}

export function createProvider({ config, db, log, jwks, cookieKeys, views, clients, sessions, defaultPolicy, jobs }: ProviderDeps): Provider {
  const api = apiResource(config.issuer);
  // Core 3.1.2.1 wants POST at the authorization endpoint (and RP-initiated logout allows it).
  // oidc-provider offers it only with a SameSite=None session cookie, which browsers keep only
  // when Secure, i.e. over https: so on an https issuer only. A plain-http (development) issuer
  // keeps GET and SameSite=Lax.
  const httpsIssuer = new URL(config.issuer).protocol === 'https:';

  const configuration: Configuration = {
    adapter: createAdapterFactory(db, clients),
    // OneID's own sign-in from `/` (portal/portal.routes.ts); apps are in the database.
    clients: [homeClient(config.issuer)],
    routes: { token: TOKEN_PATH, authorization: AUTHORIZATION_PATH, pushed_authorization_request: PAR_PATH },
    // Each key signs through node:crypto (keys/signing-key.ts), not WebCrypto.
    jwks: signingKeys(jwks),
    cookies: {
      keys: cookieKeys,
      names: { session: 'oneid.session', interaction: 'oneid.interaction', resume: 'oneid.resume' },
      long: { httpOnly: true, sameSite: httpsIssuer ? 'none' : 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    enableHttpPostMethods: httpsIssuer,
    // A suite app may ask the token endpoint for an ID-JAG for another app's own authorization
    // server (draft-ietf-oauth-identity-assertion-authz-grant, token-exchange.ts); the token
    // exchange grant itself joins grant_types_supported when it is registered.
    discovery: { identity_chaining_requested_token_types_supported: [ID_JAG_TYPE] },
    scopes: [...SCOPES],
    extraParams: { [KEEP_OFFLINE_ACCESS_HOOK]: keepOfflineAccess },
    // The openid scope names acr, amr and auth_time (claims.ts): every ID token says how and when
    // the person signed in.
    claims: CLAIMS,
    // OneID's sign-in levels (access/signin-policy.ts), published as acr_values_supported.
    acrValues: [...ACR_VALUES],
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    // private_key_jwt is not offered: an app cannot register a JWK Set with OneID.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    // redirect_uri is required at the authorization endpoint (OpenID Connect Core 3.1.2.1) and, when
    // it was sent there, at the token endpoint (RFC 6749 4.1.3), even for an app with one URI.
    allowOmittingSingleRegisteredRedirectUri: false,
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256', 'RS256'],
      userinfoSigningAlgValues: ['ES256', 'RS256'],
      introspectionSigningAlgValues: ['ES256', 'RS256'],
      authorizationSigningAlgValues: ['ES256', 'RS256'],
      clientAuthSigningAlgValues: ['ES256', 'RS256', 'PS256', 'EdDSA'],
      requestObjectSigningAlgValues: ['ES256', 'RS256', 'PS256', 'EdDSA'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // The claims parameter (OpenID Connect Core 5.5): an app may require a sign-in level with an
      // essential acr claim (oidc/signin-request.ts reads it), as with acr_values.
      claimsParameter: { enabled: true },
      // The version acknowledged here is the one keys/signing-key.ts implements; an oidc-provider
      // that changes the experiment refuses to start instead of signing differently.
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      // An app may introspect and revoke only the tokens issued to it (RFC 7662 §2.1 leaves the
      // choice to the server). Another app's token introspects as inactive, as an unknown one
      // would; revoking it is refused (RFC 7009 §2.1) and changes nothing.
      introspection: {
        enabled: true,
        // A token from a token exchange in a suite (token-exchange.ts) is shown to its app and to
        // the app it is for, while the suite grant and the person's access hold.
        allowedPolicy: async (ctx, client, token) => (await exchangedTokenAllowed(ctx.oidc.provider, client, token)) ?? token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.type = 'html';
          ctx.body = views.render(ctx, 'logout.njk', { form, host: ctx.host });
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.type = 'html';
          ctx.body = views.render(ctx, 'logged-out.njk', { clientName: ctx.oidc.client?.clientName });
        },
      },
      resourceIndicators: apiResourceIndicators(api, config.accessTokenTtlSeconds),
      // OpenID Connect Back-Channel Logout 1.0: apps register backchannel_logout_uri (admin API);
      // discovery says backchannel_logout_supported and backchannel_logout_session_supported (every
      // ID token carries sid, see includeSid). Offboarding sends logout tokens from the job queue
      // (offboarding/backchannel-logout.ts); oidc-provider sends them at RP-initiated logout.
      backchannelLogout: { enabled: true },
    },
    pkce: {
      // Every app must use PKCE (RFC 9700 section 2.1.1); S256 is the only method oidc-provider 9
      // accepts. A confidential legacy app may be let off it by an administrator; a public one never.
      required: (_ctx, client) => client.clientAuthMethod === 'none' || !oneIdClientFacts(client).allowNoPkce,
    },
    ttl: {
      AccessToken: config.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      ClientCredentials: config.accessTokenTtlSeconds,
      IdToken: 3600,
      Interaction: 3600,
      Session: config.sessionTtlSeconds,
      Grant: config.refreshTokenTtlSeconds,
      RefreshToken: config.refreshTokenTtlSeconds,
    },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    interactions: {
      // login, then app access (enforcement (1), see appAccessPrompt), then consent.
      policy: (() => {
        const policy = interactionPolicy.base();
        policy.get('login')!.checks.add(oneIdSessionCheck(sessions, defaultPolicy), 0);
        policy.get('login')!.checks.add(sessionsEndedCheck(db));
        policy.add(appAccessPrompt(db), policy.findIndex((p) => p.name === 'login') + 1);
        policy.add(selectAccountPrompt(), 0);
        return policy;
      })(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // First-party apps skip consent. Their grant is made here, as oidc-provider resumes the
    // authorization after sign-in, covering what the app asks for (the scopes, claims and resource
    // scopes the consent prompt would otherwise find missing), instead of in an extra round trip
    // through the consent interaction. Native apps still pass through it: oidc-provider requires
    // an interaction for them, which then finishes by itself (login/interaction.routes.ts).
    loadExistingGrant: async (ctx) => {
      const { client, account, session } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || (client && session?.grantIdFor(client.clientId));
      const existing = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      if (!client || !account || !oneIdClientFacts(client).firstParty) return existing;
      if (existing && (existing.accountId !== account.accountId || existing.clientId !== client.clientId)) return existing;
      // An existing grant is widened too (e.g. offline_access asked for after a sign-in without it),
      // so that prompt=none finds it complete rather than failing with consent_required.
      const grant = existing ?? new ctx.oidc.provider.Grant({ accountId: account.accountId, clientId: client.clientId });
      if (coverRequest(ctx, grant) || !existing) await grant.save();
      return grant;
    },
    extraClientMetadata: {
      properties: ['urn:oneid:first_party', 'urn:oneid:app_id', 'urn:oneid:allow_no_pkce', 'urn:oneid:signin_policy'],
    },
    findAccount: async (ctx, sub, token): Promise<OneIdAccount | undefined> => {
      const appId = oneIdClientFacts(ctx.oidc?.client).appId;
      let user: User | undefined;
      let granted: Entitlements = { allowed: false, assigned: false, roles: [] };
      let sessionsEndedAt: Date | null;
      if (appId) {
        // The user and their access to this app in one statement. With a token: enforcement (2),
        // see appAccessPrompt. Without (the session at the authorization endpoint): the account
        // is not refused, and the access check of (1) reads the answer from it.
        // Read with the token, when this request found one of this account and client (adapter.ts).
        const clientId = ctx.oidc?.client?.clientId;
        const prefetched = token && clientId ? takePrefetchedAccount(sub, clientId) : undefined;
        const found = prefetched && (!prefetched.value || prefetched.value.appId === appId)
          ? prefetched.value
          : await activeUserWithEntitlements(db, sub, appId);
        if (!found || (token && !found.entitlements.allowed)) return undefined;
        ({ user, entitlements: granted, sessionsEndedAt } = found);
      } else {
        const found = await findUserWithSessionsEnd(db, sub);
        if (!found || found.user.status !== 'active') return undefined;
        ({ user, sessionsEndedAt } = found);
      }
      // A code or refresh token from a sign-in older than the end of the person's sessions is
      // refused (invalid_grant), as an ended session is at the authorization endpoint.
      if (token && SIGN_IN_TOKENS.has(token.kind) && endedSince((token as { authTime?: number }).authTime, sessionsEndedAt)) return undefined;
      const userId = user.id;
      const accessClaims = async (scopes: Set<string>): Promise<AccessClaims> => ({
        ...(scopes.has('groups') ? { groups: await groupNamesOf(db, userId) } : {}),
        ...(scopes.has('roles') ? { roles: granted.roles } : {}),
      });
      return {
        accountId: user.id,
        claims: async (_use, scope) => claimsFor(user, scope, await accessClaims(scopeSet(scope))),
        accessClaims,
        appId,
        entitlements: granted,
        sessionsEndedAt,
      };
    },
    // JWT access tokens (RFC 9068, for resource servers such as <issuer>/api) carry groups and
    // roles too, when the authorization that the token comes from was granted those scopes.
    extraTokenClaims: async (ctx, token) => {
      // A token exchange decided its token's claims (act, roles, the sign-in) itself.
      if (isExchangedToken(token)) return (token as { extra?: Record<string, unknown> }).extra;
      if (!('accountId' in token) || !token.accountId || !token.resourceServer || !ctx?.oidc) return undefined;
      const source = ctx.oidc.entities.RefreshToken ?? ctx.oidc.entities.AuthorizationCode;
      // How the person signed in (RFC 9068 2.2.1): resource servers such as the admin API can
      // demand more (RFC 9470).
      const signIn = source?.acr ? { acr: source.acr, ...(source.amr ? { amr: source.amr } : {}), ...(source.authTime ? { auth_time: source.authTime } : {}) } : undefined;
      const requested = ctx.oidc.params?.scope ? ctx.oidc.requestParamScopes : (source?.scopes ?? new Set<string>());
      const scopes = scopeSet(ctx.oidc.grant?.getOIDCScopeFiltered(requested));
      if (!scopes.has('groups') && !scopes.has('roles')) return signIn;
      let account = ctx.oidc.account as OneIdAccount | undefined;
      if (account?.accountId !== token.accountId || typeof account.accessClaims !== 'function') {
        account = await configuration.findAccount!(ctx, token.accountId, token) as OneIdAccount | undefined;
      }
      return account ? { ...signIn, ...(await account.accessClaims(scopes)) } : signIn;
    },
    // The person reads what happened and what to do (login/error-page.ts); the OAuth error and
    // its description stay in the page's collapsed developer details.
    renderError: async (ctx, out, error) => {
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'error.njk', {
        ...pageForOAuthError(out.error, out.error_description, ctx.status, error?.constructor?.name),
        requestId: ctx.state.requestId,
      });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  registerTokenExchange(provider, { db, issuer: config.issuer, ttlSeconds: config.tokenExchangeTtlSeconds, jwks });
  provider.proxy = config.trustProxy;
  provider.maxIpsCount = config.proxyHops;

  // Client secrets are stored as SHA-256; compare the hash of what was presented, in constant time.
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return typeof this.clientSecret === 'string' && digestsEqual(this.clientSecret, sha256(actual));
  };

  // A DPoP proof (and any other one-time value oidc-provider checks) is accepted once across nodes.
  (provider.ReplayDetection as unknown as { unique: ReturnType<typeof rememberOnce> }).unique = rememberOnce(db);

  // The logout tokens oidc-provider sends at RP-initiated logout (to every app of the session, or
  // to the app signed out of) go through the job queue, as offboarding's and suite sign-outs' do:
  // retried while the app is down, and sent to an app on a private address too (oidc-provider's
  // own request refuses those, and tries once). Each names the app's sid.
  if (jobs) {
    type BackchannelLogout = (this: InstanceType<Provider['Client']>, sub: string, sid: string) => Promise<void>;
    const prototype = provider.Client.prototype as unknown as { backchannelLogout: BackchannelLogout };
    const sendItself = prototype.backchannelLogout;
    prototype.backchannelLogout = async function queueBackchannelLogout(sub, sid) {
      const appId = oneIdClientFacts(this).appId;
      if (!appId) return sendItself.call(this, sub, sid);
      await jobs.send(BACKCHANNEL_LOGOUT_QUEUE, { userId: sub, appId, sid } satisfies BackchannelLogoutJob);
    };
  }

  // Discovery lists sid among claims_supported; every ID token carries it (OpenID Connect Front-
  // and Back-Channel Logout), not only those of apps registered for back-channel logout.
  provider.Client.prototype.includeSid = function includeSid() {
    return true;
  };

  // Signing out of OneID at an app's request (RP-initiated logout, "yes, sign me out") ends the
  // OneID session of that person too; app.ts ends it once the provider has answered. Not when
  // the provider signs out the previous person because another just signed in here.
  // Signing out of that app only ("no"): the app's suites with suite sign-out follow, once the
  // provider has saved the Session (app.ts, suite-signout.ts).
  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const params = ctx.oidc.params as { logout?: string } | undefined;
    const { session, client } = ctx.oidc;
    if (params?.logout && session?.accountId) ctx.state.signedOutAccount = session.accountId;
    else if (session?.accountId && client) ctx.state.signedOutOfApp = { accountId: session.accountId, clientId: client.clientId, session } satisfies AppSignOut;
  });

  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    if (isDbUnavailable(err)) {
      // Answered as 503 by unavailableAsRetryable (below), so clients retry instead of failing hard.
      ctx.state.dbUnavailable = true;
      log.warn({ err: err.message, requestId: ctx.state?.requestId }, 'database unavailable');
      return;
    }
    log.error({ err, requestId: ctx.state?.requestId }, 'oidc provider server error');
  });
  for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'userinfo.error', 'end_session.error']) {
    (provider.on as (e: string, l: (...args: never[]) => void) => void)(event, (ctx: KoaContextWithOIDC, err: Error & { error_description?: string }) => {
      log.info({ event, error: err.message, description: err.error_description, requestId: ctx.state?.requestId }, 'oidc request refused');
    });
  }
  return provider;
}

/** Wraps the provider: a request that failed because the database is unreachable gets 503. */
export function unavailableAsRetryable(): Middleware {
  return async (ctx, next) => {
    await next();
    if (!ctx.state.dbUnavailable) return;
    ctx.status = 503;
    ctx.set('Retry-After', '2');
    if (ctx.response.is('json')) {
      ctx.body = { error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable; try again shortly' };
    }
  };
}
