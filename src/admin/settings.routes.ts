// The instance's policies an administrator reads, and a super_admin changes: the password policy's
// minimum length and the default sign-in policy. Each is the console's stored value or, without
// one, the environment's (access/policy-settings.ts); every node uses a change within seconds.
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import type { Services } from '../services.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../credentials/password.ts';
import { SIGN_IN_POLICIES, type SignInPolicy } from '../access/signin-policy.ts';
import type { EffectivePolicies } from '../access/policy-settings.ts';

const level = z.enum(SIGN_IN_POLICIES as [SignInPolicy, ...SignInPolicy[]]);
const source = z.enum(['environment', 'console']).describe('console: a super_admin set it (PATCH /settings); environment: the variable\'s value, as no value is stored');

const settings = z.object({
  passwordPolicy: z.object({
    minLength: z.number().int().describe('the shortest password a person may choose, in characters'),
    maxLength: z.number().int(),
    rejectsCommonPasswords: z.boolean().describe('passwords seen most often in breaches are refused'),
    source,
    environment: z.object({ variable: z.literal('PASSWORD_MIN_LENGTH'), minLength: z.number().int() }).describe('the value without a stored one'),
  }),
  signInPolicyDefault: z.object({
    level: level.describe('what a sign-in must prove for an app without its own sign-in policy'),
    source,
    environment: z.object({ variable: z.literal('SIGNIN_POLICY_DEFAULT'), level }).describe('the value without a stored one'),
  }),
});

const settingsChange = z.strictObject({
  passwordMinLength: z.number().int().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH).nullable().optional()
    .describe(`${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH}; null goes back to PASSWORD_MIN_LENGTH`),
  signInPolicyDefault: level.nullable().optional().describe('null goes back to SIGNIN_POLICY_DEFAULT'),
}).refine((b) => b.passwordMinLength !== undefined || b.signInPolicyDefault !== undefined, 'give passwordMinLength or signInPolicyDefault');

function shown(p: EffectivePolicies): z.infer<typeof settings> {
  return {
    passwordPolicy: {
      minLength: p.passwordMinLength.value, maxLength: PASSWORD_MAX_LENGTH, rejectsCommonPasswords: true,
      source: p.passwordMinLength.source, environment: { variable: 'PASSWORD_MIN_LENGTH', minLength: p.passwordMinLength.environment },
    },
    signInPolicyDefault: {
      level: p.signInPolicyDefault.value,
      source: p.signInPolicyDefault.source, environment: { variable: 'SIGNIN_POLICY_DEFAULT', level: p.signInPolicyDefault.environment },
    },
  };
}

export function registerSettingsRoutes(api: AdminApi, { policies }: Services): void {
  api.add({
    method: 'get', path: '/settings', tag: 'settings', summary: 'The password policy and the default sign-in policy in force, and where each comes from',
    roles: ['auditor', 'user_admin', 'app_admin'], response: settings,
    handler: async () => shown(await policies.current()),
  });
  api.add({
    method: 'patch', path: '/settings', tag: 'settings',
    summary: 'Change the password policy\'s minimum length or the default sign-in policy (null: back to the environment\'s value); audited as settings.updated. Every node uses the change within seconds',
    roles: [], body: settingsChange, response: settings,
    handler: async ({ body, principal }) => shown(await policies.update(body, principal.actor)),
  });
}
