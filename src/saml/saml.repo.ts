// SAML's own rows: persistent NameIDs, AuthnRequests waiting for a sign-in, and the SAML apps a
// OneID session has signed in to (whom single logout must tell).
import type { Knex } from 'knex';
import { newId, newSecret } from '../shared/ids.ts';
import type { CheckedAuthnRequest } from './authn-request.ts';
import type { NamedSubject } from './logout.ts';

/** How long an AuthnRequest waits for its sign-in (as long as a sign-in flow may take). */
const PENDING_TTL_SECONDS = 30 * 60;

/** The person's persistent NameID for the app: created on first use unless the SP forbade it (AllowCreate=false). */
export async function persistentNameId(db: Knex, appId: string, userId: string, allowCreate: boolean): Promise<string | undefined> {
  const existing = await db('saml_name_ids').where({ app_id: appId, user_id: userId }).first('name_id') as { name_id: string } | undefined;
  if (existing || !allowCreate) return existing?.name_id;
  await db('saml_name_ids').insert({ app_id: appId, user_id: userId, name_id: newSecret(24) }).onConflict(['app_id', 'user_id']).ignore();
  const row = await db('saml_name_ids').where({ app_id: appId, user_id: userId }).first('name_id') as { name_id: string };
  return row.name_id;
}

/** The person behind a persistent NameID of an app. */
export async function userOfPersistentNameId(db: Knex, appId: string, nameId: string): Promise<string | undefined> {
  const row = await db('saml_name_ids').where({ app_id: appId, name_id: nameId }).first('user_id') as { user_id: string } | undefined;
  return row?.user_id;
}

export interface PendingRequest { id: string; appId: string; request: CheckedAuthnRequest }

export async function savePendingRequest(db: Knex, appId: string, request: CheckedAuthnRequest): Promise<string> {
  if (Math.random() < 0.05) {
    await db.raw('delete from saml_requests where id in (select id from saml_requests where expires_at < now() limit 500)');
  }
  const id = newId();
  await db('saml_requests').insert({
    id, app_id: appId, request_id: request.requestId ?? null, request: JSON.stringify(request),
    expires_at: new Date(Date.now() + PENDING_TTL_SECONDS * 1000),
  });
  return id;
}

export async function findPendingRequest(db: Knex, id: string): Promise<PendingRequest | undefined> {
  if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
  const row = await db('saml_requests').where({ id }).where('expires_at', '>', db.fn.now()).first() as { id: string; app_id: string; request: CheckedAuthnRequest } | undefined;
  return row ? { id: row.id, appId: row.app_id, request: row.request } : undefined;
}

/** Takes the pending request: true once, so a request is answered once. */
export async function takePendingRequest(db: Knex, id: string): Promise<boolean> {
  return (await db('saml_requests').where({ id }).delete()) === 1;
}

export interface Participant {
  sessionId: string;
  appId: string;
  sessionIndex: string;
  nameId: string;
  nameIdFormat: string;
}

/**
 * Records that the session signed in to the app with this NameID; returns the SessionIndex,
 * which stays the same for the session and app (a new NameID, e.g. a transient one, replaces
 * the last).
 */
export async function recordParticipant(db: Knex, sessionId: string, appId: string, nameId: string, nameIdFormat: string): Promise<string> {
  const result = await db.raw(`insert into saml_session_participants (session_id, app_id, session_index, name_id, name_id_format)
    values (?, ?, ?, ?, ?)
    on conflict (session_id, app_id) do update set name_id = excluded.name_id, name_id_format = excluded.name_id_format
    returning session_index`, [sessionId, appId, `_${newSecret(20)}`, nameId, nameIdFormat]);
  return (result.rows[0] as { session_index: string }).session_index;
}

const toParticipant = (r: { session_id: string; app_id: string; session_index: string; name_id: string; name_id_format: string }): Participant => ({
  sessionId: r.session_id, appId: r.app_id, sessionIndex: r.session_index, nameId: r.name_id, nameIdFormat: r.name_id_format,
});

export async function findParticipants(db: Knex, sessionId: string): Promise<Participant[]> {
  return (await db('saml_session_participants').where({ session_id: sessionId }).orderBy('created_at')).map(toParticipant);
}

/** The participant an SP's LogoutRequest names, by its SessionIndex, or by its NameID when it sends none. */
export async function findParticipant(db: Knex, appId: string, by: { sessionIndex?: string; nameId: string }): Promise<Participant[]> {
  const q = db('saml_session_participants').where({ app_id: appId, name_id: by.nameId });
  if (by.sessionIndex) q.where({ session_index: by.sessionIndex });
  return (await q).map(toParticipant);
}

/** Deletes a session's participant rows: once they are copied into a logout, they have been told (or will be). */
export async function deleteParticipants(db: Knex, sessionId: string): Promise<void> {
  await db('saml_session_participants').where({ session_id: sessionId }).delete();
}

// --- Logouts under way (saml_logouts) -------------------------------------------------------

/** How long a logout may take from hop to hop before its row is gone. */
const LOGOUT_TTL_SECONDS = 10 * 60;

/** A participant of a logout, and how far telling it got. */
export interface LogoutItem extends Omit<Participant, 'sessionId'> {
  state: 'pending' | 'sent' | 'done' | 'failed';
}

/**
 * What saml_logouts.pending holds: the session being logged out and its participants (an item per
 * SAML app, with its progress), or, for a LogoutRequest that arrived by HTTP-POST and waits for
 * the browser to come back by GET with its cookie, what that request named.
 */
export interface LogoutProgress {
  sessionId?: string;
  items: LogoutItem[];
  named?: NamedSubject & { signed: boolean };
}

export interface LogoutState {
  id: string;
  userId: string | null;
  initiatorAppId: string | null;
  initiatorRequestId: string | null;
  relayState: string | null;
  returnTo: string | null;
  progress: LogoutProgress;
  waitingFor: string | null;
  partial: boolean;
}

interface DbLogoutRow {
  id: string; user_id: string | null; initiator_app_id: string | null; initiator_request_id: string | null;
  relay_state: string | null; return_to: string | null; pending: LogoutProgress | unknown[]; waiting_for: string | null; partial: boolean;
}

const toLogout = (r: DbLogoutRow): LogoutState => ({
  id: r.id, userId: r.user_id, initiatorAppId: r.initiator_app_id, initiatorRequestId: r.initiator_request_id,
  relayState: r.relay_state, returnTo: r.return_to,
  progress: Array.isArray(r.pending) ? { items: [] } : r.pending,
  waitingFor: r.waiting_for, partial: r.partial,
});

export async function insertLogout(db: Knex, state: Omit<LogoutState, 'id'>): Promise<LogoutState> {
  if (Math.random() < 0.05) {
    await db.raw('delete from saml_logouts where id in (select id from saml_logouts where expires_at < now() limit 500)');
  }
  const id = newId();
  await db('saml_logouts').insert({
    id, user_id: state.userId, initiator_app_id: state.initiatorAppId, initiator_request_id: state.initiatorRequestId,
    relay_state: state.relayState, return_to: state.returnTo, pending: JSON.stringify(state.progress),
    waiting_for: state.waitingFor, partial: state.partial, expires_at: new Date(Date.now() + LOGOUT_TTL_SECONDS * 1000),
  });
  return { ...state, id };
}

export async function findLogout(db: Knex, id: string): Promise<LogoutState | undefined> {
  if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
  const row = await db('saml_logouts').where({ id }).where('expires_at', '>', db.fn.now()).first() as DbLogoutRow | undefined;
  return row ? toLogout(row) : undefined;
}

/** The logout waiting for an answer to the LogoutRequest with this ID. */
export async function findLogoutWaitingFor(db: Knex, requestId: string): Promise<LogoutState | undefined> {
  const row = await db('saml_logouts').where({ waiting_for: requestId }).where('expires_at', '>', db.fn.now()).first() as DbLogoutRow | undefined;
  return row ? toLogout(row) : undefined;
}

/**
 * Saves a step, only if the row is still at the step it was read at (`expectedWaitingFor`): a
 * LogoutResponse replayed, or two tabs answering at once, moves the chain once. False otherwise.
 */
export async function saveLogoutStep(db: Knex, state: LogoutState, expectedWaitingFor: string | null): Promise<boolean> {
  const q = db('saml_logouts').where({ id: state.id });
  if (expectedWaitingFor === null) q.whereNull('waiting_for'); else q.where({ waiting_for: expectedWaitingFor });
  const updated = await q.update({
    user_id: state.userId, pending: JSON.stringify(state.progress), waiting_for: state.waitingFor, partial: state.partial,
    expires_at: new Date(Date.now() + LOGOUT_TTL_SECONDS * 1000),
  });
  return updated === 1;
}

/** Takes the finished logout: true once. */
export async function takeLogout(db: Knex, id: string): Promise<boolean> {
  return (await db('saml_logouts').where({ id }).delete()) === 1;
}
