// SCIM 2.0 service provider under /scim/v2 (RFC 7643/7644): bearer auth per provisioning
// client, SCIM errors and content type, discovery endpoints, Users, Groups, Bulk.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';
import type { Services } from '../services.ts';
import type { Logger } from '../shared/logger.ts';
import { SCIM_CONTENT_TYPE, ScimError, scimErrorHandler } from './errors.ts';
import { scimResourceTypes, scimSchemas, serviceProviderConfig, SCIM_LIMITS } from './schemas.ts';
import type { ScimRequestContext } from './types.ts';
import { describeIllFormedText, findIllFormedText } from '../shared/text-input.ts';
import { nestsDeeperThan } from '../shared/json-depth.ts';
import { registerScimUserRoutes } from './users.routes.ts';
import { registerScimGroupRoutes } from './groups.routes.ts';
import { registerScimBulkRoute } from './bulk.routes.ts';
import { refuseUnread } from '../http/request-context.ts';

export const SCIM_PREFIX = '/scim/v2';

export interface ScimDeps {
  services: Services;
  log: Logger;
  issuer: string;
  maxBodyBytes: number;
}

/** The authenticated caller of a SCIM request (set by the auth middleware). */
export const scimContext = (ctx: Context): ScimRequestContext => ctx.state.scim as ScimRequestContext;

export function scimRouter(deps: ScimDeps): Router {
  const { services, log, issuer, maxBodyBytes } = deps;
  const baseUrl = `${issuer}${SCIM_PREFIX}`;
  const router = new Router({ prefix: SCIM_PREFIX });

  router.use(scimErrorHandler(log));
  router.use(async (ctx, next) => {
    await next();
    if (ctx.body !== undefined && ctx.body !== null && ctx.status !== 304) ctx.type = SCIM_CONTENT_TYPE;
  });

  // Discovery is public (RFC 7644 section 4): it describes the server, nothing about people.
  router.get('/ServiceProviderConfig', (ctx) => { ctx.body = serviceProviderConfig(baseUrl, `${issuer}/admin/api/v1/openapi.json`); });
  // Microsoft's reference collection asks for /serviceConfiguration; answer it too.
  router.get('/serviceConfiguration', (ctx) => { ctx.body = serviceProviderConfig(baseUrl, `${issuer}/admin/api/v1/openapi.json`); });
  router.get('/Schemas', (ctx) => {
    const resources = scimSchemas(baseUrl);
    ctx.body = { schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: resources.length, itemsPerPage: resources.length, startIndex: 1, Resources: resources };
  });
  router.get('/Schemas/:id', (ctx) => {
    const found = scimSchemas(baseUrl).find((s) => s.id === ctx.params.id);
    if (!found) throw new ScimError(404, `no schema ${ctx.params.id}`);
    ctx.body = found;
  });
  router.get('/ResourceTypes', (ctx) => {
    const resources = scimResourceTypes(baseUrl);
    ctx.body = { schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: resources.length, itemsPerPage: resources.length, startIndex: 1, Resources: resources };
  });
  router.get('/ResourceTypes/:id', (ctx) => {
    const found = scimResourceTypes(baseUrl).find((s) => s.id === ctx.params.id);
    if (!found) throw new ScimError(404, `no resource type ${ctx.params.id}`);
    ctx.body = found;
  });

  // Everything else needs a provisioning token.
  const authenticate = async (ctx: Context, next: Next) => refuseUnread(ctx, async () => {
    const match = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'));
    const client = match ? await services.scimTokens.authenticate(match[1]!) : undefined;
    if (!client) {
      ctx.set('WWW-Authenticate', 'Bearer realm="oneid-scim"');
      throw new ScimError(401, match ? 'the bearer token is invalid or revoked' : 'a bearer token is required');
    }
    const scim: ScimRequestContext = {
      client,
      actor: { type: 'scim_client', id: client.tokenId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null },
      baseUrl,
    };
    ctx.state.scim = scim;
  }).then(() => next());

  // Text PostgreSQL cannot store (a NUL character, an unpaired surrogate), anywhere in the query
  // string or the parsed body (a /Bulk request's operations included): 400 invalidValue before
  // any work is done (see text-input.ts).
  const rejectIllFormedText = (ctx: Context, next: Next) => {
    const inQuery = findIllFormedText(ctx.query);
    if (inQuery) {
      const where = { ...inQuery, path: inQuery.path ? `query parameter ${inQuery.path}` : '' };
      throw new ScimError(400, describeIllFormedText(where, 'the query string', 'a parameter name').message, 'invalidValue');
    }
    const inBody = findIllFormedText((ctx.request as { body?: unknown }).body);
    if (inBody) throw new ScimError(400, describeIllFormedText(inBody, 'the request body').message, 'invalidValue');
    return next();
  };

  // A body nested deeper than any SCIM resource: 400 before a recursive walk overflows the stack.
  // /Bulk bounds each operation's data itself, so that one deep operation fails alone.
  const rejectDeepBody = (ctx: Context, next: Next) => {
    if (/\/bulk\/?$/i.test(ctx.path)) return next();
    if (nestsDeeperThan((ctx.request as { body?: unknown }).body, SCIM_LIMITS.maxJsonDepth)) {
      throw new ScimError(400, `the request body nests objects and arrays more than ${SCIM_LIMITS.maxJsonDepth} levels deep`, 'invalidSyntax');
    }
    return next();
  };

  const api = new Router();
  // The token is checked before any of the body is read: an anonymous or wrongly authenticated
  // request costs no upload.
  api.use(authenticate);
  api.use(bodyParser({
    enableTypes: ['json'],
    // @koa/bodyparser merges this list into its defaults index by index (lodash merge), so a
    // one-element list would replace application/json; name both (scim+json is a default too).
    extendTypes: { json: ['application/json', SCIM_CONTENT_TYPE] },
    jsonLimit: SCIM_LIMITS.bulkMaxPayloadSize,
    encoding: 'utf-8',
  }));
  api.use(rejectIllFormedText);
  api.use(rejectDeepBody);
  api.all('/Me', () => {
    throw new ScimError(501, '/Me needs a user\'s own access token; OneID issues SCIM tokens to provisioning clients only');
  });
  registerScimUserRoutes(api, deps);
  registerScimGroupRoutes(api, deps);
  registerScimBulkRoute(api, deps);
  router.use(api.routes());
  router.all('/{*rest}', () => {
    throw new ScimError(404, 'no such SCIM endpoint');
  });
  void maxBodyBytes;
  return router;
}
