// Starts the server: config -> db -> migrate -> keys -> app -> listen. Stops gracefully on SIGTERM.
import http from 'node:http';
import { loadConfig, ConfigError } from './config.ts';
import { createLogger } from './shared/logger.ts';
import { startRuntime } from './runtime.ts';
import { buildApp } from './app.ts';
import { AppError } from './shared/errors.ts';
import { createJobQueue, startBackground } from './jobs/background.ts';
import { BACKGROUND_FEATURES } from './jobs/features.ts';
import { compacting, idleCollector } from './shared/idle-gc.ts';
import { readServerSettings, serverSettingsWarnings } from './db/server-settings.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const runtime = await startRuntime(config, log, 'server');
  const { db } = runtime;
  if (!runtime.embedded) {
    for (const warning of serverSettingsWarnings(await readServerSettings(db))) log.warn({ event: 'db.settings' }, warning);
  }
  const jobs = createJobQueue(db, config, log, runtime.embedded);
  const { app, setup, clients, metrics, services } = await buildApp({ config, db, log, masterKey: runtime.masterKey, jobs });
  // Jobs (event relay, pushes to apps, webhooks, housekeeping) on the queue in the database.
  const background = await startBackground({ db, config, log, masterKey: runtime.masterKey, services, embedded: runtime.embedded, queue: jobs }, BACKGROUND_FEATURES);

  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 30000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ issuer: config.issuer, port, embedded: runtime.embedded }, 'OneID is listening');
  const { port: metricsPort, host: metricsHost } = config.metrics;
  const metricsServer = metricsPort === undefined ? undefined : await metrics.listen({ ...config.metrics, port: metricsPort });
  if (metricsServer) log.info({ host: metricsHost, port: metricsPort, bearerRequired: config.metrics.token !== undefined }, 'metrics listening');

  const token = await setup.issueTokenIfNeeded();
  if (token) {
    // Printed for the operator on purpose (not through the logger): a one-time link, valid 24 h.
    process.stderr.write(`\nNo administrator exists yet. Create the first one in your browser (one-time link, valid 24 hours):\n  ${config.issuer}/setup?token=${token}\n\n`);
  }

  // After a busy spell, one full garbage collection once requests have gone quiet (idle memory).
  const collector = idleCollector({
    minRequests: 1000, quietRequests: 10, windowMs: 10_000,
    gc: compacting((globalThis as { gc?: () => void }).gc),
    collected: (ms) => log.debug({ ms: Math.round(ms), heapMb: Math.round(process.memoryUsage().heapTotal / 2 ** 20) }, 'idle: garbage collected'),
  });
  collector.start();

  let stopping = false;
  // While stopping, responses not yet sent say Connection: close, so a kept-alive client or load
  // balancer moves to another node and the connection ends with its response instead of idling
  // for keepAliveTimeout (or taking new requests until the grace period cuts it).
  const unsent = new Set<http.ServerResponse>();
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    collector.request();
    if (stopping) {
      res.setHeader('Connection', 'close');
      return;
    }
    unsent.add(res);
    res.once('close', () => unsent.delete(res));
  });
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    for (const res of unsent) if (!res.headersSent) res.setHeader('Connection', 'close');
    collector.stop();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    const force = setTimeout(() => {
      log.warn('grace period over, closing remaining connections');
      server.closeAllConnections();
    }, config.shutdownGraceMs);
    force.unref();
    server.close(() => {
      background.stop(config.shutdownGraceMs).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'job queue did not stop cleanly'))
        .then(() => clients.close()).then(() => runtime.close()).then(() => {
        log.info('stopped');
        log.flush();
        process.exitCode = 0;
      }).catch((err: unknown) => {
        log.error({ err }, 'error while closing the database');
        process.exitCode = 1;
      });
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError || err instanceof AppError ? err.message : `failed to start: ${(err as Error)?.stack ?? String(err)}`;
  process.stderr.write(`oneid: ${message}\n`);
  process.exit(1);
});
