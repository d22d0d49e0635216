// The console's settings: signing keys (list, rotate), the password policy's minimum length and
// the default sign-in policy (a super_admin changes them; empty goes back to the environment's
// value), SCIM tokens (list, create with the token shown once, revoke). Each section is shown when the admin may call its route; each form
// posts to a page here that calls the admin API, and htmx swaps the section it answers with.
import type { Context } from 'koa';
import { page, type ConsolePage, type RegisterPages } from './pages.ts';
import { AppError } from '../shared/errors.ts';
import { PASSWORD_MIN_LENGTH } from '../credentials/password.ts';

interface SigningKey { kid: string; alg: string; state: string; createdAt: string }
interface ScimToken { id: string; name: string; departmentId: string | null; createdAt: string; lastUsedAt: string | null; revokedAt: string | null }
type Source = 'environment' | 'console';
interface Settings {
  passwordPolicy: { minLength: number; maxLength: number; rejectsCommonPasswords: boolean; source: Source; environment: { variable: string; minLength: number } };
  signInPolicyDefault: { level: string; source: Source; environment: { variable: string; level: string } };
}
/** What the policy form posted, as the admin typed it, shown again beside an error. */
interface PolicyForm { passwordMinLength: string; signInPolicyDefault: string }

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

/** The policies section: the values in force, and the form when the admin may change them. */
async function policiesSection(console: ConsolePage, extra: { saved?: boolean; unchanged?: boolean; error?: string; form?: PolicyForm } = {}): Promise<Record<string, unknown>> {
  const policies = await console.call<Settings>('get', '/settings');
  // The form shows what is stored: empty when the environment's value applies.
  const form: PolicyForm = extra.form ?? {
    passwordMinLength: policies.passwordPolicy.source === 'console' ? String(policies.passwordPolicy.minLength) : '',
    signInPolicyDefault: policies.signInPolicyDefault.source === 'console' ? policies.signInPolicyDefault.level : '',
  };
  return { policies, mayEditPolicies: console.may('patch', '/settings'), minLengthFloor: PASSWORD_MIN_LENGTH, policyForm: form, policySaved: extra.saved, policyUnchanged: extra.unchanged, policyError: extra.error };
}

/** The whole page: the sections this admin's roles may read. */
async function renderSettings(ctx: Context, issuer: string, extra: { keysNotice?: string; scim?: Record<string, unknown>; policies?: Parameters<typeof policiesSection>[1] } = {}, status = 200): Promise<void> {
  const console = page(ctx);
  const vars: Record<string, unknown> = { section: 'settings', scimUrl: `${issuer}${SCIM_PREFIX}` };
  if (console.may('get', '/keys')) Object.assign(vars, { showKeys: true }, await keysSection(console, extra.keysNotice));
  if (console.may('get', '/settings')) Object.assign(vars, await policiesSection(console, extra.policies));
  if (console.may('get', '/scim-tokens')) Object.assign(vars, { showScim: true }, await scimSection(console, extra.scim));
  vars.showDeadLetters = console.may('get', '/jobs/dead-letters');
  console.render('settings-index.njk', vars, status);
}

const isBadName = (err: unknown): boolean => err instanceof AppError && err.kind === 'invalid_argument';
const badField = (err: unknown): string | undefined =>
  (err instanceof AppError && err.kind === 'invalid_argument' ? String(err.details?.field ?? 'body') : undefined);

/**
 * The form's fields as the API's change: only what differs from what is stored; an empty field
 * is null (back to the environment's value). A length that is not digits goes to the API as typed,
 * which refuses it: the range is the API's rule, not the page's.
 */
function policyChange(form: PolicyForm, current: Settings): Record<string, unknown> {
  const change: Record<string, unknown> = {};
  const storedLength = current.passwordPolicy.source === 'console' ? current.passwordPolicy.minLength : null;
  const length = form.passwordMinLength.trim() === '' ? null : /^\d{1,4}$/.test(form.passwordMinLength.trim()) ? Number(form.passwordMinLength.trim()) : form.passwordMinLength;
  if (length !== storedLength) change.passwordMinLength = length;
  const storedLevel = current.signInPolicyDefault.source === 'console' ? current.signInPolicyDefault.level : null;
  const level = form.signInPolicyDefault === '' ? null : form.signInPolicyDefault;
  if (level !== storedLevel) change.signInPolicyDefault = level;
  return change;
}

export const registerSettingsPages: RegisterPages = (router, deps) => {
  router.get('/settings', async (ctx) => renderSettings(ctx, deps.issuer, {
    keysNotice: ctx.query.rotated === '1' ? 'rotated' : undefined,
    policies: { saved: ctx.query.policies === 'saved', unchanged: ctx.query.policies === 'unchanged' },
  }));

  router.post('/settings/policies', async (ctx) => {
    const console = page(ctx);
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const form: PolicyForm = { passwordMinLength: String(body.passwordMinLength ?? '').slice(0, 50), signInPolicyDefault: String(body.signInPolicyDefault ?? '').slice(0, 50) };
    const change = policyChange(form, await console.call<Settings>('get', '/settings'));
    let extra: Parameters<typeof policiesSection>[1] = { unchanged: true };
    let status = 200;
    if (Object.keys(change).length) {
      try {
        await console.call('patch', '/settings', { body: change });
        extra = { saved: true };
      } catch (err) {
        const field = badField(err);
        if (field === undefined) throw err;
        extra = { error: field === 'signInPolicyDefault' ? 'signInPolicyDefault' : 'passwordMinLength', form };
        status = 400;
      }
    }
    if (!console.partial) {
      if (status === 200) {
        ctx.redirect(`/admin/settings?policies=${extra.saved ? 'saved' : 'unchanged'}#policies`);
        return;
      }
      await renderSettings(ctx, deps.issuer, { policies: extra }, status);
      return;
    }
    console.render('settings-policies.njk', await policiesSection(console, extra), status);
  });

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
