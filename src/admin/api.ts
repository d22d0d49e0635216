// A small route registry for the admin API: every route declares its zod schemas and the
// admin roles it needs; the same declarations validate requests and generate OpenAPI 3.1,
// so the document and the behaviour cannot drift.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import { z } from 'zod';
import type { Context, Middleware } from 'koa';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { requireSignInLevel, type Principal } from './auth.ts';
import { ACR, type SignInPolicy } from '../access/signin-policy.ts';
import type { AdminRole } from '../directory/users.service.ts';
import { describeIllFormedText, findIllFormedText, hasIllFormedText } from '../shared/text-input.ts';
import { recordRefusal } from '../audit/audit.service.ts';
import { refuseUnread } from '../http/request-context.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface HandlerInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: Principal;
  /** Version from an If-Match header (W/"3" or "3"), for optimistic concurrency. */
  ifMatch: number | undefined;
  ctx: Context;
}

/** What an in-process call carries (AdminApi.call): the request's parts, unvalidated. */
export interface CallInput {
  params?: Record<string, string>;
  query?: Record<string, unknown>;
  body?: unknown;
  ifMatch?: number;
}

export interface RouteDef<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: Method;
  /** koa-style path relative to /admin/api/v1, e.g. /users/:id */
  path: string;
  tag: string;
  summary: string;
  /** Any of these roles may call; super_admin always may. */
  roles: readonly AdminRole[];
  /**
   * A person's token must come from a sign-in at least this strong (its acr, RFC 9470), or the
   * call is refused with 401 insufficient_user_authentication; apps' own tokens are not asked.
   * Checked after the roles, before the body is read.
   */
  signInLevel?: SignInPolicy;
  /**
   * With signInLevel: the level is needed only in this case (e.g. "when it gives admin roles"),
   * which the handler checks itself with requireSignInLevel; the router only documents it.
   */
  signInLevelWhen?: string;
  params?: P;
  query?: Q;
  body?: B;
  response?: z.ZodType;
  /**
   * Besides JSON, a raw text body of these media types (e.g. SAML metadata XML), within the same
   * size limit: `into` turns it and the parsed query into what `body` validates.
   */
  rawBody?: { types: readonly string[]; description: string; into(text: string, query: z.output<Q>): unknown };
  /** Success status; 204 sends no body. */
  status?: number;
  /** The media type of a success that is not JSON (e.g. text/csv); the handler sets it and returns the body. */
  produces?: string;
  handler(input: HandlerInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<unknown>;
}

export const idParam = z.strictObject({ id: z.uuid() });

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(500).optional(),
};

export const page = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), next_cursor: z.string().nullable() });

/**
 * Opaque cursors: base64url JSON of the list's name and the last row's sort key. The name makes a
 * cursor from one list (users) a 400 on another (apps) whose key has the same shape, instead of
 * silently paging from an unrelated position.
 */
export const encodeCursor = (list: string, key: unknown[]): string => Buffer.from(JSON.stringify([list, ...key])).toString('base64url');

const invalidCursor = () => new AppError('invalid_argument', 'request.invalid_cursor', 'cursor: not a cursor returned by this list', { field: 'cursor' });

/**
 * Decodes a cursor of `list` and checks its key against `shape`: anything forged (not base64url
 * JSON, another list's cursor, wrong types, text PostgreSQL cannot take, an out-of-range date) is
 * a 400 request.invalid_cursor, never a database error.
 */
export function decodeCursorAs<T extends z.ZodType>(cursor: string | undefined, list: string, shape: T): z.output<T> | undefined {
  if (!cursor) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!Array.isArray(value) || value[0] !== list || hasIllFormedText(value)) throw invalidCursor();
  const parsed = shape.safeParse(value.slice(1));
  if (!parsed.success) throw invalidCursor();
  return parsed.data;
}

/** An ISO timestamp PostgreSQL's timestamptz accepts (the regex alone lets year 0000 through). */
const cursorTimestamp = z.iso.datetime({ offset: true }).refine((s) => {
  const t = Date.parse(s);
  return Number.isFinite(t) && new Date(t).getUTCFullYear() >= 1 && new Date(t).getUTCFullYear() <= 9999;
});

/** The usual keyset cursor: [createdAt ISO timestamp, uuid]. */
export const createdAtIdCursor = z.tuple([cursorTimestamp, z.uuid()]);

function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  let path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') path = [...path, ...issue.keys];
  const field = path.join('.') || where;
  const message = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  throw new AppError('invalid_argument', 'request.invalid', `${field}: ${message}`, { field, in: where });
}

/**
 * Text PostgreSQL cannot store (a NUL character; an unpaired UTF-16 surrogate, which jsonb
 * refuses and a text column would silently turn into U+FFFD) in path parameters, the query string
 * or the parsed body, keys included: 400 request.invalid_text naming the field, before the route's
 * schema or handler sees it (see scim/text-input.ts).
 */
function rejectIllFormedText(value: unknown, where: 'path' | 'query' | 'body'): void {
  const found = findIllFormedText(value);
  if (!found) return;
  const { field, message } = describeIllFormedText(found, where, where === 'body' ? 'a field name' : 'a parameter name');
  throw new AppError('invalid_argument', 'request.invalid_text', message, { field, in: where });
}

function parseIfMatch(header: string): number | undefined {
  if (!header) return undefined;
  const m = /^(?:W\/)?"(\d+)"$/.exec(header.trim());
  if (!m) throw new AppError('invalid_argument', 'request.invalid_if_match', 'If-Match: expected an ETag such as W/"3"', { field: 'If-Match' });
  return Number(m[1]);
}

/** `/users/:id/roles` -> user: the target types the services' own audit events use. */
const targetTypeOf = (path: string): string => (path.split('/')[1] ?? '').replace(/s$/, '').replace(/-/g, '_');

export class AdminApi {
  readonly routes: RouteDef[] = [];

  /** With `db`, every write refused with 403 is recorded in the audit log (see #recordRefusals). */
  constructor(private readonly db?: Knex) {}

  add<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(def: RouteDef<P, Q, B>): void {
    this.routes.push(def as unknown as RouteDef);
  }

  /** Mounts every route; `authenticate` resolves the caller or throws unauthenticated. */
  router(authenticate: (ctx: Context) => Promise<Principal>, maxBodyBytes: number): Router {
    const router = new Router();
    const parseBody = bodyParser({ enableTypes: ['json'], jsonLimit: `${maxBodyBytes}b`, encoding: 'utf-8' });
    const rawParsers = new Map(this.routes.filter((d) => d.rawBody).map((d) => [d, bodyParser({
      enableTypes: ['xml'], extendTypes: { xml: [...d.rawBody!.types] }, xmlLimit: `${maxBodyBytes}b`, encoding: 'utf-8',
    })]));
    for (const def of this.routes) {
      router[def.method](def.path, this.#recordRefusals(def), async (ctx) => {
        // The caller and their roles are checked before any of the body is read: an anonymous
        // or unauthorised request costs no upload (see refuseUnread).
        const principal = await refuseUnread(ctx, () => authenticate(ctx));
        ctx.state.adminPrincipal = principal;
        try {
          this.#authorize(def, principal, ctx);
        } catch (err) {
          refuseUnread(ctx);
          throw err;
        }
        const raw = def.rawBody && ctx.request.type && ctx.is([...def.rawBody.types]) ? def.rawBody : undefined;
        if (def.body && ['post', 'put', 'patch'].includes(def.method) && !raw && !ctx.is('application/json')) {
          throw new AppError('invalid_argument', 'request.content_type', `body: send ${['application/json', ...(def.rawBody?.types ?? [])].join(' or ')}`, { field: 'body' });
        }
        if (raw) await rawParsers.get(def)!(ctx, async () => undefined);
        else if (def.body) await parseBody(ctx, async () => undefined);
        const query = def.query ? parseOrThrow(def.query, ctx.query, 'query') : {};
        const result = await this.#execute(def, principal, {
          params: ctx.params, query: ctx.query, ifMatch: parseIfMatch(ctx.get('if-match')),
          body: raw ? raw.into(String(ctx.request.body ?? ''), query) : ctx.request.body,
        }, ctx);
        ctx.status = def.status ?? 200;
        if (ctx.status !== 204) {
          const version = (result as { version?: unknown } | undefined)?.version;
          if (typeof version === 'number') ctx.set('ETag', `W/"${version}"`);
          ctx.body = result;
        }
      });
    }
    return router;
  }

  /**
   * Runs a route in process for a caller already authenticated (the admin console): the same
   * roles, sign-in level, text and schema checks, handler and audit of refusals as over HTTP, so
   * that a page can do nothing the API would not let the same person do. `path` is the route's
   * declared path (e.g. '/users/:id'); `input` holds what a request would carry, unvalidated.
   */
  async call(principal: Principal, method: Method, path: string, input: CallInput, ctx: Context): Promise<unknown> {
    const def = this.routes.find((d) => d.method === method && d.path === path);
    if (!def) throw new Error(`admin API: no route ${method.toUpperCase()} ${path}`);
    const params = input.params ?? {};
    try {
      this.#authorize(def, principal, ctx);
      return await this.#execute(def, principal, { params, query: input.query ?? {}, body: input.body, ifMatch: input.ifMatch }, ctx);
    } catch (err) {
      await this.#recordRefusal(def, principal, params, input.body, err);
      throw err;
    }
  }

  /** Whether `principal` may call the route at all (its roles; super_admin always may). */
  static allows(principal: Principal, roles: readonly AdminRole[]): boolean {
    return principal.roles.has('super_admin') || roles.some((r) => principal.roles.has(r));
  }

  /** Whether `principal` holds a role the route `method path` needs (for showing a page or a button). */
  may(principal: Principal, method: Method, path: string): boolean {
    const def = this.routes.find((d) => d.method === method && d.path === path);
    return Boolean(def) && AdminApi.allows(principal, def!.roles);
  }

  #authorize(def: RouteDef, principal: Principal, ctx: Context): void {
    if (!AdminApi.allows(principal, def.roles)) {
      throw new AppError('permission_denied', 'admin.forbidden', `this operation needs one of the roles: ${['super_admin', ...def.roles].join(', ')}`);
    }
    if (def.signInLevel && !def.signInLevelWhen) requireSignInLevel(ctx, principal, def.signInLevel);
  }

  async #execute(def: RouteDef, principal: Principal, raw: { params: unknown; query: unknown; body: unknown; ifMatch: number | undefined }, ctx: Context): Promise<unknown> {
    rejectIllFormedText(raw.params, 'path');
    rejectIllFormedText(raw.query, 'query');
    if (def.body) rejectIllFormedText(raw.body, 'body');
    const input: HandlerInput<unknown, unknown, unknown> = {
      params: def.params ? parseOrThrow(def.params, raw.params, 'path') : {},
      query: def.query ? parseOrThrow(def.query, raw.query, 'query') : {},
      body: def.body ? parseOrThrow(def.body, raw.body ?? {}, 'body') : undefined,
      principal,
      ifMatch: raw.ifMatch,
      ctx,
    };
    return def.handler(input as never);
  }

  /**
   * Records a write the caller was refused (403, by its roles or by a service's own check; 401
   * asking a person's token for a stronger sign-in), after
   * the handler's transactions rolled back: the refusal is all that is written. Unauthenticated
   * requests are not recorded (they never reach a refusal), nor are refused reads.
   */
  #recordRefusals(def: RouteDef): Middleware {
    return async (ctx, next) => {
      try {
        await next();
      } catch (err) {
        const principal = ctx.state.adminPrincipal as Principal | undefined;
        if (principal) await this.#recordRefusal(def, principal, ctx.params as Record<string, string>, ctx.request.body as unknown, err);
        throw err;
      }
    };
  }

  async #recordRefusal(def: RouteDef, principal: Principal, params: Record<string, string>, body: unknown, err: unknown): Promise<void> {
    // 403s, and the step-up a person's token was asked for (RFC 9470): both refused writes.
    const refused = err instanceof AppError && (err.kind === 'permission_denied' || err.code === 'admin.insufficient_user_authentication');
    if (!this.db || def.method === 'get' || !refused) return;
    const { id, ...others } = params;
    await recordRefusal(this.db, principal.actor, {
      operation: `${def.method.toUpperCase()} /admin/api/v1${def.path}`,
      targetType: targetTypeOf(def.path),
      targetId: id ?? others.key ?? null,
      code: (err as AppError).code,
      reason: (err as AppError).message,
      fields: body && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : [],
      params: Object.fromEntries(Object.entries(others).filter(([k]) => k !== 'key')),
    });
  }

  openapi(serverUrl: string): Record<string, unknown> {
    const schema = (s: z.ZodType, io: 'input' | 'output') => {
      const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;
      return rest;
    };
    const paths: Record<string, Record<string, unknown>> = {};
    for (const def of this.routes) {
      const oaPath = def.path.replace(/:(\w+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, s] of [['path', def.params], ['query', def.query]] as const) {
        if (!s) continue;
        const js = schema(s, 'input') as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, prop] of Object.entries(js.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: prop });
        }
      }
      const responses: Record<string, unknown> = {
        [String(def.status ?? 200)]: def.status === 204
          ? { description: 'No content' }
          : { description: 'Success', content: def.produces ? { [def.produces]: { schema: { type: 'string' } } } : def.response ? { 'application/json': { schema: schema(def.response, 'output') } } : undefined },
        400: { $ref: '#/components/responses/Problem' },
        401: { $ref: '#/components/responses/Problem' },
        403: { $ref: '#/components/responses/Problem' },
        // Whatever a path names (a user, an app, a passkey of a user) may not exist.
        ...(def.params ? { 404: { $ref: '#/components/responses/Problem' } } : {}),
      };
      paths[oaPath] ??= {};
      paths[oaPath]![def.method] = {
        tags: [def.tag],
        summary: def.summary,
        description: `Roles: ${['super_admin', ...def.roles].join(', ')}${def.signInLevel
          ? `. ${def.signInLevelWhen ? `${def.signInLevelWhen[0]!.toUpperCase()}${def.signInLevelWhen.slice(1)}, a` : 'A'} person's token must carry acr ${ACR[def.signInLevel]} or stronger (RFC 9470); otherwise 401 with WWW-Authenticate error="insufficient_user_authentication" and acr_values` : ''}`,
        parameters,
        ...(def.body ? {
          requestBody: {
            required: true,
            ...(def.rawBody ? { description: def.rawBody.description } : {}),
            content: {
              'application/json': { schema: schema(def.body, 'input') },
              ...Object.fromEntries((def.rawBody?.types ?? []).map((t) => [t, { schema: { type: 'string' } }])),
            },
          },
        } : {}),
        responses,
      };
    }
    return {
      openapi: '3.1.0',
      info: { title: 'OneID admin API', version: '1' },
      servers: [{ url: serverUrl }],
      security: [{ bearer: [] }],
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (RFC 9068) issued by OneID' } },
        responses: {
          Problem: {
            description: 'An error (RFC 9457 problem details)',
            content: { 'application/problem+json': { schema: { type: 'object', properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' }, field: { type: 'string' } } } } },
          },
        },
      },
    };
  }
}
