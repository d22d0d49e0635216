import { z } from 'zod';
import type { Services } from '../services.ts';
import { AdminApi, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import { presentUser, userResource } from './users.routes.ts';
import { createGroupInput, groupMemberInput, groupMembersBatchInput, MEMBER_BATCH_LIMIT, updateGroupInput } from '../directory/groups.service.ts';
import type { Group } from '../directory/groups.repo.ts';

export const groupResource = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string().nullable(),
  externalId: z.string().nullable(),
  version: z.number().int().describe('changes on every update and every membership change'),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const presentGroup = (g: Group): z.infer<typeof groupResource> => ({
  id: g.id,
  name: g.name,
  description: g.description,
  externalId: g.externalId,
  version: g.version,
  createdAt: new Date(g.createdAt).toISOString(),
  updatedAt: new Date(g.updatedAt).toISOString(),
});

/** A list page, with `total` (every page's rows, counted in SQL) when asked for with count=true. */
const countedPage = <T extends z.ZodType>(item: T) => page(item).extend({
  total: z.number().int().optional().describe('with count=true: how many match, over all pages'),
});
const countFlag = z.enum(['true', 'false']).optional().describe('true: also return total, the number of matches over all pages');

const batchResult = z.object({
  group: groupResource,
  added: z.number().int(),
  removed: z.number().int(),
  results: z.array(z.object({
    ref: z.string().describe('the reference as sent'),
    userId: z.uuid().nullable(),
    outcome: z.enum(['added', 'already_member', 'removed', 'not_member', 'not_found', 'deprovisioned', 'duplicate'])
      .describe('duplicate: an earlier reference named the same person; deprovisioned: not added'),
  })).describe('one per reference, adds first, in the order sent'),
});

const groupListQuery = z.strictObject({
  ...pageQuery,
  name: z.string().min(1).max(200).optional().describe('exact name, case-insensitive'),
  q: z.string().min(1).max(200).optional().describe('name prefix, case-insensitive'),
  externalId: z.string().min(1).max(255).optional(),
  memberId: z.uuid().optional().describe('only groups this user is a member of'),
  count: countFlag,
});

const membersQuery = z.strictObject({
  ...pageQuery,
  status: z.enum(['active', 'suspended', 'deprovisioned']).optional(),
  count: countFlag,
});

const memberParams = z.strictObject({ id: z.uuid(), userId: z.uuid() });

const nameCursor = z.tuple([z.string().max(200)]);
const userIdCursor = z.tuple([z.uuid()]);

function paged<T, R>(list: string, rows: T[], limit: number, present: (row: T) => R, key: (row: T) => unknown[]) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items: items.map(present), next_cursor: rows.length > limit && last ? encodeCursor(list, key(last)) : null };
}

export function registerGroupsRoutes(api: AdminApi, { groups }: Services): void {
  const readers = ['user_admin', 'app_admin', 'auditor'] as const;
  const writers = ['user_admin'] as const;

  api.add({
    method: 'get', path: '/groups', tag: 'groups', summary: 'List groups (filtered and paged in SQL, by name)',
    roles: readers, query: groupListQuery, response: countedPage(groupResource),
    handler: async ({ query }) => {
      const after = decodeCursorAs(query.cursor, 'groups', nameCursor);
      const filter = { name: query.name, q: query.q, externalId: query.externalId, memberId: query.memberId };
      const rows = await groups.listGroups({ ...filter, afterName: after?.[0], limit: query.limit + 1 });
      const result = paged('groups', rows, query.limit, presentGroup, (g) => [g.name]);
      return query.count === 'true' ? { ...result, total: await groups.countGroups(filter) } : result;
    },
  });

  api.add({
    method: 'post', path: '/groups', tag: 'groups', summary: 'Create a group (409 group.name_taken when the name is in use, in any case)', status: 201,
    roles: writers, body: createGroupInput, response: groupResource,
    handler: async ({ body, principal, ctx }) => {
      const group = await groups.createGroup(body, principal.actor);
      ctx.set('Location', `${ctx.path}/${group.id}`);
      return presentGroup(group);
    },
  });

  api.add({
    method: 'get', path: '/groups/:id', tag: 'groups', summary: 'Get a group', roles: readers,
    params: idParam, response: groupResource,
    handler: async ({ params }) => presentGroup(await groups.getGroup(params.id)),
  });

  api.add({
    method: 'patch', path: '/groups/:id', tag: 'groups', summary: 'Update a group (If-Match with the ETag refuses stale writes: 412)',
    roles: writers, params: idParam, body: updateGroupInput, response: groupResource,
    handler: async ({ params, body, principal, ifMatch }) => presentGroup(await groups.updateGroup(params.id, body, principal.actor, ifMatch)),
  });

  api.add({
    method: 'delete', path: '/groups/:id', tag: 'groups', summary: 'Delete a group with its memberships', status: 204,
    roles: writers, params: idParam,
    handler: async ({ params, principal, ifMatch }) => groups.deleteGroup(params.id, principal.actor, ifMatch),
  });

  api.add({
    method: 'get', path: '/groups/:id/members', tag: 'groups', summary: 'Members of the group, by user id, paged in SQL',
    roles: readers, params: idParam, query: membersQuery, response: countedPage(userResource),
    handler: async ({ params, query }) => {
      const after = decodeCursorAs(query.cursor, 'groups.members', userIdCursor);
      const rows = await groups.listMembers(params.id, { status: query.status, afterUserId: after?.[0], limit: query.limit + 1 });
      const result = paged('groups.members', rows, query.limit, presentUser, (u) => [u.id]);
      return query.count === 'true' ? { ...result, total: await groups.countMembers(params.id, query.status) } : result;
    },
  });

  api.add({
    method: 'post', path: '/groups/:id/members', tag: 'groups', summary: 'Add one member (one row; idempotent)', status: 204,
    roles: writers, params: idParam, body: groupMemberInput,
    handler: async ({ params, body, principal }) => {
      await groups.addMember(params.id, body.userId, principal.actor);
    },
  });

  api.add({
    method: 'post', path: '/groups/:id/members/batch', tag: 'groups',
    summary: `Add and remove many members at once, each named by user id, username or email (at most ${MEMBER_BATCH_LIMIT} in all), in one transaction; says what happened to each`,
    roles: writers, params: idParam, body: groupMembersBatchInput, response: batchResult,
    handler: async ({ params, body, principal }) => {
      const { group, ...rest } = await groups.changeMembersByReference(params.id, body, principal.actor);
      return { group: presentGroup(group), ...rest };
    },
  });

  api.add({
    method: 'delete', path: '/groups/:id/members/:userId', tag: 'groups', summary: 'Remove one member (one row)', status: 204,
    roles: writers, params: memberParams,
    handler: async ({ params, principal }) => groups.removeMember(params.id, params.userId, principal.actor),
  });
}
