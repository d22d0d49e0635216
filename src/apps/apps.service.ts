import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId, newSecret, sha256 } from '../shared/ids.ts';
import { ADMIN_ROLES, parseInput } from '../directory/users.service.ts';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../audit/audit.service.ts';
import { insertApp, type App, type OidcClientSettings } from './apps.repo.ts';

export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;

const redirectUri = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return !url.hash && !value.includes('#') && url.protocol !== 'javascript:' && url.protocol !== 'data:';
  } catch {
    return false;
  }
}, 'must be an absolute URL without a fragment');

export const createAppInput = z.object({
  name: z.string().trim().min(1).max(200),
  description: z.string().trim().max(2000).optional(),
  logoUrl: z.url({ protocol: /^https?$/ }).optional(),
  redirectUris: z.array(redirectUri).max(50).default([]),
  postLogoutRedirectUris: z.array(redirectUri).max(50).default([]),
  public: z.boolean().default(false),
  firstParty: z.boolean().default(false),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1).optional(),
  /** 'assigned': only users assigned to the app may sign in (the default); 'everyone': any active user. */
  access: z.enum(['assigned', 'everyone']).default('assigned'),
  /** Admin API roles this app holds when it calls with client_credentials. */
  adminRoles: z.array(z.enum(ADMIN_ROLES)).default([]),
}).strict();

export type CreateAppInput = z.input<typeof createAppInput>;

export interface CreatedApp { id: string; client_id: string; client_secret: string | null; app: App }

export class AppsService {
  constructor(private readonly db: Knex) {}

  async createApp(raw: CreateAppInput, actor: Actor = SYSTEM_ACTOR): Promise<CreatedApp> {
    const input = parseInput(createAppInput, raw);
    const grantTypes = [...new Set(input.grantTypes ?? (input.public ? ['authorization_code', 'refresh_token'] : ['authorization_code', 'refresh_token']))];
    if (input.public && grantTypes.includes('client_credentials')) {
      throw new AppError('invalid_argument', 'app.public_client_credentials', 'grantTypes: a public app cannot use client_credentials');
    }
    const usesBrowser = grantTypes.includes('authorization_code');
    if (usesBrowser && input.redirectUris.length === 0) {
      throw new AppError('invalid_argument', 'app.redirect_uri_required', 'redirectUris: at least one redirect URI is required for authorization_code');
    }
    if (grantTypes.includes('refresh_token') && !usesBrowser) {
      throw new AppError('invalid_argument', 'app.refresh_without_code', 'grantTypes: refresh_token needs authorization_code');
    }
    const customScheme = input.redirectUris.some((u) => !/^https?:/i.test(u));
    const oidc: OidcClientSettings = {
      redirect_uris: input.redirectUris,
      post_logout_redirect_uris: input.postLogoutRedirectUris,
      grant_types: grantTypes,
      response_types: usesBrowser ? ['code'] : [],
      token_endpoint_auth_method: input.public ? 'none' : 'client_secret_basic',
      application_type: customScheme ? 'native' : 'web',
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
      oidc,
      access: input.access,
      admin_roles: input.adminRoles,
      });
      await recordAudit(trx, actor, { action: 'app.created', targetType: 'app', targetId: inserted.id, changes: { ...input, clientId: inserted.clientId } });
      return inserted;
    });
    return { id: app.id, client_id: app.clientId, client_secret: secret, app };
  }
}
