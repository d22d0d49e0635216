// Background jobs that ran out of retries (dead letters): see them, with the reason they failed,
// and send them back to their queue once the cause is fixed.
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import type { Services } from '../services.ts';
import { AppError } from '../shared/errors.ts';
import { recordAudit } from '../audit/audit.service.ts';
import type { JobQueue } from '../jobs/queue.ts';

const deadJob = z.object({
  id: z.string(),
  queue: z.string().describe('the queue the job failed on, e.g. provision.user, webhook.deliver'),
  data: z.unknown().describe('what the job was to do (ids, never secrets)'),
  error: z.string().nullable().describe('the last failure, as the app or receiver answered'),
  failedAt: z.string(),
});

const retryInput = z.strictObject({
  ids: z.array(z.uuid()).min(1).max(1000).optional().describe('the dead letters to send back; all of them when absent'),
});

export function registerJobsRoutes(api: AdminApi, services: Services): void {
  const queue = (): JobQueue => {
    if (!services.jobs?.started) throw new AppError('unavailable', 'jobs.not_running', 'background jobs are not running on this node');
    return services.jobs;
  };
  api.add({
    method: 'get', path: '/jobs/dead-letters', tag: 'jobs',
    summary: 'Background jobs that failed after every retry (oldest first, at most 100), with the reason',
    roles: ['app_admin', 'auditor'], response: z.object({ items: z.array(deadJob) }),
    handler: async () => ({ items: await queue().deadLetters(100) }),
  });
  api.add({
    method: 'post', path: '/jobs/dead-letters/retry', tag: 'jobs',
    summary: 'Send dead letters back to the queue they failed on (they are retried as new jobs)',
    roles: ['app_admin'], body: retryInput, response: z.object({ retried: z.number().int() }),
    handler: async ({ principal, body }) => {
      const retried = await queue().retryDeadLetters(body.ids);
      await recordAudit(services.db, principal.actor, { action: 'jobs.dead_letters_retried', targetType: 'jobs', targetId: 'dead-letters', changes: { retried, ids: body.ids ?? 'all' } });
      return { retried };
    },
  });
}
