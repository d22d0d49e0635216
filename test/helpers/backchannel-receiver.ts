// Apps' OpenID Connect Back-Channel Logout endpoints on a port, one path per app: what each
// received, and answers an app can be told to give (503 while "down", a strict app's 400 at
// /strict). Used by the offboarding and suite sign-out tests.
import http from 'node:http';
import type net from 'node:net';

export interface BackchannelReceiver {
  origin: string;
  received: { path: string; token: string }[];
  /** Path -> how many of the next requests get 503. */
  failNext: Map<string, number>;
  close(): Promise<void>;
}

export async function startBackchannelReceiver(): Promise<BackchannelReceiver> {
  const received: BackchannelReceiver['received'] = [];
  const failNext = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => {
      const path = req.url ?? '/';
      const failing = failNext.get(path) ?? 0;
      if (failing > 0) {
        failNext.set(path, failing - 1);
        res.writeHead(503).end('down for maintenance');
        return;
      }
      const token = new URLSearchParams(body).get('logout_token');
      if (path === '/strict') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_request', error_description: 'unknown sid\u0007' }));
        return;
      }
      if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-www-form-urlencoded' || !token) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_request' }));
        return;
      }
      received.push({ path, token });
      res.writeHead(200, { 'cache-control': 'no-store' }).end();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`, received, failNext,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}
