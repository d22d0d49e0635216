// Signing in to the console: the browser goes through OneID's authorization endpoint as the
// console app (code flow, PKCE, state), and the console remembers which OneID session that sign-in
// belongs to. The console is open while that session is: signing out of OneID, a suspension or a
// password reset (which end sessions) close it too, and a step-up of the session counts at once.
import { createHash, randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import type Provider from 'oidc-provider';
import type { LoginFlows } from '../login/flow.ts';
import type { Principal } from '../admin/auth.ts';
import type { AdminRole } from '../directory/users.service.ts';
import { ACR, policyOfAcr, type SignInPolicy } from '../access/signin-policy.ts';
import { redeemOwnCode } from '../oidc/own-code.ts';
import { AUTHORIZATION_PATH } from '../oidc/provider.ts';
import { CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID, CONSOLE_PREFIX } from './console-app.ts';
import { recordAudit } from '../audit/audit.service.ts';

const STARTED = 'oneid.console_start';
const SIGNED_IN = 'oneid.console';

/** The console pages' own paths only: never an absolute URL, another host or a path outside /admin. */
export function consoleReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value.length > 500) return CONSOLE_PREFIX;
  if (!/^\/admin(\/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?(\?[^#\s\\]*)?$/.test(value) || value.includes('//') || value.startsWith(`${CONSOLE_PREFIX}/api/`)) {
    return CONSOLE_PREFIX;
  }
  return value;
}

export interface ConsoleUser {
  id: string;
  username: string;
  displayName: string | null;
  locale: string | null;
  adminRoles: AdminRole[];
}

export interface ConsoleAuthDeps {
  db: Knex;
  provider: Provider;
  flows: LoginFlows;
  issuer: string;
  secureCookies: boolean;
}

export class ConsoleAuth {
  readonly #redirectUri: string;

  constructor(private readonly deps: ConsoleAuthDeps) {
    this.#redirectUri = `${deps.issuer}${CONSOLE_CALLBACK_PATH}`;
  }

  /** GET /admin/login: off to the authorization endpoint; `acr` asks for a stronger sign-in. */
  start(ctx: Context, returnTo: string, level?: SignInPolicy): void {
    const state = randomBytes(24).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    ctx.cookies.set(STARTED, `${state}.${verifier}.${Buffer.from(returnTo).toString('base64url')}`, {
      signed: true, httpOnly: true, sameSite: 'lax', secure: this.deps.secureCookies, path: CONSOLE_PREFIX, maxAge: 15 * 60 * 1000, overwrite: true,
    });
    const url = new URL(`${this.deps.issuer}${AUTHORIZATION_PATH}`);
    url.search = new URLSearchParams({
      client_id: CONSOLE_CLIENT_ID, response_type: 'code', redirect_uri: this.#redirectUri, scope: 'openid', state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
      ...(level ? { acr_values: ACR[level] } : {}),
      ...(typeof ctx.query.ui_locales === 'string' ? { ui_locales: ctx.query.ui_locales.slice(0, 100) } : {}),
    }).toString();
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(url.pathname + url.search);
  }

  /**
   * GET /admin/callback: the code is redeemed for the browser's own session. Returns where to go
   * next, or undefined when this is not a sign-in this browser started (the caller shows why).
   */
  async finish(ctx: Context): Promise<{ returnTo: string } | { error: 'denied' | 'invalid' }> {
    const started = ctx.cookies.get(STARTED, { signed: true });
    ctx.cookies.set(STARTED, null, { path: CONSOLE_PREFIX, overwrite: true });
    const [state, verifier, encodedReturn] = (started ?? '').split('.');
    if (!state || !verifier || ctx.query.state !== state) return { error: 'invalid' };
    if (typeof ctx.query.error === 'string') return { error: 'denied' };
    const code = typeof ctx.query.code === 'string' ? ctx.query.code : '';
    const redeemed = await redeemOwnCode(this.deps.provider, this.deps.db, { code, clientId: CONSOLE_CLIENT_ID, redirectUri: this.#redirectUri, verifier });
    const session = await this.deps.flows.currentSession(ctx);
    if (!redeemed || !session || session.userId !== redeemed.accountId) return { error: 'invalid' };
    ctx.cookies.set(SIGNED_IN, session.id, { signed: true, httpOnly: true, sameSite: 'lax', secure: this.deps.secureCookies, path: CONSOLE_PREFIX, overwrite: true });
    await recordAudit(this.deps.db, { type: 'user', id: session.userId, clientId: CONSOLE_CLIENT_ID, ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, {
      action: 'console.signed_in', targetType: 'session', targetId: session.id, changes: { acr: session.acr },
    });
    return { returnTo: consoleReturnTo(Buffer.from(encodedReturn ?? '', 'base64url').toString('utf8')) };
  }

  /**
   * The person at the console and what they may do: the roles both they and the console app hold,
   * and how strongly the session signed in. Undefined: not signed in to the console in this
   * browser (or that session ended).
   */
  async principal(ctx: Context): Promise<{ principal: Principal; user: ConsoleUser } | undefined> {
    const bound = ctx.cookies.get(SIGNED_IN, { signed: true });
    if (!bound) return undefined;
    const session = await this.deps.flows.currentSession(ctx);
    if (!session || session.id !== bound) return undefined;
    const [user, app] = await Promise.all([
      this.deps.db('users').where({ id: session.userId, status: 'active' })
        .first<{ id: string; username: string; display_name: string | null; locale: string | null; admin_roles: AdminRole[] } | undefined>('id', 'username', 'display_name', 'locale', 'admin_roles'),
      this.deps.db('apps').where({ client_id: CONSOLE_CLIENT_ID }).first<{ admin_roles: AdminRole[] } | undefined>('admin_roles'),
    ]);
    if (!user || !app) return undefined;
    const roles = new Set(user.admin_roles.filter((role) => app.admin_roles.includes(role)));
    return {
      user: { id: user.id, username: user.username, displayName: user.display_name, locale: user.locale, adminRoles: [...roles] },
      principal: {
        kind: 'user', id: user.id, roles,
        actor: { type: 'user', id: user.id, clientId: CONSOLE_CLIENT_ID, ip: ctx.ip, userAgent: ctx.get('user-agent') || null },
        signInLevel: policyOfAcr(session.acr),
      },
    };
  }
}
