// SCIM Group <-> OneID group: rendering a group (and its visible members) as a SCIM resource,
// and reading the attributes a client sends in POST/PUT bodies and PATCH values.
//
// Attribute names are case-insensitive and may carry the Group schema URN. On write, unknown
// attributes are ignored (RFC 7644 section 3.3 allows it; schemas.ts says so) and so are
// read-only ones (id, meta; RFC 7644 section 3.5.1). Members are users only: `value` is the
// user's id. A member's `display` is immutable (RFC 7643 section 2.4): a client may give it when
// it adds the member (or replaces the group), and OneID keeps it as that membership's label;
// without one, `display` is the user's own name. `$ref` and anything else sent with a member are
// ignored.
import type { Group, GroupMemberView } from '../directory/groups.repo.ts';
import { SCIM_GROUP_SCHEMA } from './filter-sql.ts';
import { ScimError } from './errors.ts';
import { weakEtag } from './types.ts';

export const GROUP_RESOURCE_TYPE = 'Group';

export interface ScimMember {
  value: string;
  display: string;
  $ref: string;
  type: 'User';
}

export const groupLocation = (baseUrl: string, id: string): string => `${baseUrl}/Groups/${id}`;

/** A group as a SCIM resource. `members` undefined: not loaded (left out of the resource). */
export function renderGroup(group: Group, members: GroupMemberView[] | undefined, baseUrl: string): Record<string, unknown> {
  const resource: Record<string, unknown> = {
    schemas: [SCIM_GROUP_SCHEMA],
    id: group.id,
    ...(group.externalId !== null ? { externalId: group.externalId } : {}),
    displayName: group.name,
  };
  if (members) {
    resource.members = members.map((m): ScimMember => ({ value: m.userId, display: m.display, $ref: `${baseUrl}/Users/${m.userId}`, type: 'User' }));
  }
  resource.meta = {
    resourceType: GROUP_RESOURCE_TYPE,
    created: new Date(group.createdAt).toISOString(),
    lastModified: new Date(group.updatedAt).toISOString(),
    location: groupLocation(baseUrl, group.id),
    version: weakEtag(group.version),
  };
  return resource;
}

const GROUP_URN_PREFIX = `${SCIM_GROUP_SCHEMA.toLowerCase()}:`;

/** Lower-cased attribute name without the Group schema URN (`urn:...:Group:displayName` -> `displayname`). */
export function attributeKey(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.startsWith(GROUP_URN_PREFIX) ? lower.slice(GROUP_URN_PREFIX.length) : lower;
}

/** The object's entries keyed by attributeKey; the first spelling wins when a client repeats one. */
export function attributesOf(obj: Record<string, unknown>): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(obj)) {
    const key = attributeKey(k);
    if (!out.has(key)) out.set(key, v);
  }
  return out;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const show = (v: unknown): string => {
  const text = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}...` : text);
};

/** `schemas` must list the Group schema (and nothing this server does not know for groups). */
export function assertGroupSchemas(body: Record<string, unknown>): void {
  const schemas = attributesOf(body).get('schemas');
  if (!Array.isArray(schemas) || !schemas.every((s) => typeof s === 'string')) {
    throw new ScimError(400, `schemas: a Group must list "${SCIM_GROUP_SCHEMA}" in "schemas"`, 'invalidSyntax');
  }
  const lower = schemas.map((s) => s.toLowerCase());
  if (!lower.includes(SCIM_GROUP_SCHEMA.toLowerCase())) {
    throw new ScimError(400, `schemas: a Group must list "${SCIM_GROUP_SCHEMA}" in "schemas"`, 'invalidSyntax');
  }
  const other = schemas.find((s) => s.toLowerCase() !== SCIM_GROUP_SCHEMA.toLowerCase());
  if (other !== undefined) throw new ScimError(400, `schemas: ${show(other)} is not a schema of the Group resource (it has no extensions)`, 'invalidValue');
}

export function readDisplayName(value: unknown, where = 'displayName'): string {
  if (typeof value !== 'string') throw new ScimError(400, `${where}: must be a string`, 'invalidValue');
  if (value.trim() === '') throw new ScimError(400, `${where}: must not be empty`, 'invalidValue');
  return value;
}

/** externalId: a string; null (or absent on PUT) clears it. */
export function readExternalId(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new ScimError(400, 'externalId: must be a string', 'invalidValue');
  return value.trim() === '' ? null : value;
}

/** Member references read from a request: user ids, and the labels given for some of them. */
export interface MemberRefs {
  ids: string[];
  /** members[].display (or displayName, as Microsoft's reference client sends it), by lower-cased user id. */
  labels: Map<string, string>;
}

const MAX_LABEL_LENGTH = 256;

/**
 * Member references: a list of objects with a string `value` (the user's id). A single object is
 * read as a list of one, and a bare string as a member's `value` (Microsoft's reference client
 * sends `"value": "string id 1"`). A `type` other than User is refused: OneID groups hold users,
 * not groups.
 */
export function readMembers(value: unknown, where = 'members'): MemberRefs {
  const list = isObject(value) || typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) {
    throw new ScimError(400, `${where}: must be a list of members such as [{"value": "<user id>"}], not ${show(value)}`, 'invalidValue');
  }
  const refs: MemberRefs = { ids: [], labels: new Map() };
  list.forEach((item, i) => {
    if (typeof item === 'string') {
      if (item.trim() === '') throw new ScimError(400, `${where}[${i}]: a member's user id must not be empty`, 'invalidValue');
      refs.ids.push(item.trim());
      return;
    }
    if (!isObject(item)) throw new ScimError(400, `${where}[${i}]: must be an object such as {"value": "<user id>"}, not ${show(item)}`, 'invalidValue');
    const attrs = attributesOf(item);
    const id = attrs.get('value');
    if (typeof id !== 'string' || id.trim() === '') throw new ScimError(400, `${where}[${i}].value: the member's user id is required`, 'invalidValue');
    const type = attrs.get('type');
    if (type !== undefined && type !== null && (typeof type !== 'string' || type.toLowerCase() !== 'user')) {
      throw new ScimError(400, `${where}[${i}].type: OneID groups contain users only, not ${show(type)}`, 'invalidValue');
    }
    const label = attrs.get('display') ?? attrs.get('displayname');
    if (label !== undefined && label !== null) {
      if (typeof label !== 'string') throw new ScimError(400, `${where}[${i}].display: must be a string`, 'invalidValue');
      if (label.length > MAX_LABEL_LENGTH) throw new ScimError(400, `${where}[${i}].display: must be at most ${MAX_LABEL_LENGTH} characters`, 'invalidValue');
      if (label.trim() !== '') refs.labels.set(id.trim().toLowerCase(), label.trim());
    }
    refs.ids.push(id.trim());
  });
  return refs;
}

export interface GroupBody {
  displayName: string;
  externalId: string | null;
  members: MemberRefs;
}

/** A full Group from a POST or PUT body (PUT: absent externalId and members mean "none"). */
export function readGroupBody(body: unknown): GroupBody {
  if (!isObject(body)) throw new ScimError(400, 'the request body must be a JSON object (a SCIM Group)', 'invalidSyntax');
  assertGroupSchemas(body);
  const attrs = attributesOf(body);
  if (attrs.get('displayname') === undefined || attrs.get('displayname') === null) throw new ScimError(400, 'displayName: is required', 'invalidValue');
  const members = attrs.get('members');
  return {
    displayName: readDisplayName(attrs.get('displayname')),
    externalId: readExternalId(attrs.get('externalid')),
    members: members === undefined || members === null ? { ids: [], labels: new Map() } : readMembers(members),
  };
}

/**
 * Does the response need `members`? Only if the client did not leave them out: with
 * `excludedAttributes=members`, or with `attributes` that do not name them, members are not
 * loaded at all (Entra lists groups this way).
 */
export function membersRequested(attributes: string[] | undefined, excluded: string[] | undefined): boolean {
  const names = (list: string[]) => list.map((a) => attributeKey(a).replace(/\[.*$/s, '').split('.')[0]);
  if (attributes) return names(attributes).includes('members');
  if (excluded) return !excluded.some((a) => attributeKey(a) === 'members');
  return true;
}
