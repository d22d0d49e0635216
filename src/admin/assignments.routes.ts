import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import type { Services } from '../services.ts';
import type { Assignment } from '../access/assignments.repo.ts';
import { PRINCIPAL_TYPES } from '../access/assignments.repo.ts';
import { manageApp } from './role-guard.ts';
import { createAssignmentInput, updateAssignmentInput } from '../access/assignments.service.ts';

export const assignmentResource = z.object({
  id: z.uuid(),
  appId: z.uuid(),
  principalType: z.enum(PRINCIPAL_TYPES),
  principalId: z.uuid(),
  principalName: z.string().nullable().describe("the user's display name (else username), or the group's or department's name"),
  includeSubdepartments: z.boolean(),
  roles: z.array(z.object({ id: z.uuid(), key: z.string(), name: z.string() })),
  suiteId: z.uuid().nullable().describe('the suite whose assignment keeps this row (change it there: a direct PATCH or DELETE is refused with 412 assignment.from_suite); null for a direct assignment'),
  suiteAssignmentId: z.uuid().nullable().describe('the suite assignment that keeps this row; null for a direct assignment'),
  createdAt: z.string(),
});

export const presentAssignment = (a: Assignment): z.infer<typeof assignmentResource> => ({
  id: a.id,
  appId: a.appId,
  principalType: a.principalType,
  principalId: a.principalId,
  principalName: a.principalName,
  includeSubdepartments: a.includeSubdepartments,
  roles: a.roles,
  suiteId: a.suiteId,
  suiteAssignmentId: a.suiteAssignmentId,
  createdAt: new Date(a.createdAt).toISOString(),
});

const entitlementResource = z.object({
  userId: z.uuid(),
  appId: z.uuid(),
  allowed: z.boolean().describe('may the user sign in to the app'),
  assigned: z.boolean().describe('at least one assignment (direct, group or department) reaches the user'),
  roles: z.array(z.string()).describe("the app's role keys the user holds, over every path"),
});

const entitlementPath = z.object({
  assignmentId: z.uuid(),
  principalType: z.enum(PRINCIPAL_TYPES).describe('user: assigned to the person; group: to a group of theirs; department: to their department or, with includeSubdepartments, an ancestor of it'),
  principalId: z.uuid(),
  principalName: z.string().nullable().describe("the group's or department's name"),
  via: z.object({ id: z.uuid(), name: z.string() }).nullable().describe("for an ancestor's assignment: the person's own department below it"),
  roles: z.array(z.string()).describe('role keys this assignment gives'),
});

const explainedEntitlement = entitlementResource.extend({
  appName: z.string(),
  paths: z.array(entitlementPath).describe("why: every assignment path that reaches the user (empty when the app lets everyone in and nothing assigns it)"),
});

const assignmentListQuery = z.strictObject({
  ...pageQuery,
  principalType: z.enum(PRINCIPAL_TYPES).optional(),
  principalId: z.uuid().optional(),
});

const assignmentParams = z.strictObject({ id: z.uuid(), assignmentId: z.uuid() });

export function registerAssignmentsRoutes(api: AdminApi, { access }: Services): void {
  const readers = ['app_admin', 'user_admin', 'auditor'] as const;
  const writers = ['app_admin'] as const;

  api.add({
    method: 'get', path: '/apps/:id/assignments', tag: 'assignments', summary: "List an app's assignments (paged in SQL, oldest first)",
    roles: readers, params: idParam, query: assignmentListQuery,
    response: page(assignmentResource).extend({ total: z.number().int().describe('how many assignments match, over every page') }),
    handler: async ({ params, query }) => {
      const after = decodeCursorAs(query.cursor, 'assignments', createdAtIdCursor);
      const filter = { appId: params.id, principalType: query.principalType, principalId: query.principalId };
      const rows = await access.listAssignments({ ...filter, after: after ? { createdAt: after[0], id: after[1] } : undefined, limit: query.limit + 1 });
      const total = await access.countAssignments(filter);
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return { items: items.map(presentAssignment), total, next_cursor: rows.length > query.limit && last ? encodeCursor('assignments', [new Date(last.createdAt).toISOString(), last.id]) : null };
    },
  });

  api.add({
    method: 'post', path: '/apps/:id/assignments', tag: 'assignments', status: 201,
    summary: 'Assign a user, a group or a department (optionally with its sub-departments) to the app, with roles given by id or key',
    roles: writers, params: idParam, body: createAssignmentInput, response: assignmentResource,
    handler: async ({ params, body, principal, ctx }) => {
      const assignment = await access.createAssignment(params.id, body, principal.actor, manageApp(principal));
      ctx.set('Location', `${ctx.path}/${assignment.id}`);
      return presentAssignment(assignment);
    },
  });

  api.add({
    method: 'get', path: '/apps/:id/assignments/:assignmentId', tag: 'assignments', summary: 'Get an assignment',
    roles: readers, params: assignmentParams, response: assignmentResource,
    handler: async ({ params }) => presentAssignment(await access.getAssignment(params.id, params.assignmentId)),
  });

  api.add({
    method: 'patch', path: '/apps/:id/assignments/:assignmentId', tag: 'assignments',
    summary: "Change an assignment: includeSubdepartments, or replace its roles (roleIds and/or roleKeys); a suite's row is changed through its suite assignment (412 assignment.from_suite)",
    roles: writers, params: assignmentParams, body: updateAssignmentInput, response: assignmentResource,
    handler: async ({ params, body, principal }) => presentAssignment(await access.updateAssignment(params.id, params.assignmentId, body, principal.actor, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/apps/:id/assignments/:assignmentId', tag: 'assignments', status: 204,
    summary: "Remove an assignment; users it entitled can no longer sign in or refresh tokens (unless another path entitles them). A suite's row goes with its suite assignment (412 assignment.from_suite)",
    roles: writers, params: assignmentParams,
    handler: async ({ params, principal }) => access.deleteAssignment(params.assignmentId, principal.actor, params.id, manageApp(principal)),
  });

  api.add({
    method: 'get', path: '/users/:id/entitlements', tag: 'assignments',
    summary: 'What the user may do: with appId, in that app (allowed, assigned, roles); without, every app the user may sign in to, with the assignment paths that give each and their roles',
    roles: readers, params: idParam, query: z.strictObject({ appId: z.uuid().optional() }),
    response: z.object({ items: z.array(explainedEntitlement) }).or(entitlementResource),
    handler: async ({ params, query }) => {
      if (query.appId) return { userId: params.id, appId: query.appId, ...(await access.entitlementsOf(params.id, query.appId)) };
      const items = await access.entitledAppsOf(params.id);
      return { items: items.map((e) => ({ userId: params.id, ...e })) };
    },
  });
}
