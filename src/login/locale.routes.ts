// GET /locale?to=zh-CN&return_to=/admin/people: the language switch of OneID's pages. The choice
// is kept in a cookie for a year and beats the person's profile and the browser's language.
import Router from '@koa/router';
import { LOCALES, type Locale } from './i18n.ts';

export const LOCALE_COOKIE = 'oneid.locale';

/** A path on this origin only (never //host or a scheme), else `/`. */
const localPath = (value: unknown): string =>
  typeof value === 'string' && value.length <= 1000 && /^\/(?![/\\])[^\s\\]*$/.test(value) ? value : '/';

export function localeRouter(secureCookies: boolean): Router {
  const router = new Router();
  router.get('/locale', (ctx) => {
    const to = LOCALES.find((l) => l === ctx.query.to) as Locale | undefined;
    if (to) {
      ctx.cookies.set(LOCALE_COOKIE, to, { httpOnly: true, sameSite: 'lax', secure: secureCookies, maxAge: 365 * 24 * 3600 * 1000, overwrite: true });
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(localPath(ctx.query.return_to));
  });
  return router;
}
