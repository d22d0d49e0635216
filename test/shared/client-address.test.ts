// The per-IP limits' key: an IPv6 client counts by its /64 (one subscriber picks any address in
// it), whichever way the address is written; IPv4, also IPv4-mapped, by its address.
import { rateLimitKey } from '../../src/shared/client-address.ts';

describe('rateLimitKey', () => {
  it('keeps an IPv4 address, and reads an IPv4-mapped IPv6 address as the IPv4 client', () => {
    expect(rateLimitKey('192.0.2.1')).toBe('192.0.2.1');
    expect(rateLimitKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(rateLimitKey('::FFFF:c000:0201')).toBe('192.0.2.1');
  });

  it('counts IPv6 addresses of one /64 as one client, however they are written', () => {
    const keys = ['2001:db8:a:7::1', '2001:0DB8:000a:0007:0:0:0:ffff', '2001:db8:a:7:1234:5678:9abc:def0', '2001:db8:a:7::2%eth0'];
    expect(new Set(keys.map(rateLimitKey))).toEqual(new Set(['2001:db8:a:7::/64']));
    expect(rateLimitKey('2001:db8:a:8::1')).not.toBe(rateLimitKey('2001:db8:a:7::1'));
    expect(rateLimitKey('::1')).toBe('0:0:0:0::/64');
  });

  it('never throws on something that is not an address', () => {
    expect(rateLimitKey('')).toBe('unknown');
    expect(rateLimitKey('not an address')).toMatch(/^other:/);
  });

  // A forwarded header a client wrote (a node reached directly while TRUST_PROXY is set) can hold
  // anything: the key must stay short enough for rate_limits.key (255), and stay the same per value.
  it('keys anything that is not an address by a short digest', () => {
    const long = 'x'.repeat(10000);
    expect(rateLimitKey(long).length).toBeLessThan(100);
    expect(rateLimitKey(long)).toBe(rateLimitKey(long));
    expect(rateLimitKey(long)).not.toBe(rateLimitKey(`${long}y`));
  });
});
