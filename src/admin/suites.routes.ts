// Suites (#22) in the admin API: the suite, its member apps with their role maps, suite roles,
// suite assignments and suite grants. Every write runs manageApp on each member app (see
// suites.service.ts): an app holding admin roles the caller lacks cannot be changed through a
// suite either.
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import type { Services } from '../services.ts';
import { manageApp } from './role-guard.ts';
import { PRINCIPAL_TYPES } from '../access/assignments.repo.ts';
import {
  createSuiteAssignmentInput, createSuiteGrantInput, createSuiteInput, createSuiteRoleInput, suiteAppInput, updateSuiteAssignmentInput,
  updateSuiteGrantInput, updateSuiteInput, updateSuiteRoleInput,
} from '../apps/suites.service.ts';
import type { Suite, SuiteAssignment, SuiteGrant, SuiteRole } from '../apps/suites.repo.ts';

const policy = z.enum(['password', 'mfa', 'phishing_resistant']);

const suiteRoleResource = z.object({ id: z.uuid(), key: z.string(), name: z.string(), description: z.string().nullable() });

export const suiteResource = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string().nullable(),
  iconUrl: z.string().nullable().describe('https image shown beside the suite name in the portal'),
  position: z.number().int().describe('order in the portal: lowest first, then by name'),
  signInPolicy: policy.nullable().describe('inherited by the member apps unless theirs is stronger; null: none'),
  suiteSignout: z.boolean().describe("signing out of one member app ends the person's sessions in every member app"),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  apps: z.array(z.object({
    appId: z.uuid(),
    name: z.string(),
    protocol: z.string(),
    position: z.number().int().describe('order inside the suite'),
    roleMap: z.record(z.string(), z.array(z.string())).describe("suite role key -> the keys of this app's roles it gives"),
  })),
  roles: z.array(suiteRoleResource),
});

const presentSuite = (s: Suite): z.infer<typeof suiteResource> => ({
  id: s.id,
  name: s.name,
  description: s.description,
  iconUrl: s.iconUrl,
  position: s.position,
  signInPolicy: s.signInPolicy,
  suiteSignout: s.suiteSignout,
  version: s.version,
  createdAt: new Date(s.createdAt).toISOString(),
  updatedAt: new Date(s.updatedAt).toISOString(),
  apps: s.apps,
  roles: s.roles,
});

const presentRole = (r: SuiteRole): z.infer<typeof suiteRoleResource> => ({ id: r.id, key: r.key, name: r.name, description: r.description });

export const suiteAssignmentResource = z.object({
  id: z.uuid(),
  suiteId: z.uuid(),
  principalType: z.enum(PRINCIPAL_TYPES),
  principalId: z.uuid(),
  principalName: z.string().nullable().describe("the user's display name (else username), or the group's or department's name"),
  includeSubdepartments: z.boolean(),
  roles: z.array(z.object({ id: z.uuid(), key: z.string(), name: z.string() })).describe('suite roles'),
  createdAt: z.string(),
});

const presentAssignment = (a: SuiteAssignment): z.infer<typeof suiteAssignmentResource> => ({
  id: a.id,
  suiteId: a.suiteId,
  principalType: a.principalType,
  principalId: a.principalId,
  principalName: a.principalName,
  includeSubdepartments: a.includeSubdepartments,
  roles: a.roles,
  createdAt: new Date(a.createdAt).toISOString(),
});

export const suiteGrantResource = z.object({
  id: z.uuid(),
  suiteId: z.uuid(),
  clientAppId: z.uuid().describe('the app that acts for the signed-in person'),
  audienceAppId: z.uuid().describe('the app whose API it calls'),
  scopes: z.array(z.string()).describe('the most the client app may ask for at the audience app'),
  roles: z.array(z.string()).nullable().describe("the audience app's role keys its tokens may carry; null: all the person holds"),
  minSignInPolicy: policy.nullable().describe("the least the person's sign-in must reach"),
  maxAgeSeconds: z.number().int().nullable().describe("the oldest the person's sign-in may be"),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const presentGrant = (g: SuiteGrant): z.infer<typeof suiteGrantResource> => ({
  ...g, createdAt: new Date(g.createdAt).toISOString(), updatedAt: new Date(g.updatedAt).toISOString(),
});

/** Portal order: [position, name, id]. */
const suiteCursor = z.tuple([z.number().int(), z.string().max(200), z.uuid()]);

const appParams = z.strictObject({ id: z.uuid(), appId: z.uuid() });
const roleParams = z.strictObject({ id: z.uuid(), roleId: z.uuid() });
const assignmentParams = z.strictObject({ id: z.uuid(), assignmentId: z.uuid() });
const grantParams = z.strictObject({ id: z.uuid(), grantId: z.uuid() });

export function registerSuitesRoutes(api: AdminApi, { suites }: Services): void {
  const readers = ['app_admin', 'auditor'] as const;
  const writers = ['app_admin'] as const;
  const guarded = ' (every member app must be one the caller may change: 403 app.admin_roles_forbidden otherwise)';

  api.add({
    method: 'get', path: '/suites', tag: 'suites', summary: 'List suites in portal order (position, then name), paged in SQL; with appId, only the suites that app is in',
    roles: readers, query: z.strictObject({ ...pageQuery, appId: z.uuid().optional().describe('only the suites this app is a member of') }),
    response: page(suiteResource).extend({ total: z.number().int().describe('how many suites there are, over every page') }),
    handler: async ({ query }) => {
      const after = decodeCursorAs(query.cursor, 'suites', suiteCursor);
      const [rows, total] = await Promise.all([
        suites.listSuites({ after: after ? { position: after[0], name: after[1], id: after[2] } : undefined, limit: query.limit + 1, appId: query.appId }),
        suites.countSuites(query.appId),
      ]);
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return { items: items.map(presentSuite), total, next_cursor: rows.length > query.limit && last ? encodeCursor('suites', [last.position, last.name, last.id]) : null };
    },
  });

  api.add({
    method: 'post', path: '/suites', tag: 'suites', status: 201,
    summary: 'Create a suite (409 suite.name_taken when the name is in use, in any case). Audited as suite.created',
    roles: writers, body: createSuiteInput, response: suiteResource,
    handler: async ({ body, principal, ctx }) => {
      const suite = await suites.createSuite(body, principal.actor);
      ctx.set('Location', `${ctx.path}/${suite.id}`);
      return presentSuite(suite);
    },
  });

  api.add({
    method: 'get', path: '/suites/:id', tag: 'suites', summary: 'Get a suite with its member apps (and their role maps) and its roles',
    roles: readers, params: idParam, response: suiteResource,
    handler: async ({ params }) => presentSuite(await suites.getSuite(params.id)),
  });

  api.add({
    method: 'patch', path: '/suites/:id', tag: 'suites',
    summary: `Update a suite; a new sign-in policy reaches its apps at once (send If-Match with the ETag to refuse stale writes: 412)${guarded}. Audited as suite.updated`,
    roles: writers, params: idParam, body: updateSuiteInput, response: suiteResource,
    handler: async ({ params, body, principal, ifMatch }) => presentSuite(await suites.updateSuite(params.id, body, principal.actor, ifMatch, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/suites/:id', tag: 'suites', status: 204,
    summary: `Delete a suite: the assignments it gave go (each audited as assignment.deleted), its grants end and its apps lose its sign-in policy (If-Match honoured)${guarded}. Audited as suite.deleted`,
    roles: writers, params: idParam,
    handler: async ({ params, principal, ifMatch }) => suites.deleteSuite(params.id, principal.actor, ifMatch, manageApp(principal)),
  });

  api.add({
    method: 'put', path: '/suites/:id/apps/:appId', tag: 'suites',
    summary: `Add an app (OIDC or SAML) to the suite, or change its position or role map (suite role key -> this app's role keys; replaces the app's map). A new member reaches everyone the suite is assigned to${guarded}. Audited as suite.app_added or suite.app_updated`,
    roles: writers, params: appParams, body: suiteAppInput, response: suiteResource,
    handler: async ({ params, body, principal }) => presentSuite(await suites.putApp(params.id, params.appId, body, principal.actor, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/suites/:id/apps/:appId', tag: 'suites', status: 204,
    summary: `Remove an app from the suite: the assignments the suite gave in it go, and so do the grants naming it${guarded}. Audited as suite.app_removed`,
    roles: writers, params: appParams,
    handler: async ({ params, principal }) => suites.removeApp(params.id, params.appId, principal.actor, manageApp(principal)),
  });

  api.add({
    method: 'post', path: '/suites/:id/roles', tag: 'suites', status: 201,
    summary: `Define a suite role (key like an app role key; 409 suite_role.key_taken if the suite has it)${guarded}. Audited as suite_role.created`,
    roles: writers, params: idParam, body: createSuiteRoleInput, response: suiteRoleResource,
    handler: async ({ params, body, principal, ctx }) => {
      const role = await suites.createRole(params.id, body, principal.actor, manageApp(principal));
      ctx.set('Location', `${ctx.path}/${role.id}`);
      return presentRole(role);
    },
  });

  api.add({
    method: 'patch', path: '/suites/:id/roles/:roleId', tag: 'suites', summary: `Update a suite role${guarded}. Audited as suite_role.updated`,
    roles: writers, params: roleParams, body: updateSuiteRoleInput, response: suiteRoleResource,
    handler: async ({ params, body, principal }) => presentRole(await suites.updateRole(params.id, params.roleId, body, principal.actor, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/suites/:id/roles/:roleId', tag: 'suites', status: 204,
    summary: `Delete a suite role: the app roles it gave through suite assignments go${guarded}. Audited as suite_role.deleted`,
    roles: writers, params: roleParams,
    handler: async ({ params, principal }) => suites.deleteRole(params.id, params.roleId, principal.actor, manageApp(principal)),
  });

  api.add({
    method: 'get', path: '/suites/:id/assignments', tag: 'suites', summary: "List a suite's assignments (paged in SQL, oldest first)",
    roles: readers, params: idParam, query: z.strictObject(pageQuery),
    response: page(suiteAssignmentResource).extend({ total: z.number().int() }),
    handler: async ({ params, query }) => {
      const after = decodeCursorAs(query.cursor, 'suite.assignments', createdAtIdCursor);
      const rows = await suites.listAssignments({ suiteId: params.id, after: after ? { createdAt: after[0], id: after[1] } : undefined, limit: query.limit + 1 });
      const total = await suites.countAssignments(params.id);
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return {
        items: items.map(presentAssignment), total,
        next_cursor: rows.length > query.limit && last ? encodeCursor('suite.assignments', [new Date(last.createdAt).toISOString(), last.id]) : null,
      };
    },
  });

  api.add({
    method: 'post', path: '/suites/:id/assignments', tag: 'suites', status: 201,
    summary: `Assign the suite to a user, a group or a department (optionally with its sub-departments), with suite roles by key: each member app, now and later, is assigned with the app roles they map to (each row audited as assignment.created). A person who is not active is refused: 412 suite_assignment.user_not_active${guarded}. Audited as suite_assignment.created`,
    roles: writers, params: idParam, body: createSuiteAssignmentInput, response: suiteAssignmentResource,
    handler: async ({ params, body, principal, ctx }) => {
      const assignment = await suites.createAssignment(params.id, body, principal.actor, manageApp(principal));
      ctx.set('Location', `${ctx.path}/${assignment.id}`);
      return presentAssignment(assignment);
    },
  });

  api.add({
    method: 'get', path: '/suites/:id/assignments/:assignmentId', tag: 'suites', summary: 'Get a suite assignment',
    roles: readers, params: assignmentParams, response: suiteAssignmentResource,
    handler: async ({ params }) => presentAssignment(await suites.getAssignment(params.id, params.assignmentId)),
  });

  api.add({
    method: 'patch', path: '/suites/:id/assignments/:assignmentId', tag: 'suites',
    summary: `Change a suite assignment: includeSubdepartments, or replace its suite roles (roleKeys); its apps' rows follow${guarded}. Audited as suite_assignment.updated`,
    roles: writers, params: assignmentParams, body: updateSuiteAssignmentInput, response: suiteAssignmentResource,
    handler: async ({ params, body, principal }) => presentAssignment(await suites.updateAssignment(params.id, params.assignmentId, body, principal.actor, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/suites/:id/assignments/:assignmentId', tag: 'suites', status: 204,
    summary: `Remove a suite assignment and exactly the app assignments it gave (a direct assignment of the same principal stays)${guarded}. Audited as suite_assignment.deleted`,
    roles: writers, params: assignmentParams,
    handler: async ({ params, principal }) => suites.deleteAssignment(params.id, params.assignmentId, principal.actor, manageApp(principal)),
  });

  api.add({
    method: 'get', path: '/suites/:id/grants', tag: 'suites', summary: "List a suite's grants (oldest first)",
    roles: readers, params: idParam, response: z.object({ items: z.array(suiteGrantResource) }),
    handler: async ({ params }) => ({ items: (await suites.listGrants(params.id)).map(presentGrant) }),
  });

  api.add({
    method: 'post', path: '/suites/:id/grants', tag: 'suites', status: 201,
    summary: `Approve, once for everyone, that the client app may act for the signed-in person at the audience app (token exchange, ID-JAG), within these scopes, roles and sign-in conditions. Both apps must be members (412 suite_grant.not_member); the client must be a confidential OpenID Connect app (412 suite_grant.client_public)${guarded}. Audited as suite_grant.created: the administrator's consent`,
    roles: writers, params: idParam, body: createSuiteGrantInput, response: suiteGrantResource,
    handler: async ({ params, body, principal, ctx }) => {
      const grant = await suites.createGrant(params.id, body, principal.actor, manageApp(principal));
      ctx.set('Location', `${ctx.path}/${grant.id}`);
      return presentGrant(grant);
    },
  });

  api.add({
    method: 'get', path: '/suites/:id/grants/:grantId', tag: 'suites', summary: 'Get a suite grant',
    roles: readers, params: grantParams, response: suiteGrantResource,
    handler: async ({ params }) => presentGrant(await suites.getGrant(params.id, params.grantId)),
  });

  api.add({
    method: 'patch', path: '/suites/:id/grants/:grantId', tag: 'suites',
    summary: `Change a grant's scopes, roles or sign-in conditions${guarded}. Audited as suite_grant.updated`,
    roles: writers, params: grantParams, body: updateSuiteGrantInput, response: suiteGrantResource,
    handler: async ({ params, body, principal }) => presentGrant(await suites.updateGrant(params.id, params.grantId, body, principal.actor, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/suites/:id/grants/:grantId', tag: 'suites', status: 204,
    summary: `Revoke a grant${guarded}. Audited as suite_grant.deleted`,
    roles: writers, params: grantParams,
    handler: async ({ params, principal }) => suites.deleteGrant(params.id, params.grantId, principal.actor, manageApp(principal)),
  });
}
