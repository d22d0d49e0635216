// Where opening an app from the portal sends the browser. Only addresses the app itself
// registered are used (never one from the request), so /launch cannot be made an open redirect:
//  - a SAML app: OneID's IdP-initiated sign-on, which answers at the app's registered ACS URL;
//  - an OIDC app with an initiate_login_uri: OpenID Connect third-party-initiated login (Core 4),
//    the app is told which issuer to start a sign-in with (`iss`);
//  - another OIDC web app: its home, the origin of its first registered redirect URI.
// Service apps (no code flow) and native apps without an initiate_login_uri have no address a
// browser could open: they are not offered.
import { CONSOLE_CLIENT_ID, CONSOLE_PREFIX } from '../console/console-app.ts';
import { SAML_PATHS } from '../saml/paths.ts';
import type { LauncherApp } from './portal.repo.ts';

const webUrl = (value: string | null): URL | undefined => {
  if (!value) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : undefined;
  } catch {
    return undefined;
  }
};

/** The address that starts the app's sign-in, or undefined when the app cannot be opened from a browser. */
export function launchUrlOf(app: LauncherApp, issuer: string): string | undefined {
  if (app.clientId === CONSOLE_CLIENT_ID) return CONSOLE_PREFIX;
  if (app.protocol === 'saml') return `${SAML_PATHS(issuer).startPath}/${app.id}`;
  if (app.protocol !== 'oidc' || !app.interactive) return undefined;
  const initiate = webUrl(app.initiateLoginUri);
  if (initiate) {
    initiate.searchParams.set('iss', issuer);
    return initiate.toString();
  }
  if (app.applicationType === 'native') return undefined;
  const home = webUrl(app.firstRedirectUri);
  return home ? `${home.origin}/` : undefined;
}
