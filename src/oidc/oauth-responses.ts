// Token endpoint answers as RFC 6749 section 5.2 words them, where oidc-provider answers otherwise.
import type { Middleware } from 'koa';

/** oidc-provider's endpoints that authenticate the client. */
const CLIENT_AUTH_PATHS = new Set(['/token', '/token/introspection', '/token/revocation']);

/**
 * - A request without any client authentication gets `invalid_client` (oidc-provider says
 *   invalid_request); a grant type the app is not registered for gets `unauthorized_client`
 *   (oidc-provider says invalid_request). Both are recognised by oidc-provider's own
 *   error_description; a test holds them to it (test/e2e/oidc-conformance.test.ts).
 * - invalid_client after an attempt with HTTP Basic is 401 with `WWW-Authenticate: Basic`;
 *   without any attempt at all it is 400, as 5.2 allows.
 * - Every answer the provider marks `Cache-Control: no-store` also carries `Pragma: no-cache`
 *   for HTTP/1.0 caches (RFC 6749 section 5.1).
 */
export function oauthResponses(realm: string): Middleware {
  return async (ctx, next) => {
    await next();
    if (/no-store/i.test(String(ctx.response.get('Cache-Control') ?? ''))) ctx.set('Pragma', 'no-cache');
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path) || ctx.status < 400) return;
    const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
    if (!body || typeof body !== 'object') return;
    if (body.error === 'invalid_request' && body.error_description === 'no client authentication mechanism provided') {
      ctx.body = { error: 'invalid_client', error_description: 'client authentication is required' };
      ctx.status = 400;
    } else if (body.error === 'invalid_request' && body.error_description === 'requested grant type is not allowed for this client') {
      ctx.body = { error: 'unauthorized_client', error_description: 'this app is not registered for the requested grant type' };
      ctx.status = 400;
      return;
    }
    // oidc-provider sets the challenge itself on the failures it answers with 401.
    if ((ctx.body as { error?: unknown }).error === 'invalid_client' && /^basic\s/i.test(ctx.get('authorization'))) {
      ctx.status = 401;
      if (!ctx.response.get('WWW-Authenticate')) ctx.set('WWW-Authenticate', `Basic realm="${realm}", error="invalid_client"`);
    }
  };
}
