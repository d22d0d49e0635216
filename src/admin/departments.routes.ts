import { z } from 'zod';
import type { Services } from '../services.ts';
import { AdminApi, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import { presentUser, userResource } from './users.routes.ts';
import { createDepartmentInput, departmentMemberInput, updateDepartmentInput } from '../directory/departments.service.ts';
import type { Department, DepartmentMember } from '../directory/departments.repo.ts';

export const departmentResource = z.object({
  id: z.uuid(),
  name: z.string(),
  parentId: z.uuid().nullable(),
  path: z.string().describe("ids from the top-level department down to this one: '/rootId/.../thisId/'"),
  depth: z.number().int().describe('0 for a top-level department'),
  managerId: z.uuid().nullable(),
  externalId: z.string().nullable(),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  memberCount: z.number().int().optional().describe('with counts=true: people directly in this department'),
  subDepartmentCount: z.number().int().optional().describe('with counts=true: departments directly below this one'),
});

export const presentDepartment = (d: Department): z.infer<typeof departmentResource> => ({
  id: d.id,
  name: d.name,
  parentId: d.parentId,
  path: d.path,
  depth: d.depth,
  managerId: d.managerId,
  externalId: d.externalId,
  version: d.version,
  createdAt: new Date(d.createdAt).toISOString(),
  updatedAt: new Date(d.updatedAt).toISOString(),
  ...(d.memberCount !== undefined ? { memberCount: d.memberCount, subDepartmentCount: d.subDepartmentCount } : {}),
});

/** A list page, with `total` (every page's rows, counted in SQL) when asked for with count=true. */
const countedPage = <T extends z.ZodType>(item: T) => page(item).extend({
  total: z.number().int().optional().describe('with count=true: how many match, over all pages'),
});
const countFlag = z.enum(['true', 'false']).optional().describe('true: also return total, the number of matches over all pages');

const memberResource = userResource.extend({
  primary: z.boolean().describe('direct listing: this is the person\'s primary department; recursive: their primary department is in the subtree'),
});
const presentMember = (m: DepartmentMember): z.infer<typeof memberResource> => ({ ...presentUser(m), primary: m.primary });

const departmentListQuery = z.strictObject({
  ...pageQuery,
  parentId: z.union([z.uuid(), z.literal('root')]).optional().describe("a department id, or 'root' for top-level departments"),
  name: z.string().min(1).max(200).optional().describe('exact name, case-insensitive'),
  q: z.string().min(1).max(200).optional().describe('name prefix, case-insensitive'),
  externalId: z.string().min(1).max(255).optional(),
  memberId: z.uuid().optional().describe('only departments this user belongs to'),
  counts: z.enum(['true', 'false']).optional().describe('true: each department with memberCount and subDepartmentCount'),
  count: countFlag,
});

const descendantsQuery = z.strictObject({
  ...pageQuery,
  maxDepth: z.coerce.number().int().min(1).max(10000).optional().describe('levels below this department to include (default: all)'),
});

const membersQuery = z.strictObject({
  ...pageQuery,
  recursive: z.enum(['true', 'false']).optional().describe('true: everyone in this department and every department below it'),
  status: z.enum(['active', 'suspended', 'deprovisioned']).optional(),
  count: countFlag,
});

const memberParams = z.strictObject({ id: z.uuid(), userId: z.uuid() });

const nameIdCursor = z.tuple([z.string().max(200), z.uuid()]);
const pathCursor = z.tuple([z.string().max(20000).regex(/^(\/[0-9a-fA-F-]{36})+\/$/)]);
const userIdCursor = z.tuple([z.uuid()]);

/** Returns one page and the cursor for the next (callers fetch limit + 1 rows). */
function paged<T, R>(list: string, rows: T[], limit: number, present: (row: T) => R, key: (row: T) => unknown[]) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items: items.map(present), next_cursor: rows.length > limit && last ? encodeCursor(list, key(last)) : null };
}

export function registerDepartmentsRoutes(api: AdminApi, { departments }: Services): void {
  const readers = ['user_admin', 'app_admin', 'auditor'] as const;
  const writers = ['user_admin'] as const;

  api.add({
    method: 'get', path: '/departments', tag: 'departments', summary: 'List departments (filtered and paged in SQL, by name)',
    roles: readers, query: departmentListQuery, response: countedPage(departmentResource),
    handler: async ({ query }) => {
      const after = decodeCursorAs(query.cursor, 'departments', nameIdCursor);
      const filter = {
        parentId: query.parentId === 'root' ? null : query.parentId,
        name: query.name, q: query.q, externalId: query.externalId, memberId: query.memberId,
      };
      const rows = await departments.listDepartments({
        ...filter, withCounts: query.counts === 'true', after: after ? { name: after[0], id: after[1] } : undefined, limit: query.limit + 1,
      });
      const result = paged('departments', rows, query.limit, presentDepartment, (d) => [d.name, d.id]);
      return query.count === 'true' ? { ...result, total: await departments.countDepartments(filter) } : result;
    },
  });

  api.add({
    method: 'post', path: '/departments', tag: 'departments', summary: 'Create a department (top-level, or under parentId)', status: 201,
    roles: writers, body: createDepartmentInput, response: departmentResource,
    handler: async ({ body, principal, ctx }) => {
      const department = await departments.createDepartment(body, principal.actor);
      ctx.set('Location', `${ctx.path}/${department.id}`);
      return presentDepartment(department);
    },
  });

  api.add({
    method: 'get', path: '/departments/:id', tag: 'departments', summary: 'Get a department', roles: readers,
    params: idParam, response: departmentResource,
    handler: async ({ params }) => presentDepartment(await departments.getDepartment(params.id)),
  });

  api.add({
    method: 'patch', path: '/departments/:id', tag: 'departments',
    summary: 'Update a department; a new parentId moves it with its whole subtree (null: to the top level). If-Match with the ETag refuses stale writes (412)',
    roles: writers, params: idParam, body: updateDepartmentInput, response: departmentResource,
    handler: async ({ params, body, principal, ifMatch }) => presentDepartment(await departments.updateDepartment(params.id, body, principal.actor, ifMatch)),
  });

  api.add({
    method: 'delete', path: '/departments/:id', tag: 'departments', summary: 'Delete an empty department (409 naming what blocks it otherwise)', status: 204,
    roles: writers, params: idParam,
    handler: async ({ params, principal, ifMatch }) => departments.deleteDepartment(params.id, principal.actor, ifMatch),
  });

  api.add({
    method: 'get', path: '/departments/:id/descendants', tag: 'departments', summary: 'Every department below this one, all levels down, in tree order',
    roles: readers, params: idParam, query: descendantsQuery, response: page(departmentResource),
    handler: async ({ params, query }) => {
      const after = decodeCursorAs(query.cursor, 'departments.descendants', pathCursor);
      const rows = await departments.listDescendants(params.id, { afterPath: after?.[0], maxDepth: query.maxDepth, limit: query.limit + 1 });
      return paged('departments.descendants', rows, query.limit, presentDepartment, (d) => [d.path]);
    },
  });

  api.add({
    method: 'get', path: '/departments/:id/members', tag: 'departments',
    summary: 'People in the department (recursive=true: everyone in it and every department below it), by user id',
    roles: readers, params: idParam, query: membersQuery, response: countedPage(memberResource),
    handler: async ({ params, query }) => {
      const after = decodeCursorAs(query.cursor, 'departments.members', userIdCursor);
      const filter = { recursive: query.recursive === 'true', status: query.status };
      const rows = await departments.listMembers(params.id, { ...filter, afterUserId: after?.[0], limit: query.limit + 1 });
      const result = paged('departments.members', rows, query.limit, presentMember, (m) => [m.id]);
      return query.count === 'true' ? { ...result, total: await departments.countMembers(params.id, filter) } : result;
    },
  });

  api.add({
    method: 'post', path: '/departments/:id/members', tag: 'departments',
    summary: 'Add a person to the department, or change whether it is their primary one (primary replaces their previous primary); idempotent',
    status: 204, roles: writers, params: idParam, body: departmentMemberInput,
    handler: async ({ params, body, principal }) => {
      await departments.addMember(params.id, body, principal.actor);
    },
  });

  api.add({
    method: 'delete', path: '/departments/:id/members/:userId', tag: 'departments', summary: 'Remove a person from the department', status: 204,
    roles: writers, params: memberParams,
    handler: async ({ params, principal }) => departments.removeMember(params.id, params.userId, principal.actor),
  });
}
