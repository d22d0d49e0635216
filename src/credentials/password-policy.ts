// What a person may choose as a password (NIST SP 800-63B, 5.1.1.2): long enough, and not one of
// the passwords attackers try first. No composition rules (a digit, a capital...) and no expiry:
// they make people pick predictable variations, not stronger passwords.
import { dictionary } from '@zxcvbn-ts/language-common';
import { PASSWORD_MAX_LENGTH } from './password.ts';

/** Why a chosen password is refused; the pages turn each into a sentence in the person's language. */
export type PasswordProblem = 'too_short' | 'too_long' | 'too_common';

// ~49,000 passwords seen most often in breaches (zxcvbn's common list, already lower case).
// Built on first use, once per process: a few MB that sign-in-only nodes never need.
let common: Set<string> | undefined;
const commonPasswords = (): Set<string> => (common ??= new Set(dictionary['passwords-common'].map((p) => p.toLowerCase())));

/**
 * Where a page gets the policy in force: the minimum length can change at runtime (the console's
 * settings, access/policy-settings.ts), so pages ask per request. A fixed policy is its own source.
 */
export interface PasswordPolicySource {
  current(): Promise<PasswordPolicy>;
}

export class PasswordPolicy implements PasswordPolicySource {
  constructor(readonly minLength: number) {}

  current(): Promise<PasswordPolicy> {
    return Promise.resolve(this);
  }

  /** The problem with `password` as a new password, or undefined when it may be used. */
  check(password: string): PasswordProblem | undefined {
    // Counted in code points, as a person counts characters (an emoji is one, not two).
    const length = [...password].length;
    if (length < this.minLength) return 'too_short';
    if (password.length > PASSWORD_MAX_LENGTH) return 'too_long';
    if (commonPasswords().has(password.toLowerCase())) return 'too_common';
    return undefined;
  }
}
