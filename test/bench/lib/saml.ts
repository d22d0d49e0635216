// Row 7's SAML pieces: an SP's AuthnRequest by the HTTP-Redirect binding (unsigned, a fresh ID
// and IssueInstant each time, as node-saml sends them), the sign-in that gives a browser its OneID
// session once, and reading the Response out of OneID's auto-post page.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { CookieJar, FORM, request, type HttpResponse } from './http.ts';

export interface BenchSp {
  entityId: string;
  acsUrl: string;
}

/** The query string of GET /saml/sso carrying a new AuthnRequest from `sp`. */
export function authnRequestQuery(base: string, sp: BenchSp): string {
  const id = `_${randomBytes(20).toString('hex')}`;
  const xml = '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    + ` ID="${id}" Version="2.0" IssueInstant="${new Date().toISOString().slice(0, 19)}Z" Destination="${base}/saml/sso"`
    + ` ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" AssertionConsumerServiceURL="${sp.acsUrl}">`
    + `<saml:Issuer>${sp.entityId}</saml:Issuer>`
    + '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/>'
    + '</samlp:AuthnRequest>';
  return `SAMLRequest=${encodeURIComponent(deflateRawSync(Buffer.from(xml)).toString('base64'))}&RelayState=bench`;
}

/** The SAMLResponse of OneID's auto-post page (base64), or undefined when the page has none. */
export function samlResponseOf(html: string): string | undefined {
  const value = /name="SAMLResponse" value="([^"]+)"/.exec(html)?.[1];
  return value?.replace(/&#x2B;|&#43;/g, '+').replace(/&#x2F;|&#47;/g, '/').replace(/&#x3D;|&#61;/g, '=');
}

/** The assertion of a Response (OneID's own XML), without its signature: what the ceiling signs. */
export function unsignedAssertionOf(responseXml: string): { id: string; xml: string } {
  const xml = /<saml:Assertion[\s\S]*<\/saml:Assertion>/.exec(responseXml)?.[0];
  const id = xml && /^<saml:Assertion [^>]*\bID="([^"]+)"/.exec(xml)?.[1];
  if (!xml || !id) throw new Error('the Response carries no plain assertion');
  return { id, xml: xml.replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, '') };
}

/**
 * Signs `login` in through SAML once, as a browser does: GET /saml/sso -> the sign-in page ->
 * POST the password -> /saml/sso/continue/:id -> the auto-post page. Returns the browser's
 * cookies (OneID's session among them) and the Response it got.
 */
export async function samlSignIn(base: string, sp: BenchSp, login: string, password: string): Promise<{ cookie: string; response: string }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const jar = new CookieJar();
  const send = async (url: URL, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<HttpResponse> => {
    const headers: Record<string, string> = { accept: 'text/html', 'accept-language': 'en', ...init.headers };
    if (jar.header()) headers.cookie = jar.header();
    const res = await request(agent, url, { ...init, headers });
    jar.store(res.headers);
    return res;
  };
  const follow = async (url: URL, first: HttpResponse): Promise<{ url: URL; res: HttpResponse }> => {
    let current = url;
    let res = first;
    for (let hops = 0; hops < 10 && res.status >= 300 && res.status < 400 && res.headers.location; hops += 1) {
      current = new URL(res.headers.location, current);
      res = await send(current);
    }
    return { url: current, res };
  };
  try {
    const sso = new URL(`/saml/sso?${authnRequestQuery(base, sp)}`, base);
    const form = await follow(sso, await send(sso));
    const action = /<form method="post" action="([^"]*\/login\/[^"/]+\/password)"/.exec(form.res.body)?.[1];
    const csrf = /name="_csrf" value="([^"]*)"/.exec(form.res.body)?.[1];
    if (!action || !csrf) throw new Error(`SAML sign-in: expected the sign-in form, got ${form.res.status} at ${form.url.pathname}: ${form.res.body.slice(0, 300)}`);
    const post = new URL(action.replace(/&amp;/g, '&'), form.url);
    const done = await follow(post, await send(post, {
      method: 'POST', body: new URLSearchParams({ _csrf: csrf, login, password }).toString(), headers: { 'content-type': FORM },
    }));
    const response = samlResponseOf(done.res.body);
    if (done.res.status !== 200 || !response) throw new Error(`SAML sign-in: expected the auto-post page, got ${done.res.status} at ${done.url.pathname}: ${done.res.body.slice(0, 300)}`);
    return { cookie: jar.header(), response: Buffer.from(response, 'base64').toString('utf8') };
  } finally {
    agent.destroy();
  }
}
