// A person's sign-in methods as the help desk sees and resets them: /users/:id/methods. Removing
// one is a change of the person (their admin roles are checked as for any other change, in the
// same transaction) and, from a person's token, needs a two-factor sign-in (RFC 9470 step-up).
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { idParam } from './api.ts';
import type { Services } from '../services.ts';
import type { Principal } from './auth.ts';
import { assertMayManage } from './role-guard.ts';
import { STEP_UP_LEVEL } from './users.routes.ts';
import { MethodsService, type RemovableMethod } from '../credentials/methods.service.ts';

export const methodsResource = z.object({
  password: z.boolean().describe('the person has a password'),
  passkeys: z.array(z.object({
    id: z.uuid().describe('remove it with DELETE /users/{id}/methods/passkeys/{credentialId}'),
    name: z.string(),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
  })),
  totp: z.boolean().describe('an authenticator app (TOTP) is set up'),
  recoveryCodesRemaining: z.number().int().describe('recovery codes not used yet'),
});

const passkeyParams = z.strictObject({ id: z.uuid(), credentialId: z.uuid() });

export function registerMethodsRoutes(api: AdminApi, { db, methods }: Services): void {
  /** The removal, with the caller checked against the person's admin roles while their row is locked. */
  const remove = (principal: Principal, userId: string, kind: RemovableMethod, id?: string): Promise<void> =>
    db.transaction(async (trx) => {
      const row = await trx('users').where({ id: userId }).forUpdate().first<{ admin_roles: string[] } | undefined>('admin_roles');
      if (row) assertMayManage(principal, row.admin_roles, 'user', 'user.admin_roles_forbidden');
      await new MethodsService(trx).removeMethod(userId, kind, id, principal.actor);
    });

  api.add({
    method: 'get', path: '/users/:id/methods', tag: 'users',
    summary: "A person's sign-in methods: password, passkeys, authenticator app, recovery codes left (never a secret)",
    roles: ['user_admin', 'auditor'], params: idParam, response: methodsResource,
    handler: async ({ params }) => {
      const m = await methods.listMethods(params.id);
      return {
        ...m,
        passkeys: m.passkeys.map((p) => ({
          id: p.id, name: p.name, createdAt: new Date(p.createdAt).toISOString(), lastUsedAt: p.lastUsedAt ? new Date(p.lastUsedAt).toISOString() : null,
        })),
      };
    },
  });

  api.add({
    method: 'delete', path: '/users/:id/methods/passkeys/:credentialId', tag: 'users', status: 204,
    summary: "Remove one of a person's passkeys (a lost or stolen security key or phone)",
    roles: ['user_admin'], signInLevel: STEP_UP_LEVEL, params: passkeyParams,
    handler: async ({ params, principal }) => remove(principal, params.id, 'passkey', params.credentialId),
  });

  api.add({
    method: 'delete', path: '/users/:id/methods/totp', tag: 'users', status: 204,
    summary: "Remove a person's authenticator app (TOTP); they set one up again at their next sign-in",
    roles: ['user_admin'], signInLevel: STEP_UP_LEVEL, params: idParam,
    handler: async ({ params, principal }) => remove(principal, params.id, 'totp'),
  });

  api.add({
    method: 'delete', path: '/users/:id/methods/recovery-codes', tag: 'users', status: 204,
    summary: "Void all of a person's recovery codes",
    roles: ['user_admin'], signInLevel: STEP_UP_LEVEL, params: idParam,
    handler: async ({ params, principal }) => remove(principal, params.id, 'recovery_codes'),
  });
}
