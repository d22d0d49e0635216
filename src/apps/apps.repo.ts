import type { Tx } from '../db/knex.ts';

export interface OidcClientSettings {
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: string;
  application_type: 'web' | 'native';
}

export interface DbAppRow {
  id: string;
  name: string;
  description: string | null;
  logo_url: string | null;
  protocol: string;
  first_party: boolean;
  client_id: string;
  client_secret_hash: string | null;
  oidc: OidcClientSettings;
  access: 'assigned' | 'everyone';
  admin_roles: string[];
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface App {
  id: string;
  name: string;
  description: string | null;
  logoUrl: string | null;
  firstParty: boolean;
  clientId: string;
  clientSecretHash: string | null;
  oidc: OidcClientSettings;
  access: 'assigned' | 'everyone';
  adminRoles: string[];
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

const toApp = (r: DbAppRow): App => ({
  id: r.id,
  name: r.name,
  description: r.description,
  logoUrl: r.logo_url,
  firstParty: r.first_party,
  clientId: r.client_id,
  clientSecretHash: r.client_secret_hash,
  oidc: r.oidc,
  access: r.access,
  adminRoles: r.admin_roles,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function findAppByClientId(db: Tx, clientId: string): Promise<App | undefined> {
  const row = await db<DbAppRow>('apps').where({ client_id: clientId }).first();
  return row ? toApp(row) : undefined;
}

export async function insertApp(db: Tx, row: Omit<DbAppRow, 'created_at' | 'updated_at' | 'version'>): Promise<App> {
  const [inserted] = await db('apps').insert({
    ...row, oidc: JSON.stringify(row.oidc), admin_roles: db.raw('?::text[]', [row.admin_roles]),
  }).returning('*');
  return toApp(inserted as DbAppRow);
}
