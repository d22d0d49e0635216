// SCIM Groups (RFC 7643 section 4.2, RFC 7644 section 3): reads (get, list/search with filter,
// sort, paging and attribute selection, all in SQL) and writes (create, replace, patch, remove)
// shared by the HTTP routes and /Bulk. Writes go through GroupsService, so validation, audit
// events (with the SCIM client as actor) and version bumps are the admin API's.
//
// PATCH (RFC 7644 section 3.5.2) is interpreted here, not by running a generic patch library over
// the whole resource: member operations become set-based steps (add these ids, remove these,
// make the set exactly these, remove all) that touch only the changed membership rows, so a
// change to a 50,000-member group never loads or rewrites its member list. All operations of one
// request run in one transaction: any failure writes nothing.
//
// Forms accepted (op names case-insensitive, as Entra sends `Add`/`Remove`/`Replace`):
//   add     path "members"                 value [{value}]      add these users
//   remove  path "members[value eq "id"]"                        remove matching members (any filter on value/type/display)
//   remove  path "members"  value [{value}]                      remove these users (Entra)
//   remove  path "members"                                       remove every member
//   replace path "members"  value [{value}]                      make the member set exactly this
//   add/replace path "displayName" | "externalId" with a value; remove path "externalId"
//   add/replace without path, value {displayName, externalId, members}   (Okta sends its id too: ignored)
//
// Members are users who are not deprovisioned. Groups are global, but a department-scoped token
// sees (as members) and may add or remove only users of its subtree: others are answered as
// unknown users, and its set-wide steps (PUT, replace, remove all) leave members outside its
// subtree where they are, consistent with what it sees. Known gap: a members[value eq "id"]
// list filter is evaluated over all membership rows (index-friendly), so it also matches a
// group through a deprovisioned or out-of-scope member that the response does not show.
// Member ids that name no user the client may see (not provisioned yet, deprovisioned, outside
// its scope, or no id at all) are skipped on add/replace/create, and the audit log records them
// (group.members_ignored); the rest of the request applies. Removing someone who is not a member
// is a no-op, as adding a member twice is: provisioning clients retry, and both are idempotent.
//
// The group itself is shared by every department, so a scoped token may delete it, or change its
// own attributes (displayName, externalId: a PUT or PATCH whose values differ from the stored
// ones), only when every member is from its subtree: a member (of any status) with no department
// in the subtree makes that a 403, and nothing is written. A group whose members are all in the
// subtree, and an empty group, are the token's to rename or delete (an empty group affects nobody
// outside it; clients empty a group before deleting it). Member changes within the subtree, and a
// PUT that repeats the stored displayName and externalId, are allowed on any group. See
// guardScopedGroupWrite for how this stays true under concurrent member adds.
import type { Knex } from 'knex';
import type { ScimDeps } from './index.ts';
import { AppError } from '../shared/errors.ts';
import { GroupsService, type GroupChange } from '../directory/groups.service.ts';
import { subtreePattern } from '../directory/departments.repo.ts';
import { findGroupById, findMembersOfGroups, toGroup, type DbGroupRow, type Group } from '../directory/groups.repo.ts';
import { isUuid, USER_LABEL_SQL } from '../directory/users.repo.ts';
import { ScimError } from './errors.ts';
import { parseAttrPath, parseScimFilter, ScimFilterError, type AttrPath, type ScimFilter } from './filter.ts';
import { applyScimFilter, compileScimFilter, GROUP_FILTER_MAPPING, SCIM_GROUP_SCHEMA, type ScimResourceMapping } from './filter-sql.ts';
import { parseAttributeList, projectResource } from './projection.ts';
import { filterParam } from './scim-list.ts';
import { LIST_RESPONSE_SCHEMA, PATCH_OP_SCHEMA, SCIM_LIMITS, SEARCH_REQUEST_SCHEMA } from './schemas.ts';
import { parseEtagList, weakEtag, type ScimRequestContext, type ScimResourceOps, type ScimResult } from './types.ts';
import { recordingRefusals } from './refusals.ts';
import {
  attributeKey, attributesOf, groupLocation, isObject, membersRequested, readDisplayName, readExternalId, readGroupBody, readMembers, renderGroup,
} from './groups.mapper.ts';

const FILTER_OPTIONS = { allowUnquotedValues: true };

// -- errors ------------------------------------------------------------------------------------

/** Domain errors in SCIM terms: the domain says `name`, SCIM says `displayName`. */
export function toScimGroupError(err: unknown, id?: string): unknown {
  if (!(err instanceof AppError) || err instanceof ScimFilterError) return err;
  switch (err.code) {
    case 'group.not_found': return new ScimError(404, id ? `no group with id ${JSON.stringify(id)}` : 'no such group');
    case 'group.name_taken': return new ScimError(409, 'displayName: a group with this displayName already exists (compared case-insensitively)', 'uniqueness');
    case 'group.version_mismatch': return new ScimError(412, `If-Match: ${err.message}`);
    case 'request.invalid':
      if (err.details?.field === 'name') return new ScimError(400, err.message.replace(/^name:/, 'displayName:'), 'invalidValue');
      return new ScimError(400, err.message, 'invalidValue');
    default: return err;
  }
}

async function mapErrors<T>(id: string | undefined, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toScimGroupError(err, id);
  }
}

const notFound = (id: string) => new ScimError(404, `no group with id ${JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}...` : id)}`);

/** If-Match as versions for the domain; undefined: no precondition (absent or `*`). */
function expectedVersions(ifMatch: string | undefined): number[] | undefined {
  const parsed = parseEtagList(ifMatch);
  if (!parsed || parsed.any) return undefined;
  return parsed.versions;
}

// -- reads -------------------------------------------------------------------------------------

export interface ScimListParams {
  filter?: string;
  sortBy?: string;
  sortOrder?: string;
  startIndex?: number;
  count?: number;
  attributes?: string[];
  excludedAttributes?: string[];
}

const SORT_COLUMNS: Record<string, string> = {
  id: 'g.id',
  displayname: 'lower(g.name)',
  externalid: 'g.external_id',
  'meta.created': 'g.created_at',
  'meta.lastmodified': 'g.updated_at',
};

function integer(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*[+-]?\d{1,15}\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new ScimError(400, `${name}: must be an integer`, 'invalidValue');
  return n;
}

const single = (value: unknown, name: string): string | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ScimError(400, `${name}: must be given once, as a string`, 'invalidValue');
  return value;
};

/** List parameters from a query string (GET) or a SearchRequest body (POST /.search). */
export function readListParams(source: Record<string, unknown>): ScimListParams {
  const params: ScimListParams = {};
  const filter = filterParam(source.filter);
  if (filter !== undefined && filter.trim() !== '') params.filter = filter;
  const sortBy = single(source.sortBy, 'sortBy');
  if (sortBy !== undefined && sortBy.trim() !== '') params.sortBy = sortBy;
  const sortOrder = single(source.sortOrder, 'sortOrder');
  if (sortOrder !== undefined && sortOrder.trim() !== '') params.sortOrder = sortOrder;
  const startIndex = integer(source.startIndex, 'startIndex');
  if (startIndex !== undefined) params.startIndex = startIndex;
  const count = integer(source.count, 'count');
  if (count !== undefined) params.count = count;
  const attributes = parseAttributeList(source.attributes, 'attributes');
  if (attributes) params.attributes = attributes;
  const excluded = parseAttributeList(source.excludedAttributes, 'excludedAttributes');
  if (excluded) params.excludedAttributes = excluded;
  return params;
}

/** A SearchRequest body (RFC 7644 section 3.4.3). */
export function readSearchRequest(body: unknown): ScimListParams {
  if (!isObject(body)) throw new ScimError(400, 'the request body must be a JSON object (a SearchRequest)', 'invalidSyntax');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === SEARCH_REQUEST_SCHEMA.toLowerCase())) {
    throw new ScimError(400, `schemas: a search must list "${SEARCH_REQUEST_SCHEMA}"`, 'invalidSyntax');
  }
  const known = new Map(['filter', 'sortBy', 'sortOrder', 'startIndex', 'count', 'attributes', 'excludedAttributes'].map((k) => [k.toLowerCase(), k]));
  const source: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    const name = known.get(k.toLowerCase());
    if (name) source[name] = v;
  }
  return readListParams(source);
}

export interface ScimGroupReader {
  get(id: string, rc: ScimRequestContext, attributes?: string[], excluded?: string[]): Promise<{ group: Group; body: Record<string, unknown> }>;
  list(params: ScimListParams, rc: ScimRequestContext): Promise<Record<string, unknown>>;
}

export function createScimGroupReader(deps: ScimDeps): ScimGroupReader {
  const db = deps.services.db;
  return {
    async get(id, rc, attributes, excluded) {
      const group = await findGroupById(db, id);
      if (!group) throw notFound(id);
      const members = membersRequested(attributes, excluded) ? await findMembersOfGroups(db, [group.id], rc.client.departmentPath) : undefined;
      return { group, body: projectResource(renderGroup(group, members, rc.baseUrl), SCIM_GROUP_SCHEMA, attributes, excluded) };
    },

    async list(params, rc) {
      const startIndex = Math.max(1, params.startIndex ?? 1);
      const count = Math.min(SCIM_LIMITS.maxResults, Math.max(0, params.count ?? SCIM_LIMITS.defaultCount));
      const filter = params.filter !== undefined ? parseScimFilter(params.filter, FILTER_OPTIONS) : undefined;
      const base = (q: Knex.QueryBuilder) => (filter ? applyScimFilter(q, filter, GROUP_FILTER_MAPPING, 'g') : q);
      // Validate sorting before touching the database, so a bad sortBy is a 400 even with count=0.
      let order: string[] = ['g.created_at asc', 'g.id asc'];
      if (params.sortBy !== undefined) {
        const column = SORT_COLUMNS[attributeKey(params.sortBy)];
        if (!column) throw new ScimError(400, `sortBy: cannot sort groups by ${JSON.stringify(params.sortBy.slice(0, 100))}; use id, displayName, externalId, meta.created or meta.lastModified`, 'invalidValue');
        const dir = (params.sortOrder ?? 'ascending').toLowerCase();
        if (dir !== 'ascending' && dir !== 'descending') throw new ScimError(400, 'sortOrder: must be "ascending" or "descending"', 'invalidValue');
        const sql = dir === 'ascending' ? 'asc' : 'desc';
        order = [`${column} ${sql} nulls last`, `g.id ${sql}`];
      } else if (params.sortOrder !== undefined && !['ascending', 'descending'].includes(params.sortOrder.toLowerCase())) {
        throw new ScimError(400, 'sortOrder: must be "ascending" or "descending"', 'invalidValue');
      }
      const [{ total }] = await base(db('groups as g')).count<{ total: number }[]>({ total: '*' }) as [{ total: number }];
      let groups: Group[] = [];
      if (count > 0) {
        const rows: DbGroupRow[] = await base(db('groups as g').select('g.*')).orderByRaw(order.join(', ')).offset(startIndex - 1).limit(count);
        groups = rows.map(toGroup);
      }
      const withMembers = membersRequested(params.attributes, params.excludedAttributes);
      const members = withMembers ? await findMembersOfGroups(db, groups.map((g) => g.id), rc.client.departmentPath) : [];
      const byGroup = new Map<string, typeof members>();
      for (const m of members) {
        const list = byGroup.get(m.groupId);
        if (list) list.push(m);
        else byGroup.set(m.groupId, [m]);
      }
      const resources = groups.map((g) => projectResource(
        renderGroup(g, withMembers ? byGroup.get(g.id) ?? [] : undefined, rc.baseUrl), SCIM_GROUP_SCHEMA, params.attributes, params.excludedAttributes,
      ));
      return { schemas: [LIST_RESPONSE_SCHEMA], totalResults: Number(total), startIndex, itemsPerPage: resources.length, Resources: resources };
    },
  };
}

// -- PATCH ---------------------------------------------------------------------------------------

/** Filters inside `members[...]`: the member's user id, its type (always User) and display name. */
const MEMBER_FILTER_MAPPING: ScimResourceMapping = {
  coreSchema: SCIM_GROUP_SCHEMA,
  attributes: {
    value: { type: 'string', caseExact: true, column: 'user_id', uuid: true },
    type: { type: 'string', caseExact: false, sql: "'User'" },
    display: {
      type: 'string', caseExact: false,
      sql: `coalesce(nullif({alias}.display_label, ''), (select ${USER_LABEL_SQL('mu')} from users mu where mu.id = {alias}.user_id))`,
    },
  },
};

/** `value eq "a" or value eq "b"`: the ids, so that unknown ones can be told apart; else undefined. */
function valueEqualityIds(f: ScimFilter): string[] | undefined {
  if (f.type === 'compare' && f.op === 'eq' && f.path.uri === undefined && f.path.subAttr === undefined
    && f.path.name.toLowerCase() === 'value' && typeof f.value === 'string') return [f.value];
  if (f.type === 'or') {
    const ids: string[] = [];
    for (const x of f.filters) {
      const got = valueEqualityIds(x);
      if (!got) return undefined;
      ids.push(...got);
    }
    return ids;
  }
  return undefined;
}

interface PatchPath { attr: string; filter?: ScimFilter; subAttr?: string; text: string }

function parsePatchPath(raw: unknown, index: number): PatchPath | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const where = `Operations[${index}].path`;
  if (typeof raw !== 'string') throw new ScimError(400, `${where}: must be a string`, 'invalidPath');
  if (raw.length > 4096) throw new ScimError(400, `${where}: is too long`, 'invalidPath');
  const text = raw.trim();
  const open = text.indexOf('[');
  let attrText = text;
  let filter: ScimFilter | undefined;
  let after = '';
  if (open >= 0) {
    const close = text.lastIndexOf(']');
    if (close < open) throw new ScimError(400, `${where}: ${JSON.stringify(text.slice(0, 100))} has "[" without a matching "]"`, 'invalidPath');
    attrText = text.slice(0, open).trim();
    try {
      filter = parseScimFilter(text.slice(open + 1, close), FILTER_OPTIONS);
    } catch (err) {
      if (err instanceof ScimFilterError) throw new ScimError(400, `${where}: ${err.detail}`, 'invalidPath');
      throw err;
    }
    after = text.slice(close + 1).trim();
    if (after !== '' && !/^\.[A-Za-z$][\w$-]*$/.test(after)) throw new ScimError(400, `${where}: unexpected ${JSON.stringify(after.slice(0, 50))} after "]"`, 'invalidPath');
  }
  let path: AttrPath;
  try {
    path = parseAttrPath(attrText);
  } catch {
    throw new ScimError(400, `${where}: ${JSON.stringify(text.slice(0, 100))} is not a valid attribute path`, 'invalidPath');
  }
  if (path.uri !== undefined && path.uri.toLowerCase() !== SCIM_GROUP_SCHEMA.toLowerCase()) {
    throw new ScimError(400, `${where}: ${JSON.stringify(path.uri.slice(0, 100))} is not a schema of the Group resource`, 'invalidPath');
  }
  if (filter && path.subAttr !== undefined) throw new ScimError(400, `${where}: ${JSON.stringify(text.slice(0, 100))} is not a valid attribute path`, 'invalidPath');
  const subAttr = path.subAttr ?? (after ? after.slice(1) : undefined);
  return { attr: path.name.toLowerCase(), ...(filter ? { filter } : {}), ...(subAttr !== undefined ? { subAttr } : {}), text };
}

const READ_ONLY = new Set(['id', 'meta', 'schemas']);

interface PlannedPatch {
  changes: GroupChange[];
  /**
   * members[...] filters other than `value eq` (e.g. `display sw "A"`): the step at `index` gets
   * the ids of the matching members, selected in SQL just before the write (a member added in
   * between is not removed, as if this request had run first).
   */
  pendingFilters: { index: number; filter: ScimFilter }[];
}

/** Turns a PatchOp body into domain steps. Throws ScimError for anything malformed. */
export function planGroupPatch(body: unknown): PlannedPatch {
  if (!isObject(body)) throw new ScimError(400, 'the request body must be a JSON object (a PatchOp)', 'invalidSyntax');
  const attrs = attributesOf(body);
  const schemas = attrs.get('schemas');
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP_SCHEMA.toLowerCase())) {
    throw new ScimError(400, `schemas: a PATCH body must list "${PATCH_OP_SCHEMA}"`, 'invalidSyntax');
  }
  const operations = attrs.get('operations');
  if (!Array.isArray(operations) || operations.length === 0) throw new ScimError(400, 'Operations: must be a non-empty list of operations', 'invalidSyntax');
  const changes: GroupChange[] = [];
  const pendingFilters: PlannedPatch['pendingFilters'] = [];
  operations.forEach((raw, i) => {
    const where = `Operations[${i}]`;
    if (!isObject(raw)) throw new ScimError(400, `${where}: must be an object with "op"`, 'invalidSyntax');
    const op = attributesOf(raw);
    const name = op.get('op');
    const kind = typeof name === 'string' ? name.toLowerCase() : undefined;
    if (kind !== 'add' && kind !== 'remove' && kind !== 'replace') throw new ScimError(400, `${where}.op: must be "add", "remove" or "replace"`, 'invalidSyntax');
    const path = parsePatchPath(op.get('path'), i);
    const value = op.get('value');
    const hasValue = value !== undefined && value !== null;

    if (!path) {
      if (kind === 'remove') throw new ScimError(400, `${where}: "remove" needs a "path"`, 'noTarget');
      if (!isObject(value)) throw new ScimError(400, `${where}.value: without a "path", the value must be an object of attributes such as {"displayName": "..."}`, 'invalidValue');
      const set: { name?: string; externalId?: string | null } = {};
      for (const [key, v] of attributesOf(value)) {
        if (key === 'displayname') set.name = readDisplayName(v, `${where}.value.displayName`);
        else if (key === 'externalid') set.externalId = readExternalId(v);
        else if (key === 'members') {
          const refs = v === null ? { ids: [], labels: new Map<string, string>() } : readMembers(v, `${where}.value.members`);
          changes.push({ kind: kind === 'add' ? 'addMembers' : 'replaceMembers', userIds: refs.ids, labels: refs.labels });
        }
        // id (Okta sends it), meta, schemas and unknown attributes are ignored, as on POST/PUT.
      }
      if (set.name !== undefined || set.externalId !== undefined) changes.push({ kind: 'set', ...set });
      return;
    }

    if (READ_ONLY.has(path.attr)) throw new ScimError(400, `${where}.path: ${path.attr} is read-only`, 'mutability');
    switch (path.attr) {
      case 'displayname':
        if (path.filter || path.subAttr !== undefined) throw new ScimError(400, `${where}.path: displayName has no sub-attributes`, 'invalidPath');
        if (kind === 'remove') throw new ScimError(400, `${where}: displayName is required; replace it instead of removing it`, 'invalidValue');
        changes.push({ kind: 'set', name: readDisplayName(value, `${where}.value`) });
        return;
      case 'externalid':
        if (path.filter || path.subAttr !== undefined) throw new ScimError(400, `${where}.path: externalId has no sub-attributes`, 'invalidPath');
        if (kind === 'remove') changes.push({ kind: 'set', externalId: null });
        else {
          if (!hasValue) throw new ScimError(400, `${where}.value: is required`, 'invalidValue');
          changes.push({ kind: 'set', externalId: readExternalId(value) });
        }
        return;
      case 'members': {
        if (path.subAttr !== undefined) {
          throw new ScimError(400, `${where}.path: members' ${path.subAttr} is immutable; add or remove the member instead`, 'mutability');
        }
        if (path.filter) {
          if (kind !== 'remove') throw new ScimError(400, `${where}.path: use "add" or "replace" with the path "members", and "remove" with members[...]`, 'invalidPath');
          const ids = valueEqualityIds(path.filter);
          if (ids) changes.push({ kind: 'removeMembers', userIds: ids });
          else {
            pendingFilters.push({ index: changes.length, filter: path.filter });
            changes.push({ kind: 'removeMembers', userIds: [] });
          }
          return;
        }
        if (kind === 'remove') {
          changes.push(hasValue ? { kind: 'removeMembers', userIds: readMembers(value, `${where}.value`).ids } : { kind: 'removeAllMembers' });
          return;
        }
        if (!hasValue) throw new ScimError(400, `${where}.value: the members to ${kind} are required`, 'invalidValue');
        const refs = readMembers(value, `${where}.value`);
        changes.push({ kind: kind === 'add' ? 'addMembers' : 'replaceMembers', userIds: refs.ids, labels: refs.labels });
        return;
      }
      default:
        throw new ScimError(400, `${where}.path: the Group resource has no attribute ${JSON.stringify(path.text.slice(0, 100))}`, 'invalidPath');
    }
  });
  return { changes, pendingFilters };
}

/** The ids of the members of `groupId` that match a members[...] filter, in SQL. */
async function matchingMemberIds(db: Knex, groupId: string, filter: ScimFilter): Promise<string[]> {
  const { sql, bindings } = compileScimFilter(filter, MEMBER_FILTER_MAPPING, 'gm');
  const rows: { user_id: string }[] = await db('group_members as gm').select('gm.user_id').where('gm.group_id', groupId).whereRaw(sql, bindings);
  return rows.map((r) => r.user_id);
}

// -- department-scoped tokens and the group itself ---------------------------------------------

/**
 * Whether group `groupId` has a member outside the subtree `scopePath`: a membership row whose
 * user has no department in the subtree (whatever the user's status: a deprovisioned member of
 * another department is still someone else's). One EXISTS query with an anti-join that stops at
 * the first such member; members are never loaded.
 */
export async function hasMemberOutsideScope(db: Knex, groupId: string, scopePath: string): Promise<boolean> {
  const row: { outside: boolean } | undefined = (await db.raw(
    `select exists (
       select 1 from group_members gm
        where gm.group_id = ?
          and not exists (select 1 from user_departments scope_ud join departments scope_d on scope_d.id = scope_ud.department_id
                           where scope_ud.user_id = gm.user_id and scope_d.path like ? escape '\\')
     ) as outside`,
    [groupId, subtreePattern(scopePath)],
  )).rows[0];
  return row?.outside === true;
}

/** The displayName and externalId after `changes` (as the domain normalises them: trimmed, blank externalId cleared). */
function attributesAfter(group: Group, changes: readonly GroupChange[]): { name: string; externalId: string | null } {
  let name = group.name;
  let externalId = group.externalId;
  for (const c of changes) {
    if (c.kind !== 'set') continue;
    if (c.name !== undefined) name = c.name.trim();
    if (c.externalId !== undefined) externalId = c.externalId === null || c.externalId.trim() === '' ? null : c.externalId.trim();
  }
  return { name, externalId };
}

const OUTSIDE_SCOPE = 'it has members outside the department of this SCIM token, and a department-scoped token may only add or remove members of its own department';

/**
 * Runs a write that touches the group itself (`what`: delete, or change its attributes) for a
 * department-scoped token, in one transaction: the group's row is locked (FOR UPDATE) first, then
 * checked in SQL for members outside the scope (403, nothing written), then `write` runs with a
 * GroupsService on the same transaction (its own transaction becomes a savepoint).
 *
 * Race: adding a member inserts a group_members row, whose foreign key takes a KEY SHARE lock on
 * the group's row; that conflicts with FOR UPDATE. So an add that has not committed when the lock
 * is requested is waited for (and the check, a new statement under READ COMMITTED, then sees its
 * row), and an add that starts later waits until this transaction ends (after a delete it fails
 * as "no such group"; after a rename it is an ordinary add to the renamed group). The check and
 * the write thus see the same member set. Not covered: a member's department changing
 * concurrently (moving an in-scope member out) is not serialised with this; that is a change of
 * the user, not of the group, and orders as if it came after this write.
 */
async function guardScopedGroupWrite<T>(
  db: Knex, id: string, scopePath: string, what: 'delete' | 'change',
  write: (groups: GroupsService, current: Group, trx: Knex.Transaction) => Promise<T>,
  changes?: readonly GroupChange[],
): Promise<T> {
  return db.transaction(async (trx) => {
    const current = await findGroupById(trx, id, 'update');
    if (!current) throw notFound(id);
    let touchesGroup = what === 'delete';
    if (changes) {
      const after = attributesAfter(current, changes);
      touchesGroup ||= after.name !== current.name || after.externalId !== current.externalId;
    }
    if (touchesGroup && await hasMemberOutsideScope(trx, id, scopePath)) {
      throw new ScimError(403, what === 'delete'
        ? `this group cannot be deleted with this token: ${OUTSIDE_SCOPE}`
        : `the displayName and externalId of this group cannot be changed with this token: ${OUTSIDE_SCOPE}`, undefined, 'group.members_outside_scope');
    }
    return write(new GroupsService(trx), current, trx);
  });
}

// -- writes ------------------------------------------------------------------------------------

export function createScimGroupOps(deps: ScimDeps): ScimResourceOps & { reader: ScimGroupReader } {
  const { services } = deps;
  const reader = createScimGroupReader(deps);
  const scopeOf = (rc: ScimRequestContext) => rc.client.departmentPath;

  const full = async (group: Group, rc: ScimRequestContext, status: number): Promise<ScimResult> => {
    const members = await findMembersOfGroups(services.db, [group.id], rc.client.departmentPath);
    return { status, body: renderGroup(group, members, rc.baseUrl), location: groupLocation(rc.baseUrl, group.id), etag: weakEtag(group.version) };
  };

  return recordingRefusals(services.db, 'Groups', {
    reader,

    create: (body, rc) => mapErrors(undefined, async () => {
      const input = readGroupBody(body);
      const group = await services.groups.createGroupWithMembers(
        { name: input.displayName, externalId: input.externalId }, input.members.ids, rc.actor, { memberScope: scopeOf(rc), labels: input.members.labels },
      );
      return full(group, rc, 201);
    }),

    replace: (id, body, rc, ifMatch) => mapErrors(id, async () => {
      if (!isUuid(id)) throw notFound(id);
      const input = readGroupBody(body);
      const versions = expectedVersions(ifMatch);
      const changes: GroupChange[] = [
        { kind: 'set', name: input.displayName, externalId: input.externalId },
        { kind: 'replaceMembers', userIds: input.members.ids, labels: input.members.labels },
      ];
      const opts = { memberScope: scopeOf(rc), ...(versions ? { expectedVersions: versions } : {}) };
      const scope = scopeOf(rc);
      const { group } = scope
        ? await guardScopedGroupWrite(services.db, id, scope, 'change', (groups) => groups.changeGroup(id, changes, rc.actor, opts), changes)
        : await services.groups.changeGroup(id, changes, rc.actor, opts);
      return full(group, rc, 200);
    }),

    patch: (id, body, rc, ifMatch) => mapErrors(id, async () => {
      if (!isUuid(id)) throw notFound(id);
      const plan = planGroupPatch(body);
      const versions = expectedVersions(ifMatch);
      const opts = { memberScope: scopeOf(rc), ...(versions ? { expectedVersions: versions } : {}) };
      const run = async (db: Knex, groups: GroupsService) => {
        if (plan.pendingFilters.length) {
          if (!(await findGroupById(db, id))) throw notFound(id);
          for (const { index, filter } of plan.pendingFilters) {
            plan.changes[index] = { kind: 'removeMembers', userIds: await matchingMemberIds(db, id, filter) };
          }
        }
        return groups.changeGroup(id, plan.changes, rc.actor, opts);
      };
      const scope = scopeOf(rc);
      // Member-only patches (the common case) keep their single-statement path; a scoped token's
      // patch that sets displayName or externalId is checked first (guardScopedGroupWrite).
      const { group } = scope && plan.changes.some((c) => c.kind === 'set')
        ? await guardScopedGroupWrite(services.db, id, scope, 'change', (groups, _current, trx) => run(trx, groups), plan.changes)
        : await run(services.db, services.groups);
      // 204 (RFC 7644 section 3.5.2 allows it): the full resource of a large group is not
      // loaded just to be thrown away. The HTTP route answers 200 with the resource when the
      // client asks for attributes.
      return { status: 204, location: groupLocation(rc.baseUrl, group.id), etag: weakEtag(group.version) };
    }),

    remove: (id, rc, ifMatch) => mapErrors(id, async () => {
      if (!isUuid(id)) throw notFound(id);
      const versions = expectedVersions(ifMatch);
      const scope = scopeOf(rc);
      if (scope) {
        await guardScopedGroupWrite(services.db, id, scope, 'delete', async (groups, current) => {
          if (versions && !versions.includes(current.version)) throw new ScimError(412, `If-Match: the group is at version ${current.version}`);
          await groups.deleteGroup(id, rc.actor, current.version);
        });
        return { status: 204 };
      }
      if (versions && versions.length !== 1) {
        const current = await findGroupById(services.db, id);
        if (!current) throw notFound(id);
        if (!versions.includes(current.version)) throw new ScimError(412, `If-Match: the group is at version ${current.version}`);
        await services.groups.deleteGroup(id, rc.actor, current.version);
      } else {
        await services.groups.deleteGroup(id, rc.actor, versions?.[0]);
      }
      return { status: 204 };
    }),
  });
}
