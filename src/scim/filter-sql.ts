// Compiles a SCIM filter AST (./filter.ts) into one parameterised SQL condition for knex.
//
// Values reach PostgreSQL only as bindings (`?`); the SQL text is built from the mapping (trusted,
// written in this codebase) and fixed keywords, never from filter text. A resource plugs in its
// columns through a ScimResourceMapping; USER_FILTER_MAPPING and GROUP_FILTER_MAPPING below map
// OneID's users and groups tables.
//
// Semantics (RFC 7644 section 3.4.2.2):
// - Unknown attributes are a 400 invalidFilter naming the attribute. The RFC allows evaluating
//   them as false instead, but a typo (`usrName eq "x"`) silently matching nothing makes a
//   provisioning client believe a user does not exist and create a duplicate; a clear error is
//   safer and is what clients surface to admins.
// - Strings honour caseExact: case-insensitive attributes compare lower(column) with lower(value).
//   lower() folds case by the database's LC_CTYPE, so it may disagree with JavaScript; sign-in
//   names (userName, emails.value) are therefore stored folded by shared/names.ts and compared
//   with the value folded by the same function, never lower() on either side (`fold`), which also
//   lets `username = ?` use its btree index. gt/lt on strings follow the column collation.
// - co/sw/ew are LIKE with the value's %, _ and \ escaped. gt/ge/lt/le work on strings, numbers
//   and dateTimes; booleans accept only eq/ne/pr; co/sw/ew apply to strings only.
// - `pr` is "not null and, for strings, not empty"; for a multi-valued attribute "has an element".
// - Two-valued logic: an absent attribute never satisfies eq/co/sw/ew/gt/ge/lt/le, always satisfies
//   ne (`is distinct from`), and `not (...)` is the exact complement of its operand (NULLs inside
//   are treated as false before negating).
// - `attr eq null` means `not (attr pr)`, `attr ne null` means `attr pr`; other operators with null
//   are invalidFilter.
// - A multi-valued attribute matches if ANY element matches: `emails.type eq "work" and
//   emails.value co "@x.com"` may match two different emails, while
//   `emails[type eq "work" and value co "@x.com"]` needs one email with both.
import { isWellFormed } from '../shared/text-input.ts';
import { foldName } from '../shared/names.ts';
import type { Knex } from 'knex';
import {
  parseScimFilter, formatAttrPath, ScimFilterError,
  type AttrPath, type CompareOperator, type ScimFilter, type ScimFilterParseOptions, type ScimFilterValue,
} from './filter.ts';

export type ScimScalarType = 'string' | 'boolean' | 'number' | 'dateTime' | 'reference';

/**
 * Where a single value lives. Exactly one of `column`, `jsonKey`, `sql`:
 * - `column`: a column of the row the attribute belongs to (the main table; for a `table`
 *   multi-valued attribute, the child table; for a `jsonbArray` one, not allowed).
 * - `jsonKey`: for sub-attributes of a `jsonbArray` attribute, the key in each element object.
 * - `sql`: a trusted SQL expression; `{alias}` becomes the quoted alias of that row. No `?` in it.
 */
export interface ScimScalarAttribute {
  type: ScimScalarType;
  caseExact: boolean;
  column?: string;
  jsonKey?: string;
  sql?: string;
  /** The column holds text folded by this function: every comparison binds the value folded by it, no SQL lower(). */
  fold?: (value: string) => string;
  /** With fold: some values are kept exactly as sent instead (email values that are not addresses), so
   *  eq/ne/co/sw/ew also match the value as given, case and all. */
  foldedOrExact?: boolean;
  /** The column is a uuid: eq/ne with a non-uuid string is constant false/true (no cast error);
   *  co/sw/ew/gt/ge/lt/le compare its (lower-case) text form. */
  uuid?: boolean;
}

export type ScimMultiValuedSource =
  /** Elements are the objects of a jsonb array column on the main table. */
  | { jsonbArray: string }
  /** Elements are the objects of a jsonb array that a trusted SQL expression gives (`{alias}`: the main table; no `?`). */
  | { jsonbSql: string }
  /** Elements are rows of a child table whose `foreignKey` references the main table's `parentKey` (default `id`). */
  | { table: string; foreignKey: string; parentKey?: string };

export interface ScimComplexAttribute {
  type: 'complex';
  /** Keyed by lower-cased sub-attribute name. */
  subAttributes: Record<string, ScimScalarAttribute>;
  /** Lower-cased sub-attribute used when the filter names the attribute alone (`emails co "x"` = `emails.value co "x"`). */
  defaultSubAttribute?: string;
  /** Set for multi-valued attributes: filters on them become EXISTS subqueries over the elements. */
  multi?: ScimMultiValuedSource;
}

export type ScimAttribute = ScimScalarAttribute | ScimComplexAttribute;

/**
 * Keyed by lower-cased attribute name: core attributes by bare name (`username`, `name`, `emails`),
 * extension attributes by `<lower-cased schema URN>:<lower-cased name>`.
 */
export type ScimAttributeMapping = Record<string, ScimAttribute>;

export interface ScimResourceMapping {
  /** The resource's core schema URN; a filter may prefix core attributes with it. */
  coreSchema: string;
  attributes: ScimAttributeMapping;
}

export type SqlBinding = string | number | boolean;

/** One SQL boolean expression (parenthesised) with `?` placeholders, and its bindings in order. */
export interface SqlFragment {
  sql: string;
  bindings: SqlBinding[];
}

// ---------------------------------------------------------------------------------------------

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const JSON_KEY = /^[A-Za-z0-9_$-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LIKE_ESCAPE = "escape E'\\\\'"; // the SQL text: escape E'\\'  (one backslash)

function ident(name: string): string {
  // Mapping and alias names come from code, not requests; this guards against mistakes.
  if (!IDENT.test(name)) throw new Error(`scim filter mapping: invalid SQL identifier ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** User text in an error detail: quoted and capped, so a 4 KB attribute name does not echo back whole. */
function show(v: unknown): string {
  if (typeof v !== 'string') return String(v);
  return JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}...` : v);
}

function invalid(detail: string): never {
  throw new ScimFilterError('invalidFilter', detail);
}

/** Escapes LIKE metacharacters so the value matches literally (escape character: backslash). */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`);
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))?$/;

/**
 * Validates an xsd:dateTime / RFC 3339 value the way PostgreSQL's timestamptz input will accept it,
 * so that a bad date is a 400 invalidFilter and never a database error. No offset means UTC.
 */
export function normaliseDateTime(value: string): string | undefined {
  const m = DATE_TIME.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (year < 1 || days === undefined || day < 1 || day > days || hour > 23 || minute > 59 || second > 60) return undefined;
  if (m[8] !== undefined && m[9] !== undefined && (Number(m[9]) > 15 || Number(m[10]) > 59)) return undefined;
  return m[8] === undefined ? `${value}Z` : value;
}

type Scope =
  | { kind: 'resource' }
  /** Inside `attr[...]`: names are sub-attributes of `attr`, living on the row `row`. */
  | { kind: 'element'; attr: ScimComplexAttribute; label: string; row: string };

type Resolved =
  | { kind: 'scalar'; attr: ScimScalarAttribute; row: string; label: string }
  | { kind: 'multi'; complex: ScimComplexAttribute; sub: ScimScalarAttribute; label: string }
  | { kind: 'whole'; complex: ScimComplexAttribute; label: string };

class Compiler {
  readonly bindings: SqlBinding[] = [];
  private elementAliases = 0;

  constructor(private readonly mapping: ScimResourceMapping, private readonly main: string) {}

  compile(f: ScimFilter, scope: Scope): string {
    switch (f.type) {
      case 'and':
      case 'or':
        return `(${f.filters.map((x) => this.compile(x, scope)).join(` ${f.type} `)})`;
      case 'not':
        // coalesce: the operand's unknown (NULL) counts as false, so not() is its exact complement.
        return `(not coalesce(${this.compile(f.filter, scope)}, false))`;
      case 'present':
        return this.present(f.path, scope);
      case 'compare':
        return this.compare(f.path, f.op, f.value, scope);
      case 'valuePath':
        return this.valuePath(f.path, f.filter, scope);
    }
  }

  // -- attribute resolution ----------------------------------------------------------------

  private lookup(path: AttrPath): { attr: ScimAttribute; label: string } {
    const label = formatAttrPath({ uri: path.uri, name: path.name } as AttrPath);
    const name = path.name.toLowerCase();
    let key = name;
    if (path.uri !== undefined) {
      const uri = path.uri.toLowerCase();
      key = uri === this.mapping.coreSchema.toLowerCase() ? name : `${uri}:${name}`;
    }
    const attr = Object.hasOwn(this.mapping.attributes, key) ? this.mapping.attributes[key] : undefined;
    if (!attr) invalid(`Unknown attribute ${show(label)} in the filter; it is not a filterable attribute of this resource`);
    return { attr, label };
  }

  private subAttribute(complex: ScimComplexAttribute, name: string, label: string): ScimScalarAttribute {
    const key = name.toLowerCase();
    const sub = Object.hasOwn(complex.subAttributes, key) ? complex.subAttributes[key] : undefined;
    if (!sub) invalid(`Unknown sub-attribute ${show(name)} of ${show(label)} in the filter`);
    return sub;
  }

  private resolve(path: AttrPath, scope: Scope): Resolved {
    if (scope.kind === 'element') {
      if (path.uri !== undefined || path.subAttr !== undefined) {
        invalid(`Inside ${show(`${scope.label}[...]`)} name sub-attributes of ${show(scope.label)} directly (e.g. "value"), not ${show(formatAttrPath(path))}`);
      }
      const sub = this.subAttribute(scope.attr, path.name, scope.label);
      return { kind: 'scalar', attr: sub, row: scope.row, label: `${scope.label}.${path.name}` };
    }
    const { attr, label } = this.lookup(path);
    if (attr.type !== 'complex') {
      if (path.subAttr !== undefined) invalid(`Attribute ${show(label)} has no sub-attribute ${show(path.subAttr)}`);
      return { kind: 'scalar', attr, row: this.main, label };
    }
    if (path.subAttr === undefined && attr.defaultSubAttribute === undefined) return { kind: 'whole', complex: attr, label };
    const subName = path.subAttr ?? attr.defaultSubAttribute!;
    const sub = this.subAttribute(attr, subName, label);
    const subLabel = `${label}.${path.subAttr ?? subName}`;
    if (attr.multi) return { kind: 'multi', complex: attr, sub, label: subLabel };
    return { kind: 'scalar', attr: sub, row: this.main, label: subLabel };
  }

  /** The SQL expression for a scalar attribute on `row`. */
  private operand(attr: ScimScalarAttribute, row: string): string {
    if (attr.column !== undefined) return `${row}.${ident(attr.column)}`;
    if (attr.sql !== undefined) {
      if (attr.sql.includes('?')) throw new Error('scim filter mapping: sql expressions must not contain "?"');
      return `(${attr.sql.replaceAll('{alias}', row)})`;
    }
    if (attr.jsonKey !== undefined) {
      if (!JSON_KEY.test(attr.jsonKey)) throw new Error(`scim filter mapping: invalid jsonKey ${JSON.stringify(attr.jsonKey)}`);
      const el = `${row}.elem`;
      const k = `'${attr.jsonKey}'`;
      switch (attr.type) {
        case 'boolean': return `(case when jsonb_typeof(${el} -> ${k}) = 'boolean' then (${el} ->> ${k})::boolean end)`;
        case 'number': return `(case when jsonb_typeof(${el} -> ${k}) = 'number' then (${el} ->> ${k})::numeric end)`;
        case 'dateTime': throw new Error('scim filter mapping: dateTime jsonKey attributes are not supported');
        default: return `(${el} ->> ${k})`;
      }
    }
    throw new Error('scim filter mapping: an attribute needs column, jsonKey or sql');
  }

  /** EXISTS over the elements of a multi-valued attribute; `cond` builds the condition on an element row. */
  private exists(complex: ScimComplexAttribute, cond: ((row: string) => string) | undefined): string {
    const source = complex.multi!;
    this.elementAliases += 1;
    const row = ident(`scim_e${this.elementAliases}`);
    const where = cond ? cond(row) : 'true';
    if ('jsonbArray' in source || 'jsonbSql' in source) {
      if ('jsonbSql' in source && source.jsonbSql.includes('?')) throw new Error('scim filter mapping: sql expressions must not contain "?"');
      const col = 'jsonbArray' in source ? `${this.main}.${ident(source.jsonbArray)}` : `(${source.jsonbSql.replaceAll('{alias}', this.main)})`;
      return `exists (select 1 from jsonb_array_elements(case when jsonb_typeof(${col}) = 'array' then ${col} else '[]'::jsonb end) as ${row}(elem) where ${where})`;
    }
    return `exists (select 1 from ${ident(source.table)} as ${row} where ${row}.${ident(source.foreignKey)} = ${this.main}.${ident(source.parentKey ?? 'id')} and ${where})`;
  }

  // -- leaves --------------------------------------------------------------------------------

  private present(path: AttrPath, scope: Scope): string {
    const r = this.resolve(path, scope);
    switch (r.kind) {
      case 'scalar': return presentSql(this.operand(r.attr, r.row), r.attr);
      case 'multi': return this.exists(r.complex, (row) => presentSql(this.operand(r.sub, row), r.sub));
      case 'whole':
        if (r.complex.multi) return this.exists(r.complex, undefined);
        return `(${Object.values(r.complex.subAttributes).map((s) => presentSql(this.operand(s, this.main), s)).join(' or ')})`;
    }
  }

  private compare(path: AttrPath, op: CompareOperator, value: ScimFilterValue, scope: Scope): string {
    const r = this.resolve(path, scope);
    if (r.kind === 'whole') {
      invalid(`${show(r.label)} is a complex attribute; filter on one of its sub-attributes (${Object.keys(r.complex.subAttributes).map((s) => `${r.label}.${s}`).join(', ')})`);
    }
    if (r.kind === 'multi') return this.exists(r.complex, (row) => this.comparison(this.operand(r.sub, row), r.sub, op, value, r.label));
    return this.comparison(this.operand(r.attr, r.row), r.attr, op, value, r.label);
  }

  private valuePath(path: AttrPath, inner: ScimFilter, scope: Scope): string {
    if (scope.kind === 'element') invalid('Value filters cannot be nested');
    const { attr, label } = this.lookup(path);
    if (attr.type !== 'complex') invalid(`${show(label)} is not a complex attribute; [...] is only valid for complex attributes such as emails or members`);
    if (attr.multi) return this.exists(attr, (row) => this.compile(inner, { kind: 'element', attr, label, row }));
    return this.compile(inner, { kind: 'element', attr, label, row: this.main });
  }

  private bind(value: SqlBinding): '?' {
    this.bindings.push(value);
    return '?';
  }

  private comparison(expr: string, attr: ScimScalarAttribute, op: CompareOperator, value: ScimFilterValue, label: string): string {
    const name = show(label);
    if (value === null) {
      if (op === 'eq') return `(not ${presentSql(expr, attr)})`;
      if (op === 'ne') return presentSql(expr, attr);
      invalid(`${op} cannot compare ${name} with null; use eq null, ne null or pr`);
    }
    if (typeof value === 'string' && value.includes('\u0000')) invalid(`The value compared with ${name} contains a NUL character, which is not allowed`);
    if (typeof value === 'string' && !isWellFormed(value)) {
      invalid(`The value compared with ${name} contains an unpaired UTF-16 surrogate, which is not allowed`);
    }
    if (typeof value === 'number' && !Number.isFinite(value)) invalid(`The number compared with ${name} is out of range`);
    const sqlOp = SQL_ORDER[op];
    switch (attr.type) {
      case 'boolean': {
        if (op !== 'eq' && op !== 'ne') invalid(`${name} is boolean and supports only eq, ne and pr, not ${op}`);
        if (typeof value !== 'boolean') invalid(`${name} is boolean; compare it with true or false, not ${show(value)}`);
        return op === 'eq' ? `(${expr} = ${this.bind(value)}::boolean)` : `(${expr} is distinct from ${this.bind(value)}::boolean)`;
      }
      case 'number': {
        if (typeof value !== 'number') invalid(`${name} is a number; compare it with a number, not ${show(value)}`);
        if (isLikeOp(op)) invalid(`${op} applies to strings; ${name} is a number`);
        if (op === 'ne') return `(${expr} is distinct from ${this.bind(value)}::numeric)`;
        return `(${expr} ${sqlOp} ${this.bind(value)}::numeric)`;
      }
      case 'dateTime': {
        if (typeof value !== 'string') invalid(`${name} is a dateTime; compare it with a quoted date-time such as "2011-05-13T04:42:34Z"`);
        if (isLikeOp(op)) invalid(`${op} applies to strings; ${name} is a dateTime (use eq, ne, gt, ge, lt, le or pr)`);
        const ts = normaliseDateTime(value);
        if (ts === undefined) invalid(`${name} is a dateTime; ${show(value)} is not a valid date-time such as "2011-05-13T04:42:34Z"`);
        if (op === 'ne') return `(${expr} is distinct from ${this.bind(ts)}::timestamptz)`;
        return `(${expr} ${sqlOp} ${this.bind(ts)}::timestamptz)`;
      }
      case 'string':
      case 'reference': {
        if (typeof value !== 'string') invalid(`${name} is a string; compare it with a quoted string, not ${show(value)}`);
        if (attr.uuid) {
          if (op === 'eq') return UUID.test(value) ? `(${expr} = ${this.bind(value)}::uuid)` : '(false)';
          if (op === 'ne') return UUID.test(value) ? `(${expr} is distinct from ${this.bind(value)}::uuid)` : '(true)';
          const text = `${expr}::text`;
          if (isLikeOp(op)) return `(${text} like lower(${this.bind(likePattern(op, value))}::text) ${LIKE_ESCAPE})`;
          return `(${text} ${sqlOp} lower(${this.bind(value)}::text))`;
        }
        if (attr.fold) {
          const folded = attr.fold(value);
          const forms = attr.foldedOrExact && folded !== value && (isLikeOp(op) || op === 'eq' || op === 'ne') ? [folded, value] : [folded];
          if (op === 'ne') return `(${forms.map((v) => `${expr} is distinct from ${this.bind(v)}::text`).join(' and ')})`;
          const one = (v: string): string => (isLikeOp(op) ? `${expr} like ${this.bind(likePattern(op, v))}::text ${LIKE_ESCAPE}` : `${expr} ${sqlOp} ${this.bind(v)}::text`);
          return `(${forms.map(one).join(' or ')})`;
        }
        const ci = !attr.caseExact;
        const lhs = ci ? `lower(${expr})` : expr;
        const rhs = (v: string) => (ci ? `lower(${this.bind(v)}::text)` : `${this.bind(v)}::text`);
        if (isLikeOp(op)) return `(${lhs} like ${rhs(likePattern(op, value))} ${LIKE_ESCAPE})`;
        if (op === 'ne') return `(${lhs} is distinct from ${rhs(value)})`;
        return `(${lhs} ${sqlOp} ${rhs(value)})`;
      }
    }
  }
}

const SQL_ORDER: Record<CompareOperator, string> = { eq: '=', ne: '<>', gt: '>', ge: '>=', lt: '<', le: '<=', co: 'like', sw: 'like', ew: 'like' };

function isLikeOp(op: CompareOperator): op is 'co' | 'sw' | 'ew' {
  return op === 'co' || op === 'sw' || op === 'ew';
}

function likePattern(op: 'co' | 'sw' | 'ew', value: string): string {
  const v = escapeLike(value);
  return op === 'co' ? `%${v}%` : op === 'sw' ? `${v}%` : `%${v}`;
}

function presentSql(expr: string, attr: ScimScalarAttribute): string {
  if ((attr.type === 'string' || attr.type === 'reference') && !attr.uuid) return `(${expr} is not null and ${expr} <> '')`;
  return `(${expr} is not null)`;
}

/**
 * Compiles a parsed filter into a parenthesised SQL condition over the main table `alias`
 * (e.g. `u` in `from users as u`). Throws ScimFilterError('invalidFilter') for filters that are
 * well-formed but do not fit the mapping (unknown attribute, wrong value type, ...).
 */
export function compileScimFilter(filter: ScimFilter, mapping: ScimResourceMapping, alias: string): SqlFragment {
  const compiler = new Compiler(mapping, ident(alias));
  const sql = compiler.compile(filter, { kind: 'resource' });
  return { sql: sql.startsWith('(') && sql.endsWith(')') ? sql : `(${sql})`, bindings: compiler.bindings };
}

/**
 * Parses `filter` (unless it is already an AST), compiles it against `mapping` and adds it to
 * `query` with AND. `alias` is the alias (or table name) of the main table in `query`.
 * Returns the same query builder. Throws ScimFilterError('invalidFilter') for bad filters.
 */
export function applyScimFilter<Q extends Knex.QueryBuilder>(
  query: Q,
  filter: string | ScimFilter,
  mapping: ScimResourceMapping,
  alias: string,
  options: ScimFilterParseOptions = {},
): Q {
  const ast = typeof filter === 'string' ? parseScimFilter(filter, options) : filter;
  const { sql, bindings } = compileScimFilter(ast, mapping, alias);
  return query.whereRaw(sql, bindings) as Q;
}

// ---------------------------------------------------------------------------------------------
// OneID's resources

export const SCIM_USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCIM_GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SCIM_ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

const ENTERPRISE = SCIM_ENTERPRISE_USER_SCHEMA.toLowerCase();
const text = (column: string, caseExact = false): ScimScalarAttribute => ({ type: 'string', caseExact, column });
const uuidColumn = (column: string): ScimScalarAttribute => ({ type: 'string', caseExact: true, column, uuid: true });

// Attributes OneID keeps as sent in users.scim_attributes (users.mapper.ts): `path` is where, as
// canonical names (the mapper stores canonical names), so `{core,nickName}` is scim_attributes.core.nickName.
const JSON_PATH_PART = /^[A-Za-z0-9]+$/;
const keptPath = (path: string[]): string => {
  if (!path.every((p) => JSON_PATH_PART.test(p))) throw new Error(`scim filter mapping: invalid path ${path.join('.')}`);
  return `'{${path.join(',')}}'`;
};
const keptText = (path: string[], caseExact = false): ScimScalarAttribute => ({ type: 'string', caseExact, sql: `{alias}.scim_attributes #>> ${keptPath(path)}` });
const element = (key: string, type: ScimScalarType = 'string', caseExact = false): ScimScalarAttribute => ({ type, caseExact, jsonKey: key });
// null: no default sub-attribute (addresses has no value), so `addresses pr` tests the list itself.
// (An explicit undefined would take the parameter's default.)
const keptMulti = (name: string, subs: ScimScalarAttribute[], defaultSubAttribute: string | null = 'value'): ScimComplexAttribute => ({
  type: 'complex',
  multi: { jsonbSql: `{alias}.scim_attributes #> ${keptPath(['core', name])}` },
  ...(defaultSubAttribute ? { defaultSubAttribute } : {}),
  subAttributes: Object.fromEntries(subs.map((s) => [s.jsonKey!.toLowerCase(), s])),
});
const pluralElements = (valueCaseExact = false): ScimScalarAttribute[] => [
  element('value', 'string', valueCaseExact), element('display'), element('type'), element('primary', 'boolean'),
];
const meta: ScimComplexAttribute = {
  type: 'complex',
  subAttributes: {
    created: { type: 'dateTime', caseExact: false, column: 'created_at' },
    lastmodified: { type: 'dateTime', caseExact: false, column: 'updated_at' },
  },
};

const DEPARTMENT_PATH = /^(\/[0-9a-f-]{36})+\/$/;

// name.formatted as users.mapper.ts renders it (renderedFormatted): an explicit value while the
// name parts it was set for are unchanged (rows from before: while display_name is), else the
// parts joined by spaces, else display_name. `{alias}` is the users row.
const SA = '{alias}.scim_attributes';
const namePart = (sql: string): string => `nullif(trim(${sql}), '')`;
const NAME_PARTS_SQL: [string, string][] = [
  ['honorificPrefix', namePart(`${SA} #>> '{name,honorificPrefix}'`)],
  ['givenName', namePart('{alias}.given_name')],
  ['middleName', namePart(`${SA} #>> '{name,middleName}'`)],
  ['familyName', namePart('{alias}.family_name')],
  ['honorificSuffix', namePart(`${SA} #>> '{name,honorificSuffix}'`)],
];
export const FORMATTED_SQL = `(case
  when jsonb_typeof(${SA} #> '{formatted,value}') = 'string'
   and (case when jsonb_typeof(${SA} #> '{formatted,basis}') = 'object'
             then ${SA} #> '{formatted,basis}' = jsonb_strip_nulls(jsonb_build_object(${NAME_PARTS_SQL.map(([k, v]) => `'${k}', ${v}`).join(', ')}))
             else (${SA} #>> '{formatted,basis}') is not distinct from {alias}.display_name end)
  then ${SA} #>> '{formatted,value}'
  else coalesce(nullif(concat_ws(' ', ${NAME_PARTS_SQL.map(([, v]) => v).join(', ')}), ''), {alias}.display_name) end)`;

/** SCIM User -> `users` (use with `db('users as u')` and alias `u`, or `db('users')` and alias `users`). */
export const USER_FILTER_MAPPING: ScimResourceMapping = {
  coreSchema: SCIM_USER_SCHEMA,
  attributes: {
    id: uuidColumn('id'),
    externalid: text('external_id', true),
    // Sign-in names: stored folded (shared/names.ts), compared folded.
    username: { type: 'string', caseExact: false, column: 'username', fold: foldName },
    displayname: text('display_name'),
    name: {
      type: 'complex',
      subAttributes: {
        givenname: text('given_name'), familyname: text('family_name'), formatted: { type: 'string', caseExact: false, sql: FORMATTED_SQL },
        middlename: keptText(['name', 'middleName']), honorificprefix: keptText(['name', 'honorificPrefix']), honorificsuffix: keptText(['name', 'honorificSuffix']),
      },
    },
    nickname: keptText(['core', 'nickName']),
    profileurl: { ...keptText(['core', 'profileUrl'], true), type: 'reference' },
    usertype: keptText(['core', 'userType']),
    preferredlanguage: keptText(['core', 'preferredLanguage']),
    timezone: keptText(['core', 'timezone']),
    ims: keptMulti('ims', pluralElements()),
    photos: keptMulti('photos', [element('value', 'reference', true), element('display'), element('type'), element('primary', 'boolean')]),
    addresses: keptMulti('addresses', [
      element('formatted'), element('streetAddress'), element('locality'), element('region'), element('postalCode'), element('country'),
      element('type'), element('primary', 'boolean'),
    ], null),
    entitlements: keptMulti('entitlements', pluralElements()),
    roles: keptMulti('roles', pluralElements()),
    x509certificates: keptMulti('x509Certificates', pluralElements(true)),
    emails: {
      type: 'complex',
      multi: { jsonbArray: 'emails' },
      defaultSubAttribute: 'value',
      subAttributes: {
        // Addresses are stored folded, other values as sent (users.service normaliseProvisionedEmails).
        value: { type: 'string', caseExact: false, jsonKey: 'value', fold: foldName, foldedOrExact: true },
        display: { type: 'string', caseExact: false, jsonKey: 'display' },
        type: { type: 'string', caseExact: false, jsonKey: 'type' },
        primary: { type: 'boolean', caseExact: false, jsonKey: 'primary' },
      },
    },
    // As users.mapper.ts renders phoneNumbers: the list as sent while it still holds the phone
    // column's number, otherwise that number alone (primary).
    phonenumbers: {
      type: 'complex',
      multi: {
        jsonbSql: `case when {alias}.phone is null then '[]'::jsonb
          when jsonb_typeof({alias}.scim_attributes -> 'phoneNumbers') = 'array'
           and {alias}.scim_attributes -> 'phoneNumbers' @> jsonb_build_array(jsonb_build_object('value', {alias}.phone))
          then {alias}.scim_attributes -> 'phoneNumbers'
          else jsonb_build_array(jsonb_build_object('value', {alias}.phone, 'primary', true)) end`,
      },
      defaultSubAttribute: 'value',
      subAttributes: { value: element('value'), display: element('display'), type: element('type'), primary: element('primary', 'boolean') },
    },
    active: { type: 'boolean', caseExact: false, sql: "{alias}.status = 'active'" },
    title: text('title'),
    locale: text('locale'),
    groups: {
      type: 'complex',
      multi: { table: 'group_members', foreignKey: 'user_id' },
      defaultSubAttribute: 'value',
      subAttributes: {
        value: uuidColumn('group_id'),
        display: { type: 'string', caseExact: false, sql: '(select scim_g.name from groups scim_g where scim_g.id = {alias}.group_id)' },
        type: { type: 'string', caseExact: false, sql: "'direct'" },
      },
    },
    meta,
    [`${ENTERPRISE}:employeenumber`]: text('employee_number'),
    [`${ENTERPRISE}:costcenter`]: keptText(['enterprise', 'costCenter']),
    [`${ENTERPRISE}:organization`]: keptText(['enterprise', 'organization']),
    [`${ENTERPRISE}:division`]: keptText(['enterprise', 'division']),
    // The user's primary department's name.
    [`${ENTERPRISE}:department`]: {
      type: 'string',
      caseExact: false,
      sql: '(select scim_d.name from user_departments scim_ud join departments scim_d on scim_d.id = scim_ud.department_id where scim_ud.user_id = {alias}.id and scim_ud.is_primary)',
    },
    [`${ENTERPRISE}:manager`]: managerAttribute(null),
  },
};


/**
 * The enterprise manager as a client with this scope sees it: for a department-scoped token only a
 * manager inside its subtree (users.query.ts leaves others out of the resource), so that a filter
 * cannot reveal who an unseen manager is. The path is checked and written as a literal (mapping
 * SQL takes no bindings); department paths are "/<uuid>/.../" and hold no LIKE metacharacters.
 */
function managerAttribute(scopePath: string | null): ScimComplexAttribute {
  if (scopePath !== null && !DEPARTMENT_PATH.test(scopePath)) throw new Error('scim filter mapping: not a department path');
  const visible = `scim_mg.id = {alias}.manager_id and scim_mg.status <> 'deprovisioned'${scopePath === null ? '' : ` and exists (
    select 1 from user_departments scim_mud join departments scim_md on scim_md.id = scim_mud.department_id
     where scim_mud.user_id = scim_mg.id and scim_md.path like '${scopePath}%')`}`;
  return {
    type: 'complex',
    defaultSubAttribute: 'value',
    subAttributes: {
      value: scopePath === null ? uuidColumn('manager_id') : { type: 'string', caseExact: true, uuid: true, sql: `(select scim_mg.id from users scim_mg where ${visible})` },
      displayname: {
        type: 'string', caseExact: false,
        sql: `(select coalesce(nullif(scim_mg.display_name, ''), nullif(trim(concat_ws(' ', scim_mg.given_name, scim_mg.family_name)), ''), scim_mg.username) from users scim_mg where ${visible})`,
      },
    },
  };
}

/** USER_FILTER_MAPPING for a client with this scope (a department path, or null for all). */
export function userFilterMapping(scopePath: string | null): ScimResourceMapping {
  if (scopePath === null) return USER_FILTER_MAPPING;
  return { ...USER_FILTER_MAPPING, attributes: { ...USER_FILTER_MAPPING.attributes, [`${ENTERPRISE}:manager`]: managerAttribute(scopePath) } };
}

/** SCIM Group -> `groups` (+ `group_members` for members). */
export const GROUP_FILTER_MAPPING: ScimResourceMapping = {
  coreSchema: SCIM_GROUP_SCHEMA,
  attributes: {
    id: uuidColumn('id'),
    externalid: text('external_id', true),
    // lower(name) = lower(?) is served by the unique index groups__name on lower(name).
    displayname: text('name'),
    members: {
      type: 'complex',
      multi: { table: 'group_members', foreignKey: 'group_id' },
      defaultSubAttribute: 'value',
      subAttributes: {
        value: uuidColumn('user_id'),
        // As findMembersOfGroups renders a member's display: the membership's label, else the user's (USER_LABEL_SQL).
        display: {
          type: 'string', caseExact: false,
          sql: "coalesce(nullif({alias}.display_label, ''), (select coalesce(nullif(scim_m.display_name, ''), nullif(trim(concat_ws(' ', scim_m.given_name, scim_m.family_name)), ''), scim_m.username) from users scim_m where scim_m.id = {alias}.user_id))",
        },
        type: { type: 'string', caseExact: false, sql: "'User'" },
      },
    },
    meta,
  },
};
