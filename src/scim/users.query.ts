// Reads for SCIM Users, all in SQL: what a client may see, one user, and a filtered, sorted page.
//
// A SCIM client sees users that are not deprovisioned (SCIM-deleted) and, with a department-scoped
// token, only those with a department (primary or not) in the token's subtree. A page is one COUNT
// and one query: an inner query filters, sorts and pages the narrow rows (ids), and only the rows
// of the page are joined with their primary department and manager and get their groups (a
// correlated json_agg on group_members__user_id): never one query per user.
import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { subtreePattern } from '../directory/departments.repo.ts';
import { isUuid, toUser, USER_LABEL_SQL, type DbUserRow } from '../directory/users.repo.ts';
import { ScimError } from './errors.ts';
import { applyScimFilter, FORMATTED_SQL, SCIM_ENTERPRISE_USER_SCHEMA, SCIM_USER_SCHEMA, userFilterMapping } from './filter-sql.ts';
import type { ScimListParams } from './scim-list.ts';
import type { ScimUserRecord } from './users.mapper.ts';
import { runQuery } from '../db/prepared.ts';

/** `users as u` limited to what a client with this scope (a department path, or null) may see. */
export function visibleUsersQuery(db: Tx, scopePath: string | null): Knex.QueryBuilder {
  const q = db('users as u').whereNot('u.status', 'deprovisioned');
  if (scopePath) {
    q.whereExists((e) => e.select(db.raw('1')).from('user_departments as scope_ud').join('departments as scope_d', 'scope_d.id', 'scope_ud.department_id')
      .whereRaw("scope_ud.user_id = u.id and scope_d.path like ? escape '\\'", [subtreePattern(scopePath)]));
  }
  return q;
}

interface RecordRow extends DbUserRow {
  scim_department_id: string | null;
  scim_department_name: string | null;
  scim_department_path: string | null;
  scim_manager_id: string | null;
  scim_manager_display: string | null;
  scim_groups: { id: string; name: string }[] | string | null;
}

// A user as SCIM shows it: the user's row with their primary department, manager and groups.
const RECORD_COLUMNS = `u.*,
  pd.id as scim_department_id, pd.name as scim_department_name, pd.path as scim_department_path,
  m.id as scim_manager_id, ${USER_LABEL_SQL('m')} as scim_manager_display,
  (select coalesce(json_agg(json_build_object('id', g.id, 'name', g.name) order by lower(g.name), g.id), '[]'::json)
     from group_members gm join groups g on g.id = gm.group_id where gm.user_id = u.id) as scim_groups`;
const RECORD_JOINS = `
  left join lateral (select d.id, d.name, d.path from user_departments pud join departments d on d.id = pud.department_id
                      where pud.user_id = u.id and pud.is_primary limit 1) pd on true
  left join users m on m.id = u.manager_id and m.status <> 'deprovisioned'`;
// A department-scoped client sees a manager only if it could read that manager as a User: a
// manager outside its subtree is left out (neither id nor name), like any other user it cannot see.
const MANAGER_IN_SCOPE = ` and exists (select 1 from user_departments mud join departments md on md.id = mud.department_id
                      where mud.user_id = m.id and md.path like ? escape '\\')`;

/**
 * The users whose ids `ids` selects (a subquery with column `id`), as records: the joins and the
 * groups subquery run only for these rows.
 */
function recordsQuery(db: Tx, ids: Knex.QueryBuilder, scopePath: string | null, orderBy?: string): Knex.QueryBuilder {
  const q = db.from(ids.as('page')).join('users as u', 'u.id', 'page.id').select(db.raw(RECORD_COLUMNS));
  if (scopePath) q.joinRaw(RECORD_JOINS + MANAGER_IN_SCOPE, [subtreePattern(scopePath)]);
  else q.joinRaw(RECORD_JOINS);
  return orderBy ? q.orderByRaw(orderBy) : q;
}

function toRecord(r: RecordRow): ScimUserRecord {
  const groups = typeof r.scim_groups === 'string' ? JSON.parse(r.scim_groups) as { id: string; name: string }[] : r.scim_groups ?? [];
  return {
    user: toUser(r),
    department: r.scim_department_id ? { id: r.scim_department_id, name: r.scim_department_name!, path: r.scim_department_path! } : null,
    manager: r.scim_manager_id ? { id: r.scim_manager_id, display: r.scim_manager_display ?? '' } : null,
    groups,
  };
}

/** One user as the client sees it, or undefined (unknown id, malformed id, deprovisioned, out of scope). */
export async function findScimUser(db: Tx, id: string, scopePath: string | null): Promise<ScimUserRecord | undefined> {
  if (!isUuid(id)) return undefined;
  const rows = await runQuery<RecordRow>(db, recordsQuery(db, visibleUsersQuery(db, scopePath).where('u.id', id).select('u.id'), scopePath));
  return rows[0] && toRecord(rows[0]);
}

/** Locks the user row for a write if the client may see it; returns its version. */
export async function lockScimUser(trx: Knex.Transaction, id: string, scopePath: string | null): Promise<number | undefined> {
  if (!isUuid(id)) return undefined;
  const row = await visibleUsersQuery(trx, scopePath).where('u.id', id).forUpdate().first<{ version: number } | undefined>('u.version');
  return row?.version;
}

// ---- sorting

const ENT = SCIM_ENTERPRISE_USER_SCHEMA.toLowerCase();
const CORE = SCIM_USER_SCHEMA.toLowerCase();

/** sortBy attribute (lower-case, without the core URN) -> SQL expression. Case-insensitive attributes sort case-insensitively. */
const SORTS: Record<string, string> = {
  'id': 'u.id',
  'externalid': 'u.external_id',
  'username': 'u.username',
  'displayname': 'lower(u.display_name)',
  'name.formatted': `lower(${FORMATTED_SQL.replaceAll('{alias}', 'u')})`,
  'name.familyname': 'lower(u.family_name)',
  'name.givenname': 'lower(u.given_name)',
  'title': 'lower(u.title)',
  'locale': 'lower(u.locale)',
  'active': "(u.status = 'active')",
  'emails': 'u.email',
  'emails.value': 'u.email',
  'phonenumbers': 'u.phone',
  'phonenumbers.value': 'u.phone',
  'meta.created': 'u.created_at',
  'meta.lastmodified': 'u.updated_at',
  [`${ENT}:employeenumber`]: 'u.employee_number',
};

/** ORDER BY for a list: the sortBy attribute, then the order users were added in (added_seq, unique) so that pages are stable. */
export function userOrderBy(sortBy: string | undefined, sortOrder: 'ascending' | 'descending'): string {
  const stable = 'u.added_seq asc';
  if (!sortBy) return stable;
  let key = sortBy.trim().toLowerCase();
  if (key.startsWith(`${CORE}:`)) key = key.slice(CORE.length + 1);
  const expr = SORTS[key];
  if (!expr) {
    throw new ScimError(400, `sortBy ${JSON.stringify(sortBy.slice(0, 100))} is not supported; use one of userName, displayName, name.familyName, name.givenName, name.formatted, externalId, title, locale, active, emails, phoneNumbers, id, meta.created, meta.lastModified, ${SCIM_ENTERPRISE_USER_SCHEMA}:employeeNumber`, 'invalidValue');
  }
  return `${expr} ${sortOrder === 'descending' ? 'desc' : 'asc'}, ${stable}`;
}

/** Users per block of visible_user_blocks, as migration 20261201090000 counts them. */
const USER_BLOCK_SIZE = 1024;

// The block where position `startIndex` of everyone (not deprovisioned, in added_seq order) lies,
// from the per-block counts, and how many of the block's users come before it; then at most
// 1,023 index entries are skipped instead of startIndex - 1. Counts and users are read in one
// statement, so from one snapshot: the page is exactly the one OFFSET would give.
const BLOCK_PAGE_SQL = `
  with blocks as (
    select block, sum(delta) as n from visible_user_blocks group by block),
  target as (
    select block, ?::bigint - 1 - (upto - n) as skip
      from (select block, n, sum(n) over (order by block) as upto from blocks) b
     where upto >= ?::bigint
     order by block limit 1)
  select u.id from users u
   where u.status <> 'deprovisioned' and u.added_seq >= (select block * ${USER_BLOCK_SIZE} from target)
   order by u.added_seq
  offset (select skip from target) limit `;

/**
 * The ids of a page of everyone in the default order from startIndex (2 or more): see
 * BLOCK_PAGE_SQL. The page size (an integer from 0 to 1000, see scim-list.ts) is written into
 * the SQL, as for first pages: as a parameter, PostgreSQL's plan for any size guesses a tenth of
 * the table, looks far dearer than the plan for the size at hand, and the statement was planned
 * anew for every page.
 */
function blockPageIds(db: Tx, startIndex: number, count: number): Knex.QueryBuilder {
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`page size ${count} is not a count`);
  return db.select('block_page.id').from(db.raw(`(${BLOCK_PAGE_SQL}${count}) as block_page`, [startIndex, startIndex]));
}

/** totalResults and one page of users, filtered, sorted and paged in SQL. */
export async function listScimUsers(db: Tx, scopePath: string | null, params: ScimListParams): Promise<{ total: number; records: ScimUserRecord[] }> {
  const base = visibleUsersQuery(db, scopePath);
  // An extension of RFC 7644: unquoted values (`userName sw O`, `meta.created gt 2015-10-10T14:38:21Z`)
  // are read as strings, as Microsoft's SCIM test collection sends them. Every filter that is valid
  // under the RFC parses and means exactly the same; only filters the RFC rejects are affected.
  if (params.filter !== undefined) applyScimFilter(base, params.filter, userFilterMapping(scopePath), 'u', { allowUnquotedValues: true });
  const orderBy = userOrderBy(params.sortBy, params.sortOrder);
  // Everyone a client without a scope may see, unfiltered: the count the users table's triggers
  // keep (visible_user_counts); otherwise counted.
  const countQuery = params.filter === undefined && !scopePath
    ? db('visible_user_counts').select(db.raw('coalesce(sum(delta), 0) as count'))
    : base.clone().count({ count: '*' });
  // Sort and page on the narrow rows first (index-only scans for the default order, see
  // users__visible_added_seq); join the rest for the page only. The page and the count do not
  // depend on each other: on a pool they run at the same time.
  //
  // The first page (every lookup by filter: Entra and Okta look a user up before each change) and
  // its count are prepared statements named after their shape (see db/prepared.ts), the page size
  // (an integer from 0 to 1000, see scim-list.ts) written into the SQL: planning the page costs
  // PostgreSQL four times running it. A later page of everyone in the default order starts at its
  // block (blockPageIds); other later pages skip startIndex - 1 rows, planned for their offset
  // every time: a generic plan cannot know the offset and may read the whole table.
  const first = params.startIndex === 1;
  const byBlocks = !first && params.filter === undefined && !scopePath && !params.sortBy;
  const ids = byBlocks ? blockPageIds(db, params.startIndex, params.count) : base.clone().select('u.id').orderByRaw(orderBy);
  if (first) ids.limit(params.count, { skipBinding: true });
  else if (!byBlocks) ids.offset(params.startIndex - 1).limit(params.count);
  const select = <R>(q: Knex.QueryBuilder): Promise<R[]> => (first || byBlocks ? runQuery<R>(db, q) : q as unknown as Promise<R[]>);
  const [[counted], rows] = await Promise.all([
    select<{ count: number | string }>(countQuery),
    params.count === 0 ? [] : select<RecordRow>(recordsQuery(db, ids, scopePath, orderBy)),
  ]);
  return { total: Number(counted?.count ?? 0), records: rows.map(toRecord) };
}

/** The user with this id if the client may see it (for manager references). */
export async function findVisibleUser(db: Tx, id: string, scopePath: string | null): Promise<{ id: string } | undefined> {
  if (!isUuid(id)) return undefined;
  return visibleUsersQuery(db, scopePath).where('u.id', id).first<{ id: string } | undefined>('u.id');
}
