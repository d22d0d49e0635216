// OneID as a SCIM 2.0 client (RFC 7644): the HTTP layer of outbound provisioning. One ScimClient
// per downstream app; the sync engine decides what to send, this file only sends it and classifies
// the answer. No retries here: the job queue retries whatever `retryable` says.
//
//   const app = new ScimClient({ baseUrl: 'https://app.example/scim/v2', token });
//   const user = await app.createUser({ userName: 'ada@example.com', externalId: personId, active: true });
//   await app.patchUser(user.id, [{ op: 'replace', path: 'active', value: false }]);
//   for await (const u of app.listUsers({ pageSize: 200 })) { ... }            // drift report
//   await app.addGroupMembers(groupId, ids);                                    // batches of 100
//
// Every failure is a ScimClientError (an AppError): `status`, `scimType`, `detail` (bounded),
// `retryable`, `retryAfterMs`, `patchUnsupported`; a 409 is its subclass ScimConflict.
// The bearer token never appears in an error: it is only ever put in the Authorization header,
// and any echo of it in an app's answer is replaced by "[redacted]".
import { readBounded, TooLarge } from '../shared/bounded-body.ts';
import { AppError, type ErrorKind } from '../shared/errors.ts';

export const SCIM_USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCIM_GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SCIM_PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

export interface ScimClientOptions {
  /** The app's SCIM base URL, e.g. https://app.example/scim/v2 (http or https, no credentials in it). */
  baseUrl: string;
  /** Bearer token the app gave us. */
  token: string;
  /** Whole request, body included; default 10 s. */
  timeoutMs?: number;
  /** Largest answer body read; a bigger one is refused while streaming; default 1 MiB. */
  maxResponseBytes?: number;
  /** Members per PATCH in add/removeGroupMembers; default 100 (AWS IAM Identity Center's limit). */
  maxMembersPerRequest?: number;
}

export interface ScimMeta { resourceType?: string; created?: string; lastModified?: string; location?: string; version?: string }

/** A resource as the app returns it: `id` is the app's id; any other attribute is kept as sent. */
export interface ScimResource { schemas: string[]; id: string; externalId?: string; meta?: ScimMeta; [attribute: string]: unknown }
export interface ScimUser extends ScimResource { userName: string; active?: boolean }
export interface ScimMember { value: string; display?: string; type?: string; $ref?: string }
export interface ScimGroup extends ScimResource { displayName: string; members?: ScimMember[] }

/** What we send to create or replace: no id or meta; `schemas` defaults to the core schema. */
export type ScimUserInput = Omit<ScimUser, 'id' | 'meta' | 'schemas'> & { schemas?: string[] };
export type ScimGroupInput = Omit<ScimGroup, 'id' | 'meta' | 'schemas'> & { schemas?: string[] };

/** One RFC 7644 3.5.2 PATCH operation. */
export interface ScimPatchOperation { op: 'add' | 'remove' | 'replace'; path?: string; value?: unknown }

export interface ScimListOptions {
  /** `count` per request; default 100. */
  pageSize?: number;
  /** A raw SCIM filter, e.g. `active eq true` (callers build it; see scimFilterEq). */
  filter?: string;
  /** e.g. ['members'] to list groups without their member lists. */
  excludedAttributes?: string[];
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_PAGE_SIZE = 100;
const DEFAULT_MAX_MEMBERS = 100;
const MAX_DETAIL = 300;

type Failure = 'http' | 'conflict' | 'not_found' | 'patch_unsupported' | 'network' | 'timeout' | 'redirect'
  | 'too_large' | 'bad_response' | 'ambiguous';

export interface ScimClientErrorInit {
  failure: Failure;
  method: string;
  /** Path below the base URL, without the query (e.g. /Users/123). */
  path: string;
  status?: number;
  scimType?: string;
  detail?: string;
  retryable: boolean;
  retryAfterMs?: number;
  patchUnsupported?: boolean;
}

/**
 * A request to the app failed. `code` is provisioning.scim_<failure>; `message` is safe to show
 * an admin and to log (method, path, status, scimType and the app's detail cut to 300 chars).
 */
export class ScimClientError extends AppError {
  readonly method: string;
  readonly path: string;
  /** The app's HTTP status; undefined when there was no answer (network, timeout). */
  readonly status: number | undefined;
  readonly scimType: string | undefined;
  readonly detail: string | undefined;
  /** Whether sending the same request later may succeed (network, timeout, 408, 425, 429, 5xx). */
  readonly retryable: boolean;
  /** From Retry-After on a retryable answer, in milliseconds. */
  readonly retryAfterMs: number | undefined;
  /** The app refused PATCH itself (see isPatchRefusal); replace the whole resource with PUT instead. */
  readonly patchUnsupported: boolean;

  constructor(init: ScimClientErrorInit) {
    const what = init.status === undefined ? init.failure : `${init.status}${init.scimType ? ` (${init.scimType})` : ''}`;
    super(kindOf(init), `provisioning.scim_${init.failure}`, `SCIM ${init.method} ${init.path} failed: ${what}${init.detail ? `: ${init.detail}` : ''}`);
    this.name = 'ScimClientError';
    this.method = init.method;
    this.path = init.path;
    this.status = init.status;
    this.scimType = init.scimType;
    this.detail = init.detail;
    this.retryable = init.retryable;
    this.retryAfterMs = init.retryAfterMs;
    this.patchUnsupported = init.patchUnsupported ?? false;
  }
}

/**
 * Any 409 (scimType uniqueness, usually). On create: look the resource up with findUserBy /
 * findGroupBy and adopt it; on replace or patch: another resource holds the unique value.
 */
export class ScimConflict extends ScimClientError {
  constructor(init: ScimClientErrorInit) {
    super(init);
    this.name = 'ScimConflict';
  }
}

/**
 * The error describes the app's answer, not OneID's caller: surfaced by OneID's own API it must
 * not read as the caller's 401, 403, 404 or 409. So it is a failed precondition (the app refused),
 * or unavailable when trying again may help. Callers tell the app's answers apart by status,
 * scimType and the subclasses (ScimConflict).
 */
function kindOf(init: ScimClientErrorInit): ErrorKind {
  return init.retryable ? 'unavailable' : 'failed_precondition';
}

/**
 * A SCIM filter `attr eq "value"`. RFC 7644 3.4.2.2 makes compValue a JSON string, so
 * JSON.stringify does the escaping (quotes, backslashes, control characters).
 */
export function scimFilterEq(attribute: string, value: string): string {
  if (!/^[A-Za-z][\w.:-]*$/.test(attribute)) throw new AppError('invalid_argument', 'provisioning.scim_bad_attribute', 'A SCIM filter attribute must be an attribute name');
  return `${attribute} eq ${JSON.stringify(value)}`;
}

/**
 * Whether an error answer to a PATCH means "this app does not do PATCH" rather than "this PATCH
 * is wrong": 501 Not Implemented and 405 Method Not Allowed always; 400 only when the SCIM
 * error's detail says the operation is not supported / not implemented (apps that refuse a PATCH
 * operation or path they lack, e.g. "Operation 'add' is not supported"). Any other 400
 * (invalidValue, mutability, ...) is about the content and PUT would fail the same way.
 */
export function isPatchRefusal(status: number, detail: string | undefined): boolean {
  if (status === 501 || status === 405) return true;
  return status === 400 && detail !== undefined && /\b(not supported|unsupported|not implemented)\b/i.test(detail);
}

/** Delay from Retry-After (delta-seconds or an HTTP-date), in ms; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const RETRYABLE_STATUS = new Set([408, 425, 429]);
const isRetryableStatus = (status: number) => RETRYABLE_STATUS.has(status) || status >= 500;
const isScimJson = (contentType: string | null) => /^application\/(scim\+)?json\s*(;|$)/i.test(contentType ?? '');

interface Send { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; path: string; query?: Record<string, string>; body?: unknown }

export class ScimClient {
  private readonly baseUrl: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxMembers: number;

  constructor(options: ScimClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new AppError('invalid_argument', 'provisioning.scim_bad_url', 'The SCIM base URL is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AppError('invalid_argument', 'provisioning.scim_bad_url', 'The SCIM base URL must be http or https');
    if (url.username || url.password) throw new AppError('invalid_argument', 'provisioning.scim_bad_url', 'The SCIM base URL must not carry credentials; use the token');
    if (url.search || url.hash) throw new AppError('invalid_argument', 'provisioning.scim_bad_url', 'The SCIM base URL must not have a query or fragment');
    // RFC 6750 b64token, loosened to any visible ASCII: a header-breaking token is refused here,
    // before fetch could quote it in its own error message.
    if (!/^[\x21-\x7e]+$/.test(options.token)) throw new AppError('invalid_argument', 'provisioning.scim_bad_token', 'The SCIM token must be visible ASCII characters');
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = positive(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    this.maxResponseBytes = positive(options.maxResponseBytes, DEFAULT_MAX_RESPONSE_BYTES);
    this.maxMembers = positive(options.maxMembersPerRequest, DEFAULT_MAX_MEMBERS);
  }

  // Users

  /** POST /Users. A 409 throws ScimConflict: find the existing user with findUserBy and adopt it. */
  createUser(user: ScimUserInput): Promise<ScimUser> {
    return this.create<ScimUser>('/Users', SCIM_USER_SCHEMA, user);
  }

  /** GET /Users/{id}; a missing user throws with code provisioning.scim_not_found (status 404). */
  getUser(id: string): Promise<ScimUser> {
    return this.get<ScimUser>('/Users', id);
  }

  /** The one user whose userName or externalId equals `value`; undefined if none; throws if several. */
  findUserBy(attribute: 'userName' | 'externalId', value: string): Promise<ScimUser | undefined> {
    return this.findOne<ScimUser>('/Users', attribute, value);
  }

  /** PATCH /Users/{id}. The answer's body (200 or 204) is not read. patchUnsupported => use replaceUser. */
  patchUser(id: string, operations: ScimPatchOperation[]): Promise<void> {
    return this.patch('/Users', id, operations);
  }

  /** PUT /Users/{id}: the whole user; attributes left out are cleared by the app. */
  replaceUser(id: string, user: ScimUserInput): Promise<ScimUser> {
    return this.replace<ScimUser>('/Users', id, SCIM_USER_SCHEMA, user);
  }

  /** DELETE /Users/{id}. */
  deleteUser(id: string): Promise<void> {
    return this.delete('/Users', id);
  }

  /** Every user, page by page (startIndex/count), for drift reports; nothing is buffered beyond a page. */
  listUsers(options: ScimListOptions = {}): AsyncGenerator<ScimUser> {
    return this.list<ScimUser>('/Users', options);
  }

  // Groups

  /** POST /Groups. Send members here only for small groups; use addGroupMembers for the rest. */
  createGroup(group: ScimGroupInput): Promise<ScimGroup> {
    return this.create<ScimGroup>('/Groups', SCIM_GROUP_SCHEMA, group);
  }

  getGroup(id: string, options: { excludeMembers?: boolean } = {}): Promise<ScimGroup> {
    return this.get<ScimGroup>('/Groups', id, options.excludeMembers ? { excludedAttributes: 'members' } : undefined);
  }

  findGroupBy(attribute: 'displayName' | 'externalId', value: string): Promise<ScimGroup | undefined> {
    return this.findOne<ScimGroup>('/Groups', attribute, value, { excludedAttributes: 'members' });
  }

  patchGroup(id: string, operations: ScimPatchOperation[]): Promise<void> {
    return this.patch('/Groups', id, operations);
  }

  replaceGroup(id: string, group: ScimGroupInput): Promise<ScimGroup> {
    return this.replace<ScimGroup>('/Groups', id, SCIM_GROUP_SCHEMA, group);
  }

  deleteGroup(id: string): Promise<void> {
    return this.delete('/Groups', id);
  }

  listGroups(options: ScimListOptions = {}): AsyncGenerator<ScimGroup> {
    return this.list<ScimGroup>('/Groups', options);
  }

  /**
   * Adds members (the app's user ids) with PATCH `add members`, maxMembersPerRequest per request,
   * in order. Stops at the first failure: the batches before it are applied, and adding a member
   * twice is harmless, so the caller retries the whole call.
   */
  async addGroupMembers(groupId: string, memberIds: readonly string[]): Promise<void> {
    for (const batch of chunks(memberIds, this.maxMembers)) {
      await this.patch('/Groups', groupId, [{ op: 'add', path: 'members', value: batch.map((value) => ({ value })) }]);
    }
  }

  /**
   * Removes members with one `remove members[value eq "id"]` operation per member (RFC 7644
   * 3.5.2.2, the form Okta and AWS accept), maxMembersPerRequest per request. Same failure rule.
   */
  async removeGroupMembers(groupId: string, memberIds: readonly string[]): Promise<void> {
    for (const batch of chunks(memberIds, this.maxMembers)) {
      await this.patch('/Groups', groupId, batch.map((id) => ({ op: 'remove' as const, path: `members[${scimFilterEq('value', id)}]` })));
    }
  }

  // The generic operations behind both resource types

  private async create<T extends ScimResource>(endpoint: string, schema: string, input: object): Promise<T> {
    return resourceOf<T>(await this.send({ method: 'POST', path: endpoint, body: withSchema(input, schema) }), 'POST', endpoint);
  }

  private async get<T extends ScimResource>(endpoint: string, id: string, query?: Record<string, string>): Promise<T> {
    const path = resourcePath(endpoint, id);
    return resourceOf<T>(await this.send({ method: 'GET', path, query }), 'GET', path);
  }

  private async replace<T extends ScimResource>(endpoint: string, id: string, schema: string, input: object): Promise<T> {
    const path = resourcePath(endpoint, id);
    return resourceOf<T>(await this.send({ method: 'PUT', path, body: { ...withSchema(input, schema), id } }), 'PUT', path);
  }

  private async patch(endpoint: string, id: string, operations: ScimPatchOperation[]): Promise<void> {
    if (operations.length === 0) return;
    await this.send({ method: 'PATCH', path: resourcePath(endpoint, id), body: { schemas: [SCIM_PATCH_SCHEMA], Operations: operations } }, false);
  }

  private async delete(endpoint: string, id: string): Promise<void> {
    await this.send({ method: 'DELETE', path: resourcePath(endpoint, id) }, false);
  }

  private async findOne<T extends ScimResource>(endpoint: string, attribute: string, value: string, extra: Record<string, string> = {}): Promise<T | undefined> {
    // count=2: enough to tell "one" from "several" without reading a long list.
    const page = await this.send({ method: 'GET', path: endpoint, query: { filter: scimFilterEq(attribute, value), startIndex: '1', count: '2', ...extra } });
    const { resources, total } = listOf(page, endpoint);
    if (resources.length > 1 || total > 1) {
      throw new ScimClientError({ failure: 'ambiguous', method: 'GET', path: endpoint, retryable: false, detail: `${total} resources have ${attribute} equal to the value looked up` });
    }
    return resources[0] === undefined ? undefined : resourceOf<T>(resources[0], 'GET', endpoint);
  }

  private async *list<T extends ScimResource>(endpoint: string, options: ScimListOptions): AsyncGenerator<T> {
    const count = positive(options.pageSize, DEFAULT_PAGE_SIZE);
    const query: Record<string, string> = { count: String(count) };
    if (options.filter) query.filter = options.filter;
    if (options.excludedAttributes?.length) query.excludedAttributes = options.excludedAttributes.join(',');
    // RFC 7644 3.4.2.4: startIndex is 1-based. Stop on an empty page or past totalResults, so an app
    // that ignores startIndex and returns everything at once still ends the loop.
    for (let startIndex = 1; ;) {
      const { resources, total } = listOf(await this.send({ method: 'GET', path: endpoint, query: { ...query, startIndex: String(startIndex) } }), endpoint);
      for (const r of resources) yield resourceOf<T>(r, 'GET', endpoint);
      startIndex += resources.length;
      if (resources.length === 0 || startIndex > total) return;
    }
  }

  /**
   * One request. Returns the parsed JSON body (undefined for an empty one, or when `readBody` is
   * false on success); throws ScimClientError for everything else.
   */
  private async send(req: Send, readBody = true): Promise<unknown> {
    const url = `${this.baseUrl}${req.path}${req.query ? `?${new URLSearchParams(req.query)}` : ''}`;
    const fail = (init: Omit<ScimClientErrorInit, 'method' | 'path'>) => this.error({ ...init, method: req.method, path: req.path });
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/scim+json, application/json' };
    if (req.body !== undefined) headers['content-type'] = 'application/scim+json';
    const signal = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await fetch(url, { method: req.method, headers, body: req.body === undefined ? undefined : JSON.stringify(req.body), redirect: 'manual', signal });
    } catch (err) {
      throw transportError(err, fail);
    }

    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      throw fail({ failure: 'redirect', status: res.status, retryable: false, detail: `the app answered with a redirect${location ? ` to ${location}` : ''}; redirects are not followed, check the base URL` });
    }

    if (res.ok && !readBody) {
      await res.body?.cancel().catch(() => undefined);
      return undefined;
    }

    let text: string;
    try {
      text = await readBounded(res, this.maxResponseBytes);
    } catch (err) {
      if (err instanceof TooLarge) throw fail({ failure: 'too_large', status: res.status, retryable: false, detail: `the answer is larger than ${this.maxResponseBytes} bytes` });
      throw transportError(err, fail);
    }

    if (!res.ok) {
      const scim = isScimJson(res.headers.get('content-type')) ? parseScimError(text) : {};
      const retryable = isRetryableStatus(res.status);
      const init = {
        status: res.status, scimType: scim.scimType, detail: scim.detail, retryable,
        retryAfterMs: retryable ? parseRetryAfter(res.headers.get('retry-after')) : undefined,
      };
      if (res.status === 409) throw new ScimConflict(this.redact({ ...init, failure: 'conflict', method: req.method, path: req.path }));
      if (req.method === 'PATCH' && isPatchRefusal(res.status, scim.detail)) throw fail({ ...init, failure: 'patch_unsupported', patchUnsupported: true });
      throw fail({ ...init, failure: res.status === 404 ? 'not_found' : 'http' });
    }

    if (text === '') return undefined;
    if (!isScimJson(res.headers.get('content-type'))) throw fail({ failure: 'bad_response', status: res.status, retryable: false, detail: 'the answer is not application/scim+json or application/json' });
    try {
      return JSON.parse(text);
    } catch {
      throw fail({ failure: 'bad_response', status: res.status, retryable: false, detail: 'the answer is not valid JSON' });
    }
  }

  private error(init: ScimClientErrorInit): ScimClientError {
    return new ScimClientError(this.redact(init));
  }

  /** Cuts the app's detail and removes our token from it, should the app echo our request. */
  private redact(init: ScimClientErrorInit): ScimClientErrorInit {
    if (init.detail === undefined) return init;
    const detail = init.detail.split(this.token).join('[redacted]');
    return { ...init, detail: detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}…` : detail };
  }
}

function transportError(err: unknown, fail: (init: Omit<ScimClientErrorInit, 'method' | 'path'>) => ScimClientError): ScimClientError {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return fail({ failure: 'timeout', retryable: true, detail: 'no complete answer in time' });
  // undici's "fetch failed" carries the reason in `cause` (ECONNREFUSED, a TLS error, ...). The
  // cause object is not kept: only its code, which names no header.
  const reason = e?.cause?.code ?? (typeof e?.cause?.message === 'string' ? e.cause.message : undefined);
  return fail({ failure: 'network', retryable: true, detail: reason ?? 'no connection' });
}

function parseScimError(text: string): { scimType?: string; detail?: string } {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    if (body === null || typeof body !== 'object') return {};
    // RFC 7644 3.12; a body without the Error schema is read the same way, as some apps send one.
    return {
      scimType: typeof body.scimType === 'string' ? body.scimType.slice(0, 64) : undefined,
      detail: typeof body.detail === 'string' ? body.detail : undefined,
    };
  } catch {
    return {};
  }
}

function resourceOf<T extends ScimResource>(body: unknown, method: string, path: string): T {
  const r = body as Partial<ScimResource> | undefined;
  if (!r || typeof r !== 'object' || typeof r.id !== 'string' || r.id === '') {
    throw new ScimClientError({ failure: 'bad_response', method, path, retryable: false, detail: 'the answer is not a SCIM resource with an id' });
  }
  return r as T;
}

function listOf(body: unknown, path: string): { resources: unknown[]; total: number } {
  const list = body as { totalResults?: unknown; Resources?: unknown } | undefined;
  const total = Number(list?.totalResults);
  // Resources may be left out when totalResults is 0 (RFC 7644 3.4.2).
  const resources = list?.Resources ?? [];
  if (!list || typeof list !== 'object' || !Number.isInteger(total) || !Array.isArray(resources)) {
    throw new ScimClientError({ failure: 'bad_response', method: 'GET', path, retryable: false, detail: 'the answer is not a SCIM ListResponse' });
  }
  return { resources, total };
}

function resourcePath(endpoint: string, id: string): string {
  // "." and ".." would be resolved by the URL parser and aim the request elsewhere.
  if (id === '' || id === '.' || id === '..') throw new AppError('invalid_argument', 'provisioning.scim_bad_id', 'Not a usable SCIM resource id');
  return `${endpoint}/${encodeURIComponent(id)}`;
}

function withSchema(input: object, schema: string): Record<string, unknown> {
  const body = { ...(input as Record<string, unknown>) };
  delete body.id;
  delete body.meta;
  if (!Array.isArray(body.schemas) || body.schemas.length === 0) body.schemas = [schema];
  return body;
}

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isInteger(value) && value > 0 ? value : fallback;
}
