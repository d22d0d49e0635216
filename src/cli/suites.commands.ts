// `oneid suites ...`: suites of apps, their members and roles, suite assignments and grants, as
// the admin API offers them (the CLI acts as the operator: no per-app guard).
import { command, UsageError, type CommandDef } from './command.ts';
import { parseSignInPolicyFlag, principalFlags, principalOf, signInPolicyFlag } from './access.commands.ts';
import type { Suite } from '../apps/suites.repo.ts';

const suiteFlag = { type: 'id', required: true, value: 'SUITE_ID', help: 'the suite' } as const;
const idFlag = (what: string) => ({ type: 'id', required: true, value: 'ID', help: what }) as const;
const suiteSettings = {
  description: { type: 'string', value: 'TEXT', help: 'what the suite is for (update: none clears it)' },
  'icon-url': { type: 'string', value: 'URL', help: 'an https image shown beside the suite in the portal (update: none clears it)', field: 'iconUrl' },
  position: { type: 'string', value: 'N', help: 'order in the portal, lowest first (default 0)' },
  'signin-policy': { ...signInPolicyFlag, help: 'inherited by the member apps unless theirs is stronger; default: none' },
  'suite-signout': { type: 'string', value: 'on|off', help: 'on: signing out of one member app ends the person\'s sessions in every member app', field: 'suiteSignout' },
} as const;

/** A whole number from a flag, or a usage error naming it. */
function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d{1,9}$/.test(value)) throw new UsageError(`--${flag} must be a whole number`);
  return Number(value);
}

const onOff = (flag: string, value: string | undefined): boolean | undefined => {
  if (value === undefined) return undefined;
  if (value !== 'on' && value !== 'off') throw new UsageError(`--${flag} must be on or off`);
  return value === 'on';
};

const orNone = (value: string | undefined): string | null | undefined => (value === 'none' ? null : value);

/** The suite's settings from the flags given (absent flags change nothing). */
function settings(o: Record<string, string | undefined>) {
  return {
    ...(o.description !== undefined ? { description: orNone(o.description) } : {}),
    ...(o['icon-url'] !== undefined ? { iconUrl: orNone(o['icon-url']) } : {}),
    ...(o.position !== undefined ? { position: integer('position', o.position) } : {}),
    ...(o['signin-policy'] !== undefined ? { signInPolicy: parseSignInPolicyFlag(o['signin-policy']) } : {}),
    ...(o['suite-signout'] !== undefined ? { suiteSignout: onOff('suite-signout', o['suite-signout']) } : {}),
  };
}

/** `--map sales=crm.sales --map sales=crm.viewer` -> { sales: ['crm.sales', 'crm.viewer'] }. */
function roleMap(pairs: string[] | undefined, none: boolean | undefined): Record<string, string[]> | undefined {
  if (none) {
    if (pairs?.length) throw new UsageError('give --map or --no-roles, not both');
    return {};
  }
  if (!pairs) return undefined;
  const map: Record<string, string[]> = {};
  for (const pair of pairs) {
    const m = /^([^=\s]+)=([^=\s]+)$/.exec(pair);
    if (!m) throw new UsageError(`--map must be SUITE_ROLE=APP_ROLE (got "${pair}")`);
    (map[m[1]!] ??= []).push(m[2]!);
  }
  return map;
}

/** A suite as the CLI prints it. */
const show = (s: Suite) => ({
  id: s.id, name: s.name, description: s.description, icon_url: s.iconUrl, position: s.position, signin_policy: s.signInPolicy,
  suite_signout: s.suiteSignout, version: s.version,
  apps: s.apps.map((a) => ({ app_id: a.appId, name: a.name, protocol: a.protocol, position: a.position, role_map: a.roleMap })),
  roles: s.roles,
});

export const suitesCommands: Record<string, CommandDef> = {
  'suites list': command({
    summary: 'List the suites in portal order.',
    options: {},
    run: async (_o, { services }) => {
      const items = [];
      let after: { position: number; name: string; id: string } | undefined;
      for (;;) {
        const rows = await services.suites.listSuites({ after, limit: 500 });
        items.push(...rows.map(show));
        const last = rows[rows.length - 1];
        if (rows.length < 500 || !last) break;
        after = { position: last.position, name: last.name, id: last.id };
      }
      return { items };
    },
  }),
  'suites show': command({
    summary: 'Show a suite with its apps (and their role maps) and its roles.',
    options: { id: idFlag('the suite') },
    run: async (o, { services }) => show(await services.suites.getSuite(o.id)),
  }),
  'suites create': command({
    summary: 'Create a suite: a set of apps that work as one product.',
    options: { name: { type: 'string', required: true, value: 'NAME', help: 'the suite\'s name, shown in the portal' }, ...suiteSettings },
    run: async (o, { services, actor }) => show(await services.suites.createSuite({ name: o.name, ...settings(o) }, actor)),
  }),
  'suites update': command({
    summary: 'Change a suite\'s name, description, icon, order, sign-in policy or suite-wide sign-out.',
    details: 'A new sign-in policy reaches the member apps at once.',
    options: { id: idFlag('the suite'), name: { type: 'string', value: 'NAME', help: 'a new name' }, ...suiteSettings },
    run: async (o, { services, actor }) => {
      const changes = { ...(o.name !== undefined ? { name: o.name } : {}), ...settings(o) };
      if (!Object.keys(changes).length) throw new UsageError('nothing to change: give --name, --description, --icon-url, --position, --signin-policy or --suite-signout');
      return show(await services.suites.updateSuite(o.id, changes, actor));
    },
  }),
  'suites delete': command({
    summary: 'Delete a suite: the access it gave goes, its grants end.',
    options: { id: idFlag('the suite') },
    run: async (o, { services, actor }) => {
      await services.suites.deleteSuite(o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'suites apps add': command({
    summary: 'Add an app to a suite, or change its order or role map; everyone the suite is assigned to gets it.',
    details: 'Each --map SUITE_ROLE=APP_ROLE says that the suite role gives that role of this app; the maps given replace the app\'s map.',
    options: {
      suite: suiteFlag,
      app: { type: 'id', required: true, value: 'APP_ID', help: 'the app (its id, not its client_id)' },
      position: { type: 'string', value: 'N', help: 'order inside the suite' },
      map: { type: 'string', multiple: true, value: 'SUITE_ROLE=APP_ROLE', help: 'a suite role and a role of this app it gives', field: 'roleMap' },
      'no-roles': { type: 'boolean', help: 'clear the app\'s role map (people keep the app, without roles from the suite)' },
    },
    run: async (o, { services, actor }) => {
      const map = roleMap(o.map, o['no-roles']);
      return show(await services.suites.putApp(o.suite, o.app, {
        ...(o.position !== undefined ? { position: integer('position', o.position) } : {}),
        ...(map !== undefined ? { roleMap: map } : {}),
      }, actor));
    },
  }),
  'suites apps remove': command({
    summary: 'Remove an app from a suite: the access the suite gave in it goes, and so do grants naming it.',
    options: { suite: suiteFlag, app: { type: 'id', required: true, value: 'APP_ID', help: 'the app' } },
    run: async (o, { services, actor }) => {
      await services.suites.removeApp(o.suite, o.app, actor);
      return { suite_id: o.suite, app_id: o.app, removed: true };
    },
  }),
  'suites roles add': command({
    summary: 'Define a suite role (map it to app roles with `oneid suites apps add --map`).',
    options: {
      suite: suiteFlag,
      key: { type: 'string', required: true, value: 'KEY', help: 'the role\'s stable key, e.g. sales' },
      name: { type: 'string', required: true, value: 'NAME', help: 'its display name' },
      description: { type: 'string', value: 'TEXT', help: 'what the role is for' },
    },
    run: (o, { services, actor }) => services.suites.createRole(o.suite, { key: o.key, name: o.name, description: o.description }, actor),
  }),
  'suites roles remove': command({
    summary: 'Delete a suite role: the app roles it gave through the suite go.',
    options: { suite: suiteFlag, id: idFlag('the suite role') },
    run: async (o, { services, actor }) => {
      await services.suites.deleteRole(o.suite, o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'suites assign': command({
    summary: 'Give a person, a group or a department every app of a suite, with suite roles.',
    options: {
      suite: suiteFlag,
      ...principalFlags,
      role: { type: 'string', multiple: true, value: 'KEY', help: 'a suite role to give (its key)', field: 'roleKeys' },
    },
    run: (o, { services, actor }) => {
      return services.suites.createAssignment(o.suite, { ...principalOf(o), roleKeys: o.role }, actor);
    },
  }),
  'suites unassign': command({
    summary: 'Remove a suite assignment and exactly the access it gave.',
    options: { suite: suiteFlag, id: idFlag('the suite assignment (from `oneid suites assign`)') },
    run: async (o, { services, actor }) => {
      await services.suites.deleteAssignment(o.suite, o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'suites grants add': command({
    summary: 'Approve, once for everyone, that one app of the suite may call another\'s API for the signed-in person.',
    options: {
      suite: suiteFlag,
      client: { type: 'id', required: true, value: 'APP_ID', help: 'the app that acts (a confidential OpenID Connect app)', field: 'clientAppId' },
      audience: { type: 'id', required: true, value: 'APP_ID', help: 'the app whose API it calls', field: 'audienceAppId' },
      scope: { type: 'string', multiple: true, value: 'SCOPE', help: 'a scope the client may ask for at the audience', field: 'scopes' },
      role: { type: 'string', multiple: true, value: 'KEY', help: 'a role of the audience app the tokens may carry (default: all the person holds)', field: 'roles' },
      'min-signin-policy': { ...signInPolicyFlag, help: 'the least the person\'s sign-in must reach', field: 'minSignInPolicy' },
      'max-age': { type: 'string', value: 'SECONDS', help: 'the oldest the person\'s sign-in may be', field: 'maxAgeSeconds' },
    },
    run: (o, { services, actor }) => services.suites.createGrant(o.suite, {
      clientAppId: o.client, audienceAppId: o.audience, scopes: o.scope ?? [], roles: o.role ?? null,
      minSignInPolicy: o['min-signin-policy'] === undefined ? null : parseSignInPolicyFlag(o['min-signin-policy']),
      maxAgeSeconds: integer('max-age', o['max-age']) ?? null,
    }, actor),
  }),
  'suites grants list': command({
    summary: 'List a suite\'s grants.',
    options: { suite: suiteFlag },
    run: async (o, { services }) => ({ items: await services.suites.listGrants(o.suite) }),
  }),
  'suites grants revoke': command({
    summary: 'Revoke a grant: the client app can no longer act for people at the audience app through it.',
    options: { suite: suiteFlag, id: idFlag('the grant') },
    run: async (o, { services, actor }) => {
      await services.suites.deleteGrant(o.suite, o.id, actor);
      return { id: o.id, revoked: true };
    },
  }),
};
