// The public page of a one-time set-up link (directory/password-setup.service.ts): the person an
// administrator gave the link to chooses their password here, once, under the password policy.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { PasswordSetupLinks } from '../directory/password-setup.service.ts';
import { SETUP_LINK_PATH } from '../directory/password-setup.service.ts';
import type { PasswordPolicySource } from '../credentials/password-policy.ts';
import { PASSWORD_MAX_LENGTH } from '../credentials/password.ts';
import { AppError } from '../shared/errors.ts';
import { csrf } from '../http/csrf.ts';
import type { Views } from './views.ts';

const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const TEMPLATE = 'password-setup.njk';

export function passwordSetupRouter(links: PasswordSetupLinks, views: Views, policies: PasswordPolicySource, maxBodyBytes: number): Router {
  const router = new Router({ prefix: SETUP_LINK_PATH });
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    return next();
  });
  router.use(bodyParser({ enableTypes: ['form'], formLimit: `${maxBodyBytes}b` }));
  router.use(csrf());

  // In the person's own language when they have one (after the language switch's choice).
  const render = async (ctx: Context, status: number, vars: Record<string, unknown>, locale?: string): Promise<void> => {
    const policy = await policies.current();
    if (locale) ctx.state.uiLocales = locale;
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render(ctx, TEMPLATE, { minLength: policy.minLength, maxLength: PASSWORD_MAX_LENGTH, ...vars });
  };

  router.get('/', async (ctx) => {
    const token = str(ctx.query.token);
    const person = await links.personOf(token);
    if (!person) return await render(ctx, 404, { invalid: true });
    await render(ctx, 200, { token, username: person.username }, person.locale ?? undefined);
  });

  router.post('/', async (ctx) => {
    const body = ctx.request.body as Record<string, unknown>;
    const token = str(body.token);
    const password = str(body.password);
    const person = await links.personOf(token);
    if (!person) return await render(ctx, 404, { invalid: true });
    const locale = person.locale ?? undefined;
    const problem = password !== str(body.confirm) ? 'mismatch' : (await policies.current()).check(password);
    if (problem) return await render(ctx, 400, { token, username: person.username, problem: `console.people.link_page.${problem}` }, locale);
    try {
      const user = await links.use(token, password, { ip: ctx.ip, userAgent: ctx.get('user-agent') || null });
      await render(ctx, 200, { done: true, username: user.username }, locale);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      if (err.code === 'password_setup.invalid_link') return await render(ctx, 404, { invalid: true });
      await render(ctx, 400, { token, username: person.username, problem: 'console.people.link_page.too_short' }, locale);
    }
  });
  return router;
}
