import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { idParam } from './api.ts';
import type { Services } from '../services.ts';
import { createScimTokenInput } from '../apps/scim-tokens.service.ts';

const scimToken = z.object({
  id: z.uuid(), name: z.string(), departmentId: z.string().nullable(), createdAt: z.string(), lastUsedAt: z.string().nullable(), revokedAt: z.string().nullable(),
});

export function registerScimTokenRoutes(api: AdminApi, { scimTokens }: Services): void {
  api.add({
    method: 'get', path: '/scim-tokens', tag: 'provisioning', summary: 'List SCIM provisioning tokens (never the secrets)',
    roles: ['user_admin', 'auditor'], response: z.object({ items: z.array(scimToken) }),
    handler: async () => ({ items: await scimTokens.list() }),
  });
  api.add({
    method: 'post', path: '/scim-tokens', tag: 'provisioning', status: 201,
    summary: 'Create a SCIM bearer token for a provisioning client; the token is returned once',
    // super_admin only: a SCIM client changes anyone in its scope, administrators included
    // (their profile and status; never their password), which a user_admin may not do itself.
    roles: [], body: createScimTokenInput, response: scimToken.extend({ token: z.string() }),
    handler: async ({ body, principal, ctx }) => {
      const { token, secret } = await scimTokens.create(body, principal.actor);
      ctx.set('Cache-Control', 'no-store');
      return { ...token, token: secret };
    },
  });
  api.add({
    method: 'post', path: '/scim-tokens/:id/revoke', tag: 'provisioning', summary: 'Revoke a SCIM token at once',
    roles: ['user_admin'], params: idParam, response: scimToken,
    handler: async ({ params, principal }) => scimTokens.revoke(params.id, principal.actor),
  });
}
