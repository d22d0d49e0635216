// The "Provisioning (SCIM)" section of an app's page (OIDC and SAML alike): set up, edit or remove
// the app's SCIM target, its status (counts, pending, last success, last full sync, failures with
// the app's own error), "Sync now" and the drift report (a dry run). Every read and write is the
// admin API's provisioning route run in process, so its roles, validation and audit apply; the
// token goes to the API and is never read back (the API never returns it).
import type { Context } from 'koa';
import type { ConsolePage, RegisterPages } from './pages.ts';
import { page, sendTo } from './pages.ts';
import { AppError } from '../shared/errors.ts';

/** Shapes of the API's answers (src/admin/provisioning.routes.ts), kept loose: the console only shows them. */
interface TargetView {
  appId: string; enabled: boolean; baseUrl: string; pushUsers: boolean; pushGroups: boolean;
  onUnassign: 'deactivate' | 'delete'; rolesAs: 'roles' | 'entitlements' | 'groups' | 'none'; attributeMapping: Record<string, string | null>; version: number; createdAt: string; updatedAt: string;
}
interface StatusView {
  counts: { pending: number; synced: number; failed: number }; held: number; pending: number; lastSuccessAt: string | null;
  failed: { kind: string; localId: string; remoteId: string | null; error: string | null; lastAttemptAt: string | null }[];
  lastFullSyncAt: string | null; lastFullSync: Record<string, unknown> | null;
}
type DriftEntry = { userId: string | null; remoteId: string | null; userName: string };
export interface DriftView {
  complete: boolean; checkedAt: string; appUsers: number;
  counts: { missing: number; unexpected: number; different: number; unmanaged: number };
  missing: DriftEntry[];
  unexpected: (DriftEntry & { active: boolean; expected: 'inactive' | 'absent' })[];
  different: (DriftEntry & { attributes: string[] })[];
}
type Form = Record<string, unknown>;

export const ON_UNASSIGN = ['deactivate', 'delete'] as const;
export const ROLES_AS = ['roles', 'entitlements', 'groups', 'none'] as const;
export const STATES = ['synced', 'pending', 'failed'] as const;

/** The notices a redirect may ask the app's page to show about provisioning. */
export const PROVISIONING_NOTICES = ['provisioning_saved', 'provisioning_removed', 'provisioning_sync_started'] as const;

const text = (form: Form, name: string): string => {
  const v = form[name];
  return typeof v === 'string' ? v.trim() : '';
};
const checked = (form: Form, name: string): boolean => ['on', 'true', '1'].includes(text(form, name));
const bodyOf = (ctx: Context): Form => (ctx.request.body ?? {}) as Form;
const param = (ctx: Context, name: string): string => String((ctx.params as Record<string, string>)[name] ?? '');
const shortTime = (iso: string | null | undefined): string | null => (typeof iso === 'string' && iso ? iso.replace('T', ' ').replace(/(:\d{2})\.\d+Z$/, '$1').replace(/Z$/, '') : null);

/** The last full sync's summary as lines to show: when, how many entitled, outcomes, whether it was cut short. */
function fullSyncOf(status: StatusView) {
  const s = status.lastFullSync;
  if (!s) return null;
  const outcomes = s.outcomes && typeof s.outcomes === 'object' ? Object.entries(s.outcomes as Record<string, number>).map(([outcome, count]) => ({ outcome, count })) : [];
  return {
    at: shortTime(status.lastFullSyncAt), finished: shortTime(typeof s.finishedAt === 'string' ? s.finishedAt : null),
    entitled: typeof s.entitled === 'number' ? s.entitled : 0, groups: typeof s.groups === 'number' ? s.groups : 0,
    outcomes, interrupted: typeof s.interrupted === 'string' ? s.interrupted : null,
    errors: Array.isArray(s.errors) ? (s.errors as { userId: string; error: string }[]).slice(0, 20) : [],
  };
}

/**
 * The failed people's names (the status carries their ids only): at most 20, one read each, and
 * only for an admin who may read people; someone deleted since keeps their id.
 */
async function peopleNames(c: ConsolePage, ids: string[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  if (!ids.length || !c.may('get', '/users/:id')) return names;
  await Promise.all([...new Set(ids)].slice(0, 20).map(async (id) => {
    try {
      const u = await c.call<{ username: string; name: string | null }>('get', '/users/:id', { params: { id } });
      names.set(id, u.name || u.username);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
    }
  }));
  return names;
}

/**
 * What the app's page shows about provisioning, or undefined when this admin may not read it.
 * `manageable`: the app's own guard (an app whose admin roles the admin lacks) allows changes.
 */
export async function provisioningSection(c: ConsolePage, appId: string, manageable: boolean) {
  if (!c.may('get', '/apps/:id/provisioning')) return undefined;
  let found: { target: TargetView; status: StatusView } | undefined;
  let unavailable = false;
  try {
    found = await c.call<{ target: TargetView; status: StatusView }>('get', '/apps/:id/provisioning', { params: { id: appId } });
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    // No target yet is the ordinary "not set up" state; a process without the master key cannot provision at all.
    if (err.code === 'provisioning.no_master_key') unavailable = true;
    else if (err.code !== 'provisioning.no_target') throw err;
  }
  const names = found ? await peopleNames(c, found.status.failed.filter((f) => f.kind === 'user').map((f) => f.localId)) : new Map<string, string>();
  const write = manageable && c.may('put', '/apps/:id/provisioning');
  return {
    unavailable,
    target: found?.target,
    noEnterprise: found ? withoutEnterprise(found.target.attributeMapping) : false,
    status: found ? {
      ...found.status, lastSuccess: shortTime(found.status.lastSuccessAt), fullSync: fullSyncOf(found.status),
      failed: found.status.failed.map((f) => ({ ...f, name: names.get(f.localId), lastAttempt: shortTime(f.lastAttemptAt) })),
    } : undefined,
    choices: { onUnassign: ON_UNASSIGN, rolesAs: ROLES_AS, states: STATES },
    may: {
      set: write && !unavailable,
      remove: manageable && c.may('delete', '/apps/:id/provisioning') && Boolean(found),
      sync: manageable && c.may('post', '/apps/:id/provisioning/sync') && Boolean(found),
      drift: c.may('get', '/apps/:id/provisioning/drift') && Boolean(found),
    },
  };
}

/** The enterprise extension's attributes OneID sends by default (docs/admin-api.md). */
const ENTERPRISE_DEFAULTS = ['enterprise.employeeNumber', 'enterprise.department', 'enterprise.manager'];
const isEnterprise = (attribute: string) => attribute.startsWith('enterprise.');

/** Whether a mapping leaves the enterprise extension out (an app whose schema lacks it refuses those attributes). */
export const withoutEnterprise = (mapping: Record<string, string | null>): boolean => ENTERPRISE_DEFAULTS.every((a) => mapping[a] === null);

/**
 * The mapping to send: the current one (set with the API or the CLI, which the form does not
 * show) with the enterprise extension left out or, unticked, its left-out attributes back to
 * the defaults. null when nothing differs from the defaults.
 */
function mappingOf(current: Record<string, string | null>, noEnterprise: boolean): Record<string, string | null> | null {
  const next: Record<string, string | null> = {};
  for (const [attribute, source] of Object.entries(current)) {
    if (isEnterprise(attribute) && (noEnterprise || source === null)) continue;
    next[attribute] = source;
  }
  if (noEnterprise) for (const a of new Set([...ENTERPRISE_DEFAULTS, ...Object.keys(current).filter(isEnterprise)])) next[a] = null;
  return Object.keys(next).length ? next : null;
}

/** The drift report as the page shows it. */
export const presentDrift = (d: DriftView) => ({ ...d, checked: shortTime(d.checkedAt) });

export const registerProvisioningPages: RegisterPages = (router) => {
  router.post('/apps/:id/provisioning', async (ctx) => {
    const c = page(ctx);
    const id = param(ctx, 'id');
    const form = bodyOf(ctx);
    // What the form does not show (set with the API or the CLI) is kept as it is: a PUT replaces the whole target.
    let current: TargetView | undefined;
    try {
      current = (await c.call<{ target: TargetView }>('get', '/apps/:id/provisioning', { params: { id } })).target;
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'provisioning.no_target') throw err;
    }
    const mapping = mappingOf(current?.attributeMapping ?? {}, checked(form, 'noEnterprise'));
    // The API needs the token on every PUT (it replaces the target whole and keeps no token it
    // was not given), so the edit form asks for it again; an empty field is the API's refusal.
    await c.call('put', '/apps/:id/provisioning', {
      params: { id },
      body: {
        baseUrl: text(form, 'baseUrl'), token: typeof form.token === 'string' ? form.token : '',
        enabled: current?.enabled ?? true, pushUsers: current?.pushUsers ?? true, attributeMapping: mapping,
        pushGroups: checked(form, 'pushGroups'),
        onUnassign: ON_UNASSIGN.find((v) => v === text(form, 'onUnassign')) ?? text(form, 'onUnassign'),
        rolesAs: ROLES_AS.find((v) => v === text(form, 'rolesAs')) ?? text(form, 'rolesAs'),
      },
    });
    sendTo(ctx, `/admin/apps/${id}?notice=provisioning_saved#provisioning`);
  });

  router.post('/apps/:id/provisioning/delete', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('delete', '/apps/:id/provisioning', { params: { id } });
    sendTo(ctx, `/admin/apps/${id}?notice=provisioning_removed#provisioning`);
  });

  router.post('/apps/:id/provisioning/sync', async (ctx) => {
    const id = param(ctx, 'id');
    await page(ctx).call('post', '/apps/:id/provisioning/sync', { params: { id } });
    sendTo(ctx, `/admin/apps/${id}?notice=provisioning_sync_started#provisioning`);
  });
};

export type { TargetView, StatusView };
export type ProvisioningSection = Awaited<ReturnType<typeof provisioningSection>>;
