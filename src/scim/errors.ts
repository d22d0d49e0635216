// The SCIM Error schema (RFC 7644 section 3.12) for every failure under /scim/v2, with the
// right status and scimType; detail always present; never a stack trace.
import type { Context, Middleware } from 'koa';
import { AppError, HTTP_STATUS } from '../shared/errors.ts';
import { isDbUnavailable, isNulInText, isUnstorableText } from '../db/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { ScimFilterError, type ScimErrorType } from './filter.ts';

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
export const SCIM_CONTENT_TYPE = 'application/scim+json';

/** A SCIM error with an explicit HTTP status (for 404, 412, 413, 501, ...); `code` names a refusal in the audit log. */
export class ScimError extends Error {
  constructor(readonly status: number, readonly detail: string, readonly scimType?: ScimErrorType, readonly code?: string) {
    super(detail);
    this.name = 'ScimError';
  }
}

export interface ScimErrorBody { schemas: string[]; status: string; scimType?: string; detail: string }

/** Maps any error to (status, body). Domain AppErrors map by kind; uniqueness for duplicates. */
export function toScimError(err: unknown, log: Logger, requestId: string | undefined): { status: number; body: ScimErrorBody } {
  let status = 500;
  let scimType: string | undefined;
  let detail = 'internal error';
  if (isDbUnavailable(err)) {
    status = 503;
    detail = 'the service is temporarily unavailable; try again shortly';
  } else if (isUnstorableText(err)) {
    // A safety net: request text is checked where it enters (text-input.ts), but a value that
    // still carries a NUL or a lone surrogate to PostgreSQL is refused there, before anything is
    // stored. The database's message (with the SQL and the value) is not logged or echoed.
    status = 400;
    scimType = 'invalidValue';
    detail = isNulInText(err)
      ? 'text values must not contain the NUL character (U+0000)'
      : 'text values must be well-formed Unicode, without an unpaired UTF-16 surrogate';
  } else if (err instanceof ScimError) {
    status = err.status;
    scimType = err.scimType;
    detail = err.detail;
  } else if (err instanceof ScimFilterError) {
    status = err.status;
    scimType = err.scimType;
    detail = err.detail;
  } else if (err instanceof AppError) {
    status = HTTP_STATUS[err.kind];
    detail = err.message;
    scimType = (err.details?.scimType as string | undefined)
      ?? (err.kind === 'already_exists' ? 'uniqueness' : err.kind === 'invalid_argument' ? 'invalidValue' : undefined);
  } else if (typeof (err as { status?: unknown }).status === 'number' && (err as { status: number }).status >= 400 && (err as { status: number }).status < 500) {
    status = (err as { status: number }).status;
    detail = status === 413 ? 'request body too large' : status === 415 ? 'unsupported content type' : 'the request body is not valid JSON';
    if (status === 400) scimType = 'invalidSyntax';
  }
  if (status === 503) log.warn({ err: (err as Error).message, requestId }, 'database unavailable');
  else if (status >= 500) log.error({ err, requestId }, 'unhandled SCIM error');
  return { status, body: { schemas: [SCIM_ERROR_SCHEMA], status: String(status), ...(scimType ? { scimType } : {}), detail } };
}

export function sendScimError(ctx: Context, err: unknown, log: Logger): void {
  const { status, body } = toScimError(err, log, ctx.state.requestId as string | undefined);
  ctx.status = status;
  ctx.type = SCIM_CONTENT_TYPE;
  ctx.body = body;
}

export function scimErrorHandler(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      sendScimError(ctx, err, log);
    }
  };
}
