// What every console page gets: the signed-in admin, in-process calls to the admin API (its roles,
// step-up, validation, handlers and audit: the console adds no rule of its own), and rendering in
// the console's layout with the navigation the admin's roles allow.
import type { Context } from 'koa';
import type Router from '@koa/router';
import type { Knex } from 'knex';
import type { AdminApi, CallInput, Method } from '../admin/api.ts';
import type { Principal } from '../admin/auth.ts';
import type { Views } from '../login/views.ts';
import type { Services } from '../services.ts';
import type { ConsoleUser } from './auth.ts';
import type { AdminRole } from '../directory/users.service.ts';

export interface ConsoleDeps {
  db: Knex;
  api: AdminApi;
  views: Views;
  services: Services;
  issuer: string;
}

/**
 * One entry of the console's navigation, shown when the admin may call one of `needs` and, with
 * `roles`, holds one of them (Apps: a user_admin may read apps for people's pages, but apps are
 * not their work, so the section is not theirs).
 */
export interface NavItem { key: string; href: string; label: string; needs: [Method, string][]; roles?: AdminRole[] }

export const NAV: NavItem[] = [
  { key: 'people', href: '/admin/people', label: 'console.nav.people', needs: [['get', '/users']] },
  { key: 'departments', href: '/admin/departments', label: 'console.nav.departments', needs: [['get', '/departments']] },
  { key: 'groups', href: '/admin/groups', label: 'console.nav.groups', needs: [['get', '/groups']] },
  { key: 'apps', href: '/admin/apps', label: 'console.nav.apps', needs: [['get', '/apps']], roles: ['app_admin', 'auditor'] },
  { key: 'suites', href: '/admin/suites', label: 'console.nav.suites', needs: [['get', '/suites']], roles: ['app_admin', 'auditor'] },
  { key: 'webhooks', href: '/admin/webhooks', label: 'console.nav.webhooks', needs: [['get', '/webhooks']] },
  { key: 'audit', href: '/admin/audit', label: 'console.nav.audit', needs: [['get', '/audit-events']] },
  // The dead letters page lives under Settings, so an app_admin (who may read them) sees Settings too.
  { key: 'settings', href: '/admin/settings', label: 'console.nav.settings', needs: [['get', '/scim-tokens'], ['get', '/keys'], ['get', '/jobs/dead-letters']] },
];

export interface ConsolePage {
  principal: Principal;
  user: ConsoleUser;
  /** Runs an admin API route for this admin (e.g. call('get', '/users/:id', { params: { id } })). */
  call<T = unknown>(method: Method, path: string, input?: CallInput): Promise<T>;
  /** Whether this admin's roles allow the route: to show a page, a link or a button. */
  may(method: Method, path: string): boolean;
  /** Renders `template` (under views/console/) in the console layout; `section` marks the nav entry. */
  render(template: string, vars?: Record<string, unknown>, status?: number): void;
  /** An htmx request (a fragment is wanted, not the whole page). */
  partial: boolean;
}

export const page = (ctx: Context): ConsolePage => ctx.state.console as ConsolePage;

/** The sections `principal` sees. */
export const navFor = (principal: Principal, may: (method: Method, path: string) => boolean): NavItem[] => NAV.filter((item) =>
  item.needs.some(([method, path]) => may(method, path))
  && (!item.roles || principal.roles.has('super_admin') || item.roles.some((role) => principal.roles.has(role))));

/**
 * Sends the browser on after a change or to another page: htmx follows HX-Redirect (a full page
 * load, so the address bar and history are right), a plain form a 303 (no resubmission on reload).
 */
export function sendTo(ctx: Context, url: string): void {
  if (ctx.get('hx-request')) {
    ctx.status = 204;
    ctx.set('HX-Redirect', url);
  } else {
    ctx.status = 303;
    ctx.redirect(url);
  }
}

/** Each area registers its pages on the console router (prefix /admin, signed-in admins only). */
export type RegisterPages = (router: Router, deps: ConsoleDeps) => void;
