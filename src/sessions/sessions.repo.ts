import type { Knex } from 'knex';
import type { Proof } from '../credentials/methods.ts';

type Db = Knex | Knex.Transaction;

export interface DbSessionRow {
  id: string;
  token_hash: string;
  user_id: string;
  created_at: Date;
  last_seen_at: Date;
  auth_time: Date;
  methods: Proof[];
  acr: string | null;
  amr: string[];
  user_agent: string | null;
  ip: string | null;
  expires_at: Date;
  ended_at: Date | null;
  ended_reason: string | null;
}

export interface Session {
  id: string;
  userId: string;
  createdAt: Date;
  lastSeenAt: Date;
  /** Seconds since the epoch, as OIDC's auth_time. */
  authTime: number;
  methods: Proof[];
  acr: string | null;
  amr: string[];
  userAgent: string | null;
  ip: string | null;
  expiresAt: Date;
  endedAt: Date | null;
  endedReason: string | null;
}

export const toSession = (r: DbSessionRow): Session => ({
  id: r.id,
  userId: r.user_id,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  authTime: Math.floor(r.auth_time.getTime() / 1000),
  methods: r.methods,
  acr: r.acr,
  amr: r.amr,
  userAgent: r.user_agent,
  ip: r.ip,
  expiresAt: r.expires_at,
  endedAt: r.ended_at,
  endedReason: r.ended_reason,
});

/**
 * A live session by its token's hash: not ended, not expired, its person active, and signed in
 * after the person's sessions were last ended (a password set by someone else).
 */
export async function findLiveSessionByTokenHash(db: Db, tokenHash: string): Promise<Session | undefined> {
  const row = await db<DbSessionRow>('sessions as s')
    .join('users as u', 'u.id', 's.user_id')
    .where('s.token_hash', tokenHash)
    .whereNull('s.ended_at')
    .where('s.expires_at', '>', db.fn.now())
    .where('u.status', 'active')
    .where((q) => q.whereNull('u.sessions_ended_at').orWhereRaw('s.auth_time > u.sessions_ended_at'))
    .first('s.*');
  return row ? toSession(row as DbSessionRow) : undefined;
}

export async function findLiveSessionsOfUser(db: Db, userId: string): Promise<Session[]> {
  const rows = await db<DbSessionRow>('sessions')
    .where({ user_id: userId })
    .whereNull('ended_at')
    .where('expires_at', '>', db.fn.now())
    .orderBy('last_seen_at', 'desc');
  return rows.map(toSession);
}

export async function insertSession(db: Db, row: Omit<DbSessionRow, 'created_at' | 'last_seen_at' | 'ended_at' | 'ended_reason'>): Promise<Session> {
  const [inserted] = await db<DbSessionRow>('sessions')
    .insert({ ...row, methods: JSON.stringify(row.methods) as never })
    .returning('*');
  return toSession(inserted as DbSessionRow);
}

/** Step-up: the session's methods, level and token change together; ended sessions are not touched. */
export async function updateSessionProofs(db: Db, id: string, values: { tokenHash: string; methods: Proof[]; acr: string | null; amr: string[]; authTime?: Date }): Promise<Session | undefined> {
  const [row] = await db<DbSessionRow>('sessions')
    .where({ id })
    .whereNull('ended_at')
    .update({
      token_hash: values.tokenHash,
      methods: JSON.stringify(values.methods) as never,
      acr: values.acr,
      amr: values.amr,
      last_seen_at: db.fn.now() as never,
      ...(values.authTime ? { auth_time: values.authTime } : {}),
    })
    .returning('*');
  return row ? toSession(row as DbSessionRow) : undefined;
}

/**
 * Moves a live session's sign-in time forward to `at` (never back): the person proved who they
 * are again there. Scoped to the person; false when no such live session.
 */
export async function renewSessionAuthTime(db: Db, userId: string, id: string, at: Date): Promise<boolean> {
  const n = await db('sessions').where({ id, user_id: userId }).whereNull('ended_at')
    .update({ auth_time: db.raw('greatest(auth_time, ?::timestamptz)', [at]) });
  return n > 0;
}

export async function touchSession(db: Db, id: string): Promise<void> {
  await db('sessions').where({ id }).whereNull('ended_at').update({ last_seen_at: db.fn.now() });
}

/** Ends sessions; returns the ids ended. */
export async function endSessions(db: Db, where: { id?: string; userId: string; exceptId?: string }, reason: string): Promise<string[]> {
  const q = db('sessions').where({ user_id: where.userId }).whereNull('ended_at');
  if (where.id) q.where({ id: where.id });
  if (where.exceptId) q.whereNot({ id: where.exceptId });
  const rows = await q.update({ ended_at: db.fn.now(), ended_reason: reason }).returning('id') as { id: string }[];
  return rows.map((r) => r.id);
}
