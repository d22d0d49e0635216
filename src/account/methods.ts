// What the security page uses of the passkey, TOTP and recovery-code strategies (credentials/).
import type { PasskeyStrategy } from '../credentials/passkey.strategy.ts';
import type { TotpStrategy } from '../credentials/totp.strategy.ts';
import type { RecoveryCodes } from '../credentials/recovery.strategy.ts';

export type { PasskeyInfo } from '../credentials/passkey.strategy.ts';
export type PasskeyMethods = Pick<PasskeyStrategy, 'isEnrolled' | 'registrationOptions' | 'register' | 'list' | 'rename' | 'remove'>;
export type TotpMethods = Pick<TotpStrategy, 'isEnrolled' | 'beginEnrolment' | 'confirmEnrolment' | 'verify' | 'remove'>;
export type RecoveryCodeMethods = Pick<RecoveryCodes, 'isEnrolled' | 'generate' | 'remaining'>;
