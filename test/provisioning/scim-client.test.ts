// OneID's SCIM client against two real downstream SCIM servers on ports: a third-party-style app
// built on SCIMMY (with fault injection) and a second OneID with its own database. Transport
// failures (redirect, timeout, endless body, echoed token) use tiny node:http servers.
import http from 'node:http';
import type net from 'node:net';
import {
  ScimClient, ScimClientError, ScimConflict, isPatchRefusal, parseRetryAfter, scimFilterEq, type ScimClientOptions,
} from '../../src/provisioning/scim-client.ts';
import { ScimmyApp } from '../helpers/scim-app.ts';
import { startDownstreamOneId, type DownstreamOneId } from '../helpers/downstream-oneid.ts';

let scimmy: ScimmyApp;
let oneid: DownstreamOneId;
/** Every token used in this file: none may appear in any error a test sees. */
const tokens: string[] = [];

beforeAll(async () => {
  scimmy = new ScimmyApp();
  [oneid] = await Promise.all([startDownstreamOneId(), scimmy.start()]);
  tokens.push(scimmy.token, oneid.token);
}, 120000);

afterAll(async () => {
  await scimmy?.stop();
  await oneid?.stop();
});

/** The rejection of `promise`, checked to be a ScimClientError that names no token. */
async function failure(promise: Promise<unknown>): Promise<ScimClientError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ScimClientError);
  const e = err as ScimClientError;
  const everything = `${e.message} ${e.stack} ${JSON.stringify(e)} ${String(e.detail)}`;
  for (const t of tokens) expect(everything).not.toContain(t);
  return e;
}

const unique = (label: string) => `${label}.${Math.random().toString(36).slice(2, 8)}`;

/** A throwaway HTTP server for answers no SCIM app should give. */
async function rawServer(handler: http.RequestListener): Promise<{ url: string; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => { hits += 1; handler(req, res); });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/scim/v2`,
    hits: () => hits,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const downstreams: [string, () => ScimClientOptions][] = [
  ['the SCIMMY app', () => ({ baseUrl: scimmy.url, token: scimmy.token })],
  ['a second OneID', () => ({ baseUrl: oneid.scimUrl, token: oneid.token })],
];

describe.each(downstreams)('ScimClient against %s', (_name, options) => {
  const client = () => new ScimClient(options());

  it('creates a user, reads it back and finds it by userName and by externalId', async () => {
    const userName = `${unique('ada')}@example.com`;
    const externalId = unique('person');
    const created = await client().createUser({ userName, externalId, active: true, name: { givenName: 'Ada', familyName: 'Lovelace' } });
    expect(created.id).toEqual(expect.any(String));
    expect(created).toMatchObject({ userName, externalId, active: true });

    expect(await client().getUser(created.id)).toMatchObject({ id: created.id, userName, name: { givenName: 'Ada' } });
    expect((await client().findUserBy('userName', userName))?.id).toBe(created.id);
    expect((await client().findUserBy('externalId', externalId))?.id).toBe(created.id);
    expect(await client().findUserBy('userName', `${unique('nobody')}@example.com`)).toBeUndefined();
  });

  it('reports a second create of the same userName as ScimConflict, and the first user is found to adopt', async () => {
    const userName = `${unique('grace')}@example.com`;
    const first = await client().createUser({ userName, externalId: unique('p') });
    const err = await failure(client().createUser({ userName, externalId: unique('p') }));
    expect(err).toBeInstanceOf(ScimConflict);
    expect(err).toMatchObject({ status: 409, scimType: 'uniqueness', retryable: false, code: 'provisioning.scim_conflict', kind: 'failed_precondition' });
    expect((await client().findUserBy('userName', userName))?.id).toBe(first.id);
    const all = [];
    for await (const u of client().listUsers({ filter: scimFilterEq('userName', userName) })) all.push(u);
    expect(all).toHaveLength(1);
  });

  it('patches attributes, deactivates with active:false, replaces with PUT and deletes', async () => {
    const userName = `${unique('alan')}@example.com`;
    const u = await client().createUser({ userName, active: true, displayName: 'Alan T', name: { givenName: 'Alan', familyName: 'Turing' } });

    await client().patchUser(u.id, [{ op: 'replace', path: 'displayName', value: 'Alan Turing' }]);
    expect(await client().getUser(u.id)).toMatchObject({ displayName: 'Alan Turing', active: true });

    await client().patchUser(u.id, [{ op: 'replace', path: 'active', value: false }]);
    expect((await client().getUser(u.id)).active).toBe(false);

    const replaced = await client().replaceUser(u.id, { userName, active: true, displayName: 'A. M. Turing', name: { givenName: 'Alan', familyName: 'Turing' } });
    expect(replaced).toMatchObject({ id: u.id, displayName: 'A. M. Turing', active: true });

    await client().deleteUser(u.id);
    const gone = await failure(client().getUser(u.id));
    expect(gone).toMatchObject({ status: 404, code: 'provisioning.scim_not_found', retryable: false });
  });

  it('lists users page by page until every matching user is seen once', async () => {
    const prefix = unique('page');
    const made = await Promise.all(Array.from({ length: 7 }, (_, i) => client().createUser({ userName: `${prefix}.${i}@example.com` })));
    const seen: string[] = [];
    for await (const u of client().listUsers({ pageSize: 3, filter: `userName sw ${JSON.stringify(prefix)}` })) seen.push(u.id);
    expect(seen.sort()).toEqual(made.map((u) => u.id).sort());
  });

  it('creates a group, adds and removes members in batches, renames it and deletes it', async () => {
    const people = await Promise.all(Array.from({ length: 5 }, () => client().createUser({ userName: `${unique('member')}@example.com` })));
    const ids = people.map((p) => p.id);
    const displayName = unique('Engineering');
    const group = await client().createGroup({ displayName, externalId: unique('g'), members: [] });
    expect((await client().findGroupBy('displayName', displayName))?.id).toBe(group.id);

    const batched = new ScimClient({ ...options(), maxMembersPerRequest: 2 });
    await batched.addGroupMembers(group.id, ids);
    expect((await client().getGroup(group.id)).members?.map((m) => m.value).sort()).toEqual([...ids].sort());
    await batched.removeGroupMembers(group.id, ids.slice(0, 3));
    expect((await client().getGroup(group.id)).members?.map((m) => m.value).sort()).toEqual(ids.slice(3).sort());

    await client().patchGroup(group.id, [{ op: 'replace', path: 'displayName', value: `${displayName} (renamed)` }]);
    const replaced = await client().replaceGroup(group.id, { displayName: `${displayName} (renamed)`, members: [{ value: ids[0]! }] });
    expect(replaced.members?.map((m) => m.value)).toEqual([ids[0]]);
    await client().deleteGroup(group.id);
    expect(await failure(client().getGroup(group.id))).toMatchObject({ status: 404 });
  });

  it('answers a wrong token with a non-retryable 401 that does not quote the token', async () => {
    const wrong = `wrong-${unique('t')}`;
    tokens.push(wrong);
    const err = await failure(new ScimClient({ ...options(), token: wrong }).getUser('some-id'));
    expect(err).toMatchObject({ status: 401, retryable: false, kind: 'failed_precondition' });
  });
});

describe('the SCIMMY app refusing and failing', () => {
  const client = (extra: Partial<ScimClientOptions> = {}) => new ScimClient({ baseUrl: scimmy.url, token: scimmy.token, ...extra });
  afterEach(async () => {
    scimmy.refusePatch(false);
    scimmy.maxMembersPerRequest(undefined);
    scimmy.failNext(0, 200);
    await scimmy.up();
  });

  it('signals patchUnsupported when PATCH answers 501, and PUT still updates the user', async () => {
    const userName = `${unique('nopatch')}@example.com`;
    const u = await client().createUser({ userName, active: true });
    scimmy.refusePatch(true);
    const err = await failure(client().patchUser(u.id, [{ op: 'replace', path: 'active', value: false }]));
    expect(err).toMatchObject({ status: 501, patchUnsupported: true, retryable: true, code: 'provisioning.scim_patch_unsupported' });
    await client().replaceUser(u.id, { userName, active: false });
    expect(scimmy.users.get(u.id)?.active).toBe(false);
  });

  it('sends 250 members in PATCH batches of 100 that an app limited to 100 accepts, and removes them the same way', async () => {
    const people = await Promise.all(Array.from({ length: 250 }, (_, i) => client().createUser({ userName: `${unique('bulk')}.${i}@example.com` })));
    const group = await client().createGroup({ displayName: unique('All staff') });
    scimmy.maxMembersPerRequest(100);
    const before = scimmy.requests.length;
    await client().addGroupMembers(group.id, people.map((p) => p.id));
    const patches = scimmy.requests.slice(before).filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(scimmy.groups.get(group.id)?.members).toHaveLength(250);

    // The limit is real: one request with all of them is refused, and nothing more is added.
    const other = await client().createGroup({ displayName: unique('Everyone') });
    const refused = await failure(client({ maxMembersPerRequest: 1000 }).addGroupMembers(other.id, people.map((p) => p.id)));
    expect(refused).toMatchObject({ status: 400, retryable: false, patchUnsupported: false });
    expect(scimmy.groups.get(other.id)?.members ?? []).toHaveLength(0);

    await client().removeGroupMembers(group.id, people.slice(0, 150).map((p) => p.id));
    expect(scimmy.groups.get(group.id)?.members?.map((m: { value: string }) => m.value).sort()).toEqual(people.slice(150).map((p) => p.id).sort());
  });

  it('pages over more than one page, with startIndex advancing', async () => {
    const prefix = unique('drift');
    await Promise.all(Array.from({ length: 5 }, (_, i) => client().createUser({ userName: `${prefix}.${i}@example.com` })));
    const before = scimmy.requests.length;
    const names: string[] = [];
    for await (const u of client().listUsers({ pageSize: 2, filter: `userName sw ${JSON.stringify(prefix)}` })) names.push(u.userName);
    expect(names.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `${prefix}.${i}@example.com`));
    const starts = scimmy.requests.slice(before).map((r) => new URL(r.path, 'http://x').searchParams.get('startIndex'));
    expect(starts).toEqual(['1', '3', '5']);
  });

  it('classifies 503 (with Retry-After), 429, 408 and 425 as retryable and 400 as not', async () => {
    scimmy.failNext(1, 503, { retryAfter: '7' });
    expect(await failure(client().getUser('x'))).toMatchObject({ status: 503, retryable: true, retryAfterMs: 7000, kind: 'unavailable' });
    scimmy.failNext(1, 429, { retryAfter: '2' });
    expect(await failure(client().getUser('x'))).toMatchObject({ status: 429, retryable: true, retryAfterMs: 2000, kind: 'unavailable' });
    for (const status of [408, 425, 500, 502]) {
      scimmy.failNext(1, status);
      expect(await failure(client().getUser('x'))).toMatchObject({ status, retryable: true });
    }
    scimmy.failNext(1, 400);
    expect(await failure(client().getUser('x'))).toMatchObject({ status: 400, retryable: false });
    // A real 400 from the app's own rules: a member that does not exist there.
    const group = await client().createGroup({ displayName: unique('Strict') });
    const bad = await failure(client().addGroupMembers(group.id, ['no-such-user']));
    expect(bad).toMatchObject({ status: 400, scimType: 'invalidValue', retryable: false, patchUnsupported: false });
    expect(bad.detail).toContain('no-such-user');
  });

  it('reports a refused connection as a retryable network error, and works again once the app is back', async () => {
    await scimmy.down();
    const err = await failure(client().createUser({ userName: `${unique('down')}@example.com` }));
    expect(err).toMatchObject({ status: undefined, retryable: true, code: 'provisioning.scim_network' });
    // The first request may meet a kept-alive socket the app closed (UND_ERR_SOCKET); the next one is refused.
    expect(await failure(client().getUser('x'))).toMatchObject({ status: undefined, retryable: true, detail: 'ECONNREFUSED' });
    await scimmy.up();
    expect((await client().createUser({ userName: `${unique('back')}@example.com` })).id).toEqual(expect.any(String));
  });

  it('refuses an answer larger than maxResponseBytes (declared length)', async () => {
    const prefix = unique('big');
    await Promise.all(Array.from({ length: 20 }, (_, i) => client().createUser({ userName: `${prefix}.${i}@example.com`, displayName: 'x'.repeat(200) })));
    const err = await failure((async () => {
      for await (const _u of client({ maxResponseBytes: 2048 }).listUsers({ filter: `userName sw ${JSON.stringify(prefix)}` })) { /* drain */ }
    })());
    expect(err).toMatchObject({ code: 'provisioning.scim_too_large', retryable: false });
  });
});

describe('transport safety', () => {
  it('refuses a redirect without following it, naming the status', async () => {
    const target = await rawServer((_req, res) => res.end('{}'));
    const redirecting = await rawServer((_req, res) => { res.writeHead(307, { location: `${target.url}/Users/1` }); res.end(); });
    try {
      const err = await failure(new ScimClient({ baseUrl: redirecting.url, token: scimmy.token }).getUser('1'));
      expect(err).toMatchObject({ status: 307, retryable: false, code: 'provisioning.scim_redirect' });
      expect(err.message).toContain('307');
      expect(target.hits()).toBe(0);
    } finally {
      await Promise.all([target.close(), redirecting.close()]);
    }
  });

  it('gives up after timeoutMs on an app that never answers or never finishes its body, as a retryable timeout', async () => {
    const silent = await rawServer(() => { /* never answers */ });
    try {
      const started = Date.now();
      const err = await failure(new ScimClient({ baseUrl: silent.url, token: scimmy.token, timeoutMs: 300 }).getUser('1'));
      expect(err).toMatchObject({ code: 'provisioning.scim_timeout', retryable: true, status: undefined });
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await silent.close();
    }
    // The timeout covers the body too: headers at once, then a body that never ends.
    const stalling = await rawServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/scim+json' }); res.write('{"id":'); });
    try {
      const err = await failure(new ScimClient({ baseUrl: stalling.url, token: scimmy.token, timeoutMs: 300 }).getUser('1'));
      expect(err).toMatchObject({ code: 'provisioning.scim_timeout', retryable: true });
    } finally {
      await stalling.close();
    }
  });

  it('stops reading an endless body at maxResponseBytes instead of buffering it', async () => {
    let sent = 0;
    const endless = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/scim+json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => { while (!res.destroyed && res.write(chunk)) sent += chunk.length; if (!res.destroyed) res.once('drain', pump); };
      res.write('{"id":"1","pad":"');
      pump();
    });
    try {
      const err = await failure(new ScimClient({ baseUrl: endless.url, token: scimmy.token, maxResponseBytes: 256 * 1024 }).getUser('1'));
      expect(err).toMatchObject({ code: 'provisioning.scim_too_large', status: 200, retryable: false });
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await endless.close();
    }
  });

  it('never repeats the token, even when the app echoes the Authorization header in its error', async () => {
    const echo = await rawServer((req, res) => {
      res.writeHead(400, { 'content-type': 'application/scim+json' });
      res.end(JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '400', detail: `bad request with ${req.headers.authorization}` }));
    });
    try {
      const err = await failure(new ScimClient({ baseUrl: echo.url, token: scimmy.token }).createUser({ userName: 'x@example.com' }));
      expect(err.detail).toBe('bad request with Bearer [redacted]');
    } finally {
      await echo.close();
    }
  });

  it('accepts application/json answers and refuses answers of another type', async () => {
    const plain = await rawServer((req, res) => {
      const html = req.url?.includes('html');
      res.writeHead(200, { 'content-type': html ? 'text/html' : 'application/json; charset=utf-8' });
      res.end(html ? '<html>login</html>' : JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], id: 'u1', userName: 'a' }));
    });
    try {
      const c = new ScimClient({ baseUrl: plain.url, token: scimmy.token });
      expect((await c.getUser('u1')).id).toBe('u1');
      expect(await failure(c.getUser('html'))).toMatchObject({ code: 'provisioning.scim_bad_response', retryable: false });
    } finally {
      await plain.close();
    }
  });

  it('refuses base URLs that are not http(s) or that carry credentials, and ids that would move the path', async () => {
    for (const baseUrl of ['ftp://app.example/scim', 'file:///etc/passwd', 'https://user:pw@app.example/scim', 'not a url']) {
      expect(() => new ScimClient({ baseUrl, token: 't' })).toThrow(expect.objectContaining({ code: 'provisioning.scim_bad_url' }));
    }
    expect(() => new ScimClient({ baseUrl: 'https://app.example/scim', token: 'a\r\nX-Evil: 1' })).toThrow(expect.objectContaining({ code: 'provisioning.scim_bad_token' }));
    const c = new ScimClient({ baseUrl: scimmy.url, token: scimmy.token });
    await expect(c.getUser('..')).rejects.toMatchObject({ code: 'provisioning.scim_bad_id' });
  });
});

describe('filters and rules', () => {
  it('escapes quotes and backslashes in filter values, and a second OneID finds such an externalId', async () => {
    expect(scimFilterEq('userName', 'a"b\\c')).toBe('userName eq "a\\"b\\\\c"');
    const externalId = `odd "quoted" \\ ${unique('id')}`;
    const c = new ScimClient({ baseUrl: oneid.scimUrl, token: oneid.token });
    const u = await c.createUser({ userName: `${unique('odd')}@example.com`, externalId });
    expect((await c.findUserBy('externalId', externalId))?.id).toBe(u.id);
    expect(await c.findUserBy('externalId', externalId.replace('\\', ''))).toBeUndefined();
  });

  it('counts 501, 405 and a 400 saying "not supported" as a PATCH refusal, and not other 400s', () => {
    expect(isPatchRefusal(501, undefined)).toBe(true);
    expect(isPatchRefusal(405, undefined)).toBe(true);
    expect(isPatchRefusal(400, 'Operation add is not supported')).toBe(true);
    expect(isPatchRefusal(400, 'PATCH unsupported for Groups')).toBe(true);
    expect(isPatchRefusal(400, 'userName is required')).toBe(false);
    expect(isPatchRefusal(400, undefined)).toBe(false);
    expect(isPatchRefusal(404, 'not supported')).toBe(false);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
