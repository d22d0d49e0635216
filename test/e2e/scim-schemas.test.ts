// Black-box: /Schemas describes every User attribute OneID stores (RFC 7643 sections 4.1, 4.3, 7),
// /Schemas/<urn> and /ResourceTypes agree with it, and every documented attribute can be filtered on.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';

let db: TestDatabase;
let server: RunningServer;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  token = (await runCli(['scim-tokens', 'create', '--name', 'schemas'], env)).json.token;
  server = await startServer(env);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function scim(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${server.url}/scim/v2${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

interface Attribute { name: string; type: string; multiValued: boolean; mutability: string; returned: string; caseExact: boolean; subAttributes?: Attribute[]; canonicalValues?: string[]; referenceTypes?: string[] }
const byName = (attrs: Attribute[]) => Object.fromEntries(attrs.map((a) => [a.name, a]));

describe('GET /scim/v2/Schemas', () => {
  it('describes every attribute OneID stores for a User, with RFC 7643 characteristics', async () => {
    const res = await scim('GET', '/Schemas');
    expect(res.status).toBe(200);
    const user = byName(res.body.Resources.find((s: { id: string }) => s.id === CORE).attributes);
    const ent = byName(res.body.Resources.find((s: { id: string }) => s.id === ENT).attributes);
    for (const name of ['nickName', 'profileUrl', 'userType', 'timezone', 'preferredLanguage', 'locale', 'title']) {
      expect(user[name]).toMatchObject({ multiValued: false, mutability: 'readWrite' });
    }
    expect(user.profileUrl).toMatchObject({ type: 'reference', referenceTypes: ['external'] });
    expect(user.name!.subAttributes!.map((a) => a.name)).toEqual(['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix']);
    for (const name of ['emails', 'phoneNumbers', 'ims', 'photos', 'addresses', 'entitlements', 'roles', 'x509Certificates']) {
      expect(user[name]).toMatchObject({ type: 'complex', multiValued: true, mutability: 'readWrite' });
    }
    expect(user.addresses!.subAttributes!.map((a) => [a.name, a.type])).toEqual([
      ['formatted', 'string'], ['streetAddress', 'string'], ['locality', 'string'], ['region', 'string'], ['postalCode', 'string'], ['country', 'string'],
      ['type', 'string'], ['primary', 'boolean'],
    ]);
    for (const name of ['entitlements', 'roles', 'ims']) expect(user[name]!.subAttributes!.map((a) => a.name)).toEqual(['value', 'display', 'type', 'primary']);
    expect(byName(user.photos!.subAttributes!).value).toMatchObject({ type: 'reference', referenceTypes: ['external'] });
    expect(byName(user.x509Certificates!.subAttributes!).value).toMatchObject({ type: 'binary' });
    expect(user.groups).toMatchObject({ mutability: 'readOnly', multiValued: true });
    expect(user.password).toMatchObject({ mutability: 'writeOnly', returned: 'never' });
    expect(Object.keys(ent)).toEqual(['employeeNumber', 'costCenter', 'organization', 'division', 'department', 'manager']);
    expect(byName(ent.manager!.subAttributes!).displayName).toMatchObject({ mutability: 'readOnly' });
  });

  it('serves each schema at /Schemas/<urn> as listed, and /ResourceTypes names only listed schemas', async () => {
    const list = (await scim('GET', '/Schemas')).body.Resources as { id: string; meta: { location: string } }[];
    for (const schema of list) {
      const one = await scim('GET', `/Schemas/${schema.id}`);
      expect(one).toEqual({ status: 200, body: schema });
      expect(schema.meta.location).toBe(`${server.url}/scim/v2/Schemas/${schema.id}`);
    }
    const types = (await scim('GET', '/ResourceTypes')).body.Resources as { id: string; schema: string; schemaExtensions: { schema: string }[] }[];
    for (const t of types) {
      expect(list.map((s) => s.id)).toContain(t.schema);
      for (const ext of t.schemaExtensions) expect(list.map((s) => s.id)).toContain(ext.schema);
    }
  });
});

describe('what /Schemas documents is kept', () => {
  it('every documented sub-attribute of a writable multi-valued attribute round-trips (emails.display too)', async () => {
    const schemas = (await scim('GET', '/Schemas')).body.Resources as { id: string; attributes: Attribute[] }[];
    const multi = schemas.find((s) => s.id === CORE)!.attributes.filter((a) => a.multiValued && a.type === 'complex' && a.mutability === 'readWrite');
    const body: Record<string, unknown> = { schemas: [CORE], userName: 'round.trip' };
    for (const a of multi) {
      const v: Record<string, unknown> = {};
      for (const s of a.subAttributes!) {
        if (s.mutability === 'readOnly' || s.name === '$ref') continue;
        v[s.name] = s.type === 'boolean' ? true : s.name === 'value' && a.name === 'emails' ? 'round.trip@example.com' : `${a.name}-${s.name}`;
      }
      body[a.name] = [v];
    }
    expect(Object.keys(body)).toContain('emails');
    const created = await scim('POST', '/Users', body);
    expect(created.status).toBe(201);
    const read = await scim('GET', `/Users/${created.body.id}`);
    for (const a of multi) expect({ [a.name]: read.body[a.name] }).toEqual({ [a.name]: body[a.name] });
    // Out of the way of the filter tests below, which count who matches.
    expect((await scim('DELETE', `/Users/${created.body.id}`)).status).toBe(204);
  });
});

describe('filters on the documented attributes', () => {
  let id: string;

  beforeAll(async () => {
    const res = await scim('POST', '/Users', {
      schemas: [CORE, ENT],
      userName: 'jane.filters',
      name: { givenName: 'Jane', familyName: 'Doe', middleName: 'Josephine', honorificPrefix: 'Dr.', honorificSuffix: 'III' },
      nickName: 'JJ', profileUrl: 'https://people.example/jane', userType: 'Employee', timezone: 'Europe/Berlin', preferredLanguage: 'de-DE',
      emails: [{ value: 'jane.filters@example.com', type: 'work', primary: true }],
      phoneNumbers: [{ value: '+49 30 1234', type: 'work' }, { value: '+49 170 5678', type: 'mobile' }],
      ims: [{ value: 'jane@xmpp.example', type: 'xmpp' }],
      photos: [{ value: 'https://photos.example/jane.jpg', type: 'photo' }],
      addresses: [
        { type: 'work', locality: 'Berlin', country: 'DE', streetAddress: 'Unter den Linden 1', postalCode: '10117' },
        { type: 'home', locality: 'Potsdam', country: 'DE' },
      ],
      entitlements: [{ value: 'vpn' }],
      roles: [{ value: 'auditor', primary: true }],
      x509Certificates: [{ value: 'MIIBIjANBgkq' }],
      [ENT]: { employeeNumber: 'E-7', costCenter: 'CC-4711', organization: 'Acme', division: 'Research' },
    });
    expect(res.status).toBe(201);
    id = res.body.id;
    await scim('POST', '/Users', { schemas: [CORE], userName: 'someone.else', addresses: [{ type: 'home', locality: 'Berlin' }, { type: 'work', locality: 'Hamburg' }] });
  });

  const found = async (filter: string) => {
    const res = await scim('GET', `/Users?filter=${encodeURIComponent(filter)}`);
    return { filter, status: res.status, ids: res.status === 200 ? res.body.Resources.map((r: { id: string }) => r.id) : res.body };
  };

  it('finds the user by each kept attribute, and not by other values', async () => {
    const hits = [
      'nickName eq "jj"',
      'addresses[type eq "work" and locality eq "Berlin"]',
      'addresses.postalCode eq "10117"',
      'name.middleName sw "J"',
      'name.honorificPrefix eq "Dr."',
      `${ENT}:costCenter eq "CC-4711"`,
      `${ENT}:organization eq "acme"`,
      `${ENT}:division co "search"`,
      'userType eq "Employee"',
      'timezone eq "Europe/Berlin"',
      'preferredLanguage eq "de-DE"',
      'profileUrl sw "https://people.example/"',
      'ims[type eq "xmpp"]',
      'photos.type eq "photo"',
      'entitlements eq "vpn"',
      'roles[value eq "auditor" and primary eq true]',
      'x509Certificates pr',
      'phoneNumbers[type eq "mobile" and value eq "+49 170 5678"]',
      'phoneNumbers.value eq "+49 30 1234"',
    ];
    const misses = [
      'nickName eq "JK"',
      'addresses[type eq "home" and locality eq "Berlin"] and userName eq "jane.filters"',
      'name.middleName sw "K"',
      `${ENT}:costCenter eq "CC-4712"`,
      'roles[value eq "auditor" and primary eq false]',
    ];
    const results = [...await Promise.all(hits.map(found)), ...await Promise.all(misses.map(found))];
    expect(results).toEqual([...hits.map((filter) => ({ filter, status: 200, ids: [id] })), ...misses.map((filter) => ({ filter, status: 200, ids: [] }))]);
  });

  it('a complex attribute as a whole takes pr (RFC 7644 3.4.2.2), also one without a value sub-attribute', async () => {
    const schemas = (await scim('GET', '/Schemas')).body.Resources as { id: string; attributes: Attribute[] }[];
    const complex = schemas.find((s) => s.id === CORE)!.attributes.filter((a) => a.type === 'complex' && a.mutability !== 'writeOnly').map((a) => a.name);
    expect(complex).toContain('addresses');
    const results = await Promise.all(complex.map(async (name) => ({ name, status: (await scim('GET', `/Users?filter=${encodeURIComponent(`${name} pr`)}&count=1`)).status })));
    expect(results).toEqual(complex.map((name) => ({ name, status: 200 })));
    expect(await found(`addresses pr and id eq "${id}"`)).toEqual({ filter: `addresses pr and id eq "${id}"`, status: 200, ids: [id] });
    const none = await found('addresses pr and userName eq "nobody.here"');
    expect(none.ids).toEqual([]);
  });

  it('accepts a filter on every attribute and sub-attribute that /Schemas documents', async () => {
    const schemas = (await scim('GET', '/Schemas')).body.Resources as { id: string; attributes: Attribute[] }[];
    const paths = (schemaId: string, prefix: string) => schemas.find((s) => s.id === schemaId)!.attributes.flatMap((a) => {
      if (a.mutability === 'writeOnly') return [];
      if (a.type !== 'complex') return [`${prefix}${a.name}`];
      // $ref is the resource's URL, derived from value: filter on value.
      return a.subAttributes!.filter((s) => s.name !== '$ref').map((s) => `${prefix}${a.name}.${s.name}`);
    });
    for (const [resource, filters] of [
      ['/Users', [...paths(CORE, ''), ...paths(ENT, `${ENT}:`)]],
      ['/Groups', paths(GROUP, '')],
    ] as const) {
      const results = await Promise.all(filters.map(async (path) => ({ path, status: (await scim('GET', `${resource}?filter=${encodeURIComponent(`${path} pr`)}&count=1`)).status })));
      expect(results).toEqual(filters.map((path) => ({ path, status: 200 })));
    }
  });
});
