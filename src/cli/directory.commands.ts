// `oneid departments ...` and `oneid groups ...`: JSON on stdout, changes audited as the CLI actor.
import { command, UsageError, type CommandDef } from './command.ts';
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

const userFlag = { type: 'id', required: true, value: 'USER_ID', help: 'the person', field: 'userId' } as const;

export const directoryCommands: Record<string, CommandDef> = {
  'departments create': command({
    summary: 'Create a department, at the top of the tree or under another one.',
    options: {
      name: { type: 'string', required: true, value: 'NAME', help: 'the department\'s name' },
      parent: { type: 'id', value: 'DEPARTMENT_ID', help: 'the department it belongs under (default: top level)', field: 'parentId' },
      manager: { type: 'id', value: 'USER_ID', help: 'the person who manages it', field: 'managerId' },
      'external-id': { type: 'string', value: 'X', help: 'the id an HR system knows it by' },
    },
    run: (o, { services, actor }) => services.departments.createDepartment({ name: o.name, parentId: o.parent, managerId: o.manager, externalId: o['external-id'] }, actor),
  }),
  'departments list': command({
    summary: 'List departments: all of them, those at the top level, or those directly under one.',
    options: {
      parent: { type: 'id', value: 'DEPARTMENT_ID', help: 'only the departments directly under this one' },
      root: { type: 'boolean', help: 'only the top-level departments' },
    },
    run: async (o, { services }) => {
      if (o.parent && o.root) throw new UsageError('use either --parent or --root, not both');
      if (o.parent) await services.departments.getDepartment(o.parent);
      const items = await all<Department>((after) => services.departments.listDepartments({
        parentId: o.root ? null : o.parent, after: after && { name: after.name, id: after.id }, limit: PAGE,
      }));
      return { items };
    },
  }),
  'departments move': command({
    summary: 'Move a department (with everything under it) under another department or to the top level.',
    options: {
      id: { type: 'id', required: true, value: 'DEPARTMENT_ID', help: 'the department to move' },
      parent: { type: 'id', value: 'DEPARTMENT_ID', help: 'its new parent', field: 'parentId' },
      root: { type: 'boolean', help: 'move it to the top level' },
    },
    run: (o, { services, actor }) => {
      if (Boolean(o.parent) === Boolean(o.root)) throw new UsageError('give exactly one of --parent ID or --root');
      return services.departments.moveDepartment(o.id, o.root ? null : o.parent!, actor);
    },
  }),
  'departments delete': command({
    summary: 'Delete an empty department.',
    options: { id: { type: 'id', required: true, value: 'DEPARTMENT_ID', help: 'the department' } },
    run: async (o, { services, actor }) => {
      await services.departments.deleteDepartment(o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'departments add-member': command({
    summary: 'Put a person in a department.',
    options: {
      id: { type: 'id', required: true, value: 'DEPARTMENT_ID', help: 'the department' },
      user: userFlag,
      primary: { type: 'boolean', help: 'make it the person\'s primary department' },
    },
    run: (o, { services, actor }) => services.departments.addMember(o.id, { userId: o.user, primary: o.primary ?? false }, actor),
  }),
  'departments remove-member': command({
    summary: 'Take a person out of a department.',
    options: { id: { type: 'id', required: true, value: 'DEPARTMENT_ID', help: 'the department' }, user: userFlag },
    run: async (o, { services, actor }) => {
      await services.departments.removeMember(o.id, o.user, actor);
      return { departmentId: o.id, userId: o.user, removed: true };
    },
  }),
  'groups create': command({
    summary: 'Create a group.',
    options: {
      name: { type: 'string', required: true, value: 'NAME', help: 'the group\'s name (unique)' },
      description: { type: 'string', value: 'TEXT', help: 'what the group is for' },
      'external-id': { type: 'string', value: 'X', help: 'the id another system knows it by' },
    },
    run: (o, { services, actor }) => services.groups.createGroup({ name: o.name, description: o.description, externalId: o['external-id'] }, actor),
  }),
  'groups list': command({
    summary: 'List groups by name.',
    options: { q: { type: 'string', value: 'PREFIX', help: 'only groups whose name starts with this' } },
    run: async (o, { services }) => ({ items: await all<Group>((after) => services.groups.listGroups({ q: o.q, afterName: after?.name, limit: PAGE })) }),
  }),
  'groups delete': command({
    summary: 'Delete a group (its members stay).',
    options: { id: { type: 'id', required: true, value: 'GROUP_ID', help: 'the group' } },
    run: async (o, { services, actor }) => {
      await services.groups.deleteGroup(o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'groups add-member': command({
    summary: 'Add a person to a group.',
    options: { id: { type: 'id', required: true, value: 'GROUP_ID', help: 'the group' }, user: userFlag },
    run: (o, { services, actor }) => services.groups.addMember(o.id, o.user, actor),
  }),
  'groups remove-member': command({
    summary: 'Remove a person from a group.',
    options: { id: { type: 'id', required: true, value: 'GROUP_ID', help: 'the group' }, user: userFlag },
    run: async (o, { services, actor }) => {
      await services.groups.removeMember(o.id, o.user, actor);
      return { groupId: o.id, userId: o.user, removed: true };
    },
  }),
};
