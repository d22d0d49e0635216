// Append-only, hash-chained audit log. Every event is written in the transaction of the
// change it records (a plain insert: writers never wait for each other). Shortly after
// commit, the chainer (chainPendingAuditEvents, run by every node about every quarter
// second, one at a time through an advisory lock) gives each new event its chain position,
// the hash of the event before it and its own hash. Any later edit or deletion of a chained
// row breaks the chain at that point, and `oneid audit verify` names it.
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

/** Drops anything that looks like a secret from a changes object, at any depth. */
export function redactChanges(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactChanges);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEYS.test(k) ? '[redacted]' : redactChanges(v)]));
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
 * inserted. For a WITH clause of that statement; the condition may name its other clauses.
 */
export function auditInsertWhere(db: Tx, actor: Actor, entries: readonly AuditEntry[], condition: string): Knex.Raw {
  return db.raw(
    `insert into audit_events (${AUDIT_COLUMNS}) select ${AUDIT_COLUMNS} from json_populate_recordset(null::audit_events, ?::json) e where ${condition}`,
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
    const rows: DbAuditRow[] = await trx('audit_events').whereNull('chain_pos').orderBy('seq').limit(batch);
    if (!rows.length) return 0;
    const last = await trx('audit_events').whereNotNull('chain_pos').orderBy('chain_pos', 'desc')
      .first<{ hash: string; chain_pos: number } | undefined>('hash', 'chain_pos');
    let prevHash = last?.hash ?? GENESIS_HASH;
    let pos = Number(last?.chain_pos ?? 0);
    const updates: { seq: number; pos: number; prev: string; hash: string }[] = [];
    for (const r of rows) {
      pos += 1;
      const hash = eventHash(prevHash, chainFieldsOf(r));
      updates.push({ seq: Number(r.seq), pos, prev: prevHash, hash });
      prevHash = hash;
    }
    await trx.raw(
      `update audit_events a set chain_pos = u.pos, prev_hash = u.prev, hash = u.hash
         from (select unnest(?::bigint[]) as seq, unnest(?::bigint[]) as pos, unnest(?::text[]) as prev, unnest(?::text[]) as hash) u
        where a.seq = u.seq`,
      [updates.map((u) => u.seq), updates.map((u) => u.pos), updates.map((u) => u.prev), updates.map((u) => u.hash)],
    );
    return rows.length;
  });
}

/** Chains until nothing is pending (used before verification and by tests). */
export async function chainAllPendingAuditEvents(db: Knex): Promise<void> {
  for (let i = 0; i < 10000; i += 1) {
    const chained = await chainPendingAuditEvents(db);
    if (chained === 0) {
      const pending = await db('audit_events').whereNull('chain_pos').first('seq');
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

interface DbAuditRow extends Omit<ChainFields, 'occurred_at'> { seq: number; occurred_at: Date; chain_pos: number | null; prev_hash: string | null; hash: string | null }

const toEvent = (r: DbAuditRow): AuditEvent => ({
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
  const query = db<DbAuditRow>('audit_events').orderBy('seq', 'desc').limit(q.limit);
  if (q.actorId) query.where('actor_id', q.actorId);
  if (q.actorType) query.where('actor_type', q.actorType);
  if (q.action) {
    if (q.action.endsWith('.*')) query.where('action', 'like', `${q.action.slice(0, -1).replace(/[%_\\]/g, '\\$&')}%`);
    else query.where('action', q.action);
  }
  if (q.targetType) query.where('target_type', q.targetType);
  if (q.targetId) query.where('target_id', q.targetId);
  if (q.since) query.where('occurred_at', '>=', q.since);
  if (q.until) query.where('occurred_at', '<', q.until);
  if (q.before !== undefined) query.where('seq', '<', q.before);
  return (await query).map(toEvent);
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  /** Events committed but not chained yet (verify chains them first when asked to). */
  pending: number;
  firstBroken?: { seq: number; id: string; reason: string };
}

/** Walks the chain in chain order, in batches, and names the first event whose link is broken. */
export async function verifyAuditChain(db: Tx, batch = 5000): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let checked = 0;
  let after = 0;
  let expectedPos = 1;
  const [{ count: pending }] = await db('audit_events').whereNull('chain_pos').count<{ count: number }[]>({ count: '*' }) as [{ count: number }];
  for (;;) {
    const rows: DbAuditRow[] = await db('audit_events').whereNotNull('chain_pos').andWhere('chain_pos', '>', after).orderBy('chain_pos').limit(batch);
    if (!rows.length) return { ok: true, checked, pending: Number(pending) };
    for (const r of rows) {
      const pos = Number(r.chain_pos);
      let reason: string | undefined;
      if (pos !== expectedPos) reason = `the event at chain position ${expectedPos} is missing (found ${pos})`;
      else if (r.prev_hash !== prevHash) reason = 'prev_hash does not match the hash of the event before it (an event was removed or altered)';
      else if (eventHash(prevHash, chainFieldsOf(r)) !== r.hash) reason = 'the event content does not match its hash (the row was altered)';
      if (reason) return { ok: false, checked, pending: Number(pending), firstBroken: { seq: Number(r.seq), id: r.id, reason } };
      prevHash = r.hash!;
      checked += 1;
      after = pos;
      expectedPos = pos + 1;
    }
  }
}
