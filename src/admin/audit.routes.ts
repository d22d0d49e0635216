import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { decodeCursorAs, encodeCursor, page, pageQuery } from './api.ts';
import type { Services } from '../services.ts';
import { findAuditEvents, verifyAuditChainWindow } from '../audit/audit.service.ts';

const auditEvent = z.object({
  id: z.uuid(),
  seq: z.number().int(),
  occurredAt: z.string(),
  actorType: z.string(),
  actorId: z.string().nullable(),
  clientId: z.string().nullable().describe('the app (client_id) whose access token made the change: an admin client, or the app a person\'s token was issued to'),
  action: z.string(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  changes: z.unknown().describe('what changed (the new values; a few events also give a field as { from, to }); for a refused write (action write.refused) the operation, the refusal code and reason, and the names of the fields it tried to set. Secrets read [redacted]'),
  before: z.unknown().describe('for an update, the old values of the fields changes names (secrets read [redacted]); null otherwise'),
  hash: z.string().nullable().describe('null for a fraction of a second after commit, until the event is chained'),
});

const auditQuery = z.strictObject({
  ...pageQuery,
  actorId: z.string().max(255).optional(),
  actorType: z.enum(['user', 'admin_client', 'scim_client', 'system', 'anonymous']).optional(),
  clientId: z.string().max(255).optional().describe('changes made with access tokens of this app'),
  action: z.string().max(100).optional().describe('exact action, or a prefix ending in .* such as user.*'),
  targetType: z.string().max(50).optional(),
  targetId: z.string().max(255).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

const verificationQuery = z.strictObject({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0).describe('the chain position to start after: 0 for the first event, or `through` of the call before'),
  limit: z.coerce.number().int().min(1).max(50000).default(5000).describe('at most this many events are checked (5,000 take about a quarter of a second)'),
});

const verification = z.object({
  ok: z.boolean().describe('false when a broken link was found'),
  checked: z.number().int().describe('events checked by this call'),
  pending: z.number().int().describe('events committed but not chained yet (chained within a second)'),
  firstBroken: z.object({ seq: z.number().int(), id: z.string().nullable(), reason: z.string() }).optional()
    .describe('the first event whose link is broken (id null when the event was deleted)'),
  after: z.number().int(),
  through: z.number().int().describe('the last chain position found intact'),
  throughSeq: z.number().int().nullable().describe('the seq of the event at `through`'),
  chainLength: z.number().int().describe('events chained in all'),
  complete: z.boolean().describe('true when the end of the chain or a break was reached'),
});

export function registerAuditRoutes(api: AdminApi, { db }: Services): void {
  api.add({
    method: 'get', path: '/audit-events', tag: 'audit', summary: 'List audit events, newest first, filtered in SQL',
    roles: ['auditor'], query: auditQuery, response: page(auditEvent),
    handler: async ({ query }) => {
      const cursor = decodeCursorAs(query.cursor, 'audit', z.tuple([z.number().int().positive()]));
      const rows = await findAuditEvents(db, {
        actorId: query.actorId, actorType: query.actorType, clientId: query.clientId, action: query.action, targetType: query.targetType, targetId: query.targetId,
        since: query.since ? new Date(query.since) : undefined,
        until: query.until ? new Date(query.until) : undefined,
        before: cursor ? Number(cursor[0]) : undefined,
        limit: query.limit + 1,
      });
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return { items, next_cursor: rows.length > query.limit && last ? encodeCursor('audit', [last.seq]) : null };
    },
  });

  api.add({
    method: 'get', path: '/audit-events/verification', tag: 'audit',
    summary: 'Check a stretch of the audit log\'s hash chain: at most `limit` events after chain position `after`; call again from `through` until `complete`',
    roles: ['auditor'], query: verificationQuery, response: verification,
    // Bounded: one call hashes at most `limit` events (some 20,000 a second), however long the log.
    handler: async ({ query }) => verifyAuditChainWindow(db, query.after, query.limit),
  });
}
