// The attributes an assertion carries: fields of the person from the directory and their access
// in this app from access/ (the same groups and roles OIDC's claims carry), under the names the
// admin mapped for the app. With no mapping, plain names: email, displayName, groups, roles.
import type { User } from '../directory/users.repo.ts';
import type { AttributeSource, SamlAttributeMapping } from '../apps/saml-providers.repo.ts';
import { ATTRNAME_FORMAT } from './constants.ts';

export const DEFAULT_ATTRIBUTE_MAPPING: readonly SamlAttributeMapping[] = [
  { name: 'email', source: 'email' },
  { name: 'displayName', source: 'displayName' },
  { name: 'groups', source: 'groups' },
  { name: 'roles', source: 'roles' },
];

export interface AttributeValues {
  name: string;
  /** A NameFormat URN. */
  nameFormat: string;
  friendlyName?: string;
  values: string[];
}

export interface AccessFacts {
  /** The person's role keys in this app. */
  roles: string[];
  /** Names of the person's groups (read only when a mapping asks for them). */
  groups?: string[];
}

export const mappingOf = (mapping: readonly SamlAttributeMapping[] | null): readonly SamlAttributeMapping[] => mapping ?? DEFAULT_ATTRIBUTE_MAPPING;

/** Whether the app's attributes include the person's groups (a statement more per sign-in). */
export const wantsGroups = (mapping: readonly SamlAttributeMapping[] | null): boolean => mappingOf(mapping).some((m) => m.source === 'groups');

function valuesOf(source: AttributeSource, user: User, access: AccessFacts): string[] {
  const one = (v: string | null | undefined): string[] => (v ? [v] : []);
  switch (source) {
    case 'id': return [user.id];
    case 'username': return [user.username];
    case 'email': return one(user.email);
    case 'displayName': return one(user.displayName ?? ([user.givenName, user.familyName].filter(Boolean).join(' ') || user.username));
    case 'givenName': return one(user.givenName);
    case 'familyName': return one(user.familyName);
    case 'groups': return access.groups ?? [];
    case 'roles': return access.roles;
    case 'employeeNumber': return one(user.employeeNumber);
    case 'title': return one(user.title);
    case 'phone': return one(user.phone);
    case 'locale': return one(user.locale);
    default: return [];
  }
}

/** The attributes for this person in this app; one with no value (no email, no roles) is left out. */
export function attributesFor(user: User, access: AccessFacts, mapping: readonly SamlAttributeMapping[] | null): AttributeValues[] {
  const out: AttributeValues[] = [];
  for (const m of mappingOf(mapping)) {
    const values = valuesOf(m.source, user, access);
    if (!values.length) continue;
    out.push({ name: m.name, nameFormat: ATTRNAME_FORMAT[m.nameFormat ?? 'basic'], ...(m.friendlyName ? { friendlyName: m.friendlyName } : {}), values });
  }
  return out;
}
