// Who an app's provisioning pushes, as sets read in pages: the people entitled to the app (the
// same rule as access/entitlements.ts, asked the other way round: per app, not per person), the
// holders of one app role, the groups assigned to the app and their members.
//
// Pages are keyset pages over user ids (`id > after order by id limit n`), so a sync of 10,000
// people never holds more than a page, and a sync that is run again after a crash simply walks
// the same set again.
import type { Tx } from '../db/knex.ts';

/**
 * The ids of the active users an assignment of the app reaches (directly, through a group, a
 * department, or an ancestor department assigned with its sub-departments), as a CTE `reached`.
 * With a role id, only through assignments that give that role. Bindings: appId[, roleId].
 */
function reachedCte(withRole: boolean): string {
  const assignmentsOfApp = withRole
    ? `select a.* from assignments a join assignment_roles ar on ar.assignment_id = a.id where a.app_id = ? and ar.app_role_id = ?`
    : `select a.* from assignments a where a.app_id = ?`;
  return `a as (${assignmentsOfApp}),
    reached as (
      select a.principal_id as user_id from a where a.principal_type = 'user'
      union
      select gm.user_id from a join group_members gm on a.principal_type = 'group' and gm.group_id = a.principal_id
      union
      -- the assigned department itself, and with include_subdepartments every department below it
      -- (its materialised path starts with the assigned department's path)
      select ud.user_id
        from a
        join departments ad on a.principal_type = 'department' and ad.id = a.principal_id
        join departments d on d.id = ad.id or (a.include_subdepartments and d.path like ad.path || '%')
        join user_departments ud on ud.department_id = d.id
    )`;
}

/**
 * A page of the people entitled to the app, by id after `after` (use '' to start). An app open
 * to everyone entitles every active user; roles still come from assignments.
 */
export async function entitledUserIdsPage(db: Tx, appId: string, after: string, limit: number): Promise<string[]> {
  const app = await db('apps').where({ id: appId }).first<{ access: string } | undefined>('access');
  if (!app) return [];
  const afterId = after || '00000000-0000-0000-0000-000000000000';
  if (app.access === 'everyone') {
    const rows: { id: string }[] = await db('users').where({ status: 'active' }).andWhere('id', '>', afterId).orderBy('id').limit(limit).select('id');
    return rows.map((r) => r.id);
  }
  const result = await db.raw(`with ${reachedCte(false)}
    select u.id from users u
     where u.status = 'active' and u.id > ? and u.id in (select user_id from reached)
     order by u.id limit ?`, [appId, afterId, limit]);
  return (result.rows as { id: string }[]).map((r) => r.id);
}

/** Every page of entitledUserIdsPage, as one stream of pages. */
export async function* entitledUserPages(db: Tx, appId: string, pageSize: number): AsyncGenerator<string[]> {
  for (let after = ''; ;) {
    const page = await entitledUserIdsPage(db, appId, after, pageSize);
    if (!page.length) return;
    yield page;
    after = page[page.length - 1]!;
  }
}

/**
 * A page of the people the app holds (a remote id, not deleted) whom it no longer entitles:
 * suspended, deprovisioned, gone, or no assignment reaches them. By local id after `after`.
 */
export async function heldNotEntitledPage(db: Tx, appId: string, after: string, limit: number): Promise<string[]> {
  const app = await db('apps').where({ id: appId }).first<{ access: string } | undefined>('access');
  const everyone = app?.access === 'everyone';
  const result = await db.raw(`with ${reachedCte(false)}
    select po.local_id from provisioned_objects po
     where po.app_id = ? and po.kind = 'user' and po.remote_id is not null and po.deleted_at is null and po.local_id > ?
       and not exists (
         select 1 from users u
          where u.id::text = po.local_id and u.status = 'active'
            and (? or u.id in (select user_id from reached)))
     order by po.local_id limit ?`, [appId, appId, after, everyone, limit]);
  return (result.rows as { local_id: string }[]).map((r) => r.local_id);
}

/** A page of the active people holding one role of the app (for role groups), by id. */
export async function roleHolderIdsPage(db: Tx, appId: string, roleId: string, after: string, limit: number): Promise<string[]> {
  const afterId = after || '00000000-0000-0000-0000-000000000000';
  const result = await db.raw(`with ${reachedCte(true)}
    select u.id from users u
     where u.status = 'active' and u.id > ? and u.id in (select user_id from reached)
     order by u.id limit ?`, [appId, roleId, afterId, limit]);
  return (result.rows as { id: string }[]).map((r) => r.id);
}

/** The groups assigned to the app (the groups that go out when the target pushes groups). */
export async function assignedGroups(db: Tx, appId: string): Promise<{ id: string; name: string }[]> {
  return db('groups as g')
    .whereIn('g.id', db('assignments').where({ app_id: appId, principal_type: 'group' }).select('principal_id'))
    .orderBy('g.id').select('g.id', 'g.name');
}

export async function isGroupAssigned(db: Tx, appId: string, groupId: string): Promise<boolean> {
  return Boolean(await db('assignments').where({ app_id: appId, principal_type: 'group', principal_id: groupId }).first('id'));
}

/** A page of a group's active members, by id. */
export async function groupMemberIdsPage(db: Tx, groupId: string, after: string, limit: number): Promise<string[]> {
  const rows: { id: string }[] = await db('group_members as gm').join('users as u', 'u.id', 'gm.user_id')
    .where('gm.group_id', groupId).andWhere('u.status', 'active').andWhere('u.id', '>', after || '00000000-0000-0000-0000-000000000000')
    .orderBy('u.id').limit(limit).select('u.id');
  return rows.map((r) => r.id);
}

/** Apps (with a target or not) whose assignments name any of these groups or departments. */
export async function appsAssignedTo(db: Tx, principalType: 'group' | 'department', ids: readonly string[]): Promise<string[]> {
  if (!ids.length) return [];
  const rows: { app_id: string }[] = await db('assignments').where({ principal_type: principalType }).whereIn('principal_id', ids).distinct('app_id');
  return rows.map((r) => r.app_id);
}
