import { z } from 'zod';
import type { Knex } from 'knex';
import type { Services } from '../services.ts';
import { AdminApi, createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import { requireSignInLevel, type Principal } from './auth.ts';
import { assertMayGrant, assertMayManage } from './role-guard.ts';
import { createUserInput, updateUserInput, LIFECYCLE_ACTIONS, UsersService, type LifecycleAction } from '../directory/users.service.ts';
import { USER_SORTS, type User } from '../directory/users.repo.ts';
import { Readable } from 'node:stream';
import { recordAuditNow } from '../audit/audit.service.ts';
import { AppError } from '../shared/errors.ts';
import { SETUP_LINK_DEFAULT_DAYS, SETUP_LINK_PATH } from '../directory/password-setup.service.ts';
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

const userFilterQuery = {
  status: z.enum(['active', 'suspended', 'deprovisioned']).optional(),
  q: z.string().min(1).max(200).optional().describe('prefix of the username, email, name (display, given or family) or employee number; any case'),
  username: z.string().max(200).optional(),
  email: z.string().max(254).optional(),
  externalId: z.string().max(255).optional(),
  departmentId: z.uuid().optional(),
  recursive: z.enum(['true', 'false']).optional(),
  groupId: z.uuid().optional(),
};

const userListQuery = z.strictObject({
  ...pageQuery,
  ...userFilterQuery,
  sort: z.enum(USER_SORTS).optional().describe('the order (default createdAt); then by id'),
  order: z.enum(['asc', 'desc']).optional(),
  offset: z.coerce.number().int().min(0).max(1_000_000).optional().describe('rows to skip, for numbered pages (then next_offset instead of next_cursor)'),
  count: z.enum(['true', 'false']).optional().describe('true: also the total number of matching users (total)'),
});

const userExportQuery = z.strictObject({ ...userFilterQuery });

const userListResponse = page(userResource).extend({
  next_offset: z.number().int().nullable().optional().describe('with sort, order or offset: the offset of the next page, null on the last'),
  total: z.number().int().optional().describe('with count=true: how many users match'),
});

/** The columns of an export, in order (CSV header names). */
const EXPORT_COLUMNS: [string, (u: User) => string | null][] = [
  ['id', (u) => u.id], ['username', (u) => u.username], ['name', (u) => u.displayName], ['givenName', (u) => u.givenName],
  ['familyName', (u) => u.familyName], ['email', (u) => u.email], ['employeeNumber', (u) => u.employeeNumber], ['title', (u) => u.title],
  ['phone', (u) => u.phone], ['status', (u) => u.status], ['createdAt', (u) => new Date(u.createdAt).toISOString()],
];

/**
 * One CSV cell (RFC 4180). Text a spreadsheet would run as a formula (= + - @, or a tab or carriage
 * return before one) is prefixed with an apostrophe (OWASP "CSV injection"): a person's name comes
 * from whoever typed it, and the export is opened by an administrator.
 */
export function csvCell(value: string | null): string {
  let text = value ?? '';
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const EXPORT_PAGE = 1000;

const grantToUser = (principal: Principal, roles: readonly string[]): void => assertMayGrant(principal, roles, 'a user', 'user.admin_roles_forbidden');

/**
 * RFC 9470 step-up: a person's token that gives admin roles (makes an administrator) or sets
 * someone's password must come from a two-factor sign-in, so that a stolen password alone cannot
 * make itself more administrators or take over accounts. Checked after the role guards: a caller
 * who may not do it at all is told so (403) rather than sent to sign in again for nothing.
 */
export const STEP_UP_LEVEL = 'mfa' as const;
const GIVES_ROLES = 'when it gives admin roles the user does not hold or sets a password';

export function registerUserRoutes(api: AdminApi, { db, hasher, users, attributes, setupLinks, config }: Services): void {
  const readers = ['user_admin', 'app_admin', 'auditor'] as const;

  /**
   * Every write on an existing user goes through here: in one transaction, the user's row is
   * locked, the caller is checked against the admin roles the user holds now (so a concurrent
   * grant cannot slip in between the check and the write), and only then is the write done.
   * An unknown id is left to the directory (404).
   */
  const changeUser = <T>(principal: Principal, id: string, work: (users: UsersService, trx: Knex.Transaction) => Promise<T>, check?: (current: { admin_roles: string[] }) => void): Promise<T> =>
    db.transaction(async (trx) => {
      const row = await trx('users').where({ id }).forUpdate().first<{ admin_roles: string[] } | undefined>('admin_roles');
      if (row) {
        assertMayManage(principal, row.admin_roles, 'user', 'user.admin_roles_forbidden');
        check?.(row);
      }
      return work(new UsersService(trx, hasher), trx);
    });

  api.add({
    method: 'get', path: '/users', tag: 'users',
    summary: 'List users (filtered, sorted and paged in SQL; oldest first unless sorted; with count=true the total too)',
    roles: readers, query: userListQuery, response: userListResponse,
    handler: async ({ query }) => {
      const { cursor, limit, sort, order, offset, count, recursive, ...filter } = query;
      // A cursor holds a position in the default order only; numbered pages use offset.
      const numbered = (sort !== undefined && sort !== 'createdAt') || order === 'desc' || offset !== undefined;
      if (cursor && numbered) {
        throw new AppError('invalid_argument', 'request.invalid', 'cursor: pages the default order only; with sort, order or offset, page with offset', { field: 'cursor', in: 'query' });
      }
      const after = decodeCursorAs(cursor, 'users', createdAtIdCursor);
      const where = { ...filter, recursive: recursive === 'true' };
      const wanted = { ...where, sort, order, offset, after: after ? { createdAt: after[0], id: after[1] } : undefined, limit: limit + 1 };
      const { users: rows, total } = count === 'true' ? await users.listUsersWithCount(wanted) : { users: await users.listUsers(wanted), total: undefined };
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      const more = rows.length > limit;
      return {
        items: items.map(presentUser),
        next_cursor: !numbered && more && last ? encodeCursor('users', [new Date(last.createdAt).toISOString(), last.id]) : null,
        ...(numbered ? { next_offset: more ? (offset ?? 0) + limit : null } : {}),
        ...(total !== undefined ? { total } : {}),
      };
    },
  });

  api.add({
    method: 'get', path: '/users/export', tag: 'users',
    summary: 'Every user the filter matches as CSV (text/csv, UTF-8 with a BOM for spreadsheets; cells that would run as formulas start with an apostrophe), oldest first, streamed; recorded in the audit log as user.exported with the filter and the count',
    roles: readers, query: userExportQuery, produces: 'text/csv',
    handler: async ({ query, principal, ctx }) => {
      const { recursive, ...filter } = query;
      const where = { ...filter, recursive: recursive === 'true' };
      const count = await users.countUsers(where);
      await recordAuditNow(db, principal.actor, { action: 'user.exported', targetType: 'user', changes: { filter: query, count, format: 'csv' } });
      ctx.type = 'text/csv; charset=utf-8';
      ctx.set('Content-Disposition', `attachment; filename="people-${new Date().toISOString().slice(0, 10)}.csv"`);
      // Keyset pages of the default order: each page is an index range, however far in.
      async function* lines(): AsyncGenerator<string> {
        yield `\uFEFF${EXPORT_COLUMNS.map(([name]) => name).join(',')}\r\n`;
        let after: { createdAt: string; id: string } | undefined;
        for (;;) {
          const rows = await users.listUsers({ ...where, after, limit: EXPORT_PAGE });
          if (rows.length) yield rows.map((u) => `${EXPORT_COLUMNS.map(([, get]) => csvCell(get(u))).join(',')}\r\n`).join('');
          if (rows.length < EXPORT_PAGE) return;
          const last = rows[rows.length - 1]!;
          after = { createdAt: new Date(last.createdAt).toISOString(), id: last.id };
        }
      }
      return Readable.from(lines());
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

  api.add({
    method: 'post', path: '/users/:id/setup-link', tag: 'users', status: 201,
    summary: 'A one-time link with which the person chooses their own password at /password-setup (the link is shown once; it expires after expiresInDays, default 7, and a newer link voids older ones)',
    roles: ['user_admin'], params: idParam, body: z.strictObject({ expiresInDays: z.number().int().min(1).max(30).optional() }),
    response: z.object({ url: z.url(), expiresAt: z.string() }),
    // Whoever holds the link can set the password: for an account that can already sign in, that
    // is taking it over, and needs the same two-factor sign-in as setting the password directly.
    signInLevel: STEP_UP_LEVEL, signInLevelWhen: 'when the person already has a password or another sign-in method',
    handler: async ({ params, body, principal, ctx }) => changeUser(principal, params.id, async (_w, trx) => {
      const signsIn = await trx('credentials').where({ user_id: params.id }).first('id');
      if (signsIn) requireSignInLevel(ctx, principal, STEP_UP_LEVEL);
      const { token, expiresAt } = await setupLinks.create(trx, params.id, body.expiresInDays ?? SETUP_LINK_DEFAULT_DAYS, principal.actor);
      return { url: `${config.issuer}${SETUP_LINK_PATH}?token=${token}`, expiresAt: expiresAt.toISOString() };
    }),
  });

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
