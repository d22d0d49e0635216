// The console's audit log: the admin API's event list (filtered and keyset-paged in SQL, newest
// first) and its bounded chain verification, which the page walks in steps on demand.
import type { Context } from 'koa';
import { page, type RegisterPages } from './pages.ts';
import { AppError } from '../shared/errors.ts';

const PAGE_SIZE = 50;
/** How long one verification request may go on walking the chain before it offers to continue. */
const VERIFY_BUDGET_MS = 1000;
/** Events per call of the API's verification (about a quarter of a second each). */
const VERIFY_STEP = 5000;

const ACTOR_TYPES = ['user', 'admin_client', 'scim_client', 'system', 'anonymous'] as const;

interface AuditEvent {
  seq: number; occurredAt: string; actorType: string; actorId: string | null; clientId: string | null; action: string;
  targetType: string | null; targetId: string | null; ip: string | null; changes: unknown; before: unknown; hash: string | null;
}

interface Verification {
  ok: boolean; checked: number; pending: number; firstBroken?: { seq: number; id: string | null; reason: string };
  after: number; through: number; throughSeq: number | null; chainLength: number; complete: boolean;
}

const text = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');

/** `2026-12-07T10:30` (a datetime-local field, read as UTC) as the API's ISO time; anything else as typed, for the API to refuse. */
function isoOf(value: string): string | undefined {
  if (!value) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2})?$/.exec(value);
  return m ? `${m[1]}${m[2] ?? ':00'}Z` : value;
}

/** The filters as the page's form and links carry them. */
function filtersOf(ctx: Context): Record<string, string> {
  const q = ctx.query;
  return {
    actor: text(q.actor), actor_type: text(q.actor_type), action: text(q.action),
    target_type: text(q.target_type), target_id: text(q.target_id), from: text(q.from), to: text(q.to),
  };
}

const queryString = (vars: Record<string, string>): string => new URLSearchParams(Object.entries(vars).filter(([, v]) => v)).toString();

const pretty = (value: unknown): string | null => (value === null || value === undefined ? null : JSON.stringify(value, null, 2));

export const registerAuditPages: RegisterPages = (router) => {
  router.get('/audit', async (ctx) => {
    const console = page(ctx);
    const filters = filtersOf(ctx);
    const cursor = text(ctx.query.cursor);
    let events: AuditEvent[] = [];
    let nextCursor: string | null = null;
    let filterError: string | undefined;
    try {
      const result = await console.call<{ items: AuditEvent[]; next_cursor: string | null }>('get', '/audit-events', {
        query: {
          limit: PAGE_SIZE,
          ...(cursor ? { cursor } : {}),
          ...(filters.actor ? { actorId: filters.actor } : {}),
          ...(filters.actor_type ? { actorType: filters.actor_type } : {}),
          ...(filters.action ? { action: filters.action } : {}),
          ...(filters.target_type ? { targetType: filters.target_type } : {}),
          ...(filters.target_id ? { targetId: filters.target_id } : {}),
          ...(filters.from ? { since: isoOf(filters.from) } : {}),
          ...(filters.to ? { until: isoOf(filters.to) } : {}),
        },
      });
      events = result.items;
      nextCursor = result.next_cursor;
    } catch (err) {
      // A filter the API refuses: the page stays, with the filters as typed and what is wrong.
      if (!(err instanceof AppError) || err.kind !== 'invalid_argument') throw err;
      filterError = err.message;
    }
    const base = queryString(filters);
    console.render('audit-list.njk', {
      section: 'audit',
      filters,
      actorTypes: ACTOR_TYPES,
      filterError,
      pageSize: PAGE_SIZE,
      events: events.map((e) => ({ ...e, time: e.occurredAt.replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, ''), changesJson: pretty(e.changes), beforeJson: pretty(e.before) })),
      filterLink: (name: string, value: string) => `/admin/audit?${queryString({ ...filters, [name]: value })}`,
      newestHref: cursor ? `/admin/audit${base ? `?${base}` : ''}` : null,
      olderHref: nextCursor ? `/admin/audit?${queryString({ ...filters, cursor: nextCursor })}` : null,
    }, filterError ? 400 : 200);
  });

  // Walks the chain from `after` in bounded steps for at most VERIFY_BUDGET_MS, then answers with
  // how far it is intact (or where it breaks) and, on a long log, a button to go on from there.
  router.get('/audit/verification', async (ctx) => {
    const console = page(ctx);
    const after = /^\d{1,15}$/.test(text(ctx.query.after)) ? Number(ctx.query.after) : 0;
    const started = Date.now();
    let result = await console.call<Verification>('get', '/audit-events/verification', { query: { after, limit: VERIFY_STEP } });
    while (!result.complete && Date.now() - started < VERIFY_BUDGET_MS) {
      result = await console.call<Verification>('get', '/audit-events/verification', { query: { after: result.through, limit: VERIFY_STEP } });
    }
    const vars = { section: 'audit', v: result };
    console.render(console.partial ? 'audit-verification.njk' : 'audit-verification-page.njk', vars);
  });
};
