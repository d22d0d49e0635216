// The console's dead letters, under Settings: background jobs that ran out of retries (an app or
// a webhook receiver kept refusing), with the reason, and "Retry" to send one or all back to their
// queue once the cause is fixed. Reading needs app_admin or auditor, retrying app_admin (the API's rule).
import type { Context } from 'koa';
import { AppError } from '../shared/errors.ts';
import { page, sendTo, type RegisterPages } from './pages.ts';

interface DeadJob { id: string; queue: string; data: unknown; error: string | null; failedAt: string }

const NOTICES = ['retried', 'retried_all'] as const;
const shortTime = (iso: string | null): string | null => (iso ? iso.replace('T', ' ').replace(/(:\d{2})\.\d+Z$/, '$1').replace(/Z$/, '') : null);
/** What the job was to do, in one line: its data (ids, never secrets, per the API), cut short. */
const whatOf = (data: unknown): string => {
  const json = data === undefined || data === null ? '' : JSON.stringify(data);
  return json.length > 300 ? `${json.slice(0, 300)}…` : json;
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const registerJobsPages: RegisterPages = (router) => {
  router.get('/settings/dead-letters', async (ctx: Context) => {
    const c = page(ctx);
    let items: DeadJob[] = [];
    let notRunning = false;
    try {
      items = (await c.call<{ items: DeadJob[] }>('get', '/jobs/dead-letters')).items;
    } catch (err) {
      // A node started without its job queue (the CLI's kind) has nothing to show: say so, not a 503 page.
      if (!(err instanceof AppError) || err.code !== 'jobs.not_running') throw err;
      notRunning = true;
    }
    const notice = NOTICES.find((n) => n === ctx.query.notice);
    const retried = /^\d{1,6}$/.test(String(ctx.query.count ?? '')) ? Number(ctx.query.count) : undefined;
    c.render('jobs-dead-letters.njk', {
      section: 'settings', notRunning, notice, retried,
      jobs: items.map((j) => ({ ...j, what: whatOf(j.data), failed: shortTime(j.failedAt) })),
      may: { retry: c.may('post', '/jobs/dead-letters/retry') },
    });
  });

  router.post('/settings/dead-letters/retry', async (ctx: Context) => {
    const c = page(ctx);
    const id = String((ctx.request.body as Record<string, unknown> | undefined)?.id ?? '');
    // One job (its id, checked here so that a bad id is not read as "all"), or all of them.
    if (id && !UUID.test(id)) throw new AppError('invalid_argument', 'console.dead_letter_id', 'id: not a job id');
    const { retried } = await c.call<{ retried: number }>('post', '/jobs/dead-letters/retry', { body: id ? { ids: [id] } : {} });
    sendTo(ctx, `/admin/settings/dead-letters?notice=${id ? 'retried' : 'retried_all'}&count=${retried}`);
  });
};
