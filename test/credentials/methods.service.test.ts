// The help desk's view of a person's sign-in methods agrees with the methods themselves: what the
// passkey, authenticator-app and recovery-code strategies store is what listMethods shows, and
// what removeMethod takes away no longer signs anyone in. Real strategies, real PostgreSQL.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { SoftAuthenticator } from '../helpers/soft-authenticator.ts';
import { MethodsService } from '../../src/credentials/methods.service.ts';
import { PasskeyStrategy, passkeyConfigFromIssuer } from '../../src/credentials/passkey.strategy.ts';
import { TotpStrategy } from '../../src/credentials/totp.strategy.ts';
import { RecoveryCodes } from '../../src/credentials/recovery.strategy.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { MasterKey } from '../../src/keys/master-key.ts';
import type { Actor } from '../../src/audit/audit.service.ts';

const ORIGIN = 'https://id.example.com';
const helpdesk: Actor = { type: 'admin_client', id: 'helpdesk-bot', clientId: 'helpdesk-bot' };

let m: MigratedDatabase;
let db: Knex;
let methods: MethodsService;
let passkeys: PasskeyStrategy;
let totp: TotpStrategy;
let recovery: RecoveryCodes;

/** The six-digit code of a base32 seed for the current 30-second step (RFC 6238, HMAC-SHA-1). */
function currentCode(seed: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...seed.replace(/=+$/, '')].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const key = Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[19]! & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

async function newPerson(): Promise<{ id: string; username: string; displayName: string | null }> {
  const person = { id: randomUUID(), username: `p${randomBytes(4).toString('hex')}`, displayName: null };
  await db('users').insert({ id: person.id, username: person.username });
  return person;
}

/** A person who set up a passkey, an authenticator app and recovery codes through the strategies themselves. */
async function enrolled() {
  const person = await newPerson();
  const self: Actor = { type: 'user', id: person.id };
  const authenticator = new SoftAuthenticator({ origin: ORIGIN, synced: false });
  const binding = `flow-${randomUUID()}`;
  const registered = await passkeys.register(binding, person.id, authenticator.register(await passkeys.registrationOptions(binding, person)), 'Work laptop', self);
  if (!registered.ok) throw new Error(registered.reason);
  const { secret } = await totp.beginEnrolment(person.id, person.username);
  expect((await totp.confirmEnrolment(person.id, currentCode(secret), self)).ok).toBe(true);
  const codes = await recovery.generate(person.id, self);
  expect((await recovery.verify(person.id, codes[0]!)).ok).toBe(true);
  return { person, passkey: registered.passkey, codes, authenticator };
}

beforeAll(async () => {
  m = await createMigratedDatabase('oneid_test_methods');
  db = m.db;
  methods = new MethodsService(db);
  passkeys = new PasskeyStrategy(db, passkeyConfigFromIssuer(ORIGIN, 'OneID'));
  totp = new TotpStrategy(db, new MasterKey(randomBytes(32)), 'OneID');
  recovery = new RecoveryCodes(db, new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 }));
}, 60000);

afterAll(async () => {
  await m?.close();
});

describe('MethodsService.listMethods', () => {
  it('shows what the strategies stored: the passkey as the person named it, a confirmed authenticator app, the codes left', async () => {
    const { person, passkey } = await enrolled();
    const listed = await methods.listMethods(person.id);
    expect(listed).toEqual({
      password: false,
      passkeys: [{ id: passkey.id, name: 'Work laptop', createdAt: passkey.createdAt, lastUsedAt: null }],
      totp: true,
      recoveryCodesRemaining: 9,
    });
    expect(listed.passkeys.map((p) => p.id)).toEqual((await passkeys.list(person.id)).map((p) => p.id));
    expect(listed.recoveryCodesRemaining).toBe(await recovery.remaining(person.id));
  });

  it('does not count an authenticator enrolment that was begun but never confirmed', async () => {
    const person = await newPerson();
    await totp.beginEnrolment(person.id, person.username);
    expect(await totp.isEnrolled(person.id)).toBe(false);
    expect((await methods.listMethods(person.id)).totp).toBe(false);
  });
});

describe('MethodsService.removeMethod', () => {
  it('removes exactly what it names, and each removed method stops working; audited with the administrator', async () => {
    const { person, passkey, codes } = await enrolled();
    await methods.removeMethod(person.id, 'passkey', passkey.id, helpdesk);
    expect(await passkeys.list(person.id)).toEqual([]);
    expect(await totp.isEnrolled(person.id)).toBe(true);

    await methods.removeMethod(person.id, 'totp', undefined, helpdesk);
    expect(await totp.isEnrolled(person.id)).toBe(false);
    expect(await recovery.remaining(person.id)).toBe(9);

    await methods.removeMethod(person.id, 'recovery_codes', undefined, helpdesk);
    expect(await recovery.remaining(person.id)).toBe(0);
    expect((await recovery.verify(person.id, codes[1]!)).ok).toBe(false);
    expect(await methods.listMethods(person.id)).toEqual({ password: false, passkeys: [], totp: false, recoveryCodesRemaining: 0 });

    const events = await db('audit_events').where({ target_id: person.id }).whereLike('action', '%.removed').orderBy('seq')
      .select('action', 'actor_type', 'actor_id', 'changes');
    expect(events).toEqual([
      { action: 'passkey.removed', actor_type: 'admin_client', actor_id: 'helpdesk-bot', changes: { keyId: passkey.id, name: 'Work laptop' } },
      { action: 'totp.removed', actor_type: 'admin_client', actor_id: 'helpdesk-bot', changes: null },
      { action: 'recovery_codes.removed', actor_type: 'admin_client', actor_id: 'helpdesk-bot', changes: { unusedCodes: 9 } },
    ]);
  });

  it("refuses (not_found) what is not there, and never touches another person's methods", async () => {
    const mine = await enrolled();
    const theirs = await enrolled();
    await expect(methods.removeMethod(mine.person.id, 'passkey', theirs.passkey.id, helpdesk)).rejects.toMatchObject({ kind: 'not_found', code: 'passkey.not_found' });
    await expect(methods.removeMethod(mine.person.id, 'passkey', undefined, helpdesk)).rejects.toMatchObject({ code: 'passkey.not_found' });
    await expect(methods.removeMethod(mine.person.id, 'passkey', 'not-a-uuid', helpdesk)).rejects.toMatchObject({ code: 'passkey.not_found' });
    await expect(methods.removeMethod(randomUUID(), 'totp', undefined, helpdesk)).rejects.toMatchObject({ code: 'user.not_found' });
    await expect(methods.listMethods('nobody')).rejects.toMatchObject({ code: 'user.not_found' });
    expect(await passkeys.list(theirs.person.id)).toHaveLength(1);
    expect(await db('audit_events').where({ target_id: mine.person.id }).whereLike('action', '%.removed')).toEqual([]);
  });
});
