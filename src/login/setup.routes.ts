import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { User } from '../directory/users.repo.ts';
import type { SetupService } from '../directory/setup.service.ts';
import { AppError } from '../shared/errors.ts';
import type { Views } from './views.ts';
import type { MessageKey } from './i18n.ts';
import { csrf } from '../http/csrf.ts';
import { PasswordPolicy, type PasswordPolicySource } from '../credentials/password-policy.ts';
import { PASSWORD_MIN_LENGTH } from '../credentials/password.ts';

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** The form's problem in the person's language (the directory's own text is English and names fields). */
function setupProblem(err: AppError): MessageKey {
  if (err.kind === 'already_exists') return 'setup.error.taken';
  const field = String(err.details?.field ?? '').split('.')[0];
  if (field === 'username' || field === 'email' || field === 'password' || field === 'name') return `setup.error.${field}`;
  return 'setup.error.generic';
}

/**
 * `policies`: what the first administrator may choose as a password (the minimum length in force,
 * common passwords). `signIn`: signs the new administrator in (they just proved their password) and
 * says where to go next, the console; without it the page says the account exists.
 */
export function setupRouter(
  setup: SetupService, views: Views, maxBodyBytes: number, policies: PasswordPolicySource = new PasswordPolicy(PASSWORD_MIN_LENGTH),
  signIn?: (ctx: Context, user: User) => Promise<string>,
): Router {
  const router = new Router({ prefix: '/setup' });
  router.use(bodyParser({ enableTypes: ['form'], formLimit: `${maxBodyBytes}b` }));
  router.use(async (ctx, next) => { ctx.set('Cache-Control', 'no-store'); return next(); });
  router.use(csrf());

  router.get('/', async (ctx) => {
    const policy = await policies.current();
    const token = str(ctx.query.token);
    const valid = await setup.isValid(token);
    ctx.status = valid ? 200 : 404;
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'setup.njk', { token, invalid: !valid, values: {}, minLength: policy.minLength });
  });

  router.post('/', async (ctx) => {
    const body = ctx.request.body as Record<string, unknown>;
    const token = str(body.token);
    const values = { username: str(body.username), email: str(body.email), name: str(body.name) };
    ctx.type = 'html';
    const password = str(body.password);
    const policy = await policies.current();
    const problem = policy.check(password);
    if (problem) {
      const invalid = !(await setup.isValid(token));
      ctx.status = invalid ? 404 : 400;
      ctx.body = views.render(ctx, 'setup.njk', {
        token, invalid, values, minLength: policy.minLength, messageKey: problem === 'too_common' ? 'setup.error.password_common' : 'setup.error.password',
      });
      return;
    }
    try {
      const user = await setup.complete(token, { ...values, password });
      if (signIn) {
        ctx.status = 303;
        ctx.redirect(await signIn(ctx, user));
        return;
      }
      ctx.body = views.render(ctx, 'setup.njk', { done: true, username: user.username });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      const invalid = err.code === 'setup.invalid_token';
      ctx.status = invalid ? 404 : err.kind === 'already_exists' ? 409 : 400;
      ctx.body = views.render(ctx, 'setup.njk', { token, invalid, values, minLength: policy.minLength, messageKey: setupProblem(err) });
    }
  });
  return router;
}
