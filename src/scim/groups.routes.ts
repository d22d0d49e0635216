// HTTP for SCIM Groups: /Groups, /Groups/{id}, POST /Groups/.search. The work is in
// groups.resource.ts (shared with /Bulk); this file maps it to status codes and headers:
// ETag (weak, from the group's version) and Location on single-resource responses,
// If-None-Match -> 304 on GET, If-Match -> 412 on PUT/PATCH/DELETE (checked in the transaction).
// PATCH answers 204, or 200 with the group when the client asks for it (Prefer:
// return=representation, or attributes/excludedAttributes without Prefer: return=minimal).
import type Router from '@koa/router';
import type { Context } from 'koa';
import { scimContext, type ScimDeps } from './index.ts';
import { createScimGroupOps, readListParams, readSearchRequest } from './groups.resource.ts';
import { parseAttributeList, projectResource } from './projection.ts';
import { SCIM_GROUP_SCHEMA } from './filter-sql.ts';
import { parseEtagList, preferredReturn, weakEtag, type ScimResult } from './types.ts';

function send(ctx: Context, result: ScimResult): void {
  ctx.status = result.status;
  if (result.etag) ctx.set('ETag', result.etag);
  if (result.location) ctx.set('Location', result.location);
  if (result.body && result.status !== 204) ctx.body = result.body;
}

const header = (ctx: Context, name: string): string | undefined => ctx.get(name) || undefined;

export function registerScimGroupRoutes(router: Router, deps: ScimDeps): void {
  const ops = createScimGroupOps(deps);

  router.get('/Groups', async (ctx) => {
    ctx.body = await ops.reader.list(readListParams(ctx.query), scimContext(ctx));
  });

  router.post('/Groups/.search', async (ctx) => {
    ctx.status = 200;
    ctx.body = await ops.reader.list(readSearchRequest(ctx.request.body), scimContext(ctx));
  });

  router.get('/Groups/:id', async (ctx) => {
    const attributes = parseAttributeList(ctx.query.attributes);
    const excluded = parseAttributeList(ctx.query.excludedAttributes, 'excludedAttributes');
    const { group, body } = await ops.reader.get(ctx.params.id!, scimContext(ctx), attributes, excluded);
    ctx.set('ETag', weakEtag(group.version));
    ctx.set('Location', `${scimContext(ctx).baseUrl}/Groups/${group.id}`);
    const ifNoneMatch = parseEtagList(header(ctx, 'if-none-match'));
    if (ifNoneMatch && (ifNoneMatch.any || ifNoneMatch.versions.includes(group.version))) {
      ctx.status = 304;
      return;
    }
    ctx.body = body;
  });

  router.post('/Groups', async (ctx) => {
    send(ctx, await ops.create(ctx.request.body, scimContext(ctx)));
  });

  router.put('/Groups/:id', async (ctx) => {
    const result = await ops.replace(ctx.params.id!, ctx.request.body, scimContext(ctx), header(ctx, 'if-match'));
    const attributes = parseAttributeList(ctx.query.attributes);
    const excluded = parseAttributeList(ctx.query.excludedAttributes, 'excludedAttributes');
    if (result.body) result.body = projectResource(result.body, SCIM_GROUP_SCHEMA, attributes, excluded);
    send(ctx, result);
  });

  router.patch('/Groups/:id', async (ctx) => {
    const rc = scimContext(ctx);
    const attributes = parseAttributeList(ctx.query.attributes);
    const excluded = parseAttributeList(ctx.query.excludedAttributes, 'excludedAttributes');
    const result = await ops.patch(ctx.params.id!, ctx.request.body, rc, header(ctx, 'if-match'));
    const prefer = preferredReturn(ctx.get('prefer'));
    if (prefer === 'representation' || (prefer === undefined && (attributes || excluded))) {
      // The client asked for (part of) the resource back: 200 with it (RFC 7644 section 3.5.2).
      const { group, body } = await ops.reader.get(ctx.params.id!, rc, attributes, excluded);
      send(ctx, { ...result, status: 200, body, etag: weakEtag(group.version) });
      return;
    }
    send(ctx, result);
  });

  router.delete('/Groups/:id', async (ctx) => {
    send(ctx, await ops.remove(ctx.params.id!, scimContext(ctx), header(ctx, 'if-match')));
  });
}
