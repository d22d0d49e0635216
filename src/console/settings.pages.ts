// The console's settings: signing keys (list, rotate), the password and default sign-in policy
// (read-only: they come from the environment of every node), SCIM tokens (list, create with the
// token shown once, revoke). Each section is shown when the admin may call its route; each form
// posts to a page here that calls the admin API, and htmx swaps the section it answers with.
import type { Context } from 'koa';
import { page, type ConsolePage, type RegisterPages } from './pages.ts';
import { AppError } from '../shared/errors.ts';

interface SigningKey { kid: string; alg: string; state: string; createdAt: string }
interface ScimToken { id: string; name: string; departmentId: string | null; createdAt: string; lastUsedAt: string | null; revokedAt: string | null }
interface Settings {
  passwordPolicy: { minLength: number; maxLength: number; rejectsCommonPasswords: boolean; setBy: { minLength: string } };
  signInPolicyDefault: { level: string; setBy: string };
}

/** SCIM's base path (scim/index.ts SCIM_PREFIX), named here so that the console imports no other protocol. */
const SCIM_PREFIX = '/scim/v2';

const STATE_ORDER: Record<string, number> = { current: 0, next: 1, previous: 2, retired: 3 };
const shortTime = (iso: string | null): string | null => (iso ? iso.replace('T', ' ').replace(/(:\d{2})\.\d+Z$/, '$1').replace(/Z$/, '') : null);

async function keysSection(console: ConsolePage, notice?: string): Promise<Record<string, unknown>> {
  const { items } = await console.call<{ items: SigningKey[] }>('get', '/keys');
  const keys = [...items].sort((a, b) => STATE_ORDER[a.state]! - STATE_ORDER[b.state]! || a.alg.localeCompare(b.alg))
    .map((k) => ({ ...k, created: shortTime(k.createdAt) }));
  return { keys, mayRotate: console.may('post', '/keys/rotate'), keysNotice: notice };
}

async function scimSection(console: ConsolePage, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const { items } = await console.call<{ items: ScimToken[] }>('get', '/scim-tokens');
  // Active tokens first, newest first within each.
  const tokens = [...items].sort((a, b) => Number(Boolean(a.revokedAt)) - Number(Boolean(b.revokedAt)) || b.createdAt.localeCompare(a.createdAt))
    .map((tk) => ({ ...tk, created: shortTime(tk.createdAt), lastUsed: shortTime(tk.lastUsedAt) }));
  return {
    tokens,
    mayCreateToken: console.may('post', '/scim-tokens'),
    mayRevokeToken: console.may('post', '/scim-tokens/:id/revoke'),
    ...extra,
  };
}

/** The whole page: the sections this admin's roles may read. */
async function renderSettings(ctx: Context, issuer: string, extra: { keysNotice?: string; scim?: Record<string, unknown> } = {}, status = 200): Promise<void> {
  const console = page(ctx);
  const vars: Record<string, unknown> = { section: 'settings', scimUrl: `${issuer}${SCIM_PREFIX}` };
  if (console.may('get', '/keys')) Object.assign(vars, { showKeys: true }, await keysSection(console, extra.keysNotice));
  if (console.may('get', '/settings')) Object.assign(vars, { policies: await console.call<Settings>('get', '/settings') });
  if (console.may('get', '/scim-tokens')) Object.assign(vars, { showScim: true }, await scimSection(console, extra.scim));
  console.render('settings-index.njk', vars, status);
}

const isBadName = (err: unknown): boolean => err instanceof AppError && err.kind === 'invalid_argument';

export const registerSettingsPages: RegisterPages = (router, deps) => {
  router.get('/settings', async (ctx) => renderSettings(ctx, deps.issuer, { keysNotice: ctx.query.rotated === '1' ? 'rotated' : undefined }));

  router.post('/settings/keys/rotate', async (ctx) => {
    const console = page(ctx);
    await console.call('post', '/keys/rotate');
    if (!console.partial) {
      ctx.redirect('/admin/settings?rotated=1#keys');
      return;
    }
    console.render('settings-keys.njk', await keysSection(console, 'rotated'));
  });

  router.post('/settings/scim-tokens', async (ctx) => {
    const console = page(ctx);
    const name = String((ctx.request.body as Record<string, unknown> | undefined)?.name ?? '');
    const scimUrl = `${deps.issuer}${SCIM_PREFIX}`;
    let scim: Record<string, unknown>;
    let status = 201;
    try {
      const created = await console.call<ScimToken & { token: string }>('post', '/scim-tokens', { body: { name } });
      // Shown in this answer only: the page's GET never has it, and nothing here is cached
      // (the console answers everything with Cache-Control: no-store).
      scim = { newToken: { name: created.name, token: created.token } };
    } catch (err) {
      if (!isBadName(err)) throw err;
      scim = { nameError: true, nameValue: name };
      status = 400;
    }
    if (!console.partial) {
      await renderSettings(ctx, deps.issuer, { scim }, status);
      return;
    }
    console.render('settings-scim.njk', { scimUrl, ...(await scimSection(console, scim)) }, status);
  });

  router.post('/settings/scim-tokens/:id/revoke', async (ctx) => {
    const console = page(ctx);
    const revoked = await console.call<ScimToken>('post', '/scim-tokens/:id/revoke', { params: { id: ctx.params.id! } });
    if (!console.partial) {
      ctx.redirect('/admin/settings#scim');
      return;
    }
    console.render('settings-scim.njk', { scimUrl: `${deps.issuer}${SCIM_PREFIX}`, ...(await scimSection(console, { revokedName: revoked.name })) });
  });
};
