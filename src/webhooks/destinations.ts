// Where webhooks may be sent. OneID must not become a tool to reach the network it runs in: a
// super_admin who registers `http://10.0.0.5:8080/admin` would otherwise learn, from the delivery
// log, what answers there. So:
// - https only; http only to a loopback host (a receiver on the same machine), never across a network.
// - No credentials in the URL (they would sit in the clear in the database and in every view of it).
// - Private destinations (RFC 1918, loopback, CGNAT, unique-local, ...) are refused unless a
//   super_admin turns on `allowInternalDestinations` (GET/PATCH /admin/api/v1/webhook-settings).
// - Link-local (cloud metadata at 169.254.169.254), unspecified, multicast and broadcast
//   addresses are refused always.
// The URL is checked when saved, and the addresses a name resolves to are checked again at every
// connection (inside the socket's DNS lookup), so a name that later resolves to an internal
// address (DNS rebinding) is refused too.
import net from 'node:net';
import dns from 'node:dns';
import { AppError } from '../shared/errors.ts';

export const WEBHOOK_URL_MAX = 2000;

export type AddressClass = 'public' | 'private' | 'forbidden';

function blockList(v4: [string, number][], v6: [string, number][]): net.BlockList {
  const list = new net.BlockList();
  for (const [a, p] of v4) list.addSubnet(a, p, 'ipv4');
  for (const [a, p] of v6) list.addSubnet(a, p, 'ipv6');
  return list;
}

const FORBIDDEN = blockList(
  [['0.0.0.0', 8], ['169.254.0.0', 16], ['224.0.0.0', 4], ['240.0.0.0', 4]],
  [['::', 128], ['fe80::', 10], ['ff00::', 8]],
);

const PRIVATE = blockList(
  [['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24],
    ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24]],
  // Unique-local, loopback, documentation, and the translation prefixes that can reach IPv4 inside.
  [['::1', 128], ['fc00::', 7], ['2001:db8::', 32], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['2002::', 16]],
);

const LOOPBACK = blockList([['127.0.0.0', 8]], [['::1', 128]]);

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address it carries. */
function normalise(address: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const bare = address.replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return { address: mapped[1]!, family: 'ipv4' };
  const v = net.isIP(bare);
  return v === 4 ? { address: bare, family: 'ipv4' } : v === 6 ? { address: bare, family: 'ipv6' } : undefined;
}

export function classifyAddress(address: string): AddressClass {
  const n = normalise(address);
  if (!n) return 'forbidden';
  if (FORBIDDEN.check(n.address, n.family)) return 'forbidden';
  if (PRIVATE.check(n.address, n.family)) return 'private';
  return 'public';
}

const isLoopbackHost = (host: string): boolean => {
  const n = normalise(host);
  if (n) return LOOPBACK.check(n.address, n.family);
  return host === 'localhost' || host.endsWith('.localhost');
};

const invalid = (code: string, message: string) => new AppError('invalid_argument', code, `url: ${message}`, { field: 'url' });

/** Checks a webhook URL as it is saved; returns it normalised (WHATWG URL serialisation). */
export function checkWebhookUrl(raw: string, opts: { allowInternalDestinations: boolean }): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid('webhook.invalid_url', 'not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('webhook.invalid_url', 'use an https URL');
  if (url.username || url.password) throw invalid('webhook.url_credentials', 'credentials in the URL are refused; authenticate the request by its signature');
  if (url.hash || raw.includes('#')) throw invalid('webhook.invalid_url', 'a fragment is never sent; remove it');
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const loopback = isLoopbackHost(host);
  if (url.protocol === 'http:' && !loopback) throw invalid('webhook.insecure_url', 'use https (http is accepted only for a loopback receiver)');
  const literal = normalise(host);
  const cls: AddressClass = literal ? classifyAddress(literal.address) : loopback ? 'private' : 'public';
  if (cls === 'forbidden') throw invalid('webhook.forbidden_destination', 'this address is never a webhook destination (link-local, multicast or unspecified)');
  if (cls === 'private' && !opts.allowInternalDestinations) {
    throw invalid('webhook.internal_destination', 'a private or loopback destination; a super_admin may allow them (PATCH /webhook-settings allowInternalDestinations)');
  }
  const out = url.toString();
  if (out.length > WEBHOOK_URL_MAX) throw invalid('webhook.invalid_url', `at most ${WEBHOOK_URL_MAX} characters`);
  return out;
}

/** A delivery's destination was refused at connection time (not retried). */
export class DestinationRefused extends Error {}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A DNS lookup for http.request that refuses the connection when any address the name resolves to
 * is not allowed: the check happens on the addresses the socket will actually use.
 */
export function guardedLookup(allowInternalDestinations: boolean) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      for (const a of addresses) {
        const cls = classifyAddress(a.address);
        if (cls === 'forbidden' || (cls === 'private' && !allowInternalDestinations)) {
          return callback(new DestinationRefused(`destination refused: ${hostname} resolves to a ${cls === 'forbidden' ? 'forbidden' : 'private'} address`) as NodeJS.ErrnoException, '');
        }
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
      return callback(null, first.address, first.family);
    });
  };
}

/** Whether an IP literal host may be connected to now (names are checked by guardedLookup). */
export function refusedLiteral(host: string, allowInternalDestinations: boolean): string | undefined {
  const n = normalise(host);
  if (!n) return undefined;
  const cls = classifyAddress(n.address);
  if (cls === 'forbidden' || (cls === 'private' && !allowInternalDestinations)) return `destination refused: a ${cls} address`;
  return undefined;
}
