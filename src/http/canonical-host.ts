// oidc-provider builds endpoint URLs (discovery, redirects to /auth/:uid, ...) from the
// request's host. A node reached by its internal address would then advertise that address
// under the public issuer. ISSUER is the one public identity of OneID, so every request is
// treated as addressed to it. Behind a TLS-terminating proxy set TRUST_PROXY=true so the
// https scheme of the issuer is honoured as well.
import type { Middleware } from 'koa';

export function canonicalHost(issuer: string, trustProxy: boolean): Middleware {
  const url = new URL(issuer);
  const proto = url.protocol.replace(':', '');
  const https = url.protocol === 'https:';
  return async (ctx, next) => {
    ctx.req.headers.host = url.host;
    // Browsers reach an https issuer over https whatever the hop to this node: cookies are Secure
    // (SameSite=None ones, see oidc/provider.ts, are kept by browsers only then).
    if (https) ctx.cookies.secure = true;
    if (trustProxy) {
      ctx.req.headers['x-forwarded-host'] = url.host;
      ctx.req.headers['x-forwarded-proto'] = proto;
    }
    return next();
  };
}
