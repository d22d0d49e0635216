// Append-only, hash-chained audit log. Every event is written in the transaction of the
// change it records (a plain insert: writers never wait for each other; a trigger lists it in
// audit_pending). Shortly after commit, the chainer (chainPendingAuditEvents, run by every node
// about every quarter second, one at a time through an advisory lock) gives each pending event
// its chain position, the hash of the event before it and its own hash, in audit_chain
// (audit_events itself is never updated). Any later edit or deletion of a chained event breaks
// the chain at that point, and `oneid audit verify` names it.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { newId } from '../shared/ids.ts';
import type { Tx } from '../db/knex.ts';

export type ActorType = 'user' | 'admin_client' | 'scim_client' | 'system' | 'anonymous';

export interface Actor {
  type: ActorType;
  id?: string | null;
  ip?: string | null;
  userAgent?: string | null;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: 'cli' };

export interface AuditEntry {
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  changes?: Record<string, unknown> | null;
}

export const GENESIS_HASH = '0'.repeat(64);
const CHAIN_LOCK = 727002;
/** Events hashed between two yields to the event loop (see chainPendingAuditEvents). */
const CHAIN_SLICE = 25;

const chainFieldsOf = (r: DbAuditRow): ChainFields => ({
  id: r.id, occurred_at: new Date(r.occurred_at).toISOString(), actor_type: r.actor_type, actor_id: r.actor_id,
  action: r.action, target_type: r.target_type, target_id: r.target_id, ip: r.ip, user_agent: r.user_agent, changes: r.changes,
});

/** JSON with object keys sorted at every level, so the same data always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

interface ChainFields {
  id: string;
  occurred_at: string;
  actor_type: string;
  actor_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  user_agent: string | null;
  changes: unknown;
}

export function eventHash(prevHash: string, e: ChainFields): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(e)).digest('hex');
}

const SECRET_KEYS = /pass(word)?|secret|token|hash|private|credential/i;
/** Names the pattern catches that hold no secret: settings an auditor needs to read. */
const NOT_SECRET = new Set(['idTokenSigningAlg']);

/** Drops anything that looks like a secret from a changes object, at any depth. */
export function redactChanges(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactChanges);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEYS.test(k) && !NOT_SECRET.has(k) ? '[redacted]' : redactChanges(v)]));
  }
  return value instanceof Date ? value.toISOString() : value;
}

/** The row of one event as it is inserted: chain position and hashes come later (the chainer). */
function auditRow(actor: Actor, entry: AuditEntry): Omit<ChainFields, 'changes'> & { changes: string | null } {
  const { changes, ...row } = auditRecord(actor, entry);
  return { ...row, changes: changes === null ? null : JSON.stringify(changes) };
}

/** auditRow with `changes` as the (redacted) value itself, for SQL that reads the rows from JSON. */
function auditRecord(actor: Actor, entry: AuditEntry): ChainFields {
  const changes = entry.changes ? redactChanges(entry.changes) : null;
  return {
    id: newId(),
    occurred_at: new Date().toISOString(),
    actor_type: actor.type,
    actor_id: actor.id ?? null,
    action: entry.action,
    target_type: entry.targetType ?? null,
    target_id: entry.targetId ?? null,
    ip: actor.ip ?? null,
    user_agent: actor.userAgent ? actor.userAgent.slice(0, 512) : null,
    changes,
  };
}

const AUDIT_COLUMNS = 'id, occurred_at, actor_type, actor_id, action, target_type, target_id, ip, user_agent, changes';

/**
 * The insert of one or more events (at least one), not yet run: await it, or send it with
 * another statement of the same transaction (a WITH clause, see groups.repo's updateGroupById).
 */
export function auditInsert(db: Tx, actor: Actor, entries: readonly AuditEntry[]): Knex.QueryBuilder {
  if (!entries.length) throw new Error('auditInsert needs at least one event');
  return db('audit_events').insert(entries.map((entry) => auditRow(actor, entry)));
}

/**
 * As auditInsert, for a statement that itself finds out which of its events happen: `entries` are
 * the candidates, and only those whose row (`e`, an audit_events row) meets `condition` are
 * inserted. For a WITH clause of that statement; the condition may name its other clauses. It
 * returns the events' seq, so that other clauses can wait for it.
 */
export function auditInsertWhere(db: Tx, actor: Actor, entries: readonly AuditEntry[], condition: string): Knex.Raw {
  return db.raw(
    `insert into audit_events (${AUDIT_COLUMNS}) select ${AUDIT_COLUMNS} from json_populate_recordset(null::audit_events, ?::json) e where ${condition} returning seq`,
    [JSON.stringify(entries.map((entry) => auditRecord(actor, entry)))],
  );
}

/** Appends one event, inside the caller's transaction (or on its own); it is chained shortly after commit. */
export async function recordAudit(trx: Knex.Transaction | Knex, actor: Actor, entry: AuditEntry): Promise<void> {
  await auditInsert(trx, actor, [entry]);
}

/**
 * Links committed, unchained events into the chain, oldest first, in batches. Only one
 * chainer runs at a time (cluster-wide); the others return 0 at once. Events of transactions
 * still open are invisible here and are chained by a later pass, after the ones before them.
 */
export async function chainPendingAuditEvents(db: Knex, batch = 2000): Promise<number> {
  return db.transaction(async (trx) => {
    const lock = await trx.raw('select pg_try_advisory_xact_lock(?) as locked', [CHAIN_LOCK]);
    if (!(lock.rows?.[0]?.locked ?? lock[0]?.locked)) return 0;
    // An event deleted before it was chained leaves its pending row alone (e.id null): dropped here.
    const pending: (DbAuditRow & { pending_seq: number })[] = (await trx.raw(
      'select p.seq as pending_seq, e.* from audit_pending p left join audit_events e on e.seq = p.seq order by p.seq limit ?', [batch],
    )).rows;
    if (!pending.length) return 0;
    const last = await trx('audit_chain').orderBy('pos', 'desc').first<{ hash: string; pos: number } | undefined>('hash', 'pos');
    let prevHash = last?.hash ?? GENESIS_HASH;
    let pos = Number(last?.pos ?? 0);
    const links: { seq: number; pos: number; prev: string; hash: string }[] = [];
    for (const [i, r] of pending.entries()) {
      // Requests go on between slices: a pass over a few hundred events would otherwise hold the
      // event loop for milliseconds (the hashing), and show in every request's latency it meets.
      if (i > 0 && i % CHAIN_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      if (r.id === null) continue;
      pos += 1;
      const hash = eventHash(prevHash, chainFieldsOf(r));
      links.push({ seq: Number(r.seq), pos, prev: prevHash, hash });
      prevHash = hash;
    }
    await trx.raw(
      `with done as (delete from audit_pending where seq = any(?::bigint[]))
       insert into audit_chain (pos, seq, prev_hash, hash)
       select * from unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[])`,
      [pending.map((r) => Number(r.pending_seq)), links.map((l) => l.pos), links.map((l) => l.seq), links.map((l) => l.prev), links.map((l) => l.hash)],
    );
    return pending.length;
  });
}

/** Chains until nothing is pending (used before verification and by tests). */
export async function chainAllPendingAuditEvents(db: Knex): Promise<void> {
  for (let i = 0; i < 10000; i += 1) {
    const chained = await chainPendingAuditEvents(db);
    if (chained === 0) {
      const pending = await db('audit_pending').first('seq');
      if (!pending) return;
      await new Promise((r) => setTimeout(r, 50)); // another node holds the chainer lock
    }
  }
}

/** For callers without a transaction of their own (sign-in events): one insert, atomic by itself. */
export function recordAuditNow(db: Knex, actor: Actor, entry: AuditEntry): Promise<void> {
  return recordAudit(db, actor, entry);
}

export interface AuditEvent {
  seq: number;
  id: string;
  occurredAt: string;
  actorType: string;
  actorId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  changes: unknown;
  /** null until the chainer has linked the event (a fraction of a second after commit). */
  hash: string | null;
}

interface DbAuditRow extends Omit<ChainFields, 'occurred_at'> { seq: number; occurred_at: Date }

const toEvent = (r: DbAuditRow & { hash: string | null }): AuditEvent => ({
  seq: Number(r.seq), id: r.id, occurredAt: new Date(r.occurred_at).toISOString(), actorType: r.actor_type, actorId: r.actor_id,
  action: r.action, targetType: r.target_type, targetId: r.target_id, ip: r.ip, userAgent: r.user_agent, changes: r.changes, hash: r.hash,
});

export interface AuditQuery {
  actorId?: string;
  actorType?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  since?: Date;
  until?: Date;
  /** Exclusive upper bound on seq: events are listed newest first. */
  before?: number;
  limit: number;
}

export async function findAuditEvents(db: Tx, q: AuditQuery): Promise<AuditEvent[]> {
  const query = db('audit_events as e').leftJoin('audit_chain as c', 'c.seq', 'e.seq').select('e.*', 'c.hash')
    .orderBy('e.seq', 'desc').limit(q.limit);
  if (q.actorId) query.where('e.actor_id', q.actorId);
  if (q.actorType) query.where('e.actor_type', q.actorType);
  if (q.action) {
    if (q.action.endsWith('.*')) query.where('e.action', 'like', `${q.action.slice(0, -1).replace(/[%_\\]/g, '\\$&')}%`);
    else query.where('e.action', q.action);
  }
  if (q.targetType) query.where('e.target_type', q.targetType);
  if (q.targetId) query.where('e.target_id', q.targetId);
  if (q.since) query.where('e.occurred_at', '>=', q.since);
  if (q.until) query.where('e.occurred_at', '<', q.until);
  if (q.before !== undefined) query.where('e.seq', '<', q.before);
  return ((await query) as (DbAuditRow & { hash: string | null })[]).map(toEvent);
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  /** Events committed but not chained yet (verify chains them first when asked to). */
  pending: number;
  /** id is null when the event itself is gone (deleted after it was chained). */
  firstBroken?: { seq: number; id: string | null; reason: string };
}

/** Walks the chain in chain order, in batches, and names the first event whose link is broken. */
export async function verifyAuditChain(db: Tx, batch = 5000): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let checked = 0;
  let after = 0;
  const [{ count: pending }] = await db('audit_pending').count<{ count: number }[]>({ count: '*' }) as [{ count: number }];
  for (;;) {
    const rows: (Partial<DbAuditRow> & { pos: number; chain_seq: number; prev_hash: string; hash: string })[] = (await db.raw(
      `select c.pos, c.seq as chain_seq, c.prev_hash, c.hash, e.*
         from audit_chain c left join audit_events e on e.seq = c.seq
        where c.pos > ? order by c.pos limit ?`, [after, batch],
    )).rows;
    if (!rows.length) return { ok: true, checked, pending: Number(pending) };
    for (const r of rows) {
      const pos = Number(r.pos);
      const seq = Number(r.chain_seq);
      let reason: string | undefined;
      if (pos !== after + 1) reason = `the event at chain position ${after + 1} is missing (found ${pos})`;
      else if (!r.id) reason = `the event at chain position ${pos} was deleted`;
      else if (r.prev_hash !== prevHash) reason = 'prev_hash does not match the hash of the event before it (an event was removed or altered)';
      else if (eventHash(prevHash, chainFieldsOf(r as DbAuditRow)) !== r.hash) reason = 'the event content does not match its hash (the row was altered)';
      if (reason) return { ok: false, checked, pending: Number(pending), firstBroken: { seq, id: r.id ?? null, reason } };
      prevHash = r.hash;
      checked += 1;
      after = pos;
    }
  }
}
