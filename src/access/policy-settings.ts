// The password policy's minimum length and the default sign-in policy, as the instance uses them:
// a value a super_admin stored from the console (an `instance_settings` row) wins, else the
// environment's (PASSWORD_MIN_LENGTH, SIGNIN_POLICY_DEFAULT), so a deployment that never stores
// one behaves as before. Sign-ins and password checks read them on every request, so each node
// keeps them for a few seconds: a change reaches every node within that time, without a restart,
// and a busy node reads the table at most once per interval.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import { PasswordPolicy, type PasswordPolicySource } from '../credentials/password-policy.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../credentials/password.ts';
import { isSignInPolicy, type SignInPolicy } from './signin-policy.ts';

export const POLICY_KEYS = { passwordMinLength: 'policy.password_min_length', signInPolicyDefault: 'policy.signin_default' } as const;
export type PolicySource = 'environment' | 'console';

export interface EnvironmentPolicies { passwordMinLength: number; signInPolicyDefault: SignInPolicy }

export interface EffectivePolicies {
  passwordMinLength: { value: number; source: PolicySource; environment: number };
  signInPolicyDefault: { value: SignInPolicy; source: PolicySource; environment: SignInPolicy };
}

/** A change: a value to store, null to go back to the environment's, absent to leave as is. */
export interface PolicyChanges { passwordMinLength?: number | null; signInPolicyDefault?: SignInPolicy | null }

/** How long a node keeps what it read; another node's change shows here after at most this. */
export const POLICY_CACHE_MS = 3000;

const validLength = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= PASSWORD_MIN_LENGTH && (n as number) <= PASSWORD_MAX_LENGTH;

export class PolicySettings {
  #cached: { at: number; value: EffectivePolicies } | undefined;
  #loading: Promise<EffectivePolicies> | undefined;
  #passwordPolicy: PasswordPolicy | undefined;

  /** The person-chosen password rule, at its current minimum length (for the password pages). */
  readonly passwords: PasswordPolicySource = { current: () => this.passwordPolicy() };

  constructor(private readonly db: Knex, private readonly environment: EnvironmentPolicies, private readonly cacheMs = POLICY_CACHE_MS) {}

  /** The values in force and where each comes from; from this node's cache when fresh. */
  async current(): Promise<EffectivePolicies> {
    const cached = this.#cached;
    if (cached && Date.now() - cached.at < this.cacheMs) return cached.value;
    // Concurrent requests at expiry share one read.
    this.#loading ??= this.#read(this.db).then((value) => {
      this.#cached = { at: Date.now(), value };
      return value;
    }).finally(() => { this.#loading = undefined; });
    return this.#loading;
  }

  async passwordPolicy(): Promise<PasswordPolicy> {
    const { value } = (await this.current()).passwordMinLength;
    if (this.#passwordPolicy?.minLength !== value) this.#passwordPolicy = new PasswordPolicy(value);
    return this.#passwordPolicy;
  }

  /** What a sign-in must prove for an app without its own sign-in policy. */
  async signInPolicyDefault(): Promise<SignInPolicy> {
    return (await this.current()).signInPolicyDefault.value;
  }

  /**
   * Stores (or clears, with null) the given values and records `settings.updated` with what was
   * stored before and after (null: the environment's), in one transaction. This node uses the
   * new values at once; the others within POLICY_CACHE_MS.
   */
  async update(changes: PolicyChanges, actor: Actor): Promise<EffectivePolicies> {
    const { passwordMinLength, signInPolicyDefault } = changes;
    if (passwordMinLength === undefined && signInPolicyDefault === undefined) {
      throw new AppError('invalid_argument', 'settings.nothing_to_change', 'give passwordMinLength or signInPolicyDefault (null goes back to the environment\'s value)', { field: 'body' });
    }
    if (passwordMinLength !== undefined && passwordMinLength !== null && !validLength(passwordMinLength)) {
      throw new AppError('invalid_argument', 'settings.password_min_length', `passwordMinLength: a whole number from ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH}`, { field: 'passwordMinLength' });
    }
    if (signInPolicyDefault !== undefined && signInPolicyDefault !== null && !isSignInPolicy(signInPolicyDefault)) {
      throw new AppError('invalid_argument', 'settings.signin_policy_default', 'signInPolicyDefault: password, mfa or phishing_resistant', { field: 'signInPolicyDefault' });
    }
    const wanted: [keyof PolicyChanges, string | null][] = [];
    if (passwordMinLength !== undefined) wanted.push(['passwordMinLength', passwordMinLength === null ? null : String(passwordMinLength)]);
    if (signInPolicyDefault !== undefined) wanted.push(['signInPolicyDefault', signInPolicyDefault]);

    const value = await this.db.transaction(async (trx) => {
      // Two super_admins saving at once: the second waits, and its `before` is the first's `after`.
      await trx.raw('select pg_advisory_xact_lock(hashtext(?))', ['instance_settings.policy']);
      const stored = await this.#stored(trx);
      const before: Record<string, unknown> = {};
      const after: Record<string, unknown> = {};
      for (const [name, text] of wanted) {
        const key = POLICY_KEYS[name];
        before[name] = stored.get(key) === undefined ? null : parsed(name, stored.get(key)!);
        after[name] = text === null ? null : parsed(name, text);
        if (text === null) await trx('instance_settings').where({ key }).delete();
        else await trx('instance_settings').insert({ key, value: text }).onConflict('key').merge();
      }
      await recordAudit(trx, actor, { action: 'settings.updated', targetType: 'settings', targetId: 'policies', changes: after, before });
      return this.#read(trx);
    });
    this.#cached = { at: Date.now(), value };
    return value;
  }

  async #stored(db: Knex | Knex.Transaction): Promise<Map<string, string>> {
    const rows = await db('instance_settings').whereIn('key', Object.values(POLICY_KEYS)).select<{ key: string; value: string }[]>('key', 'value');
    return new Map(rows.map((r) => [r.key, r.value]));
  }

  async #read(db: Knex | Knex.Transaction): Promise<EffectivePolicies> {
    const stored = await this.#stored(db);
    const env = this.environment;
    // A row that is not a valid value (edited by hand) is ignored: the environment's applies.
    const length = Number(stored.get(POLICY_KEYS.passwordMinLength));
    const hasLength = stored.has(POLICY_KEYS.passwordMinLength) && validLength(length);
    const level = stored.get(POLICY_KEYS.signInPolicyDefault);
    const hasLevel = isSignInPolicy(level);
    return {
      passwordMinLength: { value: hasLength ? length : env.passwordMinLength, source: hasLength ? 'console' : 'environment', environment: env.passwordMinLength },
      signInPolicyDefault: { value: hasLevel ? level : env.signInPolicyDefault, source: hasLevel ? 'console' : 'environment', environment: env.signInPolicyDefault },
    };
  }
}

function parsed(name: keyof PolicyChanges, text: string): number | string {
  return name === 'passwordMinLength' ? Number(text) : text;
}
