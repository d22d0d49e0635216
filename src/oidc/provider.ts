// oidc-provider configured for OneID: PostgreSQL adapter, keys from the database,
// accounts from the directory, JWT access tokens for resource servers (RFC 9068).
import Provider, { errors, type Configuration, type KoaContextWithOIDC, type Account } from 'oidc-provider';
import type { Knex } from 'knex';
import type { JWK } from 'jose';
import type { Config } from '../config.ts';
import type { Logger } from '../shared/logger.ts';
import { safeEqual, sha256 } from '../shared/ids.ts';
import { findUserById } from '../directory/users.repo.ts';
import { createAdapterFactory } from './adapter.ts';
import { claimsFor, SCOPES, CLAIMS } from './claims.ts';
import type { Views } from '../login/views.ts';

export interface ProviderDeps {
  config: Config;
  db: Knex;
  log: Logger;
  jwks: { keys: JWK[] };
  cookieKeys: string[];
  views: Views;
}

/** The audience of OneID's own APIs; client_credentials tokens default to it. */
export const apiResource = (issuer: string): string => `${issuer}/api`;

export function createProvider({ config, db, log, jwks, cookieKeys, views }: ProviderDeps): Provider {
  const api = apiResource(config.issuer);

  const configuration: Configuration = {
    adapter: createAdapterFactory(db),
    clients: [],
    jwks: jwks as Configuration['jwks'],
    cookies: {
      keys: cookieKeys,
      names: { session: 'oneid.session', interaction: 'oneid.interaction', resume: 'oneid.resume' },
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    scopes: [...SCOPES],
    claims: CLAIMS,
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
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
      introspection: { enabled: true },
      revocation: { enabled: true },
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
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, _client, oneOf) => {
          if (oneOf) return oneOf;
          return ctx.oidc.route === 'token' && ctx.oidc.params?.grant_type === 'client_credentials' ? api : undefined;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (resourceIndicator !== api) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: api,
            accessTokenTTL: config.accessTokenTtlSeconds,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    pkce: {
      // Public clients must use PKCE; S256 is the only method oidc-provider 9 accepts.
      required: (_ctx, client) => client.clientAuthMethod === 'none',
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
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    extraClientMetadata: {
      properties: ['urn:oneid:first_party', 'urn:oneid:app_id'],
    },
    findAccount: async (_ctx, sub): Promise<Account | undefined> => {
      const user = await findUserById(db, sub);
      if (!user || user.status !== 'active') return undefined;
      return { accountId: user.id, claims: async (_use, scope) => claimsFor(user, scope) };
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'error.njk', {
        error: out.error,
        description: out.error_description,
        requestId: ctx.state.requestId,
      });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;

  // Client secrets are stored as SHA-256; compare the hash of what was presented, in constant time.
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return typeof this.clientSecret === 'string' && safeEqual(this.clientSecret, sha256(actual));
  };

  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    log.error({ err, requestId: ctx.state?.requestId }, 'oidc provider server error');
  });
  for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'userinfo.error', 'end_session.error']) {
    (provider.on as (e: string, l: (...args: never[]) => void) => void)(event, (ctx: KoaContextWithOIDC, err: Error & { error_description?: string }) => {
      log.info({ event, error: err.message, description: err.error_description, requestId: ctx.state?.requestId }, 'oidc request refused');
    });
  }
  return provider;
}
