// The sign-in levels and what a person is asked next (access/signin-policy.ts).
import { amrOf, levelOf, nextStep } from '../../src/access/signin-policy.ts';
import type { MethodName, Proof } from '../../src/credentials/methods.ts';

const at = 1_800_000_000;
const pwd: Proof = { method: 'password', at, amr: ['pwd'] };
const otp: Proof = { method: 'totp', at, amr: ['otp'] };
const key: Proof = { method: 'passkey', at, amr: ['hwk'] };
const verifiedKey: Proof = { method: 'passkey', at, amr: ['hwk', 'user'], userVerified: true };
const has = (...m: MethodName[]) => new Set<MethodName>(m);

describe('levelOf', () => {
  it('orders password < mfa < phishing_resistant by what was proven', () => {
    expect(levelOf([])).toBeUndefined();
    expect(levelOf([otp])).toBeUndefined(); // a code alone identifies nobody
    expect(levelOf([pwd])).toBe('password');
    expect(levelOf([key])).toBe('password');
    expect(levelOf([pwd, otp])).toBe('mfa');
    expect(levelOf([verifiedKey])).toBe('phishing_resistant');
    expect(levelOf([pwd, key])).toBe('phishing_resistant');
    expect(amrOf([pwd, otp])).toEqual(['pwd', 'otp', 'mfa']);
  });
});

describe('nextStep', () => {
  it('asks only for the missing factor', () => {
    expect(nextStep([pwd], 'mfa', has('password', 'totp'))).toEqual({ kind: 'prove', methods: ['totp'] });
    expect(nextStep([pwd, otp], 'mfa', has('password', 'totp'))).toEqual({ kind: 'done' });
  });

  it('sends someone without a second factor to set one up', () => {
    expect(nextStep([pwd], 'mfa', has('password'))).toEqual({ kind: 'enrol', methods: ['passkey', 'totp'] });
    expect(nextStep([pwd], 'phishing_resistant', has('password'))).toEqual({ kind: 'enrol', methods: ['passkey'] });
  });

  it('never lets the password alone set up a new factor for someone who has one: their factor first', () => {
    // A stolen password, an app that wants a passkey, a person with an authenticator app only.
    expect(nextStep([pwd], 'phishing_resistant', has('password', 'totp', 'recovery_code'))).toEqual({ kind: 'prove', methods: ['totp', 'recovery_code'] });
    // Once the authenticator is proven, the passkey may be set up.
    expect(nextStep([pwd, otp], 'phishing_resistant', has('password', 'totp', 'recovery_code'))).toEqual({ kind: 'enrol', methods: ['passkey'] });
  });
});
