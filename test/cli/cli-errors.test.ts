// The `oneid` command as an operator meets it: a subprocess against a real database. Every
// mistake is one line naming what to fix (exit 2 for the command line, 1 for a refusal), never
// SQL or a stack; every command describes itself with --help; people can be listed, found and
// given a password that never appears on the command line.
import argon2 from 'argon2';
import { createTestDatabase, storedPasswordHash, type TestDatabase } from '../helpers/db.ts';
import { runCli, testMasterKey, type CliResult, runCliWithInput } from '../helpers/server.ts';

let database: TestDatabase;
let env: Record<string, string>;

const cliWithInput = (args: string[], input: string): Promise<CliResult> => runCliWithInput(args, input, env);

const cli = (...args: string[]) => runCli(args, env);

/** What a person must never see: SQL, a driver's message, a stack frame, a zod path. */
function expectOneCleanLine(r: CliResult): void {
  const all = r.stdout + r.stderr;
  expect(all).not.toMatch(/\bselect\b|\bfrom "|\binsert into\b|invalid input syntax|\bat .+:\d+:\d+|node:internal|\.ts:\d+|ZodError|redirectUris\.\d/i);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^oneid: /);
}

let ada: { id: string };

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_cli');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await cli('users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'analytical-engine', '--name', 'Ada Lovelace');
  expect(created.code).toBe(0);
  ada = created.json;
  for (const name of ['grace', 'linus', 'margaret']) {
    expect((await cli('users', 'create', '--username', name, '--email', `${name}@example.com`, '--password', 'long-enough-1')).code).toBe(0);
  }
}, 180000);

afterAll(async () => {
  await database?.drop();
});

describe('oneid errors', () => {
  it('refuses an id that is not a UUID without touching the database: exit 2, names --id, no SQL', async () => {
    const r = await cli('users', 'suspend', '--id', '123');
    expect(r.code).toBe(2);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('--id');
  });

  it('names an unknown flag and the flags the command takes', async () => {
    const r = await cli('users', 'suspend', '--user', ada.id);
    expect(r.code).toBe(2);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('unknown option --user');
    expect(r.stderr).toContain('--id');
  });

  it('says a flag needs a value when it has none, and names a missing required flag', async () => {
    const noValue = await cli('users', 'suspend', '--id');
    expect(noValue.code).toBe(2);
    expectOneCleanLine(noValue);
    expect(noValue.stderr).toContain('--id needs a value');
    const missing = await cli('apps', 'create', '--redirect-uri', 'https://app.example.com/cb');
    expect(missing.code).toBe(2);
    expectOneCleanLine(missing);
    expect(missing.stderr).toContain('missing --name');
  });

  it('answers an unknown command with exit 2 and where to look', async () => {
    const r = await cli('users', 'frobnicate');
    expect(r.code).toBe(2);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('oneid users --help');
  });

  it('says the database cannot be reached, in one line without the driver\'s stack', async () => {
    const r = await runCli(['users', 'list'], { ...env, DATABASE_URL: 'postgres://postgres@127.0.0.1:9/none' });
    expect(r.code).toBe(1);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('cannot reach the database');
  });

  it('reports a refused operation with exit 1 in one line', async () => {
    const r = await cli('users', 'suspend', '--id', '0f8e0d2c-5a4b-4c3d-9e2f-1a2b3c4d5e6f');
    expect(r.code).toBe(1);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('no user with this id');
  });

  it('names the flag typed (--redirect-uri), not the field it fills (redirectUris.0)', async () => {
    const r = await cli('apps', 'create', '--name', 'Wiki', '--redirect-uri', 'https://wiki.example.com/cb', '--redirect-uri', 'not a url');
    expect(r.code).toBe(1);
    expectOneCleanLine(r);
    expect(r.stderr).toMatch(/^oneid: --redirect-uri: /);
    const email = await cli('users', 'create', '--username', 'x1', '--email', 'not-an-address', '--password', 'long-enough-1');
    expect(email.code).toBe(1);
    expectOneCleanLine(email);
    expect(email.stderr).toMatch(/^oneid: --email: /);
  });
});

describe('oneid --help', () => {
  it('lists every command with what it does', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    for (const name of ['migrate', 'users create', 'users list', 'users get', 'users set-password', 'users suspend', 'apps create', 'keys rotate', 'audit verify', 'scim-tokens create']) {
      expect(r.stdout).toMatch(new RegExp(`\\n  ${name} +\\S`));
    }
  });

  it('describes a group and each command with its options', async () => {
    const group = await cli('users', '--help');
    expect(group.code).toBe(0);
    expect(group.stdout).toContain('users set-password');
    const create = await cli('apps', 'create', '--help');
    expect(create.code).toBe(0);
    expect(create.stdout).toContain('usage: oneid apps create --name NAME');
    for (const flag of ['--redirect-uri URI', '--public', '--first-party', '--grant-types LIST', '--access', '--admin-role ROLE', '--id-token-alg']) {
      expect(create.stdout).toContain(flag);
    }
    const migrate = await cli('migrate', '--help');
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toContain('usage: oneid migrate');
  });
});

describe('oneid users list|get', () => {
  it('prints a table of people, pages with --limit and --cursor, and JSON with --json', async () => {
    const first = await cli('users', 'list', '--limit', '2');
    expect(first.code).toBe(0);
    const lines = first.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID +USERNAME +EMAIL +NAME +STATUS$/);
    expect(first.stdout).toContain('ada@example.com');
    expect(first.stdout).toContain('Ada Lovelace');
    expect(first.stdout).not.toContain('linus');
    const cursor = /--cursor (\S+)/.exec(first.stdout)?.[1];
    expect(cursor).toBeDefined();
    const second = await cli('users', 'list', '--limit', '2', '--cursor', cursor!, '--json');
    expect(second.code).toBe(0);
    expect(second.json.items.map((u: { username: string }) => u.username)).toEqual(['linus', 'margaret']);
    expect(second.json.next_cursor).toBeNull();
  });

  it('searches by text', async () => {
    const r = await cli('users', 'list', '--q', 'gra', '--json');
    expect(r.json.items.map((u: { username: string }) => u.username)).toEqual(['grace']);
  });

  it('refuses a forged cursor as a usage error', async () => {
    const r = await cli('users', 'list', '--cursor', Buffer.from('["x", "select 1"]').toString('base64url'));
    expect(r.code).toBe(2);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('--cursor');
  });

  it('finds one person by id, username or email', async () => {
    for (const args of [['--id', ada.id], ['--username', 'ada'], ['--email', 'ada@example.com']]) {
      const r = await cli('users', 'get', ...args);
      expect(r.code).toBe(0);
      expect(r.json).toMatchObject({ id: ada.id, username: 'ada', name: 'Ada Lovelace' });
    }
    const none = await cli('users', 'get', '--email', 'nobody@example.com');
    expect(none.code).toBe(1);
    expectOneCleanLine(none);
  });
});

describe('oneid users set-password', () => {
  it('reads the new password from standard input', async () => {
    const r = await cliWithInput(['users', 'set-password', '--username', 'ada'], 'a-new-secret-phrase\n');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ id: ada.id, username: 'ada', password_set: true });
    expect(r.stdout + r.stderr).not.toContain('a-new-secret-phrase');
    expect(await argon2.verify((await storedPasswordHash(database.url, ada.id))!, 'a-new-secret-phrase')).toBe(true);
  });

  it('takes no password argument (it would be visible in ps)', async () => {
    const r = await cli('users', 'set-password', '--username', 'ada', '--password', 'visible-to-all');
    expect(r.code).toBe(2);
    expectOneCleanLine(r);
    expect(await argon2.verify((await storedPasswordHash(database.url, ada.id))!, 'visible-to-all')).toBe(false);
  });

  it('generates a password and prints it once', async () => {
    const r = await cli('users', 'set-password', '--email', 'grace@example.com', '--generate');
    expect(r.code).toBe(0);
    expect(r.json.password).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(await argon2.verify((await storedPasswordHash(database.url, r.json.id))!, r.json.password)).toBe(true);
  });

  it('creates a person with a password from standard input, or a generated one', async () => {
    const piped = await cliWithInput(['users', 'create', '--username', 'piped', '--email', 'piped@example.com'], 'piped-secret-phrase\n');
    expect(piped.code).toBe(0);
    expect(await argon2.verify((await storedPasswordHash(database.url, piped.json.id))!, 'piped-secret-phrase')).toBe(true);
    const generated = await cli('users', 'create', '--username', 'generated', '--email', 'generated@example.com', '--generate');
    expect(generated.code).toBe(0);
    expect(await argon2.verify((await storedPasswordHash(database.url, generated.json.id))!, generated.json.password)).toBe(true);
  });

  it('applies the password rules of the directory and changes nothing when refused', async () => {
    const before = await storedPasswordHash(database.url, ada.id);
    const r = await cliWithInput(['users', 'set-password', '--id', ada.id], 'short\n');
    expect(r.code).toBe(1);
    expectOneCleanLine(r);
    expect(r.stderr).toContain('at least 8 characters');
    expect(await storedPasswordHash(database.url, ada.id)).toBe(before);
  });
});
