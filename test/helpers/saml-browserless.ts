// Drives a SAML sign-in at OneID over HTTP the way a browser would, with test/helpers/browser.ts's
// cookie-keeping Browser (the one the OIDC e2e tests use): the SP's AuthnRequest (a Redirect URL
// or a POSTed form), OneID's sign-in pages when it asks, redirects, and finally the page whose
// form posts SAMLResponse (and RelayState) to the SP's ACS URL. The browser does not post it: the
// test hands SAMLResponse to the SP library under test.
import { Browser, type Page } from './browser.ts';
import { decodeEntities } from './node-saml-sp.ts';

export interface SamlPost {
  /** The form's action: where OneID sends the browser with the Response. */
  acsUrl: string;
  SAMLResponse: string;
  RelayState?: string;
}

export interface SamlSignInResult extends SamlPost {
  html: string;
  page: Page;
  browser: Browser;
  /** Whether the password was typed into OneID's sign-in page on the way (false: an existing session was used). */
  signedIn: boolean;
}

export interface Credentials {
  login: string;
  password: string;
  /** An authenticator code, when OneID asks for a second factor. */
  totp?: () => Promise<string>;
}

/**
 * The auto-post form of a page: the form with a hidden SAMLResponse input, its action and fields
 * (entities decoded). undefined when the page has none.
 */
export function findAutoPostForm(html: string): SamlPost | undefined {
  for (const form of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const action = /\baction=(["'])(.*?)\1/i.exec(form[1]!)?.[2];
    const fields: Record<string, string> = {};
    for (const input of form[2]!.matchAll(/<input\b[^>]*>/gi)) {
      const name = /\bname=(["'])(.*?)\1/i.exec(input[0])?.[2];
      const value = /\bvalue=(["'])([\s\S]*?)\1/i.exec(input[0])?.[2];
      if (name !== undefined && value !== undefined) fields[decodeEntities(name)] = decodeEntities(value);
    }
    if (action !== undefined && fields.SAMLResponse !== undefined) {
      return { acsUrl: decodeEntities(action), SAMLResponse: fields.SAMLResponse, ...(fields.RelayState !== undefined ? { RelayState: fields.RelayState } : {}) };
    }
  }
  return undefined;
}

const hasForm = (page: Page, actionPart: string): boolean =>
  [...page.html.matchAll(/<form[^>]*action="([^"]*)"/g)].some((m) => m[1]!.includes(actionPart));

/**
 * From a page OneID rendered: signs in when it is the sign-in page (password, then a code if
 * asked and `credentials.totp` is given) and follows on to the auto-post page. Returns the last
 * page and its form (undefined when the last page has none, e.g. an error page).
 */
export async function continueToAutoPost(browser: Browser, first: Page, credentials?: Credentials): Promise<{ page: Page; post?: SamlPost; signedIn: boolean }> {
  let page = first;
  let signedIn = false;
  let codeSent = false;
  for (let step = 0; step < 6; step += 1) {
    const post = findAutoPostForm(page.html);
    if (post) return { page, post, signedIn };
    // Each secret is typed once: a page asking again (wrong password) is where the caller stops.
    if (credentials && !signedIn && hasForm(page, '/password') && /\/login\//.test(new URL(page.url).pathname)) {
      page = await browser.submit(page, '/password', { login: credentials.login, password: credentials.password });
      signedIn = true;
    } else if (credentials?.totp && !codeSent && hasForm(page, '/totp')) {
      page = await browser.submit(page, '/totp', { code: await credentials.totp() });
      codeSent = true;
    } else if (hasForm(page, '/continue') && /\/login\//.test(new URL(page.url).pathname)) {
      page = await browser.submit(page, '/continue', {}); // e.g. "recovery codes left" notices
    } else {
      break;
    }
  }
  return { page, signedIn };
}

export interface SamlStart {
  /** An SP's Redirect-binding URL (GET), or a form to POST to `<baseUrl>/saml/sso`. */
  redirectUrl?: string;
  post?: { SAMLRequest: string; RelayState?: string; action?: string };
}

/**
 * The whole SP-initiated round: the AuthnRequest into OneID, the sign-in if asked, and the
 * Response OneID posts to the ACS (also when it carries an error status). Throws with the page
 * reached when there is no auto-post form at the end.
 */
export async function samlSignIn(baseUrl: string, start: SamlStart, credentials?: Credentials, browser = new Browser()): Promise<SamlSignInResult> {
  const first = await startSaml(baseUrl, start, browser);
  const { page, post, signedIn } = await continueToAutoPost(browser, first, credentials);
  if (!post) throw new Error(`no SAMLResponse form at ${page.url} (status ${page.status}):\n${page.html.slice(0, 2000)}`);
  return { ...post, html: page.html, page, browser, signedIn };
}

/** Sends the AuthnRequest to OneID and follows its redirects to the first page it renders. */
export async function startSaml(baseUrl: string, start: SamlStart, browser: Browser): Promise<Page> {
  if (start.redirectUrl) return browser.navigate(start.redirectUrl);
  if (start.post) {
    const body = new URLSearchParams({ SAMLRequest: start.post.SAMLRequest, ...(start.post.RelayState !== undefined ? { RelayState: start.post.RelayState } : {}) });
    return browser.navigate(start.post.action ?? `${baseUrl}/saml/sso`, undefined, { method: 'POST', body });
  }
  throw new Error('samlSignIn needs a redirectUrl or a post');
}

/**
 * Follows redirects from `url` until one leads where `stop` says (an SP's SLO or ACS URL, which
 * is returned without being requested) or a page renders.
 */
export async function followRedirects(browser: Browser, url: string, stop: (url: string) => boolean): Promise<{ url: string; stopped: boolean; page?: Page }> {
  if (stop(url)) return { url, stopped: true };
  let current = url;
  let res = await browser.request(current);
  for (let hops = 0; hops < 20; hops += 1) {
    const location = res.headers.get('location');
    if (!(res.status >= 300 && res.status < 400 && location)) break;
    current = new URL(location, current).toString();
    if (stop(current)) return { url: current, stopped: true };
    res = await browser.request(current);
  }
  return { url: current, stopped: false, page: { url: current, status: res.status, html: await res.text(), headers: res.headers } };
}
