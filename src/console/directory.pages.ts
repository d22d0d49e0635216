// The console's Departments and Groups pages. Every read and write is an admin API route run in
// process (page(ctx).call): the tree, the moves (the API refuses a move under the department's own
// sub-departments), members, the department's manager, and groups with bulk membership changes
// (POST /groups/:id/members/batch, which resolves usernames and emails). Buttons and forms are
// shown when the admin's roles allow their route; the API refuses them anyway.
import type { Context } from 'koa';
import { AppError, HTTP_STATUS } from '../shared/errors.ts';
import { page, type ConsolePage, type RegisterPages, sendTo } from './pages.ts';

interface Dept {
  id: string; name: string; parentId: string | null; path: string; depth: number; managerId: string | null; version: number;
  memberCount?: number; subDepartmentCount?: number;
}
interface Person { id: string; username: string; email: string | null; name: string | null; status: string; primary?: boolean }
interface Group { id: string; name: string; description: string | null; version: number }
interface Page<T> { items: T[]; next_cursor: string | null; total?: number }
interface BatchResult { added: number; removed: number; results: { ref: string; userId: string | null; outcome: string }[] }

/** Children shown per tree level before a "more" link; members and groups per page. */
const TREE_PAGE = 100;
const LIST_PAGE = 50;
const PICKER_PAGE = 20;

const str = (v: unknown): string => (typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : '');
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);
const form = (ctx: Context): Record<string, unknown> => (ctx.request.body ?? {}) as Record<string, unknown>;
const cursorOf = (ctx: Context): string | undefined => str(ctx.query.cursor) || undefined;

/** Notices a redirect may ask for (?done=...), in the admin's language. */
const NOTICES = new Set(['created', 'saved', 'moved', 'deleted', 'added', 'removed', 'manager']);

/**
 * Runs a write; the refusals an admin can act on (a name taken, a department not empty, a move
 * into its own subtree) are told in their language with the API's detail beside it, in #flash
 * for htmx and as a page otherwise. Anything else goes to the console's own error handling.
 */
async function attempt(ctx: Context, work: () => Promise<void>, known: Record<string, string>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (!(err instanceof AppError) || !known[err.code]) throw err;
    const console = page(ctx);
    // Back to the page the form was on: /admin/groups/:id/members/bulk-add -> /admin/groups/:id.
    const back = ctx.path.replace(/^(\/admin\/(?:departments|groups)(?:\/[0-9a-f-]{36})?)\/.*$/, '$1');
    const vars = { messageKey: known[err.code], messageVars: err.details ?? {}, detail: err.message, back };
    if (console.partial) {
      console.render('directory-problem.njk', vars, HTTP_STATUS[err.kind]);
      ctx.set('HX-Retarget', '#flash');
      ctx.set('HX-Reswap', 'innerHTML');
    } else {
      console.render('directory-problem-page.njk', vars, HTTP_STATUS[err.kind]);
    }
  }
}

const DEPARTMENT_PROBLEMS = {
  'department.name_taken': 'console.directory.departments.name_taken',
  'department.move_cycle': 'console.directory.departments.move_cycle',
  'department.not_empty': 'console.directory.departments.not_empty',
  'department.parent_not_found': 'console.directory.departments.parent_gone',
  'request.invalid': 'console.directory.invalid',
};
const GROUP_PROBLEMS = {
  'group.name_taken': 'console.directory.groups.name_taken',
  'request.invalid': 'console.directory.invalid',
};

/** The departments from the top down to `d` (excluded), for a breadcrumb; one call per level. */
async function ancestorsOf(console: ConsolePage, d: Dept, cache = new Map<string, Dept>()): Promise<Dept[]> {
  const ids = d.path.split('/').filter(Boolean).slice(0, -1);
  const out: Dept[] = [];
  for (const id of ids) {
    let a = cache.get(id);
    if (!a) {
      a = await console.call<Dept>('get', '/departments/:id', { params: { id } });
      cache.set(id, a);
    }
    out.push(a);
  }
  return out;
}

/** One level of the tree: a page of children (with counts) of `parent` ('root' for the top). */
const treeLevel = (console: ConsolePage, parent: string, cursor?: string): Promise<Page<Dept>> =>
  console.call<Page<Dept>>('get', '/departments', { query: { parentId: parent, counts: 'true', limit: String(TREE_PAGE), ...(cursor ? { cursor } : {}) } });

interface TreeNode { dept: Dept; open: boolean; children?: Page<TreeNode> }

/** A level, with the levels on the way to the departments in `open` already loaded (the rest load when expanded). */
async function buildLevel(console: ConsolePage, parent: string, open: Set<string>, cursor?: string): Promise<Page<TreeNode>> {
  const level = await treeLevel(console, parent, cursor);
  const items: TreeNode[] = [];
  for (const dept of level.items) {
    const isOpen = open.has(dept.id) && Boolean(dept.subDepartmentCount);
    items.push({ dept, open: isOpen, ...(isOpen ? { children: await buildLevel(console, dept.id, open) } : {}) });
  }
  return { items, next_cursor: level.next_cursor };
}

/** Who a person is, for a list or a picker. */
const personLabel = (p: Person): string => p.name || p.username;

async function findPeople(console: ConsolePage, q: string): Promise<Person[]> {
  if (!q.trim()) return [];
  const found = await console.call<Page<Person>>('get', '/users', { query: { q: q.trim().slice(0, 200), limit: String(PICKER_PAGE) } });
  return found.items;
}

export const registerDirectoryPages: RegisterPages = (router) => {
  // ---------------------------------------------------------------- departments

  router.get('/departments', async (ctx) => {
    const console = page(ctx);
    const q = str(ctx.query.q).trim().slice(0, 200);
    const focus = str(ctx.query.open);
    let results: Page<Dept> | undefined;
    let tree: Page<TreeNode> | undefined;
    if (q) {
      results = await console.call<Page<Dept>>('get', '/departments', { query: { q, counts: 'true', count: 'true', limit: String(LIST_PAGE), ...(cursorOf(ctx) ? { cursor: cursorOf(ctx) } : {}) } });
    } else {
      // ?open=<id>: the tree opened down to that department (after a move or a create).
      const open = new Set<string>();
      if (focus) {
        try {
          const d = await console.call<Dept>('get', '/departments/:id', { params: { id: focus } });
          for (const id of d.path.split('/').filter(Boolean)) open.add(id);
        } catch (err) {
          if (!(err instanceof AppError) || (err.kind !== 'not_found' && err.kind !== 'invalid_argument')) throw err;
        }
      }
      tree = await buildLevel(console, 'root', open, cursorOf(ctx));
    }
    console.render('departments-list.njk', {
      section: 'departments', q, results, tree, focus,
      canCreate: console.may('post', '/departments'),
      notice: NOTICES.has(str(ctx.query.done)) ? str(ctx.query.done) : undefined,
    });
  });

  // A level of the tree, loaded when a department is expanded (or "more" is asked for).
  router.get('/departments/tree', async (ctx) => {
    const console = page(ctx);
    const parent = str(ctx.query.parent) || 'root';
    const level = await buildLevel(console, parent, new Set(), cursorOf(ctx));
    console.render('departments-tree.njk', { level, parent });
  });

  router.post('/departments', async (ctx) => {
    const console = page(ctx);
    const body = form(ctx);
    const parentId = str(body.parentId) || undefined;
    await attempt(ctx, async () => {
      const created = await console.call<Dept>('post', '/departments', { body: { name: str(body.name), ...(parentId ? { parentId } : {}) } });
      sendTo(ctx, parentId ? `/admin/departments/${parentId}?done=created` : `/admin/departments?open=${created.id}&done=created`);
    }, DEPARTMENT_PROBLEMS);
  });

  router.get('/departments/:id', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const dept = await console.call<Dept>('get', '/departments/:id', { params: { id } });
    const cache = new Map<string, Dept>();
    const ancestors = await ancestorsOf(console, dept, cache);
    const cursor = cursorOf(ctx);
    const [members, children, manager] = await Promise.all([
      console.call<Page<Person>>('get', '/departments/:id/members', { params: { id }, query: { count: 'true', limit: String(LIST_PAGE), ...(cursor ? { cursor } : {}) } }),
      console.call<Page<Dept>>('get', '/departments', { query: { parentId: id, counts: 'true', count: 'true', limit: String(TREE_PAGE) } }),
      dept.managerId ? console.call<Person>('get', '/users/:id', { params: { id: dept.managerId } }).catch(() => undefined) : undefined,
    ]);
    const canWrite = console.may('patch', '/departments/:id');
    console.render('departments-detail.njk', {
      section: 'departments', dept, ancestors, members, children, manager, cursor,
      managerLabel: manager ? personLabel(manager) : undefined,
      canWrite,
      canCreate: console.may('post', '/departments'),
      canDelete: console.may('delete', '/departments/:id'),
      canAddMember: console.may('post', '/departments/:id/members'),
      canRemoveMember: console.may('delete', '/departments/:id/members/:userId'),
      mayReadPeople: console.may('get', '/users'),
      notice: NOTICES.has(str(ctx.query.done)) ? str(ctx.query.done) : undefined,
    });
  });

  router.post('/departments/:id/rename', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    await attempt(ctx, async () => {
      await console.call('patch', '/departments/:id', { params: { id }, body: { name: str(form(ctx).name) } });
      sendTo(ctx, `/admin/departments/${id}?done=saved`);
    }, DEPARTMENT_PROBLEMS);
  });

  // Moves the department with everything below it: the API decides whether the new parent is
  // allowed (never one of the department's own sub-departments).
  router.post('/departments/:id/move', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const parentId = str(form(ctx).parentId);
    await attempt(ctx, async () => {
      if (!('parentId' in form(ctx))) throw new AppError('invalid_argument', 'request.invalid', 'parentId: pick the new parent', { field: 'parentId' });
      await console.call('patch', '/departments/:id', { params: { id }, body: { parentId: parentId || null } });
      sendTo(ctx, `/admin/departments/${id}?done=moved`);
    }, DEPARTMENT_PROBLEMS);
  });

  // Candidates for the new parent, by name (the picker of the move form).
  router.get('/departments/:id/parents', async (ctx) => {
    const console = page(ctx);
    const q = str(ctx.query.q).trim().slice(0, 200);
    const found = q ? await console.call<Page<Dept>>('get', '/departments', { query: { q, limit: String(PICKER_PAGE) } }) : { items: [], next_cursor: null };
    const cache = new Map<string, Dept>();
    const choices = [];
    for (const d of found.items) {
      if (d.id === ctx.params.id) continue;
      choices.push({ dept: d, trail: (await ancestorsOf(console, d, cache)).map((a) => a.name) });
    }
    console.render('departments-parents.njk', { choices, q });
  });

  router.post('/departments/:id/delete', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    await attempt(ctx, async () => {
      const dept = await console.call<Dept>('get', '/departments/:id', { params: { id } });
      await console.call('delete', '/departments/:id', { params: { id } });
      sendTo(ctx, dept.parentId ? `/admin/departments/${dept.parentId}?done=deleted` : '/admin/departments?done=deleted');
    }, DEPARTMENT_PROBLEMS);
  });

  // People to add as members or to make the manager (GET /users?q=).
  router.get('/departments/:id/people', async (ctx) => {
    const console = page(ctx);
    const role = str(ctx.query.for) === 'manager' ? 'manager' : 'member';
    const q = str(ctx.query.q);
    const people = await findPeople(console, q);
    console.render('directory-people.njk', {
      people: people.map((p) => ({ ...p, label: personLabel(p) })), q,
      action: role === 'manager' ? `/admin/departments/${ctx.params.id}/manager` : `/admin/departments/${ctx.params.id}/members`,
      buttonKey: role === 'manager' ? 'console.directory.departments.make_manager' : 'console.directory.add',
      primary: role === 'member',
    });
  });

  router.post('/departments/:id/members', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const body = form(ctx);
    await attempt(ctx, async () => {
      await console.call('post', '/departments/:id/members', { params: { id }, body: { userId: str(body.userId), primary: str(body.primary) === 'true' } });
      sendTo(ctx, `/admin/departments/${id}?done=added`);
    }, DEPARTMENT_PROBLEMS);
  });

  router.post('/departments/:id/members/:userId/remove', async (ctx) => {
    const console = page(ctx);
    const { id, userId } = ctx.params as { id: string; userId: string };
    await console.call('delete', '/departments/:id/members/:userId', { params: { id, userId } });
    sendTo(ctx, `/admin/departments/${id}?done=removed`);
  });

  // The department's manager (its managerId; empty clears it).
  router.post('/departments/:id/manager', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const userId = str(form(ctx).userId);
    await attempt(ctx, async () => {
      await console.call('patch', '/departments/:id', { params: { id }, body: { managerId: userId || null } });
      sendTo(ctx, `/admin/departments/${id}?done=manager`);
    }, { ...DEPARTMENT_PROBLEMS, 'department.manager_not_found': 'console.directory.departments.manager_gone' });
  });

  // ---------------------------------------------------------------- groups

  router.get('/groups', async (ctx) => {
    const console = page(ctx);
    const q = str(ctx.query.q).trim().slice(0, 200);
    const cursor = cursorOf(ctx);
    const groups = await console.call<Page<Group>>('get', '/groups', { query: { count: 'true', limit: String(LIST_PAGE), ...(q ? { q } : {}), ...(cursor ? { cursor } : {}) } });
    console.render('groups-list.njk', {
      section: 'groups', q, groups, cursor,
      canCreate: console.may('post', '/groups'),
      notice: NOTICES.has(str(ctx.query.done)) ? str(ctx.query.done) : undefined,
    });
  });

  router.post('/groups', async (ctx) => {
    const console = page(ctx);
    const body = form(ctx);
    await attempt(ctx, async () => {
      const description = str(body.description).trim();
      const created = await console.call<Group>('post', '/groups', { body: { name: str(body.name), ...(description ? { description } : {}) } });
      sendTo(ctx, `/admin/groups/${created.id}?done=created`);
    }, GROUP_PROBLEMS);
  });

  /** The group page, with the outcome of a bulk change when there is one. */
  async function renderGroup(ctx: Context, id: string, batch?: BatchResult & { kind: 'add' | 'remove' }): Promise<void> {
    const console = page(ctx);
    const cursor = batch ? undefined : cursorOf(ctx);
    const [group, members] = await Promise.all([
      console.call<Group>('get', '/groups/:id', { params: { id } }),
      console.call<Page<Person>>('get', '/groups/:id/members', { params: { id }, query: { count: 'true', limit: String(LIST_PAGE), ...(cursor ? { cursor } : {}) } }),
    ]);
    console.render('groups-detail.njk', {
      section: 'groups', group, members, cursor, batch,
      canWrite: console.may('patch', '/groups/:id'),
      canDelete: console.may('delete', '/groups/:id'),
      canAdd: console.may('post', '/groups/:id/members'),
      canBatch: console.may('post', '/groups/:id/members/batch'),
      mayReadPeople: console.may('get', '/users'),
      notice: NOTICES.has(str(ctx.query.done)) ? str(ctx.query.done) : undefined,
    });
  }

  router.get('/groups/:id', async (ctx) => renderGroup(ctx, ctx.params.id!));

  router.post('/groups/:id/rename', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const body = form(ctx);
    await attempt(ctx, async () => {
      const description = str(body.description).trim();
      await console.call('patch', '/groups/:id', { params: { id }, body: { name: str(body.name), description: description || null } });
      sendTo(ctx, `/admin/groups/${id}?done=saved`);
    }, GROUP_PROBLEMS);
  });

  router.post('/groups/:id/delete', async (ctx) => {
    const console = page(ctx);
    await console.call('delete', '/groups/:id', { params: { id: ctx.params.id! } });
    sendTo(ctx, '/admin/groups?done=deleted');
  });

  router.get('/groups/:id/people', async (ctx) => {
    const console = page(ctx);
    const q = str(ctx.query.q);
    const people = await findPeople(console, q);
    console.render('directory-people.njk', {
      people: people.map((p) => ({ ...p, label: personLabel(p) })), q,
      action: `/admin/groups/${ctx.params.id}/members`, buttonKey: 'console.directory.add', primary: false,
    });
  });

  router.post('/groups/:id/members', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    await console.call('post', '/groups/:id/members', { params: { id }, body: { userId: str(form(ctx).userId) } });
    sendTo(ctx, `/admin/groups/${id}?done=added`);
  });

  // Bulk add: one username, email or id per line; the page then says what happened to each line.
  router.post('/groups/:id/members/bulk-add', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const lines = str(form(ctx).lines).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    await attempt(ctx, async () => {
      const result = await console.call<BatchResult>('post', '/groups/:id/members/batch', { params: { id }, body: { add: lines } });
      await renderGroup(ctx, id, { ...result, kind: 'add' });
    }, { 'request.invalid': 'console.directory.groups.bulk_invalid' });
  });

  // Bulk remove: the members ticked in the list.
  router.post('/groups/:id/members/bulk-remove', async (ctx) => {
    const console = page(ctx);
    const id = ctx.params.id!;
    const userIds = strs(form(ctx).userId);
    await attempt(ctx, async () => {
      const result = await console.call<BatchResult>('post', '/groups/:id/members/batch', { params: { id }, body: { remove: userIds } });
      // The boxes carry ids: each line of the outcome says who it was (at most a page of people).
      const results = await Promise.all(result.results.map(async (r) => {
        if (!r.userId) return r;
        const who = await console.call<Person>('get', '/users/:id', { params: { id: r.userId } }).catch(() => undefined);
        return { ...r, ref: who ? `${personLabel(who)} (${who.username})` : r.ref };
      }));
      await renderGroup(ctx, id, { ...result, results, kind: 'remove' });
    }, { 'request.invalid': 'console.directory.groups.bulk_none' });
  });
};
