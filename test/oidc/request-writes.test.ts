// The token endpoint's writes are recorded during the request and written at its end, only when
// it succeeded; a lost race answers invalid_grant in OAuth's JSON; nothing else is touched.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { requestWrites, type WithPendingWrites } from '../../src/oidc/request-writes.ts';
import { sendsWritesTogether } from '../../src/oidc/provider.ts';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';

let mdb: MigratedDatabase;
let db: Knex;
let server: http.Server;
let base: string;

beforeAll(async () => {
  mdb = await createMigratedDatabase('oneid_test_request_writes');
  db = mdb.db;
  const app = new Koa();
  app.use(requestWrites(db, pino({ level: 'silent' }), (method, path) => method === 'POST' && path === '/token'));
  // Stands in for oidc-provider: records what the adapter would, then answers as told.
  app.use(async (ctx) => {
    const writes = (ctx.state as WithPendingWrites).oidcWrites;
    ctx.set('x-recording', String(Boolean(writes)));
    const id = String(ctx.query.id);
    if (ctx.query.consume) writes?.consume('RefreshToken', String(ctx.query.consume));
    writes?.upsert('AccessToken', id, { kind: 'AccessToken', jti: id }, 60);
    ctx.status = Number(ctx.query.status ?? 200);
    ctx.body = { access_token: id };
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await mdb?.close();
});

const stored = async (id: string) => Boolean(await db('oidc_payloads').where({ model: 'AccessToken', id }).first());
const post = (query: string) => fetch(`${base}/token?${query}`, { method: 'POST' });

it('writes what a successful token request recorded, once the response is ready', async () => {
  const res = await post('id=at-ok');
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ access_token: 'at-ok' });
  expect(await stored('at-ok')).toBe(true);
});

it('writes nothing for a refused request', async () => {
  for (const status of [400, 401, 500]) {
    expect((await post(`id=at-${status}&status=${status}`)).status).toBe(status);
    expect(await stored(`at-${status}`)).toBe(false);
  }
});

it('answers invalid_grant, not the tokens, when the token to consume is already used', async () => {
  await db('oidc_payloads').insert({ model: 'RefreshToken', id: 'rt-used', payload: {}, consumed_at: db.fn.now() });
  const res = await post('id=at-lost&consume=rt-used');
  expect(res.status).toBe(400);
  expect(await res.json()).toEqual({ error: 'invalid_grant', error_description: 'grant request is invalid' });
  expect(await stored('at-lost')).toBe(false);
});

it('records only at the token endpoint, and only for POST', async () => {
  expect((await fetch(`${base}/token?id=at-get`)).headers.get('x-recording')).toBe('false');
  expect((await fetch(`${base}/token/x?id=at-sub`, { method: 'POST' })).headers.get('x-recording')).toBe('false');
  expect((await post('id=at-rec')).headers.get('x-recording')).toBe('true');
});

it('is used by the app for the token endpoint and the resume after sign-in, nothing else', () => {
  expect(sendsWritesTogether('POST', '/token')).toBe(true);
  expect(sendsWritesTogether('GET', '/auth/Zx8Qk2uid')).toBe(true);
  for (const [method, path] of [['GET', '/token'], ['GET', '/auth'], ['POST', '/auth'], ['POST', '/token/introspection'],
    ['GET', '/me'], ['POST', '/interaction/uid/login'], ['GET', '/session/end']]) {
    expect(sendsWritesTogether(method!, path!)).toBe(false);
  }
});
