// The instance's settings an administrator reads: today they come from the configuration (the
// environment), read by every node at start, so they are shown with the variable that sets them.
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import type { Services } from '../services.ts';
import { PASSWORD_MAX_LENGTH } from '../credentials/password.ts';
import type { SignInPolicy } from '../access/signin-policy.ts';

const settings = z.object({
  passwordPolicy: z.object({
    minLength: z.number().int().describe('the shortest password a person may choose, in characters'),
    maxLength: z.number().int(),
    rejectsCommonPasswords: z.boolean().describe('passwords seen most often in breaches are refused'),
    setBy: z.object({ minLength: z.string() }).describe('the environment variable that sets each value'),
  }),
  signInPolicyDefault: z.object({
    level: z.enum(['password', 'mfa', 'phishing_resistant'] satisfies SignInPolicy[]).describe('what a sign-in must prove for an app without its own sign-in policy'),
    setBy: z.string(),
  }),
  editable: z.literal(false).describe('set in the environment of every node; a change takes effect when the nodes restart'),
});

export function registerSettingsRoutes(api: AdminApi, { config, passwordPolicy }: Services): void {
  api.add({
    method: 'get', path: '/settings', tag: 'settings', summary: 'The password policy and the default sign-in policy, and where they are set',
    roles: ['auditor', 'user_admin', 'app_admin'], response: settings,
    handler: async () => ({
      passwordPolicy: { minLength: passwordPolicy.minLength, maxLength: PASSWORD_MAX_LENGTH, rejectsCommonPasswords: true, setBy: { minLength: 'PASSWORD_MIN_LENGTH' } },
      signInPolicyDefault: { level: config.signinPolicyDefault, setBy: 'SIGNIN_POLICY_DEFAULT' },
      editable: false as const,
    }),
  });
}
