// Text PostgreSQL cannot store: the input check (text-input.ts) and the SCIM error mapper's
// safety net for PostgreSQL's own refusals (checked with real errors from a real server).
import pg from 'pg';
import { createLogger } from '../../src/shared/logger.ts';
import { describeIllFormedText, findIllFormedText, textProblem } from '../../src/shared/text-input.ts';
import { toScimError } from '../../src/scim/errors.ts';
import { isLoneSurrogateInJson } from '../../src/db/errors.ts';
import { ADMIN_DATABASE_URL } from '../helpers/db.ts';

describe('findIllFormedText', () => {
  it.each([
    ['plain ASCII', 'hello'],
    ['accents', 'José Nuñez'],
    ['an emoji (a surrogate pair)', '😀'],
    ['CJK and a pair at the end', '山田 𠮷'],
    ['other control characters (not this check\'s business)', 'a\u0001b\tc'],
    ['an empty string', ''],
  ])('accepts %s', (_what, s) => {
    expect(textProblem(s)).toBeUndefined();
    expect(findIllFormedText({ a: [s, { [s]: s }] })).toBeUndefined();
  });

  it.each([
    ['a NUL', 'a\u0000b', 'nul'],
    ['a lone high surrogate', 'a\ud800b', 'unpaired_surrogate'],
    ['a lone low surrogate', '\udc00', 'unpaired_surrogate'],
    ['a high surrogate at the end', 'x\ud83d', 'unpaired_surrogate'],
    ['surrogates in the wrong order', '\ude00\ud83d', 'unpaired_surrogate'],
    ['both (NUL first)', '\ud800\u0000', 'nul'],
  ])('finds %s', (_what, s, problem) => {
    expect(textProblem(s)).toBe(problem);
    expect(findIllFormedText(s)).toEqual({ path: '', inKey: false, problem });
  });

  it('names the path of the value, or the object whose key is bad, without echoing the text', () => {
    expect(findIllFormedText({ members: [{ value: 'ok' }, { value: 'ok', display: 'a\u0000' }] }))
      .toEqual({ path: 'members[1].display', inKey: false, problem: 'nul' });
    expect(findIllFormedText({ name: { ['given\ud800']: 'x' } })).toEqual({ path: 'name', inKey: true, problem: 'unpaired_surrogate' });
    expect(findIllFormedText({ 'a b': ['\ud800'] })).toEqual({ path: '["a b"][0]', inKey: false, problem: 'unpaired_surrogate' });
    const described = describeIllFormedText({ path: 'members[1].display', inKey: false, problem: 'nul' }, 'the request body');
    expect(described).toEqual({ field: 'members[1].display', message: 'members[1].display: text must not contain the NUL character (U+0000)' });
    expect(describeIllFormedText({ path: '', inKey: true, problem: 'unpaired_surrogate' }, 'the request body').message)
      .toMatch(/^an attribute name in the request body: text must be well-formed Unicode/);
  });

  it('walks very deep and very wide values without recursion', () => {
    let deep: unknown = 'a\u0000';
    for (let i = 0; i < 100_000; i += 1) deep = [deep];
    expect(findIllFormedText(deep)?.problem).toBe('nul');
    const wide = Array.from({ length: 100_000 }, (_, i) => ({ v: `x${i}` }));
    expect(findIllFormedText(wide)).toBeUndefined();
  });
});

describe('the SCIM error mapper and PostgreSQL refusing text', () => {
  let client: pg.Client;
  const log = createLogger('silent');
  beforeAll(async () => {
    client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
  });
  const failure = async (sql: string, params: unknown[]): Promise<unknown> =>
    client.query(sql, params).then(() => { throw new Error('expected PostgreSQL to refuse'); }, (e: unknown) => e);

  it('answers a NUL in text (22021) or JSON (22P05) and a lone surrogate in JSON (22P02, by its message) with 400 invalidValue', async () => {
    const cases: [unknown, string, RegExp][] = [
      [await failure('select $1::text', ['a\u0000b']), '22021', /NUL/],
      [await failure('select $1::jsonb', [JSON.stringify({ a: 'a\u0000b' })]), '22P05', /NUL/],
      [await failure('select $1::jsonb', [JSON.stringify({ a: 'a\ud800b' })]), '22P02', /unpaired UTF-16 surrogate/],
      [await failure('select $1::jsonb', [JSON.stringify({ a: '\udc00' })]), '22P02', /unpaired UTF-16 surrogate/],
      [await failure('select * from json_to_recordset($1::json) as x(id text)', [JSON.stringify([{ id: '\ud83d' }])]), '22P02', /unpaired/],
    ];
    for (const [err, code, detail] of cases) {
      expect((err as { code: string }).code).toBe(code);
      const { status, body } = toScimError(err, log, 'req-1');
      expect({ status, scimType: body.scimType, statusText: body.status }).toEqual({ status: 400, scimType: 'invalidValue', statusText: '400' });
      expect(body.detail).toMatch(detail);
      expect(body.detail).not.toMatch(/select|json_to_recordset/i);
    }
  });

  it('does not turn the other 22P02 errors (a bad uuid, integer or JSON syntax: bugs once they reach the database) into a 400', async () => {
    for (const err of [
      await failure('select $1::uuid', ['not-a-uuid']),
      await failure('select $1::int', ['x']),
      await failure('select $1::jsonb', ['{broken']),
    ]) {
      expect((err as { code: string }).code).toBe('22P02');
      expect(isLoneSurrogateInJson(err)).toBe(false);
      expect(toScimError(err, log, 'req-2').status).toBe(500);
    }
  });

  it('a lone surrogate in a text parameter is not an error at all: the driver stores U+FFFD (why input is checked first)', async () => {
    const { rows } = await client.query('select $1::text as v', ['a\ud800b']);
    expect(rows[0].v).toBe('a\ufffdb');
  });
});
