import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId, newSecret, sha256 } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { ADMIN_ROLES, parseInput } from '../directory/users.service.ts';
import type { SignInPolicy } from '../access/signin-policy.ts';
import { recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor } from '../audit/audit.service.ts';
import {
  countApps, deleteAppById, deleteAppRoleById, deleteOidcStateOfClient, findAppById, findAppRoleById, findAppRoles, findApps, insertApp,
  insertAppRole, updateAppById, updateAppRoleById,
  ID_TOKEN_SIGNING_ALGS, type App, type AppChanges, type AppFilter, type AppRole, type OidcClientSettings,
} from './apps.repo.ts';

export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;

const redirectUri = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return !url.hash && !value.includes('#') && url.protocol !== 'javascript:' && url.protocol !== 'data:';
  } catch {
    return false;
  }
}, 'must be an absolute URL without a fragment');

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * OIDC client metadata initiate_login_uri (OpenID Connect Registration 1.0): https, or http on
 * this machine for development, no fragment. The portal opens it to start the app's sign-in.
 */
export const initiateLoginUri = z.string().trim().max(2048).refine((value) => {
  try {
    const url = new URL(value);
    const secure = url.protocol === 'https:' || (url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname));
    return secure && !value.includes('#') && !url.username && !url.password;
  } catch {
    return false;
  }
}, 'must be an https URL (http only for localhost) without a fragment');

/**
 * OIDC Back-Channel Logout 1.0 section 2.2 backchannel_logout_uri: an absolute URL, no fragment;
 * https, or http on this machine for development (like initiate_login_uri). OneID POSTs logout
 * tokens to it from its job queue.
 */
export const backchannelLogoutUri = initiateLoginUri;

/**
 * The `aud` of access tokens for the app's own API (token exchange inside a suite, RFC 8693
 * audience/resource): an absolute https or http URI without a fragment, unique among apps.
 */
export const apiAudience = z.string().trim().max(2048).refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && !value.includes('#') && !url.username && !url.password;
  } catch {
    return false;
  }
}, 'must be an absolute https or http URI without a fragment').describe("the audience (aud) of access tokens for the app's own API, e.g. https://crm.example.com/api; unique among apps");

/**
 * The issuer of the app's own authorization server (the `aud` of the ID-JAGs OneID issues for it):
 * an https URL without query or fragment (RFC 8414 issuer), or http on this machine for development.
 */
export const authorizationServer = z.string().trim().max(2048).refine((value) => {
  try {
    const url = new URL(value);
    const secure = url.protocol === 'https:' || (url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname));
    return secure && !url.search && !value.includes('#') && !url.username && !url.password;
  } catch {
    return false;
  }
}, 'must be an https URL (http only for localhost) without query or fragment').describe("the issuer of the app's own authorization server, the audience of ID-JAGs for it");

/** Another app already has this API audience: 409 naming the field. */
export function apiAudienceTaken(err: unknown): void {
  if (isUniqueViolation(err) && (err as { constraint?: string }).constraint === 'apps__api_audience') {
    throw new AppError('already_exists', 'app.api_audience_taken', 'apiAudience: another app already has this API audience', { field: 'apiAudience' });
  }
}

const appName = z.string().trim().min(1).max(200);
const appDescription = z.string().trim().max(2000);
const logoUrl = z.url({ protocol: /^https?$/ });
const access = z.enum(['assigned', 'everyone']);
/**
 * How strongly a person must have signed in to use the app (see access/signin-policy.ts); null
 * (or absent at creation) follows the global default, SIGNIN_POLICY_DEFAULT.
 */
export const signInPolicy = z.enum(['password', 'mfa', 'phishing_resistant'] satisfies SignInPolicy[], {
  error: 'must be password, mfa or phishing_resistant (or null for the global default)',
}).nullable().describe('how strongly a person must have signed in to use the app: password, mfa or phishing_resistant; null follows the global default (SIGNIN_POLICY_DEFAULT)');

export const createAppInput = z.object({
  name: appName,
  description: appDescription.optional(),
  logoUrl: logoUrl.optional(),
  redirectUris: z.array(redirectUri).max(50).default([]),
  postLogoutRedirectUris: z.array(redirectUri).max(50).default([]),
  public: z.boolean().default(false),
  firstParty: z.boolean().default(false),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1).optional(),
  /** 'assigned': only users assigned to the app may sign in (the default); 'everyone': any active user. */
  access: access.default('assigned'),
  /**
   * Admin API roles this app holds: what it may do with client_credentials, and the most a
   * person's token obtained through it may do (the roles both hold).
   */
  adminRoles: z.array(z.enum(ADMIN_ROLES)).default([]),
  /** How the app's ID tokens are signed: RS256 (default, every relying party accepts it) or ES256. */
  idTokenSigningAlg: z.enum(ID_TOKEN_SIGNING_ALGS).default('RS256'),
  /** A confidential legacy app that cannot send PKCE may be let off it (RFC 9700 requires it otherwise). */
  allowNoPkce: z.boolean().default(false),
  signInPolicy: signInPolicy.default(null),
  /** Where the portal starts the app's sign-in (OIDC initiate_login_uri). */
  initiateLoginUri: initiateLoginUri.optional(),
  /** OIDC Back-Channel Logout: where OneID sends logout tokens. */
  backchannelLogoutUri: backchannelLogoutUri.optional(),
  /** OIDC Back-Channel Logout: the app needs the sid claim in logout tokens. */
  backchannelLogoutSessionRequired: z.boolean().default(false),
  /** The audience of access tokens for the app's own API (token exchange inside a suite). */
  apiAudience: apiAudience.nullable().optional(),
  /** The issuer of the app's own authorization server (ID-JAG). */
  authorizationServer: authorizationServer.nullable().optional(),
}).strict();

export type CreateAppInput = z.input<typeof createAppInput>;

/** PATCH semantics: absent = unchanged, null = cleared. Grant types and public/confidential are fixed at creation. */
export const updateAppInput = z.strictObject({
  name: appName.optional(),
  description: appDescription.nullable().optional(),
  logoUrl: logoUrl.nullable().optional(),
  redirectUris: z.array(redirectUri).max(50).optional(),
  postLogoutRedirectUris: z.array(redirectUri).max(50).optional(),
  firstParty: z.boolean().optional(),
  access: access.optional(),
  adminRoles: z.array(z.enum(ADMIN_ROLES)).optional(),
  idTokenSigningAlg: z.enum(ID_TOKEN_SIGNING_ALGS).optional(),
  allowNoPkce: z.boolean().optional(),
  /** null: back to the global default. */
  signInPolicy: signInPolicy.optional(),
  /** null: none (the portal then has no way to launch the app). */
  initiateLoginUri: initiateLoginUri.nullable().optional(),
  /** null: none (the app gets no logout tokens). */
  backchannelLogoutUri: backchannelLogoutUri.nullable().optional(),
  backchannelLogoutSessionRequired: z.boolean().optional(),
  /** null: none. */
  apiAudience: apiAudience.nullable().optional(),
  /** null: none. */
  authorizationServer: authorizationServer.nullable().optional(),
});

export type UpdateAppInput = z.input<typeof updateAppInput>;

/** An app under the names of updateAppInput, so that an update's old values sit beside its new ones in the audit log. */
const asInput = (app: App): Record<string, unknown> => ({
  ...app,
  redirectUris: app.oidc.redirect_uris ?? [],
  postLogoutRedirectUris: app.oidc.post_logout_redirect_uris ?? [],
  idTokenSigningAlg: app.oidc.id_token_signed_response_alg ?? 'RS256',
  initiateLoginUri: app.oidc.initiate_login_uri ?? null,
  backchannelLogoutUri: app.oidc.backchannel_logout_uri ?? null,
  backchannelLogoutSessionRequired: app.oidc.backchannel_logout_session_required ?? false,
});

/** Role keys appear in the `roles` claim: lower-case, no spaces, e.g. docs.editor. */
export const APP_ROLE_KEY = /^[a-z][a-z0-9_.:-]{0,99}$/;
const roleKey = z.string().regex(APP_ROLE_KEY, 'lower-case letters, digits and _ . : - only, 1-100 characters, starting with a letter (e.g. docs.editor)');

export const createAppRoleInput = z.strictObject({
  key: roleKey,
  /** Defaults to the key. */
  name: z.string().trim().min(1).max(200).optional(),
  description: z.string().trim().max(2000).optional(),
});
export type CreateAppRoleInput = z.input<typeof createAppRoleInput>;

export const updateAppRoleInput = z.strictObject({
  key: roleKey.optional(),
  name: z.string().trim().min(1).max(200).optional(),
  description: z.string().trim().max(2000).nullable().optional(),
});
export type UpdateAppRoleInput = z.input<typeof updateAppRoleInput>;

export interface CreatedApp { id: string; client_id: string; client_secret: string | null; app: App }
export interface RotatedSecret { client_secret: string; app: App }

/**
 * A caller's check on the app a write changes (e.g. "holds no admin roles the caller lacks"):
 * run inside the write's transaction on the app row as it is locked there, so a concurrent change
 * of the app's admin roles cannot slip between the check and the write. Throws to refuse.
 */
export type AppGuard = (app: App) => void;

const applicationType = (redirectUris: string[]): 'web' | 'native' => (redirectUris.some((u) => !/^https?:/i.test(u)) ? 'native' : 'web');

const publicNeedsPkce = (): AppError => new AppError('invalid_argument', 'app.public_needs_pkce',
  'allowNoPkce: a public app must always use PKCE', { field: 'allowNoPkce' });
const notFound = (): AppError => new AppError('not_found', 'app.not_found', 'no app with this id');
const roleNotFound = (): AppError => new AppError('not_found', 'app_role.not_found', 'no role with this id in this app');
const versionMismatch = (expected: number, now?: number): AppError => new AppError('failed_precondition', 'app.version_mismatch',
  now === undefined ? 'the app changed during the update; retry' : `the app changed since version ${expected} (now ${now})`);

function roleKeyTaken(err: unknown): never {
  if (isUniqueViolation(err)) throw new AppError('already_exists', 'app_role.key_taken', 'key: this app already has a role with this key', { field: 'key' });
  throw err;
}

/** Settings only an OpenID Connect client has, refused on a SAML app (whose oidc settings are empty). */
const OIDC_ONLY_FIELDS = ['redirectUris', 'postLogoutRedirectUris', 'idTokenSigningAlg', 'allowNoPkce', 'adminRoles', 'firstParty', 'initiateLoginUri',
  'backchannelLogoutUri', 'backchannelLogoutSessionRequired'] as const;

function refuseOidcFields(input: z.output<typeof updateAppInput>): void {
  const field = OIDC_ONLY_FIELDS.find((f) => input[f] !== undefined);
  if (field) throw new AppError('invalid_argument', 'app.oidc_only_field', `${field}: only OpenID Connect apps have this setting; this is a SAML app`, { field });
}

export class AppsService {
  constructor(private readonly db: Knex) {}

  async createApp(raw: CreateAppInput, actor: Actor = SYSTEM_ACTOR): Promise<CreatedApp> {
    const input = parseInput(createAppInput, raw);
    const grantTypes = [...new Set(input.grantTypes ?? ['authorization_code', 'refresh_token'])];
    if (input.public && grantTypes.includes('client_credentials')) {
      throw new AppError('invalid_argument', 'app.public_client_credentials', 'grantTypes: a public app cannot use client_credentials', { field: 'grantTypes' });
    }
    if (input.public && input.allowNoPkce) throw publicNeedsPkce();
    const usesBrowser = grantTypes.includes('authorization_code');
    if (usesBrowser && input.redirectUris.length === 0) {
      throw new AppError('invalid_argument', 'app.redirect_uri_required', 'redirectUris: at least one redirect URI is required for authorization_code', { field: 'redirectUris' });
    }
    if (grantTypes.includes('refresh_token') && !usesBrowser) {
      throw new AppError('invalid_argument', 'app.refresh_without_code', 'grantTypes: refresh_token needs authorization_code', { field: 'grantTypes' });
    }
    const oidc: OidcClientSettings = {
      redirect_uris: input.redirectUris,
      post_logout_redirect_uris: input.postLogoutRedirectUris,
      grant_types: grantTypes,
      response_types: usesBrowser ? ['code'] : [],
      token_endpoint_auth_method: input.public ? 'none' : 'client_secret_basic',
      application_type: applicationType(input.redirectUris),
      id_token_signed_response_alg: input.idTokenSigningAlg,
      ...(input.initiateLoginUri ? { initiate_login_uri: input.initiateLoginUri } : {}),
      ...(input.backchannelLogoutUri ? { backchannel_logout_uri: input.backchannelLogoutUri } : {}),
      ...(input.backchannelLogoutSessionRequired ? { backchannel_logout_session_required: true } : {}),
    };
    const secret = input.public ? null : newSecret(32);
    const app = await this.db.transaction(async (trx) => {
      const inserted = await insertApp(trx, {
        id: newId(),
        name: input.name,
        description: input.description ?? null,
        logo_url: input.logoUrl ?? null,
        protocol: 'oidc',
        first_party: input.firstParty,
        client_id: newSecret(18),
        client_secret_hash: secret ? sha256(secret) : null,
        allow_no_pkce: input.allowNoPkce,
        oidc,
        access: input.access,
        admin_roles: input.adminRoles,
        signin_policy: input.signInPolicy,
        api_audience: input.apiAudience ?? null,
        authorization_server: input.authorizationServer ?? null,
      });
      await recordAudit(trx, actor, { action: 'app.created', targetType: 'app', targetId: inserted.id, changes: { ...input, clientId: inserted.clientId } });
      return inserted;
    }).catch((err: unknown) => {
      apiAudienceTaken(err);
      throw err;
    });
    return { id: app.id, client_id: app.clientId, client_secret: secret, app };
  }

  async getApp(id: string): Promise<App> {
    const app = await findAppById(this.db, id);
    if (!app) throw notFound();
    return app;
  }

  listApps(filter: AppFilter): Promise<App[]> {
    return findApps(this.db, filter);
  }

  countApps(filter: Omit<AppFilter, 'after' | 'limit'>): Promise<number> {
    return countApps(this.db, filter);
  }

  /** Partial update; with expectedVersion, a stale version gives failed_precondition (412). */
  async updateApp(id: string, raw: UpdateAppInput, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, guard?: AppGuard): Promise<App> {
    const input = parseInput(updateAppInput, raw);
    return this.db.transaction(async (trx) => {
      // The update below is conditional on this version, so the guard sees what is overwritten.
      const current = await findAppById(trx, id);
      if (!current) throw notFound();
      guard?.(current);
      if (current.protocol !== 'oidc') refuseOidcFields(input);
      if (expectedVersion !== undefined && current.version !== expectedVersion) throw versionMismatch(expectedVersion, current.version);
      const changes: AppChanges = {};
      if (input.name !== undefined) changes.name = input.name;
      if (input.description !== undefined) changes.description = input.description || null;
      if (input.logoUrl !== undefined) changes.logo_url = input.logoUrl;
      if (input.firstParty !== undefined) changes.first_party = input.firstParty;
      if (input.access !== undefined) changes.access = input.access;
      if (input.adminRoles !== undefined) changes.admin_roles = [...new Set(input.adminRoles)];
      if (input.signInPolicy !== undefined) changes.signin_policy = input.signInPolicy;
      if (input.apiAudience !== undefined) changes.api_audience = input.apiAudience;
      if (input.authorizationServer !== undefined) changes.authorization_server = input.authorizationServer;
      if (input.allowNoPkce !== undefined) {
        if (input.allowNoPkce && current.oidc.token_endpoint_auth_method === 'none') throw publicNeedsPkce();
        changes.allow_no_pkce = input.allowNoPkce;
      }
      if (input.idTokenSigningAlg !== undefined) changes.oidc = { ...current.oidc, id_token_signed_response_alg: input.idTokenSigningAlg };
      if (input.initiateLoginUri !== undefined) changes.oidc = { ...(changes.oidc ?? current.oidc), initiate_login_uri: input.initiateLoginUri };
      if (input.backchannelLogoutUri !== undefined) changes.oidc = { ...(changes.oidc ?? current.oidc), backchannel_logout_uri: input.backchannelLogoutUri };
      if (input.backchannelLogoutSessionRequired !== undefined) {
        changes.oidc = { ...(changes.oidc ?? current.oidc), backchannel_logout_session_required: input.backchannelLogoutSessionRequired };
      }
      if (input.redirectUris !== undefined || input.postLogoutRedirectUris !== undefined) {
        const redirectUris = input.redirectUris ?? current.oidc.redirect_uris;
        if (current.oidc.grant_types.includes('authorization_code') && redirectUris.length === 0) {
          throw new AppError('invalid_argument', 'app.redirect_uri_required', 'redirectUris: at least one redirect URI is required for authorization_code', { field: 'redirectUris' });
        }
        changes.oidc = {
          ...(changes.oidc ?? current.oidc),
          redirect_uris: redirectUris,
          post_logout_redirect_uris: input.postLogoutRedirectUris ?? current.oidc.post_logout_redirect_uris,
          application_type: applicationType(redirectUris),
        };
      }
      const updated = await updateAppById(trx, id, changes, current.version);
      if (!updated) throw versionMismatch(current.version);
      await recordAudit(trx, actor, { action: 'app.updated', targetType: 'app', targetId: id, changes: input, before: valuesBefore(asInput(current), input) });
      return updated;
    }).catch((err: unknown) => {
      apiAudienceTaken(err);
      throw err;
    });
  }

  /**
   * Issues a new client secret and returns it once; the old one stops working at once (every
   * node forgets its cached copy of the client when the change commits, see client-cache.ts),
   * and so do the app's admin API tokens issued before (admin/auth.ts).
   * Public apps have no secret.
   */
  async rotateSecret(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, guard?: AppGuard): Promise<RotatedSecret> {
    const secret = newSecret(32);
    const app = await this.db.transaction(async (trx) => {
      const current = await findAppById(trx, id, { forUpdate: true });
      if (!current) throw notFound();
      guard?.(current);
      if (expectedVersion !== undefined && current.version !== expectedVersion) throw versionMismatch(expectedVersion, current.version);
      if (current.protocol === 'saml') {
        throw new AppError('invalid_argument', 'app.saml_has_no_secret', 'this app is a SAML app: it has no client secret (SAML trusts certificates)');
      }
      if (current.oidc.token_endpoint_auth_method === 'none') {
        throw new AppError('invalid_argument', 'app.public_has_no_secret', 'this app is a public client and has no client secret');
      }
      const updated = await updateAppById(trx, id, { client_secret_hash: sha256(secret), secret_rotated_at: new Date() }, current.version);
      if (!updated) throw versionMismatch(current.version);
      await recordAudit(trx, actor, { action: 'app.secret_rotated', targetType: 'app', targetId: id, changes: { clientId: current.clientId } });
      return updated;
    });
    return { client_secret: secret, app };
  }

  /**
   * Deletes the app with its roles and assignments (cascade) and ends every grant, code and
   * token issued to it.
   */
  async deleteApp(id: string, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, guard?: AppGuard): Promise<void> {
    await this.db.transaction(async (trx) => {
      const current = await findAppById(trx, id, { forUpdate: true });
      if (!current) throw notFound();
      guard?.(current);
      if (expectedVersion !== undefined && current.version !== expectedVersion) throw versionMismatch(expectedVersion, current.version);
      const ended = await deleteOidcStateOfClient(trx, current.clientId);
      await deleteAppById(trx, id);
      await recordAudit(trx, actor, {
        action: 'app.deleted', targetType: 'app', targetId: id, changes: { name: current.name, clientId: current.clientId, endedOidcRecords: ended },
      });
    });
  }

  // ---- app roles ----------------------------------------------------------------------

  async listRoles(appId: string): Promise<AppRole[]> {
    await this.getApp(appId);
    return findAppRoles(this.db, appId);
  }

  async getRole(appId: string, roleId: string): Promise<AppRole> {
    const role = await findAppRoleById(this.db, appId, roleId);
    if (!role) {
      await this.getApp(appId);
      throw roleNotFound();
    }
    return role;
  }

  async createRole(appId: string, raw: CreateAppRoleInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<AppRole> {
    const input = parseInput(createAppRoleInput, raw);
    try {
      return await this.db.transaction(async (trx) => {
        await this.#lockApp(trx, appId, guard);
        const role = await insertAppRole(trx, {
          id: newId(), app_id: appId, key: input.key, name: input.name ?? input.key, description: input.description || null,
        });
        await recordAudit(trx, actor, { action: 'app_role.created', targetType: 'app', targetId: appId, changes: { roleId: role.id, ...input } });
        return role;
      });
    } catch (err) {
      return roleKeyTaken(err);
    }
  }

  async updateRole(appId: string, roleId: string, raw: UpdateAppRoleInput, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<AppRole> {
    const input = parseInput(updateAppRoleInput, raw);
    try {
      return await this.db.transaction(async (trx) => {
        await this.#lockApp(trx, appId, guard);
        const current = await findAppRoleById(trx, appId, roleId);
        if (!current) throw roleNotFound();
        const changes: { key?: string; name?: string; description?: string | null } = {};
        if (input.key !== undefined) changes.key = input.key;
        if (input.name !== undefined) changes.name = input.name;
        if (input.description !== undefined) changes.description = input.description || null;
        const role = await updateAppRoleById(trx, appId, roleId, changes);
        if (!role) throw roleNotFound();
        await recordAudit(trx, actor, { action: 'app_role.updated', targetType: 'app', targetId: appId, changes: { roleId, ...input }, before: valuesBefore(current, input) });
        return role;
      });
    } catch (err) {
      return roleKeyTaken(err);
    }
  }

  /** Deletes the role; assignments that carried it lose it (the assignment itself stays). */
  async deleteRole(appId: string, roleId: string, actor: Actor = SYSTEM_ACTOR, guard?: AppGuard): Promise<void> {
    await this.db.transaction(async (trx) => {
      await this.#lockApp(trx, appId, guard);
      const role = await findAppRoleById(trx, appId, roleId);
      if (!role) throw roleNotFound();
      await deleteAppRoleById(trx, appId, roleId);
      await recordAudit(trx, actor, { action: 'app_role.deleted', targetType: 'app', targetId: appId, changes: { roleId, key: role.key } });
    });
  }

  /** The app, locked against changes for the rest of the transaction (404 if unknown), after the caller's guard. */
  async #lockApp(trx: Knex.Transaction, appId: string, guard?: AppGuard): Promise<App> {
    const app = await findAppById(trx, appId, { forShare: true });
    if (!app) throw notFound();
    guard?.(app);
    return app;
  }
}
