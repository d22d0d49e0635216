// A token request's writes, sent together at its end: one statement, one transaction, one commit.
// (The same holds for the authorization endpoint's resume after sign-in, which saves the session,
// the grant and the code and deletes the interaction.)
//
// At the token endpoint oidc-provider consumes the code or refresh token it redeems and then
// saves the new tokens, each a separate adapter call. Sent one by one, a refresh cost three
// commits (each waiting for the WAL flush), and a crash or a lost connection between them left
// the client with its old token burnt and no new one. Here the adapter (adapter.ts) only records
// them, and `requestWrites` applies them with oidc_apply_writes (migration
// 20261130150000) once the response is ready:
//   - all or nothing: a request that fails writes nothing, so the client can simply retry;
//   - a consume takes only a token nobody consumed yet: of two requests redeeming the same
//     refresh token or code at the same moment (both read it unconsumed), exactly one commits
//     and the other gets invalid_grant, as a replay would.
// Upserts, consumes and deletes are recorded; a read of a row this request has pending, a read by
// uid or user code, and a grant revocation send the pending writes first, so the request always
// sees its own writes in order.
import type { Middleware } from 'koa';
import type { AdapterPayload } from 'oidc-provider';
import type { Tx } from '../db/knex.ts';
import { run, statement } from '../db/prepared.ts';
import { isDbUnavailable } from '../db/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { AUDIT_INSERT_FROM_JSON_SQL, auditRecordsJson, type Actor, type AuditEntry } from '../audit/audit.service.ts';

/** Raised by oidc_apply_writes when a token to consume was already consumed (or is gone). */
const ALREADY_CONSUMED = 'OI001';

const APPLY = statement('oidc_apply_writes', 'select oidc_apply_writes(?::jsonb)');
// With the audit events of what the request did (a token exchange's token.exchanged): written
// with its tokens or not at all, in the same statement and commit.
const APPLY_AUDITED = statement('oidc_apply_writes_audited', `
  with applied as materialized (select oidc_apply_writes(?::jsonb)),
       audited as (${AUDIT_INSERT_FROM_JSON_SQL})
  select (select count(*) from applied) as applied, (select count(*) from audited) as audited`);

interface UpsertRow {
  model: string;
  id: string;
  payload: AdapterPayload;
  uid: string | null;
  grant_id: string | null;
  user_code: string | null;
  account_id: string | null;
  expires_at: string | null;
  consumed: boolean;
}

/** The columns of an oidc_payloads row written for a payload that expires in `expiresIn` seconds. */
export function payloadColumns(payload: AdapterPayload, expiresIn: number): Omit<UpsertRow, 'model' | 'id' | 'payload' | 'consumed'> {
  return {
    uid: payload.uid ?? null,
    grant_id: payload.grantId ?? null,
    user_code: payload.userCode ?? null,
    account_id: payload.accountId ?? null,
    expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000).toISOString() : null,
  };
}

const key = (model: string, id: string): string => `${model} ${id}`;

/** The writes one request has recorded and not yet sent. */
export class PendingWrites {
  readonly #upserts = new Map<string, UpsertRow>();
  readonly #consumes = new Map<string, { model: string; id: string }>();
  readonly #destroys = new Map<string, { model: string; id: string }>();
  readonly #audits: { actor: Actor; entry: AuditEntry }[] = [];

  get size(): number {
    return this.#upserts.size + this.#consumes.size + this.#destroys.size + this.#audits.length;
  }

  /** An audit event of what the request did, written with its other writes. */
  audit(actor: Actor, entry: AuditEntry): void {
    this.#audits.push({ actor, entry });
  }

  has(model: string, id: string): boolean {
    const k = key(model, id);
    return this.#upserts.has(k) || this.#consumes.has(k) || this.#destroys.has(k);
  }

  // Each row ends up in one list, its last state in the request's order of calls.

  upsert(model: string, id: string, payload: AdapterPayload, expiresIn: number): void {
    const k = key(model, id);
    this.#destroys.delete(k);
    // A row consumed earlier in this request stays consumed, as it would in the table.
    const consumed = this.#consumes.delete(k) || (this.#upserts.get(k)?.consumed ?? false);
    this.#upserts.set(k, { model, id, payload, ...payloadColumns(payload, expiresIn), consumed });
  }

  consume(model: string, id: string): void {
    const k = key(model, id);
    const created = this.#upserts.get(k);
    if (created) created.consumed = true;
    else if (!this.#destroys.has(k)) this.#consumes.set(k, { model, id });
  }

  destroy(model: string, id: string): void {
    const k = key(model, id);
    this.#upserts.delete(k);
    this.#consumes.delete(k);
    this.#destroys.set(k, { model, id });
  }

  /**
   * Sends everything recorded (one statement) and forgets it. Rejects with an error whose code is
   * OI001 when a consume lost a race; then nothing was written.
   */
  async flush(db: Tx): Promise<void> {
    if (!this.size) return;
    const writes = { consume: [...this.#consumes.values()], destroy: [...this.#destroys.values()], upsert: [...this.#upserts.values()] };
    this.#consumes.clear();
    this.#destroys.clear();
    this.#upserts.clear();
    if (!this.#audits.length) {
      await run(db, APPLY, [JSON.stringify(writes)]);
      return;
    }
    const audits = auditRecordsJson(this.#audits.splice(0));
    await run(db, APPLY_AUDITED, [JSON.stringify(writes), audits]);
  }
}

/** Where the adapter finds the current request's pending writes (koa's ctx.state). */
export interface WithPendingWrites { oidcWrites?: PendingWrites }

export const isAlreadyConsumed = (err: unknown): boolean => (err as { code?: string } | undefined)?.code === ALREADY_CONSUMED;

/**
 * Collects the writes of the requests `applies` picks (the token endpoint, and the authorization
 * endpoint's resume after an interaction) and sends them once the response is ready: only when it
 * is not an error, so that a refused request writes nothing. Put it in front of the provider,
 * after unavailableAsRetryable (a lost database becomes 503).
 */
export function requestWrites(db: Tx, log: Logger, applies: (method: string, path: string) => boolean): Middleware {
  return async (ctx, next) => {
    if (!applies(ctx.method, ctx.path)) return next();
    const writes = new PendingWrites();
    (ctx.state as WithPendingWrites).oidcWrites = writes;
    try {
      await next();
    } finally {
      // Later adapter calls (none are expected) write at once again.
      delete (ctx.state as WithPendingWrites).oidcWrites;
    }
    if (ctx.status >= 400 || !writes.size) return;
    try {
      await writes.flush(db);
    } catch (err) {
      // Nothing was written: whatever the response carries (tokens, a code in a redirect) is void.
      ctx.remove('Location');
      if (isAlreadyConsumed(err)) {
        log.info({ requestId: ctx.state.requestId }, 'oidc request refused: the code or refresh token was redeemed by a concurrent request');
        ctx.status = 400;
        ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
        return;
      }
      if (isDbUnavailable(err)) {
        // unavailableAsRetryable makes it a 503.
        ctx.state.dbUnavailable = true;
        ctx.body = { error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable; try again shortly' };
        return;
      }
      throw err;
    }
  };
}
