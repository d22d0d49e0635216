// For the knex CLI (npx knex --knexfile knexfile.ts ...). OneID itself migrates with `oneid migrate`
// or at start; both use the same configuration and the same migration list.
import { loadConfig } from './src/config.ts';
import { migrationSource } from './src/db/migrate.ts';
import ClientPgLite from 'knex-pglite';
import path from 'node:path';

const config = loadConfig();

export default config.databaseUrl
  ? { client: 'pg', connection: config.databaseUrl, migrations: { migrationSource } }
  : { client: ClientPgLite, dialect: 'postgres', connection: { filename: path.join(config.dataDir, 'pglite') }, migrations: { migrationSource } };
