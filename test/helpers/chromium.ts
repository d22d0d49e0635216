// Real-browser tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core, which never
// downloads a browser of its own. Each `openBrowser()` is a separate Chromium process with a fresh
// profile directory, so two of them in one test are two people's (or one person's two) browsers
// that share nothing: no cookies, no storage, no authenticators.
//
// Passkeys: a DevTools virtual authenticator (CDP WebAuthn domain) stands in for a platform
// authenticator with user verification, so navigator.credentials.create/get are answered
// without any prompt.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type CDPSession, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--no-sandbox', // CI runs as root, where Chromium's sandbox refuses to start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking', // no calls home: a test must not depend on the internet
  '--disable-component-update',
  '--disable-sync',
];

export interface OpenBrowser {
  context: BrowserContext;
  /** The first tab. */
  page: Page;
  /** Closes Chromium and removes its profile directory; safe to call twice. */
  close(): Promise<void>;
}

const open = new Set<OpenBrowser>();

/** Starts a Chromium of its own (fresh profile, headless). Close it, or call closeAllBrowsers() in afterAll. */
export async function openBrowser(opts: { locale?: string } = {}): Promise<OpenBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM_PATH}: apt-get install chromium (.ci/run does this), or set CHROMIUM_PATH`);
  }
  const profile = await mkdtemp(path.join(tmpdir(), 'oneid-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      locale: opts.locale ?? 'en-US',
      timeout: 60000,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  // A launch that fails a test later must not leave it waiting: every step has a bounded wait.
  context.setDefaultTimeout(20000);
  context.setDefaultNavigationTimeout(30000);
  const page = context.pages()[0] ?? await context.newPage();
  let closing: Promise<void> | undefined;
  const handle: OpenBrowser = {
    context,
    page,
    close: () => {
      closing ??= (async () => {
        open.delete(handle);
        await context.close().catch(() => undefined);
        await rm(profile, { recursive: true, force: true }).catch(() => undefined);
      })();
      return closing;
    },
  };
  open.add(handle);
  return handle;
}

/** Closes every browser still open (afterAll), so jest never waits on a Chromium process. */
export async function closeAllBrowsers(): Promise<void> {
  await Promise.all([...open].map((b) => b.close()));
}

/** A credential as the virtual authenticator holds it (CDP WebAuthn.Credential). */
export interface VirtualCredential {
  credentialId: string; // base64 (standard alphabet, as CDP gives it)
  isResidentCredential: boolean;
  rpId?: string;
  userHandle?: string; // base64
  signCount: number;
  privateKey?: string; // base64 PKCS#8
  backupEligibility?: boolean;
  backupState?: boolean;
}

export interface VirtualAuthenticator {
  id: string;
  cdp: CDPSession;
  credentials(): Promise<VirtualCredential[]>;
  /** Whether the authenticator verifies its user (biometrics/PIN) from now on. */
  setUserVerified(verified: boolean): Promise<void>;
  /** Puts a credential (from another authenticator's credentials()) in this one: the same passkey in another browser. */
  addCredential(credential: VirtualCredential): Promise<void>;
  clearCredentials(): Promise<void>;
  remove(): Promise<void>;
}

/**
 * Adds a DevTools virtual authenticator to a page: a platform authenticator (internal transport,
 * CTAP2) that stores discoverable credentials, verifies its user and answers every request at once.
 * It belongs to the page (the tab), and survives navigations in it.
 */
export async function addVirtualAuthenticator(page: Page, opts: { backupEligible?: boolean } = {}): Promise<VirtualAuthenticator> {
  const cdp = await page.context().newCDPSession(page);
  // enableUI false: no account chooser or other browser dialog to wait for.
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      // Backup eligible = a synced passkey (amr 'swk'); otherwise device-bound ('hwk').
      ...(opts.backupEligible ? { defaultBackupEligibility: true, defaultBackupState: true } : {}),
    },
  });
  return {
    id: authenticatorId,
    cdp,
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials as VirtualCredential[],
    setUserVerified: async (isUserVerified) => { await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified }); },
    addCredential: async (credential) => {
      await cdp.send('WebAuthn.addCredential', {
        authenticatorId,
        credential: {
          credentialId: credential.credentialId, isResidentCredential: credential.isResidentCredential, rpId: credential.rpId,
          privateKey: credential.privateKey!, userHandle: credential.userHandle, signCount: credential.signCount,
          ...(credential.backupEligibility !== undefined ? { backupEligibility: credential.backupEligibility, backupState: credential.backupState } : {}),
        },
      });
    },
    clearCredentials: async () => { await cdp.send('WebAuthn.clearCredentials', { authenticatorId }); },
    remove: async () => { await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId }); },
  };
}

/** CDP's base64 credential id in the base64url form WebAuthn servers store. */
export const toBase64Url = (b64: string): string => Buffer.from(b64, 'base64').toString('base64url');

/**
 * Makes every page of `context` behave as if the person ignored the browser's passkey autofill
 * suggestion: a conditional-mediation request (navigator.credentials.get with mediation
 * 'conditional') stays pending until the page aborts it. A virtual authenticator answers such a
 * request at once, which would sign the person in before the test types a password or clicks
 * "Sign in with a passkey".
 */
export async function ignorePasskeyAutofill(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const credentials = navigator.credentials;
    const original = credentials.get.bind(credentials);
    credentials.get = (options?: CredentialRequestOptions) => {
      if (options?.mediation !== 'conditional') return original(options);
      return new Promise<Credential | null>((_resolve, reject) => {
        const signal = options.signal;
        signal?.addEventListener('abort', () => reject(signal.reason ?? new DOMException('The operation was aborted.', 'AbortError')), { once: true });
      });
    };
  });
}

/** Where a page is and what it says (for failure messages: a timeout alone says nothing). */
export async function describePage(page: Page): Promise<string> {
  const text = await page.locator('body').innerText({ timeout: 2000 }).catch(() => '(no body)');
  return `${page.url()}\n${text.replace(/\n{2,}/g, '\n').slice(0, 1200)}`;
}
