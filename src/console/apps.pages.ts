// The console's apps pages: register OpenID Connect and SAML apps, show what to paste into them
// (client id, the secret once, issuer, discovery and SAML metadata URLs), edit, rotate, delete,
// and manage the app's roles and who is assigned to it. Every read and write is an admin API
// route run in process (page(ctx).call), so its roles, validation and audit apply unchanged.
import type { Context } from 'koa';
import type { z } from 'zod';
import { page, type RegisterPages, sendTo } from './pages.ts';
import { GRANT_TYPES } from '../apps/apps.service.ts';
import { SIGN_IN_POLICIES } from '../access/signin-policy.ts';
import { NAME_ID_FORMATS } from '../apps/saml-providers.repo.ts';
import { ATTRIBUTE_PRESETS } from '../apps/saml-apps.service.ts';
import { PRINCIPAL_TYPES } from '../access/assignments.repo.ts';
import { SAML_PATHS } from '../saml/paths.ts';
import { manageApp } from '../admin/role-guard.ts';
import type { App } from '../apps/apps.repo.ts';
import type { Principal } from '../admin/auth.ts';
import type { appResource, appRoleResource } from '../admin/apps.routes.ts';
import type { assignmentResource } from '../admin/assignments.routes.ts';
import { AppError } from '../shared/errors.ts';
import { ScimClientError } from '../provisioning/scim-client.ts';
import { PROVISIONING_NOTICES, presentDrift, provisioningSection, type DriftView } from './provisioning.pages.ts';

type AppView = z.infer<typeof appResource>;
type RoleView = z.infer<typeof appRoleResource>;
type AssignmentView = z.infer<typeof assignmentResource>;
type Form = Record<string, unknown>;

const PAGE_SIZE = 25;
const PICKER_SIZE = 10;

/** The notices a redirect may ask the next page to show (nothing else from the URL is echoed). */
const NOTICES = ['saved', 'created', 'deleted', 'role_added', 'role_saved', 'role_deleted', 'assigned', 'assignment_saved', 'assignment_removed', ...PROVISIONING_NOTICES] as const;

const text = (form: Form, name: string): string => {
  const v = form[name];
  return typeof v === 'string' ? v.trim() : Array.isArray(v) && typeof v[0] === 'string' ? v[0].trim() : '';
};
const list = (form: Form, name: string): string[] => {
  const v = form[name];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string' && x !== '');
};
/** A textarea with one value per line. */
const lines = (form: Form, name: string): string[] => text(form, name).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
const checked = (form: Form, name: string): boolean => ['on', 'true', '1'].includes(text(form, name));
/** '' is "not given" at creation. */
const optional = (form: Form, name: string): string | undefined => text(form, name) || undefined;
/** '' is "clear it" on an update. */
const orNull = (form: Form, name: string): string | null => text(form, name) || null;
const version = (form: Form): number | undefined => (/^\d+$/.test(text(form, 'version')) ? Number(text(form, 'version')) : undefined);

const bodyOf = (ctx: Context): Form => (ctx.request.body ?? {}) as Form;
const param = (ctx: Context, name: string): string => String((ctx.params as Record<string, string>)[name] ?? '');

/** What an app is to paste into its configuration: OneID's URLs. */
function connectFacts(issuer: string) {
  const saml = SAML_PATHS(issuer);
  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    samlMetadataUrl: `${issuer}${saml.metadataPath}`,
    samlEntityId: saml.entityId,
    samlSsoUrl: saml.sso,
  };
}

/** The OIDC app form as the API's create body. */
function oidcCreateBody(form: Form): Record<string, unknown> {
  return {
    name: text(form, 'name'),
    description: optional(form, 'description'),
    logoUrl: optional(form, 'logoUrl'),
    initiateLoginUri: optional(form, 'initiateLoginUri'),
    redirectUris: lines(form, 'redirectUris'),
    postLogoutRedirectUris: lines(form, 'postLogoutRedirectUris'),
    grantTypes: list(form, 'grantTypes'),
    public: text(form, 'clientType') === 'public',
    firstParty: checked(form, 'firstParty'),
    access: text(form, 'access') || 'assigned',
    signInPolicy: text(form, 'signInPolicy') || null,
  };
}

/** The SAML settings of a form, only those filled in (at creation the metadata gives the rest). */
function samlFieldsOf(form: Form, creating: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (text(form, 'entityId')) body.entityId = text(form, 'entityId');
  if (lines(form, 'acsUrls').length) body.acsUrls = lines(form, 'acsUrls').map((location) => ({ location }));
  if (creating) {
    if (text(form, 'sloUrl')) body.sloUrl = text(form, 'sloUrl');
  } else {
    body.sloUrl = orNull(form, 'sloUrl');
  }
  if (text(form, 'sloBinding')) body.sloBinding = text(form, 'sloBinding');
  if (text(form, 'nameIdFormat')) body.nameIdFormat = text(form, 'nameIdFormat');
  if (text(form, 'attributePreset')) body.attributePreset = text(form, 'attributePreset');
  if (text(form, 'metadataXml')) body.metadataXml = text(form, 'metadataXml');
  return body;
}

/**
 * Whether the admin may change this app at all: the API's own guard (an app holding admin roles
 * the admin lacks is refused), asked here only to hide forms the server would refuse.
 */
function mayManage(principal: Principal, app: AppView): boolean {
  try {
    manageApp(principal)({ adminRoles: app.adminRoles } as App);
    return true;
  } catch {
    return false;
  }
}

/**
 * The principal picker's answer (apps-principals.njk): the active people, groups or departments
 * matching what the admin typed. Shared by every page that assigns something (apps, suites).
 */
export async function renderPrincipalOptions(ctx: Context): Promise<void> {
  const console = page(ctx);
  const type = PRINCIPAL_TYPES.find((t) => t === ctx.query.principalType) ?? 'user';
  const q = typeof ctx.query.q === 'string' ? ctx.query.q.trim().slice(0, 200) : '';
  const query = { limit: String(PICKER_SIZE), ...(q ? { q } : {}) };
  let options: { id: string; label: string; hint: string }[];
  if (type === 'user') {
    const users = await console.call<{ items: { id: string; username: string; name: string | null; email: string | null }[] }>('get', '/users', { query: { ...query, status: 'active' } });
    options = users.items.map((u) => ({ id: u.id, label: u.name || u.username, hint: [u.username, u.email].filter(Boolean).join(' · ') }));
  } else {
    const found = await console.call<{ items: { id: string; name: string }[] }>('get', type === 'group' ? '/groups' : '/departments', { query });
    options = found.items.map((g) => ({ id: g.id, label: g.name, hint: '' }));
  }
  console.render('apps-principals.njk', { options, type });
}

export const registerAppsPages: RegisterPages = (router, deps) => {
  const facts = connectFacts(deps.issuer.replace(/\/+$/, ''));
  const choices = {
    grantTypes: GRANT_TYPES, signInPolicies: SIGN_IN_POLICIES, nameIdFormats: NAME_ID_FORMATS,
    attributePresets: Object.keys(ATTRIBUTE_PRESETS), principalTypes: PRINCIPAL_TYPES,
  };

  router.get('/apps', async (ctx) => {
    const console = page(ctx);
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.trim().slice(0, 200) : '';
    const cursor = typeof ctx.query.cursor === 'string' ? ctx.query.cursor : undefined;
    const pageNo = Math.max(1, Number.parseInt(String(ctx.query.p ?? '1'), 10) || 1);
    const result = await console.call<{ items: AppView[]; total: number; next_cursor: string | null }>('get', '/apps', {
      query: { limit: String(PAGE_SIZE), ...(q ? { q } : {}), ...(cursor ? { cursor } : {}) },
    });
    const vars = {
      section: 'apps', q, result, pageNo, pages: Math.max(1, Math.ceil(result.total / PAGE_SIZE)),
      mayCreate: console.may('post', '/apps'), mayCreateSaml: console.may('post', '/apps/saml'),
      notice: NOTICES.find((n) => n === ctx.query.notice),
    };
    console.render(console.partial && ctx.get('hx-target') === 'app-list' ? 'apps-list-results.njk' : 'apps-list.njk', vars);
  });

  // ---- register an OpenID Connect app ------------------------------------------------------

  router.get('/apps/new', (ctx) => {
    page(ctx).render('apps-new-oidc.njk', { section: 'apps', choices });
  });

  router.post('/apps/new', async (ctx) => {
    const console = page(ctx);
    const created = await console.call<AppView & { client_id: string; client_secret: string | null }>('post', '/apps', { body: oidcCreateBody(bodyOf(ctx)) });
    // The secret is in this response only: htmx swaps it into the page and puts the app's own URL
    // in the address bar, so a reload shows the app without it (and nothing is cached: no-store).
    const vars = { section: 'apps', app: created, secret: created.client_secret, created: true, facts };
    if (console.partial) {
      ctx.set('HX-Push-Url', `/admin/apps/${created.id}`);
      console.render('apps-secret.njk', vars, 201);
    } else {
      console.render('apps-secret-page.njk', vars, 201);
    }
  });

  // ---- register a SAML app ----------------------------------------------------------------

  router.get('/apps/new-saml', (ctx) => {
    page(ctx).render('apps-new-saml.njk', { section: 'apps', choices, facts });
  });

  router.post('/apps/new-saml', async (ctx) => {
    const form = bodyOf(ctx);
    const created = await page(ctx).call<AppView>('post', '/apps/saml', {
      body: {
        name: text(form, 'name'), description: optional(form, 'description'), logoUrl: optional(form, 'logoUrl'),
        access: text(form, 'access') || 'assigned', signInPolicy: text(form, 'signInPolicy') || null,
        ...samlFieldsOf(form, true),
      },
    });
    sendTo(ctx, `/admin/apps/${created.id}?notice=created`);
  });

  // ---- one app --------------------------------------------------------------------------

  /** The app's page; `drift` is a drift report to show in its provisioning section (the no-script way to ask for one). */
  async function showApp(ctx: Context, drift?: DriftView): Promise<void> {
    const console = page(ctx);
    const id = param(ctx, 'id');
    const app = await console.call<AppView>('get', '/apps/:id', { params: { id } });
    const acursor = typeof ctx.query.acursor === 'string' ? ctx.query.acursor : undefined;
    const manageable = mayManage(console.principal, app);
    const [roles, assignments, provisioning, suites] = await Promise.all([
      console.call<{ items: RoleView[] }>('get', '/apps/:id/roles', { params: { id } }),
      console.call<{ items: AssignmentView[]; total: number; next_cursor: string | null }>('get', '/apps/:id/assignments', {
        params: { id }, query: { limit: '50', ...(acursor ? { cursor: acursor } : {}) },
      }),
      provisioningSection(console, id, manageable),
      // The suites the app is in (their sign-in policy is in force when stronger than its own).
      console.may('get', '/suites')
        ? console.call<{ items: { id: string; name: string; signInPolicy: string | null }[] }>('get', '/suites', { query: { limit: '50', appId: id } }).then((r) => r.items)
        : undefined,
    ]);
    console.render('apps-detail.njk', {
      section: 'apps', app, roles: roles.items, assignments, facts, choices, provisioning, drift: drift && presentDrift(drift), suites,
      notice: NOTICES.find((n) => n === ctx.query.notice),
      may: {
        edit: manageable && console.may('patch', app.protocol === 'saml' ? '/apps/:id/saml' : '/apps/:id'),
        rotate: manageable && console.may('post', '/apps/:id/secret') && app.protocol === 'oidc' && !app.public,
        remove: manageable && console.may('delete', '/apps/:id') && !app.managedByOneId,
        roles: manageable && console.may('post', '/apps/:id/roles'),
        assign: manageable && console.may('post', '/apps/:id/assignments'),
      },
    });
  }

  router.get('/apps/:id', (ctx) => showApp(ctx));

  // The drift report: a read (a dry run that changes nothing), so any reader of provisioning may
  // ask; htmx swaps the report into the section, a plain request gets the whole page with it.
  router.get('/apps/:id/provisioning/drift', async (ctx) => {
    const console = page(ctx);
    let drift: DriftView;
    try {
      drift = await console.call<DriftView>('get', '/apps/:id/provisioning/drift', { params: { id: param(ctx, 'id') } });
    } catch (err) {
      // The app's own refusal (a wrong token is its 401, a host that is down) is no failure of
      // this admin's session or of OneID: show it in the flash area with the app's words.
      if (err instanceof ScimClientError) throw new AppError('failed_precondition', err.code, err.message);
      throw err;
    }
    if (console.partial) console.render('apps-provisioning-drift.njk', { drift: presentDrift(drift) });
    else await showApp(ctx, drift);
  });

  router.post('/apps/:id', async (ctx) => {
    const console = page(ctx);
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const app = await console.call<AppView>('get', '/apps/:id', { params: { id } });
    const common = {
      name: text(form, 'name'), description: orNull(form, 'description'), logoUrl: orNull(form, 'logoUrl'),
      signInPolicy: text(form, 'signInPolicy') || null,
      // The console's own app keeps its access rule (OneID refuses a change anyway).
      ...(app.managedByOneId ? {} : { access: text(form, 'access') || 'assigned' }),
    };
    if (app.protocol === 'saml') {
      await console.call('patch', '/apps/:id/saml', {
        params: { id }, ifMatch: version(form),
        body: {
          ...common, ...samlFieldsOf(form, false),
          signResponse: checked(form, 'signResponse'), signAssertion: checked(form, 'signAssertion'),
          wantAuthnRequestsSigned: checked(form, 'wantAuthnRequestsSigned'), encryptAssertions: checked(form, 'encryptAssertions'),
        },
      });
    } else {
      await console.call('patch', '/apps/:id', {
        params: { id }, ifMatch: version(form),
        body: {
          ...common, firstParty: checked(form, 'firstParty'), initiateLoginUri: orNull(form, 'initiateLoginUri'),
          ...(app.managedByOneId ? {} : { redirectUris: lines(form, 'redirectUris'), postLogoutRedirectUris: lines(form, 'postLogoutRedirectUris') }),
        },
      });
    }
    sendTo(ctx, `/admin/apps/${id}?notice=saved`);
  });

  router.post('/apps/:id/secret', async (ctx) => {
    const console = page(ctx);
    const rotated = await console.call<AppView & { client_secret: string | null }>('post', '/apps/:id/secret', { params: { id: param(ctx, 'id') } });
    const vars = { section: 'apps', app: rotated, secret: rotated.client_secret, created: false, facts };
    console.render(console.partial ? 'apps-secret.njk' : 'apps-secret-page.njk', vars);
  });

  router.post('/apps/:id/delete', async (ctx) => {
    await page(ctx).call('delete', '/apps/:id', { params: { id: param(ctx, 'id') }, ifMatch: version(bodyOf(ctx)) });
    sendTo(ctx, '/admin/apps?notice=deleted');
  });

  // ---- roles ------------------------------------------------------------------------------

  router.post('/apps/:id/roles', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await page(ctx).call('post', '/apps/:id/roles', {
      params: { id }, body: { key: text(form, 'key'), name: optional(form, 'name'), description: optional(form, 'description') },
    });
    sendTo(ctx, `/admin/apps/${id}?notice=role_added#roles`);
  });

  router.post('/apps/:id/roles/:roleId', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await page(ctx).call('patch', '/apps/:id/roles/:roleId', {
      params: { id, roleId: param(ctx, 'roleId') }, body: { name: text(form, 'name'), description: orNull(form, 'description') },
    });
    sendTo(ctx, `/admin/apps/${id}?notice=role_saved#roles`);
  });

  router.post('/apps/:id/roles/:roleId/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/apps/:id/roles/:roleId', { params: { id, roleId: param(ctx, 'roleId') } });
    sendTo(ctx, `/admin/apps/${id}?notice=role_deleted#roles`);
  });

  // ---- assignments ------------------------------------------------------------------------

  /** People, groups or departments matching what the admin typed, as radio buttons to pick one. */
  router.get('/apps/:id/principals', (ctx) => renderPrincipalOptions(ctx));

  router.post('/apps/:id/assignments', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    const principalType = text(form, 'principalType');
    await page(ctx).call('post', '/apps/:id/assignments', {
      params: { id },
      body: {
        principalType, principalId: text(form, 'principalId'), roleIds: list(form, 'roleIds'),
        ...(principalType === 'department' ? { includeSubdepartments: checked(form, 'includeSubdepartments') } : {}),
      },
    });
    sendTo(ctx, `/admin/apps/${id}?notice=assigned#assignments`);
  });

  router.post('/apps/:id/assignments/:assignmentId', async (ctx) => {
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    await page(ctx).call('patch', '/apps/:id/assignments/:assignmentId', {
      params: { id, assignmentId: param(ctx, 'assignmentId') },
      body: {
        roleIds: list(form, 'roleIds'),
        ...(text(form, 'principalType') === 'department' ? { includeSubdepartments: checked(form, 'includeSubdepartments') } : {}),
      },
    });
    sendTo(ctx, `/admin/apps/${id}?notice=assignment_saved#assignments`);
  });

  router.post('/apps/:id/assignments/:assignmentId/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/apps/:id/assignments/:assignmentId', { params: { id, assignmentId: param(ctx, 'assignmentId') } });
    sendTo(ctx, `/admin/apps/${id}?notice=assignment_removed#assignments`);
  });
};
