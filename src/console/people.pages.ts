// The console's people pages: search (live, sorted, numbered pages with the total), create, edit,
// lifecycle, passwords and set-up links, sign-in methods, apps and why, bulk actions and a CSV
// export. Every read and write is the admin API's own route, run in process (pages.ts).
import type { Context } from 'koa';
import type { Readable } from 'node:stream';
import { AppError } from '../shared/errors.ts';
import { page, sendTo, type ConsolePage, type RegisterPages } from './pages.ts';
import { ADMIN_ROLES } from '../directory/users.service.ts';

const PAGE_SIZE = 25;
const SORTS = ['name', 'username', 'email', 'status', 'createdAt'] as const;
const STATUSES = ['active', 'suspended', 'deprovisioned'] as const;
const LIFECYCLE = ['suspend', 'reactivate', 'deprovision'] as const;
/** The fields of the create and edit forms, as the admin API names them. */
const FIELDS = ['username', 'name', 'email', 'employeeNumber', 'title', 'phone', 'locale'] as const;
type Field = (typeof FIELDS)[number];

interface UserItem { id: string; username: string; name: string | null; email: string | null; status: string; version: number; [k: string]: unknown }
interface ListResult { items: UserItem[]; total?: number; next_offset?: number | null }
interface Methods { password: boolean; passkeys: { id: string; name: string; createdAt: string; lastUsedAt: string | null }[]; totp: boolean; recoveryCodesRemaining: number }

/** An offboarding receipt as the admin API gives it (admin/offboarding.routes.ts). */
interface ReceiptAction { action: string; state: string; detail: string | null; attempts: number; updatedAt: string }
interface Receipt {
  id: string; userId: string; source: string; startedAt: string; status: string;
  apps: { appId: string; appName: string; protocol: string; state: string; actions: ReceiptAction[] }[];
}
/** States that a later answer or retry will change: the receipt page keeps refreshing while one is shown. */
const UNSETTLED = new Set(['pending', 'failed_retrying']);
/**
 * The service's fixed reasons, in the admin's language (console.offboarding.reason.*); an app's
 * own answer (HTTP 503, its error) is shown as the app gave it.
 */
const REASONS: Record<string, string> = {
  'the app did not register a backchannel_logout_uri': 'no_backchannel',
  'the app has no SOAP single logout endpoint (front-channel only): its session ends when it next asks OneID': 'saml_front_channel',
  'the person had no SAML session with this app': 'no_saml_session',
  'the app has no provisioning target': 'no_provisioning',
  'provisioning to this app is turned off': 'provisioning_off',
  'OneID has not created this person in the app': 'never_provisioned',
  'grants and tokens deleted': 'tokens_deleted',
  'the person held no grant or token': 'no_tokens',
};
const shortTime = (iso: string | null): string | null => (iso ? iso.replace('T', ' ').replace(/(:\d{2})\.\d+Z$/, '$1').replace(/Z$/, '') : null);

function presentReceipt(receipt: Receipt) {
  const apps = receipt.apps.map((app) => ({
    ...app,
    actions: app.actions.map((a) => ({
      ...a, updated: shortTime(a.updatedAt),
      reasonKey: a.detail && REASONS[a.detail] ? `console.offboarding.reason.${REASONS[a.detail]}` : undefined,
    })),
  }));
  const unsettled = apps.some((app) => app.actions.some((a) => UNSETTLED.has(a.state)));
  return { ...receipt, started: shortTime(receipt.startedAt), apps, unsettled };
}

const str = (value: unknown): string => (typeof value === 'string' ? value.trim() : '');
/** A repeated form field: one value, a list, or (past qs's array limit of 20) an object keyed by index. */
const list = (value: unknown): string[] => {
  const values = Array.isArray(value) ? value : value && typeof value === 'object' ? Object.values(value) : [value];
  return values.filter((v): v is string => typeof v === 'string');
};
const pick = <T extends string>(value: unknown, allowed: readonly T[]): T | undefined => (allowed as readonly string[]).includes(String(value)) ? value as T : undefined;

/** The list's state from a query string: what the search box, filter, headers and pager show. */
function searchOf(query: Record<string, unknown>) {
  const q = str(query.q).slice(0, 200);
  const status = pick(query.status, STATUSES);
  const sort = pick(query.sort, SORTS) ?? 'name';
  const order = query.order === 'desc' ? 'desc' : 'asc';
  const pageNo = Math.max(1, Math.min(40000, Number.parseInt(String(query.page ?? '1'), 10) || 1));
  return { q, status, sort, order, page: pageNo } as const;
}
type Search = ReturnType<typeof searchOf>;

/** A list URL for the search with some of its parts changed (headers, pager, export). */
function listUrl(base: string, s: Search, change: Partial<Record<keyof Search, string | number | undefined>> = {}): string {
  const merged = { ...s, ...change } as Record<string, string | number | undefined>;
  const params = new URLSearchParams();
  for (const key of ['q', 'status', 'sort', 'order', 'page'] as const) {
    const value = merged[key];
    if (value === undefined || value === '' || (key === 'page' && Number(value) === 1)) continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${base}?${text}` : base;
}

/** A form's values as the admin API takes them: blank optional fields are left out (create) or cleared (edit). */
function userBody(form: Record<string, unknown>, editing: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const value = str(form[field]);
    if (value) body[field] = value;
    else if (editing && field !== 'username') body[field] = null;
  }
  return body;
}

/** The message beside a form for the API's refusal, in the admin's language; the API's own words go under it. */
function formProblem(err: AppError): { key: string; field: string | undefined; detail: string } {
  const field = String(err.details?.field ?? '').split('.')[0] || undefined;
  const known = (FIELDS as readonly string[]).includes(field ?? '') ? field : undefined;
  if (err.kind === 'already_exists') return { key: `console.people.error.taken`, field: known, detail: err.message };
  if (err.kind === 'failed_precondition') return { key: 'console.error.precondition', field: known, detail: err.message };
  return { key: known ? `console.people.error.${known}` : 'console.error.invalid', field: known, detail: err.message };
}

/** Runs `work`; an invalid, duplicate or stale write becomes the form's problem instead of an error page. */
async function formAttempt<T>(work: () => Promise<T>): Promise<{ ok: T } | { problem: ReturnType<typeof formProblem> }> {
  try {
    return { ok: await work() };
  } catch (err) {
    if (err instanceof AppError && ['invalid_argument', 'already_exists', 'failed_precondition'].includes(err.kind)) return { problem: formProblem(err) };
    throw err;
  }
}

export const registerPeoplePages: RegisterPages = (router) => {
  // --- the list ----------------------------------------------------------------------------
  const renderList = async (ctx: Context, c: ConsolePage): Promise<void> => {
    const s = searchOf(ctx.query);
    const result = await c.call<ListResult>('get', '/users', {
      query: {
        ...(s.q ? { q: s.q } : {}), ...(s.status ? { status: s.status } : {}),
        sort: s.sort, order: s.order, offset: String((s.page - 1) * PAGE_SIZE), limit: String(PAGE_SIZE), count: 'true',
      },
    });
    const total = result.total ?? 0;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const canBulkSuspend = c.may('post', '/users/:id/suspend');
    const canAddToGroup = c.may('post', '/groups/:id/members');
    const vars = {
      section: 'people', s, people: result.items, total, pages,
      url: (change: Record<string, string | number | undefined>) => listUrl('/admin/people', s, change),
      sortUrl: (key: string) => listUrl('/admin/people', s, { sort: key, order: s.sort === key && s.order === 'asc' ? 'desc' : 'asc', page: 1 }),
      exportUrl: listUrl('/admin/people/export.csv', { ...s, page: 1 }, { sort: undefined, order: undefined }),
      canCreate: c.may('post', '/users'), canBulkSuspend, canAddToGroup, bulk: canBulkSuspend || canAddToGroup,
      canExport: c.may('get', '/users/export'),
      statuses: STATUSES,
    };
    // A search or a header/pager click from the page itself swaps only the results; a history
    // restore (back button) and a plain load get the whole page.
    if (c.partial && ctx.get('hx-target') === 'people-results' && !ctx.get('hx-history-restore-request')) {
      c.render('people-results.njk', vars);
      return;
    }
    const groups = canAddToGroup ? (await c.call<{ items: { id: string; name: string }[] }>('get', '/groups', { query: { limit: '500' } })).items : [];
    c.render('people-list.njk', { ...vars, groups });
  };

  router.get('/people', async (ctx) => renderList(ctx, page(ctx)));

  // --- create --------------------------------------------------------------------------------
  router.get('/people/new', async (ctx) => {
    const c = page(ctx);
    if (!c.may('post', '/users')) throw new AppError('permission_denied', 'admin.forbidden', 'creating people needs the user_admin role');
    c.render('people-form.njk', { section: 'people', values: {}, editing: false });
  });

  router.post('/people', async (ctx) => {
    const c = page(ctx);
    const form = ctx.request.body as Record<string, unknown>;
    const attempt = await formAttempt(() => c.call<UserItem>('post', '/users', { body: userBody(form, false) }));
    if ('problem' in attempt) {
      c.render('people-form.njk', { section: 'people', values: form, editing: false, problem: attempt.problem }, 400);
      return;
    }
    ctx.status = 303;
    ctx.redirect(`/admin/people/${attempt.ok.id}?done=created`);
  });

  // --- export (before /people/:id) -------------------------------------------------------------
  router.get('/people/export.csv', async (ctx) => {
    const c = page(ctx);
    const s = searchOf(ctx.query);
    // The route sets the type and file name and streams the rows; it records the export.
    const body = await c.call<Readable>('get', '/users/export', { query: { ...(s.q ? { q: s.q } : {}), ...(s.status ? { status: s.status } : {}) } });
    ctx.status = 200;
    ctx.body = body;
  });

  // --- bulk ----------------------------------------------------------------------------------
  router.post('/people/bulk', async (ctx) => {
    const c = page(ctx);
    const form = ctx.request.body as Record<string, unknown>;
    const ids = [...new Set(list(form.ids))].slice(0, 500);
    const action = pick(form.action, ['suspend', 'add_to_group'] as const);
    const groupId = str(form.groupId);
    if (!action) throw new AppError('invalid_argument', 'console.bulk_action', 'action: suspend or add_to_group');
    if (!ids.length) {
      c.render('people-bulk.njk', { section: 'people', action, outcomes: [], noneSelected: true }, 400);
      return;
    }
    const outcomes: { id: string; label: string; ok: boolean; messageKey?: string; detail?: string }[] = [];
    // One API call per person, so each is checked, refused or audited on its own.
    for (const id of ids) {
      try {
        if (action === 'suspend') await c.call('post', '/users/:id/suspend', { params: { id } });
        else await c.call('post', '/groups/:id/members', { params: { id: groupId }, body: { userId: id } });
        outcomes.push({ id, label: id, ok: true });
      } catch (err) {
        if (!(err instanceof AppError) || err.code === 'admin.insufficient_user_authentication') throw err;
        outcomes.push({ id, label: id, ok: false, messageKey: err.kind === 'permission_denied' ? 'console.error.forbidden' : err.kind === 'not_found' ? 'console.error.not_found' : 'console.error.invalid', detail: err.message });
      }
    }
    // Names for the report, where the admin may read them.
    for (const o of outcomes) {
      try {
        const u = await c.call<UserItem>('get', '/users/:id', { params: { id: o.id } });
        o.label = u.name ? `${u.name} (${u.username})` : u.username;
      } catch { /* an id that names nobody stays as sent */ }
    }
    const failed = outcomes.filter((o) => !o.ok).length;
    c.render('people-bulk.njk', { section: 'people', action, outcomes, failed, succeeded: outcomes.length - failed }, failed ? 207 : 200);
  });

  // --- one person ----------------------------------------------------------------------------
  const renderPerson = async (ctx: Context, c: ConsolePage, id: string, extra: Record<string, unknown> = {}, status = 200): Promise<void> => {
    const person = await c.call<UserItem>('get', '/users/:id', { params: { id } });
    const [methods, apps] = await Promise.all([
      c.may('get', '/users/:id/methods') ? c.call<Methods>('get', '/users/:id/methods', { params: { id } }) : undefined,
      c.may('get', '/users/:id/entitlements') ? c.call<{ items: unknown[] }>('get', '/users/:id/entitlements', { params: { id } }) : undefined,
    ]);
    const receipts = c.may('get', '/users/:id/offboardings')
      ? await c.call<{ items: Receipt[]; next_cursor: string | null }>('get', '/users/:id/offboardings', {
        params: { id }, query: { limit: '10', ...(typeof ctx.query.rcursor === 'string' ? { cursor: ctx.query.rcursor.slice(0, 500) } : {}) },
      })
      : undefined;
    const done = pick(ctx.query.done, ['created', 'saved', 'suspend', 'reactivate', 'deprovision', 'password', 'removed', 'roles'] as const);
    c.render('people-detail.njk', {
      section: 'people', person, methods, apps: apps?.items, done,
      receipts: receipts && { items: receipts.items.map((r) => ({ ...r, started: shortTime(r.startedAt) })), next: receipts.next_cursor },
      may: {
        // Offboarding again is allowed (a new receipt, the apps told again), so the button stays.
        offboard: c.may('post', '/users/:id/offboard'),
        edit: c.may('patch', '/users/:id') && person.status !== 'deprovisioned',
        suspend: c.may('post', '/users/:id/suspend') && person.status === 'active',
        reactivate: c.may('post', '/users/:id/reactivate') && person.status === 'suspended',
        deprovision: c.may('post', '/users/:id/deprovision') && person.status !== 'deprovisioned',
        password: c.may('patch', '/users/:id') && person.status !== 'deprovisioned',
        link: c.may('post', '/users/:id/setup-link') && person.status !== 'deprovisioned',
        removeMethods: c.may('delete', '/users/:id/methods/totp'),
        // Giving roles: the API lets only holders of a role give it (and asks for a two-factor sign-in).
        adminRoles: c.may('patch', '/users/:id') && person.status !== 'deprovisioned',
      },
      grantable: ADMIN_ROLES.filter((role) => c.principal.roles.has('super_admin') || c.principal.roles.has(role)),
      ...extra,
    }, status);
  };

  router.get('/people/:id', async (ctx) => renderPerson(ctx, page(ctx), ctx.params.id!));

  router.get('/people/:id/edit', async (ctx) => {
    const c = page(ctx);
    const person = await c.call<UserItem>('get', '/users/:id', { params: { id: ctx.params.id! } });
    c.render('people-form.njk', { section: 'people', values: person, editing: true, person });
  });

  router.post('/people/:id', async (ctx) => {
    const c = page(ctx);
    const id = ctx.params.id!;
    const form = ctx.request.body as Record<string, unknown>;
    const version = Number.parseInt(str(form.version), 10);
    const attempt = await formAttempt(() => c.call('patch', '/users/:id', {
      params: { id }, body: userBody(form, true), ...(Number.isFinite(version) ? { ifMatch: version } : {}),
    }));
    if ('problem' in attempt) {
      const person = await c.call<UserItem>('get', '/users/:id', { params: { id } });
      c.render('people-form.njk', { section: 'people', values: { ...form, version: form.version }, editing: true, person, problem: attempt.problem }, 400);
      return;
    }
    ctx.status = 303;
    ctx.redirect(`/admin/people/${id}?done=saved`);
  });

  for (const action of LIFECYCLE) {
    router.post(`/people/:id/${action}`, async (ctx) => {
      const c = page(ctx);
      await c.call('post', `/users/:id/${action}`, { params: { id: ctx.params.id! } });
      ctx.status = 303;
      ctx.redirect(`/admin/people/${ctx.params.id!}?done=${action}`);
    });
  }

  router.post('/people/:id/password', async (ctx) => {
    const c = page(ctx);
    const id = ctx.params.id!;
    const password = typeof (ctx.request.body as Record<string, unknown>).password === 'string' ? (ctx.request.body as Record<string, string>).password! : '';
    const attempt = await formAttempt(() => c.call('patch', '/users/:id', { params: { id }, body: { password } }));
    if ('problem' in attempt) {
      await renderPerson(ctx, c, id, { passwordProblem: { ...attempt.problem, key: 'console.people.error.password' } }, 400);
      return;
    }
    ctx.status = 303;
    ctx.redirect(`/admin/people/${id}?done=password`);
  });

  router.post('/people/:id/admin-roles', async (ctx) => {
    const c = page(ctx);
    const id = ctx.params.id!;
    const form = ctx.request.body as Record<string, unknown>;
    const chosen = ([] as unknown[]).concat(form.adminRoles ?? []).filter((r): r is string => typeof r === 'string');
    const version = Number.parseInt(str(form.version), 10);
    await c.call('patch', '/users/:id', { params: { id }, body: { adminRoles: chosen }, ...(Number.isFinite(version) ? { ifMatch: version } : {}) });
    ctx.status = 303;
    ctx.redirect(`/admin/people/${id}?done=roles`);
  });

  router.post('/people/:id/setup-link', async (ctx) => {
    const c = page(ctx);
    const id = ctx.params.id!;
    const link = await c.call<{ url: string; expiresAt: string }>('post', '/users/:id/setup-link', { params: { id }, body: {} });
    // Shown once: the link itself is stored only as a hash.
    await renderPerson(ctx, c, id, { link });
  });

  // --- offboarding ---------------------------------------------------------------------------
  router.post('/people/:id/offboard', async (ctx) => {
    const c = page(ctx);
    const id = ctx.params.id!;
    const receipt = await c.call<Receipt>('post', '/users/:id/offboard', { params: { id } });
    sendTo(ctx, `/admin/people/${id}/offboardings/${receipt.id}?done=1`);
  });

  // The receipt as it stands now; while an app's answer is awaited, the lines' fragment asks again
  // every 2 s (htmx polling), and stops once nothing is pending or retrying.
  router.get('/people/:id/offboardings/:offboardingId', async (ctx) => {
    const c = page(ctx);
    const id = ctx.params.id!;
    const receipt = await c.call<Receipt>('get', '/offboardings/:id', { params: { id: ctx.params.offboardingId! } });
    // The receipt must be this person's: a mismatched address shows nothing of someone else.
    if (receipt.userId !== id) throw new AppError('not_found', 'offboarding.not_found', 'no such offboarding receipt for this person');
    const vars = { section: 'people', receipt: presentReceipt(receipt), personId: id, done: ctx.query.done === '1' };
    if (c.partial && ctx.get('hx-target') === 'receipt') {
      c.render('offboarding-lines.njk', vars);
      return;
    }
    const person = await c.call<UserItem>('get', '/users/:id', { params: { id } });
    c.render('offboarding-receipt.njk', { ...vars, person });
  });

  const removals: [string, string, (ctx: Context) => Record<string, string>][] = [
    ['/people/:id/methods/passkeys/:credentialId/remove', '/users/:id/methods/passkeys/:credentialId', (ctx) => ({ id: ctx.params.id!, credentialId: ctx.params.credentialId! })],
    ['/people/:id/methods/totp/remove', '/users/:id/methods/totp', (ctx) => ({ id: ctx.params.id! })],
    ['/people/:id/methods/recovery-codes/remove', '/users/:id/methods/recovery-codes', (ctx) => ({ id: ctx.params.id! })],
  ];
  for (const [path, apiPath, params] of removals) {
    router.post(path, async (ctx) => {
      const c = page(ctx);
      await c.call('delete', apiPath, { params: params(ctx) });
      ctx.status = 303;
      ctx.redirect(`/admin/people/${ctx.params.id!}?done=removed`);
    });
  }
};
