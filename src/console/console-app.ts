// The admin console is a first-party OIDC app of OneID itself: an admin signs in to it like to any
// other app (the console's sign-in policy, acr, audit), and a person acts in it with the admin
// roles both they and the console app hold, exactly as a token issued to it would (admin/auth.ts).
// Its row is kept in step with ISSUER at every start: the redirect URI follows the issuer.
import type { Knex } from 'knex';
import { findAppByClientId, insertApp, updateAppById, type App, type OidcClientSettings } from '../apps/apps.repo.ts';
import { ADMIN_ROLES } from '../directory/users.service.ts';
import { newId } from '../shared/ids.ts';
import { recordAudit, SYSTEM_ACTOR } from '../audit/audit.service.ts';

export const CONSOLE_CLIENT_ID = 'oneid-console';
export const CONSOLE_PREFIX = '/admin';
export const CONSOLE_CALLBACK_PATH = '/admin/callback';

const settingsFor = (issuer: string): OidcClientSettings => ({
  redirect_uris: [`${issuer}${CONSOLE_CALLBACK_PATH}`],
  post_logout_redirect_uris: [`${issuer}/`],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
  application_type: 'web',
  id_token_signed_response_alg: 'ES256',
});

/**
 * Creates the console app when it is missing (a new installation, or one from before the
 * console) and points its redirect URI at this issuer. What an admin chose for it (its sign-in
 * policy, name) is kept; its admin roles are what the console may do at most.
 */
export async function ensureConsoleApp(db: Knex, issuer: string): Promise<App> {
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(hashtext(?))', ['oneid.console_app']);
    const existing = await findAppByClientId(trx, CONSOLE_CLIENT_ID);
    const oidc = settingsFor(issuer);
    if (!existing) {
      const app = await insertApp(trx, {
        id: newId(), name: 'OneID console', description: 'Manage people, apps and permissions', logo_url: null, protocol: 'oidc',
        first_party: true, client_id: CONSOLE_CLIENT_ID, client_secret_hash: null, allow_no_pkce: false, oidc,
        access: 'everyone', admin_roles: [...ADMIN_ROLES], signin_policy: null,
      });
      await recordAudit(trx, SYSTEM_ACTOR, { action: 'app.created', targetType: 'app', targetId: app.id, changes: { name: app.name, clientId: CONSOLE_CLIENT_ID, firstParty: true } });
      return app;
    }
    if (existing.oidc.redirect_uris[0] === oidc.redirect_uris[0] && existing.oidc.post_logout_redirect_uris[0] === oidc.post_logout_redirect_uris[0]) return existing;
    const updated = await updateAppById(trx, existing.id, { oidc });
    await recordAudit(trx, SYSTEM_ACTOR, {
      action: 'app.updated', targetType: 'app', targetId: existing.id,
      changes: { redirectUris: oidc.redirect_uris }, before: { redirectUris: existing.oidc.redirect_uris },
    });
    return updated ?? existing;
  });
}
