// Slows down password guessing: failed sign-ins are counted per account (an account's username
// and emails share one count; a name that finds no account counts for itself, see
// users.service's signInSubject) and per client IP in PostgreSQL (rate-limiter-flexible's
// Postgres store), shared by every node.
import type { Knex } from 'knex';
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';

export interface ThrottleLimits {
  /** Failures allowed per account (or unknown name) in the window before it is locked for the window. */
  perLogin: number;
  /** Failures allowed per IP address in the window. */
  perIp: number;
  windowSeconds: number;
}

export const DEFAULT_THROTTLE: ThrottleLimits = { perLogin: 10, perIp: 100, windowSeconds: 15 * 60 };

/**
 * The store speaks node-postgres ({text, values} with $n placeholders); route it through our
 * knex instance so it works the same on PostgreSQL and on the embedded database.
 */
function knexStore(db: Knex) {
  return {
    query: async ({ text, values = [] }: { text: string; values?: unknown[] }) => {
      const bindings: unknown[] = [];
      const sql = text.replace(/\$(\d+)/g, (_m, n: string) => {
        bindings.push(values[Number(n) - 1]);
        return '?';
      });
      const result = (await db.raw(sql, bindings as Knex.RawBinding[])) as { rows?: unknown[] };
      const rows = result.rows ?? [];
      return { rows, rowCount: rows.length };
    },
  };
}

export class SignInThrottle {
  readonly #byLogin: RateLimiterPostgres;
  readonly #byIp: RateLimiterPostgres;

  constructor(db: Knex, limits: ThrottleLimits = DEFAULT_THROTTLE) {
    const common = { storeClient: knexStore(db), storeType: 'pool', tableName: 'rate_limits', tableCreated: true, duration: limits.windowSeconds, clearExpiredByTimeout: false };
    this.#byLogin = new RateLimiterPostgres({ ...common, keyPrefix: 'signin_login', points: limits.perLogin, blockDuration: limits.windowSeconds });
    this.#byIp = new RateLimiterPostgres({ ...common, keyPrefix: 'signin_ip', points: limits.perIp, blockDuration: limits.windowSeconds });
  }

  /**
   * Before an attempt: `retryAfter`, the seconds to wait before another attempt is allowed (0:
   * go ahead), and whether failures are counted against this subject (only then does a success
   * have a count to clear). `subject`: signInSubject's answer.
   */
  async check(subject: string, ip: string): Promise<{ retryAfter: number; loginFailures: boolean }> {
    const [a, b] = await Promise.all([this.#byLogin.get(subject), this.#byIp.get(ip)]);
    const blocked = [a, b].filter((r): r is RateLimiterRes => Boolean(r) && r!.remainingPoints <= 0);
    return {
      retryAfter: blocked.length ? Math.max(...blocked.map((r) => Math.ceil(r.msBeforeNext / 1000))) : 0,
      loginFailures: Boolean(a && a.consumedPoints > 0),
    };
  }

  async failed(subject: string, ip: string): Promise<void> {
    await Promise.all([
      this.#byLogin.consume(subject, 1).catch(() => undefined),
      this.#byIp.consume(ip, 1).catch(() => undefined),
    ]);
  }

  async succeeded(subject: string): Promise<void> {
    await this.#byLogin.delete(subject).catch(() => undefined);
  }
}
