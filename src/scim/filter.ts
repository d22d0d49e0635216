// The SCIM filter language (RFC 7644 section 3.4.2.2): a tokenizer and a recursive-descent parser
// that turn `filter=...` into an AST, and a formatter that turns an AST back into filter text.
//
// What it accepts (the RFC grammar, with the leniencies noted):
//   FILTER    = orExp
//   orExp     = andExp *("or" andExp)              ; "and" binds tighter than "or"
//   andExp    = unary *("and" unary)
//   unary     = "not" "(" FILTER ")" / "(" FILTER ")" / valuePath / attrExp
//   valuePath = attrPath "[" valFilter "]"        ; valFilter: same grammar, no nested valuePath
//   attrExp   = attrPath "pr" / attrPath compareOp compValue
//   compareOp = eq / ne / co / sw / ew / gt / ge / lt / le
//   compValue = JSON string / JSON number / true / false / null
//   attrPath  = [URI ":"] ATTRNAME ["." ATTRNAME]  ; e.g. urn:ietf:params:scim:schemas:core:2.0:User:name.givenName
// Attribute names, operators and the and/or/not/pr keywords are case-insensitive (the AST keeps
// names as written; the SQL compiler lowercases them). Whitespace between tokens may be any mix of
// space, tab, CR and LF and is optional next to parentheses, brackets and strings.
//
// Safety: the input length is capped (maxLength) before anything else, and nesting depth of
// parentheses and brackets (maxDepth) is checked before each recursive step, so hostile input
// (10,000 "(" or a megabyte of text) gets a ScimFilterError, never a stack overflow. and/or chains
// are parsed with loops, not recursion. Every problem is a ScimFilterError('invalidFilter', detail).
//
// `emails[type eq "work"].value` is a PATCH path (RFC 7644 3.5.2), not a filter: rejected here.

import { isWellFormed } from '../shared/text-input.ts';
import { AppError } from '../shared/errors.ts';

/** RFC 7644 section 3.12 scimType values. */
export type ScimErrorType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

/**
 * A SCIM protocol error: the SCIM layer renders it as the Error schema with `status`, `scimType`
 * and `detail`. It is also an AppError (invalid_argument, code `scim.<scimType>`), so a handler
 * that only knows AppError still answers 400, never 500.
 */
export class ScimFilterError extends AppError {
  readonly scimType: ScimErrorType;
  readonly detail: string;
  readonly status: number;

  constructor(scimType: ScimErrorType, detail: string) {
    super(scimType === 'uniqueness' ? 'already_exists' : 'invalid_argument', `scim.${scimType}`, detail, { scimType });
    this.name = 'ScimFilterError';
    this.scimType = scimType;
    this.detail = detail;
    this.status = scimType === 'uniqueness' ? 409 : 400;
  }
}

export type CompareOperator = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
export type ScimFilterValue = string | number | boolean | null;

/** An attribute path as written (original case). `uri` is the schema URN without the trailing ':'. */
export interface AttrPath {
  uri?: string;
  name: string;
  subAttr?: string;
}

export interface CompareFilter { type: 'compare'; path: AttrPath; op: CompareOperator; value: ScimFilterValue }
export interface PresentFilter { type: 'present'; path: AttrPath }
export interface AndFilter { type: 'and'; filters: ScimFilter[] }
export interface OrFilter { type: 'or'; filters: ScimFilter[] }
export interface NotFilter { type: 'not'; filter: ScimFilter }
/** `path[filter]`: `filter` applies to each element of the multi-valued `path`; its paths are relative (sub-attribute names). */
export interface ValuePathFilter { type: 'valuePath'; path: AttrPath; filter: ScimFilter }

/** and/or always have two or more operands; a parenthesised group becomes a nested and/or node. */
export type ScimFilter = CompareFilter | PresentFilter | AndFilter | OrFilter | NotFilter | ValuePathFilter;

export interface ScimFilterParseOptions {
  /** Longest accepted filter, in UTF-16 code units. Default 4096. */
  maxLength?: number;
  /** Deepest accepted nesting of "(" and "[". Default 50. */
  maxDepth?: number;
  /**
   * Accept unquoted comparison values (`userName sw O`, `meta.created gt 2015-10-10T14:38:21Z`) as
   * strings, as Microsoft's SCIM test collection sends them. Not RFC 7644; default false. A bare
   * value that is a JSON number or true/false/null keeps that type.
   */
  allowUnquotedValues?: boolean;
}

export const DEFAULT_MAX_FILTER_LENGTH = 4096;
export const DEFAULT_MAX_FILTER_DEPTH = 50;

export const COMPARE_OPERATORS: readonly CompareOperator[] = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'];
const COMPARE_SET = new Set<string>(COMPARE_OPERATORS);

const ATTRNAME = /^(?:\$ref|[A-Za-z][A-Za-z0-9_-]*)$/;
const URI = /^[A-Za-z][A-Za-z0-9._:-]*$/;

// ---------------------------------------------------------------------------------------------
// Tokenizer (on demand, so that the parser can ask for an unquoted value in lenient mode)

type Token =
  | { kind: '(' | ')' | '[' | ']' | 'eof'; pos: number }
  | { kind: 'word'; text: string; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: number; text: string; pos: number };

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
function isWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
    || c === 0x5f /* _ */ || c === 0x2d /* - */ || c === 0x3a /* : */ || c === 0x2e /* . */ || c === 0x24 /* $ */;
}
function isWordStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x2e || c === 0x24;
}
/** Ends an unquoted value or a number. */
function isDelimiter(c: number): boolean {
  return Number.isNaN(c) || isSpace(c) || c === 0x28 || c === 0x29 || c === 0x5b || c === 0x5d;
}

/** A short, safe rendering of user text for error details. */
function quote(text: string, max = 40): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return JSON.stringify(cut);
}

function fail(detail: string): never {
  throw new ScimFilterError('invalidFilter', detail);
}

class Lexer {
  private pos = 0;
  private peeked: Token | undefined;

  constructor(private readonly src: string) {}

  peek(): Token {
    this.peeked ??= this.scan();
    return this.peeked;
  }

  next(): Token {
    const t = this.peek();
    this.peeked = undefined;
    return t;
  }

  /** Lenient mode: the next comparison value, quoted or bare (a run of characters up to whitespace or a bracket). */
  nextValueLenient(): Token {
    if (this.peeked) return this.next();
    const src = this.src;
    while (this.pos < src.length && isSpace(src.charCodeAt(this.pos))) this.pos += 1;
    const start = this.pos;
    if (start >= src.length || src.charCodeAt(start) === 0x22 || isDelimiter(src.charCodeAt(start))) return this.next();
    let end = start;
    while (end < src.length && !isDelimiter(src.charCodeAt(end))) end += 1;
    const text = src.slice(start, end);
    if (text.includes('"')) fail(`Unexpected '"' inside the unquoted value at offset ${start}; quote the whole value`);
    this.pos = end;
    NUMBER.lastIndex = 0;
    const m = NUMBER.exec(text);
    if (m && m[0].length === text.length) return { kind: 'number', value: toNumber(text, start), text, pos: start };
    return { kind: 'word', text, pos: start };
  }

  private scan(): Token {
    const src = this.src;
    while (this.pos < src.length && isSpace(src.charCodeAt(this.pos))) this.pos += 1;
    const pos = this.pos;
    if (pos >= src.length) return { kind: 'eof', pos };
    const c = src.charCodeAt(pos);
    if (c === 0x28 || c === 0x29 || c === 0x5b || c === 0x5d) {
      this.pos += 1;
      return { kind: src[pos] as '(' | ')' | '[' | ']', pos };
    }
    if (c === 0x22) return this.scanString(pos);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = pos;
      const m = NUMBER.exec(src);
      if (!m) fail(`Invalid number at offset ${pos}`);
      const end = pos + m[0].length;
      if (!isDelimiter(src.charCodeAt(end))) fail(`Invalid number at offset ${pos}: ${quote(src.slice(pos, pos + 20))}`);
      this.pos = end;
      return { kind: 'number', value: toNumber(m[0], pos), text: m[0], pos };
    }
    if (isWordStart(c)) {
      let end = pos + 1;
      while (end < src.length && isWordChar(src.charCodeAt(end))) end += 1;
      this.pos = end;
      return { kind: 'word', text: src.slice(pos, end), pos };
    }
    const ch = String.fromCodePoint(src.codePointAt(pos) ?? c);
    fail(`Unexpected character ${JSON.stringify(ch)} at offset ${pos}`);
  }

  private scanString(start: number): Token {
    const src = this.src;
    let i = start + 1;
    for (;;) {
      if (i >= src.length) fail(`Unterminated string starting at offset ${start}`);
      const c = src.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail(`Control character U+${c.toString(16).padStart(4, '0').toUpperCase()} in the string at offset ${start}; escape it`);
      if (c === 0x5c) {
        if (i + 1 >= src.length) fail(`Unterminated string starting at offset ${start}`);
        i += 2;
      } else {
        i += 1;
      }
    }
    let value: string;
    try {
      value = JSON.parse(src.slice(start, i + 1)) as string;
    } catch {
      fail(`Invalid escape sequence in the string at offset ${start} (strings are JSON strings)`);
    }
    if (value.includes('\u0000')) fail(`The string at offset ${start} contains a NUL character, which is not allowed`);
    // A lone "\ud800" escape: PostgreSQL would compare U+FFFD instead (the driver's UTF-8 encoding).
    if (!isWellFormed(value)) {
      fail(`The string at offset ${start} contains an unpaired UTF-16 surrogate, which is not allowed`);
    }
    this.pos = i + 1;
    return { kind: 'string', value, pos: start };
  }
}

function toNumber(text: string, pos: number): number {
  const n = Number(text);
  if (!Number.isFinite(n)) fail(`Number out of range at offset ${pos}`);
  return n;
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'eof': return 'end of filter';
    case 'string': return `a string at offset ${t.pos}`;
    case 'number': return `the number ${t.text} at offset ${t.pos}`;
    case 'word': return `${quote(t.text)} at offset ${t.pos}`;
    default: return `'${t.kind}' at offset ${t.pos}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

/** Parses an attribute path such as `name.givenName` or `urn:...:2.0:User:userName`. */
export function parseAttrPath(text: string, pos = 0): AttrPath {
  let uri: string | undefined;
  let rest = text;
  const colon = text.lastIndexOf(':');
  if (colon >= 0) {
    uri = text.slice(0, colon);
    rest = text.slice(colon + 1);
    if (!URI.test(uri) || uri.endsWith(':')) fail(`Invalid schema URI in the attribute path ${quote(text, 120)} at offset ${pos}`);
    if (rest === '') fail(`The attribute path ${quote(text, 120)} at offset ${pos} names a schema but no attribute`);
  }
  const parts = rest.split('.');
  if (parts.length > 2) fail(`Invalid attribute path ${quote(text, 120)} at offset ${pos}: at most one sub-attribute (attribute.subAttribute)`);
  const [name, subAttr] = parts as [string, string | undefined];
  if (!ATTRNAME.test(name) || (subAttr !== undefined && !ATTRNAME.test(subAttr))) {
    fail(`Invalid attribute path ${quote(text, 120)} at offset ${pos}`);
  }
  const path: AttrPath = { name };
  if (uri !== undefined) path.uri = uri;
  if (subAttr !== undefined) path.subAttr = subAttr;
  return path;
}

class Parser {
  private depth = 0;
  private readonly maxDepth: number;
  private readonly lenient: boolean;

  constructor(private readonly lexer: Lexer, options: ScimFilterParseOptions) {
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_FILTER_DEPTH;
    this.lenient = options.allowUnquotedValues ?? false;
  }

  parse(): ScimFilter {
    const f = this.parseOr(false);
    const t = this.lexer.next();
    if (t.kind !== 'eof') fail(`Expected 'and', 'or' or end of filter, found ${describe(t)}`);
    return f;
  }

  private enter(t: Token): void {
    this.depth += 1;
    if (this.depth > this.maxDepth) fail(`Filter is nested too deeply (more than ${this.maxDepth} levels of parentheses/brackets) at offset ${t.pos}`);
  }

  private isKeyword(t: Token, word: string): boolean {
    return t.kind === 'word' && t.text.toLowerCase() === word;
  }

  private parseOr(inValuePath: boolean): ScimFilter {
    const filters = [this.parseAnd(inValuePath)];
    while (this.isKeyword(this.lexer.peek(), 'or')) {
      this.lexer.next();
      filters.push(this.parseAnd(inValuePath));
    }
    return filters.length === 1 ? filters[0]! : { type: 'or', filters };
  }

  private parseAnd(inValuePath: boolean): ScimFilter {
    const filters = [this.parseUnary(inValuePath)];
    while (this.isKeyword(this.lexer.peek(), 'and')) {
      this.lexer.next();
      filters.push(this.parseUnary(inValuePath));
    }
    return filters.length === 1 ? filters[0]! : { type: 'and', filters };
  }

  private parseGroup(open: Token, inValuePath: boolean): ScimFilter {
    this.enter(open);
    const f = this.parseOr(inValuePath);
    const close = this.lexer.next();
    if (close.kind !== ')') fail(`Expected 'and', 'or' or ')' to close the '(' at offset ${open.pos}, found ${describe(close)}`);
    this.depth -= 1;
    return f;
  }

  private parseUnary(inValuePath: boolean): ScimFilter {
    const t = this.lexer.next();
    if (t.kind === '(') return this.parseGroup(t, inValuePath);
    if (t.kind !== 'word') fail(`Expected an attribute path, 'not' or '(', found ${describe(t)}`);

    const lower = t.text.toLowerCase();
    const after = this.lexer.peek();
    if (lower === 'not' && after.kind === '(') {
      this.lexer.next();
      return { type: 'not', filter: this.parseGroup(after, inValuePath) };
    }
    // "not", "and" and "or" are also valid attribute names, when an operator or "[" follows.
    if (lower === 'not' && after.kind !== '[' && !(after.kind === 'word' && (COMPARE_SET.has(after.text.toLowerCase()) || after.text.toLowerCase() === 'pr'))) {
      fail(`Expected '(' after 'not' at offset ${t.pos} (write not (...)), found ${describe(after)}`);
    }
    if ((lower === 'and' || lower === 'or') && after.kind !== 'word' && after.kind !== '[') {
      fail(`Expected an attribute path, 'not' or '(', found ${describe(t)}`);
    }
    if (t.text.startsWith('.')) fail(`Unexpected ${describe(t)}`);

    const path = parseAttrPath(t.text, t.pos);
    const opTok = this.lexer.next();

    if (opTok.kind === '[') {
      if (inValuePath) fail(`Value filters cannot be nested: '[' at offset ${opTok.pos} is inside another [...]`);
      if (path.subAttr !== undefined) fail(`A value filter applies to a multi-valued attribute, not to the sub-attribute ${quote(t.text, 120)} (offset ${t.pos})`);
      this.enter(opTok);
      const filter = this.parseOr(true);
      const close = this.lexer.next();
      if (close.kind !== ']') fail(`Expected 'and', 'or' or ']' to close the '[' at offset ${opTok.pos}, found ${describe(close)}`);
      this.depth -= 1;
      const next = this.lexer.peek();
      if (next.kind === 'word' && next.text.startsWith('.')) {
        fail(`${quote(`${t.text}[...]${next.text}`, 120)} at offset ${t.pos}: a sub-attribute after a value filter is only valid in PATCH paths, not in filters; write ${t.text}[...] and filter on the sub-attribute inside the brackets`);
      }
      return { type: 'valuePath', path, filter };
    }

    if (opTok.kind !== 'word') fail(`Expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after ${quote(t.text, 120)}, found ${describe(opTok)}`);
    const op = opTok.text.toLowerCase();
    if (op === 'pr') return { type: 'present', path };
    if (!COMPARE_SET.has(op)) fail(`Unknown operator ${quote(opTok.text)} at offset ${opTok.pos}; expected eq, ne, co, sw, ew, gt, ge, lt, le or pr`);

    return { type: 'compare', path, op: op as CompareOperator, value: this.parseValue(opTok) };
  }

  private parseValue(opTok: Token): ScimFilterValue {
    const v = this.lenient ? this.lexer.nextValueLenient() : this.lexer.next();
    if (v.kind === 'string' || v.kind === 'number') return v.value;
    if (v.kind === 'word') {
      const w = v.text.toLowerCase();
      if (w === 'true') return true;
      if (w === 'false') return false;
      if (w === 'null') return null;
      if (this.lenient) return v.text;
    }
    fail(`Expected a value (a "quoted string", a number, true, false or null) after the operator at offset ${opTok.pos}, found ${describe(v)}`);
  }
}

/**
 * Parses a SCIM filter. Throws ScimFilterError('invalidFilter', detail) for every malformed,
 * too long or too deeply nested input, and for a non-string input (e.g. a repeated query parameter).
 */
export function parseScimFilter(input: unknown, options: ScimFilterParseOptions = {}): ScimFilter {
  if (typeof input !== 'string') fail('The filter must be a single string');
  const maxLength = options.maxLength ?? DEFAULT_MAX_FILTER_LENGTH;
  if (input.length > maxLength) fail(`Filter is too long (${input.length} characters; the limit is ${maxLength})`);
  if (input.trim() === '') fail('The filter is empty');
  return new Parser(new Lexer(input), options).parse();
}

// ---------------------------------------------------------------------------------------------
// Formatter

export function formatAttrPath(path: AttrPath): string {
  return `${path.uri !== undefined ? `${path.uri}:` : ''}${path.name}${path.subAttr !== undefined ? `.${path.subAttr}` : ''}`;
}

/**
 * Canonical filter text for an AST: parseScimFilter(formatScimFilter(f)) deep-equals f for every
 * AST the parser produces. Values are written as JSON, nested and/or groups in parentheses.
 */
export function formatScimFilter(filter: ScimFilter): string {
  switch (filter.type) {
    case 'compare': return `${formatAttrPath(filter.path)} ${filter.op} ${JSON.stringify(filter.value)}`;
    case 'present': return `${formatAttrPath(filter.path)} pr`;
    case 'not': return `not (${formatScimFilter(filter.filter)})`;
    case 'valuePath': return `${formatAttrPath(filter.path)}[${formatScimFilter(filter.filter)}]`;
    case 'and':
    case 'or':
      return filter.filters
        .map((f) => (f.type === 'and' || f.type === 'or' ? `(${formatScimFilter(f)})` : formatScimFilter(f)))
        .join(` ${filter.type} `);
  }
}
