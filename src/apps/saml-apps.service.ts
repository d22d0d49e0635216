// SAML apps (#19): an app record like an OIDC app's (name, access rule, sign-in policy, roles,
// assignments) with protocol 'saml' and a service-provider record beside it. Settings come from
// fields, from SP metadata, or both (fields override what the metadata says).
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { newId, newSecret } from '../shared/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { parseInput } from '../directory/users.service.ts';
import { recordAudit, SYSTEM_ACTOR, valuesBefore, type Actor } from '../audit/audit.service.ts';
import { findAppById, insertApp, updateAppById, type App, type AppChanges } from './apps.repo.ts';
import {
  ATTRIBUTE_SOURCES, NAME_ID_FORMATS, findSamlAppById, findSamlSpByAppId, insertSamlSp, updateSamlSpByAppId,
  type AcsUrl, type SamlAttributeMapping, type SamlServiceProvider, type SamlSpValues,
} from './saml-providers.repo.ts';
import { apiAudience, apiAudienceTaken, authorizationServer, signInPolicy, type AppGuard } from './apps.service.ts';
import { parseSpMetadata } from '../saml/sp-metadata.ts';
import { normaliseCertificate, summariseCertificate } from '../saml/certificates.ts';

const httpUrl = z.string().trim().max(2048).refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && !value.includes('#');
  } catch {
    return false;
  }
}, 'must be an absolute https or http URL without a fragment');

const acsUrl = z.strictObject({
  location: httpUrl,
  /** Defaults to the URL's position in the list. */
  index: z.number().int().min(0).max(65535).optional(),
  isDefault: z.boolean().optional(),
});

/** PEM or base64 DER; kept as base64 DER. */
const certificateText = z.string().min(1).max(16 * 1024);

const attributeMappingItem = z.strictObject({
  name: z.string().trim().min(1).max(256),
  source: z.enum(ATTRIBUTE_SOURCES),
  nameFormat: z.enum(['basic', 'uri', 'unspecified']).optional(),
  friendlyName: z.string().trim().min(1).max(256).optional(),
});

const CLAIMS = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims';
const MS_CLAIMS = 'http://schemas.microsoft.com/ws/2008/06/identity/claims';

/**
 * Ready-made attribute mappings for common SPs. `default` is no mapping: email, displayName,
 * groups and roles under those plain names.
 */
export const ATTRIBUTE_PRESETS: Record<string, SamlAttributeMapping[] | null> = {
  default: null,
  // The claim URIs of WS-Federation / Entra ID, which many SaaS SPs expect.
  'azure-style-claims': [
    { name: `${CLAIMS}/emailaddress`, source: 'email', nameFormat: 'uri' },
    { name: `${CLAIMS}/name`, source: 'username', nameFormat: 'uri' },
    { name: `${CLAIMS}/givenname`, source: 'givenName', nameFormat: 'uri' },
    { name: `${CLAIMS}/surname`, source: 'familyName', nameFormat: 'uri' },
    { name: 'http://schemas.microsoft.com/identity/claims/displayname', source: 'displayName', nameFormat: 'uri' },
    { name: `${MS_CLAIMS}/groups`, source: 'groups', nameFormat: 'uri' },
    { name: `${MS_CLAIMS}/role`, source: 'roles', nameFormat: 'uri' },
  ],
  // LDAP-style names, for SPs configured as if against a directory.
  plain: [
    { name: 'uid', source: 'username' },
    { name: 'mail', source: 'email' },
    { name: 'cn', source: 'displayName' },
    { name: 'givenName', source: 'givenName' },
    { name: 'sn', source: 'familyName' },
    { name: 'memberOf', source: 'groups' },
    { name: 'roles', source: 'roles' },
  ],
};
const presetNames = Object.keys(ATTRIBUTE_PRESETS) as [string, ...string[]];

/** The SAML settings, each optional: at creation the metadata or the defaults fill the rest; on update, absent = unchanged. */
const samlFields = {
  entityId: z.string().trim().min(1).max(1024).describe('the SP entityID its AuthnRequests carry as Issuer'),
  acsUrls: z.array(acsUrl).min(1).max(20).describe('where Responses are sent (HTTP-POST); exactly one is the default'),
  sloUrl: httpUrl.nullable().describe('the SP single logout endpoint; null: the SP takes no logout messages'),
  sloBinding: z.enum(['redirect', 'post']).describe('how LogoutRequests reach sloUrl (default redirect)'),
  signingCertificates: z.array(certificateText).max(10).describe('the SP signing certificates (PEM or base64 DER): verify its AuthnRequests and LogoutRequests'),
  encryptionCertificate: certificateText.nullable().describe('the SP encryption certificate (PEM or base64 DER)'),
  encryptAssertions: z.boolean().describe('encrypt assertions for the SP (default: true when it has an encryption certificate)'),
  nameIdFormat: z.enum(NAME_ID_FORMATS).describe('the NameID sent when the request names none (default emailAddress)'),
  attributeMapping: z.array(attributeMappingItem).max(50).nullable()
    .describe('attributes under the names the SP expects; null: email, displayName, groups and roles under those names'),
  attributePreset: z.enum(presetNames).describe(`fills attributeMapping with a ready-made mapping: ${presetNames.join(', ')}`),
  signResponse: z.boolean().describe('sign the Response (default true)'),
  signAssertion: z.boolean().describe('sign the Assertion (default true)'),
  wantAuthnRequestsSigned: z.boolean().describe('refuse unsigned AuthnRequests (needs a signing certificate)'),
  metadataXml: z.string().min(1).max(1024 * 1024).describe('SP metadata (an EntityDescriptor); the fields above override what it says'),
};

const optionalSamlFields = Object.fromEntries(Object.entries(samlFields).map(([k, s]) => [k, s.optional()])) as
  { [K in keyof typeof samlFields]: z.ZodOptional<(typeof samlFields)[K]> };

const appName = z.string().trim().min(1).max(200);
const appDescription = z.string().trim().max(2000);
const logoUrl = z.url({ protocol: /^https?$/ });
const access = z.enum(['assigned', 'everyone']);

export const createSamlAppInput = z.strictObject({
  name: appName,
  description: appDescription.optional(),
  logoUrl: logoUrl.optional(),
  access: access.default('assigned'),
  signInPolicy: signInPolicy.default(null),
  apiAudience: apiAudience.nullable().optional(),
  authorizationServer: authorizationServer.nullable().optional(),
  ...optionalSamlFields,
});
export type CreateSamlAppInput = z.input<typeof createSamlAppInput>;

export const updateSamlAppInput = z.strictObject({
  name: appName.optional(),
  description: appDescription.nullable().optional(),
  logoUrl: logoUrl.nullable().optional(),
  access: access.optional(),
  signInPolicy: signInPolicy.optional(),
  apiAudience: apiAudience.nullable().optional(),
  authorizationServer: authorizationServer.nullable().optional(),
  ...optionalSamlFields,
});
export type UpdateSamlAppInput = z.input<typeof updateSamlAppInput>;

export interface SamlApp { app: App; sp: SamlServiceProvider }

/** The settings of an SP, complete, as they are checked before they are stored. */
interface Settings {
  entityId: string;
  acsUrls: { location: string; index?: number; isDefault?: boolean }[];
  sloUrl: string | null;
  sloBinding: 'redirect' | 'post' | null;
  signingCertificates: string[];
  encryptionCertificate: string | null;
  encryptAssertions: boolean | undefined;
  nameIdFormat: SamlServiceProvider['nameIdFormat'];
  attributeMapping: SamlAttributeMapping[] | null;
  signResponse: boolean;
  signAssertion: boolean;
  wantAuthnRequestsSigned: boolean;
}

const SETTING_KEYS = [
  'entityId', 'acsUrls', 'sloUrl', 'sloBinding', 'signingCertificates', 'encryptionCertificate', 'encryptAssertions',
  'nameIdFormat', 'attributeMapping', 'signResponse', 'signAssertion', 'wantAuthnRequestsSigned',
] as const;

const DEFAULTS: Settings = {
  entityId: '', acsUrls: [], sloUrl: null, sloBinding: null, signingCertificates: [], encryptionCertificate: null,
  encryptAssertions: undefined, nameIdFormat: 'emailAddress', attributeMapping: null, signResponse: true, signAssertion: true,
  wantAuthnRequestsSigned: false,
};

const bad = (code: string, field: string, message: string): AppError => new AppError('invalid_argument', code, `${field}: ${message}`, { field });
const notFound = (): AppError => new AppError('not_found', 'app.not_found', 'no app with this id');
const notSaml = (): AppError => new AppError('invalid_argument', 'app.not_saml', 'this app is an OpenID Connect app: it has no SAML settings');
const versionMismatch = (expected: number, now?: number): AppError => new AppError('failed_precondition', 'app.version_mismatch',
  now === undefined ? 'the app changed during the update; retry' : `the app changed since version ${expected} (now ${now})`);

/** The SAML settings metadata gives, checked like fields; its mistakes are the metadata's. */
function settingsFromMetadata(xml: string): Partial<Settings> {
  const parsed = parseSpMetadata(xml);
  const checked = z.object(optionalSamlFields).safeParse(parsed);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new AppError('invalid_argument', 'saml.metadata_invalid', `metadataXml: ${issue.path.join('.')}: ${issue.message}`, { field: 'metadataXml' });
  }
  return parsed;
}

/** Explicit settings of an input: the fields it gives (a preset stands for attributeMapping). */
function explicitSettings(input: z.output<typeof updateSamlAppInput>): Partial<Settings> {
  const out: Partial<Settings> = {};
  for (const key of SETTING_KEYS) if (input[key] !== undefined) (out as Record<string, unknown>)[key] = input[key];
  if (input.attributePreset !== undefined) {
    if (input.attributeMapping !== undefined) throw bad('saml.attribute_mapping_conflict', 'attributePreset', 'give attributeMapping or attributePreset, not both');
    out.attributeMapping = ATTRIBUTE_PRESETS[input.attributePreset] ?? null;
  }
  return out;
}

function normaliseCertificates(list: string[], field: string): string[] {
  const out: string[] = [];
  list.forEach((text, i) => {
    const der = normaliseCertificate(text);
    if (!der) throw bad('saml.certificate_invalid', `${field}.${i}`, 'not an X.509 certificate (PEM or base64 DER)');
    if (!out.includes(der)) out.push(der);
  });
  return out;
}

/**
 * The stored form of complete settings, or the first reason they cannot work. `previousEncryption`:
 * the encryption certificate before an update (encryptAssertions follows a newly given one).
 */
function finalise(s: Settings, previousEncryption: string | null | undefined, previousEncrypt: boolean | undefined): Omit<SamlSpValues, 'app_id'> {
  if (!s.entityId) throw bad('saml.entity_id_required', 'entityId', 'required (or give metadataXml)');
  if (!s.acsUrls.length) throw bad('saml.acs_url_required', 'acsUrls', 'at least one ACS URL is required (or give metadataXml)');
  const acsUrls: AcsUrl[] = s.acsUrls.map((a, i) => ({ location: a.location, binding: 'post', index: a.index ?? i, isDefault: a.isDefault === true }));
  const indexes = new Set<number>();
  acsUrls.forEach((a, i) => {
    if (indexes.has(a.index)) throw bad('saml.acs_index_duplicate', `acsUrls.${i}.index`, `index ${a.index} is used twice`);
    indexes.add(a.index);
  });
  const defaults = acsUrls.filter((a) => a.isDefault).length;
  if (defaults > 1) throw bad('saml.acs_default_ambiguous', 'acsUrls', 'only one ACS URL may be the default');
  // With none marked, the first is the default (as SAML metadata reads without isDefault).
  if (defaults === 0) acsUrls[0]!.isDefault = true;

  const signingCertificates = normaliseCertificates(s.signingCertificates, 'signingCertificates');
  const encryptionCertificate = s.encryptionCertificate === null ? null : normaliseCertificates([s.encryptionCertificate], 'encryptionCertificate')[0]!;
  // Unsaid, encryption is on for a newly given certificate and stays as it was for the same one.
  const encrypt = s.encryptAssertions
    ?? (encryptionCertificate !== null && (encryptionCertificate !== previousEncryption || (previousEncrypt ?? true)));
  if (encrypt && !encryptionCertificate) throw bad('saml.encryption_certificate_required', 'encryptAssertions', 'needs an encryptionCertificate');
  if (s.wantAuthnRequestsSigned && !signingCertificates.length) {
    throw bad('saml.signing_certificate_required', 'wantAuthnRequestsSigned', 'needs at least one of the SP\'s signingCertificates to check the signatures with');
  }
  if (!s.signResponse && !s.signAssertion) throw bad('saml.unsigned', 'signResponse', 'the Response, the Assertion or both must be signed');
  if (s.attributeMapping) {
    const names = new Set<string>();
    s.attributeMapping.forEach((m, i) => {
      if (names.has(m.name)) throw bad('saml.attribute_duplicate', `attributeMapping.${i}.name`, `"${m.name}" is mapped twice`);
      names.add(m.name);
    });
  }
  return {
    entity_id: s.entityId,
    acs_urls: acsUrls,
    slo_url: s.sloUrl,
    slo_binding: s.sloUrl ? s.sloBinding ?? 'redirect' : null,
    signing_certificates: signingCertificates,
    encryption_certificate: encryptionCertificate,
    encrypt_assertions: encrypt,
    name_id_format: s.nameIdFormat,
    attribute_mapping: s.attributeMapping,
    sign_response: s.signResponse,
    sign_assertion: s.signAssertion,
    want_authn_requests_signed: s.wantAuthnRequestsSigned,
  };
}

const settingsOf = (sp: SamlServiceProvider): Settings => ({
  entityId: sp.entityId, acsUrls: sp.acsUrls, sloUrl: sp.sloUrl, sloBinding: sp.sloBinding, signingCertificates: sp.signingCertificates,
  encryptionCertificate: sp.encryptionCertificate, encryptAssertions: sp.encryptAssertions, nameIdFormat: sp.nameIdFormat,
  attributeMapping: sp.attributeMapping, signResponse: sp.signResponse, signAssertion: sp.signAssertion, wantAuthnRequestsSigned: sp.wantAuthnRequestsSigned,
});

/** SAML settings for the audit log: certificates by SHA-256 fingerprint. */
export function samlSettingsForAudit(sp: SamlServiceProvider): Record<string, unknown> {
  const { appId: _a, createdAt: _c, updatedAt: _u, signingCertificates, encryptionCertificate, ...rest } = sp;
  return {
    ...rest,
    signingCertificates: signingCertificates.map((c) => summariseCertificate(c).sha256),
    encryptionCertificate: encryptionCertificate ? summariseCertificate(encryptionCertificate).sha256 : null,
  };
}

function entityIdTaken(err: unknown): never {
  apiAudienceTaken(err);
  if (isUniqueViolation(err) && String((err as { constraint?: string }).constraint ?? '').includes('entity_id')) {
    throw new AppError('already_exists', 'saml.entity_id_taken', 'entityId: another app already has this SP entity ID', { field: 'entityId' });
  }
  throw err;
}

export class SamlAppsService {
  constructor(private readonly db: Knex) {}

  async createSamlApp(raw: CreateSamlAppInput, actor: Actor = SYSTEM_ACTOR): Promise<SamlApp> {
    const input = parseInput(createSamlAppInput, raw);
    const fromMetadata = input.metadataXml ? settingsFromMetadata(input.metadataXml) : {};
    const values = finalise({ ...DEFAULTS, ...fromMetadata, ...explicitSettings(input) }, undefined, undefined);
    try {
      return await this.db.transaction(async (trx) => {
        const app = await insertApp(trx, {
          id: newId(),
          name: input.name,
          description: input.description || null,
          logo_url: input.logoUrl ?? null,
          protocol: 'saml',
          first_party: false,
          // Not the entity ID: a random id, like an OIDC app's, that names no one else's client.
          client_id: newSecret(18),
          client_secret_hash: null,
          allow_no_pkce: false,
          // No redirect URIs, no grant types: the OIDC adapter does not serve SAML apps at all.
          oidc: {} as App['oidc'],
          access: input.access,
          admin_roles: [],
          signin_policy: input.signInPolicy,
          api_audience: input.apiAudience ?? null,
          authorization_server: input.authorizationServer ?? null,
        });
        const sp = await insertSamlSp(trx, { app_id: app.id, ...values });
        await recordAudit(trx, actor, {
          action: 'app.created', targetType: 'app', targetId: app.id,
          changes: {
            name: app.name, description: app.description, logoUrl: app.logoUrl, access: app.access, signInPolicy: app.signInPolicy,
            apiAudience: app.apiAudience, authorizationServer: app.authorizationServer, protocol: 'saml', clientId: app.clientId, fromMetadata: Boolean(input.metadataXml), saml: samlSettingsForAudit(sp),
          },
        });
        return { app, sp };
      });
    } catch (err) {
      return entityIdTaken(err);
    }
  }

  async getSamlApp(appId: string): Promise<SamlApp> {
    const found = await findSamlAppById(this.db, appId);
    if (found) return found;
    if (await findAppById(this.db, appId)) throw notSaml();
    throw notFound();
  }

  /** PATCH semantics (absent = unchanged, null = cleared); with expectedVersion, a stale version gives 412. */
  async updateSamlApp(appId: string, raw: UpdateSamlAppInput, actor: Actor = SYSTEM_ACTOR, expectedVersion?: number, guard?: AppGuard): Promise<SamlApp> {
    const input = parseInput(updateSamlAppInput, raw);
    const fromMetadata = input.metadataXml ? settingsFromMetadata(input.metadataXml) : {};
    const explicit = explicitSettings(input);
    try {
      return await this.db.transaction(async (trx) => {
        const current = await findAppById(trx, appId, { forUpdate: true });
        if (!current) throw notFound();
        if (current.protocol !== 'saml') throw notSaml();
        guard?.(current);
        if (expectedVersion !== undefined && current.version !== expectedVersion) throw versionMismatch(expectedVersion, current.version);
        const before = await findSamlSpByAppId(trx, appId);
        if (!before) throw notSaml();
        const next = { ...settingsOf(before), ...fromMetadata, ...explicit };
        // A newly given encryption certificate turns encryption on unless the update says otherwise.
        if (explicit.encryptAssertions === undefined && fromMetadata.encryptAssertions === undefined) next.encryptAssertions = undefined;
        const values = finalise(next, before.encryptionCertificate, before.encryptAssertions);

        const changes: AppChanges = {};
        if (input.name !== undefined) changes.name = input.name;
        if (input.description !== undefined) changes.description = input.description || null;
        if (input.logoUrl !== undefined) changes.logo_url = input.logoUrl;
        if (input.access !== undefined) changes.access = input.access;
        if (input.signInPolicy !== undefined) changes.signin_policy = input.signInPolicy;
        if (input.apiAudience !== undefined) changes.api_audience = input.apiAudience;
        if (input.authorizationServer !== undefined) changes.authorization_server = input.authorizationServer;
        // Bumps the app's version (the ETag) also when only SAML settings change.
        const app = await updateAppById(trx, appId, changes, current.version);
        if (!app) throw versionMismatch(current.version);
        const sp = (await updateSamlSpByAppId(trx, appId, values))!;

        const oldSaml = samlSettingsForAudit(before);
        const newSaml = samlSettingsForAudit(sp);
        const changed = Object.keys(newSaml).filter((k) => JSON.stringify(newSaml[k]) !== JSON.stringify(oldSaml[k]));
        const appFields = Object.fromEntries((['name', 'description', 'logoUrl', 'access', 'signInPolicy', 'apiAudience', 'authorizationServer'] as const)
          .filter((k) => input[k] !== undefined).map((k) => [k, input[k]]));
        await recordAudit(trx, actor, {
          action: 'app.updated', targetType: 'app', targetId: appId,
          changes: { ...appFields, ...(input.metadataXml ? { fromMetadata: true } : {}), saml: Object.fromEntries(changed.map((k) => [k, newSaml[k]])) },
          before: { ...valuesBefore(current, appFields), saml: Object.fromEntries(changed.map((k) => [k, oldSaml[k]])) },
        });
        return { app, sp };
      });
    } catch (err) {
      return entityIdTaken(err);
    }
  }
}
