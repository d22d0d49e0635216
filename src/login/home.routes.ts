// `/`: until the employee portal exists, a small page that says what OneID is and who is signed
// in. Signing in here is a real sign-in through OneID's own first-party client (HOME_CLIENT_ID,
// registered in oidc/provider.ts) that returns to `/`; the code it brings back is not redeemed:
// the page only reads the OneID session the sign-in created.
import Router from '@koa/router';
import { randomBytes, createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { ClientMetadata } from 'oidc-provider';
import type { UsersService } from '../directory/users.service.ts';
import type { Views } from './views.ts';

export const HOME_CLIENT_ID = 'oneid';

/** The client that `/` signs in with: public, first-party (no consent), back to `<issuer>/`. */
export const homeClient = (issuer: string): ClientMetadata => ({
  client_id: HOME_CLIENT_ID,
  client_name: 'OneID',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: [`${issuer}/`],
  post_logout_redirect_uris: [`${issuer}/`],
  'urn:oneid:first_party': true,
});

export function homeRouter(provider: Provider, users: UsersService, views: Views, issuer: string): Router {
  const router = new Router();
  router.get('/', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    // Back from a sign-in or sign-out: the session is all this page needs; drop the code from the address bar.
    if (ctx.querystring) {
      ctx.status = 303;
      ctx.redirect('/');
      return;
    }
    const session = await provider.Session.get(ctx as never);
    const user = session.accountId ? await users.getUser(session.accountId).catch(() => undefined) : undefined;
    const signedIn = user && user.status === 'active' ? user : undefined;
    // PKCE is required of a public client; the verifier is thrown away with the code.
    const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
    const signIn = `/auth?${new URLSearchParams({
      client_id: HOME_CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: `${issuer}/`,
      code_challenge: challenge, code_challenge_method: 'S256',
    })}`;
    const signOut = `/session/end?${new URLSearchParams({ client_id: HOME_CLIENT_ID, post_logout_redirect_uri: `${issuer}/` })}`;
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'home.njk', {
      user: signedIn && (signedIn.displayName ? `${signedIn.displayName} (${signedIn.username})` : signedIn.username),
      signIn, signOut,
    });
  });
  return router;
}
