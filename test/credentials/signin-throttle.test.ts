// The sign-in throttle's statements on real PostgreSQL, where several requests (or nodes) touch
// the same counters at once.
import pg from 'pg';
import { SignInThrottle } from '../../src/credentials/signin-throttle.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let m: MigratedDatabase;

beforeAll(async () => {
  m = await createMigratedDatabase('oneid_throttle', 6);
});

afterAll(async () => {
  await m?.close();
});

const until = async (check: () => Promise<boolean>): Promise<void> => {
  for (let i = 0; i < 200 && !(await check()); i += 1) await new Promise((r) => setTimeout(r, 10));
};

describe('SignInThrottle', () => {
  it('a right password and another attempt at the same account and address at the same moment both complete (no deadlock)', async () => {
    const throttle = new SignInThrottle(m.db, { perLogin: 10, perIp: 100, windowSeconds: 900 });
    const subject = 'user:double-click';
    const ip = '192.0.2.77';
    const first = await throttle.reserve(subject, ip);
    expect(first.retryAfter).toBe(0);

    // Another statement (another node's attempt) holds the account's counter for a moment; while
    // it does, a new attempt and the first one's success both queue for it, the attempt first.
    const holder = new pg.Client({ connectionString: m.database.url });
    await holder.connect();
    const waiting = async (): Promise<number> => {
      const { rows } = await holder.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()");
      return rows[0].n;
    };
    try {
      await holder.query('begin');
      await holder.query("select 1 from rate_limits where key = 'signin_login:user:double-click' for update");
      const attempt = throttle.reserve(subject, ip);
      await until(async () => (await waiting()) >= 1);
      const success = first.succeeded();
      await until(async () => (await waiting()) >= 2);
      await holder.query('commit');
      const [again] = await Promise.all([attempt, success]);
      expect(again.retryAfter).toBe(0);
      // The success cleared the account's count and gave its place at the address back.
      const { rows } = await holder.query("select key, points from rate_limits where key in ('signin_login:user:double-click', 'signin_ip:192.0.2.77')");
      expect(rows).toEqual([{ key: 'signin_ip:192.0.2.77', points: 1 }]);
    } finally {
      await holder.end();
    }
  }, 30000);
});
