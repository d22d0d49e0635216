// `oneid apps create|update --signin-policy` and `oneid users methods|reset-method`, as an operator
// runs them: a subprocess against a real database, JSON out, one clean line for a mistake.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, testMasterKey, type CliResult } from '../helpers/server.ts';

let database: TestDatabase;
let env: Record<string, string>;
let sql: pg.Client;

const cli = (...args: string[]) => runCli(args, env);

function expectOneCleanLine(r: CliResult): void {
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^oneid: /);
  expect(r.stderr).not.toMatch(/\bselect\b|\binsert into\b|\.ts:\d+|ZodError|signInPolicy/);
}

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_cli_methods');
  env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  expect((await cli('migrate')).code).toBe(0);
  sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
}, 120000);

afterAll(async () => {
  await sql?.end();
  await database?.drop();
});

const auditActions = async (targetId: string): Promise<{ action: string; actor_id: string; changes: any }[]> =>
  (await sql.query('select action, actor_id, changes from audit_events where target_id = $1 order by seq', [targetId])).rows;

describe('oneid apps create|update --signin-policy', () => {
  it('sets a policy at creation, changes it, and puts it back to the global default with `default`', async () => {
    const created = await cli('apps', 'create', '--name', 'HR', '--redirect-uri', 'https://hr.example.com/cb', '--signin-policy', 'mfa');
    expect(created.code).toBe(0);
    const id = created.json.id as string;
    expect((await cli('apps', 'get', '--id', id)).json.signin_policy).toBe('mfa');

    const stricter = await cli('apps', 'update', '--id', id, '--signin-policy', 'phishing_resistant');
    expect(stricter.code).toBe(0);
    expect(stricter.json).toMatchObject({ id, signin_policy: 'phishing_resistant' });
    const back = await cli('apps', 'update', '--id', id, '--signin-policy', 'default');
    expect(back.code).toBe(0);
    expect(back.json.signin_policy).toBeNull();
    const { rows } = await sql.query('select signin_policy from apps where id = $1', [id]);
    expect(rows[0].signin_policy).toBeNull();

    const updates = (await auditActions(id)).filter((e) => e.action === 'app.updated');
    expect(updates.map((e) => e.changes.signInPolicy)).toEqual(['phishing_resistant', null]);
    expect(updates[0]!.actor_id).toMatch(/^cli:/);

    const plain = await cli('apps', 'create', '--name', 'Plain', '--redirect-uri', 'https://plain.example.com/cb');
    expect((await cli('apps', 'get', '--id', plain.json.id)).json.signin_policy).toBeNull();
  });

  it('refuses a value that is not a level, naming --signin-policy and the values it takes, and changes nothing', async () => {
    const created = await cli('apps', 'create', '--name', 'Mail', '--redirect-uri', 'https://mail.example.com/cb', '--signin-policy', 'password');
    for (const args of [['apps', 'update', '--id', created.json.id, '--signin-policy', 'MFA'], ['apps', 'create', '--name', 'X', '--redirect-uri', 'https://x.example.com/cb', '--signin-policy', 'strong']]) {
      const r = await cli(...args);
      expect(r.code).toBe(2);
      expectOneCleanLine(r);
      expect(r.stderr).toContain('--signin-policy must be password, mfa, phishing_resistant or default');
    }
    expect((await cli('apps', 'get', '--id', created.json.id)).json).toMatchObject({ signin_policy: 'password', version: 1 });
    expect((await sql.query("select count(*)::int as n from apps where name = 'X'")).rows[0].n).toBe(0);
    const missing = await cli('apps', 'update', '--id', created.json.id);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing --signin-policy');
  });
});

describe('oneid users methods|reset-method', () => {
  let grace: { id: string };
  let passkey: string;

  beforeAll(async () => {
    const created = await cli('users', 'create', '--username', 'grace', '--email', 'grace@example.com', '--password', 'long-enough-1');
    expect(created.code).toBe(0);
    grace = created.json;
    passkey = (await sql.query(`insert into credentials (id, user_id, type, data, external_id, name) values
      (gen_random_uuid(), $1, 'webauthn', '{"publicKey":"SECRET-ISH-KEY"}', 'cred-1', 'YubiKey') returning id`, [grace.id])).rows[0].id;
    await sql.query(`insert into credentials (id, user_id, type, data) values (gen_random_uuid(), $1, 'totp', '{"secret":"TOTP-SEED","confirmed":true,"lastStep":0}')`, [grace.id]);
    for (let i = 0; i < 3; i += 1) {
      await sql.query(`insert into credentials (id, user_id, type, data) values (gen_random_uuid(), $1, 'recovery', '{"hash":"h"}')`, [grace.id]);
    }
  });

  it('shows what a person has set up, found by username, without a secret', async () => {
    const r = await cli('users', 'methods', '--username', 'grace');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({
      id: grace.id, username: 'grace', password: true, totp: true, recoveryCodesRemaining: 3,
      passkeys: [{ id: passkey, name: 'YubiKey', lastUsedAt: null }],
    });
    expect(r.stdout).not.toMatch(/SECRET-ISH-KEY|TOTP-SEED|cred-1/);
  });

  it('removes a passkey, the authenticator app and the recovery codes, one at a time, each audited with the operator', async () => {
    const removed = await cli('users', 'reset-method', '--email', 'grace@example.com', '--passkey', passkey);
    expect(removed.code).toBe(0);
    expect(removed.json).toMatchObject({ id: grace.id, removed: { passkey }, methods: { passkeys: [], totp: true } });
    expect((await cli('users', 'reset-method', '--id', grace.id, '--totp')).json.methods).toMatchObject({ totp: false, recoveryCodesRemaining: 3 });
    expect((await cli('users', 'reset-method', '--id', grace.id, '--recovery-codes')).json.methods).toEqual({
      password: true, passkeys: [], totp: false, recoveryCodesRemaining: 0,
    });
    const events = (await auditActions(grace.id)).filter((e) => e.action.endsWith('.removed'));
    expect(events.map((e) => e.action)).toEqual(['passkey.removed', 'totp.removed', 'recovery_codes.removed']);
    expect(events.every((e) => e.actor_id.startsWith('cli:'))).toBe(true);
  });

  it('says what is missing in one line (exit 1), and wants exactly one method (exit 2)', async () => {
    const again = await cli('users', 'reset-method', '--id', grace.id, '--passkey', passkey);
    expect(again.code).toBe(1);
    expectOneCleanLine(again);
    expect(again.stderr).toContain('this person has no passkey with this id');
    const noTotp = await cli('users', 'reset-method', '--id', grace.id, '--totp');
    expect(noTotp.code).toBe(1);
    expect(noTotp.stderr).toContain('no authenticator app set up');
    const nobody = await cli('users', 'methods', '--username', 'nobody');
    expect(nobody.code).toBe(1);
    expectOneCleanLine(nobody);

    for (const args of [[], ['--totp', '--recovery-codes']]) {
      const r = await cli('users', 'reset-method', '--id', grace.id, ...args);
      expect(r.code).toBe(2);
      expectOneCleanLine(r);
      expect(r.stderr).toContain('give exactly one of --passkey PASSKEY_ID, --totp or --recovery-codes');
    }
    const badId = await cli('users', 'reset-method', '--id', grace.id, '--passkey', 'cred-1');
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('--passkey must be an id');
  });
});
