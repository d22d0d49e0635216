import { z } from 'zod';
import type { Services } from '../services.ts';
import { AdminApi, createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import { requireSignInLevel, type Principal } from './auth.ts';
import { assertMayGrant, assertMayManage } from './role-guard.ts';
import { createUserInput, updateUserInput, LIFECYCLE_ACTIONS, UsersService, type LifecycleAction } from '../directory/users.service.ts';
import type { User } from '../directory/users.repo.ts';
import { attributeDefinitionInput } from '../directory/attributes.service.ts';

export const userResource = z.object({
  id: z.uuid(),
  username: z.string(),
  email: z.string().nullable(),
  emailVerified: z.boolean(),
  emails: z.array(z.object({ value: z.string(), type: z.string().optional(), primary: z.boolean().optional(), display: z.string().optional() })),
  name: z.string().nullable(),
  givenName: z.string().nullable(),
  familyName: z.string().nullable(),
  locale: z.string().nullable(),
  phone: z.string().nullable(),
  employeeNumber: z.string().nullable(),
  title: z.string().nullable(),
  managerId: z.string().nullable(),
  externalId: z.string().nullable(),
  customAttributes: z.record(z.string(), z.unknown()),
  status: z.enum(['active', 'suspended', 'deprovisioned']),
  adminRoles: z.array(z.string()),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const presentUser = (u: User): z.infer<typeof userResource> => ({
  id: u.id,
  username: u.username,
  email: u.email,
  emailVerified: u.emailVerified,
  emails: u.emails,
  name: u.displayName,
  givenName: u.givenName,
  familyName: u.familyName,
  locale: u.locale,
  phone: u.phone,
  employeeNumber: u.employeeNumber,
  title: u.title,
  managerId: u.managerId,
  externalId: u.externalId,
  customAttributes: u.customAttributes,
  status: u.status,
  adminRoles: u.adminRoles,
  version: u.version,
  createdAt: new Date(u.createdAt).toISOString(),
  updatedAt: new Date(u.updatedAt).toISOString(),
});

const userListQuery = z.strictObject({
  ...pageQuery,
  status: z.enum(['active', 'suspended', 'deprovisioned']).optional(),
  q: z.string().min(1).max(200).optional(),
  username: z.string().max(200).optional(),
  email: z.string().max(254).optional(),
  externalId: z.string().max(255).optional(),
  departmentId: z.uuid().optional(),
  recursive: z.enum(['true', 'false']).optional(),
  groupId: z.uuid().optional(),
});

const grantToUser = (principal: Principal, roles: readonly string[]): void => assertMayGrant(principal, roles, 'a user', 'user.admin_roles_forbidden');

/**
 * RFC 9470 step-up: a person's token that gives admin roles (makes an administrator) or sets
 * someone's password must come from a two-factor sign-in, so that a stolen password alone cannot
 * make itself more administrators or take over accounts. Checked after the role guards: a caller
 * who may not do it at all is told so (403) rather than sent to sign in again for nothing.
 */
export const STEP_UP_LEVEL = 'mfa' as const;
const GIVES_ROLES = 'when it gives admin roles the user does not hold or sets a password';

export function registerUserRoutes(api: AdminApi, { db, hasher, users, attributes }: Services): void {
  const readers = ['user_admin', 'app_admin', 'auditor'] as const;

  /**
   * Every write on an existing user goes through here: in one transaction, the user's row is
   * locked, the caller is checked against the admin roles the user holds now (so a concurrent
   * grant cannot slip in between the check and the write), and only then is the write done.
   * An unknown id is left to the directory (404).
   */
  const changeUser = <T>(principal: Principal, id: string, work: (users: UsersService) => Promise<T>, check?: (current: { admin_roles: string[] }) => void): Promise<T> =>
    db.transaction(async (trx) => {
      const row = await trx('users').where({ id }).forUpdate().first<{ admin_roles: string[] } | undefined>('admin_roles');
      if (row) {
        assertMayManage(principal, row.admin_roles, 'user', 'user.admin_roles_forbidden');
        check?.(row);
      }
      return work(new UsersService(trx, hasher));
    });

  api.add({
    method: 'get', path: '/users', tag: 'users', summary: 'List users (filtered and paged in SQL, oldest first)',
    roles: readers, query: userListQuery, response: page(userResource),
    handler: async ({ query }) => {
      const after = decodeCursorAs(query.cursor, 'users', createdAtIdCursor);
      const rows = await users.listUsers({
        ...query,
        recursive: query.recursive === 'true',
        after: after ? { createdAt: after[0], id: after[1] } : undefined,
        limit: query.limit + 1,
      });
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return {
        items: items.map(presentUser),
        next_cursor: rows.length > query.limit && last ? encodeCursor('users', [new Date(last.createdAt).toISOString(), last.id]) : null,
      };
    },
  });

  api.add({
    method: 'post', path: '/users', tag: 'users', summary: 'Create a user', status: 201,
    roles: ['user_admin'], body: createUserInput, response: userResource,
    signInLevel: STEP_UP_LEVEL, signInLevelWhen: 'when it gives admin roles',
    handler: async ({ body, principal, ctx }) => {
      grantToUser(principal, body.adminRoles ?? []);
      if (body.adminRoles?.length) requireSignInLevel(ctx, principal, STEP_UP_LEVEL);
      const user = await users.createUser(body, principal.actor);
      ctx.set('Location', `${ctx.path}/${user.id}`);
      return presentUser(user);
    },
  });

  api.add({
    method: 'get', path: '/users/:id', tag: 'users', summary: 'Get a user', roles: readers,
    params: idParam, response: userResource,
    handler: async ({ params }) => presentUser(await users.getUser(params.id)),
  });

  api.add({
    method: 'patch', path: '/users/:id', tag: 'users', summary: 'Update a user (send If-Match with the ETag to refuse stale writes: 412)',
    roles: ['user_admin'], params: idParam, body: updateUserInput, response: userResource,
    signInLevel: STEP_UP_LEVEL, signInLevelWhen: GIVES_ROLES,
    handler: async ({ params, body, principal, ifMatch, ctx }) => {
      if (body.adminRoles) grantToUser(principal, body.adminRoles);
      const stepUp = (current: { admin_roles: string[] }): void => {
        const gives = body.adminRoles?.some((role) => !current.admin_roles.includes(role));
        if (gives || body.password !== undefined) requireSignInLevel(ctx, principal, STEP_UP_LEVEL);
      };
      return presentUser(await changeUser(principal, params.id, (w) => w.updateUser(params.id, body, principal.actor, ifMatch), stepUp));
    },
  });

  for (const action of Object.keys(LIFECYCLE_ACTIONS) as LifecycleAction[]) {
    api.add({
      method: 'post', path: `/users/:id/${action}`, tag: 'users',
      summary: action === 'reactivate' ? 'Reactivate a suspended user (sign-in works again; old sessions stay ended)'
        : `${action === 'suspend' ? 'Suspend' : 'Deprovision'} a user: ends all sessions, grants and refresh tokens at once`,
      roles: ['user_admin'], params: idParam, response: userResource,
      handler: async ({ params, principal, ifMatch }) =>
        presentUser(await changeUser(principal, params.id, (w) => w.changeStatus(params.id, action, principal.actor, ifMatch))),
    });
  }

  const definition = z.object({ key: z.string(), type: z.string(), required: z.boolean(), enumValues: z.array(z.string()).nullable(), description: z.string().nullable() });
  api.add({
    method: 'get', path: '/attribute-definitions', tag: 'users', summary: 'List custom user attribute definitions',
    roles: readers, response: z.object({ items: z.array(definition) }),
    handler: async () => ({ items: await attributes.list() }),
  });
  api.add({
    method: 'post', path: '/attribute-definitions', tag: 'users', summary: 'Define a custom user attribute', status: 201,
    roles: ['user_admin'], body: attributeDefinitionInput, response: definition,
    handler: async ({ body, principal }) => attributes.define(body, principal.actor),
  });
  api.add({
    method: 'delete', path: '/attribute-definitions/:key', tag: 'users', summary: 'Delete an attribute definition no user carries', status: 204,
    roles: ['user_admin'], params: z.strictObject({ key: z.string().max(63) }),
    handler: async ({ params, principal }) => attributes.remove(params.key, principal.actor),
  });
}
