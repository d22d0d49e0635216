// Server-rendered pages: nunjucks with auto-escaping, one place that picks the locale.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import type { Context } from 'koa';
import { pickLocale, translate, type Locale } from './i18n.ts';

/** views/ at the project root: two levels up from src/login, three from the build's dist/src/login. */
const VIEWS_DIR = ((): string => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../views'), path.resolve(here, '../../../views')];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'error.njk'))) ?? candidates[0]!;
})();

export class Views {
  readonly #env: nunjucks.Environment;

  constructor(cache: boolean) {
    this.#env = new nunjucks.Environment(new nunjucks.FileSystemLoader(VIEWS_DIR, { noCache: !cache }), {
      autoescape: true,
      throwOnUndefined: false,
    });
  }

  localeOf(ctx: Context, uiLocales?: string): Locale {
    const fromQuery = typeof ctx.query.ui_locales === 'string' ? ctx.query.ui_locales : undefined;
    // An app's ui_locales first, then the language switch's cookie, then the person's own locale
    // (set by the portal and console as state), then the browser's languages.
    const chosen = ctx.cookies.get('oneid.locale');
    return pickLocale(uiLocales ?? fromQuery ?? chosen ?? (ctx.state.uiLocales as string | undefined), ctx.get('accept-language') || undefined);
  }

  render(ctx: Context, template: string, vars: Record<string, unknown> = {}, uiLocales?: string): string {
    const locale = this.localeOf(ctx, uiLocales);
    ctx.set('Content-Language', locale);
    return this.#env.render(template, {
      ...vars,
      locale,
      csrfToken: ctx.state.csrfToken,
      requestId: vars.requestId ?? ctx.state.requestId,
      returnTo: vars.returnTo ?? encodeURIComponent(ctx.originalUrl),
      t: (key: string, params?: Record<string, unknown>) => translate(locale, key, params),
    });
  }
}
