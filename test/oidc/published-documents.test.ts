// The discovery document and the JWKS are built once by what follows the middleware (oidc-provider
// in the app) and then answered from memory; anything else passes through every time.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { publishedDocuments } from '../../src/oidc/published-documents.ts';

let server: http.Server;
let base: string;
const built: string[] = [];

beforeAll(async () => {
  const app = new Koa();
  app.use(publishedDocuments());
  app.use((ctx) => {
    built.push(`${ctx.method} ${ctx.path}`);
    if (ctx.path === '/broken') ctx.throw(500);
    if (ctx.path === '/jwks' && built.filter((b) => b.endsWith('/jwks')).length === 1) ctx.throw(503); // the first build fails
    ctx.body = { path: ctx.path, built: built.length };
    if (ctx.path === '/jwks') ctx.type = 'application/jwk-set+json; charset=utf-8';
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

it('builds the discovery document once, then answers the same bytes from memory', async () => {
  const first = await (await fetch(`${base}/.well-known/openid-configuration`)).text();
  const again = await fetch(`${base}/.well-known/openid-configuration`, { headers: { origin: 'https://rp.example' } });
  expect(await again.text()).toBe(first);
  expect(again.headers.get('access-control-allow-origin')).toBe('https://rp.example');
  expect((await fetch(`${base}/.well-known/openid-configuration`, { method: 'HEAD' })).status).toBe(200);
  // Whatever Origin a client sends, it is the same document: nothing is built or kept per origin.
  for (const origin of ['https://a.example', 'https://b.example', 'null']) {
    expect(await (await fetch(`${base}/.well-known/openid-configuration`, { headers: { origin } })).text()).toBe(first);
  }
  expect(built.filter((b) => b.endsWith('/openid-configuration'))).toEqual(['GET /.well-known/openid-configuration']);
});

it('does not keep a failed build, and keeps the content type of the one that succeeds', async () => {
  expect((await fetch(`${base}/jwks`)).status).toBe(503);
  const ok = await fetch(`${base}/jwks`);
  const body = await ok.text();
  const again = await fetch(`${base}/jwks`);
  expect(await again.text()).toBe(body);
  expect(again.headers.get('content-type')).toBe('application/jwk-set+json; charset=utf-8');
  expect(built.filter((b) => b.endsWith('/jwks'))).toHaveLength(2);
});

it('leaves other paths and methods to what follows, every time', async () => {
  const before = built.length;
  await fetch(`${base}/token`);
  await fetch(`${base}/token`);
  await fetch(`${base}/.well-known/openid-configuration`, { method: 'POST' });
  expect(built.slice(before)).toEqual(['GET /token', 'GET /token', 'POST /.well-known/openid-configuration']);
});
