// Prometheus metrics (prom-client), counted at the edges: one koa middleware for every request,
// one around the sign-in form, one around SCIM, oidc-provider's own events for tokens, and the
// knex pool read at scrape time. Each node counts its own requests; Prometheus scrapes every node.
// Labels are bounded: route templates (never raw paths), methods, status codes, fixed names.
import http from 'node:http';
import Koa, { type Context, type Middleware } from 'koa';
import type { Knex } from 'knex';
import type Provider from 'oidc-provider';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { safeEqual } from '../shared/ids.ts';

export interface MetricsSettings {
  port: number | undefined;
  host: string;
  token: string | undefined;
}

/** Whether the settings expose /metrics anywhere (else nothing is counted). */
export const metricsEnabled = (s: MetricsSettings): boolean => s.port !== undefined || s.token !== undefined;

/**
 * The route template @koa/router and oidc-provider's router record for the request they served;
 * `fixed`: paths answered before any router (they have no parameters); else 'unmatched'.
 */
function routeOf(ctx: Context, fixed: ReadonlySet<string> = new Set()): string {
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string') return matched;
  return fixed.has(ctx.path) ? ctx.path : 'unmatched';
}

const statusOf = (ctx: Context, err: unknown): number => {
  if (err === undefined) return ctx.status;
  const status = (err as { status?: unknown })?.status;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
};

const resultOf = (status: number): 'success' | 'failure' | 'error' => (status >= 500 ? 'error' : status >= 400 ? 'failure' : 'success');

/** The grant types oidc-provider may run for OneID; anything else a client sends is 'other'. */
const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:openid:params:grant-type:ciba']);
const grantTypeOf = (value: unknown): string => (typeof value === 'string' && GRANT_TYPES.has(value) ? value : 'other');

/** SCIM route templates (below /scim/v2) and the operation each method performs on them. */
const SCIM_ROUTE = /^\/scim\/v2\/(Users|Groups|Bulk)(\/\.search|\/:id)?\/?$/;

function scimOperation(method: string, route: string): { resource: string; operation: string } | undefined {
  const m = SCIM_ROUTE.exec(route);
  if (!m) return undefined;
  const resource = m[1]!;
  if (resource === 'Bulk') return method === 'POST' && !m[2] ? { resource, operation: 'bulk' } : undefined;
  if (m[2] === '/.search') return method === 'POST' ? { resource, operation: 'search' } : undefined;
  const operation = m[2]
    ? ({ GET: 'get', PUT: 'replace', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[method]
    : ({ GET: 'list', POST: 'create' } as Record<string, string>)[method];
  return operation ? { resource, operation } : undefined;
}

const BULK_OPERATIONS: Record<string, string> = { POST: 'create', PUT: 'replace', PATCH: 'patch', DELETE: 'delete' };
const resourceIn = (path: unknown): string | undefined => (typeof path === 'string' ? /\/(Users|Groups)(?:\/|$)/i.exec(`/${path}`)?.[1] : undefined);

export class Metrics {
  readonly registry = new Registry();
  readonly enabled: boolean;
  readonly #requests = new Counter({ name: 'oneid_http_requests_total', help: 'HTTP requests answered, by method, route template and status', labelNames: ['method', 'route', 'status'] as const, registers: [this.registry] });
  readonly #duration = new Histogram({ name: 'oneid_http_request_duration_seconds', help: 'Time to answer an HTTP request, by method, route template and status', labelNames: ['method', 'route', 'status'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  readonly #throttled = new Counter({ name: 'oneid_throttled_requests_total', help: 'Requests refused with 429 (sign-in throttle, rate limits), by route template', labelNames: ['route'] as const, registers: [this.registry] });
  readonly #signIns = new Counter({ name: 'oneid_signins_total', help: 'Sign-in attempts by method and result (success, failure, throttled, error)', labelNames: ['method', 'result'] as const, registers: [this.registry] });
  readonly #tokens = new Counter({ name: 'oneid_tokens_issued_total', help: 'Tokens issued at the token endpoint, by grant type and token (access_token, refresh_token, id_token)', labelNames: ['grant_type', 'token'] as const, registers: [this.registry] });
  readonly #tokenErrors = new Counter({ name: 'oneid_token_errors_total', help: 'Token requests refused, by grant type and OAuth error code', labelNames: ['grant_type', 'error'] as const, registers: [this.registry] });
  readonly #scim = new Counter({ name: 'oneid_scim_operations_total', help: 'SCIM operations by resource, operation and result (each operation of a Bulk request counts too)', labelNames: ['resource', 'operation', 'result', 'status'] as const, registers: [this.registry] });

  constructor(settings: MetricsSettings, db?: Knex) {
    this.enabled = metricsEnabled(settings);
    if (!this.enabled) return;
    // process_* and nodejs_* (CPU, memory, handles, GC, event-loop lag and its percentiles).
    collectDefaultMetrics({ register: this.registry });
    if (db) this.#observePool(db);
  }

  /**
   * Every request: count and latency by route template and status. Outermost middleware.
   * `fixedPaths`: paths answered before any router, counted under their own name.
   */
  http(fixedPaths: ReadonlySet<string> = new Set()): Middleware {
    if (!this.enabled) return (_ctx, next) => next();
    return async (ctx, next) => {
      const started = process.hrtime.bigint();
      let failure: unknown;
      try {
        await next();
      } catch (err) {
        failure = err ?? new Error('thrown');
        throw err;
      } finally {
        const labels = { method: ctx.method, route: routeOf(ctx, fixedPaths), status: String(statusOf(ctx, failure)) };
        this.#requests.inc(labels);
        this.#duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
        if (labels.status === '429') this.#throttled.inc({ route: labels.route });
      }
    };
  }

  /**
   * Around the sign-in routes, inside the error handler, so a thrown error (an expired or foreign
   * sign-in, an outage) is seen as such. A sign-in form POST ends in one of: a redirect on to
   * the app (success), 429 (throttled), the form again with its error (failure), or an error.
   */
  signIns(): Middleware {
    if (!this.enabled) return (_ctx, next) => next();
    const methods: Record<string, string> = {
      '/login/:flow/password': 'password', '/login/:flow/passkey': 'passkey', '/login/:flow/totp': 'totp', '/login/:flow/recovery': 'recovery_code',
    };
    return async (ctx, next) => {
      let result: string | undefined;
      try {
        await next();
        // A JSON step (a passkey) says its own result; a form step answers with a redirect on success.
        result = (ctx.state.signInResult as string | undefined)
          ?? (ctx.status >= 300 && ctx.status < 400 ? 'success' : ctx.status === 429 ? 'throttled' : ctx.status >= 500 ? 'error' : 'failure');
      } catch (err) {
        result = 'error';
        throw err;
      } finally {
        const method = ctx.method === 'POST' ? methods[routeOf(ctx)] : undefined;
        if (method && result) this.#signIns.inc({ method, result });
      }
    };
  }

  /** Around the SCIM router (which answers its own errors): each operation, Bulk's included. */
  scim(): Middleware {
    if (!this.enabled) return (_ctx, next) => next();
    return async (ctx, next) => {
      await next();
      const op = scimOperation(ctx.method, routeOf(ctx));
      if (!op) return;
      this.#countScim(op.resource, op.operation, ctx.status);
      if (op.operation === 'bulk') this.#countBulk(ctx);
    };
  }

  #countScim(resource: string, operation: string, status: number): void {
    this.#scim.inc({ resource, operation, result: resultOf(status), status: String(status) });
  }

  /** Each operation a Bulk response lists, with its resource type from its location or its request. */
  #countBulk(ctx: Context): void {
    const answered = (ctx.body as { Operations?: unknown } | undefined)?.Operations;
    if (!Array.isArray(answered)) return;
    const requested = (ctx.request as { body?: { Operations?: unknown } }).body?.Operations;
    const pathByBulkId = new Map<string, unknown>();
    if (Array.isArray(requested)) {
      for (const r of requested as { bulkId?: unknown; path?: unknown }[]) if (typeof r?.bulkId === 'string') pathByBulkId.set(r.bulkId, r.path);
    }
    for (const a of answered as { method?: unknown; bulkId?: unknown; location?: unknown; status?: unknown }[]) {
      const operation = typeof a?.method === 'string' ? BULK_OPERATIONS[a.method] : undefined;
      const status = Number(a?.status);
      if (!operation || !Number.isInteger(status)) continue;
      const resource = resourceIn(a.location) ?? (typeof a.bulkId === 'string' ? resourceIn(pathByBulkId.get(a.bulkId)) : undefined) ?? 'unknown';
      this.#countScim(resource, operation, status);
    }
  }

  /** Tokens from oidc-provider's events: what each token response carried, and refusals. */
  observeProvider(provider: Provider): void {
    if (!this.enabled) return;
    const on = provider.on.bind(provider) as (event: string, listener: (...args: never[]) => void) => void;
    on('grant.success', (ctx: Context & { oidc?: { params?: Record<string, unknown> } }) => {
      const grantType = grantTypeOf(ctx.oidc?.params?.grant_type);
      const body = ctx.body as Record<string, unknown> | undefined;
      for (const token of ['access_token', 'refresh_token', 'id_token']) {
        if (body && typeof body[token] === 'string') this.#tokens.inc({ grant_type: grantType, token });
      }
    });
    on('grant.error', (ctx: Context & { oidc?: { params?: Record<string, unknown> } }, err: { error?: unknown }) => {
      const error = typeof err?.error === 'string' && /^[a-z_]{1,40}$/.test(err.error) ? err.error : 'server_error';
      this.#tokenErrors.inc({ grant_type: grantTypeOf(ctx.oidc?.params?.grant_type), error });
    });
  }

  /**
   * knex's pool (tarn), read at scrape time. The embedded database (PGlite) runs one connection
   * through the same kind of pool, so the figures mean the same there (max is 1).
   */
  #observePool(db: Knex): void {
    const pool = () => (db.client as { pool?: TarnPool }).pool;
    new Gauge({
      name: 'oneid_db_pool_connections', help: 'Database pool: connections in use, idle, and requests waiting for one', labelNames: ['state'] as const, registers: [this.registry],
      collect() {
        const p = pool();
        this.set({ state: 'used' }, p?.numUsed() ?? 0);
        this.set({ state: 'free' }, p?.numFree() ?? 0);
        this.set({ state: 'pending_acquires' }, p?.numPendingAcquires() ?? 0);
        this.set({ state: 'pending_creates' }, p?.numPendingCreates() ?? 0);
      },
    });
    new Gauge({
      name: 'oneid_db_pool_max', help: 'Database pool: most connections this node opens', registers: [this.registry],
      collect() { this.set(pool()?.max ?? 0); },
    });
  }

  /**
   * GET /metrics. With a token, only `Authorization: Bearer <token>` gets the figures; anything
   * else is 401 (RFC 6750 section 3), and the figures are never cached.
   */
  endpoint(token: string | undefined): Middleware {
    return async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      if (token !== undefined) {
        const presented = /^Bearer +([^ ]+)$/i.exec(ctx.get('authorization'))?.[1];
        if (presented === undefined || !safeEqual(presented, token)) {
          ctx.status = 401;
          ctx.set('WWW-Authenticate', presented === undefined ? 'Bearer realm="oneid-metrics"' : 'Bearer realm="oneid-metrics", error="invalid_token"');
          ctx.type = 'application/problem+json';
          const detail = presented === undefined ? 'a bearer token is required (METRICS_TOKEN)' : 'the bearer token is not the metrics token';
          ctx.body = { type: 'about:blank', title: 'metrics.unauthenticated', status: 401, detail, code: 'metrics.unauthenticated', ...(ctx.state.requestId ? { request_id: ctx.state.requestId } : {}) };
          return;
        }
      }
      ctx.type = this.registry.contentType;
      ctx.body = await this.registry.metrics();
    };
  }

  /** The metrics port: GET /metrics only, bound to `host` (127.0.0.1 by default). */
  async listen(settings: MetricsSettings & { port: number }): Promise<http.Server> {
    const app = new Koa();
    app.silent = true;
    const serve = this.endpoint(settings.token);
    app.use(async (ctx, next) => {
      if (ctx.path !== '/metrics') {
        ctx.status = 404;
        return undefined;
      }
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
        ctx.status = 405;
        ctx.set('Allow', 'GET, HEAD');
        return undefined;
      }
      return serve(ctx, next);
    });
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(settings.port, settings.host, () => resolve());
    });
    return server;
  }
}

interface TarnPool {
  max: number;
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
}
