// The SCIM filter parser (RFC 7644 section 3.4.2.2): the AST it builds, and the invalidFilter
// errors it gives for everything else.
import {
  parseScimFilter, formatScimFilter, ScimFilterError,
  type ScimFilter, type ScimFilterParseOptions,
} from '../../src/scim/filter.ts';
import { AppError } from '../../src/shared/errors.ts';

/** The ScimFilterError a parse throws; fails the test when it parses or throws something else. */
function parseError(input: unknown, options?: ScimFilterParseOptions): ScimFilterError {
  let thrown: unknown;
  try {
    parseScimFilter(input, options);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ScimFilterError);
  const err = thrown as ScimFilterError;
  expect(err.scimType).toBe('invalidFilter');
  expect(err.status).toBe(400);
  expect(err.detail.length).toBeGreaterThan(0);
  expect(err).toBeInstanceOf(AppError);
  expect(err.kind).toBe('invalid_argument');
  expect(err.code).toBe('scim.invalidFilter');
  return err;
}

const cmp = (name: string, op: string, value: unknown, subAttr?: string, uri?: string): ScimFilter => ({
  type: 'compare',
  path: { ...(uri !== undefined ? { uri } : {}), name, ...(subAttr !== undefined ? { subAttr } : {}) },
  op,
  value,
} as ScimFilter);

describe('parseScimFilter: comparisons', () => {
  it.each(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'])('parses the %s operator', (op) => {
    expect(parseScimFilter(`title ${op} "x"`)).toEqual(cmp('title', op, 'x'));
  });

  it('parses pr', () => {
    expect(parseScimFilter('title pr')).toEqual({ type: 'present', path: { name: 'title' } });
  });

  it('treats operators and keywords case-insensitively and keeps attribute names as written', () => {
    expect(parseScimFilter('USERNAME EQ "x" AND Title PR')).toEqual({
      type: 'and',
      filters: [cmp('USERNAME', 'eq', 'x'), { type: 'present', path: { name: 'Title' } }],
    });
  });

  it('parses the filters Okta and Entra ID send', () => {
    expect(parseScimFilter('userName eq "alice@x.com"')).toEqual(cmp('userName', 'eq', 'alice@x.com'));
    expect(parseScimFilter('externalId eq "123"')).toEqual(cmp('externalId', 'eq', '123'));
    expect(parseScimFilter('displayName eq "Group A"')).toEqual(cmp('displayName', 'eq', 'Group A'));
    expect(parseScimFilter('members[value eq "2f1d5f0e-7d3b-4f59-9a57-1f2b3c4d5e6f"]')).toEqual({
      type: 'valuePath',
      path: { name: 'members' },
      filter: cmp('value', 'eq', '2f1d5f0e-7d3b-4f59-9a57-1f2b3c4d5e6f'),
    });
  });

  it('parses sub-attributes', () => {
    expect(parseScimFilter('name.familyName eq "O\'Malley"')).toEqual(cmp('name', 'eq', "O'Malley", 'familyName'));
  });

  it('parses $ref as a sub-attribute name', () => {
    expect(parseScimFilter('members.$ref pr')).toEqual({ type: 'present', path: { name: 'members', subAttr: '$ref' } });
  });

  it('splits schema-URN-prefixed paths at the last colon', () => {
    expect(parseScimFilter('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"'))
      .toEqual(cmp('userName', 'eq', 'a', undefined, 'urn:ietf:params:scim:schemas:core:2.0:User'));
    expect(parseScimFilter('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"'))
      .toEqual(cmp('employeeNumber', 'eq', '701984', undefined, 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'));
    expect(parseScimFilter('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"'))
      .toEqual(cmp('manager', 'eq', 'm', 'value', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'));
  });

  it('accepts a date-time string for meta.lastModified', () => {
    expect(parseScimFilter('meta.lastModified gt "2011-05-13T04:42:34Z"')).toEqual(cmp('meta', 'gt', '2011-05-13T04:42:34Z', 'lastModified'));
  });
});

describe('parseScimFilter: values', () => {
  it.each([
    ['"a\\"b"', 'a"b'],
    ['"back\\\\slash"', 'back\\slash'],
    ['"sl\\/ash"', 'sl/ash'],
    ['"tab\\tnew\\nline"', 'tab\tnew\nline'],
    ['"\\u00e9t\\u00E9"', 'été'],
    ['"\\ud83d\\ude00"', '😀'],
    ['"Zoë 😀 中文"', 'Zoë 😀 中文'],
    ['""', ''],
    ['"and or not ( ) [ ] pr eq"', 'and or not ( ) [ ] pr eq'],
    ['"\'; drop table users; --"', "'; drop table users; --"],
  ])('decodes the JSON string %s', (literal, value) => {
    expect(parseScimFilter(`displayName eq ${literal}`)).toEqual(cmp('displayName', 'eq', value));
  });

  it.each([
    ['0', 0], ['42', 42], ['-7', -7], ['3.25', 3.25], ['1e3', 1000], ['-2.5E-2', -0.025],
  ])('parses the number %s', (literal, value) => {
    expect(parseScimFilter(`x gt ${literal}`)).toEqual(cmp('x', 'gt', value));
  });

  it('parses true, false and null, in any case', () => {
    expect(parseScimFilter('active eq true')).toEqual(cmp('active', 'eq', true));
    expect(parseScimFilter('active eq False')).toEqual(cmp('active', 'eq', false));
    expect(parseScimFilter('title eq NULL')).toEqual(cmp('title', 'eq', null));
  });

  it.each([
    ['an invalid escape', 'title eq "a\\xb"'],
    ['a truncated \\u escape', 'title eq "\\u12"'],
    ['an unterminated string', 'title eq "abc'],
    ['a string ending in a backslash', 'title eq "abc\\'],
    ['a raw control character', 'title eq "a\u0001b"'],
    ['a raw newline in a string', 'title eq "a\nb"'],
    ['a NUL character', 'title eq "a\\u0000b"'],
    ['a single-quoted string', "title eq 'abc'"],
    ['a number out of range', 'x gt 1e999'],
    ['a number with a leading zero', 'x gt 01'],
    ['a number glued to letters', 'x gt 12abc'],
    ['a bare word (strict mode)', 'userName eq alice'],
    ['a missing value', 'userName eq'],
    ['an operator as value', 'userName eq and'],
  ])('rejects %s', (_what, input) => {
    parseError(input);
  });

  it('names the control character in its error', () => {
    expect(parseError('title eq "a\u0007"').detail).toContain('U+0007');
  });
});

describe('parseScimFilter: logic and precedence', () => {
  const a = cmp('a', 'eq', 1);
  const b = cmp('b', 'eq', 2);
  const c = cmp('c', 'eq', 3);

  it('binds and tighter than or: a or b and c', () => {
    expect(parseScimFilter('a eq 1 or b eq 2 and c eq 3')).toEqual({ type: 'or', filters: [a, { type: 'and', filters: [b, c] }] });
  });

  it('binds and tighter than or: a and b or c', () => {
    expect(parseScimFilter('a eq 1 and b eq 2 or c eq 3')).toEqual({ type: 'or', filters: [{ type: 'and', filters: [a, b] }, c] });
  });

  it('lets parentheses override precedence', () => {
    expect(parseScimFilter('(a eq 1 or b eq 2) and c eq 3')).toEqual({ type: 'and', filters: [{ type: 'or', filters: [a, b] }, c] });
  });

  it('collects a chain of ands into one node', () => {
    expect(parseScimFilter('a eq 1 and b eq 2 and c eq 3')).toEqual({ type: 'and', filters: [a, b, c] });
  });

  it('keeps a parenthesised group as its own node', () => {
    expect(parseScimFilter('a eq 1 and (b eq 2 and c eq 3)')).toEqual({ type: 'and', filters: [a, { type: 'and', filters: [b, c] }] });
  });

  it('parses redundant parentheses to the inner filter', () => {
    expect(parseScimFilter('(((a eq 1)))')).toEqual(a);
  });

  it('parses not (...), with or without a space', () => {
    expect(parseScimFilter('not (a eq 1 or b eq 2)')).toEqual({ type: 'not', filter: { type: 'or', filters: [a, b] } });
    expect(parseScimFilter('NOT(a eq 1)')).toEqual({ type: 'not', filter: a });
  });

  it('parses not inside and/or and nested not', () => {
    expect(parseScimFilter('a eq 1 and not (not (b eq 2))')).toEqual({
      type: 'and', filters: [a, { type: 'not', filter: { type: 'not', filter: b } }],
    });
  });

  it('parses the RFC 7644 example filters', () => {
    expect(parseScimFilter('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")')).toEqual({
      type: 'and',
      filters: [
        cmp('userType', 'eq', 'Employee'),
        { type: 'or', filters: [cmp('emails', 'co', 'example.com'), cmp('emails', 'co', 'example.org', 'value')] },
      ],
    });
    expect(parseScimFilter('userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")').type).toBe('and');
    expect(parseScimFilter('userType eq "Employee" and emails[type eq "work" and value co "@example.com"]').type).toBe('and');
    expect(parseScimFilter('emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]').type).toBe('or');
  });

  it('accepts tabs and newlines as whitespace and no space around parentheses', () => {
    expect(parseScimFilter('(a eq 1)and(b eq 2)')).toEqual({ type: 'and', filters: [a, b] });
    expect(parseScimFilter('\ta eq 1\n\r\nor\tb eq 2 ')).toEqual({ type: 'or', filters: [a, b] });
  });

  it.each([
    ['not without parentheses', 'not a eq 1'],
    ['a dangling and', 'a eq 1 and'],
    ['a leading or', 'or a eq 1'],
    ['an unclosed parenthesis', '(a eq 1'],
    ['an unopened parenthesis', 'a eq 1)'],
    ['empty parentheses', '()'],
    ['juxtaposed expressions', 'a eq 1 b eq 2'],
    ['an unknown logical operator', 'a eq 1 xor b eq 2'],
    ['an unknown comparison operator', 'userName like "x"'],
    ['a SQL-style operator', 'userName = "x"'],
    ['a missing operator', 'userName'],
    ['a value after pr', 'userName pr "x"'],
    ['trailing garbage', 'userName eq "x" ;'],
    ['an attribute path starting with a digit', '1abc eq "x"'],
    ['two sub-attribute levels', 'a.b.c eq "x"'],
    ['an empty sub-attribute', 'name. eq "x"'],
    ['a URN without attribute', 'urn:ietf:params:scim:schemas:core:2.0:User: eq "x"'],
    ['a non-ASCII attribute name', 'nämé eq "x"'],
  ])('rejects %s', (_what, input) => {
    parseError(input);
  });

  it('says what it expected and where', () => {
    expect(parseError('userName like "x"').detail).toMatch(/Unknown operator "like" at offset 9/);
    expect(parseError('not a eq 1').detail).toMatch(/'\(' after 'not'/);
    expect(parseError('(a eq 1').detail).toMatch(/close the '\(' at offset 0, found end of filter/);
  });
});

describe('parseScimFilter: value paths', () => {
  it('parses a value path with a logical filter inside', () => {
    expect(parseScimFilter('emails[type eq "work" and value co "@x.com"]')).toEqual({
      type: 'valuePath',
      path: { name: 'emails' },
      filter: { type: 'and', filters: [cmp('type', 'eq', 'work'), cmp('value', 'co', '@x.com')] },
    });
  });

  it('combines value paths with outer and/or, binding and tighter', () => {
    const f = parseScimFilter('userName eq "a" or emails[type eq "work"] and emails[primary eq true]');
    expect(f).toEqual({
      type: 'or',
      filters: [
        cmp('userName', 'eq', 'a'),
        {
          type: 'and',
          filters: [
            { type: 'valuePath', path: { name: 'emails' }, filter: cmp('type', 'eq', 'work') },
            { type: 'valuePath', path: { name: 'emails' }, filter: cmp('primary', 'eq', true) },
          ],
        },
      ],
    });
  });

  it('allows parentheses and not inside the brackets', () => {
    expect(parseScimFilter('emails[not (type eq "work") and (value ew ".org" or primary eq true)]')).toEqual({
      type: 'valuePath',
      path: { name: 'emails' },
      filter: {
        type: 'and',
        filters: [
          { type: 'not', filter: cmp('type', 'eq', 'work') },
          { type: 'or', filters: [cmp('value', 'ew', '.org'), cmp('primary', 'eq', true)] },
        ],
      },
    });
  });

  it('parses a value path inside not (...) and with a URN prefix', () => {
    expect(parseScimFilter('not (urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"])')).toEqual({
      type: 'not',
      filter: { type: 'valuePath', path: { uri: 'urn:ietf:params:scim:schemas:core:2.0:User', name: 'emails' }, filter: cmp('type', 'eq', 'work') },
    });
  });

  it('rejects emails[type eq "work"].value: a PATCH path, not a filter', () => {
    expect(parseError('emails[type eq "work"].value eq "a@x.com"').detail).toMatch(/only valid in PATCH paths/);
    parseError('emails[type eq "work"].value');
  });

  it.each([
    ['nested value paths', 'emails[type eq "work" and x[y eq 1]]'],
    ['empty brackets', 'emails[]'],
    ['an unclosed bracket', 'emails[type eq "work"'],
    ['a bracket closed by a parenthesis', 'emails[type eq "work")'],
    ['a value path on a sub-attribute', 'name.givenName[value eq "x"]'],
    ['a value path used as a comparison', 'emails[type eq "work"] eq "x"'],
  ])('rejects %s', (_what, input) => {
    parseError(input);
  });
});

describe('parseScimFilter: limits and bad input', () => {
  it('rejects an empty or blank filter', () => {
    parseError('');
    parseError('   \t ');
  });

  it('rejects a non-string filter such as a repeated query parameter', () => {
    expect(parseError(['userName eq "a"', 'userName eq "b"']).detail).toMatch(/single string/);
    parseError(undefined);
    parseError(42);
  });

  it('accepts a filter of exactly the maximum length and rejects one character more', () => {
    const base = 'displayName eq ""';
    const atLimit = `displayName eq "${'a'.repeat(4096 - base.length)}"`;
    expect(atLimit).toHaveLength(4096);
    expect(parseScimFilter(atLimit).type).toBe('compare');
    expect(parseError(`${atLimit} `).detail).toMatch(/too long \(4097 characters; the limit is 4096\)/);
  });

  it('honours a custom maxLength', () => {
    parseError('userName eq "abcdef"', { maxLength: 10 });
  });

  it('rejects a megabyte of input without scanning it', () => {
    expect(parseError('('.repeat(1_000_000)).detail).toMatch(/too long/);
  });

  it('accepts 50 levels of nesting and rejects 51', () => {
    expect(parseScimFilter(`${'('.repeat(50)}a eq 1${')'.repeat(50)}`)).toEqual(cmp('a', 'eq', 1));
    expect(parseError(`${'('.repeat(51)}a eq 1${')'.repeat(51)}`).detail).toMatch(/nested too deeply \(more than 50/);
  });

  it('counts not (...) and brackets towards the depth', () => {
    parseScimFilter(`${'not ('.repeat(49)}emails[type eq "w"]${')'.repeat(49)}`);
    parseError(`${'not ('.repeat(50)}emails[type eq "w"]${')'.repeat(50)}`);
  });

  it('rejects 10,000 open parentheses with invalidFilter, not a stack overflow, even without a length limit', () => {
    const deep = `${'('.repeat(10_000)}a eq 1${')'.repeat(10_000)}`;
    expect(parseError(deep, { maxLength: 1_000_000 }).detail).toMatch(/nested too deeply/);
    parseError('not ('.repeat(10_000), { maxLength: 1_000_000 });
  });

  it('parses a long and-chain without recursion', () => {
    const chain = Array.from({ length: 20_000 }, (_, i) => `a eq ${i}`).join(' and ');
    const f = parseScimFilter(chain, { maxLength: 1_000_000 });
    expect(f.type === 'and' && f.filters.length).toBe(20_000);
  });

  it.each([
    "userName eq \"x\" or 1=1 --",
    "userName eq \"x\"; drop table users; --",
    "userName eq \"x\"' or '1'='1",
    'userName eq "x" /* comment */',
    'userName eq `x`',
    'userName eq "x" union select * from users',
    'userName\u00a0eq "x"',
    '\ufeffuserName eq "x"',
  ])('rejects the injection-style input %j', (input) => {
    parseError(input);
  });

  it('caps echoed input in error details', () => {
    const detail = parseError(`${'a'.repeat(3000)}.b.c eq "x"`).detail;
    expect(detail).toMatch(/^Invalid attribute path "a{120}\.\.\."/);
    expect(detail.length).toBeLessThan(300);
    expect(parseError(`userName eq "x" ${'z'.repeat(3000)}`).detail.length).toBeLessThan(300);
  });
});

describe('parseScimFilter: unquoted values (allowUnquotedValues)', () => {
  const lenient = { allowUnquotedValues: true };

  it('parses the filters of Microsoft\'s SCIM test collection', () => {
    expect(parseScimFilter('userName sw O', lenient)).toEqual(cmp('userName', 'sw', 'O'));
    expect(parseScimFilter('meta.Created gt 2015-10-10T14:38:21.8617979-07:00', lenient))
      .toEqual(cmp('meta', 'gt', '2015-10-10T14:38:21.8617979-07:00', 'Created'));
    expect(parseScimFilter('name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)', lenient)).toEqual({
      type: 'and',
      filters: [
        cmp('name', 'eq', 'Employee', 'FamilyName'),
        { type: 'or', filters: [cmp('emails', 'co', 'example.com', 'Value'), cmp('emails', 'co', 'example.org', 'Value')] },
      ],
    });
  });

  it('keeps numbers, booleans and null typed and quoted strings as strings', () => {
    expect(parseScimFilter('x eq 12', lenient)).toEqual(cmp('x', 'eq', 12));
    expect(parseScimFilter('x eq true', lenient)).toEqual(cmp('x', 'eq', true));
    expect(parseScimFilter('x eq null', lenient)).toEqual(cmp('x', 'eq', null));
    expect(parseScimFilter('x eq "a b"', lenient)).toEqual(cmp('x', 'eq', 'a b'));
    expect(parseScimFilter('x eq 12abc', lenient)).toEqual(cmp('x', 'eq', '12abc'));
  });

  it('still rejects a missing value and a stray quote', () => {
    parseError('userName eq', lenient);
    parseError('userName eq )', lenient);
    parseError('userName eq ab"c', lenient);
  });
});

describe('formatScimFilter', () => {
  it.each([
    'userName eq "alice@x.com"',
    'a eq 1 or (b eq 2 and c eq 3)',
    '(a eq 1 or b eq 2) and c eq 3',
    'not (emails[type eq "work" and value co "@x.com"])',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x\\"y"',
    'title pr and active eq false and x ne null and n ge -1.5',
  ])('writes %s back as it reads it', (text) => {
    expect(formatScimFilter(parseScimFilter(text))).toBe(text);
  });

  it('re-parses its own output to the same tree', () => {
    const f = parseScimFilter('USERNAME Eq "a\\u0001\\"" OR (b Pr AND NOT(c LT 3))');
    expect(parseScimFilter(formatScimFilter(f))).toEqual(f);
  });
});
