// The sign-in pages: `/login/:flow` shows the step a flow is at (login/flow.ts) and each method
// posts its proof here. Forms answer with a redirect (on to the next step, or back to the
// caller); the passkey steps are JSON endpoints called by /assets/passkey.js.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import type { Logger } from '../shared/logger.ts';
import type { Views } from './views.ts';
import { csrf } from '../http/csrf.ts';
import { AppError } from '../shared/errors.ts';
import { textProblem } from '../shared/text-input.ts';
import { recordAuditNow, type Actor } from '../audit/audit.service.ts';
import type { PasswordStrategy } from '../credentials/password.strategy.ts';
import type { SignInThrottle } from '../credentials/signin-throttle.ts';
import type { MethodName, Verified } from '../credentials/methods.ts';
import type { PasskeyStrategy } from '../credentials/passkey.strategy.ts';
import type { TotpStrategy } from '../credentials/totp.strategy.ts';
import type { RecoveryCodes } from '../credentials/recovery.strategy.ts';
import { findUserByLoginWithPassword, findUserById, type User } from '../directory/users.repo.ts';
import { translate } from './i18n.ts';
import { isSignInPolicy } from '../access/signin-policy.ts';
import type { DbLoginFlowRow, FlowState, LoginFlows } from './flow.ts';
import type { Session } from '../sessions/sessions.service.ts';

/** What the flow uses of each strategy (credentials/). */
export type PasskeyMethod = Pick<PasskeyStrategy, 'method' | 'isEnrolled' | 'registrationOptions' | 'register' | 'authenticationOptions' | 'authenticate'>;
export type TotpMethod = Pick<TotpStrategy, 'method' | 'isEnrolled' | 'beginEnrolment' | 'pendingEnrolment' | 'confirmEnrolment' | 'verify'>;
export type RecoveryMethod = Pick<RecoveryCodes, 'method' | 'isEnrolled' | 'generate' | 'verify'>;

export interface LoginDeps {
  db: Knex;
  flows: LoginFlows;
  views: Views;
  log: Logger;
  maxBodyBytes: number;
  passwords: PasswordStrategy;
  throttle: SignInThrottle;
  passkeys?: PasskeyMethod;
  totp?: TotpMethod;
  recovery?: RecoveryMethod;
  /** The user-verification setting for passkeys (an administrator may require it). */
  passkeyUserVerification: 'required' | 'preferred';
  /**
   * Run by /logout once the browser's session has ended (`session` is undefined when it had none):
   * ends what other protocols keep for the browser and may return where to send it instead of
   * `returnTo` (the SAML apps' single logout, which ends at `returnTo`). Injected by app.ts: login/
   * knows no protocol.
   */
  afterSignOut?: (ctx: Context, session: Session | undefined, returnTo: string) => Promise<string | undefined>;
}

/** Paths a sign-in started from `/login/start` may return to: OneID's own pages, never elsewhere. */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value.length > 500) return '/';
  // A path on this origin: one leading slash, not "//host" or "/\host", no scheme, no controls.
  if (!/^\/(?![/\\])[^\s\\]*$/.test(value)) return '/';
  return value;
}

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

export function loginRouter(deps: LoginDeps): Router {
  const { flows, views, log, passwords, throttle, passkeys, totp, recovery } = deps;
  const router = new Router();
  router.use(bodyParser({ enableTypes: ['form', 'json'], formLimit: `${deps.maxBodyBytes}b`, jsonLimit: `${deps.maxBodyBytes}b` }));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    return next();
  });
  // A form or page script posting without its CSRF token is refused, and the refusal is recorded.
  router.use(csrf((ctx) => recordAuditNow(deps.db, actorOf(ctx, null), {
    action: 'csrf.refused', targetType: 'path', targetId: ctx.path.slice(0, 200), changes: { method: ctx.method },
  })));

  const actorOf = (ctx: Context, userId: string | null): Actor => (userId
    ? { type: 'user', id: userId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null }
    : { type: 'anonymous', id: null, ip: ctx.ip, userAgent: ctx.get('user-agent') || null });

  const audit = (ctx: Context, flow: DbLoginFlowRow, userId: string | null, method: MethodName, ok: boolean, extra: Record<string, unknown> = {}): Promise<void> =>
    recordAuditNow(deps.db, actorOf(ctx, ok ? userId : null), {
      action: ok ? 'signin.succeeded' : 'signin.failed', targetType: 'user', targetId: userId,
      changes: { clientId: flow.requirements.clientId ?? null, method, ...extra },
    });

  /** The flow named in the path, this browser's and unfinished; else the "expired" page. */
  const flowOf = async (ctx: Context): Promise<DbLoginFlowRow> => {
    const flow = await flows.find(ctx, str(ctx.params.flow));
    if (!flow) throw new AppError('failed_precondition', 'signin.expired', 'this sign-in has expired or belongs to another browser');
    return flow;
  };

  /** After a proof: on to the caller when the flow is complete, else to the next step. */
  const advance = async (ctx: Context, flow: DbLoginFlowRow): Promise<string> => {
    const state = await flows.state(ctx, flow);
    if (state.step.kind === 'done') return flows.finish(ctx, state, actorOf(ctx, flow.user_id));
    return `/login/${flow.id}`;
  };

  const userOf = async (id: string | null): Promise<User | undefined> => (id ? findUserById(deps.db, id) : undefined);

  const render = async (ctx: Context, state: FlowState, extra: Record<string, unknown> = {}): Promise<void> => {
    const { flow, step } = state;
    const req = flow.requirements;
    const user = await userOf(flow.user_id);
    ctx.type = 'html';
    const common = {
      flow: flow.id, appName: req.appName ?? 'OneID', username: user?.username, displayName: user?.displayName ?? user?.username,
      ...extra,
    };
    if (step.kind === 'identify') {
      ctx.body = views.render(ctx, 'login.njk', { ...common, login: str(extra.login) || req.loginHint || '' }, req.uiLocales);
      return;
    }
    if (step.kind === 'prove') {
      ctx.body = views.render(ctx, 'login-second-factor.njk', {
        ...common, methods: step.methods, policy: req.policy,
      }, req.uiLocales);
      return;
    }
    if (step.kind === 'enrol') {
      const totpSetup = step.methods.includes('totp') && totp && user
        ? (extra.totpSetup as Awaited<ReturnType<TotpMethod['beginEnrolment']>> | undefined) ?? await totp.beginEnrolment(user.id, user.username)
        : undefined;
      ctx.body = views.render(ctx, 'login-enrol.njk', {
        ...common, methods: step.methods, policy: req.policy, totpSetup, webauthnOk: Boolean(passkeys),
      }, req.uiLocales);
      return;
    }
    ctx.status = 303;
    ctx.redirect(await advance(ctx, flow));
  };

  // Sign-ins that OneID itself starts: the account pages and the home page.
  router.get('/login/start', async (ctx) => {
    // A page may ask for more than a password (the security page, of someone with a second factor).
    const policy = isSignInPolicy(ctx.query.policy) ? ctx.query.policy : 'password';
    const url = await flows.start(ctx, { policy, uiLocales: str(ctx.query.ui_locales) || undefined }, safeReturnTo(ctx.query.return_to));
    ctx.status = 303;
    ctx.redirect(url);
  });

  router.get('/login/:flow', async (ctx) => {
    const flow = await flowOf(ctx);
    await render(ctx, await flows.state(ctx, flow));
  });

  router.post('/login/:flow/password', async (ctx) => {
    const flow = await flowOf(ctx);
    const state = await flows.state(ctx, flow);
    if (state.step.kind !== 'identify') throw new AppError('failed_precondition', 'signin.step', 'this sign-in is not asking for a password');
    const body = ctx.request.body as Record<string, unknown>;
    const login = str(body.login).slice(0, 254);
    if (textProblem(login)) {
      // No account name holds a NUL or an unpaired surrogate (shared/text-input.ts): a failed
      // sign-in, nothing to look up or count.
      log.info({ requestId: ctx.state.requestId, event: 'signin.failed' }, 'sign-in failed: ill-formed text in the account name');
      return render(ctx, state, { failed: true });
    }
    // Counted against the account (whichever of its names was typed) and this address before
    // any password work; over either limit refused without saying whether the account exists.
    const result = await passwords.signIn(login, str(body.password), (who) => throttle.reserve(who, ctx.ip));
    if (result.retryAfter > 0) {
      log.info({ requestId: ctx.state.requestId, event: 'signin.throttled' }, 'sign-in throttled');
      ctx.status = 429;
      ctx.set('Retry-After', String(result.retryAfter));
      return render(ctx, state, { login, retryMinutes: Math.max(1, Math.ceil(result.retryAfter / 60)) });
    }
    const trimmed = login.trim().slice(0, 254);
    if (!result.user || !result.proof) {
      // A name that finds nobody may be a password typed in the wrong field: not written down.
      await audit(ctx, flow, result.user?.id ?? null, 'password', false, { ...(result.user ? { login: trimmed } : {}), reason: result.reason });
      log.info({ requestId: ctx.state.requestId, event: 'signin.failed' }, 'sign-in failed');
      return render(ctx, state, { failed: true, login });
    }
    await audit(ctx, flow, result.user.id, 'password', true, { login: trimmed });
    log.info({ requestId: ctx.state.requestId, event: 'signin.succeeded', userId: result.user.id }, 'sign-in succeeded');
    const updated = await flows.addProof(flow, result.user.id, result.proof);
    if (!updated) throw new AppError('failed_precondition', 'signin.expired', 'this sign-in has ended');
    ctx.status = 303;
    ctx.redirect(await advance(ctx, updated));
    return undefined;
  });

  /** A JSON refusal for the page script: a message the person can read, in their language. */
  const refuse = (ctx: Context, status: number, error: string, key: string): void => {
    ctx.status = status;
    ctx.body = { error, message: translate(views.localeOf(ctx), key) };
  };

  router.post('/login/:flow/passkey/options', async (ctx) => {
    if (!passkeys) return refuse(ctx, 404, 'not_available', 'passkey.unavailable');
    const flow = await flowOf(ctx);
    const login = str((ctx.request.body as Record<string, unknown> | undefined)?.login).slice(0, 254);
    // Username-first: the passkey must then be the named person's, which is checked when it
    // comes back. The options are the discoverable form either way (no credential ids), so they
    // do not tell whether a name exists or which passkeys it has.
    const hinted = !flow.user_id && login && !textProblem(login) ? (await findUserByLoginWithPassword(deps.db, login))?.user : undefined;
    const userId = flow.user_id ?? undefined;
    const hint = flow.user_id ? undefined : hinted?.id;
    // Written only when it changes (a discoverable request on a fresh flow has none to store).
    if (hint !== (flow.state.hintUserId ?? undefined)) await flows.setHint(flow, hint);
    // A passkey alone must verify its person when the app needs more than a password.
    const uv = flow.requirements.policy !== 'password' && !flow.proofs.length ? 'required' : deps.passkeyUserVerification;
    ctx.body = await passkeys.authenticationOptions(flow.id, userId, uv);
    return undefined;
  });

  router.post('/login/:flow/passkey', async (ctx) => {
    if (!passkeys) return refuse(ctx, 404, 'not_available', 'passkey.unavailable');
    const flow = await flowOf(ctx);
    const response = (ctx.request.body as Record<string, unknown> | undefined)?.response;
    const expected = flow.user_id ?? flow.state.hintUserId ?? undefined;
    const verified = await passkeys.authenticate(flow.id, response, expected);
    if (!verified.ok) {
      ctx.state.signInResult = 'failure';
      await audit(ctx, flow, verified.userId ?? null, 'passkey', false, { reason: verified.reason });
      return refuse(ctx, 400, 'passkey_refused', 'passkey.refused');
    }
    const updated = await flows.addProof(flow, verified.userId, verified.proof);
    if (!updated) {
      ctx.state.signInResult = 'failure';
      await audit(ctx, flow, verified.userId, 'passkey', false, { reason: 'other_person' });
      return refuse(ctx, 400, 'passkey_refused', 'passkey.other_account');
    }
    ctx.state.signInResult = 'success';
    await audit(ctx, flow, verified.userId, 'passkey', true, { amr: verified.proof.amr });
    ctx.body = { redirect: await advance(ctx, updated) };
    return undefined;
  });

  /** A second factor typed as a code: throttled per person, like passwords. */
  const codeStep = (method: 'totp' | 'recovery_code', check: (userId: string, code: string) => Promise<Verified & { remaining?: number }>) => async (ctx: Context) => {
    const flow = await flowOf(ctx);
    const state = await flows.state(ctx, flow);
    if (!flow.user_id || state.step.kind !== 'prove' || !state.step.methods.includes(method)) {
      throw new AppError('failed_precondition', 'signin.step', 'this sign-in is not asking for a code');
    }
    const code = str((ctx.request.body as Record<string, unknown>).code).slice(0, 64);
    const ticket = await throttle.reserve(`factor:${flow.user_id}`, ctx.ip);
    if (ticket.retryAfter > 0) {
      ctx.status = 429;
      ctx.set('Retry-After', String(ticket.retryAfter));
      return render(ctx, state, { retryMinutes: Math.max(1, Math.ceil(ticket.retryAfter / 60)) });
    }
    const verified = await check(flow.user_id, code);
    if (!verified.ok) {
      await audit(ctx, flow, flow.user_id, method, false, { reason: verified.reason });
      return render(ctx, state, { codeFailed: method });
    }
    await ticket.succeeded();
    await audit(ctx, flow, flow.user_id, method, true, verified.remaining !== undefined ? { remaining: verified.remaining } : {});
    const updated = await flows.addProof(flow, flow.user_id, verified.proof);
    if (!updated) throw new AppError('failed_precondition', 'signin.expired', 'this sign-in has ended');
    if (verified.remaining !== undefined) {
      // A recovery code was spent: say how many are left before going on.
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'login-recovery-left.njk', { flow: flow.id, remaining: verified.remaining }, flow.requirements.uiLocales);
      return undefined;
    }
    ctx.status = 303;
    ctx.redirect(await advance(ctx, updated));
    return undefined;
  };
  if (totp) router.post('/login/:flow/totp', codeStep('totp', (userId, code) => totp.verify(userId, code)));
  if (recovery) router.post('/login/:flow/recovery', codeStep('recovery_code', (userId, code) => recovery.verify(userId, code)));

  /** Enrolment during sign-in: only for an identified person whom the policy sends there. */
  const enrolling = async (ctx: Context, method: MethodName): Promise<{ flow: DbLoginFlowRow; user: User }> => {
    const flow = await flowOf(ctx);
    const state = await flows.state(ctx, flow);
    const user = await userOf(flow.user_id);
    if (!user || state.step.kind !== 'enrol' || !state.step.methods.includes(method)) {
      throw new AppError('failed_precondition', 'signin.step', 'this sign-in is not setting up that method');
    }
    return { flow, user };
  };

  if (passkeys) {
    router.post('/login/:flow/enrol/passkey/options', async (ctx) => {
      const { flow, user } = await enrolling(ctx, 'passkey');
      ctx.body = await passkeys.registrationOptions(flow.id, { id: user.id, username: user.username, displayName: user.displayName ?? null });
    });
    router.post('/login/:flow/enrol/passkey', async (ctx) => {
      const { flow, user } = await enrolling(ctx, 'passkey');
      const body = ctx.request.body as Record<string, unknown>;
      const result = await passkeys.register(flow.id, user.id, body.response, str(body.name) || undefined, actorOf(ctx, user.id));
      if (!result.ok) return refuse(ctx, 400, 'passkey_refused', 'passkey.not_registered');
      const updated = await flows.addProof(flow, user.id, result.proof);
      if (!updated) return refuse(ctx, 400, 'signin_expired', 'error.expired');
      ctx.body = { redirect: await advance(ctx, updated) };
      return undefined;
    });
  }

  if (totp) {
    router.post('/login/:flow/enrol/totp', async (ctx) => {
      const { flow, user } = await enrolling(ctx, 'totp');
      const code = str((ctx.request.body as Record<string, unknown>).code).slice(0, 64);
      const result = await totp.confirmEnrolment(user.id, code, actorOf(ctx, user.id));
      if (!result.ok) {
        const state = await flows.state(ctx, flow);
        // The same key again: the person has scanned it already and only mistyped the code.
        const totpSetup = await totp.pendingEnrolment?.(user.id, user.username);
        return render(ctx, state, { codeFailed: 'totp', ...(totpSetup ? { totpSetup } : {}) });
      }
      const updated = await flows.addProof(flow, user.id, result.proof);
      if (!updated) throw new AppError('failed_precondition', 'signin.expired', 'this sign-in has ended');
      // Recovery codes come with a first authenticator: shown once, here, and stored hashed.
      const codes = recovery ? await recovery.generate(user.id, actorOf(ctx, user.id)) : [];
      if (!codes.length) {
        ctx.status = 303;
        ctx.redirect(await advance(ctx, updated));
        return undefined;
      }
      ctx.type = 'html';
      ctx.body = views.render(ctx, 'login-recovery-codes.njk', { flow: flow.id, codes }, flow.requirements.uiLocales);
      return undefined;
    });
  }

  router.post('/login/:flow/continue', async (ctx) => {
    const flow = await flowOf(ctx);
    ctx.status = 303;
    ctx.redirect(await advance(ctx, flow));
  });

  router.post('/login/:flow/cancel', async (ctx) => {
    const flow = await flowOf(ctx);
    const unmet = str((ctx.request.body as Record<string, unknown>).unmet) === '1';
    await recordAuditNow(deps.db, actorOf(ctx, null), {
      action: unmet ? 'signin.unmet' : 'signin.cancelled', targetType: 'user', targetId: flow.user_id,
      changes: { clientId: flow.requirements.clientId ?? null, policy: flow.requirements.policy },
    });
    ctx.status = 303;
    ctx.redirect(await flows.abandon(flow, unmet ? 'unmet' : 'cancelled', unmet
      ? `this app requires a sign-in of level ${flow.requirements.policy}, which the person could not complete`
      : 'the user cancelled the sign-in'));
  });

  // Signing out of OneID: this browser's session ends (every app's sign-in through OneID asks again).
  router.post('/logout', async (ctx) => {
    const session = await flows.currentSession(ctx);
    if (session) await flows.endSession(session, 'signed_out', actorOf(ctx, session.userId));
    flows.setSessionCookie(ctx, null);
    const returnTo = safeReturnTo((ctx.request.body as Record<string, unknown>).return_to);
    const instead = await deps.afterSignOut?.(ctx, session, returnTo);
    ctx.status = 303;
    ctx.redirect(instead ?? returnTo);
  });

  return router;
}
