// Double-submit CSRF protection for OneID's own forms: a random token in a signed,
// HttpOnly, SameSite=Lax cookie must match the hidden _csrf field of every POST.
import { randomBytes } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { AppError } from '../shared/errors.ts';
import { safeEqual } from '../shared/ids.ts';

const COOKIE = 'oneid.csrf';

export function csrfToken(ctx: Context): string {
  let token = ctx.cookies.get(COOKIE, { signed: true });
  if (!token || !/^[A-Za-z0-9_-]{43}$/.test(token)) {
    token = randomBytes(32).toString('base64url');
    ctx.cookies.set(COOKIE, token, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, overwrite: true });
  }
  return token;
}

/**
 * Issues a token on safe methods; on POST requires body._csrf (or the x-csrf-token header) to
 * equal the cookie's token. `onRefused` hears each refusal first (the sign-in and account pages
 * write it to the audit log).
 */
export function csrf(onRefused?: (ctx: Context) => Promise<void>): Middleware {
  return async (ctx, next) => {
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      ctx.state.csrfToken = csrfToken(ctx);
      return next();
    }
    const cookie = ctx.cookies.get(COOKIE, { signed: true });
    // Forms send the hidden _csrf field; the pages' scripts (passkeys) send the x-csrf-token header.
    const sent = ctx.get('x-csrf-token') || (ctx.request.body as Record<string, unknown> | undefined)?._csrf;
    if (!cookie || typeof sent !== 'string' || !safeEqual(cookie, sent)) {
      await onRefused?.(ctx);
      throw new AppError('permission_denied', 'csrf.invalid', 'csrf.invalid');
    }
    ctx.state.csrfToken = cookie;
    return next();
  };
}
