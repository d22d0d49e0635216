// A OneID person (and their roles in the app) as the SCIM User an app receives (RFC 7643 4.1 and
// the enterprise extension 4.3), the PATCH that brings an app's copy to it, and which attributes
// of an app's copy differ from it (the drift report).
//
// The defaults fit common apps. A target's attribute_mapping changes them from a small fixed set:
// keys are SCIM attributes OneID can fill, values are OneID sources, or null to leave the attribute
// out (e.g. for an app without the enterprise extension). userName's source can be changed;
// externalId (the OneID id) and active are not mappable: matching a retried create and
// deactivation depend on them.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/audit.service.ts';
import { AppError } from '../shared/errors.ts';
import type { User } from '../directory/users.repo.ts';
import type { RolesAs } from './provisioning.repo.ts';
import { SCIM_USER_SCHEMA } from './scim-client.ts';
import type { ScimPatchOperation, ScimUser, ScimUserInput } from './scim-client.ts';

export const SCIM_ENTERPRISE_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

/** Where a value comes from in OneID. `custom:<key>` reads a custom attribute (a string). */
export const MAPPING_SOURCES = ['username', 'email', 'givenName', 'familyName', 'displayName', 'title', 'employeeNumber', 'phone', 'locale', 'department', 'manager', 'externalId'] as const;
export type MappingSource = (typeof MAPPING_SOURCES)[number] | `custom:${string}`;

/** The SCIM attributes OneID fills, with their default sources (null: not sent unless mapped). */
export const DEFAULT_MAPPING: Record<string, MappingSource | null> = {
  userName: 'username',
  displayName: 'displayName',
  'name.givenName': 'givenName',
  'name.familyName': 'familyName',
  'emails.work': 'email',
  title: 'title',
  'phoneNumbers.work': null,
  locale: null,
  nickName: null,
  userType: null,
  'enterprise.employeeNumber': 'employeeNumber',
  'enterprise.department': 'department',
  'enterprise.manager': 'manager',
  'enterprise.costCenter': null,
  'enterprise.organization': null,
  'enterprise.division': null,
};

export type AttributeMapping = Record<string, MappingSource | null>;

/**
 * Checks an admin's mapping: known SCIM attributes, known sources, userName not left out, manager
 * only from the manager (it is a reference to another user of the app, not text). Throws
 * invalid_argument naming the bad entry.
 */
export function validateMapping(input: Record<string, unknown>): AttributeMapping {
  const out: AttributeMapping = {};
  for (const [attr, source] of Object.entries(input)) {
    const field = `attributeMapping.${attr}`;
    if (!(attr in DEFAULT_MAPPING)) throw new AppError('invalid_argument', 'provisioning.mapping_unknown_attribute', `${field}: not an attribute OneID can send (one of ${Object.keys(DEFAULT_MAPPING).join(', ')})`, { field });
    if (source === null) {
      if (attr === 'userName') throw new AppError('invalid_argument', 'provisioning.mapping_username_required', `${field}: userName is always sent`, { field });
      out[attr] = null;
      continue;
    }
    if (typeof source !== 'string' || !isSource(source)) throw new AppError('invalid_argument', 'provisioning.mapping_unknown_source', `${field}: not a OneID source (one of ${MAPPING_SOURCES.join(', ')}, custom:<key>, or null)`, { field });
    if ((attr === 'enterprise.manager') !== (source === 'manager')) throw new AppError('invalid_argument', 'provisioning.mapping_manager', `${field}: the manager is sent as enterprise.manager only, and only from the manager`, { field });
    out[attr] = source;
  }
  return out;
}

const isSource = (s: string): s is MappingSource => (MAPPING_SOURCES as readonly string[]).includes(s) || /^custom:[A-Za-z][A-Za-z0-9_]{0,63}$/.test(s);

/** Everything about a person the mapping may read. */
export interface PersonFacts {
  user: User;
  /** The primary department's name. */
  departmentName: string | null;
  /** The app's id for the person's manager, when the app holds the manager. */
  managerRemoteId: string | null;
  /** The person's roles in the app: key and name. */
  roles: { key: string; name: string }[];
}

function valueOf(source: MappingSource, f: PersonFacts): string | null {
  const u = f.user;
  switch (source) {
    case 'username': return u.username;
    case 'email': return u.email;
    case 'givenName': return u.givenName;
    case 'familyName': return u.familyName;
    // Apps show displayName in lists; one is always sent, as OneID labels a person.
    case 'displayName': return u.displayName || [u.givenName, u.familyName].filter(Boolean).join(' ') || u.username;
    case 'title': return u.title;
    case 'employeeNumber': return u.employeeNumber;
    case 'phone': return u.phone;
    case 'locale': return u.locale;
    case 'department': return f.departmentName;
    case 'manager': return f.managerRemoteId;
    case 'externalId': return u.externalId;
    default: {
      const v = u.customAttributes[source.slice('custom:'.length)];
      return typeof v === 'string' || typeof v === 'number' ? String(v) : null;
    }
  }
}

/** What goes out for a person: the SCIM user (without id) and, for roles_as groups, their role keys. */
export interface Representation {
  user: ScimUserInput;
  /** Role keys whose downstream group the person belongs to (roles_as 'groups'); else empty. */
  roleGroups: string[];
  /** The SCIM attributes this mapping manages (PATCH replaces or removes exactly these). */
  managed: string[];
}

const blank = (v: string | null | undefined): v is null | undefined => v === null || v === undefined || v === '';

/** The person as the app should hold them. `active` false for a deactivation. */
export function representUser(f: PersonFacts, mapping: AttributeMapping, rolesAs: RolesAs, active: boolean): Representation {
  const m = { ...DEFAULT_MAPPING, ...mapping };
  const get = (attr: string) => {
    const source = m[attr];
    if (!source) return undefined;
    const v = valueOf(source, f);
    return blank(v) ? undefined : v;
  };
  const user: Record<string, unknown> = { userName: get('userName') ?? f.user.username, externalId: f.user.id, active };
  const managed = ['userName', 'externalId', 'active'];
  for (const attr of ['displayName', 'title', 'locale', 'nickName', 'userType'] as const) {
    if (m[attr] === null || m[attr] === undefined) continue;
    managed.push(attr);
    const v = get(attr);
    if (v !== undefined) user[attr] = v;
  }
  if (m['name.givenName'] || m['name.familyName']) {
    managed.push('name');
    const name: Record<string, string> = {};
    const given = get('name.givenName');
    const family = get('name.familyName');
    if (given !== undefined) name.givenName = given;
    if (family !== undefined) name.familyName = family;
    if (Object.keys(name).length) user.name = name;
  }
  if (m['emails.work']) {
    managed.push('emails');
    const email = get('emails.work');
    if (email !== undefined) user.emails = [{ value: email, type: 'work', primary: true }];
  }
  if (m['phoneNumbers.work']) {
    managed.push('phoneNumbers');
    const phone = get('phoneNumbers.work');
    if (phone !== undefined) user.phoneNumbers = [{ value: phone, type: 'work', primary: true }];
  }
  const enterprise: Record<string, unknown> = {};
  let usesEnterprise = false;
  for (const attr of ['employeeNumber', 'department', 'costCenter', 'organization', 'division', 'manager'] as const) {
    if (!m[`enterprise.${attr}`]) continue;
    usesEnterprise = true;
    managed.push(`${SCIM_ENTERPRISE_SCHEMA}:${attr}`);
    const v = get(`enterprise.${attr}`);
    if (v !== undefined) enterprise[attr] = attr === 'manager' ? { value: v } : v;
  }
  if (usesEnterprise && Object.keys(enterprise).length) user[SCIM_ENTERPRISE_SCHEMA] = enterprise;
  user.schemas = user[SCIM_ENTERPRISE_SCHEMA] ? [SCIM_USER_SCHEMA, SCIM_ENTERPRISE_SCHEMA] : [SCIM_USER_SCHEMA];

  const roles = [...f.roles].sort((a, b) => a.key.localeCompare(b.key));
  if (rolesAs === 'roles' || rolesAs === 'entitlements') {
    managed.push(rolesAs);
    if (roles.length) user[rolesAs] = roles.map((r) => ({ value: r.key, display: r.name }));
  }
  return { user: user as unknown as ScimUserInput, roleGroups: rolesAs === 'groups' ? roles.map((r) => r.key) : [], managed };
}

/** The hash of what was pushed: the same person, mapping and roles give the same hash. */
export function representationHash(r: Representation): string {
  return createHash('sha256').update(canonicalJson({ user: r.user, roleGroups: r.roleGroups })).digest('base64url');
}

/**
 * The PATCH that makes the app's copy equal the representation for every managed attribute:
 * replace what has a value, remove what has none (RFC 7644 3.5.2.2/3.5.2.3).
 */
export function patchOperations(r: Representation): ScimPatchOperation[] {
  const body = r.user as unknown as Record<string, unknown>;
  const enterprise = (body[SCIM_ENTERPRISE_SCHEMA] ?? {}) as Record<string, unknown>;
  const ops: ScimPatchOperation[] = [];
  for (const attr of r.managed) {
    const value = attr.startsWith(`${SCIM_ENTERPRISE_SCHEMA}:`) ? enterprise[attr.slice(SCIM_ENTERPRISE_SCHEMA.length + 1)] : body[attr];
    ops.push(value === undefined ? { op: 'remove', path: attr } : { op: 'replace', path: attr, value });
  }
  return ops;
}

/** The app's copy with `active` changed (a PUT fallback for a deactivation when the person is gone from OneID). */
export function withActive(remote: ScimUser, active: boolean): ScimUserInput {
  const { id: _id, meta: _meta, ...rest } = remote;
  return { ...rest, active } as ScimUserInput;
}

const norm = (v: unknown): unknown => (typeof v === 'string' ? v.normalize('NFKC') : v);
const same = (a: unknown, b: unknown): boolean => (a === undefined || a === null || a === '' ? b === undefined || b === null || b === '' : norm(a) === norm(b));
const primaryValue = (list: unknown): unknown => {
  if (!Array.isArray(list) || !list.length) return undefined;
  const entry = (list.find((e) => (e as { primary?: unknown })?.primary === true) ?? list[0]) as { value?: unknown };
  return entry?.value;
};
const valueSet = (list: unknown): string => (Array.isArray(list) ? list.map((e) => String((e as { value?: unknown })?.value)).sort().join('\n') : '');

/**
 * The managed attributes whose value in the app's copy differs from the representation (names as
 * SCIM paths; the enterprise ones shortened to enterprise.<attr>). userName compares without case,
 * as SCIM defines it (caseExact false).
 */
export function differingAttributes(r: Representation, remote: ScimUser): string[] {
  const want = r.user as unknown as Record<string, any>;
  const have = remote as unknown as Record<string, any>;
  const out: string[] = [];
  for (const attr of r.managed) {
    if (attr.startsWith(`${SCIM_ENTERPRISE_SCHEMA}:`)) {
      const sub = attr.slice(SCIM_ENTERPRISE_SCHEMA.length + 1);
      const w = want[SCIM_ENTERPRISE_SCHEMA]?.[sub];
      const h = have[SCIM_ENTERPRISE_SCHEMA]?.[sub];
      if (!same(sub === 'manager' ? w?.value : w, sub === 'manager' ? h?.value : h)) out.push(`enterprise.${sub}`);
      continue;
    }
    switch (attr) {
      case 'userName':
        if (String(want.userName).toLowerCase() !== String(have.userName ?? '').toLowerCase()) out.push(attr);
        break;
      case 'active':
        // An app that leaves active out holds an active user (RFC 7643 leaves the default to it; apps treat absence as active).
        if (want.active !== (have.active ?? true)) out.push(attr);
        break;
      case 'name':
        if (!same(want.name?.givenName, have.name?.givenName)) out.push('name.givenName');
        if (!same(want.name?.familyName, have.name?.familyName)) out.push('name.familyName');
        break;
      case 'emails':
      case 'phoneNumbers':
        if (!same(primaryValue(want[attr]), primaryValue(have[attr]))) out.push(attr);
        break;
      case 'roles':
      case 'entitlements':
        if (valueSet(want[attr]) !== valueSet(have[attr])) out.push(attr);
        break;
      default:
        if (!same(want[attr], have[attr])) out.push(attr);
    }
  }
  return out;
}
