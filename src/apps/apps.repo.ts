import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { run, statement } from '../db/prepared.ts';
import { appChanged } from './client-cache.ts';
import type { SignInPolicy } from '../access/signin-policy.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Ids from the CLI are not validated at an edge; a malformed one simply finds nothing. */
export const isUuid = (value: string): boolean => UUID.test(value);

export interface OidcClientSettings {
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: string;
  application_type: 'web' | 'native';
  /** Absent on apps created before it could be chosen: RS256, the OpenID Connect default. */
  id_token_signed_response_alg?: IdTokenSigningAlg;
  /**
   * OIDC client metadata initiate_login_uri: where a launcher (the portal) sends a person to start
   * the app's own sign-in. OneID's own, not given to oidc-provider (which would insist on https).
   */
  initiate_login_uri?: string | null;
  /**
   * OpenID Connect Back-Channel Logout 1.0 client metadata: where OneID POSTs a logout token when
   * the person's sessions with the app end (offboarding; RP-initiated logout at OneID), and
   * whether the app needs the sid claim in it.
   */
  backchannel_logout_uri?: string | null;
  backchannel_logout_session_required?: boolean;
}

/** How an app's ID tokens are signed. RS256 is what every relying party must accept; ES256 signs about 15 times faster. */
export const ID_TOKEN_SIGNING_ALGS = ['RS256', 'ES256'] as const;
export type IdTokenSigningAlg = (typeof ID_TOKEN_SIGNING_ALGS)[number];

export type AppAccess = 'assigned' | 'everyone';

export interface DbAppRow {
  id: string;
  name: string;
  description: string | null;
  logo_url: string | null;
  protocol: string;
  first_party: boolean;
  client_id: string;
  client_secret_hash: string | null;
  /** When the secret was last rotated: the admin API refuses the app's tokens issued before. */
  secret_rotated_at?: Date | null;
  /** A confidential legacy app may run the code flow without PKCE; every other app must use it. */
  allow_no_pkce: boolean;
  oidc: OidcClientSettings;
  access: AppAccess;
  admin_roles: string[];
  /** How strongly a person must have signed in to use the app; null: the global default (SIGNIN_POLICY_DEFAULT). */
  signin_policy: SignInPolicy | null;
  /** The strongest sign-in policy of the suites the app is in (kept by the suites service). */
  suite_signin_policy?: SignInPolicy | null;
  /** The audience of access tokens for the app's own API (token exchange inside a suite). */
  api_audience?: string | null;
  /** The issuer of the app's own authorization server (ID-JAG audience). */
  authorization_server?: string | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface App {
  id: string;
  name: string;
  description: string | null;
  logoUrl: string | null;
  protocol: string;
  firstParty: boolean;
  clientId: string;
  clientSecretHash: string | null;
  allowNoPkce: boolean;
  oidc: OidcClientSettings;
  access: AppAccess;
  adminRoles: string[];
  /** The app's own sign-in policy; null: the global default applies. */
  signInPolicy: SignInPolicy | null;
  /** The strongest policy of its suites: in force unless the app's own is stronger. */
  suiteSignInPolicy: SignInPolicy | null;
  /** The audience of access tokens for the app's own API, if it has one. */
  apiAudience: string | null;
  /** The issuer of the app's own authorization server, if it runs one (ID-JAG). */
  authorizationServer: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

const toApp = (r: DbAppRow): App => ({
  id: r.id,
  name: r.name,
  description: r.description,
  logoUrl: r.logo_url,
  protocol: r.protocol,
  firstParty: r.first_party,
  clientId: r.client_id,
  clientSecretHash: r.client_secret_hash,
  allowNoPkce: r.allow_no_pkce ?? false,
  oidc: r.oidc,
  access: r.access,
  adminRoles: r.admin_roles,
  signInPolicy: r.signin_policy ?? null,
  suiteSignInPolicy: r.suite_signin_policy ?? null,
  apiAudience: r.api_audience ?? null,
  authorizationServer: r.authorization_server ?? null,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

// Every OIDC request with a client reads it: a prepared statement (see db/prepared.ts).
const BY_CLIENT_ID = statement('app_by_client_id', 'select * from apps where client_id = ?');

export async function findAppByClientId(db: Tx, clientId: string): Promise<App | undefined> {
  const [row] = await run<DbAppRow>(db, BY_CLIENT_ID, [clientId]);
  return row ? toApp(row) : undefined;
}

/** forShare: the row cannot change (admin_roles included) until the transaction ends; writes to other rows that reference it still can. */
export async function findAppById(db: Tx, id: string, opts: { forUpdate?: boolean; forShare?: boolean } = {}): Promise<App | undefined> {
  if (!isUuid(id)) return undefined;
  const query = db<DbAppRow>('apps').where({ id }).first();
  if (opts.forUpdate) query.forUpdate();
  else if (opts.forShare) query.forShare();
  const row = await query;
  return row ? toApp(row) : undefined;
}

export async function insertApp(db: Tx, row: Omit<DbAppRow, 'created_at' | 'updated_at' | 'version'>): Promise<App> {
  const [inserted] = await db('apps').insert({
    ...row, oidc: JSON.stringify(row.oidc), admin_roles: db.raw('?::text[]', [row.admin_roles]),
  }).returning('*');
  appChanged(db, row.client_id);
  return toApp(inserted as DbAppRow);
}

export type AppChanges = Partial<Pick<DbAppRow, 'name' | 'description' | 'logo_url' | 'first_party' | 'client_secret_hash' | 'secret_rotated_at' | 'allow_no_pkce' | 'oidc' | 'access' | 'admin_roles' | 'signin_policy' | 'api_audience' | 'authorization_server'>>;

/**
 * Updates columns and bumps the version. With expectedVersion, updates only if the row is
 * still at that version; returns undefined when nothing matched.
 */
export async function updateAppById(db: Tx, id: string, changes: AppChanges, expectedVersion?: number): Promise<App | undefined> {
  const values: Record<string, unknown> = { ...changes };
  if (changes.oidc) values.oidc = JSON.stringify(changes.oidc);
  if (changes.admin_roles) values.admin_roles = db.raw('?::text[]', [changes.admin_roles]);
  const query = db('apps').where({ id }).update({ ...values, version: db.raw('version + 1'), updated_at: db.fn.now() }).returning('*');
  if (expectedVersion !== undefined) query.andWhere({ version: expectedVersion });
  const [row] = await query;
  if (!row) return undefined;
  appChanged(db, (row as DbAppRow).client_id);
  return toApp(row as DbAppRow);
}

export async function deleteAppById(db: Tx, id: string): Promise<boolean> {
  const deleted: { client_id: string }[] = await db('apps').where({ id }).delete().returning('client_id');
  for (const { client_id: clientId } of deleted) appChanged(db, clientId);
  return deleted.length > 0;
}

export interface AppFilter {
  /** Prefix of the name (case-insensitive). */
  q?: string;
  access?: AppAccess;
  firstParty?: boolean;
  clientId?: string;
  after?: { createdAt: string; id: string };
  limit: number;
}

const likePrefix = (s: string): string => `${s.toLowerCase().replace(/[\\%_]/g, '\\$&')}%`;

/** Filtering, ordering (created_at, id) and keyset paging, all in SQL. */
export async function findApps(db: Tx, f: AppFilter): Promise<App[]> {
  const q = filterApps(db<DbAppRow>('apps').select('*'), f).orderBy([{ column: 'created_at' }, { column: 'id' }]).limit(f.limit);
  if (f.after) q.whereRaw('(created_at, id) > (?::timestamptz, ?::uuid)', [f.after.createdAt, f.after.id]);
  return (await q).map((r) => toApp(r as DbAppRow));
}

/** How many apps match the filter (paging aside). */
export async function countApps(db: Tx, f: Omit<AppFilter, 'after' | 'limit'>): Promise<number> {
  const [row] = await filterApps(db('apps').count<{ count: string }[]>('* as count'), f);
  return Number(row?.count ?? 0);
}

function filterApps<Q extends Knex.QueryBuilder>(q: Q, f: Omit<AppFilter, 'after' | 'limit'>): Q {
  if (f.q) q.whereRaw('lower(name) like ?', [likePrefix(f.q)]);
  if (f.access) q.where('access', f.access);
  if (f.firstParty !== undefined) q.where('first_party', f.firstParty);
  if (f.clientId) q.where('client_id', f.clientId);
  return q;
}

// ---- app roles ------------------------------------------------------------------------

export interface DbAppRoleRow {
  id: string;
  app_id: string;
  key: string;
  name: string;
  description: string | null;
  created_at: Date;
}

export interface AppRole {
  id: string;
  appId: string;
  key: string;
  name: string;
  description: string | null;
  createdAt: Date;
}

const toAppRole = (r: DbAppRoleRow): AppRole => ({
  id: r.id, appId: r.app_id, key: r.key, name: r.name, description: r.description, createdAt: r.created_at,
});

/** An app's roles, ordered by key (an app has tens of roles, not thousands). */
export async function findAppRoles(db: Tx, appId: string): Promise<AppRole[]> {
  if (!isUuid(appId)) return [];
  return (await db<DbAppRoleRow>('app_roles').where({ app_id: appId }).orderBy([{ column: 'key' }, { column: 'id' }])).map(toAppRole);
}

export async function findAppRoleById(db: Tx, appId: string, id: string): Promise<AppRole | undefined> {
  if (!isUuid(appId) || !isUuid(id)) return undefined;
  const row = await db<DbAppRoleRow>('app_roles').where({ app_id: appId, id }).first();
  return row ? toAppRole(row) : undefined;
}

/** The roles of an app among the given ids and keys. */
export async function findAppRolesByIdsOrKeys(db: Tx, appId: string, ids: string[], keys: string[]): Promise<AppRole[]> {
  if (!ids.length && !keys.length) return [];
  const rows = await db<DbAppRoleRow>('app_roles').where({ app_id: appId })
    .andWhere((w) => {
      if (ids.length) w.orWhereIn('id', ids);
      if (keys.length) w.orWhereIn('key', keys);
    });
  return rows.map(toAppRole);
}

export async function insertAppRole(db: Tx, row: Omit<DbAppRoleRow, 'created_at'>): Promise<AppRole> {
  const [inserted] = await db('app_roles').insert(row).returning('*');
  return toAppRole(inserted as DbAppRoleRow);
}

export async function updateAppRoleById(db: Tx, appId: string, id: string, changes: Partial<Pick<DbAppRoleRow, 'key' | 'name' | 'description'>>): Promise<AppRole | undefined> {
  if (!Object.keys(changes).length) return findAppRoleById(db, appId, id);
  const [row] = await db('app_roles').where({ app_id: appId, id }).update(changes).returning('*');
  return row ? toAppRole(row as DbAppRoleRow) : undefined;
}

export async function deleteAppRoleById(db: Tx, appId: string, id: string): Promise<boolean> {
  return (await db('app_roles').where({ app_id: appId, id }).delete()) > 0;
}

/** Ends every grant, code and token issued to a client (used when its app is deleted). */
export async function deleteOidcStateOfClient(db: Tx, clientId: string): Promise<number> {
  return db('oidc_payloads')
    .whereIn('model', ['Grant', 'AuthorizationCode', 'AccessToken', 'RefreshToken', 'ClientCredentials', 'BackchannelAuthenticationRequest', 'DeviceCode'])
    .andWhereRaw("payload->>'clientId' = ?", [clientId])
    .delete();
}
