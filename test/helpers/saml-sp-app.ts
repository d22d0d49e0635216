// A SAML service provider as a small web app, for real-browser tests: node:http on 127.0.0.1
// (another site than OneID's http://localhost:<port>, so OneID's SameSite=Lax cookie is not sent
// on the cross-site POSTs between them, as in real life) around @node-saml/node-saml, configured
// by createNodeSamlSp (node-saml-sp.ts) from OneID's metadata.
//
//   GET  /login[?binding=post]  an AuthnRequest to OneID: a redirect (HTTP-Redirect binding), or
//                               node-saml's auto-submitting form (HTTP-POST binding)
//   POST /acs                   node-saml checks the Response (signatures, audience, issuer,
//                               InResponseTo, times); the page shows what the app learnt:
//                               #sp-signed-in with the profile as JSON in #sp-profile, or
//                               #sp-refused with the error and the SAML status codes in #sp-status
//   GET  /logout                an SP-initiated LogoutRequest (Redirect) for the last person signed in
//   GET  /slo                   a LogoutResponse (#sp-logged-out or #sp-logout-refused), or a
//                               LogoutRequest from OneID, answered with a LogoutResponse
//
// A test reads these pages in a browser, as a person would see them.
import http from 'node:http';
import type net from 'node:net';
import { SamlStatusError, type Profile, type SamlConfig } from '@node-saml/node-saml';
import { InMemoryCacheProvider } from '@node-saml/node-saml/lib/in-memory-cache-provider.js';
import { createNodeSamlSp, type NodeSamlSp } from './node-saml-sp.ts';

export interface SamlSpApp {
  origin: string;
  entityId: string;
  acsUrl: string;
  sloUrl: string;
  /** Where a browser starts a sign-in: the app's own login URL. */
  loginUrl(binding?: 'redirect' | 'post'): string;
  /** Where a browser starts an SP-initiated logout. */
  logoutUrl: string;
  /** The LogoutRequests OneID sent this SP (a logout another app or OneID began). */
  logoutRequestsReceived: Array<{ nameID: string; sessionIndex?: string }>;
  close(): Promise<void>;
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
const authnContextOf = (profile: Profile): string | undefined => /<(?:\w+:)?AuthnContextClassRef>([^<]+)</.exec(profile.getAssertionXml?.() ?? '')?.[1];

/**
 * Starts an SP web app that trusts OneID at `issuer`. `extra` goes to node-saml's constructor
 * (e.g. disableRequestedAuthnContext).
 */
export async function startSamlSpApp(issuer: string, extra: Partial<SamlConfig> = {}): Promise<SamlSpApp> {
  const sockets = new Set<net.Socket>();
  // Redirect and POST need two node-saml objects (skipRequestCompression is one setting for
  // both); they share the IDs of the requests sent, so either checks InResponseTo.
  let sp: { redirect: NodeSamlSp; post: NodeSamlSp } | undefined;
  /** The person last signed in (for the LogoutRequest's NameID and SessionIndex). */
  let lastProfile: Profile | undefined;
  const logoutRequestsReceived: SamlSpApp['logoutRequestsReceived'] = [];

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://sp.invalid');
    const html = (status: number, title: string, body: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page(title, body));
    };
    const redirect = (location: string) => {
      res.writeHead(302, { location, 'cache-control': 'no-store' });
      res.end();
    };
    if (req.method === 'GET' && url.pathname === '/login') {
      const relayState = `sp-${Date.now()}`;
      if (url.searchParams.get('binding') === 'post') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(await sp!.post.authorizeForm(relayState));
        return;
      }
      return redirect(await sp!.redirect.authorizeUrl(relayState));
    }
    if (req.method === 'POST' && url.pathname === '/acs') {
      const form = await readForm(req);
      try {
        const { profile } = await sp!.redirect.validatePostResponse(form.SAMLResponse ?? '', form.RelayState);
        if (!profile) throw new Error('no profile in the Response');
        lastProfile = profile;
        const shown = {
          nameID: profile.nameID, nameIDFormat: profile.nameIDFormat, sessionIndex: profile.sessionIndex,
          issuer: profile.issuer, authnContextClassRef: authnContextOf(profile), attributes: profile.attributes ?? {},
          relayState: form.RelayState ?? null,
        };
        html(200, 'Signed in', `<p id="sp-signed-in">Signed in as ${escapeHtml(String(profile.nameID))}</p><pre id="sp-profile">${escapeHtml(JSON.stringify(shown))}</pre>`);
      } catch (err) {
        html(403, 'Refused', `<p id="sp-refused">${escapeHtml((err as Error).message)}</p><pre id="sp-status">${escapeHtml(JSON.stringify(statusCodesOf(err)))}</pre>`);
      }
      return;
    }
    if (req.method === 'GET' && url.pathname === '/logout') {
      if (!lastProfile) return html(400, 'Not signed in', '<p id="sp-not-signed-in">nobody is signed in here</p>');
      return redirect(await sp!.redirect.logoutUrl(lastProfile, `sp-logout-${Date.now()}`));
    }
    if (req.method === 'GET' && url.pathname === '/slo') {
      try {
        if (url.searchParams.has('SAMLRequest')) {
          // OneID tells this SP of a logout begun elsewhere: forget the person, answer Success.
          const { profile } = await sp!.redirect.validateRedirect(url.search);
          if (!profile) throw new Error('no LogoutRequest');
          lastProfile = undefined;
          logoutRequestsReceived.push({ nameID: profile.nameID, sessionIndex: profile.sessionIndex });
          return redirect(await sp!.redirect.logoutResponseUrl(profile, url.searchParams.get('RelayState') ?? ''));
        }
        // Checked: signed by OneID, Success, InResponseTo a LogoutRequest this SP sent.
        await sp!.redirect.validateLogoutResponseRedirect(url.search);
        lastProfile = undefined;
        html(200, 'Signed out', '<p id="sp-logged-out">Signed out</p>');
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
  const close = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  const settings = { baseUrl: issuer, entityId: `${origin}/metadata`, acsUrl: `${origin}/acs`, sloUrl: `${origin}/slo`, extra };
  try {
    const redirectSp = await createNodeSamlSp(settings);
    const cache = redirectSp.cache as InMemoryCacheProvider;
    sp = { redirect: redirectSp, post: await createNodeSamlSp({ ...settings, metadata: redirectSp.metadata, postBinding: true, cache }) };
  } catch (err) {
    await close();
    throw err;
  }
  return {
    origin,
    entityId: settings.entityId,
    acsUrl: settings.acsUrl,
    sloUrl: settings.sloUrl,
    loginUrl: (binding = 'redirect') => `${origin}/login${binding === 'post' ? '?binding=post' : ''}`,
    logoutUrl: `${origin}/logout`,
    logoutRequestsReceived,
    close,
  };
}
