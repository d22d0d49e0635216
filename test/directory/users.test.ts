// UsersService on a real database with real argon2id hashing.
import type { Knex } from 'knex';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { UsersService } from '../../src/directory/users.service.ts';
import { PasswordStrategy } from '../../src/credentials/password.strategy.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const BASE_PARAMS = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

let mdb: MigratedDatabase;
let db: Knex;
let users: UsersService;
let passwords: PasswordStrategy;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_users');
  db = mdb.db;
  users = new UsersService(db, new PasswordHasher(BASE_PARAMS));
  passwords = new PasswordStrategy(db, new PasswordHasher(BASE_PARAMS));
});

afterAll(async () => {
  await mdb?.close();
});

/** The AppError a promise rejects with; fails the test when it resolves. */
async function appError(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

const storedHash = async (userId: string): Promise<string> => {
  const row = await db('credentials').where({ user_id: userId, type: 'password' }).first(db.raw("data->>'hash' as hash"));
  return (row as { hash: string }).hash;
};

describe('UsersService.createUser', () => {
  it('stores username and email lower-case and splits the full name', async () => {
    const user = await users.createUser({ username: ' Ada.Lovelace ', email: 'Ada@Example.COM', password: 'analytical-engine', name: 'Ada King Lovelace' });
    expect(user).toMatchObject({
      username: 'ada.lovelace', email: 'ada@example.com', givenName: 'Ada', familyName: 'King Lovelace',
      displayName: 'Ada King Lovelace', status: 'active', adminRoles: [], emailVerified: false,
    });
    expect(user.id).toMatch(/^[0-9a-f-]{36}$/);
    const row = await db('users').where({ id: user.id }).first();
    expect(row).toMatchObject({ username: 'ada.lovelace', email: 'ada@example.com' });
  });

  it('trims spaces around the email, as it does around the username', async () => {
    const user = await users.createUser({ username: 'spaces', email: '  Spaces@Example.com ' });
    expect(user.email).toBe('spaces@example.com');
  });

  it('stores the password as an argon2id hash with the configured memory cost', async () => {
    const user = await users.createUser({ username: 'hashcheck', email: 'hashcheck@example.com', password: 'analytical-engine' });
    const hash = await storedHash(user.id);
    expect(hash.startsWith('$argon2id$')).toBe(true);
    // PHC parameters, in whatever order the library writes them.
    const params = Object.fromEntries(hash.split('$')[3]!.split(',').map((kv) => kv.split('=')));
    expect(params).toEqual({ m: '19456', t: '2', p: '1' });
    expect(hash).not.toContain('analytical-engine');
  });

  it('returns already_exists user.username_taken for a username taken in another case', async () => {
    const err = await appError(users.createUser({ username: 'ADA.LOVELACE', email: 'other@example.com', password: 'analytical-engine' }));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'user.username_taken' });
    expect(await db('users').where({ email: 'other@example.com' })).toEqual([]);
  });

  it('returns already_exists user.email_taken for an email taken in another case', async () => {
    const err = await appError(users.createUser({ username: 'countess', email: 'ADA@example.com', password: 'analytical-engine' }));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'user.email_taken' });
    expect(await db('users').where({ username: 'countess' })).toEqual([]);
  });

  it.each([
    ['username', { username: 'no spaces allowed', email: 'a1@example.com' }],
    ['username', { username: '.leading-dot', email: 'a2@example.com' }],
    ['username', { username: '', email: 'a3@example.com' }],
    ['email', { username: 'bademail', email: 'not-an-email' }],
    ['password', { username: 'shortpw', email: 'a4@example.com', password: 'short' }],
    ['password', { username: 'longpw', email: 'a5@example.com', password: 'x'.repeat(257) }],
    ['locale', { username: 'badlocale', email: 'a6@example.com', locale: 'english please' }],
    ['adminRoles.0', { username: 'badrole', email: 'a7@example.com', adminRoles: ['god'] }],
  ])('returns invalid_argument naming %s', async (field, input) => {
    const err = await appError(users.createUser(input as Parameters<UsersService['createUser']>[0]));
    expect(err.kind).toBe('invalid_argument');
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.details).toEqual({ field });
    expect(await db('users').where({ email: (input as { email: string }).email })).toEqual([]);
  });
});

describe('UsersService.authenticate', () => {
  let ada: { id: string };

  beforeAll(async () => {
    ada = (await db('users').where({ username: 'ada.lovelace' }).first())!;
  });

  it('signs in by username and by email, in any case', async () => {
    expect((await passwords.authenticate('ada.lovelace', 'analytical-engine'))?.id).toBe(ada.id);
    expect((await passwords.authenticate('Ada.Lovelace', 'analytical-engine'))?.id).toBe(ada.id);
    expect((await passwords.authenticate('ada@example.com', 'analytical-engine'))?.id).toBe(ada.id);
    expect((await passwords.authenticate(' ADA@EXAMPLE.COM ', 'analytical-engine'))?.id).toBe(ada.id);
  });

  it('takes the user names HR systems and identity providers send, and signs them in as typed', async () => {
    // An Entra guest's user principal name, a +tag, an apostrophe, an accent written decomposed
    // (e + combining acute) and a non-Latin script.
    const names = ['Alice_Contoso.com#EXT#@fabrikam.onmicrosoft.com', 'alice+hr@example.com', "o'brien@example.com", 'Jose\u0301.Garcia', '李雷'];
    for (const name of names) {
      const created = await users.createUser({ username: name, password: 'analytical-engine' });
      expect(created.username).toBe(name.normalize('NFC').toLowerCase());
      expect((await passwords.authenticate(name, 'analytical-engine'))?.id).toBe(created.id);
      expect((await passwords.authenticate(name.normalize('NFC').toUpperCase(), 'analytical-engine'))?.id).toBe(created.id);
    }
    // The composed and decomposed spellings are one name.
    const taken = await appError(users.createUser({ username: 'Jos\u00e9.Garcia' }));
    expect(taken.kind).toBe('already_exists');
    for (const bad of ['has space', 'tab\there', 'bell\u0007', '-leading-dash', 'x'.repeat(255)]) {
      const err = await appError(users.createUser({ username: bad }));
      expect(err.kind).toBe('invalid_argument');
    }
  });

  it('refuses the same email twice (in any case) and two primary emails', async () => {
    for (const list of [
      [{ value: 'dup@example.com' }, { value: 'DUP@example.com' }],
      [{ value: 'one@example.com', primary: true }, { value: 'two@example.com', primary: true }],
    ]) {
      const err = await appError(users.createUser({ username: `emails.${list.length}.${list[1]!.value.length}`, emails: list }));
      expect(err.kind).toBe('invalid_argument');
    }
    const fine = await users.createUser({ username: 'emails.fine', emails: [{ value: 'a@example.com', primary: true }, { value: 'b@example.com' }] });
    expect(fine.emails).toHaveLength(2);
  });

  it('returns undefined for a wrong password', async () => {
    expect(await passwords.authenticate('ada.lovelace', 'analytical-engine ')).toBeUndefined();
    expect(await passwords.authenticate('ada.lovelace', 'ANALYTICAL-ENGINE')).toBeUndefined();
    expect(await passwords.authenticate('ada.lovelace', '')).toBeUndefined();
  });

  it('returns undefined for an unknown user', async () => {
    expect(await passwords.authenticate('charles.babbage', 'analytical-engine')).toBeUndefined();
    expect(await passwords.authenticate('', 'analytical-engine')).toBeUndefined();
  });

  it('returns undefined for a user without a password', async () => {
    await users.createUser({ username: 'nopassword', email: 'nopassword@example.com' });
    expect(await passwords.authenticate('nopassword', 'anything-at-all')).toBeUndefined();
  });

  it('returns undefined for a suspended user with the right password', async () => {
    const user = await users.createUser({ username: 'suspended', email: 'suspended@example.com', password: 'analytical-engine' });
    expect((await passwords.authenticate('suspended', 'analytical-engine'))?.id).toBe(user.id);
    await db.raw("update users set status = 'suspended' where id = ?", [user.id]);
    expect(await passwords.authenticate('suspended', 'analytical-engine')).toBeUndefined();
    expect(await passwords.authenticate('suspended@example.com', 'analytical-engine')).toBeUndefined();
  });

  it('signs a name in as the one account that holds it, never as a later account that uses it as its username', async () => {
    const owner = await users.createUser({ username: 'grace', email: 'hopper@example.com', password: 'password-of-grace' });
    const err = await appError(users.createUser({ username: 'hopper@example.com', email: 'other-hopper@example.com', password: 'password-of-other' }));
    expect(err).toMatchObject({ kind: 'already_exists', code: 'user.username_taken', details: { field: 'username' } });
    expect((await passwords.authenticate('hopper@example.com', 'password-of-grace'))?.id).toBe(owner.id);
    expect(await passwords.authenticate('hopper@example.com', 'password-of-other')).toBeUndefined();
  });
});

describe('one namespace for usernames and sign-in emails', () => {
  const password = 'shared-namespace-pw';

  it('refuses a username that is another account\'s email, on create and on rename, in any case and form', async () => {
    const owner = await users.createUser({ username: 'ns.owner', email: 'ns.owner.mail@example.com', password });
    const other = await users.createUser({ username: 'ns.other', email: 'ns.other@example.com', password });
    for (const name of ['ns.owner.mail@example.com', 'NS.Owner.Mail@Example.com', 'ｎｓ.owner.mail@example.com']) {
      expect(await appError(users.createUser({ username: name, password }))).toMatchObject({ kind: 'already_exists', code: 'user.username_taken' });
      expect(await appError(users.updateUser(other.id, { username: name }))).toMatchObject({ kind: 'already_exists', code: 'user.username_taken' });
    }
    expect((await users.getUser(other.id)).username).toBe('ns.other');
    expect((await passwords.authenticate('ns.owner.mail@example.com', password))?.id).toBe(owner.id);
  });

  it('refuses an email that is another account\'s username, on create, when added later and in the email list', async () => {
    const owner = await users.createUser({ username: 'ns.name@example.com', password });
    const later = await users.createUser({ username: 'ns.later', password });
    const taken = { kind: 'already_exists', code: 'user.email_taken', details: { field: 'email' } };
    expect(await appError(users.createUser({ username: 'ns.thief', email: 'NS.Name@example.com', password }))).toMatchObject(taken);
    expect(await appError(users.updateUser(later.id, { email: 'ns.name@example.com' }))).toMatchObject(taken);
    expect(await appError(users.updateUser(later.id, { emails: [{ value: 'ns.name@example.com', primary: true }] }))).toMatchObject(taken);
    expect(await db('users').where({ username: 'ns.thief' })).toEqual([]);
    expect((await users.getUser(later.id)).email).toBeNull();
    expect((await passwords.authenticate('ns.name@example.com', password))?.id).toBe(owner.id);
  });

  it('lets a person\'s own username and email be the same, and frees a name its account gives up', async () => {
    const same = await users.createUser({ username: 'ns.same@example.com', email: 'ns.same@example.com', password });
    expect((await passwords.authenticate('ns.same@example.com', password))?.id).toBe(same.id);
    // Swapping its own username and email, then giving the old email up.
    await users.updateUser(same.id, { username: 'ns.same', email: 'ns.same@example.com' });
    await users.updateUser(same.id, { email: 'ns.same2@example.com' });
    const next = await users.createUser({ username: 'ns.same@example.com', password: 'other-person-pw' });
    expect((await passwords.authenticate('ns.same@example.com', 'other-person-pw'))?.id).toBe(next.id);
    expect((await passwords.authenticate('ns.same2@example.com', password))?.id).toBe(same.id);
    expect((await passwords.authenticate('ns.same', password))?.id).toBe(same.id);
    expect(await passwords.authenticate('ns.same@example.com', password)).toBeUndefined();
  });

  it('lets exactly one of two concurrent writes take a name, whichever way each uses it', async () => {
    for (let round = 0; round < 8; round += 1) {
      const name = `ns.race${round}@example.com`;
      const results = await Promise.allSettled([
        users.createUser({ username: name, password }),
        users.createUser({ username: `ns.race${round}`, email: name, password }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toMatchObject({ kind: 'already_exists' });
      const holder = (won[0] as PromiseFulfilledResult<{ id: string }>).value.id;
      expect((await passwords.authenticate(name, password))?.id).toBe(holder);
    }
  });
});

describe('one folding rule for names', () => {
  const password = 'folding-rule-pw';

  it('keeps ALİCE (dotted capital I) and alice apart, and folds fullwidth ａｌｉｃｅ into alice', async () => {
    const alice = await users.createUser({ username: 'alice', email: 'alice@fold.example', password });
    const dotted = await users.createUser({ username: 'ALİCE', password: 'dotted-alice-pw' });
    expect(dotted.username).toBe('ali\u0307ce');
    expect(await appError(users.createUser({ username: 'ａｌｉｃｅ' }))).toMatchObject({ kind: 'already_exists', code: 'user.username_taken' });
    expect(await appError(users.createUser({ username: 'x.fold', email: 'ＡＬＩＣＥ@fold.example' }))).toMatchObject({ kind: 'already_exists', code: 'user.email_taken' });
    expect((await passwords.authenticate('ALİCE', 'dotted-alice-pw'))?.id).toBe(dotted.id);
    expect(await passwords.authenticate('ALİCE', password)).toBeUndefined();
    expect((await passwords.authenticate('ＡＬＩＣＥ', password))?.id).toBe(alice.id);
    expect((await passwords.authenticate('ａｌｉｃｅ＠ｆｏｌｄ．ｅｘａｍｐｌｅ', password))?.id).toBe(alice.id);
    expect((await users.listUsers({ username: 'ALİCE', limit: 10 })).map((u) => u.id)).toEqual([dotted.id]);
    expect((await users.listUsers({ username: 'ＡＬＩＣＥ', limit: 10 })).map((u) => u.id)).toEqual([alice.id]);
    expect((await users.listUsers({ email: 'ＡＬＩＣＥ@FOLD.example', limit: 10 })).map((u) => u.id)).toEqual([alice.id]);
  });
});

describe('email_verified', () => {
  it('is cleared when the sign-in email changes, unless the same write says the new address is verified', async () => {
    const { claimsFor } = await import('../../src/oidc/claims.ts');
    const user = await users.createUser({ username: 'verified.person', email: 'verified@example.com', emailVerified: true });
    expect(claimsFor(user, 'openid email')).toMatchObject({ email: 'verified@example.com', email_verified: true });
    // Other changes, and the same address in another case, keep it.
    expect((await users.updateUser(user.id, { title: 'Engineer', email: 'VERIFIED@example.com' })).emailVerified).toBe(true);
    const changed = await users.updateUser(user.id, { email: 'attacker@example.com' });
    expect(changed.emailVerified).toBe(false);
    expect(claimsFor(changed, 'openid email')).toMatchObject({ email: 'attacker@example.com', email_verified: false });
    expect((await users.updateUser(user.id, { emailVerified: true })).emailVerified).toBe(true);
    expect((await users.updateUser(user.id, { emails: [{ value: 'third@example.com', primary: true }] })).emailVerified).toBe(false);
    const vouched = await users.updateUser(user.id, { email: 'fourth@example.com', emailVerified: true });
    expect(claimsFor(vouched, 'openid email')).toMatchObject({ email: 'fourth@example.com', email_verified: true });
    // A provisioning client's write (SCIM) follows the same rule.
    const provisioned = await users.updateUser(user.id, { emails: [{ value: 'Fifth@Example.com', primary: true }] }, undefined, undefined, {});
    expect(provisioned).toMatchObject({ email: 'fifth@example.com', emailVerified: false });
  });
});

describe('transparent rehash', () => {
  it('replaces a hash made with weaker parameters at the next successful sign-in', async () => {
    const weak = new UsersService(db, new PasswordHasher(BASE_PARAMS));
    const strong = new PasswordStrategy(db, new PasswordHasher({ ...BASE_PARAMS, timeCost: 3 }));
    const user = await weak.createUser({ username: 'rehash', email: 'rehash@example.com', password: 'difference-engine' });
    const original = await storedHash(user.id);
    expect(original.startsWith('$argon2id$')).toBe(true);
    expect(original).toContain('m=19456');
    expect(original).toContain('t=2');

    // A failed sign-in changes nothing.
    expect(await strong.authenticate('rehash', 'wrong-password')).toBeUndefined();
    expect(await storedHash(user.id)).toBe(original);

    expect((await strong.authenticate('rehash', 'difference-engine'))?.id).toBe(user.id);
    const upgraded = await storedHash(user.id);
    expect(upgraded).not.toBe(original);
    expect(upgraded.startsWith('$argon2id$')).toBe(true);
    expect(upgraded).toContain('t=3');
    expect(upgraded).toContain('m=19456');
    expect(await db('credentials').where({ user_id: user.id })).toHaveLength(1);

    // The password still works, and a second sign-in does not rehash again.
    expect((await strong.authenticate('rehash@example.com', 'difference-engine'))?.id).toBe(user.id);
    expect(await storedHash(user.id)).toBe(upgraded);
    expect(await strong.authenticate('rehash', 'wrong-password')).toBeUndefined();
  });
});
