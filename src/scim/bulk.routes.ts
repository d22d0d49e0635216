// POST /Bulk (RFC 7644 section 3.7): many Users/Groups writes in one request.
//
// - Each operation runs through the same ScimResourceOps as the HTTP routes, in its own
//   transaction: one failing operation does not undo the others (RFC 7644 3.7: "continue
//   performing as many changes as possible"), unless failOnErrors stops the run.
// - bulkId cross-references: "bulkId:<id>" as a whole string value anywhere in `data` (e.g.
//   members[].value, manager.value), as a quoted literal inside a string (a PATCH path filter
//   such as members[value eq "bulkId:<id>"]), or as the id segment of `path` (/Groups/bulkId:<id>).
//   Operations run in request order, except that an operation waits for the POSTs whose bulkIds
//   it references (a stable topological order). Operations caught in a reference cycle fail with
//   409 and a detail naming the cycle (RFC 7644 3.7.1 allows 409 instead of resolving cycles);
//   references to an unknown bulkId, or to a POST that failed, fail with 400 invalidValue.
// - failOnErrors=N: after N failed operations nothing more runs; the response lists what ran.
// - Limits (advertised in ServiceProviderConfig): more than bulkMaxOperations operations -> 413
//   for the whole request; a body over bulkMaxPayloadSize -> 413 from the SCIM body parser, whose
//   limit is that size (RFC 7644 3.7.4; no scimType, as in the RFC's example).
// - Results are listed in request order: {method, bulkId, location, version, status (a string),
//   response (the SCIM error, for failures)}.
import type Router from '@koa/router';
import { scimContext, type ScimDeps } from './index.ts';
import { ScimError, toScimError } from './errors.ts';
import { BULK_REQUEST_SCHEMA, BULK_RESPONSE_SCHEMA, SCIM_LIMITS } from './schemas.ts';
import { nestsDeeperThan } from '../shared/json-depth.ts';
import type { ScimRequestContext, ScimResourceOps, ScimResult } from './types.ts';
import { createScimGroupOps } from './groups.resource.ts';
import { createScimUserOps } from './users.resource.ts';

type Method = 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const METHODS = new Set<Method>(['POST', 'PUT', 'PATCH', 'DELETE']);
const BULK_ID_REF = /^bulkId:(.+)$/;
/** A quoted "bulkId:x" inside a longer string: a literal in a PATCH path filter such as members[value eq "bulkId:x"]. */
const QUOTED_BULK_ID_REF = /"bulkId:([^"\\]+)"/g;

interface BulkOperation {
  index: number;
  /** The method as sent (echoed back), upper-cased when valid. */
  method: string;
  bulkId?: string;
  version?: string;
  path?: string;
  data?: unknown;
  /** bulkIds this operation references. */
  refs: Set<string>;
  /** A problem found before running (bad method, path, ...). */
  invalid?: ScimError;
}

export interface BulkOperationResult {
  method: string;
  bulkId?: string;
  location?: string;
  version?: string;
  status: string;
  response?: Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const short = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
const shortName = (s: string): string => JSON.stringify(s.length > 32 ? `${s.slice(0, 32)}...` : s);

/** Every "bulkId:x" string value in `value`, at any depth. */
function collectRefs(value: unknown, into: Set<string>, depth = 0): void {
  if (depth > 64) return;
  if (typeof value === 'string') {
    const m = BULK_ID_REF.exec(value);
    if (m) into.add(m[1]!);
    else for (const q of value.matchAll(QUOTED_BULK_ID_REF)) into.add(q[1]!);
  } else if (Array.isArray(value)) {
    for (const v of value) collectRefs(v, into, depth + 1);
  } else if (isObject(value)) {
    for (const v of Object.values(value)) collectRefs(v, into, depth + 1);
  }
}

/** A copy of `value` with every "bulkId:x" string replaced by the id created for x. */
function substitute(value: unknown, ids: Map<string, string>): unknown {
  if (typeof value === 'string') {
    const m = BULK_ID_REF.exec(value);
    if (m) return ids.has(m[1]!) ? ids.get(m[1]!) : value;
    return value.replace(QUOTED_BULK_ID_REF, (whole, ref: string) => (ids.has(ref) ? `"${ids.get(ref)}"` : whole));
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, ids));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, ids)]));
  return value;
}

function readOperation(raw: unknown, index: number): BulkOperation {
  const where = `Operations[${index}]`;
  const op: BulkOperation = { index, method: '', refs: new Set() };
  if (!isObject(raw)) {
    op.invalid = new ScimError(400, `${where}: must be an object with method and path`, 'invalidSyntax');
    return op;
  }
  const get = (name: string) => Object.entries(raw).find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
  const method = get('method');
  const bulkId = get('bulkId');
  const version = get('version');
  const path = get('path');
  op.data = get('data');
  if (typeof method === 'string') op.method = method;
  if (typeof bulkId === 'string' && bulkId !== '') op.bulkId = bulkId;
  if (typeof version === 'string' && version !== '') op.version = version;
  if (typeof path === 'string') op.path = path;
  const upper = op.method.toUpperCase() as Method;
  if (!METHODS.has(upper)) op.invalid = new ScimError(400, `${where}.method: must be POST, PUT, PATCH or DELETE`, 'invalidValue');
  else op.method = upper;
  if (!op.invalid && bulkId !== undefined && typeof bulkId !== 'string') op.invalid = new ScimError(400, `${where}.bulkId: must be a string`, 'invalidValue');
  if (!op.invalid && op.method === 'POST' && !op.bulkId) op.invalid = new ScimError(400, `${where}.bulkId: is required for POST`, 'invalidValue');
  if (!op.invalid && typeof path !== 'string') op.invalid = new ScimError(400, `${where}.path: is required, e.g. "/Users" or "/Groups/{id}"`, 'invalidValue');
  if (!op.invalid && op.method !== 'DELETE' && op.data === undefined) op.invalid = new ScimError(400, `${where}.data: is required for ${op.method}`, 'invalidValue');
  if (!op.invalid && version !== undefined && typeof version !== 'string') op.invalid = new ScimError(400, `${where}.version: must be an ETag string such as W/"3"`, 'invalidValue');
  if (!op.invalid && nestsDeeperThan(op.data, SCIM_LIMITS.maxJsonDepth)) {
    op.invalid = new ScimError(400, `${where}.data: nests objects and arrays more than ${SCIM_LIMITS.maxJsonDepth} levels deep`, 'invalidSyntax');
    op.data = undefined;
  }
  if (op.path !== undefined) collectRefs(op.path.split('/').pop(), op.refs);
  if (op.method !== 'DELETE') collectRefs(op.data, op.refs);
  return op;
}

/**
 * A stable topological order (request order among independent operations, Kahn's algorithm with
 * the lowest index first). Operations left over are in, or wait on, a reference cycle; for each,
 * the cycle it is caught in (one cycle per strongly connected component, found once), so a ring
 * of 1,000 operations costs linear work, not a walk of the ring per operation.
 */
interface Cycle { loop: BulkOperation[]; inLoop: boolean }

function orderOperations(ops: BulkOperation[]): { order: BulkOperation[]; cycles: Map<number, Cycle> } {
  const byBulkId = new Map<string, BulkOperation>();
  for (const op of ops) if (op.bulkId && op.method === 'POST') byBulkId.set(op.bulkId, op);
  const waitsOn: BulkOperation[][] = ops.map((op) => [...op.refs].map((r) => byBulkId.get(r)).filter((d): d is BulkOperation => d !== undefined));
  const waitedBy: number[][] = ops.map(() => []);
  const pending = ops.map((op) => waitsOn[op.index]!.length);
  for (const op of ops) for (const d of waitsOn[op.index]!) waitedBy[d.index]!.push(op.index);

  // Ready operations, kept sorted by index descending so pop() takes the lowest (n <= bulkMaxOperations).
  const ready = ops.filter((op) => pending[op.index] === 0).map((op) => op.index).reverse();
  const done = new Set<number>();
  const order: BulkOperation[] = [];
  while (ready.length) {
    const i = ready.pop()!;
    done.add(i);
    order.push(ops[i]!);
    for (const j of waitedBy[i]!) {
      pending[j]! -= 1;
      if (pending[j] === 0) {
        let at = ready.length;
        while (at > 0 && ready[at - 1]! < j) at -= 1;
        ready.splice(at, 0, j);
      }
    }
  }
  const cycles = new Map<number, Cycle>();
  if (order.length === ops.length) return { order, cycles };

  // Strongly connected components of what is left (Tarjan; depth is at most bulkMaxOperations).
  const left = ops.filter((op) => !done.has(op.index));
  const deps = (op: BulkOperation) => waitsOn[op.index]!.filter((d) => !done.has(d.index));
  const indexOf = new Map<number, number>();
  const low = new Map<number, number>();
  const stack: BulkOperation[] = [];
  const onStack = new Set<number>();
  const component = new Map<number, BulkOperation[]>();
  let counter = 0;
  const connect = (op: BulkOperation): void => {
    indexOf.set(op.index, counter);
    low.set(op.index, counter);
    counter += 1;
    stack.push(op);
    onStack.add(op.index);
    for (const d of deps(op)) {
      if (!indexOf.has(d.index)) {
        connect(d);
        low.set(op.index, Math.min(low.get(op.index)!, low.get(d.index)!));
      } else if (onStack.has(d.index)) {
        low.set(op.index, Math.min(low.get(op.index)!, indexOf.get(d.index)!));
      }
    }
    if (low.get(op.index) === indexOf.get(op.index)) {
      const members: BulkOperation[] = [];
      let m: BulkOperation;
      do {
        m = stack.pop()!;
        onStack.delete(m.index);
        members.push(m);
      } while (m !== op);
      const cyclic = members.length > 1 || deps(op).includes(op);
      if (cyclic) for (const x of members) component.set(x.index, members);
    }
  };
  for (const op of left) if (!indexOf.has(op.index)) connect(op);

  /** The shortest loop from `from` back to itself inside its component (BFS). */
  const loopThrough = (from: BulkOperation): BulkOperation[] => {
    const inside = new Set(component.get(from.index)!.map((x) => x.index));
    const parent = new Map<number, BulkOperation>();
    const queue = [from];
    for (let q = 0; q < queue.length; q += 1) {
      const cur = queue[q]!;
      for (const d of deps(cur)) {
        if (!inside.has(d.index)) continue;
        if (d === from) {
          const path = [cur];
          while (path[0] !== from) path.unshift(parent.get(path[0]!.index)!);
          return path;
        }
        if (!parent.has(d.index)) {
          parent.set(d.index, cur);
          queue.push(d);
        }
      }
    }
    return [from];
  };
  // One loop per component, rotated to start at each operation on it; others get their own.
  const loopOf = new Map<number, BulkOperation[]>();
  for (const op of left) {
    if (!component.has(op.index) || loopOf.has(op.index)) continue;
    const loop = loopThrough(op);
    loop.forEach((x, k) => { if (!loopOf.has(x.index)) loopOf.set(x.index, [...loop.slice(k), ...loop.slice(0, k)]); });
  }
  // Operations that only wait on a cycle name the cycle they reach (memoised walk down the dependencies).
  const reached = new Map<number, BulkOperation[]>();
  const reach = (op: BulkOperation): BulkOperation[] => {
    const path: BulkOperation[] = [];
    let cur = op;
    while (!loopOf.has(cur.index) && !reached.has(cur.index)) {
      path.push(cur);
      cur = deps(cur)[0]!;
    }
    const loop = loopOf.get(cur.index) ?? reached.get(cur.index)!;
    for (const p of path) reached.set(p.index, loop);
    return loop;
  };
  for (const op of left) {
    if (component.has(op.index)) cycles.set(op.index, { loop: loopOf.get(op.index) ?? loopThrough(op), inLoop: true });
    else cycles.set(op.index, { loop: reach(op), inLoop: false });
  }
  return { order, cycles };
}

/** A cycle for an error detail: a few names and the length, so a ring of 1,000 stays a short line. */
function describeLoop(loop: BulkOperation[]): string {
  const name = (o: BulkOperation) => shortName(o.bulkId ?? `Operations[${o.index}]`);
  const shown = loop.length <= 3 ? loop.map(name) : [...loop.slice(0, 2).map(name), '...'];
  return `${[...shown, name(loop[0]!)].join(' -> ')}${loop.length > 3 ? ` (${loop.length} operations)` : ''}`;
}

/** A percent-encoded id from an operation's path; malformed encoding (%E0%A4%A) is that operation's 400. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ScimError(400, `path: ${short(segment)} is not a valid percent-encoded resource id`, 'invalidValue');
  }
}

const isDecodable = (path: string): boolean => {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
};

export function registerScimBulkRoute(router: Router, deps: ScimDeps): void {
  const resources: Record<'users' | 'groups', ScimResourceOps> = {
    users: createScimUserOps(deps),
    groups: createScimGroupOps(deps),
  };

  router.post('/Bulk', async (ctx) => {
    const rc: ScimRequestContext = scimContext(ctx);
    const body: unknown = ctx.request.body;
    if (!isObject(body)) throw new ScimError(400, 'the request body must be a JSON object (a BulkRequest)', 'invalidSyntax');
    const schemas = Object.entries(body).find(([k]) => k.toLowerCase() === 'schemas')?.[1];
    if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === BULK_REQUEST_SCHEMA.toLowerCase())) {
      throw new ScimError(400, `schemas: a bulk request must list "${BULK_REQUEST_SCHEMA}"`, 'invalidSyntax');
    }
    const rawOps = Object.entries(body).find(([k]) => k.toLowerCase() === 'operations')?.[1];
    if (!Array.isArray(rawOps)) throw new ScimError(400, 'Operations: must be a list of operations', 'invalidSyntax');
    if (rawOps.length > SCIM_LIMITS.bulkMaxOperations) {
      throw new ScimError(413, `The bulk request has ${rawOps.length} operations; maxOperations is ${SCIM_LIMITS.bulkMaxOperations}`);
    }
    const rawFail = Object.entries(body).find(([k]) => k.toLowerCase() === 'failonerrors')?.[1];
    if (rawFail !== undefined && rawFail !== null && (typeof rawFail !== 'number' || !Number.isInteger(rawFail) || rawFail < 1)) {
      throw new ScimError(400, 'failOnErrors: must be a positive integer', 'invalidValue');
    }
    const failOnErrors = typeof rawFail === 'number' ? rawFail : undefined;

    const ops = rawOps.map(readOperation);
    const seenBulkIds = new Set<string>();
    for (const op of ops) {
      if (!op.bulkId) continue;
      if (seenBulkIds.has(op.bulkId)) throw new ScimError(400, `bulkId ${short(op.bulkId)} is used by more than one operation`, 'invalidValue');
      seenBulkIds.add(op.bulkId);
    }
    const { order, cycles } = orderOperations(ops);

    const createdIds = new Map<string, string>();
    const failedBulkIds = new Set<string>();
    const results = new Map<number, BulkOperationResult>();
    let errors = 0;
    const requestId = ctx.state.requestId as string | undefined;

    const run = async (op: BulkOperation): Promise<{ result: ScimResult; location?: string }> => {
      if (op.invalid) throw op.invalid;
      for (const ref of op.refs) {
        if (createdIds.has(ref)) continue;
        if (failedBulkIds.has(ref)) throw new ScimError(400, `bulkId ${short(ref)} cannot be resolved: the operation that creates it failed`, 'invalidValue');
        throw new ScimError(400, `bulkId ${short(ref)} is not the bulkId of a POST in this request`, 'invalidValue');
      }
      const path = op.path!.split('/').map((seg) => substitute(seg, createdIds) as string).join('/');
      const m = /^\/?(Users|Groups)(?:\/([^/?#]+))?\/?$/i.exec(path);
      if (!m) throw new ScimError(400, `path ${short(op.path!)} must be /Users, /Groups, /Users/{id} or /Groups/{id}`, 'invalidValue');
      const type = m[1]!.toLowerCase() as 'users' | 'groups';
      const id = m[2] === undefined ? undefined : decodePathSegment(m[2]);
      const target = resources[type];
      const location = id !== undefined ? `${rc.baseUrl}/${type === 'users' ? 'Users' : 'Groups'}/${id}` : undefined;
      if (op.method === 'POST') {
        if (id !== undefined) throw new ScimError(400, `POST goes to ${type === 'users' ? '/Users' : '/Groups'}, not to a resource id`, 'invalidValue');
        return { result: await target.create(substitute(op.data, createdIds), rc) };
      }
      if (id === undefined) throw new ScimError(400, `${op.method} needs a resource id in the path, e.g. /${type === 'users' ? 'Users' : 'Groups'}/{id}`, 'invalidValue');
      const data = substitute(op.data, createdIds);
      switch (op.method as Exclude<Method, 'POST'>) {
        case 'PUT': return { result: await target.replace(id, data, rc, op.version), location };
        case 'PATCH': return { result: await target.patch(id, data, rc, op.version), location };
        case 'DELETE': return { result: await target.remove(id, rc, op.version), location };
      }
    };

    const queue = [...order, ...ops.filter((op) => cycles.has(op.index))];
    for (const op of queue) {
      if (failOnErrors !== undefined && errors >= failOnErrors) break;
      const echo: Pick<BulkOperationResult, 'method' | 'bulkId'> = { method: op.method, ...(op.bulkId ? { bulkId: op.bulkId } : {}) };
      try {
        const cycle = cycles.get(op.index);
        if (cycle) {
          const loop = describeLoop(cycle.loop);
          throw new ScimError(409, cycle.inLoop
            ? `circular bulkId references: ${loop}; create the resources first, then link them with PATCH operations`
            : `this operation references bulkIds caught in circular references (${loop}), so they cannot be resolved`);
        }
        const { result, location } = await run(op);
        const loc = result.location ?? location;
        if (op.method === 'POST' && op.bulkId) {
          const createdId = typeof result.body?.id === 'string' ? result.body.id : loc?.split('/').pop();
          if (createdId) createdIds.set(op.bulkId, createdId);
        }
        results.set(op.index, { ...echo, ...(loc ? { location: loc } : {}), ...(result.etag ? { version: result.etag } : {}), status: String(result.status) });
      } catch (err) {
        errors += 1;
        if (op.bulkId) failedBulkIds.add(op.bulkId);
        const { status, body: response } = toScimError(err, deps.log, requestId);
        const loc = op.path && /^\/?(Users|Groups)\/[^/]+\/?$/i.test(op.path) && !op.path.includes('bulkId:') && isDecodable(op.path)
          ? `${rc.baseUrl}/${op.path.replace(/^\/+|\/+$/g, '')}` : undefined;
        results.set(op.index, { ...echo, ...(loc ? { location: loc } : {}), status: String(status), response: response as unknown as Record<string, unknown> });
      }
    }

    ctx.status = 200;
    ctx.body = {
      schemas: [BULK_RESPONSE_SCHEMA],
      Operations: ops.filter((op) => results.has(op.index)).map((op) => results.get(op.index)!),
    };
  });
}
