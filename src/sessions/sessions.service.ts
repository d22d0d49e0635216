// OneID's own session: one per signed-in browser, shared by every protocol (OIDC now, SAML
// next) and the account pages. The browser holds a random token in a cookie; the table holds
// its SHA-256 (a database read gives no usable cookie). The token is replaced at every sign-in
// and step-up, so a token seen before a step-up does not carry the stronger session.
import type { Knex } from 'knex';
import { newId, newSecret, sha256 } from '../shared/ids.ts';
import type { Proof } from '../credentials/methods.ts';
import { ACR, amrOf, levelOf } from '../access/signin-policy.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import {
  endSessions, findLiveSessionByTokenHash, findLiveSessionsOfUser, insertSession, renewSessionAuthTime, touchSession, updateSessionProofs,
  type Session,
} from './sessions.repo.ts';

export type { Session } from './sessions.repo.ts';

/** Why a session ended (sessions.ended_reason). */
export type EndReason = 'signed_out' | 'signed_out_everywhere' | 'replaced' | 'suspended' | 'deprovisioned' | 'password_set' | 'admin'
  /** A SAML app asked for single logout (saml/slo.routes.ts). */
  | 'saml_logout';

export interface SessionsOptions {
  /** How long a session lives from its sign-in. */
  ttlSeconds: number;
}

/** A session and the cookie value that now opens it (after a sign-in or step-up). */
export interface Opened { session: Session; token: string }

const acrOf = (proofs: readonly Proof[]): string | null => {
  const level = levelOf(proofs);
  return level ? ACR[level] : null;
};

/** Last seen is written at most this often per session (seconds): a read per request, not a write. */
const TOUCH_EVERY = 60;

export class SessionsService {
  constructor(private readonly db: Knex, private readonly options: SessionsOptions) {}

  /** The live session a cookie value opens, if any. */
  async find(token: string | undefined): Promise<Session | undefined> {
    if (!token || token.length > 200) return undefined;
    const session = await findLiveSessionByTokenHash(this.db, sha256(token));
    if (session && Date.now() - session.lastSeenAt.getTime() > TOUCH_EVERY * 1000) await touchSession(this.db, session.id);
    return session;
  }

  /** A new session for a person who just signed in with `proofs`. Audited as session.started. */
  async start(userId: string, proofs: Proof[], device: { ip?: string | null; userAgent?: string | null }, actor: Actor, trx?: Knex.Transaction): Promise<Opened> {
    const token = newSecret();
    const authTime = new Date(Math.max(...proofs.map((p) => p.at)) * 1000);
    // Sessions ended or expired a month ago go, a bounded batch at a time, as new ones start.
    if (Math.random() < 0.05) {
      await (trx ?? this.db).raw(`delete from sessions where id in (select id from sessions
        where coalesce(ended_at, expires_at) < now() - interval '30 days' limit 500)`);
    }
    const session = await insertSession(trx ?? this.db, {
      id: newId(), token_hash: sha256(token), user_id: userId, auth_time: authTime, methods: proofs,
      acr: acrOf(proofs), amr: amrOf(proofs), user_agent: device.userAgent?.slice(0, 500) ?? null, ip: device.ip ?? null,
      expires_at: new Date(Date.now() + this.options.ttlSeconds * 1000),
    });
    await recordAudit(trx ?? this.db, actor, {
      action: 'session.started', targetType: 'session', targetId: session.id,
      changes: { userId, acr: session.acr, amr: session.amr, methods: proofs.map((p) => p.method) },
    });
    return { session, token };
  }

  /**
   * Step-up: adds what was just proven to a live session and replaces its token. auth_time stays
   * the session's sign-in; with `reauthenticated` (the person proved who they are again, e.g.
   * for max_age), it moves to now. Audited as session.stepped_up. Undefined if the session ended.
   */
  async addProofs(session: Session, proofs: Proof[], actor: Actor, reauthenticated = false): Promise<Opened | undefined> {
    const token = newSecret();
    const methods = [...session.methods.filter((m) => !proofs.some((p) => p.method === m.method)), ...proofs];
    const updated = await updateSessionProofs(this.db, session.id, {
      tokenHash: sha256(token), methods, acr: acrOf(methods), amr: amrOf(methods),
      ...(reauthenticated ? { authTime: new Date(Math.max(...proofs.map((p) => p.at)) * 1000) } : {}),
    });
    if (!updated) return undefined;
    await recordAudit(this.db, actor, {
      action: 'session.stepped_up', targetType: 'session', targetId: session.id,
      changes: { userId: session.userId, acr: updated.acr, amr: updated.amr, added: proofs.map((p) => p.method) },
      before: { acr: session.acr, amr: session.amr },
    });
    return { session: updated, token };
  }

  listForUser(userId: string): Promise<Session[]> {
    return findLiveSessionsOfUser(this.db, userId);
  }

  /** Ends one of a person's sessions. Audited as session.ended; false if it was not live. */
  async end(userId: string, sessionId: string, reason: EndReason, actor: Actor): Promise<boolean> {
    const ended = await endSessions(this.db, { userId, id: sessionId }, reason);
    if (ended.length) await recordAudit(this.db, actor, { action: 'session.ended', targetType: 'session', targetId: sessionId, changes: { userId, reason } });
    return ended.length > 0;
  }

  /** Ends every session of a person (but `exceptId`). Audited as sessions.ended with the count. */
  async endAll(userId: string, reason: EndReason, actor: Actor, exceptId?: string, trx?: Knex.Transaction): Promise<number> {
    return endAllSessions(trx ?? this.db, userId, reason, actor, exceptId);
  }
}

/** For services that end sessions inside their own transaction (suspension, password set). */
export async function endAllSessions(db: Knex | Knex.Transaction, userId: string, reason: EndReason, actor: Actor, exceptId?: string): Promise<number> {
  const ended = await endSessions(db, { userId, exceptId }, reason);
  if (ended.length) {
    await recordAudit(db, actor, { action: 'sessions.ended', targetType: 'user', targetId: userId, changes: { reason, count: ended.length, ...(exceptId ? { kept: exceptId } : {}) } });
  }
  return ended.length;
}

/**
 * A password set by its owner from session `keptId` (inside the transaction that set it, at
 * `endedAt` = users.sessions_ended_at): every other session of theirs ends, and the kept one's
 * sign-in time moves past `endedAt` (to the next whole second, as OIDC's auth_time counts
 * seconds), or findLiveSessionByTokenHash would refuse it like the others.
 */
export async function keepOnlySession(db: Knex | Knex.Transaction, userId: string, keptId: string, endedAt: Date, reason: EndReason, actor: Actor): Promise<number> {
  const ended = await endAllSessions(db, userId, reason, actor, keptId);
  await renewSessionAuthTime(db, userId, keptId, new Date((Math.floor(endedAt.getTime() / 1000) + 1) * 1000));
  return ended;
}
