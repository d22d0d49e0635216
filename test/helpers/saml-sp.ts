// A SAML service provider the way a small web app writes one: @node-saml/node-saml (nobody here
// wrote it) behind node:http on 127.0.0.1 (another site than OneID's http://localhost:<port>, so
// OneID's SameSite=Lax cookie is not sent on the cross-site POSTs between them, as in real life).
//
//   GET  /login[?binding=post]  an AuthnRequest to OneID: a redirect (HTTP-Redirect binding), or
//                               node-saml's auto-submitting form (HTTP-POST binding)
//   POST /acs                   node-saml checks the Response (signatures, audience, issuer,
//                               InResponseTo, times) and the page shows what the app learnt:
//                               #sp-signed-in with the profile as JSON in #sp-profile, or
//                               #sp-refused with the error and the SAML status codes
//   GET  /logout                an SP-initiated LogoutRequest (Redirect) for the last person signed in
//   GET|POST /slo               the LogoutResponse: #sp-logged-out, or #sp-logout-refused
//
// A test reads these pages in a browser, as a person would see them.
import http from 'node:http';
import type net from 'node:net';
import { SAML, SamlStatusError, ValidateInResponseTo, type CacheProvider, type Profile, type SamlConfig } from '@node-saml/node-saml';

export interface SamlSp {
  origin: string;
  entityId: string;
  acsUrl: string;
  /** Where a browser starts a sign-in: the app's own login URL. */
  loginUrl(binding?: 'redirect' | 'post'): string;
  logoutUrl: string;
  /** Where OneID sends LogoutResponses (and LogoutRequests) to the SP. */
  sloUrl: string;
  /** The LogoutRequests OneID sent this SP (a logout another app began). */
  logoutRequestsReceived: Array<{ nameID: string; sessionIndex?: string; signed: boolean }>;
  /** The SP's node-saml (Redirect binding; the POST binding's instance differs only in encoding). */
  saml: SAML;
  close(): Promise<void>;
}

/** OneID's signing certificates (base64 DER) as its metadata publishes them. */
export async function idpCertificates(issuer: string): Promise<string[]> {
  const res = await fetch(`${issuer}/saml/metadata`);
  if (res.status !== 200) throw new Error(`GET /saml/metadata answered ${res.status}`);
  const xml = await res.text();
  const certs = [...xml.matchAll(/<(?:\w+:)?X509Certificate>([^<]+)<\//g)].map((m) => m[1]!.replace(/\s+/g, ''));
  if (!certs.length) throw new Error('OneID\'s metadata has no X509Certificate');
  return [...new Set(certs)];
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title: string, body: string): string => `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;

async function readForm(req: http.IncomingMessage): Promise<Record<string, string>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

/** The StatusCode values of a refused Response (top level first). */
const statusCodesOf = (err: unknown): string[] => {
  if (!(err instanceof SamlStatusError)) return [];
  return [...String(err.xmlStatus).matchAll(/StatusCode[^>]*Value="([^"]+)"/g)].map((m) => m[1]!);
};

/** The AuthnContextClassRef of a checked assertion. */
const authnContextOf = (profile: Profile): string | undefined => {
  const xml = profile.getAssertionXml?.() ?? '';
  return /<(?:\w+:)?AuthnContextClassRef>([^<]+)</.exec(xml)?.[1];
};

/**
 * Starts an SP that trusts OneID at `issuer` (its certificates from the metadata). `options`
 * overrides node-saml's settings (e.g. disableRequestedAuthnContext).
 */
export async function startSamlSp(issuer: string, options: Partial<SamlConfig> = {}): Promise<SamlSp> {
  const idpCert = await idpCertificates(issuer);
  const sockets = new Set<net.Socket>();
  let saml: SAML | undefined;
  let samlPost: SAML | undefined;
  /** The person last signed in (for the LogoutRequest's NameID and SessionIndex). */
  let lastProfile: Profile | undefined;
  const logoutRequestsReceived: SamlSp['logoutRequestsReceived'] = [];

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://sp.invalid');
    const html = (status: number, title: string, body: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page(title, body));
    };
    if (req.method === 'GET' && url.pathname === '/login') {
      const relayState = `sp-${Date.now()}`;
      if (url.searchParams.get('binding') === 'post') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(await samlPost!.getAuthorizeFormAsync(relayState, undefined, {}));
        return;
      }
      res.writeHead(302, { location: await saml!.getAuthorizeUrlAsync(relayState, undefined, {}), 'cache-control': 'no-store' });
      res.end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/acs') {
      const form = await readForm(req);
      try {
        const { profile } = await saml!.validatePostResponseAsync(form);
        if (!profile) throw new Error('no profile in the Response');
        lastProfile = profile;
        const shown = {
          nameID: profile.nameID, nameIDFormat: profile.nameIDFormat, sessionIndex: profile.sessionIndex,
          issuer: profile.issuer, authnContextClassRef: authnContextOf(profile), attributes: profile.attributes ?? {},
          relayState: form.RelayState ?? null,
        };
        html(200, 'Signed in', `<p id="sp-signed-in">Signed in as ${escapeHtml(String(profile.nameID))}</p><pre id="sp-profile">${escapeHtml(JSON.stringify(shown))}</pre>`);
      } catch (err) {
        const codes = statusCodesOf(err);
        html(403, 'Refused', `<p id="sp-refused">${escapeHtml((err as Error).message)}</p><pre id="sp-status">${escapeHtml(JSON.stringify(codes))}</pre>`);
      }
      return;
    }
    if (req.method === 'GET' && url.pathname === '/logout') {
      if (!lastProfile) return html(400, 'Not signed in', '<p id="sp-not-signed-in">nobody is signed in here</p>');
      res.writeHead(302, { location: await saml!.getLogoutUrlAsync(lastProfile, `sp-logout-${Date.now()}`, {}), 'cache-control': 'no-store' });
      res.end();
      return;
    }
    if (url.pathname === '/slo') {
      // A LogoutRequest from OneID (another app began the logout): this SP forgets the person
      // and answers with a LogoutResponse; a LogoutResponse answers the logout this SP began.
      const params = req.method === 'POST' ? await readForm(req) : Object.fromEntries(url.searchParams);
      const signed = req.method === 'POST' ? /<(?:\w+:)?Signature[\s>]/.test(Buffer.from(params.SAMLResponse ?? params.SAMLRequest ?? '', 'base64').toString('utf8')) : Boolean(params.Signature && params.SigAlg);
      try {
        if (params.SAMLRequest && req.method === 'GET') {
          const { profile } = await saml!.validateRedirectAsync(params, url.search.slice(1));
          if (!profile) throw new Error('no LogoutRequest');
          lastProfile = undefined;
          logoutRequestsReceived.push({ nameID: profile.nameID, sessionIndex: profile.sessionIndex, signed });
          res.writeHead(302, { location: await saml!.getLogoutResponseUrlAsync(profile, params.RelayState ?? '', {}, true), 'cache-control': 'no-store' });
          res.end();
          return;
        }
        const result = req.method === 'POST'
          ? await saml!.validatePostResponseAsync(params)
          : await saml!.validateRedirectAsync(params, url.search.slice(1));
        if (!result.loggedOut) throw new Error('not a LogoutResponse');
        lastProfile = undefined;
        html(200, 'Signed out', `<p id="sp-logged-out">Signed out</p><p id="sp-logout-signed">${signed ? 'signed' : 'unsigned'}</p>`);
      } catch (err) {
        html(403, 'Logout refused', `<p id="sp-logout-refused">${escapeHtml((err as Error).message)}</p>`);
      }
      return;
    }
    html(404, 'Not found', '<p>not found</p>');
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`SP error: ${err.message}`);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const entityId = `${origin}/metadata`;
  const acsUrl = `${origin}/acs`;
  // The IDs of the AuthnRequests this SP sent, for InResponseTo (one store for both instances).
  const sent = new Map<string, string>();
  const cacheProvider: CacheProvider = {
    saveAsync: async (key, value) => { sent.set(key, value); return { value, createdAt: Date.now() }; },
    getAsync: async (key) => sent.get(key) ?? null,
    removeAsync: async (key) => { const value = key === null ? undefined : sent.get(key); if (key !== null) sent.delete(key); return value ?? null; },
  };
  const config: SamlConfig = {
    entryPoint: `${issuer}/saml/sso`,
    logoutUrl: `${issuer}/saml/slo`,
    issuer: entityId,
    callbackUrl: acsUrl,
    logoutCallbackUrl: `${origin}/slo`,
    idpCert,
    idpIssuer: `${issuer}/saml/metadata`,
    audience: entityId,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: true,
    signatureAlgorithm: 'sha256', // OneID refuses SHA-1
    // The Response must answer a request this SP sent (node-saml's in-memory request cache).
    validateInResponseTo: ValidateInResponseTo.always,
    cacheProvider,
    ...options,
  };
  saml = new SAML(config);
  // node-saml DEFLATEs the AuthnRequest of its POST form too unless told not to; the HTTP-POST
  // binding (saml-bindings 3.5.4) carries the XML base64-encoded only, which OneID expects.
  samlPost = new SAML({ ...config, skipRequestCompression: true });
  return {
    origin,
    entityId,
    acsUrl,
    loginUrl: (binding = 'redirect') => `${origin}/login${binding === 'post' ? '?binding=post' : ''}`,
    logoutUrl: `${origin}/logout`,
    sloUrl: `${origin}/slo`,
    logoutRequestsReceived,
    saml,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
