// Turns errors thrown by OneID's own routes into responses: JSON problem bodies for APIs,
// the error page for browsers. Never a stack trace; 500s are logged with the request id.
import type { Context, Middleware } from 'koa';
import { AppError, HTTP_STATUS } from '../shared/errors.ts';
import { isDbUnavailable, isUnstorableText } from '../db/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Views } from '../login/views.ts';
import { pageForOAuthError, pageForStatus, type ErrorPage } from '../login/error-page.ts';

export function errorHandler(log: Logger, views: Views): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      respondWithError(ctx, err, log, views);
    }
  };
}

export function respondWithError(ctx: Context, err: unknown, log: Logger, views: Views): void {
  let status = 500;
  let code = 'internal';
  let message = 'internal error';
  let page: ErrorPage | undefined;
  if (isDbUnavailable(err)) {
    status = 503;
    code = 'unavailable';
    message = 'the service is temporarily unavailable; try again shortly';
    ctx.set('Retry-After', '2');
  } else if (isUnstorableText(err)) {
    // Input PostgreSQL refused before storing anything (a NUL character, a lone surrogate in JSON).
    status = 400;
    code = 'request.invalid_text';
    message = 'text values must be well-formed Unicode without NUL characters';
  } else if (err instanceof AppError) {
    status = HTTP_STATUS[err.kind];
    code = err.code;
    message = err.message;
  } else if (err instanceof Error && 'error_description' in err && typeof (err as { status?: number }).status === 'number') {
    // oidc-provider errors raised in our interaction routes (expired or foreign interaction).
    status = (err as unknown as { status: number }).status;
    code = err.message;
    message = String((err as { error_description?: unknown }).error_description ?? err.message);
    page = pageForOAuthError(code, message, status, err.constructor.name);
  } else if (typeof (err as { status?: number }).status === 'number' && (err as { status: number }).status >= 400 && (err as { status: number }).status < 500) {
    // Client errors from koa and the body parsers (malformed JSON, 413, 415...). Their own
    // messages may echo the body, so answer with a fixed text.
    status = (err as { status: number }).status;
    code = status === 413 ? 'request.too_large' : status === 415 ? 'request.content_type' : 'request.invalid';
    message = status === 413 ? 'request body too large' : status === 415 ? 'unsupported content type' : 'body: malformed request body';
  }
  if (status === 503) log.warn({ err: (err as Error).message, requestId: ctx.state.requestId }, 'database unavailable');
  else if (status >= 500) log.error({ err, requestId: ctx.state.requestId }, 'unhandled error');
  ctx.status = status;
  if (wantsPage(ctx)) {
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'error.njk', { ...(page ?? pageForStatus(status, code, message)) });
  } else {
    ctx.type = 'application/problem+json';
    const field = err instanceof AppError ? err.details?.field : undefined;
    ctx.body = { type: 'about:blank', title: code, status, detail: message, code, ...(field ? { field } : {}), request_id: ctx.state.requestId };
  }
}

/** A browser asking for a page, outside the JSON APIs (which always answer JSON problems). */
export const wantsPage = (ctx: Context): boolean =>
  ctx.accepts('html', 'json') === 'html' && !ctx.path.startsWith('/admin/api') && !ctx.path.startsWith('/scim/');

/**
 * Answers what no route served (koa would send a bare "Not Found"): the error page for a
 * browser, a JSON problem for everything else.
 */
export function notFound(views: Views): Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.status !== 404 || ctx.body != null) return;
    ctx.status = 404;
    if (wantsPage(ctx)) {
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'error.njk', { ...pageForStatus(404, 'not_found') });
    } else {
      ctx.type = 'application/problem+json';
      ctx.body = { type: 'about:blank', title: 'not_found', status: 404, detail: 'nothing is served at this path', code: 'not_found', request_id: ctx.state.requestId };
    }
  };
}
