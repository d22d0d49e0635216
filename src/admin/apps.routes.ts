import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { createdAtIdCursor, decodeCursorAs, encodeCursor, idParam, page, pageQuery } from './api.ts';
import type { Services } from '../services.ts';
import { requireSignInLevel, type Principal } from './auth.ts';
import { STEP_UP_LEVEL } from './users.routes.ts';
import { assertMayGrant, manageApp } from './role-guard.ts';
import type { App, AppRole } from '../apps/apps.repo.ts';
import { createAppInput, createAppRoleInput, updateAppInput, updateAppRoleInput } from '../apps/apps.service.ts';
import { createSamlAppInput, updateSamlAppInput } from '../apps/saml-apps.service.ts';
import { findSamlSpsByAppIds, NAME_ID_FORMATS, ATTRIBUTE_SOURCES, type SamlServiceProvider } from '../apps/saml-providers.repo.ts';
import { summariseCertificate } from '../saml/certificates.ts';
import { AppError } from '../shared/errors.ts';
import type { Tx } from '../db/knex.ts';
import { CONSOLE_CLIENT_ID } from '../console/console-app.ts';
import type { AppGuard } from '../apps/apps.service.ts';

const certificateResource = z.object({
  sha256: z.string().describe('SHA-256 fingerprint of the DER certificate (hex pairs joined by colons)'),
  subject: z.string(),
  notAfter: z.string().describe('when the certificate expires (ISO 8601)'),
});

/** An app's SAML service-provider settings; certificates are shown by fingerprint and expiry only. */
export const samlResource = z.object({
  entityId: z.string(),
  acsUrls: z.array(z.object({ location: z.string(), binding: z.literal('post'), index: z.number().int(), isDefault: z.boolean() })),
  sloUrl: z.string().nullable(),
  sloBinding: z.enum(['redirect', 'post']).nullable(),
  nameIdFormat: z.enum(NAME_ID_FORMATS),
  attributeMapping: z.array(z.object({
    name: z.string(), source: z.enum(ATTRIBUTE_SOURCES), nameFormat: z.enum(['basic', 'uri', 'unspecified']).optional(), friendlyName: z.string().optional(),
  })).nullable().describe('null: email, displayName, groups and roles under those plain names'),
  signResponse: z.boolean(),
  signAssertion: z.boolean(),
  wantAuthnRequestsSigned: z.boolean(),
  encryptAssertions: z.boolean(),
  signingCertificates: z.array(certificateResource),
  encryptionCertificate: certificateResource.nullable(),
});

export const presentSaml = (sp: SamlServiceProvider): z.infer<typeof samlResource> => ({
  entityId: sp.entityId,
  acsUrls: sp.acsUrls.map((a) => ({ location: a.location, binding: 'post' as const, index: a.index, isDefault: a.isDefault })),
  sloUrl: sp.sloUrl,
  sloBinding: sp.sloBinding,
  nameIdFormat: sp.nameIdFormat,
  attributeMapping: sp.attributeMapping,
  signResponse: sp.signResponse,
  signAssertion: sp.signAssertion,
  wantAuthnRequestsSigned: sp.wantAuthnRequestsSigned,
  encryptAssertions: sp.encryptAssertions,
  signingCertificates: sp.signingCertificates.map(summariseCertificate),
  encryptionCertificate: sp.encryptionCertificate ? summariseCertificate(sp.encryptionCertificate) : null,
});

/** An app as the admin API shows it: never the client secret nor its hash. */
export const appResource = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string().nullable(),
  logoUrl: z.string().nullable(),
  protocol: z.string(),
  clientId: z.string(),
  public: z.boolean().describe('a public client (PKCE, no client secret)'),
  firstParty: z.boolean().describe('first-party apps skip the consent screen'),
  access: z.enum(['assigned', 'everyone']).describe("'assigned': only users assigned to the app may sign in; 'everyone': any active user"),
  redirectUris: z.array(z.string()),
  postLogoutRedirectUris: z.array(z.string()),
  grantTypes: z.array(z.string()),
  adminRoles: z.array(z.string()),
  idTokenSigningAlg: z.enum(['RS256', 'ES256']).describe('how the app\'s ID tokens are signed'),
  allowNoPkce: z.boolean().describe('a confidential legacy app may run the code flow without PKCE; every other app must send a S256 code_challenge (RFC 9700)'),
  signInPolicy: z.enum(['password', 'mfa', 'phishing_resistant']).nullable()
    .describe('how strongly a person must have signed in to use the app: password, mfa (two factors) or phishing_resistant (a passkey); null follows the global default SIGNIN_POLICY_DEFAULT'),
  suiteSignInPolicy: z.enum(['password', 'mfa', 'phishing_resistant']).nullable()
    .describe("read-only: the strongest sign-in policy of the suites the app is in; in force where it is stronger than the app's own. null: no suite sets one"),
  apiAudience: z.string().nullable().describe("the audience (aud) of access tokens for the app's own API (token exchange inside a suite); null: none"),
  authorizationServer: z.string().nullable().describe("the issuer of the app's own authorization server, the audience of ID-JAGs OneID issues for it; null: none"),
  saml: samlResource.nullable().describe("a SAML app's service-provider settings (protocol saml); null for OpenID Connect apps"),
  initiateLoginUri: z.string().nullable().describe('OIDC initiate_login_uri: where the portal sends a person to start the app\'s sign-in; null: none'),
  backchannelLogoutUri: z.string().nullable().describe('OIDC Back-Channel Logout backchannel_logout_uri: where OneID POSTs a logout token when the person is offboarded or signs out at OneID through the app; null: none'),
  backchannelLogoutSessionRequired: z.boolean().describe('OIDC backchannel_logout_session_required: logout tokens carry the sid of each session the person had with the app'),
  /** The console's own app (client id oneid-console): OneID keeps it; it cannot be deleted nor locked. */
  managedByOneId: z.boolean().describe('the admin console\'s own app: it cannot be deleted, and its access, admin roles and redirect URIs are kept by OneID'),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** `sp`: the SAML settings of a SAML app (see withSaml). */
export const presentApp = (a: App, sp?: SamlServiceProvider): z.infer<typeof appResource> => ({
  id: a.id,
  name: a.name,
  description: a.description,
  logoUrl: a.logoUrl,
  protocol: a.protocol,
  clientId: a.clientId,
  public: a.oidc.token_endpoint_auth_method === 'none',
  firstParty: a.firstParty,
  access: a.access,
  redirectUris: a.oidc.redirect_uris ?? [],
  postLogoutRedirectUris: a.oidc.post_logout_redirect_uris ?? [],
  grantTypes: a.oidc.grant_types ?? [],
  adminRoles: a.adminRoles,
  idTokenSigningAlg: a.oidc.id_token_signed_response_alg ?? 'RS256',
  allowNoPkce: a.allowNoPkce,
  signInPolicy: a.signInPolicy,
  suiteSignInPolicy: a.suiteSignInPolicy,
  apiAudience: a.apiAudience,
  authorizationServer: a.authorizationServer,
  saml: sp ? presentSaml(sp) : null,
  initiateLoginUri: a.oidc.initiate_login_uri ?? null,
  backchannelLogoutUri: a.oidc.backchannel_logout_uri ?? null,
  backchannelLogoutSessionRequired: a.oidc.backchannel_logout_session_required ?? false,
  managedByOneId: a.clientId === CONSOLE_CLIENT_ID,
  version: a.version,
  createdAt: new Date(a.createdAt).toISOString(),
  updatedAt: new Date(a.updatedAt).toISOString(),
});

/** The one response that carries the client secret: app creation and secret rotation. */
const appWithSecret = appResource.extend({
  client_id: z.string(),
  client_secret: z.string().nullable().describe('shown once; store it now. null for public clients'),
});

export const appRoleResource = z.object({
  id: z.uuid(),
  appId: z.uuid(),
  key: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  createdAt: z.string(),
});

export const presentAppRole = (r: AppRole): z.infer<typeof appRoleResource> => ({
  id: r.id, appId: r.appId, key: r.key, name: r.name, description: r.description, createdAt: new Date(r.createdAt).toISOString(),
});

const appListQuery = z.strictObject({
  ...pageQuery,
  q: z.string().min(1).max(200).optional().describe('prefix of the name, case-insensitive'),
  access: z.enum(['assigned', 'everyone']).optional(),
  firstParty: z.enum(['true', 'false']).optional(),
  clientId: z.string().max(200).optional(),
});

const roleParams = z.strictObject({ id: z.uuid(), roleId: z.uuid() });

/** Apps as the API shows them, SAML apps with their SP settings (one query for a page of apps). */
async function presentApps(db: Tx, list: App[]): Promise<z.infer<typeof appResource>[]> {
  const saml = list.filter((a) => a.protocol === 'saml');
  const sps = saml.length ? await findSamlSpsByAppIds(db, saml.map((a) => a.id)) : new Map<string, SamlServiceProvider>();
  return list.map((a) => presentApp(a, sps.get(a.id)));
}
const presentOne = async (db: Tx, a: App) => (await presentApps(db, [a]))[0]!;

const SAML_METADATA_TYPES = ['application/samlmetadata+xml', 'application/xml', 'text/xml'] as const;
const samlCreateQuery = z.strictObject({
  name: z.string().trim().min(1).max(200).optional().describe("with a metadata XML body: the app's name (required there)"),
});

const grantToApp = (principal: Principal, roles: readonly string[]): void => assertMayGrant(principal, roles, 'an app', 'app.admin_roles_forbidden');

/** What OneID keeps of the console's own app: deleting it or changing these would lock every administrator out. */
const CONSOLE_KEPT_FIELDS = ['access', 'adminRoles', 'redirectUris', 'postLogoutRedirectUris'] as const;

/**
 * The console's app cannot be deleted (`change` undefined) nor have its access, admin roles or
 * redirect URIs changed: 412 app.managed_by_oneid. Runs in the write's transaction, after `guard`.
 */
const keepConsoleApp = (guard: AppGuard, change?: Record<string, unknown>): AppGuard => (app) => {
  guard(app);
  if (app.clientId !== CONSOLE_CLIENT_ID) return;
  const field = change ? CONSOLE_KEPT_FIELDS.find((f) => change[f] !== undefined) : undefined;
  if (!change || field) {
    throw new AppError('failed_precondition', 'app.managed_by_oneid', change
      ? `${field}: the admin console's own app keeps this setting (changing it could lock every administrator out)`
      : "the admin console's own app cannot be deleted (every administrator signs in through it)", field ? { field } : undefined);
  }
};


export function registerAppsRoutes(api: AdminApi, { apps, samlApps, db }: Services): void {
  const readers = ['app_admin', 'user_admin', 'auditor'] as const;
  const writers = ['app_admin'] as const;

  api.add({
    method: 'get', path: '/apps', tag: 'apps', summary: 'List apps (filtered and paged in SQL, oldest first)',
    roles: readers, query: appListQuery, response: page(appResource).extend({ total: z.number().int().describe('how many apps match the filter, over every page') }),
    handler: async ({ query }) => {
      const after = decodeCursorAs(query.cursor, 'apps', createdAtIdCursor);
      const filter = {
        q: query.q, access: query.access, clientId: query.clientId,
        firstParty: query.firstParty === undefined ? undefined : query.firstParty === 'true',
      };
      const [rows, total] = await Promise.all([
        apps.listApps({ ...filter, after: after ? { createdAt: after[0], id: after[1] } : undefined, limit: query.limit + 1 }),
        apps.countApps(filter),
      ]);
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      return {
        items: await presentApps(db, items), total,
        next_cursor: rows.length > query.limit && last ? encodeCursor('apps', [new Date(last.createdAt).toISOString(), last.id]) : null,
      };
    },
  });

  api.add({
    method: 'post', path: '/apps', tag: 'apps', status: 201,
    summary: "Register an app; the response carries the client secret, once. Apps default to access 'assigned'",
    roles: writers, body: createAppInput, response: appWithSecret,
    // An app holding admin roles is an administrator (its client_credentials tokens act with them).
    signInLevel: STEP_UP_LEVEL, signInLevelWhen: 'when it gives admin roles',
    handler: async ({ body, principal, ctx }) => {
      grantToApp(principal, body.adminRoles);
      if (body.adminRoles.length) requireSignInLevel(ctx, principal, STEP_UP_LEVEL);
      const created = await apps.createApp(body, principal.actor);
      ctx.set('Location', `${ctx.path}/${created.id}`);
      ctx.set('Cache-Control', 'no-store');
      return { ...presentApp(created.app), client_id: created.client_id, client_secret: created.client_secret };
    },
  });

  api.add({
    method: 'get', path: '/apps/:id', tag: 'apps', summary: 'Get an app', roles: readers,
    params: idParam, response: appResource,
    handler: async ({ params }) => presentOne(db, await apps.getApp(params.id)),
  });

  api.add({
    method: 'post', path: '/apps/saml', tag: 'apps', status: 201,
    summary: "Register a SAML app from SP metadata, from fields, or both (fields override the metadata). Access defaults to 'assigned'",
    roles: writers, query: samlCreateQuery, body: createSamlAppInput, response: appResource,
    rawBody: {
      types: SAML_METADATA_TYPES,
      description: 'JSON with the fields below, or the SP metadata XML itself (application/samlmetadata+xml, application/xml) with ?name= for the app\'s name and defaults for the rest',
      into: (text, query) => {
        if (!query.name) throw new AppError('invalid_argument', 'request.invalid', "name: give the app's name in the query (?name=) with a metadata XML body", { field: 'name', in: 'query' });
        return { name: query.name, metadataXml: text };
      },
    },
    handler: async ({ body, principal, ctx }) => {
      const created = await samlApps.createSamlApp(body, principal.actor);
      ctx.set('Location', `${ctx.path.replace(/\/saml$/, '')}/${created.app.id}`);
      return presentApp(created.app, created.sp);
    },
  });

  api.add({
    method: 'get', path: '/apps/:id/saml', tag: 'apps', summary: "A SAML app's service-provider settings (400 app.not_saml for an OpenID Connect app)",
    roles: readers, params: idParam, response: samlResource.extend({ appId: z.uuid(), version: z.number().int() }),
    handler: async ({ params }) => {
      const { app, sp } = await samlApps.getSamlApp(params.id);
      return { appId: app.id, version: app.version, ...presentSaml(sp) };
    },
  });

  api.add({
    method: 'patch', path: '/apps/:id/saml', tag: 'apps',
    summary: 'Update a SAML app: its SAML settings (metadataXml replaces what the metadata says) and its name, access and sign-in policy. Send If-Match to refuse stale writes (412)',
    roles: writers, params: idParam, body: updateSamlAppInput, response: appResource,
    handler: async ({ params, body, principal, ifMatch }) => {
      const { app, sp } = await samlApps.updateSamlApp(params.id, body, principal.actor, ifMatch, manageApp(principal));
      return presentApp(app, sp);
    },
  });

  api.add({
    method: 'patch', path: '/apps/:id', tag: 'apps', summary: "Update an app (send If-Match with the ETag to refuse stale writes: 412; the console's own app keeps its access, admin roles and redirect URIs: 412 app.managed_by_oneid)",
    roles: writers, params: idParam, body: updateAppInput, response: appResource,
    signInLevel: STEP_UP_LEVEL, signInLevelWhen: 'when it gives admin roles the app does not hold',
    handler: async ({ params, body, principal, ifMatch, ctx }) => {
      if (body.adminRoles) grantToApp(principal, body.adminRoles);
      const guard = keepConsoleApp(manageApp(principal), body);
      return presentOne(db, await apps.updateApp(params.id, body, principal.actor, ifMatch, (app) => {
        guard(app);
        if (body.adminRoles?.some((role) => !app.adminRoles.includes(role))) requireSignInLevel(ctx, principal, STEP_UP_LEVEL);
      }));
    },
  });

  api.add({
    method: 'delete', path: '/apps/:id', tag: 'apps', status: 204,
    summary: "Delete an app with its roles and assignments; its grants and tokens end at once (412 app.managed_by_oneid for the console's own app)",
    roles: writers, params: idParam,
    handler: async ({ params, principal, ifMatch }) => {
      await apps.deleteApp(params.id, principal.actor, ifMatch, keepConsoleApp(manageApp(principal)));
    },
  });

  api.add({
    method: 'post', path: '/apps/:id/secret', tag: 'apps',
    summary: 'Rotate the client secret: the new secret is returned once and the old one stops working at once',
    roles: writers, params: idParam, response: appWithSecret,
    handler: async ({ params, principal, ifMatch, ctx }) => {
      const rotated = await apps.rotateSecret(params.id, principal.actor, ifMatch, manageApp(principal));
      ctx.set('Cache-Control', 'no-store');
      return { ...presentApp(rotated.app), client_id: rotated.app.clientId, client_secret: rotated.client_secret };
    },
  });

  api.add({
    method: 'get', path: '/apps/:id/roles', tag: 'app roles', summary: "List an app's roles, by key",
    roles: readers, params: idParam, response: z.object({ items: z.array(appRoleResource) }),
    handler: async ({ params }) => ({ items: (await apps.listRoles(params.id)).map(presentAppRole) }),
  });

  api.add({
    method: 'post', path: '/apps/:id/roles', tag: 'app roles', summary: 'Define an app role (key such as docs.editor; 409 if the app has it)', status: 201,
    roles: writers, params: idParam, body: createAppRoleInput, response: appRoleResource,
    handler: async ({ params, body, principal, ctx }) => {
      const role = await apps.createRole(params.id, body, principal.actor, manageApp(principal));
      ctx.set('Location', `${ctx.path}/${role.id}`);
      return presentAppRole(role);
    },
  });

  api.add({
    method: 'get', path: '/apps/:id/roles/:roleId', tag: 'app roles', summary: 'Get an app role',
    roles: readers, params: roleParams, response: appRoleResource,
    handler: async ({ params }) => presentAppRole(await apps.getRole(params.id, params.roleId)),
  });

  api.add({
    method: 'patch', path: '/apps/:id/roles/:roleId', tag: 'app roles', summary: 'Update an app role',
    roles: writers, params: roleParams, body: updateAppRoleInput, response: appRoleResource,
    handler: async ({ params, body, principal }) => presentAppRole(await apps.updateRole(params.id, params.roleId, body, principal.actor, manageApp(principal))),
  });

  api.add({
    method: 'delete', path: '/apps/:id/roles/:roleId', tag: 'app roles', status: 204,
    summary: 'Delete an app role; assignments that carried it lose it',
    roles: writers, params: roleParams,
    handler: async ({ params, principal }) => apps.deleteRole(params.id, params.roleId, principal.actor, manageApp(principal)),
  });
}
