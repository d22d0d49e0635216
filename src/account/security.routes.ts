// The signed-in person's own security page, /account/security: their password, where they are
// signed in, their passkeys, authenticator app and recovery codes. It needs a OneID session
// (sessions/), whatever protocol the person came through, and knows nothing of oidc-provider.
//
// Changing the password asks for the current one (checked as a sign-in, under the sign-in
// throttle). Adding, renaming or removing a passkey, the authenticator app or the recovery codes
// needs only the live session and the CSRF token: no recent sign-in is asked for (yet), so a
// session left open on a shared computer can change them; its lifetime is SESSION_TTL_SECONDS.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { csrf } from '../http/csrf.ts';
import { satisfies } from '../access/signin-policy.ts';
import type { Proof } from '../credentials/methods.ts';
import type { Views } from '../login/views.ts';
import { translate, type MessageKey } from '../login/i18n.ts';
import type { SignInThrottle } from '../credentials/signin-throttle.ts';
import type { PasswordStrategy } from '../credentials/password.strategy.ts';
import { PASSKEY_NAME_MAX } from '../credentials/passkey.strategy.ts';
import { SESSION_COOKIE, writeSessionCookie } from '../login/flow.ts';
import { AppError } from '../shared/errors.ts';
import { recordAuditNow, type Actor } from '../audit/audit.service.ts';
import type { SessionsService, Session } from '../sessions/sessions.service.ts';
import type { UsersService } from '../directory/users.service.ts';
import { deleteOidcStateOfAccount, type User } from '../directory/users.repo.ts';
import type { PasswordPolicySource } from '../credentials/password-policy.ts';
import { PASSWORD_MAX_LENGTH } from '../credentials/password.ts';
import { summarizeUserAgent } from './devices.ts';
import type { PasskeyMethods, RecoveryCodeMethods, TotpMethods } from './methods.ts';

export const SECURITY_PATH = '/account/security';
/** Where a browser without a session goes: the sign-in, which brings it back here. */
export const SIGN_IN_PATH = `/login/start?return_to=${encodeURIComponent(SECURITY_PATH)}`;

export interface AccountDeps {
  db: Knex;
  views: Views;
  sessions: SessionsService;
  users: UsersService;
  /** Checks the current password before a change. */
  passwords: Pick<PasswordStrategy, 'signIn'>;
  passwordPolicy: PasswordPolicySource;
  /** The sign-in throttle: wrong current passwords count against the account as failed sign-ins. */
  throttle: SignInThrottle;
  maxBodyBytes: number;
  /** Whether the session cookie is Secure (an https issuer), as the sign-in sets it. */
  secureCookies: boolean;
  /** Methods not given are not offered on the page (their routes answer 404). */
  passkeys?: PasskeyMethods;
  totp?: TotpMethods;
  recoveryCodes?: RecoveryCodeMethods;
  /**
   * Run when this browser's own session is ended here (as login/'s /logout does): ends what other
   * protocols keep for the browser and may return where to send it instead of the sign-in page
   * (the SAML apps' single logout, which ends there). Injected by app.ts.
   */
  afterSignOut?: (ctx: Context, session: Session, returnTo: string) => Promise<string | undefined>;
}

/** The notices a redirect back to the page may name (?done=...): anything else shows nothing. */
const NOTICES = {
  password: 'account.notice.password_changed',
  session_ended: 'account.notice.session_ended',
  passkey_added: 'account.notice.passkey_added',
  passkey_renamed: 'account.notice.passkey_renamed',
  passkey_removed: 'account.notice.passkey_removed',
  totp_added: 'account.notice.totp_added',
  totp_removed: 'account.notice.totp_removed',
} as const satisfies Record<string, MessageKey>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const str = (value: unknown): string => (typeof value === 'string' ? value : '');

interface Signed { session: Session; user: User; actor: Actor }

/** A form's problem: its message key and values, and the HTTP status of the re-rendered page. */
interface Problem { key: MessageKey; vars?: Record<string, unknown>; status: number }

export function accountRouter(deps: AccountDeps): Router {
  const { views, sessions, users, passwords, passwordPolicy, throttle, passkeys, totp, recoveryCodes } = deps;
  const router = new Router({ prefix: SECURITY_PATH });
  router.use(bodyParser({ enableTypes: ['form', 'json'], formLimit: `${deps.maxBodyBytes}b`, jsonLimit: `${deps.maxBodyBytes}b` }));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    return next();
  });
  // The session first: without one, every request (page or form) goes to the sign-in.
  router.use(async (ctx, next) => {
    const session = await sessions.find(ctx.cookies.get(SESSION_COOKIE));
    const user = session ? await users.getUser(session.userId).catch((err: unknown) => {
      if (err instanceof AppError && err.kind === 'not_found') return undefined;
      throw err;
    }) : undefined;
    if (!session || !user) {
      if (ctx.request.is('json')) {
        ctx.status = 401;
        ctx.body = { error: 'unauthenticated', message: 'sign in again' };
        return;
      }
      ctx.status = 303;
      ctx.redirect(SIGN_IN_PATH);
      return;
    }
    // Someone who has a second factor manages their methods with it: the password alone (a
    // stolen one) must not add, replace or remove a factor. A weaker session is stepped up first.
    const hasSecondFactor = (await passkeys?.isEnrolled(user.id)) || (await totp?.isEnrolled(user.id)) || (await recoveryCodes?.isEnrolled(user.id));
    if (hasSecondFactor && !satisfies(session.methods, 'mfa')) {
      if (ctx.request.is('json')) {
        ctx.status = 401;
        ctx.body = { error: 'step_up_required', message: 'confirm it is you with your second factor' };
        return;
      }
      ctx.status = 303;
      ctx.redirect(`${SIGN_IN_PATH}&policy=mfa`);
      return;
    }
    const signed: Signed = { session, user, actor: { type: 'user', id: user.id, ip: ctx.ip, userAgent: ctx.get('user-agent').slice(0, 500) || null } };
    ctx.state.signed = signed;
    return next();
  });
  // A form or page script posting without its CSRF token is refused, and the refusal is recorded.
  router.use(csrf((ctx) => recordAuditNow(deps.db, (ctx.state.signed as Signed).actor, {
    action: 'csrf.refused', targetType: 'path', targetId: ctx.path.slice(0, 200), changes: { method: ctx.method },
  })));

  const signedOf = (ctx: Context): Signed => ctx.state.signed as Signed;
  /** A method set up here was just proven: it joins this session (a step-up, with a new cookie). */
  const provedHere = async (ctx: Context, proof: Proof): Promise<void> => {
    const { session, actor } = signedOf(ctx);
    const opened = await sessions.addProofs(session, [proof], actor);
    if (opened) {
      writeSessionCookie(ctx, opened.token, deps.secureCookies, opened.session.expiresAt);
    }
  };
  const backTo = (ctx: Context, done?: keyof typeof NOTICES) => {
    ctx.status = 303;
    ctx.redirect(done ? `${SECURITY_PATH}?done=${done}` : SECURITY_PATH);
  };
  const signedOut = async (ctx: Context, session: Session): Promise<void> => {
    writeSessionCookie(ctx, null, deps.secureCookies);
    const instead = await deps.afterSignOut?.(ctx, session, SIGN_IN_PATH);
    ctx.status = 303;
    ctx.redirect(instead ?? SIGN_IN_PATH);
  };

  /** The whole page, with what the person can see and change; `extra` carries a form's problem. */
  async function renderPage(ctx: Context, extra: { passwordProblem?: Problem; passkeyProblem?: Problem } = {}): Promise<void> {
    const { session, user } = signedOf(ctx);
    const locale = views.localeOf(ctx);
    const when = new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC', timeZoneName: 'short' });
    const live = await sessions.listForUser(user.id);
    const [passkeyList, totpEnrolled, recoveryLeft] = await Promise.all([
      passkeys?.list(user.id), totp?.isEnrolled(user.id), recoveryCodes?.remaining(user.id),
    ]);
    const done = str(ctx.query.done);
    const notice = Object.hasOwn(NOTICES, done) ? NOTICES[done as keyof typeof NOTICES] : undefined;
    ctx.status = extra.passwordProblem?.status ?? extra.passkeyProblem?.status ?? 200;
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'account-security.njk', {
      user: { username: user.username, displayName: user.displayName },
      notice,
      passwordProblem: extra.passwordProblem,
      passkeyProblem: extra.passkeyProblem,
      minLength: (await passwordPolicy.current()).minLength,
      passkeyNameMax: PASSKEY_NAME_MAX,
      sessions: live.map((s) => ({
        id: s.id,
        current: s.id === session.id,
        device: summarizeUserAgent(s.userAgent),
        ip: s.ip,
        created: when.format(s.createdAt),
        lastSeen: when.format(s.lastSeenAt),
        methods: [...new Set(s.methods.map((m) => m.method))],
      })),
      passkeys: passkeyList?.map((p) => ({
        id: p.id, name: p.name, synced: p.synced, created: when.format(p.createdAt), lastUsed: p.lastUsedAt ? when.format(p.lastUsedAt) : null,
      })),
      offersPasskeys: passkeys !== undefined,
      offersTotp: totp !== undefined,
      totpEnrolled,
      offersRecoveryCodes: recoveryCodes !== undefined,
      recoveryLeft,
    });
  }

  router.get('/', async (ctx) => {
    await renderPage(ctx);
  });

  // --- Password ---------------------------------------------------------------------------
  router.post('/password', async (ctx) => {
    const { session, user, actor } = signedOf(ctx);
    const body = ctx.request.body as Record<string, unknown>;
    const current = str(body.current_password);
    const next = str(body.new_password);
    const again = str(body.confirm_password);
    const policy = await passwordPolicy.current();
    const problem = policy.check(next);
    if (problem) {
      return renderPage(ctx, { passwordProblem: { key: `account.password.${problem}`, vars: { min: policy.minLength, max: PASSWORD_MAX_LENGTH }, status: 400 } });
    }
    if (next !== again) return renderPage(ctx, { passwordProblem: { key: 'account.password.mismatch', status: 400 } });
    // The current password is checked as a sign-in is, under the same per-account and per-IP
    // limits: a stolen session cookie must not become a way to guess the password.
    const checked = await passwords.signIn(user.username, current, (subject) => throttle.reserve(subject, ctx.ip));
    if (checked.retryAfter > 0) {
      ctx.set('Retry-After', String(checked.retryAfter));
      return renderPage(ctx, { passwordProblem: { key: 'account.password.throttled', vars: { minutes: Math.ceil(checked.retryAfter / 60) }, status: 429 } });
    }
    // Only a proof says the password was right (a refusal may still name the person).
    if (!checked.proof || checked.user?.id !== user.id) {
      await recordAuditNow(deps.db, actor, {
        action: 'user.password_change_refused', targetType: 'user', targetId: user.id, changes: { reason: checked.reason ?? 'bad_password', sessionId: session.id },
      });
      return renderPage(ctx, { passwordProblem: { key: 'account.password.wrong_current', status: 400 } });
    }
    try {
      // Ends the person's other sessions (OneID's and oidc-provider's) in the transaction that
      // sets the password; this one stays, signed in again now (users.service setPassword).
      await users.setPassword(user.id, next, actor, undefined, session.id);
    } catch (err) {
      if (!(err instanceof AppError) || err.kind !== 'invalid_argument') throw err;
      return renderPage(ctx, { passwordProblem: { key: 'account.password.invalid', status: 400 } });
    }
    backTo(ctx, 'password');
  });

  // --- Sessions ---------------------------------------------------------------------------
  router.post('/sessions/end-all', async (ctx) => {
    const { session, user, actor } = signedOf(ctx);
    // Everywhere includes the apps: every OIDC session, grant and refresh token of the person ends
    // with the OneID sessions, so no app signed in elsewhere keeps refreshing its tokens.
    await deps.db.transaction(async (trx) => {
      await sessions.endAll(user.id, 'signed_out_everywhere', actor, undefined, trx);
      await deleteOidcStateOfAccount(trx, user.id);
    });
    // Only this browser can be taken through the SAML apps' logout; other browsers' sessions end here.
    await signedOut(ctx, session);
  });

  router.post('/sessions/:id/end', async (ctx) => {
    const { session, user, actor } = signedOf(ctx);
    const id = ctx.params.id!;
    // Scoped to the person: another person's session id ends nothing (and says nothing about it).
    const ended = UUID.test(id) && await sessions.end(user.id, id, 'signed_out', actor);
    if (id === session.id) return signedOut(ctx, session);
    backTo(ctx, ended ? 'session_ended' : undefined);
  });

  // --- Passkeys ---------------------------------------------------------------------------
  if (passkeys) {
    // Same-origin fetches from /assets/passkey.js, CSRF token in x-csrf-token. The challenge is
    // bound to this session: a response made for another session or a sign-in flow is refused.
    router.post('/passkeys/options', async (ctx) => {
      const { session, user } = signedOf(ctx);
      ctx.body = await passkeys.registrationOptions(session.id, { id: user.id, username: user.username, displayName: user.displayName });
    });

    router.post('/passkeys', async (ctx) => {
      const { session, user, actor } = signedOf(ctx);
      const body = (ctx.request.body ?? {}) as Record<string, unknown>;
      // The strategy trims and shortens the name (PASSKEY_NAME_MAX) and names an unnamed one.
      const name = typeof body.name === 'string' && body.name.trim() ? body.name : undefined;
      const result = body.response && typeof body.response === 'object'
        ? await passkeys.register(session.id, user.id, body.response, name, actor)
        : { ok: false as const, reason: 'missing_response' };
      if (!result.ok) {
        ctx.status = 400;
        ctx.body = { error: result.reason, message: translate(views.localeOf(ctx), 'account.passkeys.failed') };
        return;
      }
      await provedHere(ctx, result.proof);
      ctx.body = { redirect: `${SECURITY_PATH}?done=passkey_added` };
    });

    router.post('/passkeys/:id/rename', async (ctx) => {
      const { user, actor } = signedOf(ctx);
      const id = ctx.params.id!;
      const name = str((ctx.request.body as Record<string, unknown>).name).trim();
      if (!name || [...name].length > PASSKEY_NAME_MAX) return renderPage(ctx, { passkeyProblem: { key: 'account.passkeys.name_invalid', vars: { max: PASSKEY_NAME_MAX }, status: 400 } });
      if (!UUID.test(id) || !(await passkeys.rename(user.id, id, name, actor))) {
        return renderPage(ctx, { passkeyProblem: { key: 'account.passkeys.not_found', status: 404 } });
      }
      backTo(ctx, 'passkey_renamed');
    });

    router.post('/passkeys/:id/delete', async (ctx) => {
      const { user, actor } = signedOf(ctx);
      const id = ctx.params.id!;
      if (!UUID.test(id) || !(await passkeys.remove(user.id, id, actor))) {
        return renderPage(ctx, { passkeyProblem: { key: 'account.passkeys.not_found', status: 404 } });
      }
      backTo(ctx, 'passkey_removed');
    });
  }

  // --- Authenticator app and recovery codes ------------------------------------------------
  /** The set-up step: QR code, the key to type by hand, the confirmation form. */
  async function renderTotpSetup(ctx: Context, problem?: Problem): Promise<void> {
    const { user } = signedOf(ctx);
    const setup = await totp!.beginEnrolment(user.id, user.username);
    ctx.status = problem?.status ?? 200;
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'account-totp.njk', {
      problem,
      secret: setup.secret,
      // As an image, not inline markup: nothing the strategy returns is put into the page as HTML.
      qrDataUri: `data:image/svg+xml;base64,${Buffer.from(setup.qrSvg).toString('base64')}`,
    });
  }

  /** New recovery codes, shown this once. */
  async function renderNewCodes(ctx: Context): Promise<void> {
    const { user, actor } = signedOf(ctx);
    const codes = await recoveryCodes!.generate(user.id, actor);
    ctx.type = 'html';
    ctx.body = views.render(ctx, 'account-recovery-codes.njk', { codes });
  }

  if (totp) {
    router.post('/totp/setup', async (ctx) => {
      await renderTotpSetup(ctx);
    });

    router.post('/totp/confirm', async (ctx) => {
      const { user, actor } = signedOf(ctx);
      const code = str((ctx.request.body as Record<string, unknown>).code).replace(/\s+/g, '');
      const result = /^\d{6,8}$/.test(code) ? await totp.confirmEnrolment(user.id, code, actor) : { ok: false as const, reason: 'malformed' };
      if (!result.ok) return renderTotpSetup(ctx, { key: 'account.totp.wrong_code', status: 400 });
      await provedHere(ctx, result.proof);
      // A first second factor: the person also gets recovery codes, for the day the phone is lost.
      if (recoveryCodes && (await recoveryCodes.remaining(user.id)) === 0) return renderNewCodes(ctx);
      backTo(ctx, 'totp_added');
    });

    router.post('/totp/remove', async (ctx) => {
      const { user, actor } = signedOf(ctx);
      await totp.remove(user.id, actor);
      backTo(ctx, 'totp_removed');
    });
  }

  if (recoveryCodes) {
    router.post('/recovery-codes', async (ctx) => {
      await renderNewCodes(ctx);
    });
  }

  return router;
}
