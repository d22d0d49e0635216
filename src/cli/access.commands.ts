// `oneid assignments ...`, `oneid app-roles ...` and `oneid apps list|get|rotate-secret|delete`
import { options, required, UsageError, type Command } from './command.ts';
import type { App } from '../apps/apps.repo.ts';

const app = (a: App) => ({
  id: a.id, name: a.name, client_id: a.clientId, access: a.access, first_party: a.firstParty,
  redirect_uris: a.oidc.redirect_uris, grant_types: a.oidc.grant_types, admin_roles: a.adminRoles,
  id_token_alg: a.oidc.id_token_signed_response_alg ?? 'RS256', allow_no_pkce: a.allowNoPkce, version: a.version,
});

export const accessCommands: Record<string, Command> = {
  'assignments create': async (args, { services, actor }) => {
    const o = options(args, {
      app: { type: 'string' }, user: { type: 'string' }, group: { type: 'string' }, department: { type: 'string' },
      'include-subdepartments': { type: 'boolean' }, role: { type: 'string', multiple: true },
    });
    const principals = (['user', 'group', 'department'] as const).filter((p) => o[p] !== undefined);
    if (principals.length !== 1) throw new UsageError('give exactly one of --user, --group or --department');
    const principalType = principals[0]!;
    return services.access.createAssignment(required(o.app, 'app'), {
      principalType,
      principalId: o[principalType]!,
      includeSubdepartments: o['include-subdepartments'],
      roleKeys: o.role,
    }, actor);
  },
  'assignments list': async (args, { services }) => {
    const o = options(args, { app: { type: 'string' } });
    const appId = required(o.app, 'app');
    const items = [];
    let after: { createdAt: string; id: string } | undefined;
    for (;;) {
      const rows = await services.access.listAssignments({ appId, after, limit: 500 });
      items.push(...rows);
      const last = rows[rows.length - 1];
      if (rows.length < 500 || !last) break;
      after = { createdAt: new Date(last.createdAt).toISOString(), id: last.id };
    }
    return { items };
  },
  'assignments delete': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' } });
    const id = required(o.id, 'id');
    await services.access.deleteAssignment(id, actor);
    return { id, deleted: true };
  },
  'app-roles create': async (args, { services, actor }) => {
    const o = options(args, { app: { type: 'string' }, key: { type: 'string' }, name: { type: 'string' }, description: { type: 'string' } });
    return services.apps.createRole(required(o.app, 'app'), {
      key: required(o.key, 'key'), name: required(o.name, 'name'), description: o.description,
    }, actor);
  },
  'app-roles list': async (args, { services }) => {
    const o = options(args, { app: { type: 'string' } });
    return { items: await services.apps.listRoles(required(o.app, 'app')) };
  },
  'app-roles delete': async (args, { services, actor }) => {
    const o = options(args, { app: { type: 'string' }, id: { type: 'string' } });
    const id = required(o.id, 'id');
    await services.apps.deleteRole(required(o.app, 'app'), id, actor);
    return { id, deleted: true };
  },
  'apps list': async (args, { services }) => {
    options(args, {});
    const items = [];
    let after: { createdAt: string; id: string } | undefined;
    for (;;) {
      const rows = await services.apps.listApps({ after, limit: 500 });
      items.push(...rows.map(app));
      const last = rows[rows.length - 1];
      if (rows.length < 500 || !last) break;
      after = { createdAt: new Date(last.createdAt).toISOString(), id: last.id };
    }
    return { items };
  },
  'apps get': async (args, { services }) => {
    const o = options(args, { id: { type: 'string' } });
    return app(await services.apps.getApp(required(o.id, 'id')));
  },
  'apps rotate-secret': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' } });
    const rotated = await services.apps.rotateSecret(required(o.id, 'id'), actor);
    return { id: rotated.app.id, client_id: rotated.app.clientId, client_secret: rotated.client_secret };
  },
  'apps delete': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' } });
    const id = required(o.id, 'id');
    await services.apps.deleteApp(id, actor);
    return { id, deleted: true };
  },
  'users entitlements': async (args, { services }) => {
    const o = options(args, { id: { type: 'string' }, app: { type: 'string' } });
    const userId = required(o.id, 'id');
    if (o.app) return { userId, appId: o.app, ...(await services.access.entitlementsOf(userId, o.app)) };
    return { items: await services.access.entitledAppsOf(userId) };
  },
};

export const accessUsage = `
  oneid apps list
  oneid apps get|rotate-secret|delete --id APP_ID
  oneid app-roles create --app APP_ID --key KEY --name NAME [--description TEXT]
  oneid app-roles list --app APP_ID
  oneid app-roles delete --app APP_ID --id ROLE_ID
  oneid assignments create --app APP_ID --user|--group|--department ID [--include-subdepartments] [--role KEY ...]
  oneid assignments list --app APP_ID
  oneid assignments delete --id ASSIGNMENT_ID
  oneid users entitlements --id USER_ID [--app APP_ID]`;
