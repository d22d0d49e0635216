// The SAML side of an app (apps.protocol = 'saml'): one service-provider record per app, found by
// the entityID its requests name. Certificates are kept as base64 DER (what metadata carries in
// ds:X509Certificate), without PEM armour or whitespace.
import type { Tx } from '../db/knex.ts';
import { findAppById, isUuid, type App, type DbAppRow } from './apps.repo.ts';

export const NAME_ID_FORMATS = ['emailAddress', 'persistent', 'transient', 'unspecified'] as const;
export type NameIdFormat = (typeof NAME_ID_FORMATS)[number];

/** What an attribute's values are made of: a field of the person, or their access in this app. */
export const ATTRIBUTE_SOURCES = [
  'id', 'username', 'email', 'displayName', 'givenName', 'familyName', 'groups', 'roles',
  'employeeNumber', 'title', 'phone', 'locale',
] as const;
export type AttributeSource = (typeof ATTRIBUTE_SOURCES)[number];

export interface SamlAttributeMapping {
  /** The Attribute's Name as the SP expects it. */
  name: string;
  source: AttributeSource;
  /** basic (the default), uri or unspecified: the Attribute's NameFormat. */
  nameFormat?: 'basic' | 'uri' | 'unspecified';
  friendlyName?: string;
}

export interface AcsUrl {
  location: string;
  /** Responses travel by HTTP-POST only (a signed Response is too large for a URL). */
  binding: 'post';
  index: number;
  isDefault: boolean;
}

export interface SamlServiceProvider {
  appId: string;
  entityId: string;
  acsUrls: AcsUrl[];
  sloUrl: string | null;
  sloBinding: 'redirect' | 'post' | null;
  /** base64 DER, several during the SP's key rotation. */
  signingCertificates: string[];
  encryptionCertificate: string | null;
  encryptAssertions: boolean;
  nameIdFormat: NameIdFormat;
  /** null: email, displayName, groups and roles under those plain names. */
  attributeMapping: SamlAttributeMapping[] | null;
  signResponse: boolean;
  signAssertion: boolean;
  wantAuthnRequestsSigned: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface DbSamlSpRow {
  app_id: string;
  entity_id: string;
  acs_urls: AcsUrl[];
  slo_url: string | null;
  slo_binding: 'redirect' | 'post' | null;
  signing_certificates: string[];
  encryption_certificate: string | null;
  encrypt_assertions: boolean;
  name_id_format: NameIdFormat;
  attribute_mapping: SamlAttributeMapping[] | null;
  sign_response: boolean;
  sign_assertion: boolean;
  want_authn_requests_signed: boolean;
  created_at: Date;
  updated_at: Date;
}

export const toSamlSp = (r: DbSamlSpRow): SamlServiceProvider => ({
  appId: r.app_id,
  entityId: r.entity_id,
  acsUrls: r.acs_urls,
  sloUrl: r.slo_url,
  sloBinding: r.slo_binding,
  signingCertificates: r.signing_certificates ?? [],
  encryptionCertificate: r.encryption_certificate,
  encryptAssertions: r.encrypt_assertions,
  nameIdFormat: r.name_id_format,
  attributeMapping: r.attribute_mapping,
  signResponse: r.sign_response,
  signAssertion: r.sign_assertion,
  wantAuthnRequestsSigned: r.want_authn_requests_signed,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export type SamlSpValues = Omit<DbSamlSpRow, 'created_at' | 'updated_at'>;

const jsonColumns = (row: Partial<SamlSpValues>): Record<string, unknown> => ({
  ...row,
  ...(row.acs_urls ? { acs_urls: JSON.stringify(row.acs_urls) } : {}),
  ...(row.signing_certificates ? { signing_certificates: JSON.stringify(row.signing_certificates) } : {}),
  ...(row.attribute_mapping !== undefined ? { attribute_mapping: row.attribute_mapping === null ? null : JSON.stringify(row.attribute_mapping) } : {}),
});

export async function insertSamlSp(db: Tx, row: SamlSpValues): Promise<SamlServiceProvider> {
  const [inserted] = await db('saml_service_providers').insert(jsonColumns(row)).returning('*');
  return toSamlSp(inserted as DbSamlSpRow);
}

export async function updateSamlSpByAppId(db: Tx, appId: string, changes: Partial<Omit<SamlSpValues, 'app_id'>>): Promise<SamlServiceProvider | undefined> {
  const [row] = await db('saml_service_providers').where({ app_id: appId })
    .update({ ...jsonColumns(changes), updated_at: db.fn.now() }).returning('*');
  return row ? toSamlSp(row as DbSamlSpRow) : undefined;
}

export async function findSamlSpByAppId(db: Tx, appId: string): Promise<SamlServiceProvider | undefined> {
  if (!isUuid(appId)) return undefined;
  const row = await db<DbSamlSpRow>('saml_service_providers').where({ app_id: appId }).first();
  return row ? toSamlSp(row) : undefined;
}

/** The SAML app whose SP has this entityID, with its app record (one statement). */
export async function findSamlAppByEntityId(db: Tx, entityId: string): Promise<{ app: App; sp: SamlServiceProvider } | undefined> {
  if (entityId.includes('\0')) return undefined;
  const row = await db('saml_service_providers as s').join('apps as a', 'a.id', 's.app_id')
    .where('s.entity_id', entityId).first('s.*', db.raw('to_jsonb(a) as app_row')) as (DbSamlSpRow & { app_row: DbAppRow & Record<string, unknown> }) | undefined;
  if (!row) return undefined;
  return { app: appFromJson(row.app_row), sp: toSamlSp(row) };
}

/** The SAML app with this id, with its SP record. */
export async function findSamlAppById(db: Tx, appId: string): Promise<{ app: App; sp: SamlServiceProvider } | undefined> {
  const [app, sp] = await Promise.all([findAppById(db, appId), findSamlSpByAppId(db, appId)]);
  return app && sp ? { app, sp } : undefined;
}

function appFromJson(json: DbAppRow & Record<string, unknown>): App {
  // Dates come back from to_jsonb as strings; the app record is otherwise the row as it is.
  return {
    id: json.id, name: json.name, description: json.description, logoUrl: json.logo_url, protocol: json.protocol,
    firstParty: json.first_party, clientId: json.client_id, clientSecretHash: json.client_secret_hash,
    allowNoPkce: json.allow_no_pkce ?? false, oidc: json.oidc, access: json.access, adminRoles: json.admin_roles,
    signInPolicy: json.signin_policy ?? null, suiteSignInPolicy: json.suite_signin_policy ?? null,
    apiAudience: json.api_audience ?? null, authorizationServer: json.authorization_server ?? null, version: json.version,
    createdAt: new Date(json.created_at), updatedAt: new Date(json.updated_at),
  };
}

/** The SP records of these apps (a page of the app list), by app id. */
export async function findSamlSpsByAppIds(db: Tx, appIds: string[]): Promise<Map<string, SamlServiceProvider>> {
  const ids = appIds.filter(isUuid);
  if (!ids.length) return new Map();
  const rows = await db<DbSamlSpRow>('saml_service_providers').whereIn('app_id', ids);
  return new Map(rows.map((r) => [r.app_id, toSamlSp(r)]));
}
