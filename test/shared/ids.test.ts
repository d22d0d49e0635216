// Comparisons of secrets and their digests.
import { digestsEqual, safeEqual, sha256 } from '../../src/shared/ids.ts';

describe('digestsEqual', () => {
  it('is true for the same digest only, and false (not an exception) when the lengths differ', () => {
    const digest = sha256('a client secret');
    expect(digestsEqual(digest, sha256('a client secret'))).toBe(true);
    expect(digestsEqual(digest, sha256('another client secret'))).toBe(false);
    expect(digestsEqual(digest, digest.slice(0, -1))).toBe(false);
    expect(digestsEqual(digest, '')).toBe(false);
  });
});

describe('safeEqual', () => {
  it('compares strings of any length', () => {
    expect(safeEqual('csrf-token', 'csrf-token')).toBe(true);
    expect(safeEqual('csrf-token', 'csrf-token-longer')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
  });
});
