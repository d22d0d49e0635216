// The key under which per-IP limits count a client. An IPv6 subscriber is normally given a whole
// /64 and can pick any address in it, so counting full IPv6 addresses would give one client 2^64
// budgets: IPv6 clients are counted by their /64, IPv4 ones (also when written IPv4-mapped) by
// their address.
import { isIPv4, isIPv6 } from 'node:net';
import { sha256 } from './ids.ts';

/** Expands an IPv6 address (no zone) to its eight 16-bit groups; undefined if it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  // An embedded IPv4 address in the last 32 bits (::ffff:192.0.2.1) becomes two groups.
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 0 : missing !== 0) return undefined;
  return [...left, ...Array<number>(missing).fill(0), ...right];
}

/** The per-IP limits' key for a client address (ctx.ip). */
export function rateLimitKey(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  if (isIPv4(address)) return address;
  // Not an address (a forwarded header a client wrote itself): a fixed-length key, never the text.
  if (!isIPv6(address)) return address ? `other:${sha256(address)}` : 'unknown';
  const groups = ipv6Groups(address.toLowerCase());
  if (!groups) return address;
  // IPv4-mapped (::ffff:a.b.c.d): the IPv4 client it is.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}
