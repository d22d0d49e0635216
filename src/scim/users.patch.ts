// PATCH for SCIM Users (RFC 7644 section 3.5.2): the PatchOp body is checked and normalised, then
// applied with scim-patch to the user's current SCIM representation; the caller validates the
// result like a PUT body and writes only what changed, through the directory.
//
// Normalisation (so that scim-patch, which matches attribute names case-sensitively, sees
// canonical names, and so that what Entra ID and Okta send works):
// - op names are case-insensitive ("Replace", "Add", "Remove" from Entra ID);
// - attribute names in paths are case-insensitive and may carry the core or enterprise schema URN;
//   value filters in paths (emails[type eq "work"].value) are parsed and re-written canonically;
// - an op without path and with an object value (Okta's {"op":"replace","value":{"active":false}},
//   Entra's {"name.givenName": "x", "urn:...:enterprise:2.0:User:department": "Sales"}) becomes one
//   op per attribute with that attribute as path, so complex values merge into what is there and
//   dotted or URN-qualified names reach the right attribute; unknown names in such a value are
//   ignored like unknown attributes in a PUT body, readOnly ones (id, meta, groups) too;
// - a path naming the whole enterprise extension becomes one op per extension attribute;
// - the enterprise manager given as a bare id string becomes {"value": id} (Entra ID).
// Errors: a malformed body -> invalidSyntax; remove without path -> noTarget; an unknown attribute
// or a malformed path -> invalidPath; a readOnly attribute (id, meta, groups, manager.displayName)
// as path -> mutability. A replace through a value filter that matches nothing adds the value
// (Entra ID sets a missing work email that way; RFC 7644 would answer noTarget), see the README.
import { scimPatch, type ScimPatchOperation, type ScimResource } from 'scim-patch';
import { ScimError } from './errors.ts';
import { formatScimFilter, parseScimFilter, type ScimFilter } from './filter.ts';
import { SCIM_ENTERPRISE_USER_SCHEMA, SCIM_USER_SCHEMA } from './filter-sql.ts';
import { PATCH_OP_SCHEMA } from './schemas.ts';
import { CORE_USER_ATTRIBUTES, ENTERPRISE_USER_ATTRIBUTES, type AttrDef } from './users.mapper.ts';

const CORE_URN = SCIM_USER_SCHEMA;
const ENT_URN = SCIM_ENTERPRISE_USER_SCHEMA;
const MAX_OPERATIONS = 1000;
const MAX_PATH_LENGTH = 1000;

type Op = 'add' | 'remove' | 'replace';
interface NormalisedOp { op: Op; path: string; value?: unknown }

const invalidPath = (detail: string): never => { throw new ScimError(400, detail, 'invalidPath'); };
const show = (s: string): string => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}...` : s);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface ResolvedPath {
  /** Canonical path for scim-patch. */
  path: string;
  /** The path names the whole enterprise extension. */
  wholeExtension?: boolean;
  /** The path names the enterprise manager attribute itself. */
  manager?: boolean;
}

/** Canonical attribute names in a value filter: each path must be a sub-attribute of `def`. */
function canonicalFilter(filter: ScimFilter, def: AttrDef, raw: string): ScimFilter {
  switch (filter.type) {
    case 'and':
    case 'or':
      return { ...filter, filters: filter.filters.map((f) => canonicalFilter(f, def, raw)) };
    case 'not':
      return { ...filter, filter: canonicalFilter(filter.filter, def, raw) };
    case 'valuePath':
      return invalidPath(`Invalid path ${show(raw)}: value filters cannot be nested`);
    default: {
      const p = filter.path;
      const sub = p.uri === undefined && p.subAttr === undefined ? def.sub?.[p.name.toLowerCase()] : undefined;
      if (!sub) invalidPath(`Invalid path ${show(raw)}: ${show(p.name)} is not a sub-attribute of ${def.name}`);
      return { ...filter, path: { name: sub!.name } };
    }
  }
}

/**
 * Resolves a PATCH path to its canonical form. Throws invalidPath for an unknown attribute or a
 * malformed path and mutability for a readOnly attribute.
 */
export function resolveUserPath(raw: string): ResolvedPath {
  if (raw.length > MAX_PATH_LENGTH) invalidPath(`The path is longer than ${MAX_PATH_LENGTH} characters`);
  let rest = raw.trim();
  const lower = rest.toLowerCase();
  let enterprise = false;
  if (lower === ENT_URN.toLowerCase()) return { path: ENT_URN, wholeExtension: true };
  if (lower.startsWith(`${CORE_URN.toLowerCase()}:`)) rest = rest.slice(CORE_URN.length + 1);
  else if (lower.startsWith(`${ENT_URN.toLowerCase()}:`)) {
    rest = rest.slice(ENT_URN.length + 1);
    enterprise = true;
  } else if (lower.startsWith('urn:')) invalidPath(`Invalid path ${show(raw)}: unknown schema (supported: ${CORE_URN}, ${ENT_URN})`);

  const m = /^([A-Za-z$][A-Za-z0-9$_-]*)(?:\[(.*)\])?(?:\.([A-Za-z$][A-Za-z0-9$_-]*))?$/s.exec(rest);
  if (!m) return invalidPath(`Invalid path ${show(raw)}`);
  const [, attrName, filterText, subName] = m as unknown as [string, string, string | undefined, string | undefined];
  const def = (enterprise ? ENTERPRISE_USER_ATTRIBUTES : CORE_USER_ATTRIBUTES)[attrName.toLowerCase()];
  if (!def) return invalidPath(`Invalid path ${show(raw)}: no attribute ${show(attrName)} in ${enterprise ? ENT_URN : CORE_URN}`);
  if (def.readOnly) throw new ScimError(400, `${def.name} is readOnly and cannot be modified`, 'mutability');

  let filterPart = '';
  if (filterText !== undefined) {
    if (!def.multi) invalidPath(`Invalid path ${show(raw)}: ${def.name} is not multi-valued, so it takes no [filter]`);
    let ast: ScimFilter;
    try {
      ast = parseScimFilter(filterText);
    } catch (err) {
      return invalidPath(`Invalid path ${show(raw)}: ${(err as Error).message}`);
    }
    filterPart = `[${formatScimFilter(canonicalFilter(ast, def, raw))}]`;
  }
  let subPart = '';
  if (subName !== undefined) {
    const sub = def.type === 'complex' ? def.sub![subName.toLowerCase()] : undefined;
    if (!sub) return invalidPath(`Invalid path ${show(raw)}: ${show(subName)} is not a sub-attribute of ${def.name}`);
    if (sub.readOnly) throw new ScimError(400, `${def.name}.${sub.name} is readOnly and cannot be modified`, 'mutability');
    subPart = `.${sub.name}`;
  }
  const path = `${enterprise ? `${ENT_URN}:` : ''}${def.name}${filterPart}${subPart}`;
  return { path, ...(enterprise && def.name === 'manager' && !filterPart && !subPart ? { manager: true } : {}) };
}

/** Entra ID sends the manager as a bare id. */
const managerValue = (value: unknown): unknown => (typeof value === 'string' ? { value } : value);

function expandExtension(op: Op, value: unknown, out: NormalisedOp[]): void {
  if (op === 'remove') {
    for (const def of Object.values(ENTERPRISE_USER_ATTRIBUTES)) out.push({ op, path: `${ENT_URN}:${def.name}` });
    return;
  }
  if (!isObject(value)) throw new ScimError(400, `the value for ${ENT_URN} must be an object`, 'invalidValue');
  for (const [key, v] of Object.entries(value)) {
    const def = ENTERPRISE_USER_ATTRIBUTES[key.toLowerCase()];
    if (!def || def.readOnly) continue;
    out.push({ op, path: `${ENT_URN}:${def.name}`, value: def.name === 'manager' ? managerValue(v) : v });
  }
}

/** Checks a PatchOp body and returns its operations in canonical form. */
export function normalisePatch(body: unknown): NormalisedOp[] {
  if (!isObject(body)) throw new ScimError(400, 'the body must be a PatchOp object', 'invalidSyntax');
  const lowerKey = (name: string) => Object.keys(body).find((k) => k.toLowerCase() === name);
  const schemas = body[lowerKey('schemas') ?? 'schemas'];
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP_SCHEMA.toLowerCase())) {
    throw new ScimError(400, `schemas must include ${PATCH_OP_SCHEMA}`, 'invalidSyntax');
  }
  const operations = body[lowerKey('operations') ?? 'Operations'];
  if (!Array.isArray(operations) || operations.length === 0) throw new ScimError(400, 'Operations must be a non-empty list', 'invalidSyntax');
  if (operations.length > MAX_OPERATIONS) throw new ScimError(400, `at most ${MAX_OPERATIONS} operations per request`, 'invalidValue');

  const out: NormalisedOp[] = [];
  operations.forEach((raw, i) => {
    if (!isObject(raw)) throw new ScimError(400, `Operations[${i}] must be an object`, 'invalidSyntax');
    const get = (name: string): unknown => raw[Object.keys(raw).find((k) => k.toLowerCase() === name) ?? name];
    const opName = get('op');
    const op = typeof opName === 'string' ? opName.trim().toLowerCase() : '';
    if (op !== 'add' && op !== 'remove' && op !== 'replace') {
      throw new ScimError(400, `Operations[${i}].op must be add, remove or replace`, 'invalidSyntax');
    }
    const path = get('path');
    const hasValue = Object.keys(raw).some((k) => k.toLowerCase() === 'value');
    const value = get('value');
    if (path !== undefined && path !== null && typeof path !== 'string') invalidPath(`Operations[${i}].path must be a string`);
    if (op !== 'remove' && !hasValue) throw new ScimError(400, `Operations[${i}] (${op}) needs a value`, 'invalidValue');

    if (typeof path !== 'string' || path.trim() === '') {
      if (op === 'remove') throw new ScimError(400, `Operations[${i}]: remove needs a path`, 'noTarget');
      if (!isObject(value)) throw new ScimError(400, `Operations[${i}]: without a path, the value must be an object of attributes`, 'invalidValue');
      for (const [key, v] of Object.entries(value)) {
        let resolved: ResolvedPath;
        try {
          resolved = resolveUserPath(key);
        } catch (err) {
          // Unknown or readOnly attribute names inside a value are ignored, as in a PUT body.
          if (err instanceof ScimError && (err.scimType === 'invalidPath' || err.scimType === 'mutability')) continue;
          throw err;
        }
        if (resolved.wholeExtension) expandExtension(op, v, out);
        else out.push({ op, path: resolved.path, value: resolved.manager ? managerValue(v) : v });
      }
      return;
    }
    const resolved = resolveUserPath(path);
    if (resolved.wholeExtension) expandExtension(op, value, out);
    else if (op === 'remove') out.push({ op, path: resolved.path, ...(hasValue && value !== null ? { value } : {}) });
    else out.push({ op, path: resolved.path, value: resolved.manager ? managerValue(value) : value });
  });
  return out;
}

const ERROR_TYPES: Record<string, 'noTarget' | 'invalidPath' | 'invalidValue' | 'invalidSyntax'> = {
  NoTarget: 'noTarget',
  NoPathInScimPatchOp: 'noTarget',
  InvalidScimPatchOp: 'invalidPath',
  InvalidRemoveOpPath: 'invalidPath',
  FilterOnEmptyArray: 'noTarget',
  FilterArrayTargetNotFound: 'noTarget',
  InvalidScimPatchRequest: 'invalidSyntax',
  RemoveValueNotArray: 'invalidValue',
  RemoveValueNestedArrayNotSupported: 'invalidValue',
  InvalidScimRemoveValue: 'invalidValue',
};

const MULTI_WITH_PRIMARY = Object.values(CORE_USER_ATTRIBUTES).filter((d) => d.multi && d.sub?.primary).map((d) => d.name);
const isPrimary = (v: unknown): boolean => isObject(v) && (v.primary === true || (typeof v.primary === 'string' && v.primary.toLowerCase() === 'true'));

/** Per multi-valued attribute, the values (as JSON) that are primary. */
function primaryValues(resource: Record<string, unknown>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const name of MULTI_WITH_PRIMARY) {
    const list = resource[name];
    if (Array.isArray(list)) out.set(name, new Set(list.filter(isPrimary).map((v) => JSON.stringify(v))));
  }
  return out;
}

/**
 * RFC 7644 3.5.2: an operation that makes a value primary makes the others not primary (so that
 * an added primary email becomes the sign-in email instead of losing to the old one).
 */
function demoteFormerPrimaries(resource: Record<string, unknown>, before: Map<string, Set<string>>): void {
  for (const name of MULTI_WITH_PRIMARY) {
    const list = resource[name];
    if (!Array.isArray(list)) continue;
    const primaries = list.filter(isPrimary) as Record<string, unknown>[];
    if (primaries.length < 2) continue;
    const was = before.get(name) ?? new Set<string>();
    const made = primaries.filter((v) => !was.has(JSON.stringify(v)));
    if (made.length === 0) continue;
    for (const v of primaries) if (!made.includes(v)) v.primary = false;
  }
}

/** Whether an operation of the (valid) PatchOp body targets the core attribute `name`. */
export function patchTouches(body: unknown, name: string): boolean {
  return normalisePatch(body).some((op) => op.path === name || op.path.startsWith(`${name}.`) || op.path.startsWith(`${name}[`));
}

/**
 * Applies a PatchOp body to a copy of `resource` (the full current representation) and returns
 * the patched copy. The enterprise schema is added to `schemas` when the result has extension
 * attributes.
 */
export function patchUserResource(resource: Record<string, unknown>, body: unknown): Record<string, unknown> {
  const ops = normalisePatch(body);
  const copy = structuredClone(resource) as unknown as ScimResource;
  let patched: Record<string, unknown>;
  try {
    patched = copy as unknown as Record<string, unknown>;
    for (const op of ops) {
      const before = primaryValues(patched);
      patched = scimPatch(patched as unknown as ScimResource, [op as ScimPatchOperation], { mutateDocument: true, treatMissingAsAdd: true }) as unknown as Record<string, unknown>;
      demoteFormerPrimaries(patched, before);
    }
  } catch (err) {
    const name = (err as Error)?.constructor?.name ?? '';
    const scimType = ERROR_TYPES[name] ?? 'invalidValue';
    const message = (err as Error)?.message || 'the patch cannot be applied';
    throw new ScimError(400, `${message}`.slice(0, 500), scimType);
  }
  const ent = patched[ENT_URN];
  const schemas = Array.isArray(patched.schemas) ? patched.schemas as string[] : [CORE_URN];
  if (ent !== undefined && !schemas.includes(ENT_URN)) patched.schemas = [...schemas, ENT_URN];
  return patched;
}
