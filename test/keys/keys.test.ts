// Signing keys: storage and rotation on a real database, then rotation as an operator sees it
// (`oneid keys rotate`, a restart, and relying parties that verify tokens against /jwks).
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import * as client from 'openid-client';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { MasterKey, verifyMasterKey } from '../../src/keys/master-key.ts';
import {
  ensureSigningKeys, listSigningKeys, loadCookieKeys, loadProviderJwks, rotateSigningKeys,
} from '../../src/keys/keys.service.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { freePort, runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

interface KeyRow { kid: string; alg: string; state: string; public_jwk: Record<string, unknown>; private_jwk_encrypted: string }

const newMasterKey = () => new MasterKey(randomBytes(32));

const keyRows = (db: Knex): Promise<KeyRow[]> => db('signing_keys').select('kid', 'alg', 'state', 'public_jwk', 'private_jwk_encrypted').orderBy('kid');

/** kid of the one key in `state` for `alg`; fails when there is not exactly one. */
function kidOf(rows: { kid: string; alg: string; state: string }[], alg: string, state: string): string {
  const found = rows.filter((r) => r.alg === alg && r.state === state);
  expect(found).toHaveLength(1);
  return found[0]!.kid;
}

describe('signing keys in the database', () => {
  let mdb: MigratedDatabase;
  let db: Knex;
  const masterText = randomBytes(32).toString('base64url');
  const master = MasterKey.parse(masterText);

  beforeAll(async () => {
    mdb = await createMigratedDatabase('oneid_test_keys');
    db = mdb.db;
  });

  afterAll(async () => {
    await mdb?.close();
  });

  describe('ensureSigningKeys', () => {
    it('creates a current and a next key for ES256 and RS256, once, even when two nodes start together', async () => {
      await Promise.all([ensureSigningKeys(db, master), ensureSigningKeys(db, master)]);
      const rows = await keyRows(db);
      expect(rows.map((r) => `${r.alg}:${r.state}`).sort()).toEqual(['ES256:current', 'ES256:next', 'RS256:current', 'RS256:next']);
      expect(new Set(rows.map((r) => r.kid)).size).toBe(4);
      const cookies = await db('cookie_keys').count<{ count: number }[]>({ count: '*' });
      expect(Number(cookies[0]!.count)).toBe(1);

      await ensureSigningKeys(db, master);
      expect(await keyRows(db)).toEqual(rows);
      expect(await loadCookieKeys(db, master)).toHaveLength(1);
    });

    it('does not store private keys in the clear', async () => {
      const rows = await keyRows(db);
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) {
        expect(row.private_jwk_encrypted).not.toContain('"d"');
        expect(row.private_jwk_encrypted).toMatch(/^v1\./);
        expect(row.public_jwk.d).toBeUndefined();
        expect(row.public_jwk.kid).toBe(row.kid);
        // It is the private key, sealed with the master key: only that key opens it.
        const opened = JSON.parse(master.decrypt(row.private_jwk_encrypted)) as Record<string, unknown>;
        expect(typeof opened.d).toBe('string');
        expect(opened.kid).toBe(row.kid);
        expect(() => newMasterKey().decrypt(row.private_jwk_encrypted)).toThrow();
      }
      const text = JSON.stringify(await db('cookie_keys').select('*'));
      for (const key of await loadCookieKeys(db, master)) expect(text).not.toContain(key);
    });
  });

  describe('rotateSigningKeys', () => {
    it('moves next to current, current to previous, previous to retired, and adds a new next', async () => {
      const before = await keyRows(db);
      const summary = await rotateSigningKeys(db, master);
      const after = await keyRows(db);
      for (const alg of ['ES256', 'RS256']) {
        expect(kidOf(after, alg, 'current')).toBe(kidOf(before, alg, 'next'));
        expect(kidOf(after, alg, 'previous')).toBe(kidOf(before, alg, 'current'));
        const freshNext = kidOf(after, alg, 'next');
        expect(before.map((r) => r.kid)).not.toContain(freshNext);
        expect(after.find((r) => r.kid === freshNext)!.alg).toBe(alg);
      }
      expect(after.filter((r) => r.state === 'retired')).toHaveLength(0);
      // The returned summary is what the CLI prints: the live keys.
      expect(summary.map((k) => `${k.kid}:${k.state}`).sort()).toEqual(after.map((r) => `${r.kid}:${r.state}`).sort());

      const second = await keyRows(db);
      await rotateSigningKeys(db, master);
      const third = await keyRows(db);
      for (const alg of ['ES256', 'RS256']) {
        expect(kidOf(third, alg, 'retired')).toBe(kidOf(second, alg, 'previous'));
        expect(kidOf(third, alg, 'previous')).toBe(kidOf(second, alg, 'current'));
        expect(kidOf(third, alg, 'current')).toBe(kidOf(second, alg, 'next'));
      }
      expect((await listSigningKeys(db)).map((k) => k.state)).not.toContain('retired');
      expect(await loadCookieKeys(db, master)).toHaveLength(3);
    });

    it('keeps only the three newest cookie keys', async () => {
      const before = await loadCookieKeys(db, master);
      await rotateSigningKeys(db, master);
      const after = await loadCookieKeys(db, master);
      expect(after).toHaveLength(3);
      expect(after.slice(1)).toEqual(before.slice(0, 2)); // newest first; the oldest went
      expect(before).not.toContain(after[0]);
    });
  });

  describe('loadProviderJwks', () => {
    it('returns the current keys first, then next and previous, and never retired keys', async () => {
      const rows = await keyRows(db);
      expect(rows.some((r) => r.state === 'retired')).toBe(true);
      const { keys } = await loadProviderJwks(db, master);
      const stateOf = (kid: string | undefined) => rows.find((r) => r.kid === kid)!.state;
      expect(keys.map((k) => `${k.alg}:${stateOf(k.kid)}`)).toEqual([
        'ES256:current', 'RS256:current', 'ES256:next', 'RS256:next', 'ES256:previous', 'RS256:previous',
      ]);
      for (const retired of rows.filter((r) => r.state === 'retired')) {
        expect(keys.map((k) => k.kid)).not.toContain(retired.kid);
      }
      expect(keys.every((k) => typeof k.d === 'string')).toBe(true); // the provider needs the private halves
    });
  });

  describe('verifyMasterKey', () => {
    it('accepts the key the database was set up with and refuses any other with keys.master_key_mismatch', async () => {
      await verifyMasterKey(db, master);
      await verifyMasterKey(db, master);
      const err = await verifyMasterKey(db, newMasterKey()).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({ kind: 'failed_precondition', code: 'keys.master_key_mismatch' });
      // The same key given again as text (a restart with the same ONEID_MASTER_KEY) is accepted.
      await verifyMasterKey(db, MasterKey.parse(` ${masterText}\n`));
    });
  });
});

describe('oneid keys rotate', () => {
  let database: TestDatabase;
  let server: RunningServer;
  let env: Record<string, string>;
  let app: { client_id: string; client_secret: string };

  const restart = async () => {
    await server.stop();
    server = await startServer(env);
  };

  const publishedKids = async (): Promise<string[]> => {
    const jwks = await (await fetch(`${server.url}/jwks`)).json() as JSONWebKeySet;
    expect(jwks.keys.every((k) => (k as { d?: string }).d === undefined)).toBe(true);
    return jwks.keys.map((k) => k.kid!);
  };

  const verify = async (token: string) => {
    const jwks = await (await fetch(`${server.url}/jwks`)).json() as JSONWebKeySet;
    return jwtVerify(token, createLocalJWKSet(jwks), { issuer: server.url, audience: `${server.url}/api`, typ: 'at+jwt' });
  };

  const serviceToken = async (): Promise<string> => {
    const config = await client.discovery(new URL(server.url), app.client_id, undefined,
      client.ClientSecretBasic(app.client_secret), { execute: [client.allowInsecureRequests] });
    return (await client.clientCredentialsGrant(config, {})).access_token;
  };

  const liveKeys = async (): Promise<{ kid: string; alg: string; state: string }[]> => {
    const listed = await runCli(['keys', 'list'], env);
    expect(listed.code).toBe(0);
    return listed.json.keys;
  };

  const rotate = async (): Promise<{ kid: string; alg: string; state: string }[]> => {
    const rotated = await runCli(['keys', 'rotate'], env);
    expect(rotated.code).toBe(0);
    return rotated.json.keys;
  };

  beforeAll(async () => {
    database = await createTestDatabase('oneid_test_rotate');
    // A fixed port, so that a restart keeps the same issuer.
    env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey(), PORT: String(await freePort()) };
    server = await startServer(env);
    const created = await runCli(['apps', 'create', '--name', 'Svc', '--grant-types', 'client_credentials'], env);
    expect(created.code).toBe(0);
    app = created.json;
  }, 120000);

  afterAll(async () => {
    await server?.stop();
    await database?.drop();
  });

  it('keeps old tokens valid, signs new ones with the former next key, and retires keys after two more rotations', async () => {
    const oldToken = await serviceToken();
    const oldKid = decodeProtectedHeader(oldToken).kid!;
    const before = await liveKeys();
    expect(oldKid).toBe(kidOf(before, 'ES256', 'current'));
    const formerNext = kidOf(before, 'ES256', 'next');
    expect(await publishedKids()).toEqual(expect.arrayContaining([oldKid, formerNext]));

    const afterFirst = await rotate();
    expect(kidOf(afterFirst, 'ES256', 'current')).toBe(formerNext);
    expect(kidOf(afterFirst, 'ES256', 'previous')).toBe(oldKid);
    const freshNext = kidOf(afterFirst, 'ES256', 'next');
    expect([oldKid, formerNext]).not.toContain(freshNext);
    await restart();

    // A relying party that fetches the new JWKS still accepts the token it already holds.
    expect((await verify(oldToken)).payload.client_id).toBe(app.client_id);
    const published = await publishedKids();
    expect(published).toContain(oldKid); // as previous
    expect(published).toContain(freshNext); // published before it ever signs
    const newToken = await serviceToken();
    const newKid = decodeProtectedHeader(newToken).kid;
    expect(newKid).not.toBe(oldKid);
    expect(newKid).toBe(formerNext);
    expect((await verify(newToken)).payload.client_id).toBe(app.client_id);

    const afterSecond = await rotate();
    await restart();
    expect(await publishedKids()).not.toContain(oldKid); // retired
    expect(await publishedKids()).toContain(formerNext); // now previous
    await expect(verify(oldToken)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    expect((await verify(newToken)).payload.client_id).toBe(app.client_id);

    await rotate();
    await restart();
    expect(await publishedKids()).not.toContain(formerNext);
    await expect(verify(newToken)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    const latest = await serviceToken();
    expect((await verify(latest)).payload.client_id).toBe(app.client_id);
    // Each rotation promotes the key that the one before it published as next.
    expect(decodeProtectedHeader(latest).kid).toBe(kidOf(afterSecond, 'ES256', 'next'));
    expect(await publishedKids()).toContain(freshNext); // now previous
  }, 180000); // three restarts and four CLI runs
});
