// Property-based tests of the SCIM filter parser and SQL compiler (fast-check): every input either
// parses or is a ScimFilterError('invalidFilter') - never another exception, never a stack
// overflow - and values never reach the SQL text.
import fc from 'fast-check';
import { foldName } from '../../src/shared/names.ts';
import {
  parseScimFilter, formatScimFilter, ScimFilterError,
  type AttrPath, type ScimFilter, type ScimFilterParseOptions, type ScimFilterValue,
} from '../../src/scim/filter.ts';
import {
  compileScimFilter, escapeLike, USER_FILTER_MAPPING, GROUP_FILTER_MAPPING, SCIM_ENTERPRISE_USER_SCHEMA, type SqlFragment,
} from '../../src/scim/filter-sql.ts';

const RUNS = { numRuns: 2000 };

/** Parses; returns undefined for a ScimFilterError('invalidFilter') and rethrows anything else. */
function tryParse(input: string, options?: ScimFilterParseOptions): ScimFilter | undefined {
  try {
    return parseScimFilter(input, options);
  } catch (err) {
    if (err instanceof ScimFilterError && err.scimType === 'invalidFilter' && err.detail.length > 0) return undefined;
    throw err;
  }
}

function tryCompile(filter: ScimFilter, mapping = USER_FILTER_MAPPING): SqlFragment | undefined {
  try {
    return compileScimFilter(filter, mapping, 'u');
  } catch (err) {
    if (err instanceof ScimFilterError && err.scimType === 'invalidFilter' && err.detail.length > 0) return undefined;
    throw err;
  }
}

/**
 * The SQL text holds no value: once the mapping's own constant literals are removed, no quote,
 * comment or statement separator is left, and every binding is a plain scalar.
 */
function expectNoValuesInSql({ sql, bindings }: SqlFragment): void {
  const withoutConstants = sql
    .replaceAll("E'\\\\'", '') // the LIKE escape clause
    .replace(/'(?:array|\[\]|boolean|number|value|type|primary|active|display|formatted|object|string|honorificPrefix|givenName|middleName|familyName|honorificSuffix|streetAddress|locality|region|postalCode|country|phoneNumbers|direct|User|deprovisioned| |\{[A-Za-z]+,[A-Za-z0-9]+\}|)'/g, '') // the mapping's literals
    .replace(/"[A-Za-z_][A-Za-z0-9_]*"/g, ''); // quoted identifiers
  expect(withoutConstants).not.toMatch(/['"]/);
  expect(withoutConstants).not.toMatch(/--|\/\*|;|\$/);
  for (const b of bindings) expect(['string', 'number', 'boolean']).toContain(typeof b);
  expect(sql.split('?').length - 1).toBe(bindings.length);
}

/** The tree with attribute names lower-cased (names are case-insensitive; the AST keeps them as written). */
function lowerNames(f: ScimFilter): ScimFilter {
  const lp = (p: AttrPath): AttrPath => JSON.parse(JSON.stringify(p).toLowerCase()) as AttrPath;
  switch (f.type) {
    case 'compare': return { ...f, path: lp(f.path) };
    case 'present': return { ...f, path: lp(f.path) };
    case 'not': return { ...f, filter: lowerNames(f.filter) };
    case 'valuePath': return { ...f, path: lp(f.path), filter: lowerNames(f.filter) };
    default: return { ...f, filters: f.filters.map(lowerNames) };
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const letter = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
const nameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_');
const attrName = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(letter, fc.string({ unit: nameChar, maxLength: 10 })).map(([a, b]) => a + b) },
  { weight: 1, arbitrary: fc.constantFrom('and', 'or', 'not', 'pr', 'eq', 'true', 'null', 'AND', 'Not') },
);
const uri = fc.array(fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'), minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 })
  .map((segments) => `urn:${segments.join(':')}`);
const attrPath = (withSub: boolean): fc.Arbitrary<AttrPath> =>
  fc.record({ uri: fc.option(uri, { nil: undefined }), name: attrName, subAttr: withSub ? fc.option(attrName, { nil: undefined }) : fc.constant(undefined) })
    .map(({ uri: u, name, subAttr }) => ({ ...(u !== undefined ? { uri: u } : {}), name, ...(subAttr !== undefined ? { subAttr } : {}) }));

const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(
    "'; drop table users; --", "' or '1'='1", '" or "1"="1', '\\', '\\\\', '"', "'", '%', '_', '?', '??', '$1', ':name', '/*', '*/', '--',
    'Zoë', '😀', '\ud800', '\u2028', 'null', 'true', ')', ']', '(', '[', 'and', 'or',
  ),
)
  // Strings PostgreSQL cannot compare as sent (a NUL; an unpaired surrogate, which the driver would
  // turn into U+FFFD) are refused by the parser: not part of the round-trip properties.
  .filter((s) => !s.includes('\u0000') && (s as unknown as { isWellFormed(): boolean }).isWellFormed());
const value: fc.Arbitrary<ScimFilterValue> = fc.oneof(
  nastyString,
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const op = fc.constantFrom('eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le' as const);

/** ASTs in the shape the parser produces: and/or with 2+ operands, no value path inside a value path. */
function filterArb(leafPath: (withSub: boolean) => fc.Arbitrary<AttrPath>, leafValue: fc.Arbitrary<ScimFilterValue>): fc.Arbitrary<ScimFilter> {
  const leaf = (withSub: boolean) => fc.oneof(
    fc.record({ path: leafPath(withSub), op, value: leafValue }).map((x): ScimFilter => ({ type: 'compare', ...x })),
    leafPath(withSub).map((path): ScimFilter => ({ type: 'present', path })),
  );
  const tree = (inValuePath: boolean): fc.Arbitrary<ScimFilter> => fc.letrec<{ f: ScimFilter }>((tie) => ({
    f: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf(true),
      fc.array(tie('f'), { minLength: 2, maxLength: 3 }).map((filters): ScimFilter => ({ type: 'and', filters })),
      fc.array(tie('f'), { minLength: 2, maxLength: 3 }).map((filters): ScimFilter => ({ type: 'or', filters })),
      tie('f').map((filter): ScimFilter => ({ type: 'not', filter })),
      ...(inValuePath ? [] : [fc.record({ path: leafPath(false), filter: inner }).map((x): ScimFilter => ({ type: 'valuePath', ...x }))]),
    ),
  })).f;
  const inner: fc.Arbitrary<ScimFilter> = tree(true);
  return tree(false);
}

const anyFilter = filterArb(attrPath, value);

const ENT = SCIM_ENTERPRISE_USER_SCHEMA;
const KNOWN_PATHS = [
  'userName', 'externalId', 'id', 'name.givenName', 'name.familyName', 'displayName', 'title', 'locale', 'emails', 'emails.value',
  'emails.type', 'emails.primary', 'active', 'meta.created', 'meta.lastModified', 'phoneNumbers', 'groups', 'members', 'members.value',
  `${ENT}:employeeNumber`, `${ENT}:department`, `${ENT}:manager.value`, 'urn:ietf:params:scim:schemas:core:2.0:User:userName',
  'value', 'type', 'primary',
];
const knownPath = (withSub: boolean): fc.Arbitrary<AttrPath> => fc.constantFrom(...KNOWN_PATHS)
  .map((text) => {
    const colon = text.lastIndexOf(':');
    const [name, subAttr] = text.slice(colon + 1).split('.') as [string, string | undefined];
    return { ...(colon >= 0 ? { uri: text.slice(0, colon) } : {}), name, ...(withSub && subAttr !== undefined ? { subAttr } : {}) };
  });
const MARKER = 'Q7xMARKERz9';
const markedValue: fc.Arbitrary<ScimFilterValue> = fc.oneof(
  { weight: 4, arbitrary: nastyString.map((s) => `${MARKER}${s}`) },
  { weight: 1, arbitrary: fc.constantFrom<ScimFilterValue>(true, false, null, 7, `${MARKER}2011-05-13T04:42:34Z`, '2011-05-13T04:42:34Z') },
);
const knownFilter = filterArb(knownPath, markedValue);

// Token soup: random sequences of filter-ish fragments, far likelier than random characters to
// reach deep into the parser.
const fragment = fc.constantFrom(
  '(', ')', '[', ']', ' ', ' ', ' and ', ' or ', 'not ', 'not(', ' pr', ' eq ', ' co ', ' gt ', 'userName', 'emails', 'emails.value',
  'name.familyName', 'urn:ietf:params:scim:schemas:core:2.0:User:', 'urn:x:', ':', '.', '"', '"x"', '"a\\"b"', '\\', '\\u00', '\\u0000',
  '1', '-', '1e999', '0.5', 'true', 'null', "'", ';', '--', '/*', '; drop table users; --', '\t', '\n', '\u00a0', 'é', '😀', '\ud800',
  'members[value eq "a"]', '].value', '[type eq "work"]', '$ref', '%', '_', '=',
);
const tokenSoup = fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join(''));

// ---------------------------------------------------------------------------------------------

describe('SCIM filter parser: properties', () => {
  it('reads back every filter it writes (format, then parse, gives the same tree)', () => {
    fc.assert(
      fc.property(anyFilter, (f) => {
        const text = formatScimFilter(f);
        fc.pre(text.length <= 4096);
        expect(parseScimFilter(text)).toEqual(f);
      }),
      RUNS,
    );
  });

  it('accepts keywords and operators in any letter case', () => {
    fc.assert(
      fc.property(anyFilter, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (f, flips) => {
        const text = formatScimFilter(f);
        fc.pre(text.length <= 4096);
        let i = 0;
        // Change case outside string literals only.
        const shouted = text.split(/("(?:[^"\\]|\\.)*")/).map((part, k) => (k % 2 === 1 ? part
          : part.replace(/\b(and|or|not|eq|ne|co|sw|ew|gt|ge|lt|le|pr|true|false|null)\b/g, (m) => (flips[(i += 1) % flips.length] ? m.toUpperCase() : m)))).join('');
        expect(lowerNames(parseScimFilter(shouted))).toEqual(lowerNames(f));
      }),
      RUNS,
    );
  });

  it('parses random characters or rejects them with invalidFilter', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => { tryParse(s); }), RUNS);
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (s) => { tryParse(s); }), RUNS);
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...'()[]" \\:.aeqorntp1-'), maxLength: 200 }), (s) => { tryParse(s); }), RUNS);
  });

  it('parses token soup or rejects it with invalidFilter, in strict and lenient mode', () => {
    fc.assert(
      fc.property(tokenSoup, (s) => {
        tryParse(s);
        tryParse(s, { allowUnquotedValues: true });
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects mutated valid filters only with invalidFilter', () => {
    fc.assert(
      fc.property(anyFilter, fc.nat(), fc.constantFrom('', '(', ')', '[', ']', '"', '\\', ' and', 'not', "'", '\u0000', '.'), (f, at, insert) => {
        const text = formatScimFilter(f);
        const i = at % (text.length + 1);
        tryParse(text.slice(0, i) + insert + text.slice(i + 1));
        tryParse(text.slice(0, i));
      }),
      RUNS,
    );
  });

  it('never overflows the stack on deep nesting, however it is built', () => {
    const opener = fc.constantFrom('(', 'not (', 'not(', 'emails[', '[', 'a[', '((');
    fc.assert(
      fc.property(fc.array(opener, { maxLength: 30 }), fc.integer({ min: 0, max: 20_000 }), fc.boolean(), (openers, depth, close) => {
        const open = Array.from({ length: depth }, (_, i) => openers.length ? openers[i % openers.length] : '(').join('');
        const text = `${open}userName eq "x"${close ? ')'.repeat(depth) : ''}`;
        tryParse(text, { maxLength: Number.MAX_SAFE_INTEGER });
        tryParse(text);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects deep nesting with a clear invalidFilter detail', () => {
    for (const open of ['(', 'not (', 'emails[type eq "w" and (']) {
      const text = `${open.repeat(10_000)}userName eq "x"`;
      const caught = (() => { try { parseScimFilter(text, { maxLength: 10_000_000 }); } catch (e) { return e; } return undefined; })();
      expect(caught).toBeInstanceOf(ScimFilterError);
      expect((caught as ScimFilterError).detail).toMatch(/nested too deeply|cannot be nested/);
    }
  });

  it('handles very long inputs quickly, at and beyond the limit', () => {
    for (const text of [
      'a'.repeat(5_000_000),
      `userName eq "${'\\"'.repeat(2040)}"`,
      `userName eq "${'x'.repeat(4082)}"`,
      Array.from({ length: 400 }, (_, i) => `a eq ${i}`).join(' or ').slice(0, 4096),
      '"'.repeat(4096),
      '\\'.repeat(4096),
      `userName eq "${'\\u0041'.repeat(680)}"`,
    ]) {
      tryParse(text);
    }
  });
});

describe('SCIM filter compiler: properties', () => {
  it('compiles any parsed filter or rejects it with invalidFilter, for users and groups', () => {
    fc.assert(
      fc.property(knownFilter, (f) => {
        const users = tryCompile(f, USER_FILTER_MAPPING);
        const groups = tryCompile(f, GROUP_FILTER_MAPPING);
        if (users) expectNoValuesInSql(users);
        if (groups) expectNoValuesInSql(groups);
      }),
      RUNS,
    );
    fc.assert(fc.property(anyFilter, (f) => { tryCompile(f); }), RUNS);
  });

  it('never puts a value in the SQL text: values travel only as bindings', () => {
    let compiled = 0;
    fc.assert(
      fc.property(knownFilter, (f) => {
        const text = formatScimFilter(f);
        const parsed = text.length <= 4096 ? tryParse(text) : undefined;
        for (const tree of parsed ? [f, parsed] : [f]) {
          const out = tryCompile(tree);
          if (!out) continue;
          compiled += 1;
          expect(out.sql).not.toContain(MARKER);
          expect(out.sql.toLowerCase()).not.toContain('drop table');
          expectNoValuesInSql(out);
        }
      }),
      RUNS,
    );
    // The property is only meaningful if a good share of the random filters compiled.
    expect(compiled).toBeGreaterThan(RUNS.numRuns / 10);
  });

  it('binds each injection attempt as a value, whatever attribute it is compared with', () => {
    const attacks = [
      "'; drop table users; --", "' or '1'='1", "x') or ('a'='a", '" or 1=1 --', '\\\'; select pg_sleep(10); --',
      "'||(select password from credentials)||'", '$1', '?', '??', ':id', '\\?', "E'\\\\'", '%_\\', '\u2028\u2029',
    ];
    let bound = 0;
    for (const attack of attacks) {
      for (const path of ['userName', 'externalId', 'emails', 'emails.type', 'displayName', 'title', `${ENT}:department`, 'id']) {
        for (const o of ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'le']) {
          const text = `${path} ${o} ${JSON.stringify(attack)} or emails[value ${o} ${JSON.stringify(attack)}]`;
          const f = parseScimFilter(text);
          const out = compileScimFilter(f, USER_FILTER_MAPPING, 'u');
          expectNoValuesInSql(out);
          expect(out.sql.toLowerCase()).not.toMatch(/drop|pg_sleep|credentials|password/);
          // Sign-in names (userName, emails.value) are bound folded (shared/names.ts).
          const forms = [attack, foldName(attack)];
          expect(out.bindings.some((b) => forms.some((v) => b === v || (typeof b === 'string' && b.includes(escapeLike(v)))))).toBe(true);
          bound += 1;
        }
      }
      // The same text unquoted, or with single quotes, is not a filter at all.
      tryParse(`userName eq ${attack}`);
      expect(tryParse(`userName eq '${attack}'`)).toBeUndefined();
    }
    expect(bound).toBe(attacks.length * 8 * 7);
  });
});
