// The sign-in flow, protocol-neutral: identify -> methods -> enrolment when the policy needs a
// method the person has not set up -> done. A caller (oidc/ for an authorization request, saml/
// next, the account pages) says what it requires and where the browser goes back to; the flow
// answers who signed in, how and when, as OneID's own session (sessions/). It knows nothing of
// the protocol that asked.
//
// A flow is a row in login_flows bound to the browser that started it (the oneid.flow cookie,
// stored as its SHA-256): a flow id seen elsewhere is useless, so a second factor posted from
// another browser cannot finish someone else's step-up.
import type { Context } from 'koa';
import type { Knex } from 'knex';
import { newId, newSecret, sha256, digestsEqual } from '../shared/ids.ts';
import { nextStep, satisfies, amrOf, levelOf, ACR, type NextStep, type SignInPolicy } from '../access/signin-policy.ts';
import type { MethodName, Proof } from '../credentials/methods.ts';
import type { SessionsService, Session } from '../sessions/sessions.service.ts';
import type { Actor } from '../audit/audit.service.ts';

/** OneID's session cookie: a random token whose SHA-256 is a row of `sessions`. */
export const SESSION_COOKIE = 'oneid.sso';
/**
 * Sets (or, with null, clears) OneID's session cookie: HttpOnly, SameSite=Lax, Secure when the
 * issuer is https (`secure`), for the whole site. Every writer of the cookie goes through here.
 */
export function writeSessionCookie(ctx: Context, token: string | null, secure: boolean, expiresAt?: Date): void {
  ctx.cookies.set(SESSION_COOKIE, token, {
    httpOnly: true, sameSite: 'lax', secure, path: '/', overwrite: true,
    ...(token && expiresAt ? { expires: expiresAt } : {}),
  });
}

/** Binds sign-in flows to the browser that started them. */
export const FLOW_COOKIE = 'oneid.flow';
/** How long a started sign-in may take. */
const FLOW_TTL_SECONDS = 30 * 60;

/** What a caller requires of a sign-in. */
export interface SignInRequest {
  /** Shown on the pages ("to continue to ..."). */
  appName?: string;
  /** For the audit log: the app and its protocol's id for it. */
  appId?: string | null;
  clientId?: string | null;
  /** The level the sign-in must reach. */
  policy: SignInPolicy;
  /** Seconds: a session signed in longer ago than this must sign in again (OIDC max_age). */
  maxAge?: number;
  /** Sign in again whatever the session (OIDC prompt=login, SAML ForceAuthn). */
  force?: boolean;
  loginHint?: string;
  uiLocales?: string;
}

export type FlowOutcome =
  | { status: 'done'; session: Session }
  | { status: 'cancelled' | 'unmet'; reason: string }
  /** Not finished, expired, or not this browser's. */
  | { status: 'none' };

export interface DbLoginFlowRow {
  id: string;
  binding_hash: string;
  requirements: SignInRequest;
  return_to: string;
  user_id: string | null;
  proofs: Proof[];
  session_id: string | null;
  outcome: string | null;
  outcome_reason: string | null;
  state: { hintUserId?: string };
  created_at: Date;
  expires_at: Date;
}

/** Whether a session meets a request as it is, without asking the person anything. */
export function sessionMeets(session: Session | undefined, request: SignInRequest, now = Math.floor(Date.now() / 1000)): session is Session {
  if (!session || request.force) return false;
  if (request.maxAge !== undefined && now - session.authTime > request.maxAge) return false;
  return satisfies(session.methods, request.policy);
}

/**
 * The acr to report for a session: the first of the values the app asked for that the session
 * reaches (an app asking for mfa is told mfa, even of a passkey session), else the session's own.
 */
export function acrToReport(session: Session, requested: readonly string[] = []): string | undefined {
  const level = levelOf(session.methods);
  for (const value of requested) {
    const wanted = (Object.keys(ACR) as SignInPolicy[]).find((p) => ACR[p] === value);
    if (wanted && satisfies(session.methods, wanted)) return value;
  }
  return level ? ACR[level] : undefined;
}

/** Which methods a person has set up (asked of the strategies). */
export type EnrolledMethods = (userId: string) => Promise<Set<MethodName>>;

/** EnrolledMethods from the strategies there are. */
export function enrolledMethodsOf(strategies: readonly ({ method: MethodName; isEnrolled(userId: string): Promise<boolean> } | undefined)[]): EnrolledMethods {
  return async (userId) => {
    const set = new Set<MethodName>();
    for (const s of strategies) if (s && await s.isEnrolled(userId)) set.add(s.method);
    return set;
  };
}

/** Where a flow stands: who is signing in, what is proven, and what comes next. */
export interface FlowState {
  flow: DbLoginFlowRow;
  /** Proofs that count: the session's (a step-up) and this flow's. */
  proofs: Proof[];
  /** The browser's live session, if it belongs to the flow's person and still counts. */
  session: Session | undefined;
  step: NextStep | { kind: 'identify' };
}

export class LoginFlows {
  constructor(
    private readonly db: Knex,
    private readonly sessions: SessionsService,
    private readonly enrolled: EnrolledMethods,
    private readonly secureCookies: boolean,
  ) {}

  /** The browser's live OneID session (read once per request). */
  async currentSession(ctx: Context): Promise<Session | undefined> {
    if (!('oneidSession' in ctx.state)) ctx.state.oneidSession = await this.sessions.find(ctx.cookies.get(SESSION_COOKIE) ?? undefined);
    return ctx.state.oneidSession as Session | undefined;
  }

  setSessionCookie(ctx: Context, token: string | null, expiresAt?: Date): void {
    writeSessionCookie(ctx, token, this.secureCookies, expiresAt);
  }

  #binding(ctx: Context): string {
    let value = ctx.cookies.get(FLOW_COOKIE);
    if (!value || !/^[A-Za-z0-9_-]{43}$/.test(value)) {
      value = newSecret();
      ctx.cookies.set(FLOW_COOKIE, value, { httpOnly: true, sameSite: 'lax', secure: this.secureCookies, path: '/', overwrite: true });
    }
    return sha256(value);
  }

  /**
   * Starts a sign-in for `request`; the browser is sent to the returned URL. When the flow ends,
   * the browser goes to `returnTo` (a path on this origin) with `flow=<id>` added, where the
   * caller reads outcome().
   */
  async start(ctx: Context, request: SignInRequest, returnTo: string): Promise<string> {
    const session = await this.currentSession(ctx);
    const now = Math.floor(Date.now() / 1000);
    // The session counts toward this sign-in (a step-up) unless the caller wants a new sign-in.
    const reuse = session && !request.force && !(request.maxAge !== undefined && now - session.authTime > request.maxAge);
    const id = newId();
    // Finished and abandoned flows are removed as new ones start, a bounded batch at a time.
    if (Math.random() < 0.05) {
      await this.db.raw('delete from login_flows where id in (select id from login_flows where expires_at < now() limit 500)');
    }
    await this.db('login_flows').insert({
      id, binding_hash: this.#binding(ctx), requirements: JSON.stringify(request), return_to: returnTo,
      user_id: reuse ? session.userId : null, session_id: reuse ? session.id : null,
      expires_at: new Date(Date.now() + FLOW_TTL_SECONDS * 1000),
    });
    return `/login/${id}`;
  }

  /** This browser's unfinished flow, or undefined (unknown, expired, finished or another browser's). */
  async find(ctx: Context, id: string, unfinished = true): Promise<DbLoginFlowRow | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    const row = await this.db<DbLoginFlowRow>('login_flows').where({ id }).where('expires_at', '>', this.db.fn.now()).first();
    const cookie = ctx.cookies.get(FLOW_COOKIE);
    if (!row || !cookie || !digestsEqual(row.binding_hash, sha256(cookie))) return undefined;
    if (unfinished && row.outcome) return undefined;
    return row;
  }

  /** Where the flow stands (see FlowState). */
  async state(ctx: Context, flow: DbLoginFlowRow): Promise<FlowState> {
    const current = await this.currentSession(ctx);
    const session = current && flow.session_id === current.id && current.userId === flow.user_id ? current : undefined;
    if (flow.session_id && !session && levelOf(flow.proofs) === undefined) {
      // The session that named the person has ended (signed out, password reset) and nothing in
      // this flow proves who they are: start from the beginning.
      await this.db('login_flows').where({ id: flow.id }).update({ user_id: null, session_id: null, proofs: '[]' });
      Object.assign(flow, { user_id: null, session_id: null, proofs: [] });
    }
    const proofs = [...(session?.methods ?? []), ...flow.proofs];
    if (!flow.user_id) return { flow, proofs, session, step: { kind: 'identify' } };
    // Met already (nextStep's own first answer): what else the person has set up does not matter,
    // so the strategies are not asked (a statement each, on every finished sign-in).
    if (satisfies(proofs, flow.requirements.policy)) return { flow, proofs, session, step: { kind: 'done' } };
    return { flow, proofs, session, step: nextStep(proofs, flow.requirements.policy, await this.enrolled(flow.user_id)) };
  }

  /**
   * Records a proof for the flow's person (or names the person, when the flow had none yet).
   * A proof for another person than the flow's is refused (false).
   */
  async addProof(flow: DbLoginFlowRow, userId: string, proof: Proof): Promise<DbLoginFlowRow | undefined> {
    if (flow.user_id && flow.user_id !== userId) return undefined;
    // A person named for the first time here: a session of someone else no longer counts.
    const sessionId = flow.user_id ? flow.session_id : null;
    const proofs = [...flow.proofs.filter((p) => p.method !== proof.method), proof];
    const [row] = await this.db<DbLoginFlowRow>('login_flows').where({ id: flow.id }).whereNull('outcome')
      .update({ user_id: userId, session_id: sessionId, proofs: JSON.stringify(proofs) as never })
      .returning('*');
    return row as DbLoginFlowRow | undefined;
  }

  async setHint(flow: DbLoginFlowRow, hintUserId: string | undefined): Promise<void> {
    await this.db('login_flows').where({ id: flow.id }).update({ state: JSON.stringify({ ...flow.state, hintUserId: hintUserId ?? null }) });
  }

  /**
   * Ends the flow as signed in: the step-up is added to the browser's session, or a new session
   * starts (replacing another person's). Sets the session cookie; returns where to send the browser.
   */
  async finish(ctx: Context, state: FlowState, actor: Actor): Promise<string> {
    const { flow, session } = state;
    const userId = flow.user_id!;
    let opened = session && flow.proofs.length
      ? await this.sessions.addProofs(session, flow.proofs, actor)
      : undefined;
    if (!opened && session && !flow.proofs.length) {
      // Nothing new was proven: the session met the request as it was (a race with another tab).
      await this.#conclude(flow, 'done', null, session.id);
      return withFlow(flow.return_to, flow.id);
    }
    if (!opened) {
      const current = await this.currentSession(ctx);
      if (current) await this.sessions.end(current.userId, current.id, 'replaced', actor);
      opened = await this.sessions.start(userId, flow.proofs, { ip: ctx.ip, userAgent: ctx.get('user-agent') || null }, actor);
    }
    this.setSessionCookie(ctx, opened.token, opened.session.expiresAt);
    ctx.state.oneidSession = opened.session;
    await this.#conclude(flow, 'done', null, opened.session.id);
    return withFlow(flow.return_to, flow.id);
  }

  /** Ends a session of this browser (sign-out). */
  async endSession(session: Session, reason: 'signed_out' | 'saml_logout', actor: Actor): Promise<void> {
    await this.sessions.end(session.userId, session.id, reason, actor);
  }

  /** Ends the flow without a sign-in: the person cancelled, or the policy cannot be met. */
  async abandon(flow: DbLoginFlowRow, outcome: 'cancelled' | 'unmet', reason: string): Promise<string> {
    await this.#conclude(flow, outcome, reason, flow.session_id);
    return withFlow(flow.return_to, flow.id);
  }

  async #conclude(flow: DbLoginFlowRow, outcome: string, reason: string | null, sessionId: string | null): Promise<void> {
    // The flow row lives on until it expires, for outcome(); its proofs are no longer needed.
    await this.db('login_flows').where({ id: flow.id }).update({ outcome, outcome_reason: reason, session_id: sessionId, proofs: '[]' });
  }

  /**
   * How this browser's flow `id` ended, for the caller it returns to: once (a finished flow is
   * taken, so it cannot be replayed for a later request), and only at the `returnTo` it was
   * started with. A finished sign-in is reported only while its session is still the browser's.
   */
  async outcome(ctx: Context, id: string, returnTo: string): Promise<FlowOutcome> {
    const flow = await this.find(ctx, id, false);
    if (!flow?.outcome || flow.return_to !== returnTo) return { status: 'none' };
    const [taken] = await this.db<DbLoginFlowRow>('login_flows').where({ id: flow.id, outcome: flow.outcome })
      .whereNot({ outcome: 'taken' }).update({ outcome: 'taken' }).returning('id');
    if (!taken) return { status: 'none' };
    if (flow.outcome === 'done') {
      const session = await this.currentSession(ctx);
      return session && session.id === flow.session_id ? { status: 'done', session } : { status: 'none' };
    }
    return { status: flow.outcome as 'cancelled' | 'unmet', reason: flow.outcome_reason ?? '' };
  }
}

const withFlow = (returnTo: string, id: string): string => `${returnTo}${returnTo.includes('?') ? '&' : '?'}flow=${id}`;

/** The amr a session reports (RFC 8176). */
export const amrOfSession = (session: Session): string[] => amrOf(session.methods);
