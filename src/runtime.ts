// What the server and the CLI share: the database (with the embedded lock), migrations, keys.
import type { Knex } from 'knex';
import type { Config } from './config.ts';
import type { Logger } from './shared/logger.ts';
import { createDb } from './db/knex.ts';
import { lockDataDir, type DataDirLock } from './db/lock.ts';
import { migrateLatest } from './db/migrate.ts';
import { resolveMasterKey, verifyMasterKey, type MasterKey } from './keys/master-key.ts';
import { ensureSigningKeys } from './keys/keys.service.ts';
import { ensureSamlCertificates, samlCertificateSubject } from './keys/saml-keys.ts';

export interface Runtime {
  db: Knex;
  embedded: boolean;
  masterKey: MasterKey;
  /** Migrations applied by this start. */
  applied: string[];
  close(): Promise<void>;
}

export async function startRuntime(config: Config, log: Logger, role: 'server' | 'cli', opts: { migrate?: boolean } = {}): Promise<Runtime> {
  let lock: DataDirLock | undefined;
  if (!config.databaseUrl) lock = lockDataDir(config.dataDir, role);
  // The CLI keeps knex's own warnings off the person's screen (debug level in its log).
  const knexLog = (message: unknown) => log.debug({ knex: String(message) }, 'database driver message');
  const handle = createDb(config, role === 'cli' ? { warn: knexLog, error: knexLog, deprecate: knexLog, debug: knexLog } : undefined);
  try {
    const applied = opts.migrate === false ? [] : await migrateLatest(handle.db);
    if (applied.length) log.info({ applied }, 'migrations applied');
    const masterKey = resolveMasterKey(config.masterKey, config.dataDir);
    await verifyMasterKey(handle.db, masterKey);
    await ensureSigningKeys(handle.db, masterKey);
    await ensureSamlCertificates(handle.db, masterKey, samlCertificateSubject(config.issuer));
    return {
      db: handle.db,
      embedded: handle.embedded,
      masterKey,
      applied,
      close: async () => {
        await handle.close();
        lock?.release();
      },
    };
  } catch (err) {
    await handle.close().catch(() => undefined);
    lock?.release();
    throw err;
  }
}
