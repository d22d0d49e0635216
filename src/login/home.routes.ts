// `/`: until the employee portal exists, a small page that says what OneID is and who is signed
// in (OneID's own session). Signing in here is OneID's sign-in flow, back to `/`; signing out
// ends this browser's session.
import Router from '@koa/router';
import type { UsersService } from '../directory/users.service.ts';
import type { Views } from './views.ts';
import type { LoginFlows } from './flow.ts';
import { csrf } from '../http/csrf.ts';

export function homeRouter(flows: LoginFlows, users: UsersService, views: Views): Router {
  const router = new Router();
  router.use(csrf());
  router.get('/', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    // Back from a sign-in: the session is all this page needs; drop the flow id from the address bar.
    if (ctx.querystring) {
      ctx.status = 303;
      ctx.redirect('/');
      return;
    }
    const session = await flows.currentSession(ctx);
    const user = session ? await users.getUser(session.userId).catch(() => undefined) : undefined;
    const signedIn = user && user.status === 'active' ? user : undefined;
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'home.njk', {
      user: signedIn && (signedIn.displayName ? `${signedIn.displayName} (${signedIn.username})` : signedIn.username),
      signIn: '/login/start?return_to=%2F',
    });
  });
  return router;
}
