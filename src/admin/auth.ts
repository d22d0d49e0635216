// Bearer authentication for the admin API: RFC 9068 JWT access tokens issued by OneID itself
// for the audience <ISSUER>/api. Client credentials tokens act with their app's admin roles;
// user tokens with the admin roles that both the user and the app the token was issued to hold
// (and only while the user is active).
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { AppError } from '../shared/errors.ts';
import type { Actor } from '../audit/audit.service.ts';
import type { AdminRole } from '../directory/users.service.ts';
import { isUuid } from '../directory/users.repo.ts';

interface TokenUser { id: string; status: string; admin_roles: AdminRole[]; status_changed_at: Date | null; sessions_ended_at: Date | null }
interface TokenApp { admin_roles: AdminRole[]; secret_rotated_at: Date | null }

/**
 * Whether the token was issued before `changedAt` (in a whole second before it: iat has no finer
 * grain): a person's last status change or end of all their sessions (a password set), or the
 * app's last secret rotation. A JWT cannot be
 * recalled, so one issued before a suspension must not work again after the reactivation, nor one
 * that a leaked secret obtained after the secret was rotated.
 */
function issuedBefore(payload: JWTPayload, changedAt: Date | null): boolean {
  return changedAt !== null && (typeof payload.iat !== 'number' || payload.iat < Math.floor(changedAt.getTime() / 1000));
}

export interface Principal {
  kind: 'user' | 'client';
  id: string;
  roles: Set<AdminRole>;
  actor: Actor;
}

const stripPrivate = ({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub }: JWK): JWK => pub;

export interface AuthDeps {
  db: Knex;
  issuer: string;
  audience: string;
  loadJwks(): Promise<{ keys: JWK[] }>;
}

export function bearerAuthenticator({ db, issuer, audience, loadJwks }: AuthDeps): (ctx: Context) => Promise<Principal> {
  let keyset: ReturnType<typeof createLocalJWKSet> | undefined;
  let loadedAt = 0;
  const keys = async (force: boolean) => {
    // Reload at most every 30 s, so a key rotated in by another node is picked up.
    if (!keyset || (force && Date.now() - loadedAt > 30000)) {
      const jwks = await loadJwks();
      keyset = createLocalJWKSet({ keys: jwks.keys.map(stripPrivate) });
      loadedAt = Date.now();
    }
    return keyset;
  };

  const verify = async (token: string): Promise<JWTPayload> => {
    const options = { issuer, audience, typ: 'at+jwt', algorithms: ['ES256', 'RS256'] };
    try {
      return (await jwtVerify(token, await keys(false), options)).payload;
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_JWKS_NO_MATCHING_KEY') {
        return (await jwtVerify(token, await keys(true), options)).payload;
      }
      throw err;
    }
  };

  return async (ctx) => {
    const header = ctx.get('authorization');
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
    if (!match) {
      ctx.set('WWW-Authenticate', 'Bearer realm="oneid-admin"');
      throw new AppError('unauthenticated', 'admin.token_missing', 'a bearer access token is required');
    }
    let payload: JWTPayload;
    try {
      payload = await verify(match[1]!);
    } catch {
      ctx.set('WWW-Authenticate', 'Bearer realm="oneid-admin", error="invalid_token"');
      throw new AppError('unauthenticated', 'admin.token_invalid', 'the access token is invalid or expired');
    }
    const base = { ip: ctx.ip, userAgent: ctx.get('user-agent') || null };
    const clientId = typeof payload.client_id === 'string' ? payload.client_id : undefined;
    if (clientId && payload.sub === clientId) {
      const row = await db('apps').where({ client_id: clientId }).first<TokenApp | undefined>('admin_roles', 'secret_rotated_at');
      if (!row || issuedBefore(payload, row.secret_rotated_at)) throw new AppError('unauthenticated', 'admin.token_invalid', 'the access token is invalid or expired');
      return { kind: 'client', id: clientId, roles: new Set(row.admin_roles), actor: { type: 'admin_client', id: clientId, ...base } };
    }
    // A person's token, obtained through an app: it acts with the admin roles that both the
    // person and that app hold. Without the app's part, any app a signed-in administrator passes
    // through (one an app_admin registered, with its own redirect URI) would receive a token
    // with all of the administrator's powers; an app's roles can only be given and its redirect
    // URIs changed by a caller holding those roles (role-guard.ts).
    const [user, app] = await Promise.all([
      payload.sub && isUuid(payload.sub)
        ? db('users').where({ id: payload.sub }).first<TokenUser | undefined>('id', 'status', 'admin_roles', 'status_changed_at', 'sessions_ended_at')
        : undefined,
      clientId ? db('apps').where({ client_id: clientId }).first<TokenApp | undefined>('admin_roles', 'secret_rotated_at') : undefined,
    ]);
    if (!user || user.status !== 'active' || !app || issuedBefore(payload, user.status_changed_at)
      || issuedBefore(payload, user.sessions_ended_at) || issuedBefore(payload, app.secret_rotated_at)) {
      throw new AppError('unauthenticated', 'admin.token_invalid', 'the access token is invalid or expired');
    }
    const roles = new Set(user.admin_roles.filter((role) => app.admin_roles.includes(role)));
    return { kind: 'user', id: user.id, roles, actor: { type: 'user', id: user.id, ...base } };
  };
}
