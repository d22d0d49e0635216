// A second OneID instance acting as a downstream app: its own fresh database, its own master
// key, a SCIM token made with the CLI the way an operator would, and the server on a port.
import { createTestDatabase } from './db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from './server.ts';

export interface DownstreamOneId {
  /** SCIM base URL, e.g. http://localhost:PORT/scim/v2. */
  scimUrl: string;
  /** Bearer token of a SCIM token of this instance. */
  token: string;
  /** The instance's own URL (issuer). */
  url: string;
  /** Its database, for assertions straight on the rows. */
  databaseUrl: string;
  server: RunningServer;
  /** Stops the server and drops its database. */
  stop(): Promise<void>;
}

export async function startDownstreamOneId(options: { tokenName?: string } = {}): Promise<DownstreamOneId> {
  const db = await createTestDatabase('oneid_downstream');
  const env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  try {
    // The CLI migrates the fresh database before it makes the token.
    const made = await runCli(['scim-tokens', 'create', '--name', options.tokenName ?? 'Upstream OneID'], env);
    if (made.code !== 0 || typeof made.json?.token !== 'string') throw new Error(`scim-tokens create failed: ${made.stderr}`);
    const server = await startServer(env);
    return {
      scimUrl: `${server.url}/scim/v2`,
      token: made.json.token,
      url: server.url,
      databaseUrl: db.url,
      server,
      stop: async () => {
        await server.stop();
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}
