// Sign-in policy: how strongly a person must have signed in to use an app. Three levels in a
// total order; a session's level (its acr) is the highest one its proven methods reach.
//
//   password            any method that identifies the person (a password, a passkey)
//   mfa                 two factors: a password plus a passkey, an authenticator code or a recovery
//                       code; or a passkey that verified its user (biometric or PIN) by itself
//   phishing_resistant  a passkey, in a sign-in that is also multi-factor (a passkey that verified
//                       its user, or a passkey after the password): passkey-only apps
//
// Keeping phishing_resistant above mfa (rather than beside it) keeps acr one value that orders.
import type { MethodName, Proof } from '../credentials/methods.ts';

export type SignInPolicy = 'password' | 'mfa' | 'phishing_resistant';
export const SIGN_IN_POLICIES: readonly SignInPolicy[] = ['password', 'mfa', 'phishing_resistant'];

/** The default level in force (apps without their own), read per request: it can change at runtime. */
export type DefaultSignInPolicy = () => Promise<SignInPolicy>;

/** The acr value published for each level (discovery's acr_values_supported, ID tokens' acr). */
export const ACR: Record<SignInPolicy, string> = {
  password: 'urn:oneid:acr:password',
  mfa: 'urn:oneid:acr:mfa',
  phishing_resistant: 'urn:oneid:acr:phishing_resistant',
};
export const ACR_VALUES: readonly string[] = SIGN_IN_POLICIES.map((p) => ACR[p]);

const rank = (p: SignInPolicy): number => SIGN_IN_POLICIES.indexOf(p);

export const isSignInPolicy = (value: unknown): value is SignInPolicy =>
  typeof value === 'string' && (SIGN_IN_POLICIES as readonly string[]).includes(value);

/** The level an acr value names, if it is one of ours. */
export function policyOfAcr(acr: string | undefined | null): SignInPolicy | undefined {
  return SIGN_IN_POLICIES.find((p) => ACR[p] === acr);
}

/** The stronger of two levels (undefined counts as none). */
export function stronger(a: SignInPolicy | undefined, b: SignInPolicy | undefined): SignInPolicy | undefined {
  if (!a) return b;
  if (!b) return a;
  return rank(a) >= rank(b) ? a : b;
}

/**
 * An app's sign-in policy in force: its own, or its suites' when that is stronger (a suite's
 * apps inherit its policy unless they set a stronger one). Null: neither has one, the default applies.
 */
export function appPolicy(app: { signInPolicy: SignInPolicy | null; suiteSignInPolicy?: SignInPolicy | null }): SignInPolicy | null {
  return stronger(app.signInPolicy ?? undefined, app.suiteSignInPolicy ?? undefined) ?? null;
}

/** The highest level the proofs reach, or undefined when nothing is proven. */
export function levelOf(proofs: readonly Proof[]): SignInPolicy | undefined {
  if (!proofs.length) return undefined;
  const has = (m: MethodName): boolean => proofs.some((p) => p.method === m);
  const verifiedPasskey = proofs.some((p) => p.method === 'passkey' && p.userVerified);
  const factors = new Set(proofs.map((p) => (p.method === 'recovery_code' ? 'totp' : p.method))).size;
  const multi = verifiedPasskey || factors >= 2;
  if (has('passkey') && multi) return 'phishing_resistant';
  if (multi) return 'mfa';
  // A second factor alone (a code without a password) identifies nobody: not even a password level.
  return has('password') || has('passkey') ? 'password' : undefined;
}

export function satisfies(proofs: readonly Proof[], required: SignInPolicy): boolean {
  const level = levelOf(proofs);
  return level !== undefined && rank(level) >= rank(required);
}

/** The session's amr (RFC 8176): each method's values, plus mfa when two factors were proven. */
export function amrOf(proofs: readonly Proof[]): string[] {
  const values = new Set<string>();
  for (const p of proofs) for (const v of p.amr) values.add(v);
  const level = levelOf(proofs);
  if (level === 'mfa' || level === 'phishing_resistant') values.add('mfa');
  return [...values];
}

export type NextStep =
  | { kind: 'done' }
  /** Prove one of these (methods the person has set up that would reach the level). */
  | { kind: 'prove'; methods: MethodName[] }
  /** Set up one of these first (nothing the person has set up would reach the level). */
  | { kind: 'enrol'; methods: MethodName[] };

/**
 * What a person who has proven `proofs` and has `enrolled` set up must do next to reach
 * `required`. Only the missing factor is asked: a password session that needs mfa is asked for
 * a second factor, never the password again.
 */
export function nextStep(proofs: readonly Proof[], required: SignInPolicy, enrolled: ReadonlySet<MethodName>): NextStep {
  if (satisfies(proofs, required)) return { kind: 'done' };
  const candidates: MethodName[] = required === 'phishing_resistant'
    ? ['passkey']
    : required === 'mfa' ? ['passkey', 'totp', 'recovery_code'] : ['password', 'passkey'];
  const unproven = (m: MethodName): boolean => enrolled.has(m) && !proofs.some((p) => p.method === m && m !== 'passkey');
  const usable = candidates.filter(unproven);
  if (usable.length) return { kind: 'prove', methods: usable };
  // Setting up a new method needs the second factor the person already has, if any: the
  // password alone must not add (or replace) a factor of someone who has one.
  const secondFactor = proofs.some((p) => p.method !== 'password');
  const held = (['passkey', 'totp', 'recovery_code'] as MethodName[]).filter(unproven);
  if (!secondFactor && held.length) return { kind: 'prove', methods: held };
  // Recovery codes are set up with an authenticator app, not on their own.
  return { kind: 'enrol', methods: candidates.filter((m) => m === 'passkey' || m === 'totp') };
}
