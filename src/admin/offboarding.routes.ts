// Offboarding in one action, and its receipts (offboarding/offboarding.service.ts).
import { z } from 'zod';
import type { Services } from '../services.ts';
import { AdminApi, createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, pageQuery } from './api.ts';
import { assertMayManage } from './role-guard.ts';
import { OffboardingService } from '../offboarding/offboarding.service.ts';
import { LINE_ACTIONS, LINE_STATES } from '../offboarding/offboarding.repo.ts';

const lineState = z.enum(LINE_STATES);

export const receiptResource = z.object({
  id: z.uuid(),
  userId: z.uuid(),
  source: z.enum(['admin', 'scim']).describe('admin: offboarded through the API, CLI or console; scim: HR deactivated the person over SCIM'),
  actor: z.object({ type: z.string(), id: z.string().nullable() }),
  startedAt: z.string(),
  status: z.enum(['complete', 'in_progress', 'failed']).describe('complete: every app answered or had nothing to do; in_progress: answers awaited or being retried; failed: an app refused for good'),
  apps: z.array(z.object({
    appId: z.uuid(),
    appName: z.string(),
    protocol: z.string(),
    state: lineState.describe('the least settled state of the app\'s actions'),
    actions: z.array(z.object({
      action: z.enum(LINE_ACTIONS),
      state: lineState.describe('done (local), acknowledged (the app answered), pending, failed_retrying (with the app\'s error), failed (for good), not_applicable (with why)'),
      detail: z.string().nullable().describe('why it does not apply, or the app\'s answer to the last attempt'),
      attempts: z.number().int(),
      updatedAt: z.string(),
    })),
  })).describe('one line per app the person could use, held grants or tokens in, shared a SAML session with, or was provisioned to'),
});

export function registerOffboardingRoutes(api: AdminApi, { db, hasher }: Services): void {
  const offboarding = new OffboardingService(db, hasher);
  const readers = ['user_admin', 'auditor'] as const;

  api.add({
    method: 'post', path: '/users/:id/offboard', tag: 'users', status: 201,
    summary: 'Offboard a person in one action: suspend them (every OneID session, grant, refresh token and access token ends), send a back-channel logout token to every OIDC app that registered a backchannel_logout_uri, and let provisioned apps deactivate them; returns the receipt, one line per app. Offboarding again writes a new receipt and sends again',
    roles: ['user_admin'], params: idParam, response: receiptResource,
    handler: async ({ params, principal, ctx }) => {
      const receipt = await offboarding.offboard(params.id, principal.actor, (row) => assertMayManage(principal, row.admin_roles, 'user', 'user.admin_roles_forbidden'));
      ctx.set('Location', `${ctx.path.replace(/\/users\/[^/]+\/offboard$/, '')}/offboardings/${receipt.id}`);
      return receipt;
    },
  });

  api.add({
    method: 'get', path: '/users/:id/offboardings', tag: 'users', summary: "A person's offboarding receipts, newest first, as they stand now",
    roles: readers, params: idParam, query: z.strictObject({ ...pageQuery, limit: z.coerce.number().int().min(1).max(50).default(10) }),
    response: z.object({ items: z.array(receiptResource), next_cursor: z.string().nullable() }),
    handler: async ({ params, query }) => {
      const before = decodeCursorAs(query.cursor, 'offboardings', createdAtIdCursor);
      const { items, more } = await offboarding.receiptsOfUser(params.id, query.limit, before ? { startedAt: before[0], id: before[1] } : undefined);
      const last = items[items.length - 1];
      return { items, next_cursor: more && last ? encodeCursor('offboardings', [last.startedAt, last.id]) : null };
    },
  });

  api.add({
    method: 'get', path: '/offboardings/:id', tag: 'users', summary: 'An offboarding receipt as it stands now (lines change as apps answer and retries finish)',
    roles: readers, params: idParam, response: receiptResource,
    handler: async ({ params }) => offboarding.receipt(params.id),
  });
}
