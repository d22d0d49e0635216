// What every sign-in method has in common: its name, and what a successful check proves
// (a Proof, with its RFC 8176 amr values). Each method is a strategy in this folder
// (password, passkey, totp, recovery codes) over the one credentials table.

export type MethodName = 'password' | 'passkey' | 'totp' | 'recovery_code';
export const METHOD_NAMES: readonly MethodName[] = ['password', 'passkey', 'totp', 'recovery_code'];

/** One method proven in a sign-in. `at` is in seconds since the epoch. */
export interface Proof {
  method: MethodName;
  at: number;
  /** RFC 8176 values: pwd; otp; hwk (device-bound key) or swk (synced key); user (verified). */
  amr: string[];
  /** The credential's row id, where the method has several (passkeys). */
  credentialId?: string;
  /** A passkey that verified its user (biometric or PIN): a second factor by itself. */
  userVerified?: boolean;
}

/** The outcome of checking one method. A refusal names its reason for the audit log only. */
export type Verified =
  | { ok: true; userId: string; proof: Proof }
  | { ok: false; reason: string; userId?: string };

/** Every strategy answers whether a person has it set up. */
export interface CredentialStrategy {
  readonly method: MethodName;
  isEnrolled(userId: string): Promise<boolean>;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
