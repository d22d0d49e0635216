// The token signing keys: list and rotate (the same rotation as `oneid keys rotate`).
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import type { Services } from '../services.ts';
import { AppError } from '../shared/errors.ts';
import type { SigningKeysService } from '../keys/keys.service.ts';

const signingKey = z.object({
  kid: z.string(),
  alg: z.string(),
  state: z.enum(['current', 'next', 'previous', 'retired']).describe('current signs; next is published before it signs; previous is still published so that tokens it signed verify'),
  createdAt: z.string(),
});

const keyList = z.object({ items: z.array(signingKey) });

export function registerKeysRoutes(api: AdminApi, { signingKeys }: Services): void {
  const keys = (): SigningKeysService => {
    if (!signingKeys) throw new AppError('failed_precondition', 'keys.no_master_key', 'the signing keys need the master key, which this process was not given');
    return signingKeys;
  };
  api.add({
    method: 'get', path: '/keys', tag: 'keys', summary: 'List the token signing keys and their states (never the private parts); retired keys are left out',
    roles: ['auditor'], response: keyList,
    handler: async () => ({ items: await keys().list() }),
  });
  api.add({
    method: 'post', path: '/keys/rotate', tag: 'keys',
    summary: 'Rotate the signing keys: next becomes current, current becomes previous, previous retires, a new next is made. Each OneID node signs with the new key after it restarts',
    roles: [], response: keyList,
    handler: async ({ principal }) => ({ items: await keys().rotate(principal.actor) }),
  });
}
