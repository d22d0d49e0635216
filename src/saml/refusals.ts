// What both SAML endpoints do with a message refused before OneID knows whom to answer (a bad
// signature, an unknown issuer, a replay...): no caching, a log line and an audit record with
// the refusal's code, then the error page (http/errors.ts renders the AppError).
import type { Middleware } from 'koa';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { recordAuditNow } from '../audit/audit.service.ts';

export function samlRefusals(db: Knex, log: Logger, logMessage: string): Middleware {
  return async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    try {
      await next();
    } catch (err) {
      if (err instanceof AppError && err.code.startsWith('saml.')) {
        log.info({ code: err.code, requestId: ctx.state.requestId }, logMessage);
        await recordAuditNow(db, { type: 'anonymous', id: null, ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, {
          action: 'saml.request_refused', targetType: 'path', targetId: ctx.path.slice(0, 200), changes: { code: err.code },
        });
      }
      throw err;
    }
  };
}
