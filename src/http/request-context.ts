// Request id, one log line per request, security headers, early 413 for oversized bodies.
import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from '../shared/logger.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

const CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

export function requestContext(log: Logger, maxBodyBytes: number): Middleware {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    // OneID's pages load nothing from anywhere and run no script; their one style sheet is inline.
    // oidc-provider adds the hash of the one script it writes (the form_post page) to script-src.
    // No form-action: browsers apply it to the redirects after a sign-in form, which end at the app.
    ctx.set('Content-Security-Policy', CSP);
    const started = process.hrtime.bigint();
    try {
      const length = Number(ctx.get('content-length') || 0);
      // SCIM enforces its own (larger, for /Bulk) limit and answers in its own error format.
      if (length > maxBodyBytes && !ctx.path.startsWith('/scim/')) {
        ctx.status = 413;
        ctx.body = { error: 'invalid_request', error_description: `request body larger than ${maxBodyBytes} bytes` };
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
