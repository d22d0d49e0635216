// The console's suites (#22): the list in portal order with a form for a new suite, and a suite's
// page: its settings (name, icon, order, the sign-in policy its apps inherit, suite-wide
// sign-out), its member apps with the role map of each, its suite roles, who it is assigned to
// and the grants between its apps. Every read and write is an admin API route run in process
// (pages.ts): auditors read, app_admins change suites whose apps they may change; the API decides.
import type { Context } from 'koa';
import type { z } from 'zod';
import { page, sendTo, type ConsolePage, type RegisterPages } from './pages.ts';
import { renderPrincipalOptions } from './apps.pages.ts';
import { SIGN_IN_POLICIES } from '../access/signin-policy.ts';
import { PRINCIPAL_TYPES } from '../access/assignments.repo.ts';
import type { suiteAssignmentResource, suiteGrantResource, suiteResource } from '../admin/suites.routes.ts';
import type { appResource, appRoleResource } from '../admin/apps.routes.ts';

type Suite = z.infer<typeof suiteResource>;
type SuiteAssignment = z.infer<typeof suiteAssignmentResource>;
type SuiteGrant = z.infer<typeof suiteGrantResource>;
type AppView = z.infer<typeof appResource>;
type AppRole = z.infer<typeof appRoleResource>;
type Form = Record<string, unknown>;

const LIST_SIZE = 50;
const ASSIGNMENT_PAGE = 50;
/** How many apps the "add an app" list offers (the API's own order: oldest first). */
const APP_CHOICES = 200;

/** The notices a redirect may ask the next page to show (nothing else from the URL is echoed). */
const NOTICES = [
  'created', 'saved', 'deleted', 'app_added', 'app_saved', 'app_removed', 'role_added', 'role_removed',
  'assigned', 'assignment_saved', 'assignment_removed', 'grant_added', 'grant_revoked',
] as const;

const text = (form: Form, name: string): string => {
  const v = form[name];
  return typeof v === 'string' ? v.trim() : Array.isArray(v) && typeof v[0] === 'string' ? v[0].trim() : '';
};
const list = (form: Form, name: string): string[] => {
  const v = form[name];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string' && x !== '');
};
const checked = (form: Form, name: string): boolean => ['on', 'true', '1'].includes(text(form, name));
const bodyOf = (ctx: Context): Form => (ctx.request.body ?? {}) as Form;
const param = (ctx: Context, name: string): string => String((ctx.params as Record<string, string>)[name] ?? '');
const version = (form: Form): number | undefined => (/^\d{1,9}$/.test(text(form, 'version')) ? Number(text(form, 'version')) : undefined);
const cursorOf = (value: unknown): string | undefined => (typeof value === 'string' && value ? value.slice(0, 500) : undefined);

/**
 * A whole number typed in a form, as a number for the API; anything else goes as typed, so that
 * the API's own refusal names the field (the console adds no rule of its own).
 */
function integer(form: Form, name: string): number | string | undefined {
  const raw = text(form, name);
  if (raw === '') return undefined;
  return /^-?\d{1,12}$/.test(raw) ? Number(raw) : raw;
}

/** The suite settings of a form, as the API's body: '' clears an optional field. */
function settingsOf(form: Form): Record<string, unknown> {
  return {
    name: text(form, 'name'),
    description: text(form, 'description') || null,
    iconUrl: text(form, 'iconUrl') || null,
    signInPolicy: text(form, 'signInPolicy') || null,
    suiteSignout: checked(form, 'suiteSignout'),
    ...(integer(form, 'position') !== undefined ? { position: integer(form, 'position') } : {}),
  };
}

/**
 * The member apps with their roles and, per suite role, the app role keys it gives (the role map
 * as the page ticks it).
 */
async function membersOf(c: ConsolePage, suite: Suite) {
  const rolesOf = await Promise.all(suite.apps.map((a) => c.call<{ items: AppRole[] }>('get', '/apps/:id/roles', { params: { id: a.appId } })));
  return suite.apps.map((a, i) => ({ ...a, appRoles: rolesOf[i]!.items }));
}

/** The apps an admin may add: the first APP_CHOICES apps the API lists, less the members. */
async function appChoices(c: ConsolePage, suite: Suite): Promise<{ id: string; name: string; protocol: string }[]> {
  const apps = await c.call<{ items: AppView[] }>('get', '/apps', { query: { limit: String(APP_CHOICES) } });
  const members = new Set(suite.apps.map((a) => a.appId));
  return apps.items.filter((a) => !members.has(a.id) && !a.managedByOneId).map((a) => ({ id: a.id, name: a.name, protocol: a.protocol }));
}

/**
 * Where a change sends the browser. No #anchor: htmx follows HX-Redirect by setting
 * location.href, and a URL that differs from the current one only after '#' (the same notice
 * twice) would scroll instead of loading the page again.
 */
/** Grants with their apps' names (a grant names two members; a removed member takes its grants). */
function presentGrants(suite: Suite, grants: SuiteGrant[]) {
  const names = new Map(suite.apps.map((a) => [a.appId, a.name]));
  return grants.map((g) => ({ ...g, clientName: names.get(g.clientAppId) ?? g.clientAppId, audienceName: names.get(g.audienceAppId) ?? g.audienceAppId }));
}

/** Scopes typed in a form: separated by spaces, commas or lines; the API checks each one. */
const scopesOf = (form: Form): string[] => [...new Set(text(form, 'scopes').split(/[\s,]+/).filter(Boolean))];

const suiteUrl = (id: string, notice: (typeof NOTICES)[number]): string => `/admin/suites/${id}?notice=${notice}`;

export const registerSuitesPages: RegisterPages = (router) => {
  const choices = { signInPolicies: SIGN_IN_POLICIES, principalTypes: PRINCIPAL_TYPES };

  // ---- the list and a new suite -----------------------------------------------------------
  router.get('/suites', async (ctx) => {
    const c = page(ctx);
    const cursor = cursorOf(ctx.query.cursor);
    const result = await c.call<{ items: Suite[]; total: number; next_cursor: string | null }>('get', '/suites', {
      query: { limit: String(LIST_SIZE), ...(cursor ? { cursor } : {}) },
    });
    c.render('suites-list.njk', {
      section: 'suites', suites: result.items, total: result.total, next: result.next_cursor, first: !cursor, choices,
      notice: NOTICES.find((n) => n === ctx.query.notice),
      may: { create: c.may('post', '/suites') },
    });
  });

  router.post('/suites', async (ctx) => {
    const created = await page(ctx).call<Suite>('post', '/suites', { body: settingsOf(bodyOf(ctx)) });
    sendTo(ctx, suiteUrl(created.id, 'created'));
  });

  // ---- one suite --------------------------------------------------------------------------
  router.get('/suites/:id', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    const suite = await c.call<Suite>('get', '/suites/:id', { params: { id } });
    const may = {
      edit: c.may('patch', '/suites/:id'), remove: c.may('delete', '/suites/:id'),
      members: c.may('put', '/suites/:id/apps/:appId'), roles: c.may('post', '/suites/:id/roles'),
      assign: c.may('post', '/suites/:id/assignments'), grant: c.may('post', '/suites/:id/grants'),
    };
    const acursor = cursorOf(ctx.query.acursor);
    const [members, candidates, grants, assignments] = await Promise.all([
      membersOf(c, suite), may.members ? appChoices(c, suite) : [],
      c.call<{ items: SuiteGrant[] }>('get', '/suites/:id/grants', { params: { id } }),
      c.call<{ items: SuiteAssignment[]; total: number; next_cursor: string | null }>('get', '/suites/:id/assignments', {
        params: { id }, query: { limit: String(ASSIGNMENT_PAGE), ...(acursor ? { cursor: acursor } : {}) },
      }),
    ]);
    c.render('suites-detail.njk', {
      section: 'suites', suite, members, candidates, assignments, choices, grants: presentGrants(suite, grants.items),
      notice: NOTICES.find((n) => n === ctx.query.notice),
      may,
    });
  });

  router.post('/suites/:id', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await page(ctx).call('patch', '/suites/:id', { params: { id }, ifMatch: version(form), body: settingsOf(form) });
    sendTo(ctx, suiteUrl(id, 'saved'));
  });

  router.post('/suites/:id/delete', async (ctx) => {
    await page(ctx).call('delete', '/suites/:id', { params: { id: param(ctx, 'id') }, ifMatch: version(bodyOf(ctx)) });
    sendTo(ctx, '/admin/suites?notice=deleted');
  });

  // ---- member apps and their role maps ----------------------------------------------------
  router.post('/suites/:id/apps', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const position = integer(form, 'position');
    await page(ctx).call('put', '/suites/:id/apps/:appId', { params: { id, appId: text(form, 'appId') }, body: position === undefined ? {} : { position } });
    sendTo(ctx, suiteUrl(id, 'app_added'));
  });

  /**
   * A member's order and whole role map: one box per (suite role, app role), named map:<suite
   * role key>. The suite's roles are read again so that a role no box was ticked for maps to none.
   */
  router.post('/suites/:id/apps/:appId', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const suite = await c.call<Suite>('get', '/suites/:id', { params: { id } });
    const roleMap = Object.fromEntries(suite.roles.map((r) => [r.key, list(form, `map:${r.key}`)]));
    const position = integer(form, 'position');
    await c.call('put', '/suites/:id/apps/:appId', {
      params: { id, appId: param(ctx, 'appId') }, body: { roleMap, ...(position === undefined ? {} : { position }) },
    });
    sendTo(ctx, suiteUrl(id, 'app_saved'));
  });

  router.post('/suites/:id/apps/:appId/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/suites/:id/apps/:appId', { params: { id, appId: param(ctx, 'appId') } });
    sendTo(ctx, suiteUrl(id, 'app_removed'));
  });

  // ---- suite roles ------------------------------------------------------------------------
  router.post('/suites/:id/roles', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await page(ctx).call('post', '/suites/:id/roles', {
      params: { id }, body: { key: text(form, 'key'), name: text(form, 'name') || text(form, 'key'), ...(text(form, 'description') ? { description: text(form, 'description') } : {}) },
    });
    sendTo(ctx, suiteUrl(id, 'role_added'));
  });

  router.post('/suites/:id/roles/:roleId/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/suites/:id/roles/:roleId', { params: { id, roleId: param(ctx, 'roleId') } });
    sendTo(ctx, suiteUrl(id, 'role_removed'));
  });

  // ---- assignments ------------------------------------------------------------------------
  /** The apps pages' principal picker, asked from this page. */
  router.get('/suites/:id/principals', (ctx) => renderPrincipalOptions(ctx));

  router.post('/suites/:id/assignments', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const principalType = text(form, 'principalType');
    await page(ctx).call('post', '/suites/:id/assignments', {
      params: { id },
      body: {
        principalType, principalId: text(form, 'principalId'), roleKeys: list(form, 'roleKeys'),
        ...(principalType === 'department' ? { includeSubdepartments: checked(form, 'includeSubdepartments') } : {}),
      },
    });
    sendTo(ctx, suiteUrl(id, 'assigned'));
  });

  router.post('/suites/:id/assignments/:assignmentId', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await page(ctx).call('patch', '/suites/:id/assignments/:assignmentId', {
      params: { id, assignmentId: param(ctx, 'assignmentId') },
      body: {
        roleKeys: list(form, 'roleKeys'),
        ...(text(form, 'principalType') === 'department' ? { includeSubdepartments: checked(form, 'includeSubdepartments') } : {}),
      },
    });
    sendTo(ctx, suiteUrl(id, 'assignment_saved'));
  });

  router.post('/suites/:id/assignments/:assignmentId/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/suites/:id/assignments/:assignmentId', { params: { id, assignmentId: param(ctx, 'assignmentId') } });
    sendTo(ctx, suiteUrl(id, 'assignment_removed'));
  });

  // ---- grants -----------------------------------------------------------------------------
  /**
   * The audience app's roles as boxes for the grant form, asked when the admin picks the app (so
   * no box of another app can be ticked: none ticked means every role the person holds there).
   */
  router.get('/suites/:id/grant-roles', async (ctx) => {
    const c = page(ctx);
    const suite = await c.call<Suite>('get', '/suites/:id', { params: { id: param(ctx, 'id') } });
    const member = suite.apps.find((a) => a.appId === ctx.query.audienceAppId);
    const roles = member ? (await c.call<{ items: AppRole[] }>('get', '/apps/:id/roles', { params: { id: member.appId } })).items : [];
    c.render('suites-grant-roles.njk', { member, roles });
  });

  router.post('/suites/:id/grants', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const roles = list(form, 'roles');
    await page(ctx).call('post', '/suites/:id/grants', {
      params: { id },
      body: {
        clientAppId: text(form, 'clientAppId'), audienceAppId: text(form, 'audienceAppId'), scopes: scopesOf(form),
        roles: roles.length ? roles : null,
        minSignInPolicy: text(form, 'minSignInPolicy') || null,
        maxAgeSeconds: integer(form, 'maxAgeSeconds') ?? null,
      },
    });
    sendTo(ctx, suiteUrl(id, 'grant_added'));
  });

  router.post('/suites/:id/grants/:grantId/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/suites/:id/grants/:grantId', { params: { id, grantId: param(ctx, 'grantId') } });
    sendTo(ctx, suiteUrl(id, 'grant_revoked'));
  });
};
