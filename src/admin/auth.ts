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
import { DPOP_ALGS, DpopError, verifyDpopProof } from './dpop.ts';
import { ACR, policyOfAcr, stronger, type SignInPolicy } from '../access/signin-policy.ts';

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
  /**
   * A person's token: how strongly they signed in (its acr claim, RFC 9470), undefined when the
   * token names no level of OneID's. An app's token has none and is never asked for one.
   */
  signInLevel?: SignInPolicy;
  /** How the token was presented, so that a step-up challenge uses the same scheme. */
  scheme?: 'Bearer' | 'DPoP';
}

const challengeParams = (error: string, description: string): string =>
  `error="${error}", error_description="${description.replace(/["\\]/g, '')}"`;

/**
 * RFC 9470 step-up: refuses (401 insufficient_user_authentication, with the acr the caller must
 * come back with) a person's token whose sign-in was weaker than `level`. Apps' own tokens
 * (client_credentials) are not a person signing in and pass. Roles are checked before this, so
 * a caller who may not do the operation at all is told 403, not sent to sign in again for nothing.
 */
export function requireSignInLevel(ctx: Context, principal: Principal, level: SignInPolicy): void {
  const held = principal.signInLevel;
  if (principal.kind !== 'user' || (held !== undefined && stronger(held, level) === held)) return;
  const description = level === 'password'
    ? 'this operation needs a signed-in person'
    : `this operation needs a sign-in with ${level === 'mfa' ? 'two factors' : 'a passkey'}: sign in again (acr_values=${ACR[level]}) and use the new token`;
  const params = `${challengeParams('insufficient_user_authentication', description)}, acr_values="${ACR[level]}"`;
  ctx.set('WWW-Authenticate', principal.scheme === 'DPoP'
    ? `DPoP realm="oneid-admin", ${params}, algs="${DPOP_ALGS.join(' ')}"`
    : `Bearer realm="oneid-admin", ${params}`);
  throw new AppError('unauthenticated', 'admin.insufficient_user_authentication', description);
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

  const challenges = (error?: string, description?: string): string[] => {
    const extra = error ? `, error="${error}"${description ? `, error_description="${description.replace(/["\\]/g, '')}"` : ''}` : '';
    return [`Bearer realm="oneid-admin"${extra}`, `DPoP realm="oneid-admin"${extra}, algs="${DPOP_ALGS.join(' ')}"`];
  };

  return async (ctx) => {
    const header = ctx.get('authorization');
    const match = /^(Bearer|DPoP) ([A-Za-z0-9._~+/-]+=*)$/i.exec(header);
    if (!match) {
      ctx.set('WWW-Authenticate', challenges());
      throw new AppError('unauthenticated', 'admin.token_missing', 'a bearer access token is required');
    }
    const scheme = match[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
    const token = match[2]!;
    let payload: JWTPayload;
    try {
      payload = await verify(token);
    } catch {
      ctx.set('WWW-Authenticate', challenges('invalid_token'));
      throw new AppError('unauthenticated', 'admin.token_invalid', 'the access token is invalid or expired');
    }
    // Sender-constrained tokens (RFC 9449, RFC 8705): one bound to a DPoP key needs the DPoP scheme
    // and a proof by that key; a binding OneID cannot check (a certificate: OneID does not issue
    // mTLS-bound tokens) is refused; an unbound token is not accepted as DPoP.
    const refuse = (error: 'invalid_token' | 'invalid_dpop_proof', message: string): never => {
      ctx.set('WWW-Authenticate', scheme === 'DPoP' || payload.cnf ? challenges(error, message) : challenges(error));
      throw new AppError('unauthenticated', error === 'invalid_token' ? 'admin.token_invalid' : 'admin.dpop_proof_invalid', message);
    };
    const cnf = payload.cnf as Record<string, unknown> | undefined;
    if (cnf !== undefined) {
      const jkt = typeof cnf === 'object' && cnf !== null && Object.keys(cnf).length === 1 ? cnf.jkt : undefined;
      if (typeof jkt !== 'string') refuse('invalid_token', 'the access token is bound to a key this API cannot check');
      if (scheme !== 'DPoP') refuse('invalid_token', 'the access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof');
      try {
        await verifyDpopProof(db, { proof: ctx.get('dpop') || undefined, method: ctx.method, url: `${issuer}${ctx.path}`, accessToken: token, jkt: jkt as string });
      } catch (err) {
        if (err instanceof DpopError) refuse(err.error, err.message);
        throw err;
      }
    } else if (scheme === 'DPoP') {
      refuse('invalid_token', 'the access token is not DPoP-bound: send it as Authorization: Bearer');
    }
    const base = { ip: ctx.ip, userAgent: ctx.get('user-agent') || null };
    const clientId = typeof payload.client_id === 'string' ? payload.client_id : undefined;
    if (clientId && payload.sub === clientId) {
      const row = await db('apps').where({ client_id: clientId }).first<TokenApp | undefined>('admin_roles', 'secret_rotated_at');
      if (!row || issuedBefore(payload, row.secret_rotated_at)) throw new AppError('unauthenticated', 'admin.token_invalid', 'the access token is invalid or expired');
      return { kind: 'client', id: clientId, roles: new Set(row.admin_roles), actor: { type: 'admin_client', id: clientId, clientId, ...base }, scheme };
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
    // The audit log names the app the person's token was issued to (clientId was checked above).
    return {
      kind: 'user', id: user.id, roles, actor: { type: 'user', id: user.id, clientId: clientId!, ...base },
      signInLevel: typeof payload.acr === 'string' ? policyOfAcr(payload.acr) : undefined, scheme,
    };
  };
}
