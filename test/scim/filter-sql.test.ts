// SCIM filters compiled to SQL and run on a real, migrated PostgreSQL database: the rows they
// return, the errors they give, the indexes they use, and (on the embedded PGlite engine) that the
// same SQL runs there too.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { Knex } from 'knex';
import { createDb } from '../../src/db/knex.ts';
import { migrateLatest } from '../../src/db/migrate.ts';
import { ScimFilterError, formatScimFilter, type ScimFilter, type ScimFilterParseOptions } from '../../src/scim/filter.ts';
import {
  applyScimFilter, compileScimFilter, USER_FILTER_MAPPING, GROUP_FILTER_MAPPING, SCIM_ENTERPRISE_USER_SCHEMA,
  type ScimResourceMapping,
} from '../../src/scim/filter-sql.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const ENT = SCIM_ENTERPRISE_USER_SCHEMA;

const ID = {
  alice: 'a11ce000-0000-4000-8000-000000000001',
  bob: 'b0b00000-0000-4000-8000-000000000002',
  carol: 'ca201000-0000-4000-8000-000000000003',
  dave: 'da7e0000-0000-4000-8000-000000000004',
  eve: 'e7e00000-0000-4000-8000-000000000005',
  groupA: '9a000000-0000-4000-8000-0000000000a1',
  engineering: '9e000000-0000-4000-8000-0000000000e1',
  empty: '90000000-0000-4000-8000-0000000000f1',
  sales: 'de900000-0000-4000-8000-000000000051',
};
const USERNAME = {
  alice: 'alice@x.com',
  bob: 'bob@y.com',
  carol: 'carol',
  dave: 'under_score%pct\\back',
  eve: 'underxscore',
};
const ALL = Object.values(USERNAME).sort();
const FIXTURE_IDS = [ID.alice, ID.bob, ID.carol, ID.dave, ID.eve];

const USER_ROWS = [
  {
    id: ID.alice, username: USERNAME.alice, external_id: 'EXT-1', given_name: 'Alice', family_name: 'Anderson',
    display_name: 'Alice Anderson', title: 'Engineer', locale: 'en-US', phone: '+1 555 0100', employee_number: '1001',
    status: 'active', version: 1, created_at: '2011-01-01T00:00:00Z', updated_at: '2011-05-13T04:42:35Z',
    // Addresses are stored folded, as the directory stores them (shared/names.ts).
    emails: [{ value: 'alice@x.com', type: 'work', primary: true }, { value: 'alice@home.org', type: 'home' }],
  },
  {
    id: ID.bob, username: USERNAME.bob, external_id: '123', given_name: 'Bob', family_name: "O'Brien",
    display_name: null, title: null, employee_number: '1002', status: 'suspended', version: 2,
    created_at: '2012-01-01T00:00:00Z', updated_at: '2011-05-13T04:42:33Z',
    emails: [{ value: 'bob@y.com', type: 'work', primary: true }, { value: 'bob@x.com', type: 'home' }],
  },
  {
    id: ID.carol, username: USERNAME.carol, external_id: 'ext-1', given_name: 'Carol', family_name: 'Smith',
    display_name: 'Carol S', title: 'engineer manager', status: 'deprovisioned', manager_id: ID.alice, version: 3,
    created_at: '2013-01-01T00:00:00Z', updated_at: '2020-01-01T00:00:00Z', emails: [],
  },
  {
    id: ID.dave, username: USERNAME.dave, given_name: 'Dave', status: 'active', version: 1,
    created_at: '2014-01-01T00:00:00Z', updated_at: '2020-01-01T00:00:00Z', emails: [{ value: 'dave@x.org' }],
  },
  {
    id: ID.eve, username: USERNAME.eve, given_name: 'Zoë', display_name: 'Say "hi"', title: '', locale: 'fr',
    status: 'active', version: 10, created_at: '2015-01-01T00:00:00Z', updated_at: '2020-01-01T00:00:00Z', emails: [],
  },
];

async function insertFixtures(db: Knex): Promise<void> {
  await db('users').insert(USER_ROWS.map((u) => ({ ...u, emails: JSON.stringify(u.emails) })));
  await db('groups').insert([
    { id: ID.groupA, name: 'Group A', external_id: 'g-ext-1', created_at: '2016-01-01T00:00:00Z' },
    { id: ID.engineering, name: 'Engineering', created_at: '2017-01-01T00:00:00Z' },
    { id: ID.empty, name: 'Empty', created_at: '2018-01-01T00:00:00Z' },
  ]);
  await db('group_members').insert([
    { group_id: ID.groupA, user_id: ID.alice },
    { group_id: ID.groupA, user_id: ID.bob },
    { group_id: ID.engineering, user_id: ID.carol },
  ]);
  await db('departments').insert({ id: ID.sales, name: 'Sales', path: `/${ID.sales}/`, depth: 0 });
  await db('user_departments').insert({ user_id: ID.alice, department_id: ID.sales, is_primary: true });
}

let mdb: MigratedDatabase;
let db: Knex;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_scim_filter');
  db = mdb.db;
  await insertFixtures(db);
  // Enough rows for the planner to prefer indexes; they are outside FIXTURE_IDS, so the result
  // checks below never see them.
  await db.raw(`insert into users (id, username, external_id, emails, status)
    select gen_random_uuid(), 'bulk-' || i || '@load.test', 'bulk-' || i, '[]'::jsonb, 'active' from generate_series(1, 5000) as i`);
  await db.raw(`insert into groups (id, name) select gen_random_uuid(), 'bulk group ' || i from generate_series(1, 3000) as i`);
  await db.raw('analyze users');
  await db.raw('analyze groups');
});

afterAll(async () => {
  await mdb?.close();
});

/** Usernames of the fixture users a filter selects, sorted. */
async function users(filter: string, options?: ScimFilterParseOptions): Promise<string[]> {
  const q = applyScimFilter(db('users as u').select('u.username').whereIn('u.id', FIXTURE_IDS), filter, USER_FILTER_MAPPING, 'u', options);
  return ((await q) as { username: string }[]).map((r) => r.username).sort();
}

/** Names of the fixture groups a filter selects, sorted. */
async function groups(filter: string): Promise<string[]> {
  const q = applyScimFilter(db('groups').select('groups.name').whereIn('groups.id', [ID.groupA, ID.engineering, ID.empty]), filter, GROUP_FILTER_MAPPING, 'groups');
  return ((await q) as { name: string }[]).map((r) => r.name).sort();
}

function filterError(filter: string, mapping: ScimResourceMapping = USER_FILTER_MAPPING): ScimFilterError {
  let thrown: unknown;
  try {
    applyScimFilter(db('users as u'), filter, mapping, 'u');
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ScimFilterError);
  expect((thrown as ScimFilterError).scimType).toBe('invalidFilter');
  return thrown as ScimFilterError;
}

const U = USERNAME;
const sorted = (...names: string[]) => [...names].sort();

describe('SCIM filters on users: strings and caseExact', () => {
  it.each([
    ['userName eq "alice@x.com"', [U.alice]],
    ['userName eq "ALICE@X.COM"', [U.alice]],
    ['USERNAME eq "alice@x.com"', [U.alice]],
    ['urn:ietf:params:scim:schemas:core:2.0:User:userName eq "Alice@x.com"', [U.alice]],
    ['externalId eq "EXT-1"', [U.alice]],
    ['externalId eq "ext-1"', [U.carol]],
    ['externalId eq "123"', [U.bob]],
    ['name.familyName eq "o\'brien"', [U.bob]],
    ['NAME.GIVENNAME sw "AL"', [U.alice]],
    ['displayName eq "alice anderson"', [U.alice]],
    ['name.formatted co "ANDERSON"', [U.alice]],
    ['title eq "engineer"', [U.alice]],
    ['title co "ENGINEER"', [U.alice, U.carol]],
    ['title ew "Manager"', [U.carol]],
    ['title gt "engineer"', [U.carol]],
    ['title ge "ENGINEER"', [U.alice, U.carol]],
    ['title lt "f"', [U.alice, U.carol, U.eve]],
    ['locale eq "EN-us"', [U.alice]],
    ['displayName eq "Say \\"hi\\""', [U.eve]],
    ['name.givenName eq "Zo\\u00eb"', [U.eve]],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });
});

describe('SCIM filters on users: presence, ne, null and not', () => {
  it.each([
    ['title pr', [U.alice, U.carol]],
    ['not (title pr)', [U.bob, U.dave, U.eve]],
    ['title eq null', [U.bob, U.dave, U.eve]],
    ['title ne null', [U.alice, U.carol]],
    ['title ne "Engineer"', [U.bob, U.carol, U.dave, U.eve]],
    ['not (title eq "Engineer")', [U.bob, U.carol, U.dave, U.eve]],
    ['not (title co "engineer")', [U.bob, U.dave, U.eve]],
    ['not (not (title co "engineer"))', [U.alice, U.carol]],
    ['name.familyName pr', [U.alice, U.bob, U.carol]],
    ['name pr', ALL],
    ['externalId pr and not (externalId eq "123")', [U.alice, U.carol]],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });
});

describe('SCIM filters on users: precedence and grouping', () => {
  it.each([
    ['userName eq "carol" or userName eq "alice@x.com" and title eq "nomatch"', [U.carol]],
    ['(userName eq "carol" or userName eq "alice@x.com") and title eq "nomatch"', []],
    ['userName eq "carol" or userName eq "alice@x.com" and title eq "engineer"', [U.alice, U.carol]],
    ['title eq "nomatch" and userName eq "carol" or userName eq "bob@y.com"', [U.bob]],
    ['not (userName eq "carol" or active eq true)', [U.bob]],
    ['not (userName eq "carol") and not (active eq true)', [U.bob]],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });

  it('keeps its or inside parentheses when the query already has a where', async () => {
    const q = applyScimFilter(db('users as u').select('u.username').where('u.status', 'active'), 'userName eq "bob@y.com" or userName eq "carol"', USER_FILTER_MAPPING, 'u');
    expect(await q).toEqual([]);
  });
});

describe('SCIM filters on users: emails (jsonb array) and value paths', () => {
  it.each([
    ['emails eq "alice@x.com"', [U.alice]],
    ['emails.value eq "ALICE@x.com"', [U.alice]],
    ['emails.VALUE eq "alice@home.org"', [U.alice]],
    ['emails co "@x.com"', [U.alice, U.bob]],
    ['emails[type eq "work" and value co "@x.com"]', [U.alice]],
    ['emails.type eq "work" and emails.value co "@x.com"', [U.alice, U.bob]],
    ['emails[primary eq true]', [U.alice, U.bob]],
    ['emails[primary eq true and value ew "Y.COM"]', [U.bob]],
    ['emails[not (primary eq true)]', [U.alice, U.bob, U.dave]],
    ['emails[type pr]', [U.alice, U.bob]],
    ['emails pr', [U.alice, U.bob, U.dave]],
    ['not (emails pr)', [U.carol, U.eve]],
    ['emails[type eq "work"] and not (emails[value ew ".org"])', [U.bob]],
    ['userName eq "carol" or emails[type eq "home" and value sw "bob"]', [U.bob, U.carol]],
    ['(emails[type eq "work"] or emails[value ew ".org"]) and not (active eq false)', [U.alice, U.dave]],
    ['urn:ietf:params:scim:schemas:core:2.0:User:emails[TYPE eq "WORK"]', [U.alice, U.bob]],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });
});

describe('SCIM filters on users: active, dates, phone, enterprise, groups', () => {
  it.each([
    ['active eq true', [U.alice, U.dave, U.eve]],
    ['active eq false', [U.bob, U.carol]],
    ['active ne true', [U.bob, U.carol]],
    ['active pr', ALL],
    ['meta.lastModified gt "2011-05-13T04:42:34Z"', [U.alice, U.carol, U.dave, U.eve]],
    ['meta.lastModified lt "2011-05-13T04:42:34Z"', [U.bob]],
    ['meta.lastModified eq "2011-05-13T04:42:35Z"', [U.alice]],
    ['meta.lastModified eq "2011-05-13T06:42:35+02:00"', [U.alice]],
    ['meta.lastModified le "2011-05-13T04:42:35.000Z"', [U.alice, U.bob]],
    ['meta.created ge "2013-01-01T00:00:00Z" and meta.created lt "2015-01-01T00:00:00Z"', [U.carol, U.dave]],
    ['META.CREATED gt "2014-06-01T00:00:00"', [U.eve]],
    ['phoneNumbers eq "+1 555 0100"', [U.alice]],
    ['phoneNumbers.value co "555"', [U.alice]],
    ['phoneNumbers[value sw "+1"]', [U.alice]],
    [`${ENT}:employeeNumber eq "1001"`, [U.alice]],
    [`${ENT.toLowerCase()}:EMPLOYEENUMBER sw "100"`, [U.alice, U.bob]],
    [`${ENT}:department eq "sales"`, [U.alice]],
    [`${ENT}:department pr`, [U.alice]],
    [`${ENT}:manager.value eq "${ID.alice}"`, [U.carol]],
    [`${ENT}:manager eq "${ID.alice.toUpperCase()}"`, [U.carol]],
    [`groups[value eq "${ID.groupA}"]`, [U.alice, U.bob]],
    [`groups eq "${ID.engineering}"`, [U.carol]],
    ['not (groups pr)', [U.dave, U.eve]],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });
});

describe('SCIM filters on users: ids', () => {
  it.each([
    [`id eq "${ID.alice}"`, [U.alice]],
    [`id eq "${ID.alice.toUpperCase()}"`, [U.alice]],
    ['id eq "not-a-uuid"', []],
    ['id ne "not-a-uuid"', ALL],
    [`id ne "${ID.alice}"`, [U.bob, U.carol, U.dave, U.eve]],
    ['id sw "A11CE"', [U.alice]],
    ['id co "-4000-"', ALL],
    [`id gt "${ID.carol}"`, [U.dave, U.eve]],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });
});

describe('SCIM filters on users: LIKE metacharacters and injection attempts', () => {
  it.each([
    ['userName sw "under_s"', [U.dave]],
    ['userName sw "under"', [U.dave, U.eve]],
    ['userName co "%"', [U.dave]],
    ['userName co "_"', [U.dave]],
    ['userName co "\\\\"', [U.dave]],
    ['userName ew "\\\\BACK"', [U.dave]],
    ['userName eq "under_score%pct\\\\back"', [U.dave]],
    ['userName co "e%p"', [U.dave]],
    ['userName co "r%p"', []],
    ['userName co "n_e"', []],
    ['userName sw "_"', []],
  ])('%s', async (filter, expected) => {
    expect(await users(filter)).toEqual(sorted(...expected));
  });

  it.each([
    '\' or \'1\'=\'1',
    '\'; drop table users; --',
    '"; drop table users; --',
    'x\\\' or 1=1 --',
    '$1',
    '?',
    '??',
    ':name',
    '\\\\?',
  ])('treats %j as a plain value', async (value) => {
    const filter = `userName eq ${JSON.stringify(value)} or displayName co ${JSON.stringify(value)} or emails[value sw ${JSON.stringify(value)}]`;
    expect(await users(filter)).toEqual([]);
    // The SQL text does not depend on the value; the value travels only as a binding.
    const compile = (v: string) => compileScimFilter({ type: 'compare', path: { name: 'userName' }, op: 'eq', value: v }, USER_FILTER_MAPPING, 'u');
    const { sql, bindings } = compile(value);
    expect(sql).toBe(compile('x').sql);
    expect(bindings).toEqual([value]);
    const [{ n }] = (await db('users').count('* as n')) as [{ n: number }];
    expect(Number(n)).toBe(5005);
  });
});

describe('SCIM filters on users: numbers (a mapping with a number attribute)', () => {
  const withVersion: ScimResourceMapping = {
    ...USER_FILTER_MAPPING,
    attributes: { ...USER_FILTER_MAPPING.attributes, version: { type: 'number', caseExact: false, column: 'version' } },
  };
  const byVersion = async (filter: string) =>
    ((await applyScimFilter(db('users as u').select('u.username').whereIn('u.id', FIXTURE_IDS), filter, withVersion, 'u')) as { username: string }[])
      .map((r) => r.username).sort();

  it.each([
    ['version gt 2', [U.carol, U.eve]],
    ['version eq 2.0', [U.bob]],
    ['version le 1.5', [U.alice, U.dave]],
    ['version ne 1', [U.bob, U.carol, U.eve]],
    ['version ge 1e1', [U.eve]],
    ['version lt -1', []],
  ])('%s', async (filter, expected) => {
    expect(await byVersion(filter)).toEqual(sorted(...expected));
  });

  it('rejects co on a number and a string compared with a number', () => {
    filterError('version co 1', withVersion);
    filterError('version eq "2"', withVersion);
  });
});

describe('SCIM filters on users: invalidFilter', () => {
  it.each([
    ['nickNam eq "x"', /"nickNam"/],
    [`${ENT}:costCentre eq "x"`, /costCentre/],
    ['urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"', /Unknown attribute/],
    ['name.middleNam eq "x"', /"middleNam" of "name"/],
    ['userName.first eq "x"', /has no sub-attribute "first"/],
    ['emails[foo eq "x"]', /"foo" of "emails"/],
    ['emails[emails.value eq "x"]', /sub-attributes of "emails" directly/],
    ['name eq "x"', /complex attribute; filter on one of its sub-attributes \(name\.givenname/],
    ['userName[value eq "x"]', /"userName" is not a complex attribute/],
    ['emails[type eq "work"].value eq "x"', /only valid in PATCH paths/],
    ['userName eq 5', /"userName" is a string/],
    ['userName eq true', /"userName" is a string/],
    ['active eq "true"', /"active" is boolean; compare it with true or false/],
    ['active eq 1', /boolean/],
    ['active gt true', /supports only eq, ne and pr/],
    ['active co "t"', /supports only eq, ne and pr/],
    ['emails[primary sw "t"]', /supports only eq, ne and pr/],
    ['title gt null', /cannot compare "title" with null/],
    ['meta.created co "2011"', /co applies to strings/],
    ['meta.created gt "yesterday"', /not a valid date-time/],
    ['meta.created gt "2011-02-30T00:00:00Z"', /not a valid date-time/],
    ['meta.created gt "2011-05-13"', /not a valid date-time/],
    ['meta.created gt "2011-05-13T04:42:34+16:00"', /not a valid date-time/],
    ['meta.created gt 5', /is a dateTime/],
    ['meta pr and meta eq "x"', /complex attribute/],
  ])('%s', (filter, detail) => {
    expect(filterError(filter).detail).toMatch(detail);
  });

  it('caps the attribute name or value it echoes in the detail', () => {
    const detail = filterError(`${'x'.repeat(4000)} eq "a"`).detail;
    expect(detail).toMatch(/^Unknown attribute "x{100}\.\.\."/);
    expect(detail.length).toBeLessThan(250);
    expect(filterError(`meta.created gt "${'9'.repeat(4000)}"`).detail.length).toBeLessThan(250);
  });

  it('rejects a tree with a NUL in a value (which PostgreSQL cannot store) before it reaches the database', () => {
    let thrown: unknown;
    try {
      compileScimFilter({ type: 'compare', path: { name: 'userName' }, op: 'eq', value: 'a\u0000b' }, USER_FILTER_MAPPING, 'u');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ScimFilterError);
  });
});

describe('SCIM filters on groups', () => {
  it.each([
    ['displayName eq "group a"', ['Group A']],
    ['DISPLAYNAME eq "GROUP A"', ['Group A']],
    ['urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Engineering"', ['Engineering']],
    ['displayName sw "e"', ['Empty', 'Engineering']],
    ['externalId eq "g-ext-1"', ['Group A']],
    ['externalId eq "G-EXT-1"', []],
    [`id eq "${ID.empty}"`, ['Empty']],
    [`members[value eq "${ID.alice}"]`, ['Group A']],
    [`members eq "${ID.carol}"`, ['Engineering']],
    [`members.value eq "${ID.bob}"`, ['Group A']],
    ['members[value eq "not-a-uuid"]', []],
    ['members pr', ['Engineering', 'Group A']],
    ['not (members pr)', ['Empty']],
    [`members[value eq "${ID.alice}"] and members[value eq "${ID.bob}"]`, ['Group A']],
    [`members.value eq "${ID.alice}" and members.value eq "${ID.carol}"`, []],
    [`members[value eq "${ID.alice}" or value eq "${ID.carol}"]`, ['Engineering', 'Group A']],
    [`not (members[value eq "${ID.alice}"])`, ['Empty', 'Engineering']],
    ['meta.created gt "2016-06-01T00:00:00Z"', ['Empty', 'Engineering']],
  ])('%s', async (filter, expected) => {
    expect(await groups(filter)).toEqual(expected);
  });

  it('rejects user attributes on groups', () => {
    expect(filterError('userName eq "x"', GROUP_FILTER_MAPPING).detail).toMatch(/"userName"/);
    filterError('members[foo eq "x"]', GROUP_FILTER_MAPPING);
  });
});

describe('SCIM filters: unquoted values (Microsoft test collection style)', () => {
  const lenient = { allowUnquotedValues: true };

  it('runs the collection\'s filters', async () => {
    expect(await users('name.FamilyName eq anderson and (emails.Value co x.com or emails.Value co example.org)', lenient)).toEqual([U.alice]);
    expect(await users('userName sw C', lenient)).toEqual([U.carol]);
    expect(await users('meta.Created gt 2012-10-10T14:38:21.8617979-07:00', lenient)).toEqual([U.carol, U.dave, U.eve].sort());
    expect(await users('DisplayName eq "Alice Anderson"', lenient)).toEqual([U.alice]);
  });

  it('is off by default', () => {
    filterError('userName sw C');
  });
});

describe('SCIM filters: index use', () => {
  async function plan(query: Knex.QueryBuilder): Promise<string> {
    const { sql, bindings } = query.toSQL();
    const result = await db.raw(`explain ${sql}`, bindings as Knex.RawBinding[]);
    return (result.rows as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']).join('\n');
  }

  it('serves userName eq from the users__username index', async () => {
    const p = await plan(applyScimFilter(db('users as u').select('u.id'), 'userName eq "Bulk-4242@load.test"', USER_FILTER_MAPPING, 'u'));
    expect(p).toMatch(/Index (Only )?Scan using users__username/);
    expect(p).not.toMatch(/Seq Scan/);
    const rows = await applyScimFilter(db('users as u').select('u.username'), 'userName eq "Bulk-4242@load.test"', USER_FILTER_MAPPING, 'u');
    expect(rows).toEqual([{ username: 'bulk-4242@load.test' }]);
  });

  it('serves externalId eq from users__external_id and id eq from the primary key', async () => {
    expect(await plan(applyScimFilter(db('users as u').select('u.id'), 'externalId eq "bulk-17"', USER_FILTER_MAPPING, 'u'))).toMatch(/using users__external_id/);
    expect(await plan(applyScimFilter(db('users as u').select('u.id'), `id eq "${ID.bob}"`, USER_FILTER_MAPPING, 'u'))).toMatch(/using users_pkey/);
  });

  it('serves Group displayName eq from the groups__name index on lower(name)', async () => {
    const p = await plan(applyScimFilter(db('groups as g').select('g.id'), 'displayName eq "BULK GROUP 77"', GROUP_FILTER_MAPPING, 'g'));
    expect(p).toMatch(/Index (Only )?Scan using groups__name/);
  });
});

// Random filters over the user mapping, run on the database: a filter either compiles and runs
// (never a database error) or is a ScimFilterError; and not/and/or behave as set complement,
// intersection and union over the fixture users.
const OPS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'] as const;
const stringValue = fc.oneof(
  fc.constantFrom(
    'alice@x.com', 'ALICE@X.COM', 'engineer', 'Engineer', 'work', 'home', '@x.com', '.org', '', '%', '_', '\\', "'", '"',
    'a', 'o', 'Zoë', '+1 555 0100', '1001', 'sales', 'EXT-1', 'under', 'carol', "'; drop table users; --",
  ),
  fc.string({ maxLength: 12, unit: 'binary' }),
);
const dateValue = fc.constantFrom(
  '2011-05-13T04:42:34Z', '2011-05-13T04:42:35Z', '2015-01-01T00:00:00+01:00', '2013-01-01T00:00:00.000Z', '2020-01-01T00:00:00',
  '2011-02-30T00:00:00Z', 'yesterday',
);
const idValue = fc.constantFrom(ID.alice, ID.bob.toUpperCase(), ID.groupA, ID.engineering, 'a11ce', 'not-a-uuid', '');
const anyValue = fc.oneof(stringValue, fc.boolean(), fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true }));
/** Paths with the values that suit them (most of the time) and any value (sometimes). */
const TYPED_PATHS: [string[], fc.Arbitrary<string | number | boolean | null>][] = [
  [['userName', 'externalId', 'name.givenName', 'name.familyName', 'name.formatted', 'displayName', 'title', 'locale', 'emails',
    'emails.value', 'emails.type', 'phoneNumbers', 'phoneNumbers.value', `${ENT}:employeeNumber`, `${ENT}:department`], stringValue],
  [['active', 'emails.primary'], fc.oneof(fc.boolean(), fc.constant(null))],
  [['meta.created', 'meta.lastModified'], dateValue],
  [['id', 'groups', 'groups.value', `${ENT}:manager.value`, `${ENT}:manager`], idValue],
];
const USER_PATHS = [...TYPED_PATHS.flatMap(([paths]) => paths), 'name'];
const cased = (paths: string[]) => fc.tuple(fc.constantFrom(...paths), fc.boolean()).map(([p, upper]) => (upper ? p.toUpperCase() : p));
const toPath = (text: string) => {
  const colon = text.lastIndexOf(':');
  const uri = colon >= 0 ? text.slice(0, colon) : undefined;
  const [name, subAttr] = text.slice(colon + 1).split('.') as [string, string | undefined];
  return { ...(uri !== undefined ? { uri } : {}), name, ...(subAttr !== undefined ? { subAttr } : {}) };
};
const compareArb = (paths: string[], value: fc.Arbitrary<string | number | boolean | null>) =>
  fc.record({ p: cased(paths), op: fc.constantFrom(...OPS), value })
    .map(({ p, op, value: v }): ScimFilter => ({ type: 'compare', path: toPath(p), op, value: v }));
const leafArb: fc.Arbitrary<ScimFilter> = fc.oneof(
  ...TYPED_PATHS.map(([paths, v]) => ({ weight: 3, arbitrary: compareArb(paths, v) })),
  { weight: 1, arbitrary: compareArb(USER_PATHS, anyValue) },
  { weight: 2, arbitrary: cased(USER_PATHS).map((p): ScimFilter => ({ type: 'present', path: toPath(p) })) },
  {
    weight: 2,
    arbitrary: fc.array(fc.oneof(compareArb(['value', 'type'], stringValue), compareArb(['primary'], fc.boolean())), { minLength: 1, maxLength: 2 })
      .map((fs): ScimFilter => ({ type: 'valuePath', path: { name: 'emails' }, filter: fs.length === 1 ? fs[0]! : { type: 'and', filters: fs } })),
  },
);
const { filter: filterArb } = fc.letrec<{ filter: ScimFilter }>((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    fc.array(tie('filter'), { minLength: 2, maxLength: 3 }).map((filters): ScimFilter => ({ type: 'and', filters })),
    fc.array(tie('filter'), { minLength: 2, maxLength: 3 }).map((filters): ScimFilter => ({ type: 'or', filters })),
    tie('filter').map((filter): ScimFilter => ({ type: 'not', filter })),
  ),
}));

/** The fixture users a filter selects, or 'invalid' for a ScimFilterError; any other error fails the property. */
async function run(filter: ScimFilter | string): Promise<string[] | 'invalid'> {
  let q: Knex.QueryBuilder;
  try {
    q = applyScimFilter(db('users as u').select('u.username').whereIn('u.id', FIXTURE_IDS), filter, USER_FILTER_MAPPING, 'u');
  } catch (err) {
    if (err instanceof ScimFilterError && err.scimType === 'invalidFilter') return 'invalid';
    throw err;
  }
  return ((await q) as { username: string }[]).map((r) => r.username).sort();
}

describe('SCIM filters: random filters on the database', () => {
  it('never produce a database error, and the text and the tree select the same rows', async () => {
    let executed = 0;
    await fc.assert(
      fc.asyncProperty(filterArb, async (f) => {
        const fromTree = await run(f);
        if (fromTree !== 'invalid') executed += 1;
        let text: string | undefined;
        try {
          text = formatScimFilter(f);
        } catch {
          text = undefined;
        }
        if (text !== undefined && text.length <= 4096) {
          const fromText = await run(text);
          // A value the parser refuses (e.g. a NUL) may make the text invalid while the tree compiles.
          if (fromText !== 'invalid') expect(fromText).toEqual(fromTree);
        }
      }),
      // About a third of random trees are valid (the rest test invalidFilter): 600 runs execute
      // about 215 on the database, so the floor below cannot be missed by chance.
      { numRuns: 600 },
    );
    // Only meaningful if many random filters were valid and ran.
    expect(executed).toBeGreaterThan(100);
  });

  it('treat not as complement, and as intersection and or as union', async () => {
    await fc.assert(
      fc.asyncProperty(filterArb, filterArb, async (f, g) => {
        const [rf, rg] = [await run(f), await run(g)];
        fc.pre(rf !== 'invalid' && rg !== 'invalid');
        expect(await run({ type: 'not', filter: f })).toEqual(ALL.filter((u) => !rf.includes(u)));
        expect(await run({ type: 'and', filters: [f, g] })).toEqual(rf.filter((u) => rg.includes(u)));
        expect(await run({ type: 'or', filters: [f, g] })).toEqual(ALL.filter((u) => rf.includes(u) || rg.includes(u)));
      }),
      { numRuns: 150 },
    );
  });
});

describe('SCIM filters on the embedded PGlite engine', () => {
  it('runs the same SQL with the same results', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-scim-filter-'));
    const handle = createDb({ databaseUrl: undefined, databasePoolMax: 1, dataDir: dir });
    try {
      await migrateLatest(handle.db);
      await insertFixtures(handle.db);
      const onPglite = async (filter: string) =>
        ((await applyScimFilter(handle.db('users as u').select('u.username'), filter, USER_FILTER_MAPPING, 'u')) as { username: string }[])
          .map((r) => r.username).sort();
      for (const filter of [
        'userName eq "ALICE@X.COM"',
        'emails[type eq "work" and value co "@x.com"]',
        'emails[not (primary eq true)]',
        'userName co "%" or userName co "\\\\"',
        'not (title pr) and meta.lastModified gt "2011-05-13T04:42:34Z"',
        `groups[value eq "${ID.groupA}"] and active eq false`,
        `${ENT}:department eq "SALES"`,
        'id sw "A11CE"',
      ]) {
        expect({ filter, rows: await onPglite(filter) }).toEqual({ filter, rows: await users(filter) });
      }
    } finally {
      await handle.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
