// Request id, one log line per request, security headers, early 413 for oversized bodies.
import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Logger } from '../shared/logger.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/** oidc-provider reads at most 56 KiB of a body and refuses more as unparsable (400). */
const PROVIDER_BODY_LIMIT = 56 * 1024;

/** The body limit of a path: OneID's own routes take MAX_BODY_BYTES, oidc-provider's endpoints no more than it reads. */
function bodyLimit(path: string, maxBodyBytes: number): number {
  const ours = path.startsWith('/admin/') || path.startsWith('/interaction/') || path === '/setup';
  return ours ? maxBodyBytes : Math.min(maxBodyBytes, PROVIDER_BODY_LIMIT);
}

/**
 * For a request refused before its body was read: the connection closes after the answer, so
 * the rest of the body is not received (Node would otherwise read and discard it to keep the
 * connection). With `check`, runs it and does so only if it throws.
 */
export function refuseUnread(ctx: Context): void;
export function refuseUnread<T>(ctx: Context, check: () => Promise<T>): Promise<T>;
export function refuseUnread<T>(ctx: Context, check?: () => Promise<T>): Promise<T> | void {
  const close = () => {
    if (ctx.req.readableEnded) return;
    if (ctx.get('content-length') || ctx.get('transfer-encoding')) ctx.set('Connection', 'close');
  };
  if (!check) return close();
  return check().catch((err: unknown) => {
    close();
    throw err;
  });
}

export function requestContext(log: Logger, maxBodyBytes: number): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    // OneID's pages load nothing from elsewhere; their scripts are OneID's own files (/assets: the
    // passkey ceremonies, which call back to this origin only); their one style sheet is inline.
    // oidc-provider adds the hash of the one script it writes (the form_post page) to script-src.
    // No form-action: browsers apply it to the redirects after a sign-in form, which end at the app.
    ctx.set('Content-Security-Policy', CSP);
    const started = process.hrtime.bigint();
    try {
      const length = Number(ctx.get('content-length') || 0);
      // SCIM (a larger limit, for /Bulk) and the admin API check the size themselves, after the
      // caller is authenticated, and answer in their own error formats.
      const limit = bodyLimit(ctx.path, maxBodyBytes);
      if (length > limit && !ctx.path.startsWith('/scim/') && !ctx.path.startsWith('/admin/api/')) {
        ctx.status = 413;
        const detail = `request body larger than ${limit} bytes`;
        ctx.body = ctx.path.startsWith('/admin/')
          ? { type: 'about:blank', title: 'request.too_large', status: 413, detail, code: 'request.too_large', request_id: requestId }
          : { error: 'invalid_request', error_description: detail };
        if (ctx.path.startsWith('/admin/')) ctx.type = 'application/problem+json';
        return;
      }
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // The path only: query strings can carry codes, tokens or setup links.
      log.info({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10, ip: ctx.ip }, 'request');
    }
  };
}
