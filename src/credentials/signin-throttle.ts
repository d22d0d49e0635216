// Slows down password guessing: attempts are counted per account (an account's username and
// emails share one count; a name that finds no account counts for itself, see users.service's
// signInSubject) and per client IP in PostgreSQL, shared by every node.
//
// An attempt is counted (reserved) before its password is checked, in one atomic statement for
// both counts, and goes ahead only if neither count passed its limit; so N guesses sent at once,
// to one node or to several, check at most the limit's worth of passwords. A wrong password
// keeps its reservation. A right one clears the account's count and gives its IP reservation
// back (a busy office behind one address signs in all day); a refused attempt gives back the
// reservation it made on the count that did not refuse it, so a locked account does not use up
// its IP's budget, nor a blocked IP the accounts it tries.
//
// The rows are in rate-limiter-flexible's table (rate_limits: key, points, expire in epoch ms;
// keys signin_login:<subject> and signin_ip:<client-address.ts's key: an IPv6 client by its /64>),
// whose expired rows the authorization limiter's store removes (authorization-limits.ts). The library's
// consume is not used here: past the limit it writes the lock in a second statement that resets
// the count, and its reward turns an expired row into a negative count; either would let a
// give-back hand out more checks than the limit. The statements below keep the count at least
// the number of reservations still held.
import type { Knex } from 'knex';
import type { SignInTicket } from './password.strategy.ts';
import { rateLimitKey } from '../shared/client-address.ts';

export interface ThrottleLimits {
  /** Attempts allowed per account (or unknown name) in the window before it is locked for the window. */
  perLogin: number;
  /** Attempts allowed per IP address in the window. */
  perIp: number;
  windowSeconds: number;
}

export const DEFAULT_THROTTLE: ThrottleLimits = { perLogin: 10, perIp: 100, windowSeconds: 15 * 60 };


const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

// Per key: a fresh window starts at 1; otherwise one more. The attempt that goes one past the
// limit locks the key for a window from now. Rows are locked in the order given (account, then
// IP), the same in every statement, so two attempts never wait on each other in a cycle.
const RESERVE = `
  with input(key, lim, ord) as (values (?::varchar, ?::int, 1), (?::varchar, ?::int, 2)),
       clock(now) as (select ${NOW_MS})
  insert into rate_limits as r (key, points, expire)
    select key, 1, (select now from clock) + ?::bigint from input order by ord
  on conflict (key) do update set
    points = case when r.expire <= (select now from clock) then 1 else r.points + 1 end,
    expire = case
      when r.expire <= (select now from clock) then excluded.expire
      when r.points + 1 = (select lim from input where input.key = r.key) + 1 then (select now from clock) + ?::bigint
      else r.expire end
  returning key, points, expire, greatest(expire - (select now from clock), 0) as ms_left`;

// Gives one reservation back, only within the window it was made in (expire unchanged): after a
// new window or a lock the reservation is no longer part of the count.
const RELEASE = 'update rate_limits set points = points - 1 where key = ? and expire = ? and points > 0';

// A right password: clears the account's count and gives the IP reservation back, locking the
// rows in RESERVE's order (account, then IP), or a success and another attempt at the same account
// and address could each wait for the other's row (deadlock). An unreferenced data-modifying CTE
// runs after the main statement; the one-time filter reading it makes the delete run first.
const SUCCEEDED = `
  with cleared as (delete from rate_limits where key = ? returning 1)
  update rate_limits set points = points - 1
   where key = ? and expire = ? and points > 0 and (select count(*) from cleared) >= 0`;

interface Reserved { key: string; points: number; expire: string; ms_left: string }

export class SignInThrottle {
  readonly #db: Knex;
  readonly #limits: ThrottleLimits;

  constructor(db: Knex, limits: ThrottleLimits = DEFAULT_THROTTLE) {
    this.#db = db;
    this.#limits = limits;
  }

  /** Reserves an attempt against `subject` (signInSubject's answer) and `ip`, before any password work. */
  async reserve(subject: string, ip: string): Promise<SignInTicket> {
    const loginKey = `signin_login:${subject}`;
    const ipKey = `signin_ip:${rateLimitKey(ip)}`;
    const windowMs = this.#limits.windowSeconds * 1000;
    const result = await this.#db.raw<{ rows: Reserved[] }>(RESERVE, [
      loginKey, this.#limits.perLogin, ipKey, this.#limits.perIp, windowMs, windowMs,
    ]);
    const rows = new Map(result.rows.map((r) => [r.key, r]));
    const login = rows.get(loginKey)!;
    const byIp = rows.get(ipKey)!;
    const over = [[login, this.#limits.perLogin], [byIp, this.#limits.perIp]] as const;
    const refused = over.filter(([row, limit]) => row.points > limit).map(([row]) => row);
    if (refused.length) {
      const held = [login, byIp].filter((row) => !refused.includes(row));
      await Promise.all(held.map((row) => this.#db.raw(RELEASE, [row.key, row.expire])));
      const retryAfter = Math.max(1, ...refused.map((row) => Math.ceil(Number(row.ms_left) / 1000)));
      return { retryAfter, succeeded: async () => undefined };
    }
    return {
      retryAfter: 0,
      succeeded: async () => {
        await this.#db.raw(SUCCEEDED, [loginKey, ipKey, byIp.expire]);
      },
    };
  }
}
