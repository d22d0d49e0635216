// The discovery document and the JWKS are the same bytes for every request: built from the
// configuration and the signing keys a node loads at start (`oneid keys rotate` takes effect at
// restart). Every relying party and resource server fetches them, some on every token they check,
// so a node builds each once, through oidc-provider itself, and then answers from memory, with
// the headers oidc-provider gives them (content type, open CORS).
import type { Middleware } from 'koa';

/** The documents oidc-provider serves at these paths, for GET and HEAD. */
export const PUBLISHED_PATHS: ReadonlySet<string> = new Set(['/.well-known/openid-configuration', '/jwks']);

interface Document { body: Buffer; type: string }

export function publishedDocuments(): Middleware {
  // Keyed by scheme and host as well: oidc-provider writes its endpoint URLs from them. The host
  // is always ISSUER's (canonicalHost runs first), so there are at most two entries per path. (Not
  // ctx.origin: in koa 3 that is the client's Origin header, which anyone may set to anything.)
  const built = new Map<string, Document>();
  return async (ctx, next) => {
    if (!PUBLISHED_PATHS.has(ctx.path) || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const key = `${ctx.protocol}://${ctx.host}${ctx.path}`;
    const doc = built.get(key);
    if (!doc) {
      await next();
      const body: unknown = ctx.body;
      if (ctx.status === 200 && body && typeof body === 'object' && !Buffer.isBuffer(body)) {
        built.set(key, { body: Buffer.from(JSON.stringify(body)), type: ctx.response.get('Content-Type') || 'application/json; charset=utf-8' });
      }
      return;
    }
    // As oidc-provider's CORS for these public documents: any origin may read them.
    ctx.vary('Origin');
    ctx.set('Access-Control-Allow-Origin', ctx.get('Origin') || '*');
    ctx.type = doc.type;
    ctx.body = doc.body;
  };
}
