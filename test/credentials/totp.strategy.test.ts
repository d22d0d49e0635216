// Authenticator apps (TOTP): enrolment, the ±1 step window, and a code accepted once across
// nodes. Codes are computed here by hand (RFC 4226/6238 with node:crypto), not with otplib, so
// the strategy is checked against the RFC and not against the library it uses.
import { createHmac, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { createDb, type DbHandle } from '../../src/db/knex.ts';
import { MasterKey } from '../../src/keys/master-key.ts';
import { newId } from '../../src/shared/ids.ts';
import { TotpStrategy } from '../../src/credentials/totp.strategy.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32Decode(text: string): Buffer {
  let bits = '';
  for (const c of text.replace(/=+$/, '')) bits += BASE32.indexOf(c).toString(2).padStart(5, '0');
  const bytes: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 4226 HOTP of time step `step` (RFC 6238 with 30 s steps), six digits, HMAC-SHA-1. */
function codeAt(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[19]! & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}

const T0 = 1_800_000_015; // 15 s into a step
const stepOf = (epoch: number): number => Math.floor(epoch / 30);
const actor = { type: 'user' as const, id: 'self', ip: '203.0.113.7', userAgent: 'jest' };

let mdb: MigratedDatabase;
let db: Knex;
let second: DbHandle;
const key = new MasterKey(randomBytes(32));
let clock = T0;
const now = (): number => clock;
let totp: TotpStrategy;
let otherNode: TotpStrategy;

const newUser = async (username: string): Promise<string> => {
  const id = newId();
  await db('users').insert({ id, username });
  return id;
};
const totpRows = (userId: string) => db('credentials').where({ user_id: userId, type: 'totp' }).select('id', 'data', 'updated_at', 'last_used_at');
const auditOf = (userId: string) => db('audit_events').where({ target_id: userId }).orderBy('seq').select('action', 'changes', 'actor_id');

/** A person with a confirmed authenticator, enrolled at T0; gives its seed. */
async function enrolled(username: string): Promise<{ userId: string; secret: string }> {
  const userId = await newUser(username);
  clock = T0;
  const { secret } = await totp.beginEnrolment(userId, username);
  const confirmed = await totp.confirmEnrolment(userId, codeAt(secret, stepOf(T0)), actor);
  expect(confirmed.ok).toBe(true);
  return { userId, secret };
}

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_totp', 4);
  db = mdb.db;
  // A second node: its own pool on the same database.
  second = createDb({ databaseUrl: mdb.database.url, databasePoolMax: 4, dataDir: '/nonexistent/unused' });
  totp = new TotpStrategy(db, key, 'OneID', { now });
  otherNode = new TotpStrategy(second.db, key, 'OneID', { now });
});

afterAll(async () => {
  await second?.close();
  await mdb?.close();
});

describe('TotpStrategy enrolment', () => {
  it('gives a seed, an otpauth URI and a QR code, and is enrolled only once a code is confirmed', async () => {
    const userId = await newUser('alice');
    clock = T0;
    const started = await totp.beginEnrolment(userId, 'alice@example.com');
    expect(started.secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits
    expect(started.otpauthUri).toBe(`otpauth://totp/OneID:alice%40example.com?secret=${started.secret}&issuer=OneID`);
    expect(started.qrSvg).toMatch(/^<svg [^>]*viewBox="0 0 \d+ \d+"/);
    expect(started.qrSvg.length).toBeGreaterThan(1000);
    expect(await totp.isEnrolled(userId)).toBe(false);
    // Nothing to sign in with yet.
    expect(await totp.verify(userId, codeAt(started.secret, stepOf(T0)))).toEqual({ ok: false, reason: 'not_enrolled', userId });

    // The seed is stored encrypted with the master key.
    const [row] = await totpRows(userId);
    expect(JSON.stringify(row.data)).not.toContain(started.secret);
    expect(key.decrypt(row.data.secret)).toBe(started.secret);

    const confirmed = await totp.confirmEnrolment(userId, codeAt(started.secret, stepOf(T0)), actor);
    expect(confirmed).toEqual({ ok: true, proof: { method: 'totp', at: T0, amr: ['otp'] } });
    expect(await totp.isEnrolled(userId)).toBe(true);
    const events = await auditOf(userId);
    expect(events).toEqual([{ action: 'totp.enrolled', changes: { replaced: false }, actor_id: 'self' }]);
    expect(JSON.stringify(await db('audit_events').select('*'))).not.toContain(started.secret);

    // The confirming code is spent; the next step's code signs in.
    expect(await totp.verify(userId, codeAt(started.secret, stepOf(T0)))).toMatchObject({ ok: false, reason: 'replayed' });
    clock = T0 + 30;
    expect(await totp.verify(userId, codeAt(started.secret, stepOf(T0) + 1))).toEqual({ ok: true, userId, proof: { method: 'totp', at: T0 + 30, amr: ['otp'] } });
  });

  it('refuses to confirm with a wrong code, a code of another seed, or nothing pending', async () => {
    const userId = await newUser('bob');
    clock = T0;
    expect(await totp.confirmEnrolment(userId, '123456', actor)).toEqual({ ok: false, reason: 'not_pending' });
    const { secret } = await totp.beginEnrolment(userId, 'bob');
    const right = codeAt(secret, stepOf(T0));
    const wrong = right === '000000' ? '000001' : '000000';
    expect(await totp.confirmEnrolment(userId, wrong, actor)).toEqual({ ok: false, reason: 'invalid' });
    expect(await totp.confirmEnrolment(userId, codeAt(BASE32.repeat(1).slice(0, 32), stepOf(T0)), actor)).toEqual({ ok: false, reason: 'invalid' });
    expect(await totp.isEnrolled(userId)).toBe(false);
    // Each refusal is audited, with its reason and never a code or secret; nothing is enrolled.
    expect((await auditOf(userId)).map((e) => [e.action, e.changes])).toEqual([
      ['totp.enrolment_refused', { reason: 'not_pending' }],
      ['totp.enrolment_refused', { reason: 'invalid' }],
      ['totp.enrolment_refused', { reason: 'invalid' }],
    ]);
    expect(JSON.stringify(await db('audit_events').select('*'))).not.toContain(secret);
  });

  it('replaces an unconfirmed enrolment when a new one begins', async () => {
    const userId = await newUser('carol');
    clock = T0;
    const first = await totp.beginEnrolment(userId, 'carol');
    const again = await totp.beginEnrolment(userId, 'carol');
    expect(again.secret).not.toBe(first.secret);
    expect(await totpRows(userId)).toHaveLength(1);
    expect(await totp.confirmEnrolment(userId, codeAt(first.secret, stepOf(T0)), actor)).toEqual({ ok: false, reason: 'invalid' });
    expect((await totp.confirmEnrolment(userId, codeAt(again.secret, stepOf(T0)), actor)).ok).toBe(true);
  });

  it('keeps the working authenticator during a re-enrolment and swaps it only on confirmation', async () => {
    const { userId, secret: old } = await enrolled('dave');
    clock = T0 + 300;
    const next = await totp.beginEnrolment(userId, 'dave');
    expect(await totpRows(userId)).toHaveLength(1);
    // The old app still signs in; the new seed does not yet.
    expect((await totp.verify(userId, codeAt(old, stepOf(clock)))).ok).toBe(true);
    clock += 30;
    expect(await totp.verify(userId, codeAt(next.secret, stepOf(clock)))).toMatchObject({ ok: false, reason: 'invalid' });
    // Confirming needs a code of the new seed.
    expect(await totp.confirmEnrolment(userId, codeAt(old, stepOf(clock)), actor)).toEqual({ ok: false, reason: 'invalid' });
    expect((await totp.confirmEnrolment(userId, codeAt(next.secret, stepOf(clock)), actor)).ok).toBe(true);
    clock += 30;
    expect(await totp.verify(userId, codeAt(old, stepOf(clock)))).toMatchObject({ ok: false, reason: 'invalid' });
    expect((await totp.verify(userId, codeAt(next.secret, stepOf(clock)))).ok).toBe(true);
    expect((await auditOf(userId)).map((e) => [e.action, e.changes])).toEqual([
      ['totp.enrolled', { replaced: false }], ['totp.enrolment_refused', { reason: 'invalid' }], ['totp.enrolled', { replaced: true }],
    ]);
  });

  it('removes the authenticator, audited; removing nothing is false', async () => {
    const { userId, secret } = await enrolled('erin');
    expect(await totp.remove(userId, actor)).toBe(true);
    expect(await totp.isEnrolled(userId)).toBe(false);
    clock = T0 + 60;
    expect(await totp.verify(userId, codeAt(secret, stepOf(clock)))).toEqual({ ok: false, reason: 'not_enrolled', userId });
    expect(await totp.remove(userId, actor)).toBe(false);
    expect((await auditOf(userId)).map((e) => e.action)).toEqual(['totp.enrolled', 'totp.removed']);
  });

  it('confirms once when two nodes confirm the same code at once, and keeps one row per person', async () => {
    const userId = await newUser('oscar');
    clock = T0;
    await Promise.all([totp.beginEnrolment(userId, 'oscar'), otherNode.beginEnrolment(userId, 'oscar'), totp.beginEnrolment(userId, 'oscar')]);
    const rows = await totpRows(userId);
    expect(rows).toHaveLength(1);
    const secret = key.decrypt(rows[0].data.secret);
    const code = codeAt(secret, stepOf(T0));
    const results = await Promise.all([totp.confirmEnrolment(userId, code, actor), otherNode.confirmEnrolment(userId, code, actor)]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.find((r) => !r.ok)).toEqual({ ok: false, reason: 'not_pending' });
    expect((await auditOf(userId)).map((e) => e.action).sort()).toEqual(['totp.enrolled', 'totp.enrolment_refused']);
  });

  it('refuses to enrol a person who does not exist', async () => {
    await expect(totp.beginEnrolment(newId(), 'ghost')).rejects.toMatchObject({ kind: 'not_found', code: 'user.not_found' });
  });
});

describe('TotpStrategy.verify', () => {
  it('accepts codes one step either side of now and refuses two steps away', async () => {
    const { userId, secret } = await enrolled('frank');
    clock = T0 + 3600;
    const t = stepOf(clock);
    expect(await totp.verify(userId, codeAt(secret, t - 2))).toEqual({ ok: false, reason: 'invalid', userId });
    expect(await totp.verify(userId, codeAt(secret, t + 2))).toEqual({ ok: false, reason: 'invalid', userId });
    expect((await totp.verify(userId, codeAt(secret, t - 1))).ok).toBe(true);
    expect((await totp.verify(userId, codeAt(secret, t))).ok).toBe(true);
    expect((await totp.verify(userId, codeAt(secret, t + 1))).ok).toBe(true);
  });

  it('refuses a code used before, and any code of an earlier step than the last accepted', async () => {
    const { userId, secret } = await enrolled('grace');
    clock = T0 + 600;
    const t = stepOf(clock);
    expect((await totp.verify(userId, codeAt(secret, t))).ok).toBe(true);
    expect(await totp.verify(userId, codeAt(secret, t))).toEqual({ ok: false, reason: 'replayed', userId });
    // The other node knows too.
    expect(await otherNode.verify(userId, codeAt(secret, t))).toEqual({ ok: false, reason: 'replayed', userId });
    // Still within the window, but older than the code accepted.
    expect(await totp.verify(userId, codeAt(secret, t - 1))).toEqual({ ok: false, reason: 'replayed', userId });
    expect((await totp.verify(userId, codeAt(secret, t + 1))).ok).toBe(true);
    // A node whose clock is a step behind: the last accepted step lies past its whole window.
    clock -= 30;
    expect(await otherNode.verify(userId, codeAt(secret, t))).toEqual({ ok: false, reason: 'replayed', userId });
    expect(await otherNode.verify(userId, codeAt(secret, t - 2))).toEqual({ ok: false, reason: 'replayed', userId });
    expect(await otherNode.verify(userId, codeAt(secret, t - 3))).toEqual({ ok: false, reason: 'invalid', userId });
  });

  it('accepts a code verified on two nodes at the same moment exactly once', async () => {
    const { userId, secret } = await enrolled('heidi');
    for (let round = 1; round <= 5; round += 1) {
      clock = T0 + round * 60;
      const code = codeAt(secret, stepOf(clock));
      const results = await Promise.all([totp.verify(userId, code), otherNode.verify(userId, code), totp.verify(userId, code), otherNode.verify(userId, code)]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok).map((r) => !r.ok && r.reason)).toEqual(['replayed', 'replayed', 'replayed']);
    }
  });

  it('refuses a code of another seed, and another person\'s code', async () => {
    const { userId } = await enrolled('ivan');
    const { secret: judysSecret } = await enrolled('judy');
    clock = T0 + 90;
    expect(await totp.verify(userId, codeAt(judysSecret, stepOf(clock)))).toEqual({ ok: false, reason: 'invalid', userId });
    expect(await totp.verify(userId, codeAt('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', stepOf(clock)))).toEqual({ ok: false, reason: 'invalid', userId });
  });

  it('takes codes typed with spaces; refuses anything but six digits as malformed without writing', async () => {
    const { userId, secret } = await enrolled('ken');
    clock = T0 + 120;
    const before = await totpRows(userId);
    for (const bad of ['', '12345', '1234567', 'abcdef', '12345a', '１２３４５６', ' ', '123.456']) {
      expect(await totp.verify(userId, bad)).toEqual({ ok: false, reason: 'malformed', userId });
      expect(await totp.confirmEnrolment(userId, bad, actor)).toEqual({ ok: false, reason: 'malformed' });
    }
    expect(await totp.verify(userId, 123456 as unknown as string)).toEqual({ ok: false, reason: 'malformed', userId });
    expect(await totpRows(userId)).toEqual(before);
    const code = codeAt(secret, stepOf(clock));
    expect((await totp.verify(userId, ` ${code.slice(0, 3)} ${code.slice(3)} `)).ok).toBe(true);
  });
});
