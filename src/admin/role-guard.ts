// Admin roles are what a caller can do in this API, whether it is an app (its client
// credentials) or a person (their tokens). So whoever gives roles to an app or a person, or
// changes one that holds roles, must hold those roles: otherwise an app_admin could make an app
// holding super_admin, or a user_admin could set a super_admin's password, and act as one.
// super_admin may do all of it.
import { AppError } from '../shared/errors.ts';
import type { Principal } from './auth.ts';
import type { AppGuard } from '../apps/apps.service.ts';

/** The roles of `roles` that `principal` does not hold (none for super_admin). */
function missing(principal: Principal, roles: readonly string[]): string[] {
  if (principal.roles.has('super_admin')) return [];
  return [...new Set(roles.filter((r) => !principal.roles.has(r as never)))];
}

/** Refuses (403) giving `roles` to `what` ("an app", "a user") unless the caller holds them all. */
export function assertMayGrant(principal: Principal, roles: readonly string[], what: string, code: string): void {
  const lacking = missing(principal, roles);
  if (lacking.length) {
    throw new AppError('permission_denied', code, `adminRoles: you cannot give ${what} admin roles you do not hold (${lacking.join(', ')})`, { field: 'adminRoles' });
  }
}

/** Refuses (403) changing `what` ("app", "user") that holds `roles` unless the caller holds them all. */
export function assertMayManage(principal: Principal, roles: readonly string[], what: string, code: string): void {
  const lacking = missing(principal, roles);
  if (lacking.length) {
    throw new AppError('permission_denied', code, `this ${what} holds admin roles you do not hold (${lacking.join(', ')}); only an administrator holding those roles can change it`);
  }
}

/**
 * The guard for every change to an app, its roles and its assignments: refused (403) if the app
 * holds admin roles the caller does not, since a person signing in to it acts with them (the
 * roles both hold). The service runs it in the write's transaction on the locked app row.
 */
export const manageApp = (principal: Principal): AppGuard => (app) => assertMayManage(principal, app.adminRoles, 'app', 'app.admin_roles_forbidden');
