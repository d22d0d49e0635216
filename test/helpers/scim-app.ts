// A small third-party-style SCIM 2.0 app on a port: SCIMMY (a SCIM library nobody here wrote)
// parses resources, evaluates filters, pages lists and applies PATCH; this file adds an in-memory
// store, node:http routing, a bearer-token check, uniqueness rules, and fault injection for the
// provisioning tests:
//   down() / up()          the app is unreachable: the listening socket is closed (connection
//                          refused), as when the app's host is down; failNext(n, 503) covers a
//                          proxy answering 503 instead
//   failNext(n, status)    the next n requests get `status` with a SCIM error (and Retry-After)
//   refusePatch(on)        PATCH answers 501 with a SCIM error, like apps without PATCH
//   maxMembersPerRequest   a request carrying more group members gets 400 (AWS IAM Identity Center)
//   requests               method, path (with query) and status of each request answered
//   users / groups         the stored resources, to change something behind OneID's back
//
// Known SCIMMY 1.3.5 limit: its filter tokenizer does not read a \" escape inside a string
// (`userName eq "a\"b"` is a 400 invalidFilter); escaping is exercised against OneID instead.
// SCIMMY's resource handlers are process-wide statics: each request passes its app as the
// handlers' ctx, so several apps may run in one test process (meta.location follows the last
// request's app).
import http from 'node:http';
import type net from 'node:net';
import { randomUUID } from 'node:crypto';
import SCIMMY from 'scimmy';

const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
const MAX_BODY = 5 * 1024 * 1024;

export type StoredResource = Record<string, any> & { id: string; meta: { resourceType: string; created: string; lastModified: string } };
export interface LoggedRequest { method: string; path: string; status: number }

class HttpError extends Error {
  constructor(readonly status: number, readonly scimType: string | undefined, detail: string, readonly headers: Record<string, string> = {}) {
    super(detail);
  }
}

const conflict = (detail: string) => new SCIMMY.Types.Error(409, 'uniqueness', detail);
// A JSON copy, not structuredClone: under jest's vm realm, structuredClone's objects fail
// SCIMMY's `instanceof Object` checks.
const copy = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const sameText = (a: unknown, b: unknown) => typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();

/** Writes a resource SCIMMY has coerced ("in") into the app's store: create when no id, else replace. */
function store(kind: 'User' | 'Group', map: Map<string, StoredResource>, id: string | undefined, instance: unknown): StoredResource {
  const data = JSON.parse(JSON.stringify(instance)) as Record<string, any>;
  const existing = id === undefined ? undefined : map.get(id);
  if (id !== undefined && !existing) throw new SCIMMY.Types.Error(404, null as unknown as string, `Resource ${id} not found`);
  const now = new Date().toISOString();
  const record: StoredResource = { ...data, id: id ?? randomUUID(), meta: { resourceType: kind, created: existing?.meta.created ?? now, lastModified: now } };
  map.set(record.id, record);
  return copy(record);
}

function fetchFrom(map: Map<string, StoredResource>, resource: { id?: string; filter?: { match(v: object[]): object[] } }): StoredResource | StoredResource[] {
  if (resource.id !== undefined) {
    const found = map.get(resource.id);
    if (!found) throw new SCIMMY.Types.Error(404, null as unknown as string, `Resource ${resource.id} not found`);
    return copy(found);
  }
  const all = [...map.values()].map(copy);
  return resource.filter ? (resource.filter.match(all) as StoredResource[]) : all;
}

let declared = false;
/** SCIMMY's handlers, declared once per process; ctx is the ScimmyApp of the request. */
function declareResources(): void {
  if (declared) return;
  declared = true;
  const User = SCIMMY.Resources.User as any;
  const Group = SCIMMY.Resources.Group as any;
  SCIMMY.Resources.declare(User);
  SCIMMY.Resources.declare(Group);
  User.ingress((resource: { id?: string }, instance: any, app: ScimmyApp) => {
    for (const other of app.users.values()) {
      if (other.id !== resource.id && sameText(other.userName, instance.userName)) throw conflict(`userName ${instance.userName} is already taken`);
    }
    return store('User', app.users, resource.id, instance);
  });
  User.egress((resource: any, app: ScimmyApp) => fetchFrom(app.users, resource));
  User.degress((resource: { id: string }, app: ScimmyApp) => {
    if (!app.users.delete(resource.id)) throw new SCIMMY.Types.Error(404, null as unknown as string, `Resource ${resource.id} not found`);
    for (const g of app.groups.values()) if (Array.isArray(g.members)) g.members = g.members.filter((m: { value: string }) => m.value !== resource.id);
  });
  Group.ingress((resource: { id?: string }, instance: any, app: ScimmyApp) => {
    for (const other of app.groups.values()) {
      if (other.id !== resource.id && sameText(other.displayName, instance.displayName)) throw conflict(`displayName ${instance.displayName} is already taken`);
    }
    for (const m of (instance.members ?? []) as { value: string }[]) {
      if (!app.users.has(m.value)) throw new SCIMMY.Types.Error(400, 'invalidValue', `No user ${m.value} to add to the group`);
    }
    return store('Group', app.groups, resource.id, instance);
  });
  Group.egress((resource: any, app: ScimmyApp) => fetchFrom(app.groups, resource));
  Group.degress((resource: { id: string }, app: ScimmyApp) => {
    if (!app.groups.delete(resource.id)) throw new SCIMMY.Types.Error(404, null as unknown as string, `Resource ${resource.id} not found`);
  });
}

/** How many group members a request carries, as AWS counts them. */
function membersIn(method: string, body: any): number {
  if (!body || typeof body !== 'object') return 0;
  if (method !== 'PATCH') return Array.isArray(body.members) ? body.members.length : 0;
  let n = 0;
  for (const op of Array.isArray(body.Operations) ? body.Operations : []) {
    const path = typeof op?.path === 'string' ? op.path : '';
    if (path.startsWith('members[')) n += 1;
    else if (path === 'members') n += Array.isArray(op.value) ? op.value.length : 0;
    else if (!path && Array.isArray(op?.value?.members)) n += op.value.members.length;
  }
  return n;
}

export class ScimmyApp {
  readonly token: string;
  readonly users = new Map<string, StoredResource>();
  readonly groups = new Map<string, StoredResource>();
  readonly requests: LoggedRequest[] = [];
  private server: http.Server | undefined;
  private port = 0;
  private failures: { left: number; status: number; retryAfter?: string } | undefined;
  private patchRefused = false;
  private memberLimit: number | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(options: { token?: string } = {}) {
    this.token = options.token ?? `scimmy-${randomUUID()}`;
    declareResources();
  }

  /** The SCIM base URL, e.g. http://127.0.0.1:PORT/scim/v2. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/scim/v2`;
  }

  /** Listens on a free port (or the last one, after down()) and returns the base URL. */
  async start(): Promise<string> {
    const server = http.createServer((req, res) => { void this.handle(req, res); });
    server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Connection refused until up(): the port is closed and open connections are cut. */
  down(): Promise<void> {
    return this.stop();
  }

  async up(): Promise<void> {
    if (!this.server) await this.start();
  }

  /** The next n requests (whatever they are) answer `status`; n = 0 clears. */
  failNext(n: number, status: number, options: { retryAfter?: string } = {}): void {
    this.failures = n > 0 ? { left: n, status, retryAfter: options.retryAfter } : undefined;
  }

  refusePatch(on: boolean): void {
    this.patchRefused = on;
  }

  /** undefined: no limit. */
  maxMembersPerRequest(n: number | undefined): void {
    this.memberLimit = n;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    const method = req.method ?? 'GET';
    res.on('finish', () => this.requests.push({ method, path: `${url.pathname}${url.search}`, status: res.statusCode }));
    try {
      if (this.failures) {
        const { status, retryAfter } = this.failures;
        if (--this.failures.left <= 0) this.failures = undefined;
        throw new HttpError(status, undefined, `Injected failure ${status}`, retryAfter ? { 'retry-after': retryAfter } : {});
      }
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        throw new HttpError(401, undefined, 'A valid bearer token is required', { 'www-authenticate': 'Bearer' });
      }
      const match = /^\/scim\/v2\/(Users|Groups)(?:\/([^/]+))?$/.exec(url.pathname);
      if (!match) throw new HttpError(404, undefined, 'No such endpoint');
      const Resource = (match[1] === 'Users' ? SCIMMY.Resources.User : SCIMMY.Resources.Group) as any;
      Resource.basepath(this.url);
      const id = match[2] === undefined ? undefined : decodeURIComponent(match[2]);
      const body = ['POST', 'PUT', 'PATCH'].includes(method) ? await readJson(req) : undefined;

      if (method === 'PATCH' && this.patchRefused) throw new HttpError(501, undefined, 'PATCH is not supported by this app');
      if (this.memberLimit !== undefined && match[1] === 'Groups' && membersIn(method, body) > this.memberLimit) {
        throw new HttpError(400, 'invalidValue', `Request carries ${membersIn(method, body)} members; at most ${this.memberLimit} are allowed per request`);
      }

      if (method === 'GET' && id === undefined) {
        const params: Record<string, unknown> = {};
        for (const key of ['filter', 'attributes', 'excludedAttributes', 'sortBy', 'sortOrder']) {
          const v = url.searchParams.get(key);
          if (v !== null) params[key] = v;
        }
        for (const key of ['startIndex', 'count']) {
          const v = url.searchParams.get(key);
          if (v !== null) params[key] = Number(v);
        }
        return send(res, 200, await new Resource(params).read(this));
      }
      if (id === undefined && method === 'POST') {
        const created = await new Resource().write(body, this);
        return send(res, 201, created, { location: `${this.url}/${match[1]}/${created.id}` });
      }
      if (id === undefined) throw new HttpError(405, undefined, `${method} needs a resource id`);
      const resource = new Resource(id);
      if (method === 'GET') return send(res, 200, await resource.read(this));
      if (method === 'PUT') return send(res, 200, await resource.write(body, this));
      if (method === 'PATCH') {
        const patched = await resource.patch(body, this);
        return patched ? send(res, 200, patched) : send(res, 204);
      }
      if (method === 'DELETE') {
        await resource.dispose(this);
        return send(res, 204);
      }
      throw new HttpError(405, undefined, `${method} is not allowed here`);
    } catch (err) {
      const e = err as { status?: unknown; scimType?: string; message?: string; headers?: Record<string, string> };
      const status = typeof e.status === 'number' ? e.status : 500;
      const payload: Record<string, unknown> = { schemas: [ERROR_SCHEMA], status: String(status), detail: status === 500 ? 'Internal error' : e.message };
      if (e.scimType) payload.scimType = e.scimType;
      send(res, status, payload, err instanceof HttpError ? err.headers : {});
    }
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/(scim\+)?json\b/i.test(type)) throw new HttpError(415, undefined, 'Send application/scim+json');
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, undefined, 'Request body too large');
    parts.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new HttpError(400, 'invalidSyntax', 'The request body is not JSON');
  }
}

function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { ...headers, ...(text ? { 'content-type': 'application/scim+json' } : {}) });
  res.end(text);
}
