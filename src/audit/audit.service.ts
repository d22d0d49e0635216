// Append-only, hash-chained audit log. Every event is written in the transaction of the
// change it records; each carries the hash of the previous event, so any edit or deletion
// of a past row breaks the chain at that point and `oneid audit verify` names it.
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

/**
 * Appends one event. Must run inside the caller's transaction: the advisory lock orders
 * writers cluster-wide and is released at commit, so the chain never forks.
 */
export async function recordAudit(trx: Knex.Transaction, actor: Actor, entry: AuditEntry): Promise<void> {
  await trx.raw('select pg_advisory_xact_lock(?)', [CHAIN_LOCK]);
  const last = await trx('audit_events').select('hash').orderBy('seq', 'desc').first<{ hash: string } | undefined>();
  const fields: ChainFields = {
    id: newId(),
    occurred_at: new Date().toISOString(),
    actor_type: actor.type,
    actor_id: actor.id ?? null,
    action: entry.action,
    target_type: entry.targetType ?? null,
    target_id: entry.targetId ?? null,
    ip: actor.ip ?? null,
    user_agent: actor.userAgent ? actor.userAgent.slice(0, 512) : null,
    changes: entry.changes ? redactChanges(entry.changes) : null,
  };
  const prevHash = last?.hash ?? GENESIS_HASH;
  await trx('audit_events').insert({
    ...fields,
    changes: fields.changes === null ? null : JSON.stringify(fields.changes),
    prev_hash: prevHash,
    hash: eventHash(prevHash, fields),
  });
}

/** Convenience for callers without a transaction of their own (sign-in events). */
export function recordAuditNow(db: Knex, actor: Actor, entry: AuditEntry): Promise<void> {
  return db.transaction((trx) => recordAudit(trx, actor, entry));
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
  hash: string;
}

interface DbAuditRow extends Omit<ChainFields, 'occurred_at'> { seq: number; occurred_at: Date; prev_hash: string; hash: string }

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
  firstBroken?: { seq: number; id: string; reason: string };
}

/** Walks the chain in order, in batches, and names the first event whose link is broken. */
export async function verifyAuditChain(db: Tx, batch = 5000): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let checked = 0;
  let after = 0;
  for (;;) {
    const rows: DbAuditRow[] = await db('audit_events').where('seq', '>', after).orderBy('seq').limit(batch);
    if (!rows.length) return { ok: true, checked };
    for (const r of rows) {
      const seq = Number(r.seq);
      const fields: ChainFields = {
        id: r.id, occurred_at: new Date(r.occurred_at).toISOString(), actor_type: r.actor_type, actor_id: r.actor_id,
        action: r.action, target_type: r.target_type, target_id: r.target_id, ip: r.ip, user_agent: r.user_agent, changes: r.changes,
      };
      let reason: string | undefined;
      // seq may have gaps (a rolled-back transaction consumes a sequence value); the links are what count.
      if (r.prev_hash !== prevHash) reason = 'prev_hash does not match the hash of the event before it (an event was removed or altered)';
      else if (eventHash(prevHash, fields) !== r.hash) reason = 'the event content does not match its hash (the row was altered)';
      if (reason) return { ok: false, checked, firstBroken: { seq, id: r.id, reason } };
      prevHash = r.hash;
      checked += 1;
      after = seq;
    }
  }
}
