// Migration 20261206130000 on a database that already holds clashing names: it keeps every row,
// re-folds what it can, gives each sign-in name to one account and lists what it did.
import type { Knex } from 'knex';
import { createDb } from '../../src/db/knex.ts';
import { migrateLatest, migratorConfig } from '../../src/db/migrate.ts';
import { findUserByLoginWithPassword } from '../../src/directory/users.repo.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const MIGRATION = '20261206130000_create_sign_in_names';

const ID = {
  owner: '0a000000-0000-4000-8000-000000000001',
  shadow: '0a000000-0000-4000-8000-000000000002',
  alice: '0a000000-0000-4000-8000-000000000003',
  wideAlice: '0a000000-0000-4000-8000-000000000004',
  wideBob: '0a000000-0000-4000-8000-000000000005',
  gone: '0a000000-0000-4000-8000-000000000006',
};

let database: TestDatabase;
let db: Knex;
let close: () => Promise<void>;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_sign_in_names');
  const handle = createDb({ databaseUrl: database.url, databasePoolMax: 2, dataDir: '/nonexistent/unused' });
  db = handle.db;
  close = handle.close;
  // Every migration before this one.
  for (;;) {
    const [, pending] = (await db.migrate.list(migratorConfig)) as [unknown[], { file?: string; name?: string }[] | string[]];
    const next = pending[0];
    const name = typeof next === 'string' ? next : next?.name ?? next?.file;
    if (!name || name === MIGRATION) break;
    await db.migrate.up(migratorConfig);
  }
  const user = (id: string, username: string, email: string | null, created: string, status = 'active') => ({
    id, username, email, status, created_at: created, updated_at: created, emails: JSON.stringify(email ? [{ value: email, primary: true }] : []),
  });
  // What the old code let in: a later account whose username is an earlier account's email, a
  // deprovisioned account holding a name, and names stored before NFKC folding.
  await db('users').insert([
    user(ID.owner, 'owner', 'owner@example.com', '2020-01-01T00:00:00Z'),
    user(ID.shadow, 'owner@example.com', 'shadow@example.com', '2021-01-01T00:00:00Z'),
    user(ID.gone, 'alice@example.com', null, '2019-01-01T00:00:00Z', 'deprovisioned'),
    user(ID.alice, 'alice', 'alice@example.com', '2020-06-01T00:00:00Z'),
    user(ID.wideAlice, 'ａｌｉｃｅ', null, '2020-07-01T00:00:00Z'),
    user(ID.wideBob, 'ｂｏｂ', 'ｂｏｂ@example.com', '2020-08-01T00:00:00Z'),
  ]);
  // Up to this migration only: a later one may refuse to go down once its columns hold data.
  await db.migrate.up(migratorConfig);
}, 60000);

afterAll(async () => {
  await close?.();
  await database?.drop();
});

const owner = async (name: string): Promise<string | undefined> => (await findUserByLoginWithPassword(db, name))?.user.id;

describe('migration 20261206130000_create_sign_in_names', () => {
  it('keeps every row and gives a clashing name to the earlier, active account', async () => {
    expect(await db('users').count({ n: '*' }).then((r) => Number(r[0]!.n))).toBe(6);
    // The shadowing username stays stored but no longer signs in as that account.
    expect(await db('users').where({ id: ID.shadow }).first('username')).toEqual({ username: 'owner@example.com' });
    expect(await owner('owner@example.com')).toBe(ID.owner);
    expect(await owner('owner')).toBe(ID.owner);
    expect(await owner('shadow@example.com')).toBe(ID.shadow);
    // A deprovisioned account gives way to an active one, however old.
    expect(await owner('alice@example.com')).toBe(ID.alice);
    const report = await db('sign_in_names_migration_report').where({ user_id: ID.shadow }).select('field', 'outcome', 'other_user_id');
    expect(report).toEqual([{ field: 'username', outcome: 'not_indexed', other_user_id: ID.owner }]);
  });

  it('re-folds names by NFKC, and leaves a name whose folded form is taken as it was, reachable by id', async () => {
    expect(await db('users').where({ id: ID.wideBob }).first('username', 'email')).toEqual({ username: 'bob', email: 'bob@example.com' });
    expect(await owner('ＢＯＢ')).toBe(ID.wideBob);
    expect(await owner('bob@example.com')).toBe(ID.wideBob);
    expect(await db('users').where({ id: ID.wideAlice }).first('username')).toEqual({ username: 'ａｌｉｃｅ' });
    expect(await owner('ａｌｉｃｅ')).toBe(ID.alice);
    const outcomes = await db('sign_in_names_migration_report').whereIn('user_id', [ID.wideAlice, ID.wideBob]).orderBy(['user_id', 'field']).select('user_id', 'field', 'outcome');
    expect(outcomes).toEqual([
      { user_id: ID.wideAlice, field: 'username', outcome: 'kept_clash' },
      { user_id: ID.wideBob, field: 'email', outcome: 'refolded' },
      { user_id: ID.wideBob, field: 'username', outcome: 'refolded' },
    ]);
  });

  it('goes down to the names as they were stored', async () => {
    await db.migrate.down(migratorConfig);
    expect(await db('users').where({ id: ID.wideBob }).first('username', 'email')).toEqual({ username: 'ｂｏｂ', email: 'ｂｏｂ@example.com' });
    expect(await db.schema.hasTable('sign_in_names')).toBe(false);
    await db.migrate.up(migratorConfig);
    expect(await owner('owner@example.com')).toBe(ID.owner);
  });

  it('still lets an account whose name another holds be changed, and enforces the namespace from then on', async () => {
    // The service writes audit events as today's schema has them.
    await migrateLatest(db);
    const users = new UsersService(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
    expect((await users.updateUser(ID.shadow, { title: 'Kept' })).title).toBe('Kept');
    expect((await users.updateUser(ID.shadow, { username: 'shadow' })).username).toBe('shadow');
    await expect(users.createUser({ username: 'someone', email: 'Shadow@example.com' })).rejects.toMatchObject({ kind: 'already_exists', code: 'user.email_taken' });
    await expect(users.createUser({ username: 'bob@example.com' })).rejects.toMatchObject({ kind: 'already_exists', code: 'user.username_taken' });
  });
});
