// Black-box: DPoP-bound tokens (RFC 9449) at the admin API, obtained by a real DPoP client
// (openid-client) with client_credentials. A bound token works only with a valid proof of its key.
import * as client from 'openid-client';
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';

let db: TestDatabase;
let nodeA: RunningServer;
let nodeB: RunningServer;
let env: Record<string, string>;
let app: { client_id: string; client_secret: string };
let keys: { publicKey: CryptoKey; privateKey: CryptoKey };
let config: client.Configuration;
let dpopToken: string;
/** The DPoP proofs openid-client sent, in order. */
const sentProofs: string[] = [];

const usersUrl = () => new URL(`${nodeA.url}/admin/api/v1/users`);

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey() };
  const created = await runCli(['apps', 'create', '--name', 'Provisioner', '--grant-types', 'client_credentials', '--admin-role', 'user_admin'], env);
  expect(created.code).toBe(0);
  app = created.json;
  nodeA = await startServer(env);
  // A second node of the same deployment (same issuer, same database).
  nodeB = await startServer({ ...env, ISSUER: nodeA.url, PORT: undefined });
  keys = await generateKeyPair('ES256', { extractable: true });
  config = await client.discovery(new URL(nodeA.url), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), {
    execute: [client.allowInsecureRequests],
  });
  config[client.customFetch] = (url, options) => {
    const proof = new Headers(options.headers).get('dpop');
    if (proof) sentProofs.push(proof);
    return fetch(url, options as RequestInit);
  };
  const tokens = await client.clientCredentialsGrant(config, {}, { DPoP: client.getDPoPHandle(config, keys) });
  expect(tokens.token_type.toLowerCase()).toBe('dpop');
  dpopToken = tokens.access_token;
}, 120000);

afterAll(async () => {
  await nodeB?.stop();
  await nodeA?.stop();
  await db?.drop();
});

const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

/** A DPoP proof made by hand, valid unless `change` says otherwise. */
async function proof(change: { htm?: string; htu?: string; iat?: number; ath?: string; jti?: string; key?: typeof keys; typ?: string } = {}): Promise<string> {
  const key = change.key ?? keys;
  return new SignJWT({
    htm: change.htm ?? 'GET', htu: change.htu ?? usersUrl().toString(), jti: change.jti ?? randomUUID(), ath: change.ath ?? ath(dpopToken),
  })
    .setProtectedHeader({ alg: 'ES256', typ: change.typ ?? 'dpop+jwt', jwk: await exportJWK(key.publicKey) })
    .setIssuedAt(change.iat ?? Math.floor(Date.now() / 1000))
    .sign(key.privateKey);
}

const call = (authorization: string, dpop?: string, url = usersUrl()) => fetch(url, {
  headers: { authorization, accept: 'application/json', ...(dpop ? { dpop } : {}) },
});

describe('DPoP-bound tokens at the admin API', () => {
  it('are bound to the client\'s key (cnf.jkt) and work with openid-client\'s proofs', async () => {
    expect(decodeJwt(dpopToken).cnf).toEqual({ jkt: expect.any(String) });
    const res = await client.fetchProtectedResource(config, dpopToken, usersUrl(), 'GET', undefined, undefined, { DPoP: client.getDPoPHandle(config, keys) });
    expect(res.status).toBe(200);
    expect(await res.json()).toHaveProperty('items');
    expect((await call(`DPoP ${dpopToken}`, await proof())).status).toBe(200);
  });

  it('are refused as plain Bearer with 401 invalid_token and a DPoP challenge', async () => {
    const res = await call(`Bearer ${dpopToken}`);
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/DPoP /);
    expect(challenge).toMatch(/error="invalid_token"/);
    expect(await res.json()).toMatchObject({ status: 401, code: 'admin.token_invalid' });
    // Even with a valid proof beside it: the scheme must say DPoP.
    expect((await call(`Bearer ${dpopToken}`, await proof())).status).toBe(401);
  });

  it('are refused without a proof, or with a proof that does not fit the request', async () => {
    const other = await generateKeyPair('ES256', { extractable: true });
    const bad: [string, string | undefined][] = [
      ['no proof', undefined],
      ['not a JWT', 'nonsense'],
      ['another method', await proof({ htm: 'POST' })],
      ['another URL', await proof({ htu: `${nodeA.url}/admin/api/v1/apps` })],
      ['too old', await proof({ iat: Math.floor(Date.now() / 1000) - 600 })],
      ['from the future', await proof({ iat: Math.floor(Date.now() / 1000) + 600 })],
      ['another token', await proof({ ath: ath('some-other-token') })],
      ['another key', await proof({ key: other })],
      ['wrong typ', await proof({ typ: 'JWT' })],
    ];
    for (const [why, dpop] of bad) {
      const res = await call(`DPoP ${dpopToken}`, dpop);
      expect([why, res.status]).toEqual([why, 401]);
      expect(res.headers.get('www-authenticate')).toMatch(/DPoP /);
    }
  });

  it('refuse a replayed proof, on the same node and on another node of the deployment', async () => {
    const once = await proof();
    expect((await call(`DPoP ${dpopToken}`, once)).status).toBe(200);
    expect((await call(`DPoP ${dpopToken}`, once)).status).toBe(401);
    // The proof openid-client sent earlier, replayed by someone who saw it.
    expect(sentProofs.length).toBeGreaterThan(0);
    expect((await call(`DPoP ${dpopToken}`, sentProofs[sentProofs.length - 1])).status).toBe(401);

    const fresh = await proof();
    const onB = new URL(`http://127.0.0.1:${nodeB.port}/admin/api/v1/users`);
    expect((await call(`DPoP ${dpopToken}`, fresh, onB)).status).toBe(200);
    expect((await call(`DPoP ${dpopToken}`, fresh)).status).toBe(401);
  });

  it('do not make an unbound token acceptable under the DPoP scheme', async () => {
    const res = await fetch(`${nodeA.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    const { access_token: bearer } = await res.json() as { access_token: string };
    expect(decodeJwt(bearer).cnf).toBeUndefined();
    expect((await call(`Bearer ${bearer}`)).status).toBe(200);
    const asDpop = await call(`DPoP ${bearer}`, await proof({ ath: ath(bearer) }));
    expect(asDpop.status).toBe(401);
  });

  it('one DPoP proof sent to the token endpoint several times at once, on two nodes, gets one token', async () => {
    const once = await new SignJWT({ htm: 'POST', htu: `${nodeA.url}/token`, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(keys.publicKey) })
      .setIssuedAt()
      .sign(keys.privateKey);
    const attempt = (origin: string) => fetch(`${origin}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded', dpop: once,
        authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    const nodeBOrigin = `http://127.0.0.1:${nodeB.port}`;
    const results = await Promise.all([nodeA.url, nodeBOrigin, nodeA.url, nodeBOrigin, nodeA.url, nodeBOrigin].map(attempt));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) {
      expect(r.status).toBe(400);
      // oidc-provider answers a replayed proof at the token endpoint with invalid_grant.
      expect(await r.json()).toMatchObject({ error: 'invalid_grant' });
    }
  });
});
