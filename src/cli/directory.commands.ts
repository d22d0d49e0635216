// `oneid departments ...` and `oneid groups ...`: JSON on stdout, changes audited as the CLI actor.
import { options, required, UsageError, type Command } from './command.ts';
import type { Department } from '../directory/departments.repo.ts';
import type { Group } from '../directory/groups.repo.ts';

const PAGE = 500;

/** Reads every page of a keyset-paged list (the CLI prints whole lists for scripts). */
async function all<T>(fetch: (after: T | undefined) => Promise<T[]>): Promise<T[]> {
  const out: T[] = [];
  let after: T | undefined;
  for (;;) {
    const rows = await fetch(after);
    out.push(...rows);
    if (rows.length < PAGE) return out;
    after = rows[rows.length - 1];
  }
}

export const directoryCommands: Record<string, Command> = {
  'departments create': async (args, { services, actor }) => {
    const o = options(args, { name: { type: 'string' }, parent: { type: 'string' }, manager: { type: 'string' }, 'external-id': { type: 'string' } });
    return services.departments.createDepartment({ name: required(o.name, 'name'), parentId: o.parent, managerId: o.manager, externalId: o['external-id'] }, actor);
  },
  'departments list': async (args, { services }) => {
    const o = options(args, { parent: { type: 'string' }, root: { type: 'boolean' } });
    if (o.parent && o.root) throw new UsageError('use either --parent or --root');
    if (o.parent) await services.departments.getDepartment(o.parent);
    const items = await all<Department>((after) => services.departments.listDepartments({
      parentId: o.root ? null : o.parent, after: after && { name: after.name, id: after.id }, limit: PAGE,
    }));
    return { items };
  },
  'departments move': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' }, parent: { type: 'string' }, root: { type: 'boolean' } });
    if (Boolean(o.parent) === Boolean(o.root)) throw new UsageError('give exactly one of --parent ID or --root');
    return services.departments.moveDepartment(required(o.id, 'id'), o.root ? null : o.parent!, actor);
  },
  'departments delete': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' } });
    const id = required(o.id, 'id');
    await services.departments.deleteDepartment(id, actor);
    return { id, deleted: true };
  },
  'departments add-member': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' }, user: { type: 'string' }, primary: { type: 'boolean' } });
    return services.departments.addMember(required(o.id, 'id'), { userId: required(o.user, 'user'), primary: o.primary ?? false }, actor);
  },
  'departments remove-member': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' }, user: { type: 'string' } });
    const departmentId = required(o.id, 'id');
    const userId = required(o.user, 'user');
    await services.departments.removeMember(departmentId, userId, actor);
    return { departmentId, userId, removed: true };
  },
  'groups create': async (args, { services, actor }) => {
    const o = options(args, { name: { type: 'string' }, description: { type: 'string' }, 'external-id': { type: 'string' } });
    return services.groups.createGroup({ name: required(o.name, 'name'), description: o.description, externalId: o['external-id'] }, actor);
  },
  'groups list': async (args, { services }) => {
    const o = options(args, { q: { type: 'string' } });
    const items = await all<Group>((after) => services.groups.listGroups({ q: o.q, afterName: after?.name, limit: PAGE }));
    return { items };
  },
  'groups delete': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' } });
    const id = required(o.id, 'id');
    await services.groups.deleteGroup(id, actor);
    return { id, deleted: true };
  },
  'groups add-member': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' }, user: { type: 'string' } });
    return services.groups.addMember(required(o.id, 'id'), required(o.user, 'user'), actor);
  },
  'groups remove-member': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' }, user: { type: 'string' } });
    const groupId = required(o.id, 'id');
    const userId = required(o.user, 'user');
    await services.groups.removeMember(groupId, userId, actor);
    return { groupId, userId, removed: true };
  },
};

export const directoryUsage = `
  oneid departments create --name N [--parent ID] [--manager USERID] [--external-id X]
  oneid departments list [--parent ID | --root]
  oneid departments move --id ID --parent ID|--root
  oneid departments delete --id ID
  oneid departments add-member --id ID --user USERID [--primary]
  oneid departments remove-member --id ID --user USERID
  oneid groups create --name N [--description D] [--external-id X]
  oneid groups list [--q PREFIX]
  oneid groups delete --id ID
  oneid groups add-member --id ID --user USERID
  oneid groups remove-member --id ID --user USERID`;
