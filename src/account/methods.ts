// What the security page needs of the passkey, TOTP and recovery-code strategies, typed by the
// design's signatures (credentials/passkey.strategy.ts, totp.strategy.ts, recovery.strategy.ts):
// the classes satisfy these structurally, so the page depends on no class and compiles without them.
import type { Actor } from '../audit/audit.service.ts';
import type { Proof, Verified } from '../credentials/methods.ts';

export interface PasskeyInfo { id: string; name: string; createdAt: Date; lastUsedAt: Date | null; synced: boolean }

export interface PasskeyMethods {
  registrationOptions(binding: string, user: { id: string; username: string; displayName: string | null }): Promise<unknown>;
  register(binding: string, userId: string, response: unknown, name: string | undefined, actor: Actor): Promise<{ ok: true; passkey: PasskeyInfo; proof: Proof } | { ok: false; reason: string }>;
  list(userId: string): Promise<PasskeyInfo[]>;
  rename(userId: string, id: string, name: string, actor: Actor): Promise<boolean>;
  remove(userId: string, id: string, actor: Actor): Promise<boolean>;
}

export interface TotpMethods {
  isEnrolled(userId: string): Promise<boolean>;
  beginEnrolment(userId: string, accountLabel: string): Promise<{ secret: string; otpauthUri: string; qrSvg: string }>;
  confirmEnrolment(userId: string, code: string, actor: Actor): Promise<{ ok: true; proof: Proof } | { ok: false; reason: string }>;
  verify(userId: string, code: string): Promise<Verified>;
  remove(userId: string, actor: Actor): Promise<boolean>;
}

export interface RecoveryCodeMethods {
  isEnrolled(userId: string): Promise<boolean>;
  generate(userId: string, actor: Actor): Promise<string[]>;
  remaining(userId: string): Promise<number>;
}
