// Three OneID nodes on one PostgreSQL behind client-side round robin (a load balancer with no
// sticky sessions): any step on any node, writes visible everywhere at once, and nodes that
// die (SIGKILL) or leave (SIGTERM) under load lose nothing and sign nobody out.
import { jest } from '@jest/globals';
import * as client from 'openid-client';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { Browser } from '../helpers/browser.ts';
import { freePort } from '../helpers/server.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
let db: TestDatabase;
let env: Record<string, string>;
let issuer: string;
let nodes: RunningServer[] = [];
let alive: RunningServer[] = [];
let app: { client_id: string; client_secret: string };
let scimToken: string;
let next = 0;

jest.setTimeout(240000);

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: '15000' };
  const [, created, token] = await Promise.all([
    runCli(['users', 'create', '--username', 'ada', '--email', 'ada@example.com', '--password', 'analytical-engine'], env),
    runCli(['apps', 'create', '--name', 'Portal', '--redirect-uri', REDIRECT, '--first-party'], env),
    runCli(['scim-tokens', 'create', '--name', 'HR'], env),
  ]);
  app = created.json;
  scimToken = token.json.token;
  // One public issuer for all three; each node listens on its own port.
  issuer = `http://localhost:${await freePort()}`;
  nodes = await Promise.all([0, 1, 2].map(() => startServer({ ...env, ISSUER: issuer })));
  alive = [...nodes];
});

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  await db?.drop();
});

/**
 * Round robin over the live nodes; on a connection failure, another node (as nginx's
 * proxy_next_upstream does): a node that failed this request is not tried again while others are
 * left. Picking by the shared counter alone could land on the leaving node six times in a row
 * while other requests moved the counter in between.
 */
async function lbFetch(url: string | URL, init: RequestInit = {}, attempts = 6): Promise<Response> {
  let lastError: unknown;
  const failed = new Set<RunningServer>();
  for (let i = 0; i < attempts; i += 1) {
    const untried = alive.filter((n) => !failed.has(n));
    const candidates = untried.length ? untried : alive;
    const node = candidates[next++ % candidates.length]!;
    const u = new URL(url);
    u.host = `127.0.0.1:${node.port}`;
    try {
      return await fetch(u, init);
    } catch (err) {
      lastError = err; // connection refused or reset: the node is gone; try another
      failed.add(node);
    }
  }
  throw lastError;
}

const scim = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => lbFetch(`${issuer}/scim/v2${path}`, {
  method,
  headers: { authorization: `Bearer ${scimToken}`, 'content-type': 'application/scim+json', ...headers },
  body: body === undefined ? undefined : JSON.stringify(body),
});

async function rp(): Promise<client.Configuration> {
  const config = await client.discovery(new URL(issuer), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: (url: string, options: RequestInit) => lbFetch(url, options),
  } as client.DiscoveryRequestOptions);
  client.enableNonRepudiationChecks(config);
  config[client.customFetch] = (url, options) => lbFetch(url, options as RequestInit);
  return config;
}

async function signIn(config: client.Configuration) {
  const browser = new Browser();
  browser.route = (url) => {
    const node = alive[next++ % alive.length]!;
    const u = new URL(url);
    if (u.origin === issuer) u.host = `127.0.0.1:${node.port}`;
    return { url: u };
  };
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: 'openid profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const form = await browser.navigate(url.toString(), REDIRECT);
  const done = await browser.submit(form, '/login', { login: 'ada', password: 'analytical-engine' }, REDIRECT);
  return client.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier });
}

const createUser = async (userName: string): Promise<Response> => scim('POST', '/Users', {
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName, emails: [{ value: `${userName}@example.com`, type: 'work', primary: true }],
});

async function countUsers(userName: string, node: RunningServer): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/scim/v2/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`, { headers: { authorization: `Bearer ${scimToken}` } });
  return ((await res.json()) as { totalResults: number }).totalResults;
}

/** Runs `work` in `workers` parallel loops until `stop()` says so; collects statuses. */
async function sustain(workers: number, work: (i: number) => Promise<number>, until: Promise<void>) {
  const statuses: number[] = [];
  let done = false;
  void until.then(() => { done = true; });
  let counter = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (!done) statuses.push(await work(counter++));
  }));
  return statuses;
}

describe('three nodes, one database', () => {
  it('serves one sign-in across all nodes, and a SCIM write is visible from every node at once', async () => {
    const config = await rp();
    const tokens = await signIn(config);
    expect(tokens.claims()!.preferred_username).toBe('ada');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();

    const created = await createUser('everywhere');
    expect(created.status).toBe(201);
    const counts = await Promise.all(nodes.map((n) => countUsers('everywhere', n)));
    expect(counts).toEqual([1, 1, 1]);
  });

  it('loses no write and signs nobody out when a node is killed under load', async () => {
    const config = await rp();
    const first = await signIn(config);
    const created: string[] = [];
    const victim = nodes[2]!;
    const killed = new Promise<void>((resolve) => setTimeout(() => {
      victim.process.kill('SIGKILL');
      alive = alive.filter((n) => n !== victim);
      resolve();
    }, 1500));
    const stop = killed.then(() => new Promise<void>((r) => setTimeout(r, 2000)));
    const statuses = await sustain(6, async (i) => {
      const userName = `load-${i}`;
      try {
        const res = await createUser(userName);
        if (res.status === 201) created.push(userName);
        return res.status;
      } catch {
        return 0;
      }
    }, stop);
    // The signed-in user keeps working through the whole thing.
    const tokens = await client.refreshTokenGrant(config, first.refresh_token!);
    const info = await client.fetchUserInfo(config, tokens.access_token, first.claims()!.sub);
    expect(info.preferred_username).toBe('ada');

    expect(created.length).toBeGreaterThan(20);
    // A create cut off mid-flight may have been retried: the retry gets 409, never a second user.
    expect(statuses.filter((s) => s !== 201 && s !== 409 && s !== 0)).toEqual([]);
    for (const userName of created) expect(await countUsers(userName, alive[0]!)).toBe(1);
  });

  it('finishes in-flight requests and exits 0 on SIGTERM under load', async () => {
    const leaving = alive[1]!;
    const statuses: number[] = [];
    const stopped = (async () => {
      await new Promise((r) => setTimeout(r, 1000));
      const exit = leaving.stop('SIGTERM');
      const code = await exit;
      alive = alive.filter((n) => n !== leaving);
      return code;
    })();
    let running = true;
    void stopped.then(() => { running = false; });
    let i = 0;
    await Promise.all(Array.from({ length: 6 }, async () => {
      while (running) {
        try {
          const res = await createUser(`term-${i++}`);
          statuses.push(res.status);
        } catch {
          statuses.push(-1);
        }
      }
    }));
    expect(await stopped).toBe(0);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 201)).toEqual([]);
  });

  it('lets exactly one of many concurrent If-Match PATCHes of one user win', async () => {
    const res = await createUser('contended');
    const user = await res.json() as { id: string; meta: { version: string } };
    const etag = res.headers.get('etag') ?? user.meta.version;
    const results = await Promise.all(Array.from({ length: 8 }, (_, k) => scim('PATCH', `/Users/${user.id}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'title', value: `title-${k}` }],
    }, { 'if-match': etag })));
    const codes = results.map((r) => r.status);
    // RFC 7644 3.5.2: a successful PATCH answers 200 with the resource or 204.
    const won = (c: number) => c === 200 || c === 204;
    expect(codes.filter(won).length).toBe(1);
    expect(codes.filter((c) => c === 412).length).toBe(7);
    const winner = codes.findIndex(won);
    const final = await (await scim('GET', `/Users/${user.id}`)).json() as { title: string };
    expect(final.title).toBe(`title-${winner}`);
  });
});
