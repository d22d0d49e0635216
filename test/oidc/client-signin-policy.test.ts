// An app's own sign-in policy reaches the OIDC client oidc-provider builds from it (the sign-in
// flow reads it there with oneIdClientFacts), and a change reaches it at once: on this node by
// its own write, on every node by PostgreSQL's notification (apps/client-cache.ts).
import pg from 'pg';
import { pino } from 'pino';
import type Provider from 'oidc-provider';
import { loadConfig } from '../../src/config.ts';
import { startRuntime, type Runtime } from '../../src/runtime.ts';
import { buildApp, type OneIdApp } from '../../src/app.ts';
import { oneIdClientFacts } from '../../src/oidc/adapter.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { testMasterKey } from '../helpers/server.ts';

let database: TestDatabase;
let rt: Runtime;
let oneid: OneIdApp;
let provider: Provider;
/** A connection of somebody else: another node, the CLI, an operator with psql. */
let other: pg.Client;

const log = pino({ level: 'silent' });

async function until(check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const policyOf = async (clientId: string) => oneIdClientFacts(await provider.Client.find(clientId)).signInPolicy;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_client_policy');
  const config = loadConfig({ DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey(), LOG_LEVEL: 'silent' });
  rt = await startRuntime(config, log, 'server');
  oneid = await buildApp({ config, db: rt.db, log, masterKey: rt.masterKey });
  provider = oneid.provider;
  other = new pg.Client({ connectionString: database.url });
  await other.connect();
});

afterAll(async () => {
  await other?.end();
  await oneid?.clients.close();
  await rt?.close();
  await database?.drop();
});

describe("an OIDC client's sign-in policy", () => {
  it("is the app's own level, or null when it follows the global default", async () => {
    const strict = await oneid.services.apps.createApp({ name: 'Payroll', redirectUris: ['https://payroll.example.com/cb'], signInPolicy: 'phishing_resistant' });
    const plain = await oneid.services.apps.createApp({ name: 'Wiki', redirectUris: ['https://wiki.example.com/cb'] });
    expect(await policyOf(strict.client_id)).toBe('phishing_resistant');
    expect(await policyOf(plain.client_id)).toBeNull();
    const facts = oneIdClientFacts(await provider.Client.find(strict.client_id));
    expect(facts).toEqual({ appId: strict.id, firstParty: false, allowNoPkce: false, signInPolicy: 'phishing_resistant' });
  });

  it("follows a change by this node at once, and one by anyone else as soon as it is announced", async () => {
    const created = await oneid.services.apps.createApp({ name: 'HR', redirectUris: ['https://hr.example.com/cb'] });
    expect(await policyOf(created.client_id)).toBeNull(); // now cached
    await oneid.services.apps.updateApp(created.id, { signInPolicy: 'mfa' });
    expect(await policyOf(created.client_id)).toBe('mfa');
    await oneid.services.apps.updateApp(created.id, { signInPolicy: null });
    expect(await policyOf(created.client_id)).toBeNull();
    // Another node (or psql) changes it: this node's cached client is dropped when PostgreSQL tells it.
    expect(oneid.clients.live).toBe(true);
    await other.query("update apps set signin_policy = 'phishing_resistant' where id = $1", [created.id]);
    await until(async () => (await policyOf(created.client_id)) === 'phishing_resistant');
  });

  it('refuses a value that is not a level in the database itself', async () => {
    const created = await oneid.services.apps.createApp({ name: 'Mail', redirectUris: ['https://mail.example.com/cb'] });
    await expect(other.query("update apps set signin_policy = 'strong' where id = $1", [created.id])).rejects.toThrow(/apps__signin_policy/);
  });
});
