// `oneid suites ...` as an operator meets it: a subprocess against a real database. Create a
// suite, add an app with a role map, assign it, list; wrong input is a one-line error.
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli } from '../helpers/server.ts';

let database: TestDatabase;
let env: Record<string, string>;
const cli = (...args: string[]) => runCli(args, env);

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_cli_suites');
  env = { DATABASE_URL: database.url };
});

afterAll(async () => {
  await database?.drop();
});

describe('oneid suites', () => {
  it('creates a suite, adds an app with a role map, assigns a person and lists it', async () => {
    const app = await cli('apps', 'create', '--name', 'CRM', '--redirect-uri', 'https://crm.example/cb', '--access', 'assigned', '--api-audience', 'https://crm.example/api');
    expect(app.code).toBe(0);
    expect((await cli('app-roles', 'create', '--app', app.json.id, '--key', 'crm.sales', '--name', 'Sales')).code).toBe(0);
    const person = await cli('users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'a-long-password-1');
    expect(person.code).toBe(0);

    const suite = await cli('suites', 'create', '--name', 'Sales suite', '--position', '3', '--signin-policy', 'mfa', '--suite-signout', 'on');
    expect(suite.code).toBe(0);
    expect(suite.json).toMatchObject({ name: 'Sales suite', position: 3, signin_policy: 'mfa', suite_signout: true, apps: [], roles: [] });
    expect((await cli('suites', 'roles', 'add', '--suite', suite.json.id, '--key', 'sales', '--name', 'Sales')).code).toBe(0);
    const added = await cli('suites', 'apps', 'add', '--suite', suite.json.id, '--app', app.json.id, '--map', 'sales=crm.sales');
    expect(added.code).toBe(0);
    expect(added.json.apps).toEqual([expect.objectContaining({ app_id: app.json.id, role_map: { sales: ['crm.sales'] } })]);

    const assigned = await cli('suites', 'assign', '--suite', suite.json.id, '--user', person.json.id, '--role', 'sales');
    expect(assigned.code).toBe(0);
    expect(assigned.json).toMatchObject({ principalType: 'user', principalId: person.json.id, roles: [expect.objectContaining({ key: 'sales' })] });

    const got = await cli('apps', 'get', '--id', app.json.id);
    expect(got.json).toMatchObject({ api_audience: 'https://crm.example/api', suite_signin_policy: 'mfa' });
    const rights = await cli('users', 'entitlements', '--id', person.json.id, '--app', app.json.id);
    expect(rights.json).toMatchObject({ allowed: true, roles: ['crm.sales'] });
    const listed = await cli('suites', 'list');
    expect(listed.code).toBe(0);
    expect(listed.json.items).toEqual([expect.objectContaining({ id: suite.json.id, apps: [expect.objectContaining({ app_id: app.json.id })] })]);

    // Wrong input: one line naming the flag, nothing changed.
    const badMap = await cli('suites', 'apps', 'add', '--suite', suite.json.id, '--app', app.json.id, '--map', 'sales');
    expect(badMap.code).toBe(2);
    expect(badMap.stderr).toContain('--map must be SUITE_ROLE=APP_ROLE');
    const unknownRole = await cli('suites', 'apps', 'add', '--suite', suite.json.id, '--app', app.json.id, '--map', 'sales=crm.nope');
    expect(unknownRole.code).toBe(1);
    expect(unknownRole.stderr).toContain('--map');
    expect(unknownRole.stderr).toContain('crm.nope');
    expect(unknownRole.stderr).not.toMatch(/at .*\.ts|select /);
    expect((await cli('suites', 'show', '--id', suite.json.id)).json.apps[0].role_map).toEqual({ sales: ['crm.sales'] });
    // Each command is a process of its own that opens the database: slow on a busy machine.
  }, 300000);
});
