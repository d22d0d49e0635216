// Bearer tokens for SCIM provisioning clients (HR systems, Entra ID, Okta). 256-bit random,
// shown once, stored as SHA-256, revocable, optionally limited to a department subtree.
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId, newSecret, sha256 } from '../shared/ids.ts';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../audit/audit.service.ts';
import { parseInput } from '../directory/users.service.ts';
import { runQuery } from '../db/prepared.ts';

export const createScimTokenInput = z.strictObject({
  name: z.string().trim().min(1).max(200),
  departmentId: z.uuid().nullable().optional(),
});

export interface ScimToken {
  id: string;
  name: string;
  departmentId: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface DbScimTokenRow { id: string; name: string; department_id: string | null; created_at: Date; last_used_at: Date | null; revoked_at: Date | null }

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);
const toToken = (r: DbScimTokenRow): ScimToken => ({
  id: r.id, name: r.name, departmentId: r.department_id, createdAt: iso(r.created_at)!, lastUsedAt: iso(r.last_used_at), revokedAt: iso(r.revoked_at),
});

/** The prefix makes leaked tokens easy to recognise for secret scanners. */
const TOKEN_PREFIX = 'oneid_scim_';

export interface ScimClient { tokenId: string; name: string; departmentId: string | null; departmentPath: string | null }

export class ScimTokensService {
  constructor(private readonly db: Knex) {}

  async create(raw: z.input<typeof createScimTokenInput>, actor: Actor = SYSTEM_ACTOR): Promise<{ token: ScimToken; secret: string }> {
    const input = parseInput(createScimTokenInput, raw);
    const secret = TOKEN_PREFIX + newSecret(32);
    return this.db.transaction(async (trx) => {
      if (input.departmentId && !(await trx('departments').where({ id: input.departmentId }).first('id'))) {
        throw new AppError('invalid_argument', 'scim_token.department_not_found', 'departmentId: no department with this id', { field: 'departmentId' });
      }
      const [row] = await trx('scim_tokens').insert({
        id: newId(), name: input.name, token_hash: sha256(secret), department_id: input.departmentId ?? null,
      }).returning(['id', 'name', 'department_id', 'created_at', 'last_used_at', 'revoked_at']);
      const token = toToken(row as DbScimTokenRow);
      await recordAudit(trx, actor, { action: 'scim_token.created', targetType: 'scim_token', targetId: token.id, changes: { name: input.name, departmentId: token.departmentId } });
      return { token, secret };
    });
  }

  async list(): Promise<ScimToken[]> {
    const rows: DbScimTokenRow[] = await this.db('scim_tokens').orderBy('created_at').select('id', 'name', 'department_id', 'created_at', 'last_used_at', 'revoked_at');
    return rows.map(toToken);
  }

  async revoke(id: string, actor: Actor = SYSTEM_ACTOR): Promise<ScimToken> {
    return this.db.transaction(async (trx) => {
      const old = await trx('scim_tokens').where({ id }).forUpdate().first<{ revoked_at: Date | null } | undefined>('revoked_at');
      const [row] = old ? await trx('scim_tokens').where({ id }).update({ revoked_at: trx.raw('coalesce(revoked_at, now())') })
        .returning(['id', 'name', 'department_id', 'created_at', 'last_used_at', 'revoked_at']) : [];
      if (!row) throw new AppError('not_found', 'scim_token.not_found', 'no SCIM token with this id');
      await recordAudit(trx, actor, {
        action: 'scim_token.revoked', targetType: 'scim_token', targetId: id,
        changes: { name: row.name, revokedAt: row.revoked_at }, before: { revokedAt: old!.revoked_at },
      });
      return toToken(row as DbScimTokenRow);
    });
  }

  /**
   * Resolves a presented bearer token. Unknown or revoked tokens resolve to undefined.
   * last_used_at is refreshed at most once a minute, so heavy provisioning does not
   * turn every read into a write.
   */
  async authenticate(secret: string): Promise<ScimClient | undefined> {
    if (!secret.startsWith(TOKEN_PREFIX) || secret.length > 200) return undefined;
    // Every SCIM request: a prepared statement (see db/prepared.ts).
    const [row] = await runQuery<{ id: string; name: string; department_id: string | null; path: string | null; last_used_at: Date | null }>(this.db,
      this.db('scim_tokens as t').leftJoin('departments as d', 'd.id', 't.department_id')
        .where('t.token_hash', sha256(secret)).whereNull('t.revoked_at')
        .select('t.id', 't.name', 't.department_id', 'd.path', 't.last_used_at').limit(1));
    if (!row) return undefined;
    if (!row.last_used_at || Date.now() - new Date(row.last_used_at).getTime() > 60000) {
      await this.db('scim_tokens').where({ id: row.id }).update({ last_used_at: this.db.fn.now() });
    }
    return { tokenId: row.id, name: row.name, departmentId: row.department_id, departmentPath: row.path };
  }
}
