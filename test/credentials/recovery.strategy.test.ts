// Recovery codes: ten one-time codes, hashed at rest; each works once, also when two nodes are
// handed the same code at once; new codes void the old ones.
import type { Knex } from 'knex';
import { createDb, type DbHandle } from '../../src/db/knex.ts';
import { PasswordHasher } from '../../src/credentials/password.ts';
import { newId } from '../../src/shared/ids.ts';
import { normaliseRecoveryCode, RecoveryCodes } from '../../src/credentials/recovery.strategy.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

const hasher = new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
const actor = { type: 'user' as const, id: 'self', ip: '203.0.113.7', userAgent: 'jest' };
const CODE = /^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/;

let mdb: MigratedDatabase;
let db: Knex;
let second: DbHandle;
let codes: RecoveryCodes;
let otherNode: RecoveryCodes;

const newUser = async (username: string): Promise<string> => {
  const id = newId();
  await db('users').insert({ id, username });
  return id;
};

/** The same code with one character changed (same prefix, so its hash is checked). */
const altered = (code: string): string => code.slice(0, -1) + (code.endsWith('z') ? 'y' : 'z');

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_recovery', 4);
  db = mdb.db;
  second = createDb({ databaseUrl: mdb.database.url, databasePoolMax: 4, dataDir: '/nonexistent/unused' });
  codes = new RecoveryCodes(db, hasher, { now: () => 1_800_000_000 });
  otherNode = new RecoveryCodes(second.db, hasher);
});

afterAll(async () => {
  await second?.close();
  await mdb?.close();
});

describe('RecoveryCodes', () => {
  it('generates ten distinct codes, stored only as argon2id hashes, audited by count', async () => {
    const userId = await newUser('alice');
    expect(await codes.isEnrolled(userId)).toBe(false);
    const issued = await codes.generate(userId, actor);
    expect(issued).toHaveLength(10);
    expect(new Set(issued).size).toBe(10);
    for (const c of issued) expect(c).toMatch(CODE);
    expect(await codes.remaining(userId)).toBe(10);
    expect(await codes.isEnrolled(userId)).toBe(true);

    const rows = await db('credentials').where({ user_id: userId, type: 'recovery' }).select('data');
    expect(rows).toHaveLength(10);
    for (const r of rows) expect(r.data.hash).toMatch(/^\$argon2id\$/);
    const everything = JSON.stringify(await db('credentials').select('*')) + JSON.stringify(await db('audit_events').select('*'));
    for (const c of issued) {
      expect(everything).not.toContain(c);
      expect(everything).not.toContain(c.replace('-', ''));
    }
    const events = await db('audit_events').where({ target_id: userId }).select('action', 'changes');
    expect(events).toEqual([{ action: 'recovery_codes.generated', changes: { count: 10, voided: 0 } }]);
  });

  it('accepts each code once, counting down what remains', async () => {
    const userId = await newUser('bob');
    const issued = await codes.generate(userId, actor);
    for (const [i, code] of issued.entries()) {
      expect(await codes.verify(userId, code)).toEqual({
        ok: true, userId, remaining: 9 - i, proof: { method: 'recovery_code', at: 1_800_000_000, amr: ['otp'] },
      });
      expect(await codes.verify(userId, code)).toEqual({ ok: false, reason: 'used', userId });
      expect(await codes.remaining(userId)).toBe(9 - i);
    }
    expect(await codes.isEnrolled(userId)).toBe(false);
    // The flow audits sign-ins; using a code writes no event of its own.
    expect((await db('audit_events').where({ target_id: userId }).select('action')).map((e) => e.action)).toEqual(['recovery_codes.generated']);
  });

  it('accepts a code handed to two nodes at the same moment once', async () => {
    const userId = await newUser('carol');
    const issued = await codes.generate(userId, actor);
    for (const code of issued.slice(0, 4)) {
      const results = await Promise.all([codes.verify(userId, code), otherNode.verify(userId, code)]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.find((r) => !r.ok)).toEqual({ ok: false, reason: 'used', userId });
    }
    expect(await codes.remaining(userId)).toBe(6);
  });

  it('voids the old codes when new ones are generated', async () => {
    const userId = await newUser('dave');
    const first = await codes.generate(userId, actor);
    expect((await codes.verify(userId, first[0]!)).ok).toBe(true);
    const next = await codes.generate(userId, actor);
    expect(await codes.remaining(userId)).toBe(10);
    for (const old of first.slice(1, 4)) {
      // A new code may share an old one's first two characters; it still is not that code.
      expect(await codes.verify(userId, old)).toMatchObject({ ok: false, reason: 'invalid' });
    }
    expect(await codes.verify(userId, next[0]!)).toMatchObject({ ok: true, remaining: 9 });
    const events = await db('audit_events').where({ target_id: userId }).orderBy('seq').select('action', 'changes');
    expect(events.map((e) => e.changes)).toEqual([{ count: 10, voided: 0 }, { count: 10, voided: 10 }]);
  });

  it('leaves ten codes, not twenty, when two nodes generate at once', async () => {
    const userId = await newUser('erin');
    await codes.generate(userId, actor);
    // Hold the old codes so that both generations reach their delete before either commits.
    const holder = await db.transaction();
    try {
      await holder('credentials').where({ user_id: userId, type: 'recovery' }).forUpdate().select('id');
      const both = Promise.all([codes.generate(userId, actor), otherNode.generate(userId, actor)]);
      // Asked outside the holder: a transaction sees pg_stat_activity as it was when it first looked.
      const waiting = async (): Promise<number> => Number((await db.raw(
        "select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")).rows[0].n);
      for (let i = 0; i < 200 && (await waiting()) < 2; i += 1) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(await waiting()).toBe(2);
      await holder.commit();
      const [a, b] = await both;
      expect(await codes.remaining(userId)).toBe(10);
      const results = await Promise.all([codes.verify(userId, a[0]!), codes.verify(userId, b[0]!)]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
  });

  it('takes codes typed in capitals, without the dash, with spaces, O for 0 and I or L for 1', async () => {
    expect(normaliseRecoveryCode('ABCDE-FGHJK')).toBe('abcdefghjk');
    expect(normaliseRecoveryCode(' abcde fghjk ')).toBe('abcdefghjk');
    expect(normaliseRecoveryCode('O0IL1-22222')).toBe('00111-22222'.replace('-', ''));
    const userId = await newUser('frank');
    const issued = await codes.generate(userId, actor);
    expect((await codes.verify(userId, issued[0]!.toUpperCase())).ok).toBe(true);
    expect((await codes.verify(userId, issued[1]!.replace('-', ''))).ok).toBe(true);
    expect((await codes.verify(userId, ` ${issued[2]!.slice(0, 3)} ${issued[2]!.slice(3)} `)).ok).toBe(true);
    // Read off paper: 0 as O, 1 as l (most sets of ten have a code with either).
    const withDigit = issued.slice(3).find((c) => /[01]/.test(c));
    if (withDigit) expect((await codes.verify(userId, withDigit.replace(/0/g, 'O').replace(/1/g, 'l'))).ok).toBe(true);
  });

  it('refuses a wrong code, malformed input and a person without codes', async () => {
    const userId = await newUser('grace');
    expect(await codes.verify(userId, 'abcde-fghjk')).toEqual({ ok: false, reason: 'not_enrolled', userId });
    const issued = await codes.generate(userId, actor);
    expect(await codes.verify(userId, altered(issued[0]!))).toEqual({ ok: false, reason: 'invalid', userId });
    for (const bad of ['', 'abcd-efgh', 'abcde-fghjkm', 'abcde-fghju', 'abcde!fghjk', 'x'.repeat(100)]) {
      expect(await codes.verify(userId, bad)).toEqual({ ok: false, reason: 'malformed', userId });
    }
    expect(await codes.remaining(userId)).toBe(10);
    expect((await codes.verify(userId, issued[0]!)).ok).toBe(true);
  });

  it('refuses another person\'s code', async () => {
    const heidi = await newUser('heidi');
    const ivan = await newUser('ivan');
    const heidis = await codes.generate(heidi, actor);
    await codes.generate(ivan, actor);
    expect(await codes.verify(ivan, heidis[0]!)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(await codes.remaining(heidi)).toBe(10);
  });
});
