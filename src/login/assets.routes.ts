// The scripts OneID's pages load: for passkeys (the pages' CSP allows scripts from 'self'
// only): /assets/webauthn.js, the @simplewebauthn/browser bundle from node_modules, and
// /assets/passkey.js, OneID's own page script (views/assets/passkey.js); /assets/saml-post.js,
// which sends a SAML message on to its service provider; htmx and the portal's and console's
// stylesheet and script. Each is read once, at
// start, and served with a validator so that browsers revalidate cheaply after a release.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';

export const WEBAUTHN_SCRIPT_PATH = '/assets/webauthn.js';
export const PASSKEY_SCRIPT_PATH = '/assets/passkey.js';
/** Submits the form that carries a SAML message to a service provider (saml/sso.routes.ts). */
export const SAML_POST_SCRIPT_PATH = '/assets/saml-post.js';
/** The portal's and the console's pages: htmx 2.0 from node_modules, their stylesheet and small script. */
export const HTMX_SCRIPT_PATH = '/assets/htmx.js';
export const SHELL_SCRIPT_PATH = '/assets/shell.js';
export const SHELL_STYLE_PATH = '/assets/shell.css';

/** An hour: a release changes them rarely, and the ETag makes a later check a 304. */
const MAX_AGE_SECONDS = 3600;

/**
 * The browser bundle (UMD, global SimpleWebAuthnBrowser). The package exports only its module
 * entry points, so the bundle is found from the package's folder, next to that entry.
 */
function webauthnBundlePath(): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve('@simplewebauthn/browser'));
  for (let i = 0; i < 4; i += 1) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === '@simplewebauthn/browser') {
      return path.join(dir, 'dist', 'bundle', 'index.umd.min.js');
    }
    dir = path.dirname(dir);
  }
  throw new Error('@simplewebauthn/browser: package folder not found');
}

/** htmx's minified build (the package's main entry is its CommonJS build, beside it in dist/). */
function htmxPath(): string {
  return path.join(path.dirname(createRequire(import.meta.url).resolve('htmx.org')), 'htmx.min.js');
}

/** A file of views/assets at the project root: two levels up from src/login, three from the build's dist/src/login. */
function ownScriptPath(name: string): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../views/assets', name), path.resolve(here, '../../../views/assets', name)];
  return candidates.find((file) => fs.existsSync(file)) ?? candidates[0]!;
}

interface Asset { body: Buffer; etag: string }

const load = (file: string): Asset => {
  const body = fs.readFileSync(file);
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
};

export function assetsRouter(): Router {
  const assets = new Map<string, Asset>([
    [WEBAUTHN_SCRIPT_PATH, load(webauthnBundlePath())],
    [PASSKEY_SCRIPT_PATH, load(ownScriptPath('passkey.js'))],
    [SAML_POST_SCRIPT_PATH, load(ownScriptPath('saml-post.js'))],
    [HTMX_SCRIPT_PATH, load(htmxPath())],
    [SHELL_SCRIPT_PATH, load(ownScriptPath('shell.js'))],
    [SHELL_STYLE_PATH, load(ownScriptPath('shell.css'))],
  ]);
  const router = new Router();
  for (const [route, asset] of assets) {
    router.get(route, (ctx) => {
      ctx.set('Cache-Control', `public, max-age=${MAX_AGE_SECONDS}`);
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('ETag', asset.etag);
      ctx.type = route.endsWith('.css') ? 'text/css; charset=utf-8' : 'application/javascript; charset=utf-8';
      ctx.status = 200; // koa compares validators (ctx.fresh) only for a 2xx answer
      if (ctx.fresh) {
        ctx.status = 304;
        return;
      }
      ctx.body = asset.body;
    });
  }
  return router;
}
