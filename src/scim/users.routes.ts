// /scim/v2/Users (RFC 7644 section 3): the HTTP side of users.resource.ts.
//
// - Every single-resource response carries a weak ETag (the user's version); If-Match on
//   PUT/PATCH/DELETE must match it (else 412), If-None-Match on GET that matches gives 304.
// - POST answers 201 with Location; PUT 200; DELETE 204.
// - PATCH answers 200 with the resource when the client asks for a representation (an Accept
//   header naming application/scim+json or application/json, an attributes/excludedAttributes
//   parameter, or Prefer: return=representation) and 204 No Content otherwise (Accept absent or
//   */*, or Prefer: return=minimal). RFC 7644 3.5.2 allows both; Okta and scripts that ask for
//   JSON get the resource, and Microsoft's SCIM test collection (which sends Accept: */* and
//   expects 204) passes.
// - attributes / excludedAttributes apply to every response that carries a User.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { scimContext, type ScimDeps } from './index.ts';
import { SCIM_USER_SCHEMA } from './filter-sql.ts';
import { projectResource } from './projection.ts';
import { listParamsFromQuery, listParamsFromSearch, projectionFromQuery } from './scim-list.ts';
import { parseEtagList, preferredReturn, type ScimResult } from './types.ts';
import { createScimUserOps } from './users.resource.ts';

/** Whether a PATCH response should carry the resource (200) rather than nothing (204). */
export function wantsRepresentation(ctx: Context): boolean {
  const prefer = preferredReturn(ctx.get('prefer'));
  if (prefer) return prefer === 'representation';
  const projection = projectionFromQuery(ctx.query);
  if (projection.attributes || projection.excludedAttributes) return true;
  return /application\/(scim\+)?json/i.test(ctx.get('accept'));
}

export function registerScimUserRoutes(router: Router, deps: ScimDeps): void {
  const users = createScimUserOps(deps);

  const send = (ctx: Context, r: ScimResult): void => {
    ctx.status = r.status;
    if (r.etag) ctx.set('ETag', r.etag);
    if (r.status === 201 && r.location) ctx.set('Location', r.location);
    if (r.body) {
      const { attributes, excludedAttributes } = projectionFromQuery(ctx.query);
      ctx.body = projectResource(r.body, SCIM_USER_SCHEMA, attributes, excludedAttributes);
    }
  };
  const body = (ctx: Context): unknown => (ctx.request as { body?: unknown }).body;
  const id = (ctx: Context): string => (ctx.params as { id: string }).id;

  const list = async (ctx: Context) => {
    ctx.body = await users.list(listParamsFromQuery(ctx.query), scimContext(ctx));
  };
  router.get('/Users', list);
  router.get('/Users/', list);
  router.post('/Users/.search', async (ctx) => {
    ctx.body = await users.list(listParamsFromSearch(body(ctx)), scimContext(ctx));
  });

  router.get('/Users/:id', async (ctx) => {
    const r = await users.get(id(ctx), scimContext(ctx));
    const unchanged = parseEtagList(ctx.get('if-none-match') || undefined);
    if (unchanged && r.etag && (unchanged.any || unchanged.versions.includes(Number(/\d+/.exec(r.etag)![0])))) {
      ctx.status = 304;
      ctx.set('ETag', r.etag);
      return;
    }
    send(ctx, r);
  });

  router.post('/Users', async (ctx) => {
    send(ctx, await users.create(body(ctx), scimContext(ctx)));
  });

  router.put('/Users/:id', async (ctx) => {
    send(ctx, await users.replace(id(ctx), body(ctx), scimContext(ctx), ctx.get('if-match') || undefined));
  });

  router.patch('/Users/:id', async (ctx) => {
    const r = await users.patch(id(ctx), body(ctx), scimContext(ctx), ctx.get('if-match') || undefined);
    if (wantsRepresentation(ctx)) {
      send(ctx, r);
    } else {
      ctx.status = 204;
      if (r.etag) ctx.set('ETag', r.etag);
    }
  });

  router.delete('/Users/:id', async (ctx) => {
    send(ctx, await users.remove(id(ctx), scimContext(ctx), ctx.get('if-match') || undefined));
  });
}
