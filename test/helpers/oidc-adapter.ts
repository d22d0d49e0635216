// For tests of the oidc-provider storage: a fresh migrated database with the client cache and the
// adapter class the server builds on it.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { pino } from 'pino';
import { createAdapterFactory } from '../../src/oidc/adapter.ts';
import { ClientCache } from '../../src/apps/client-cache.ts';
import { createMigratedDatabase, type MigratedDatabase } from './knex.ts';

export interface AdapterDatabase extends MigratedDatabase {
  Adapter: new (name: string) => Adapter;
  clients: ClientCache<AdapterPayload>;
}

export async function createAdapterDatabase(prefix: string, poolMax?: number): Promise<AdapterDatabase> {
  const mdb = await createMigratedDatabase(prefix, poolMax);
  const clients = new ClientCache<AdapterPayload>({ databaseUrl: mdb.database.url, log: pino({ level: 'silent' }) });
  await clients.start();
  return {
    ...mdb,
    clients,
    Adapter: createAdapterFactory(mdb.db, clients),
    close: async () => {
      await clients.close();
      await mdb.close();
    },
  };
}
