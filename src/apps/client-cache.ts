// The OIDC clients a node has read, kept in memory: every token, userinfo and authorization
// request names its client, and reading it from PostgreSQL each time was one statement per request.
//
// Nothing is served from here that PostgreSQL no longer holds:
//   - A trigger on `apps` (migration 20261130140000) sends the client_id of every changed app on
//     the channel oneid_app_changed at commit; each node LISTENs on its own connection and
//     forgets that client. Writes from any node, the CLI or plain SQL are covered.
//   - This node's own writes (apps.repo) forget the client at once, and again at commit, so an
//     admin who rotates a secret can use the new one on the same node at once.
//   - While the listening connection is down, nothing is cached: every lookup reads PostgreSQL.
//     When it is back, the cache starts empty (notifications sent meanwhile are lost).
//   - A read that started before a change and ends after it is not cached (generation counter).
//   - Entries are read again after `maxAgeMs` anyway, and unknown client ids are never cached.
// The embedded database has one process (the CLI refuses to run beside a server), so its own
// writes are all there is to hear and the cache is always on.
import pg from 'pg';
import type { Knex } from 'knex';
import type { Logger } from '../shared/logger.ts';
import type { Tx } from '../db/knex.ts';

export const APP_CHANGED_CHANNEL = 'oneid_app_changed';

const caches = new Set<ClientCache>();

/**
 * A write of this node changed the app with `clientId`: forget it in every cache of the process,
 * now and (inside a transaction) again once the transaction has committed.
 */
export function appChanged(db: Tx, clientId: string): void {
  for (const cache of caches) cache.invalidate(clientId);
  const trx = db as Partial<Knex.Transaction>;
  if (trx.isTransaction && trx.executionPromise) {
    trx.executionPromise.then(() => { for (const cache of caches) cache.invalidate(clientId); }, () => undefined);
  }
}

interface Entry<T> { value: T; at: number }

export interface ClientCacheOptions {
  /** PostgreSQL to LISTEN on; undefined for the embedded database. */
  databaseUrl?: string;
  log: Logger;
  maxAgeMs?: number;
  maxEntries?: number;
}

export class ClientCache<T = unknown> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #log: Logger;
  readonly #databaseUrl: string | undefined;
  readonly #maxAgeMs: number;
  readonly #maxEntries: number;
  #generation = 0;
  #live: boolean;
  #listener: pg.Client | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 500;
  #closed = false;

  constructor(opts: ClientCacheOptions) {
    this.#log = opts.log;
    this.#databaseUrl = opts.databaseUrl;
    this.#maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.#maxEntries = opts.maxEntries ?? 10_000;
    this.#live = !opts.databaseUrl;
    caches.add(this);
  }

  /** True while entries are kept (the listener is connected, or the database is embedded). */
  get live(): boolean {
    return this.#live;
  }

  /** Starts listening (PostgreSQL only). Resolves once the first attempt has succeeded or failed. */
  async start(): Promise<void> {
    if (this.#databaseUrl) await this.#connect();
  }

  async get(clientId: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const hit = this.#entries.get(clientId);
    if (hit && Date.now() - hit.at < this.#maxAgeMs) return hit.value;
    const generation = this.#generation;
    const value = await load();
    if (value !== undefined && this.#live && generation === this.#generation) {
      this.#entries.delete(clientId);
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(clientId, { value, at: Date.now() });
    }
    return value;
  }

  invalidate(clientId: string): void {
    this.#generation += 1;
    this.#entries.delete(clientId);
  }

  #clear(): void {
    this.#generation += 1;
    this.#entries.clear();
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#databaseUrl, application_name: 'oneid-listener', keepAlive: true, connectionTimeoutMillis: 5000 });
    const down = (reason: string): void => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      this.#live = false;
      this.#clear();
      client.removeAllListeners('notification');
      client.end().catch(() => undefined);
      if (this.#closed) return;
      this.#log.warn({ reason, retryInMs: this.#retryMs }, 'client cache off: lost the app change listener');
      this.#retry = setTimeout(() => { void this.#connect(); }, this.#retryMs);
      this.#retry.unref();
      this.#retryMs = Math.min(this.#retryMs * 2, 10_000);
    };
    this.#listener = client;
    client.on('error', (err) => down(err.message));
    client.on('end', () => down('connection ended'));
    client.on('notification', (n) => {
      if (n.channel === APP_CHANGED_CHANNEL && n.payload) this.invalidate(n.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${APP_CHANGED_CHANNEL}`);
      if (this.#listener !== client || this.#closed) return;
      this.#clear();
      this.#live = true;
      this.#retryMs = 500;
    } catch (err) {
      down((err as Error).message);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    caches.delete(this);
    clearTimeout(this.#retry);
    this.#live = false;
    this.#clear();
    const client = this.#listener;
    this.#listener = undefined;
    if (client) await client.end().catch(() => undefined);
  }
}
