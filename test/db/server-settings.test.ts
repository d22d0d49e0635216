// The start-up check of the PostgreSQL settings OneID relies on (autovacuum keeps plans honest).
import { readServerSettings, serverSettingsWarnings } from '../../src/db/server-settings.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { startServer, testMasterKey } from '../helpers/server.ts';

let mdb: MigratedDatabase;
beforeAll(async () => { mdb = await createMigratedDatabase('oneid_test_settings', 1); });
afterAll(async () => { await mdb?.close(); });

describe('serverSettingsWarnings', () => {
  it('says nothing when autovacuum and track_counts are on', () => {
    expect(serverSettingsWarnings({ autovacuum: 'on', track_counts: 'on' })).toEqual([]);
  });

  it('names each setting that is off and what to do', () => {
    const [warning, ...rest] = serverSettingsWarnings({ autovacuum: 'off', track_counts: 'on' });
    expect(rest).toEqual([]);
    expect(warning).toContain('autovacuum = off');
    expect(warning).not.toContain('track_counts');
    expect(warning).toContain('postgresql.conf');
    expect(serverSettingsWarnings({ autovacuum: 'off', track_counts: 'off' })[0]).toContain('autovacuum = off and track_counts = off');
  });

  it('reads the settings of the server it is connected to', async () => {
    const { rows } = await mdb.db.raw("select setting from pg_settings where name = 'autovacuum'");
    const settings = await readServerSettings(mdb.db);
    expect(settings.autovacuum).toBe(rows[0].setting);
    expect(['on', 'off']).toContain(settings.track_counts);
  });
});

describe('a node on PostgreSQL, at start', () => {
  it('logs the warning exactly when this server has autovacuum or track_counts off', async () => {
    const expected = serverSettingsWarnings(await readServerSettings(mdb.db));
    const server = await startServer({ DATABASE_URL: mdb.database.url, ONEID_MASTER_KEY: testMasterKey() });
    try {
      const warnings = server.output().split('\n').filter((line) => line.includes('"event":"db.settings"'));
      expect(warnings.map((line) => JSON.parse(line).msg)).toEqual(expected);
      if (expected.length) expect(JSON.parse(warnings[0]!).level).toBe(40); // pino's warn
    } finally {
      await server.stop();
    }
  }, 60000);
});
