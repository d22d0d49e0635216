// A TCP proxy a test can cut and restore, to play a database outage without touching the
// shared PostgreSQL server.
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Drops every connection and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = () => new Promise<void>((resolve, reject) => {
    server = net.createServer((downstream) => {
      const upstream = net.connect(targetPort, targetHost);
      sockets.add(downstream);
      sockets.add(upstream);
      const drop = () => { downstream.destroy(); upstream.destroy(); sockets.delete(downstream); sockets.delete(upstream); };
      downstream.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      downstream.pipe(upstream).pipe(downstream);
    });
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      port = (server!.address() as net.AddressInfo).port;
      resolve();
    });
  });
  const stop = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    if (!server) return resolve();
    server.close(() => resolve());
    server = undefined;
  });
  await listen();
  return { get port() { return port; }, cut: stop, restore: listen, close: stop };
}
