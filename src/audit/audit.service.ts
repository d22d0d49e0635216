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
import { AppError } from '../shared/errors.ts';
import type { Tx } from '../db/knex.ts';

export type ActorType = 'user' | 'admin_client' | 'scim_client' | 'system' | 'anonymous';

export interface Actor {
  type: ActorType;
  id?: string | null;
  /** The app (OAuth client_id) whose access token acts: an admin client, or the app a person's token was issued to. */
  clientId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: 'cli' };

export interface AuditEntry {
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  changes?: Record<string, unknown> | null;
  /** For an update: the old values of what `changes` names (see valuesBefore). */
  before?: Record<string, unknown> | null;
}

export const GENESIS_HASH = '0'.repeat(64);
const CHAIN_LOCK = 727002;
/** Events hashed between two yields to the event loop (see chainPendingAuditEvents). */
const CHAIN_SLICE = 25;

const chainFieldsOf = (r: DbAuditRow): ChainFields => ({
  id: r.id, occurred_at: new Date(r.occurred_at).toISOString(), actor_type: r.actor_type, actor_id: r.actor_id,
  action: r.action, target_type: r.target_type, target_id: r.target_id, ip: r.ip, user_agent: r.user_agent, changes: r.changes,
  // Hashed only when set (canonicalJson leaves undefined out): events from before the column hash as they did.
  client_id: r.client_id ?? undefined,
  before: r.before ?? undefined,
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
  client_id?: string | null;
  before?: unknown;
}

export function eventHash(prevHash: string, e: ChainFields): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(e)).digest('hex');
}

const SECRET_KEYS = /pass(word)?|secret|token|hash|private|credential/i;
/** Names the pattern catches that hold no secret: settings an auditor needs to read (a signing algorithm, the password policy's length). */
const NOT_SECRET = new Set(['idTokenSigningAlg', 'passwordMinLength']);

/**
 * Drops anything that looks like a secret from a changes object, at any depth. A boolean or null
 * under such a name stays: it holds no secret and says whether one was set (passwordChanged: true).
 */
export function redactChanges(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactChanges);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k, SECRET_KEYS.test(k) && !NOT_SECRET.has(k) && v !== null && typeof v !== 'boolean' ? '[redacted]' : redactChanges(v),
    ]));
  }
  return value instanceof Date ? value.toISOString() : value;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);

/**
 * The old values beside an update's `changes`: for each field `changes` names, its value in
 * `current` (the record as it was), under the same name; `aliases` maps a name of `changes` to
 * the record's own (name -> displayName). A field holding an object (custom attributes, settings)
 * gives only the keys `changes` names in it. Fields the record does not hold (a role's id, a
 * count) are left out. Secrets are redacted when the event is written, as in `changes`.
 */
export function valuesBefore(current: object, changes: Record<string, unknown>, aliases: Record<string, string> = {}): Record<string, unknown> {
  const record = current as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, next] of Object.entries(changes)) {
    const source = aliases[key] ?? key;
    if (!Object.hasOwn(record, source)) continue;
    const old = record[source] ?? null;
    out[key] = isPlainObject(old) && isPlainObject(next) && !('from' in next && 'to' in next)
      ? Object.fromEntries(Object.keys(next).map((k) => [k, old[k] ?? null]))
      : old;
  }
  return out;
}

/** The row of one event as it is inserted: chain position and hashes come later (the chainer). */
function auditRow(actor: Actor, entry: AuditEntry): Omit<ChainFields, 'changes' | 'before'> & { changes: string | null; before: string | null } {
  const { changes, before, ...row } = auditRecord(actor, entry);
  return { ...row, changes: changes === null ? null : JSON.stringify(changes), before: before == null ? null : JSON.stringify(before) };
}

/** auditRow with `changes` as the (redacted) value itself, for SQL that reads the rows from JSON. */
function auditRecord(actor: Actor, entry: AuditEntry): ChainFields {
  const changes = entry.changes ? redactChanges(entry.changes) : null;
  const before = entry.before && Object.keys(entry.before).length ? redactChanges(entry.before) : null;
  return {
    id: newId(),
    occurred_at: new Date().toISOString(),
    actor_type: actor.type,
    actor_id: actor.id ?? null,
    action: entry.action,
    target_type: entry.targetType ?? null,
    target_id: entry.targetId ?? null,
    client_id: actor.clientId ?? null,
    ip: actor.ip ?? null,
    user_agent: actor.userAgent ? actor.userAgent.slice(0, 512) : null,
    changes,
    before,
  };
}

const AUDIT_COLUMNS = 'id, occurred_at, actor_type, actor_id, action, target_type, target_id, client_id, ip, user_agent, changes, before';

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

/**
 * The insert of events from JSON: `?` is the JSON of auditRecordsJson. For a WITH clause of a
 * statement that writes the change the events record (request-writes.ts).
 */
export const AUDIT_INSERT_FROM_JSON_SQL = `insert into audit_events (${AUDIT_COLUMNS}) select ${AUDIT_COLUMNS} from json_populate_recordset(null::audit_events, ?::json) returning seq`;

/** The events (redacted, with ids and times) as the JSON AUDIT_INSERT_FROM_JSON_SQL reads. */
export function auditRecordsJson(events: readonly { actor: Actor; entry: AuditEntry }[]): string {
  return JSON.stringify(events.map(({ actor, entry }) => auditRecord(actor, entry)));
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

/** What a refused write (403) tried, for recordRefusal. */
export interface Refusal {
  /** The operation as its API names it, e.g. `PATCH /admin/api/v1/users/:id`, `PATCH /scim/v2/Groups/:id`. */
  operation: string;
  targetType?: string | null;
  targetId?: string | null;
  /** The error code the write was refused with, e.g. admin.forbidden, user.admin_roles_forbidden. */
  code: string;
  /** The refusal's message (made by OneID, naming what the caller lacks). */
  reason?: string;
  /** The names of the fields the write tried to set (never their values). */
  fields?: readonly string[];
  /** Other path parameters (a role's or member's id). */
  params?: Record<string, string>;
}

export const REFUSED_ACTION = 'write.refused';
const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max)}...` : text);

/**
 * Records a write refused with 403: who tried what on which target, and the code it was refused
 * with. Written on its own, after the refused write's transaction rolled back (nothing of that
 * write is kept). Every part is cut to a fixed size, so one refused request is one small row
 * whatever it sent; only authenticated callers reach a refusal.
 */
export async function recordRefusal(db: Knex, actor: Actor, r: Refusal): Promise<void> {
  const fields = r.fields ? [...new Set(r.fields)].slice(0, 50).map((f) => cut(f, 64)) : [];
  const params = Object.entries(r.params ?? {}).slice(0, 5).map(([k, v]) => [cut(k, 32), cut(v, 128)]);
  await recordAudit(db, actor, {
    action: REFUSED_ACTION,
    targetType: r.targetType ? cut(r.targetType, 50) : null,
    targetId: r.targetId ? cut(r.targetId, 255) : null,
    changes: {
      operation: cut(r.operation, 200), code: cut(r.code, 100),
      ...(r.reason ? { reason: cut(r.reason, 300) } : {}),
      ...(fields.length ? { fields } : {}),
      ...(params.length ? { params: Object.fromEntries(params) } : {}),
    },
  });
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
  /** The app whose access token made the change (see Actor.clientId); null without one. */
  clientId: string | null;
  action: string;
  targetType: string | null;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  changes: unknown;
  /** For an update, the old values of the fields `changes` names; null otherwise. */
  before: unknown;
  /** null until the chainer has linked the event (a fraction of a second after commit). */
  hash: string | null;
}

interface DbAuditRow extends Omit<ChainFields, 'occurred_at'> { seq: number; occurred_at: Date }

const toEvent = (r: DbAuditRow & { hash: string | null }): AuditEvent => ({
  seq: Number(r.seq), id: r.id, occurredAt: new Date(r.occurred_at).toISOString(), actorType: r.actor_type, actorId: r.actor_id, clientId: r.client_id ?? null,
  action: r.action, targetType: r.target_type, targetId: r.target_id, ip: r.ip, userAgent: r.user_agent, changes: r.changes, before: r.before ?? null, hash: r.hash,
});

export interface AuditQuery {
  actorId?: string;
  actorType?: string;
  clientId?: string;
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
  if (q.clientId) query.where('e.client_id', q.clientId);
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
  const [{ count: pending }] = await db('audit_pending').count<{ count: number }[]>({ count: '*' }) as [{ count: number }];
  const walked = await walkChain(db, 0, GENESIS_HASH, Number.POSITIVE_INFINITY, batch);
  return { ok: !walked.firstBroken, checked: walked.checked, pending: Number(pending), ...(walked.firstBroken ? { firstBroken: walked.firstBroken } : {}) };
}

export interface VerifyWindowResult extends VerifyResult {
  /** The chain position the walk started after (0: from the first event). */
  after: number;
  /** The last chain position found intact (after, when none was), and its event's seq. */
  through: number;
  throughSeq: number | null;
  /** How many events are chained in all (the last position). */
  chainLength: number;
  /** Whether the walk reached the end of the chain (or a break): nothing left to check. */
  complete: boolean;
}

/**
 * One bounded step of a verification: checks at most `max` events after chain position `after`,
 * starting from the hash stored at `after` (that event was found intact by the step before).
 * For pages that must answer quickly on a log of millions of events: a caller walks the whole
 * chain in steps, or stops and offers to go on from `through`.
 */
export async function verifyAuditChainWindow(db: Tx, after: number, max: number, batch = 5000): Promise<VerifyWindowResult> {
  let prevHash = GENESIS_HASH;
  let throughSeq: number | null = null;
  if (after > 0) {
    const start = await db('audit_chain').where({ pos: after }).first<{ hash: string; seq: number } | undefined>('hash', 'seq');
    if (!start) throw new AppError('invalid_argument', 'audit.no_such_position', 'after: no chained event at this position', { field: 'after' });
    prevHash = start.hash;
    throughSeq = Number(start.seq);
  }
  const [{ count: pending }] = await db('audit_pending').count<{ count: number }[]>({ count: '*' }) as [{ count: number }];
  const last = await db('audit_chain').max<{ max: number | null }[]>({ max: 'pos' }) as [{ max: number | string | null }];
  const chainLength = Number(last[0].max ?? 0);
  const walked = await walkChain(db, after, prevHash, max, batch);
  const through = after + walked.checked;
  return {
    ok: !walked.firstBroken, checked: walked.checked, pending: Number(pending), ...(walked.firstBroken ? { firstBroken: walked.firstBroken } : {}),
    after, through, throughSeq: walked.lastSeq ?? throughSeq, chainLength,
    complete: Boolean(walked.firstBroken) || through >= chainLength,
  };
}

/** Events hashed between two yields to the event loop while verifying. */
const VERIFY_SLICE = 500;

async function walkChain(db: Tx, start: number, startHash: string, max: number, batch: number):
  Promise<{ checked: number; lastSeq?: number; firstBroken?: { seq: number; id: string | null; reason: string } }> {
  let prevHash = startHash;
  let checked = 0;
  let after = start;
  let lastSeq: number | undefined;
  while (checked < max) {
    const rows: (Partial<DbAuditRow> & { pos: number; chain_seq: number; prev_hash: string; hash: string })[] = (await db.raw(
      `select c.pos, c.seq as chain_seq, c.prev_hash, c.hash, e.*
         from audit_chain c left join audit_events e on e.seq = c.seq
        where c.pos > ? order by c.pos limit ?`, [after, Math.min(batch, max - checked)],
    )).rows;
    if (!rows.length) break;
    for (const r of rows) {
      // A long walk (a server asked to verify) lets requests go on between slices.
      if (checked > 0 && checked % VERIFY_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      const pos = Number(r.pos);
      const seq = Number(r.chain_seq);
      let reason: string | undefined;
      if (pos !== after + 1) reason = `the event at chain position ${after + 1} is missing (found ${pos})`;
      else if (!r.id) reason = `the event at chain position ${pos} was deleted`;
      else if (r.prev_hash !== prevHash) reason = 'prev_hash does not match the hash of the event before it (an event was removed or altered)';
      else if (eventHash(prevHash, chainFieldsOf(r as DbAuditRow)) !== r.hash) reason = 'the event content does not match its hash (the row was altered)';
      if (reason) return { checked, lastSeq, firstBroken: { seq, id: r.id ?? null, reason } };
      prevHash = r.hash;
      checked += 1;
      after = pos;
      lastSeq = seq;
    }
  }
  return { checked, lastSeq };
}
