// SCIM User (RFC 7643 section 4.1 + the enterprise extension, section 4.3) <-> OneID user.
//
// What maps to the directory (and so to OIDC claims, the admin API and the filter compiler's
// USER_FILTER_MAPPING):
//   userName            -> username (unique among sign-in names, stored and compared folded by
//                          shared/names.ts: NFKC, lower case; the form the client sent is kept and
//                          returned while it still folds to the stored name)
//   displayName         -> display_name (falls back to name.formatted, then "givenName familyName")
//   name.givenName/familyName -> given_name / family_name
//   name.formatted      -> derived: "honorificPrefix givenName middleName familyName honorificSuffix"
//                          (display_name when there are no parts), so it follows the parts whoever
//                          changes them (PATCH, PUT, the admin API). A client that sends a different
//                          value in a write sets it explicitly: it is kept (scim_attributes.formatted,
//                          with the parts it was set for) and returned until a later write changes a
//                          part without setting formatted again. A PUT or PATCH that returns the
//                          formatted OneID showed is not an explicit set (users.query.ts filters and
//                          sorts on the same rule, FORMATTED_SQL)
//   title, externalId   -> title, external_id (externalId is the client's and need not be unique)
//   locale              -> locale (en_US is accepted as en-US); without locale, the first language of
//                          preferredLanguage sets the locale column (the OIDC locale claim)
//   active              -> status: false = suspended, true = active ("True"/"False" strings accepted)
//   emails              -> emails (the primary one, else the first, becomes the sign-in email when it
//                          is an address no other account signs in with; see ProvisionedWrite)
//   phoneNumbers        -> phone (the primary number, else the first); the list is kept as sent
//   password            -> the password credential (writeOnly, never returned)
//   groups              -> readOnly, rendered from group membership
//   enterprise employeeNumber -> employee_number
//   enterprise department     -> the user's primary department, by name (see users.resource.ts)
//   enterprise manager.value  -> manager_id (manager.displayName is readOnly)
// The other attributes of these two schemas (nickName, profileUrl, userType, preferredLanguage,
// timezone, ims, photos, addresses, entitlements, roles, x509Certificates, name.middleName,
// honorificPrefix/Suffix, costCenter, organization, division) are kept as sent in
// users.scim_attributes and returned. Attributes of no schema are ignored (RFC 7644 3.3).
import { AppError } from '../shared/errors.ts';
import { foldName } from '../shared/names.ts';
import { normaliseProvisionedEmails, type CreateUserInput, type UpdateUserInput } from '../directory/users.service.ts';
import type { User, UserEmail } from '../directory/users.repo.ts';
import { ScimError } from './errors.ts';
import { SCIM_ENTERPRISE_USER_SCHEMA, SCIM_USER_SCHEMA } from './filter-sql.ts';

// ---------------------------------------------------------------------------------------------
// The attributes of the two schemas, by lower-cased name

export interface AttrDef {
  name: string;
  type: 'string' | 'boolean' | 'complex';
  multi?: boolean;
  readOnly?: boolean;
  sub?: Record<string, AttrDef>;
}

const str = (name: string, extra: Partial<AttrDef> = {}): AttrDef => ({ name, type: 'string', ...extra });
const bool = (name: string): AttrDef => ({ name, type: 'boolean' });
const table = (defs: AttrDef[]): Record<string, AttrDef> => Object.fromEntries(defs.map((d) => [d.name.toLowerCase(), d]));
const complex = (name: string, subs: AttrDef[], extra: Partial<AttrDef> = {}): AttrDef => ({ name, type: 'complex', sub: table(subs), ...extra });
const multi = (name: string, subs: AttrDef[], extra: Partial<AttrDef> = {}): AttrDef => complex(name, subs, { multi: true, ...extra });
const plural = (): AttrDef[] => [str('value'), str('display'), str('type'), bool('primary')];

export const CORE_USER_ATTRIBUTES: Record<string, AttrDef> = table([
  str('id', { readOnly: true }),
  str('externalId'),
  str('userName'),
  complex('name', [str('formatted'), str('familyName'), str('givenName'), str('middleName'), str('honorificPrefix'), str('honorificSuffix')]),
  str('displayName'),
  str('nickName'),
  str('profileUrl'),
  str('title'),
  str('userType'),
  str('preferredLanguage'),
  str('locale'),
  str('timezone'),
  bool('active'),
  str('password'),
  multi('emails', plural()),
  multi('phoneNumbers', plural()),
  multi('ims', plural()),
  multi('photos', plural()),
  multi('addresses', [str('formatted'), str('streetAddress'), str('locality'), str('region'), str('postalCode'), str('country'), str('type'), bool('primary')]),
  multi('groups', [str('value'), str('$ref'), str('display'), str('type')], { readOnly: true }),
  multi('entitlements', plural()),
  multi('roles', plural()),
  multi('x509Certificates', plural()),
  complex('meta', [str('resourceType'), str('created'), str('lastModified'), str('location'), str('version')], { readOnly: true }),
]);

export const ENTERPRISE_USER_ATTRIBUTES: Record<string, AttrDef> = table([
  str('employeeNumber'),
  str('costCenter'),
  str('organization'),
  str('division'),
  str('department'),
  complex('manager', [str('value'), str('$ref'), str('displayName', { readOnly: true })]),
]);

const CORE_URN = SCIM_USER_SCHEMA;
const ENT_URN = SCIM_ENTERPRISE_USER_SCHEMA;
const CORE_LOWER = CORE_URN.toLowerCase();
const ENT_LOWER = ENT_URN.toLowerCase();

/** Core attributes kept as sent in scim_attributes.core. */
const KEPT_CORE = ['nickName', 'profileUrl', 'userType', 'preferredLanguage', 'timezone', 'ims', 'photos', 'addresses', 'entitlements', 'roles', 'x509Certificates'] as const;
const KEPT_NAME = ['middleName', 'honorificPrefix', 'honorificSuffix'] as const;
const KEPT_ENTERPRISE = ['costCenter', 'organization', 'division'] as const;

const MAX_MULTI_VALUES = 100;

// ---------------------------------------------------------------------------------------------
// What OneID keeps in users.scim_attributes

export interface ScimExtras {
  /** userName as sent, when it is not already folded; returned while it still folds to username. */
  userName?: string;
  /** locale as sent, when OneID normalised it (en_US -> en-US); returned while it still matches. */
  locale?: string;
  /** The locale column value derived from preferredLanguage; not returned as locale. */
  derivedLocale?: string;
  /**
   * name.formatted set explicitly, and the name parts it was set for (basis); returned while the
   * parts are unchanged. Rows written before parts were the basis hold display_name as a string.
   */
  formatted?: { value: string; basis: NameParts | string | null };
  name?: Record<string, string>;
  phoneNumbers?: Record<string, unknown>[];
  core?: Record<string, unknown>;
  enterprise?: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Rendering

export interface ScimUserRecord {
  user: User;
  /** The primary department. */
  department: { id: string; name: string; path: string } | null;
  manager: { id: string; display: string } | null;
  groups: { id: string; name: string }[];
}

const iso = (d: Date): string => new Date(d).toISOString();

/** The parts name.formatted is made of, in the order it shows them. */
const NAME_PARTS = ['honorificPrefix', 'givenName', 'middleName', 'familyName', 'honorificSuffix'] as const;
export type NameParts = Partial<Record<(typeof NAME_PARTS)[number], string>>;

function nameParts(get: (part: (typeof NAME_PARTS)[number]) => unknown): NameParts {
  const parts: NameParts = {};
  for (const k of NAME_PARTS) {
    const v = get(k);
    if (typeof v === 'string' && v.trim() !== '') parts[k] = v.trim();
  }
  return parts;
}

const joinParts = (parts: NameParts): string | null => NAME_PARTS.map((k) => parts[k]).filter(Boolean).join(' ') || null;

function storedParts(u: User): NameParts {
  const kept = (u.scimAttributes as ScimExtras).name ?? {};
  return nameParts((k) => (k === 'givenName' ? u.givenName : k === 'familyName' ? u.familyName : kept[k]));
}

/** The explicit formatted still in force: set for the current parts (or, as first stored, for the current display_name). */
function explicitFormatted(u: User, parts: NameParts): string | undefined {
  const f = (u.scimAttributes as ScimExtras).formatted;
  if (!f || typeof f.value !== 'string') return undefined;
  const valid = f.basis !== null && typeof f.basis === 'object' ? sameJson(f.basis, parts) : f.basis === u.displayName;
  return valid ? f.value : undefined;
}

/** name.formatted as rendered: the explicit value, else the parts, else display_name. */
function renderedFormatted(u: User): string | null {
  const parts = storedParts(u);
  return explicitFormatted(u, parts) ?? joinParts(parts) ?? u.displayName;
}

export function userLocation(baseUrl: string, id: string): string {
  return `${baseUrl}/Users/${id}`;
}

/** The full SCIM representation (before attributes/excludedAttributes). */
export function renderUser(rec: ScimUserRecord, baseUrl: string): Record<string, unknown> {
  const u = rec.user;
  const x = u.scimAttributes as ScimExtras;
  const out: Record<string, unknown> = { schemas: [CORE_URN], id: u.id };
  if (u.externalId !== null) out.externalId = u.externalId;
  out.userName = typeof x.userName === 'string' && foldName(x.userName) === u.username ? x.userName : u.username;

  const name: Record<string, unknown> = {};
  const formatted = renderedFormatted(u);
  if (formatted !== null) name.formatted = formatted;
  if (u.familyName !== null) name.familyName = u.familyName;
  if (u.givenName !== null) name.givenName = u.givenName;
  for (const k of KEPT_NAME) if (x.name?.[k] !== undefined) name[k] = x.name[k];
  if (Object.keys(name).length) out.name = name;
  if (u.displayName !== null) out.displayName = u.displayName;

  const core = x.core ?? {};
  if (core.nickName !== undefined) out.nickName = core.nickName;
  if (core.profileUrl !== undefined) out.profileUrl = core.profileUrl;
  if (u.title !== null) out.title = u.title;
  if (core.userType !== undefined) out.userType = core.userType;
  if (core.preferredLanguage !== undefined) out.preferredLanguage = core.preferredLanguage;
  if (u.locale !== null && u.locale !== x.derivedLocale) {
    out.locale = typeof x.locale === 'string' && normaliseLocale(x.locale) === u.locale ? x.locale : u.locale;
  }
  if (core.timezone !== undefined) out.timezone = core.timezone;
  out.active = u.status === 'active';
  if (u.emails.length) out.emails = u.emails.map((e) => ({ ...e }));

  const phones = Array.isArray(x.phoneNumbers) ? x.phoneNumbers : undefined;
  if (phones && chosenValue(phones) === u.phone && u.phone !== null) out.phoneNumbers = phones;
  else if (u.phone !== null) out.phoneNumbers = [{ value: u.phone, primary: true }];

  for (const k of ['ims', 'photos', 'addresses'] as const) if (core[k] !== undefined) out[k] = core[k];
  if (rec.groups.length) {
    out.groups = rec.groups.map((g) => ({ value: g.id, $ref: `${baseUrl}/Groups/${g.id}`, display: g.name, type: 'direct' }));
  }
  for (const k of ['entitlements', 'roles', 'x509Certificates'] as const) if (core[k] !== undefined) out[k] = core[k];

  const ent: Record<string, unknown> = {};
  if (u.employeeNumber !== null) ent.employeeNumber = u.employeeNumber;
  for (const k of KEPT_ENTERPRISE) if (x.enterprise?.[k] !== undefined) ent[k] = x.enterprise[k];
  if (rec.department) ent.department = rec.department.name;
  if (rec.manager) ent.manager = { value: rec.manager.id, $ref: userLocation(baseUrl, rec.manager.id), displayName: rec.manager.display };
  if (Object.keys(ent).length) {
    out.schemas = [CORE_URN, ENT_URN];
    out[ENT_URN] = ent;
  }

  out.meta = {
    resourceType: 'User',
    created: iso(u.createdAt),
    lastModified: iso(u.updatedAt),
    location: userLocation(baseUrl, u.id),
    version: `W/"${u.version}"`,
  };
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading a resource sent by a client

const invalid = (detail: string): never => { throw new ScimError(400, detail, 'invalidValue'); };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function scalar(def: AttrDef, value: unknown, where: string): string | boolean {
  if (def.type === 'boolean') {
    if (typeof value === 'boolean') return value;
    // Microsoft Entra ID sends "True" / "False".
    if (typeof value === 'string' && /^\s*(true|false)\s*$/i.test(value)) return value.trim().toLowerCase() === 'true';
    return invalid(`${where} must be true or false`);
  }
  if (typeof value !== 'string') return invalid(`${where} must be a string`);
  return value;
}

function complexValue(def: AttrDef, value: unknown, where: string): Record<string, unknown> | undefined {
  // Entra sends the enterprise manager as a bare id: treat "x" as {"value": "x"}.
  if (typeof value === 'string' && def.sub?.value && !def.multi) value = { value };
  if (!isObject(value)) return invalid(`${where} must be an object`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const sub = def.sub![key.toLowerCase()];
    if (!sub || v === null || v === undefined || sub.readOnly) continue;
    out[sub.name] = scalar(sub, v, `${where}.${sub.name}`);
  }
  return Object.keys(out).length ? out : undefined;
}

function attributeValue(def: AttrDef, value: unknown, where: string): unknown {
  if (def.type !== 'complex') return scalar(def, value, where);
  if (!def.multi) return complexValue(def, value, where);
  if (!Array.isArray(value)) return invalid(`${where} must be an array`);
  if (value.length > MAX_MULTI_VALUES) return invalid(`${where} has more than ${MAX_MULTI_VALUES} values`);
  const list = value.map((v, i) => complexValue(def, v, `${where}[${i}]`)).filter((v): v is Record<string, unknown> => v !== undefined);
  return list.length ? list : undefined;
}

/** Canonical-cased attributes of one schema: unknown names dropped, nulls dropped, types checked. */
function readAttributes(source: Record<string, unknown>, defs: Record<string, AttrDef>, prefix: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    const def = defs[key.toLowerCase()];
    if (!def || value === null || value === undefined) continue;
    if (def.readOnly && def.name !== 'id') continue; // readOnly values are ignored (RFC 7643 2.2)
    const v = attributeValue(def, value, `${prefix}${def.name}`);
    if (v !== undefined) out[def.name] = v;
  }
  return out;
}

/**
 * Validates a User resource (POST, PUT, or the result of a PATCH) and returns its attributes with
 * canonical names: `core` (core schema) and `enterprise` (the extension). Refuses with 400:
 * not an object or no core schema in `schemas` (invalidSyntax); an extension attribute block
 * whose schema is missing from `schemas` (invalidSyntax); an unsupported extension
 * (invalidValue); a value of the wrong type (invalidValue).
 */
export function readUserResource(body: unknown): { core: Record<string, unknown>; enterprise: Record<string, unknown> } {
  if (!isObject(body)) throw new ScimError(400, 'the body must be a JSON object (a SCIM User)', 'invalidSyntax');
  const schemasKey = Object.keys(body).find((k) => k.toLowerCase() === 'schemas');
  const schemas = schemasKey ? body[schemasKey] : undefined;
  if (!Array.isArray(schemas) || !schemas.every((s) => typeof s === 'string')) {
    throw new ScimError(400, `schemas is required: a list of schema URNs that includes ${CORE_URN}`, 'invalidSyntax');
  }
  const listed = new Set(schemas.map((s) => (s as string).toLowerCase()));
  if (!listed.has(CORE_LOWER)) throw new ScimError(400, `schemas must include ${CORE_URN}`, 'invalidSyntax');

  const coreSource: Record<string, unknown> = {};
  const entSource: Record<string, unknown> = {};
  let entBlock = false;
  for (const [key, value] of Object.entries(body)) {
    const lower = key.toLowerCase();
    if (lower === 'schemas') continue;
    if (lower === ENT_LOWER) {
      entBlock = true;
      if (value === null || value === undefined) continue;
      if (!isObject(value)) invalid(`${ENT_URN} must be an object`);
      Object.assign(entSource, value);
    } else if (lower.startsWith(`${ENT_LOWER}:`)) {
      entBlock = true;
      entSource[key.slice(ENT_URN.length + 1)] = value;
    } else if (lower.startsWith(`${CORE_LOWER}:`)) {
      coreSource[key.slice(CORE_URN.length + 1)] = value;
    } else if (lower.startsWith('urn:')) {
      invalid(`the schema extension ${JSON.stringify(key.slice(0, 200))} is not supported (supported: ${ENT_URN})`);
    } else {
      coreSource[key] = value;
    }
  }
  if (entBlock && !listed.has(ENT_LOWER)) {
    throw new ScimError(400, `the body has ${ENT_URN} attributes, so schemas must list ${ENT_URN}`, 'invalidSyntax');
  }
  return { core: readAttributes(coreSource, CORE_USER_ATTRIBUTES, ''), enterprise: readAttributes(entSource, ENTERPRISE_USER_ATTRIBUTES, `${ENT_URN}:`) };
}

// ---------------------------------------------------------------------------------------------
// From a resource to what OneID stores

export interface DesiredUser {
  /** id as sent (PUT checks it against the URL). */
  id?: string;
  userName: string;
  externalId: string | null;
  displayName: string | null;
  givenName: string | null;
  familyName: string | null;
  title: string | null;
  locale: string | null;
  employeeNumber: string | null;
  phone: string | null;
  emails: UserEmail[];
  /** undefined: not stated (PUT leaves the status as it is). */
  active?: boolean;
  password?: string;
  /** Name of the primary department, or null for none. */
  department: string | null;
  /** manager.value as sent, or null. */
  manager: string | null;
  extras: ScimExtras;
}

const BCP47 = /^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/;

/** en_US -> en-US; anything else unchanged (the directory validates the result). */
export function normaliseLocale(value: string): string {
  return value.trim().replace(/_/g, '-');
}

/** The first language of an Accept-Language style preferredLanguage ("en-US,en;q=0.9" -> en-US). */
function localeFromPreferredLanguage(value: string): string | null {
  const first = normaliseLocale(value.split(',')[0]!.split(';')[0]!);
  return BCP47.test(first) ? first : null;
}

function chosenValue(list: Record<string, unknown>[]): string | null {
  const chosen = list.find((e) => e.primary === true) ?? list[0];
  return typeof chosen?.value === 'string' ? chosen.value.trim() || null : null;
}

const optional = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim() : null);

/** What a PUT or PATCH replaces, as far as name.formatted is concerned (see currentName). */
export interface CurrentName { formatted: string | null; explicit: boolean; parts: NameParts }

/** The user's name.formatted as OneID shows it, whether it was set explicitly, and its parts. */
export function currentName(u: User): CurrentName {
  const parts = storedParts(u);
  return { formatted: renderedFormatted(u), explicit: explicitFormatted(u, parts) !== undefined, parts };
}

/** Whether the stored display name is the one OneID derives from the name parts (equal to them). */
export function displayNameFromParts(u: User): boolean {
  return u.displayName !== null && u.displayName === joinParts(storedParts(u));
}

/**
 * `displayNameFollowsParts`: the displayName in `resource` is an untouched echo of one derived
 * from the parts (a PATCH that does not set it), so it follows the new parts, as name.formatted does.
 */
export function toDesiredUser(
  resource: { core: Record<string, unknown>; enterprise: Record<string, unknown> }, current?: CurrentName, { displayNameFollowsParts = false } = {},
): DesiredUser {
  const { core, enterprise } = resource;
  const userName = optional(core.userName);
  if (userName === null) invalid('userName is required');
  const name = (core.name ?? {}) as Record<string, string>;
  const givenName = optional(name.givenName);
  const familyName = optional(name.familyName);
  const parts = nameParts((k) => name[k]);
  const fromParts = joinParts(parts);
  // Explicit: a formatted that is neither what the parts give nor (on PUT/PATCH) an echo of what
  // OneID showed; an echo stays explicit only while the parts it was set for are unchanged.
  const sent = optional(name.formatted);
  const sentDisplayName = optional(core.displayName);
  const echo = current !== undefined && sent === current.formatted;
  const explicit = sent !== null && sent !== (fromParts ?? sentDisplayName)
    && (!echo || (current!.explicit && sameJson(parts, current!.parts)));
  const displayName = (displayNameFollowsParts ? fromParts : null) ?? sentDisplayName ?? (explicit ? sent : null) ?? fromParts;

  const extras: ScimExtras = {};
  if (userName !== foldName(userName!)) extras.userName = userName!;
  if (explicit) extras.formatted = { value: sent!, basis: parts };
  const nameKept: Record<string, string> = {};
  for (const k of KEPT_NAME) if (name[k] !== undefined) nameKept[k] = name[k];
  if (Object.keys(nameKept).length) extras.name = nameKept;

  let locale: string | null = null;
  const sentLocale = optional(core.locale);
  if (sentLocale !== null) {
    locale = normaliseLocale(sentLocale);
    if (locale !== sentLocale) extras.locale = sentLocale;
  } else if (typeof core.preferredLanguage === 'string') {
    locale = localeFromPreferredLanguage(core.preferredLanguage);
    if (locale !== null) extras.derivedLocale = locale;
  }

  const phoneList = core.phoneNumbers as Record<string, unknown>[] | undefined;
  if (phoneList?.some((p) => typeof p.value !== 'string' || !p.value.trim())) invalid('phoneNumbers[].value is required');
  // A single number with nothing but value (and primary) is what the phone column renders anyway.
  const plainPhone = phoneList?.length === 1 && Object.keys(phoneList[0]!).every((k) => k === 'value' || k === 'primary') && phoneList[0]!.primary !== false;
  if (phoneList && !plainPhone) extras.phoneNumbers = phoneList;

  const emailList = (core.emails ?? []) as Record<string, unknown>[];
  const emails = emailList.map((e, i): UserEmail => {
    const value = optional(e.value);
    if (value === null) return invalid(`emails[${i}].value is required`);
    const out: UserEmail = { value };
    if (typeof e.type === 'string') out.type = e.type;
    if (typeof e.display === 'string') out.display = e.display;
    if (typeof e.primary === 'boolean') out.primary = e.primary;
    return out;
  });

  const kept: Record<string, unknown> = {};
  for (const k of KEPT_CORE) if (core[k] !== undefined) kept[k] = core[k];
  if (Object.keys(kept).length) extras.core = kept;
  const entKept: Record<string, string> = {};
  for (const k of KEPT_ENTERPRISE) if (typeof enterprise[k] === 'string') entKept[k] = enterprise[k] as string;
  if (Object.keys(entKept).length) extras.enterprise = entKept;

  const desired: DesiredUser = {
    userName: userName!,
    externalId: optional(core.externalId),
    displayName,
    givenName,
    familyName,
    title: optional(core.title),
    locale,
    employeeNumber: optional(enterprise.employeeNumber),
    phone: phoneList ? chosenValue(phoneList) : null,
    emails,
    department: optional(enterprise.department),
    manager: optional((enterprise.manager as Record<string, unknown> | undefined)?.value),
    extras,
  };
  if (typeof core.id === 'string') desired.id = core.id;
  if (typeof core.active === 'boolean') desired.active = core.active;
  if (typeof core.password === 'string') desired.password = core.password;
  return desired;
}

/** Domain input for a new user. */
export function toCreateInput(d: DesiredUser, managerId: string | null): CreateUserInput {
  const input: CreateUserInput = { username: d.userName };
  if (d.emails.length) input.emails = d.emails;
  if (d.displayName !== null) input.name = d.displayName;
  if (d.givenName !== null) input.givenName = d.givenName;
  if (d.familyName !== null) input.familyName = d.familyName;
  if (d.locale !== null) input.locale = d.locale;
  if (d.phone !== null) input.phone = d.phone;
  if (d.employeeNumber !== null) input.employeeNumber = d.employeeNumber;
  if (d.title !== null) input.title = d.title;
  if (d.externalId !== null) input.externalId = d.externalId;
  if (managerId !== null) input.managerId = managerId;
  if (d.password !== undefined) input.password = d.password;
  if (d.active === false) input.status = 'suspended';
  return input;
}

/** JSON with sorted keys, for comparing stored and desired values. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

export const sameJson = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);

/**
 * The partial domain update that turns `current` into `d` (only what differs; null clears),
 * and the new scim_attributes when they differ. Status, department and password are handled
 * by the caller.
 */
export function toUpdateInput(d: DesiredUser, current: User, managerId: string | null): { input: UpdateUserInput; scimAttributes?: Record<string, unknown> } {
  const input: UpdateUserInput = {};
  if (foldName(d.userName) !== current.username) input.username = d.userName;
  if (d.displayName !== current.displayName) input.name = d.displayName;
  if (d.givenName !== current.givenName) input.givenName = d.givenName;
  if (d.familyName !== current.familyName) input.familyName = d.familyName;
  if (d.title !== current.title) input.title = d.title;
  if (d.locale !== current.locale) input.locale = d.locale;
  if (d.employeeNumber !== current.employeeNumber) input.employeeNumber = d.employeeNumber;
  if (d.externalId !== current.externalId) input.externalId = d.externalId;
  if (d.phone !== current.phone) input.phone = d.phone;
  if (managerId !== current.managerId) input.managerId = managerId;
  if (!sameJson(normaliseProvisionedEmails(d.emails), current.emails)) input.emails = d.emails;
  if (d.password !== undefined) input.password = d.password;
  const result: { input: UpdateUserInput; scimAttributes?: Record<string, unknown> } = { input };
  if (!sameJson(d.extras, current.scimAttributes)) result.scimAttributes = d.extras as Record<string, unknown>;
  return result;
}

/** Domain errors about a field name the SCIM attribute, so a client can tell what to fix. */
const FIELD_NAMES: Record<string, string> = {
  username: 'userName', name: 'displayName', givenName: 'name.givenName', familyName: 'name.familyName', email: 'emails',
  emails: 'emails', phone: 'phoneNumbers', employeeNumber: `${ENT_URN}:employeeNumber`, managerId: `${ENT_URN}:manager`,
  locale: 'locale', title: 'title', externalId: 'externalId', password: 'password',
};

export function scimFieldError(err: unknown): unknown {
  if (!(err instanceof AppError) || err.kind !== 'invalid_argument' || typeof err.details?.field !== 'string') return err;
  const field = err.details.field as string;
  const top = field.split('.')[0]!;
  const scimName = FIELD_NAMES[top];
  if (!scimName) return err;
  const message = err.message.startsWith(`${field}:`) ? `${scimName}${field.slice(top.length)}:${err.message.slice(field.length + 1)}` : err.message;
  return new ScimError(400, message, 'invalidValue');
}
