// Bounds on what an anonymous browser can make OneID store at the authorization endpoint: each
// authorization request may become an interaction kept for an hour, holding every parameter.
// Parameters are capped in size, and authorization requests are counted per client IP in
// PostgreSQL (rate-limiter-flexible, shared by every node).
import type { Knex } from 'knex';
import type { Context, Middleware } from 'koa';
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Views } from '../login/views.ts';
import type { MessageKey } from '../login/i18n.ts';
import { rateLimitKey } from '../shared/client-address.ts';

/** Longest value of one parameter (characters, decoded): a long id_token_hint or claims request fits. */
export const AUTHORIZE_PARAM_MAX = 4096;
/** All parameters together (names and values, decoded). Request objects are not supported. */
export const AUTHORIZE_PARAMS_MAX = 8192;
/** A POSTed authorization request's body (form-encoded bytes). */
export const AUTHORIZE_BODY_MAX = 12 * 1024;

export interface AuthorizeLimits {
  /** Authorization requests allowed per client IP per window. */
  perIp: number;
  windowSeconds: number;
}

/**
 * rate-limiter-flexible's store speaks node-postgres ({text, values} with $n placeholders);
 * this routes it through our knex instance, so it works the same on PostgreSQL and PGlite.
 */
export function knexRateLimitStore(db: Knex) {
  return {
    query: async ({ text, values = [] }: { text: string; values?: unknown[] }) => {
      const bindings: unknown[] = [];
      const sql = text.replace(/\$(\d+)/g, (_m, n: string) => {
        bindings.push(values[Number(n) - 1]);
        return '?';
      });
      const result = (await db.raw(sql, bindings as Knex.RawBinding[])) as { rows?: unknown[] };
      const rows = result.rows ?? [];
      return { rows, rowCount: rows.length };
    },
  };
}

/**
 * Whether a request path reaches oidc-provider's route `route`: its router matches ASCII letters
 * in any case and allows one trailing slash, so an exact comparison would let /AUTH or /auth/
 * past these limits. A regular expression without the u flag folds case as that router does
 * (no non-ASCII letter matches an ASCII one).
 */
function routesTo(route: string): (path: string) => boolean {
  const pattern = new RegExp(`^${route.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/?$`, 'i');
  return (path) => pattern.test(path);
}

/** The size problem of a query's parameters, if any. */
function paramsProblem(query: Record<string, string | string[] | undefined>): string | undefined {
  let total = 0;
  for (const [name, value] of Object.entries(query)) {
    for (const one of Array.isArray(value) ? value : [value ?? '']) {
      if (one.length > AUTHORIZE_PARAM_MAX) return `the parameter ${name.slice(0, 40)} is longer than ${AUTHORIZE_PARAM_MAX} characters`;
      total += name.length + one.length;
    }
  }
  return total > AUTHORIZE_PARAMS_MAX ? `the parameters are longer than ${AUTHORIZE_PARAMS_MAX} characters together` : undefined;
}

/**
 * In front of oidc-provider's authorization endpoint (`path`, GET, HEAD and POST; not its resume).
 * Oversized parameters get invalid_request on the error page (400), never a redirect: the
 * redirect_uri has not been checked yet. Past the per-IP limit: 429 with Retry-After.
 * A pushed authorization request (`parPath`, RFC 9126; a public app may push one without a
 * secret) becomes the parameters of a later authorization request, so its body has the same
 * bound and, unless its app authenticates with HTTP Basic, it counts against the same per-IP
 * limit; both answered as the OAuth JSON error.
 */
export function authorizationLimits(db: Knex, views: Views, limits: AuthorizeLimits, path: string, parPath: string, alsoCounted: readonly string[] = []): Middleware {
  const routed = routesTo(path);
  // Other GETs that store a sign-in as the authorization endpoint does (OneID's /login/start).
  const isAuthorization = (p: string): boolean => routed(p) || alsoCounted.includes(p);
  const isPar = routesTo(parPath);
  const limiter = new RateLimiterPostgres({
    storeClient: knexRateLimitStore(db), storeType: 'pool', tableName: 'rate_limits', tableCreated: true,
    keyPrefix: 'authorize_ip', points: limits.perIp, duration: limits.windowSeconds,
    // Also removes the sign-in throttle's expired rows (same table), every few minutes.
    clearExpiredByTimeout: true,
  });
  // The shared error page: what happened, what to do next, and the OAuth error for the app's developer.
  const page = (ctx: Context, status: number, error: string, what: MessageKey, next: MessageKey, description: string) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = views.render(ctx, 'error.njk', { what, next, error, description, requestId: ctx.state.requestId });
  };
  const bodyProblem = (ctx: Context): string | undefined => {
    const length = ctx.request.length;
    if (length === undefined) return 'a POSTed authorization request needs a Content-Length';
    return length > AUTHORIZE_BODY_MAX ? `the request body is larger than ${AUTHORIZE_BODY_MAX} bytes` : undefined;
  };
  const json = (ctx: Context, status: number, description: string) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.status = status;
    ctx.body = { error: 'invalid_request', error_description: description };
  };
  /** Counts one authorization request of the client's address; the seconds to wait past the limit. */
  const overLimit = async (ctx: Context): Promise<number | undefined> => {
    try {
      await limiter.consume(rateLimitKey(ctx.ip));
      return undefined;
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      const seconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      ctx.set('Retry-After', String(seconds));
      return seconds;
    }
  };
  return async (ctx, next) => {
    if (isPar(ctx.path) && ctx.method === 'POST') {
      // A pushed request is stored like an interaction, so it counts against the same per-IP
      // limit as the authorization endpoint (RFC 9126 2.3 allows 429 here).
      const problem = bodyProblem(ctx);
      if (problem) {
        ctx.set('Connection', 'close');
        return json(ctx, 400, problem);
      }
      // A confidential app's back end pushes for all of its users from a few addresses, and only
      // the holder of its secret can make it store anything (a wrong Basic header is refused by
      // oidc-provider before anything is stored, also for a public app): not counted.
      if (/^basic\s/i.test(ctx.get('authorization'))) return next();
      if (await overLimit(ctx) !== undefined) return json(ctx, 429, 'too many authorization requests from this address');
      return next();
    }
    // HEAD as well: oidc-provider serves it as GET, storing an interaction just the same.
    if (!isAuthorization(ctx.path) || !['GET', 'HEAD', 'POST'].includes(ctx.method)) return next();
    let problem = paramsProblem(ctx.query);
    if (!problem && ctx.method === 'POST') problem = bodyProblem(ctx);
    if (problem) {
      // Nothing of the body is read; the connection closes after the answer.
      if (ctx.method === 'POST') ctx.set('Connection', 'close');
      return page(ctx, 400, 'invalid_request', 'authorize.too_large', 'error.tell_app_admin', problem);
    }
    if (await overLimit(ctx) !== undefined) {
      return page(ctx, 429, 'temporarily_unavailable', 'authorize.too_many', 'authorize.too_many_next', 'too many authorization requests from this address');
    }
    return next();
  };
}
