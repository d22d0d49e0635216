// The passkey scripts OneID's pages load: served from OneID itself (the pages' CSP allows no
// other script source), as JavaScript a browser will not sniff as anything else, cacheable.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { assetsRouter } from '../../src/login/assets.routes.ts';

let server: http.Server;
let base: string;

beforeAll(async () => {
  const app = new Koa();
  app.use(assetsRouter().routes());
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** A browser's conditional GET (fetch() would add Cache-Control: no-cache, which forbids a 304). */
function revalidate(url: string, etag: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { 'if-none-match': etag } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('GET /assets/*.js', () => {
  it.each([
    ['/assets/webauthn.js', /SimpleWebAuthnBrowser/],
    ['/assets/passkey.js', /data-passkey/],
  ])('serves %s as cacheable JavaScript, not sniffable', async (path, content) => {
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const body = await res.text();
    expect(body).toMatch(content);

    // The ETag lets a browser revalidate without downloading the script again.
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await revalidate(`${base}${path}`, etag);
    expect(again).toEqual({ status: 304, body: '' });
    const head = await fetch(`${base}${path}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('application/javascript; charset=utf-8');
  });

  it('serves the @simplewebauthn/browser release OneID is built with', async () => {
    const body = await (await fetch(`${base}/assets/webauthn.js`)).text();
    expect(body.startsWith('/* [@simplewebauthn/browser@14.')).toBe(true);
  });

  it('serves nothing else under /assets', async () => {
    for (const path of ['/assets/', '/assets/passkey.js.map', '/assets/../package.json', '/assets/%2e%2e/package.json']) {
      expect((await fetch(`${base}${path}`)).status).toBe(404);
    }
  });
});
