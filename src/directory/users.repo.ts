import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { run, statement } from '../db/prepared.ts';
import { foldName } from '../shared/names.ts';

export type UserStatus = 'active' | 'suspended' | 'deprovisioned';

export interface UserEmail { value: string; type?: string; primary?: boolean; display?: string }

export interface DbUserRow {
  id: string;
  username: string;
  email: string | null;
  email_verified: boolean;
  emails: UserEmail[];
  given_name: string | null;
  family_name: string | null;
  display_name: string | null;
  locale: string | null;
  phone: string | null;
  employee_number: string | null;
  title: string | null;
  manager_id: string | null;
  custom_attributes: Record<string, unknown>;
  /** Attributes a SCIM client sent that OneID does not model, kept for that client (opaque here). */
  scim_attributes: Record<string, unknown>;
  external_id: string | null;
  status: UserStatus;
  status_changed_at: Date | null;
  /** Last time every session of the person was ended without a status change (a password set). */
  sessions_ended_at?: Date | null;
  admin_roles: string[];
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface User {
  id: string;
  username: string;
  email: string | null;
  emailVerified: boolean;
  emails: UserEmail[];
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  locale: string | null;
  phone: string | null;
  employeeNumber: string | null;
  title: string | null;
  managerId: string | null;
  customAttributes: Record<string, unknown>;
  scimAttributes: Record<string, unknown>;
  externalId: string | null;
  status: UserStatus;
  adminRoles: string[];
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export const toUser = (r: DbUserRow): User => ({
  id: r.id,
  username: r.username,
  email: r.email,
  emailVerified: r.email_verified,
  emails: r.emails ?? [],
  givenName: r.given_name,
  familyName: r.family_name,
  displayName: r.display_name,
  locale: r.locale,
  phone: r.phone ?? null,
  employeeNumber: r.employee_number ?? null,
  title: r.title ?? null,
  managerId: r.manager_id ?? null,
  customAttributes: r.custom_attributes ?? {},
  scimAttributes: r.scim_attributes ?? {},
  externalId: r.external_id ?? null,
  status: r.status,
  adminRoles: r.admin_roles,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID.test(value);

/** SQL for a user's label: display name, else "given family", else the username. */
export const USER_LABEL_SQL = (alias: string): string =>
  `coalesce(nullif(${alias}.display_name, ''), nullif(trim(concat_ws(' ', ${alias}.given_name, ${alias}.family_name)), ''), ${alias}.username)`;

// Read on sign-in and by oidc-provider's findAccount: a prepared statement (see db/prepared.ts).
const BY_ID = statement('user_by_id', 'select * from users where id = ?');

export async function findUserById(db: Tx, id: string): Promise<User | undefined> {
  return (await findUserWithSessionsEnd(db, id))?.user;
}

/** The user and the last time every session of theirs was ended (users.sessions_ended_at), in one read. */
export async function findUserWithSessionsEnd(db: Tx, id: string): Promise<{ user: User; sessionsEndedAt: Date | null } | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await run<DbUserRow>(db, BY_ID, [id]);
  return row ? { user: toUser(row), sessionsEndedAt: row.sessions_ended_at ?? null } : undefined;
}

// Every password sign-in: the user a sign-in name belongs to and their password credential, in
// one prepared statement. Usernames and sign-in emails are one namespace, sign_in_names (kept by
// a trigger on users, see migration 20261206130000): a name belongs to at most one account, so
// there is one rule and no order between a username and an email match. Each row is found by its
// own key (the name, then the user's id): a prepared statement keeps the plan its connection made
// first, and a plan made while the tables were small must not read every user on each sign-in.
const BY_SIGN_IN_NAME_WITH_PASSWORD = statement('user_by_sign_in_name_with_password', `
  with u as (
    select * from users where id = (select user_id from sign_in_names where name = ?) offset 0
  )
  select u.*, c.id as password_credential_id, c.data as password_credential_data
    from u
    left join credentials c on c.user_id = (select id from u) and c.type = 'password'`);

/** The user a sign-in names (username or email, folded as stored), with their password credential when they have one. */
export async function findUserByLoginWithPassword(db: Tx, login: string): Promise<{ user: User; password?: DbCredentialRow; sessionsEndedAt: Date | null } | undefined> {
  const [row] = await run<DbUserRow & { password_credential_id: string | null; password_credential_data: DbCredentialRow['data'] | null }>(
    db, BY_SIGN_IN_NAME_WITH_PASSWORD, [foldName(login)]);
  if (!row) return undefined;
  const password = row.password_credential_id
    ? { id: row.password_credential_id, user_id: row.id, type: 'password', data: row.password_credential_data ?? {} }
    : undefined;
  return { user: toUser(row), sessionsEndedAt: row.sessions_ended_at ?? null, ...(password ? { password } : {}) };
}

type InsertableUser = Pick<DbUserRow, 'id' | 'username' | 'email' | 'email_verified' | 'given_name' | 'family_name' | 'display_name' | 'locale' | 'status' | 'admin_roles'>
  & Partial<Pick<DbUserRow, 'emails' | 'phone' | 'employee_number' | 'title' | 'manager_id' | 'custom_attributes' | 'scim_attributes' | 'external_id'>>;

const jsonColumns = (row: Partial<DbUserRow>): Record<string, unknown> => ({
  ...row,
  ...(row.emails !== undefined ? { emails: JSON.stringify(row.emails) } : {}),
  ...(row.custom_attributes !== undefined ? { custom_attributes: JSON.stringify(row.custom_attributes) } : {}),
  ...(row.scim_attributes !== undefined ? { scim_attributes: JSON.stringify(row.scim_attributes) } : {}),
});

export async function insertUser(db: Tx, row: InsertableUser): Promise<User> {
  const values = jsonColumns(row as Partial<DbUserRow>);
  values.admin_roles = db.raw('?::text[]', [row.admin_roles]);
  const [inserted] = await db('users').insert(values).returning('*');
  return toUser(inserted as DbUserRow);
}

/**
 * Updates columns and bumps the version. With expectedVersion, updates only if the row is
 * still at that version; returns undefined when nothing matched.
 */
export async function updateUserById(db: Tx, id: string, changes: Partial<DbUserRow>, expectedVersion?: number): Promise<User | undefined> {
  const values = jsonColumns(changes);
  if (changes.admin_roles) values.admin_roles = db.raw('?::text[]', [changes.admin_roles]);
  const query = db('users').where({ id }).update({ ...values, version: db.raw('version + 1'), updated_at: db.fn.now() }).returning('*');
  if (expectedVersion !== undefined) query.andWhere({ version: expectedVersion });
  const [row] = await query;
  return row ? toUser(row as DbUserRow) : undefined;
}

/**
 * Bumps the version (the ETag) of a user whose representation changed through another table
 * (e.g. their primary department), so that caches and If-Match see the change.
 */
export async function bumpUserVersion(db: Tx, id: string): Promise<User | undefined> {
  return updateUserById(db, id, {});
}

/** Whether another account than `exceptId` signs in with this (folded) name, as its username or email. */
export async function isSignInNameTaken(db: Tx, name: string, exceptId?: string): Promise<boolean> {
  const q = db('sign_in_names').where({ name }).first('user_id');
  if (exceptId) q.whereNot({ user_id: exceptId });
  return Boolean(await q);
}

export const USER_SORTS = ['name', 'username', 'email', 'status', 'createdAt'] as const;
export type UserSort = (typeof USER_SORTS)[number];

export interface UserFilter {
  status?: UserStatus;
  /**
   * Prefix of the username, email, display name, given or family name or employee number
   * (case-insensitive).
   */
  q?: string;
  username?: string;
  email?: string;
  externalId?: string;
  departmentId?: string;
  /** With departmentId: include everyone in sub-departments, all levels down. */
  recursive?: boolean;
  groupId?: string;
  /** Keyset paging, in the default order (created_at, id) only. */
  after?: { createdAt: string; id: string };
  /** The order (default createdAt), then the id, both ascending unless `order` is desc. */
  sort?: UserSort;
  order?: 'asc' | 'desc';
  /** Rows to skip (numbered pages). */
  offset?: number;
  limit: number;
}

/**
 * The range of strings that start with `prefix`, in byte (code point) order: [prefix, the prefix
 * with its last code point one higher); no upper end for an empty prefix or one ending in U+10FFFF
 * (then LIKE, which is slower but right).
 */
const escapeLike = (s: string): string => s.replace(/[\\%_]/g, '\\$&');

export function prefixRange(prefix: string): [string, string | undefined] {
  const points = [...prefix];
  const last = points.pop();
  if (last === undefined) return ['', undefined];
  let code = last.codePointAt(0)! + 1;
  if (code >= 0xd800 && code <= 0xdfff) code = 0xe000;
  return [prefix, code > 0x10ffff ? undefined : points.join('') + String.fromCodePoint(code)];
}

// Each an indexed column or expression (migration 20261208100000): a page in this order is an
// index scan when nothing else narrows the list, and a top-N sort of the matches when a search does.
const SORT_COLUMNS: Record<UserSort, string[]> = {
  name: ['u.display_name'],
  username: ['u.username'],
  email: ['u.email'],
  status: ['u.status', 'u.display_name'],
  createdAt: ['u.created_at'],
};

type Where = Pick<UserFilter, 'status' | 'q' | 'username' | 'email' | 'externalId' | 'departmentId' | 'recursive' | 'groupId'>;

/** The filter's conditions on `users as u`, shared by the list and its count. */
function applyUserFilter(db: Tx, q: Knex.QueryBuilder, f: Where): void {
  if (f.status) q.where('u.status', f.status);
  // Usernames and emails are compared folded, as stored (shared/names.ts); never lower() in SQL.
  if (f.username) q.where('u.username', foldName(f.username));
  if (f.email) q.where('u.email', foldName(f.email));
  if (f.externalId) q.where('u.external_id', f.externalId);
  if (f.q) {
    // Each alternative is one prefix index's range (text_pattern_ops compares bytes, and UTF-8's
    // byte order is code point order), combined by a bitmap OR. Ranges rather than LIKE 'x%':
    // the index answers them exactly, so the matches are counted without testing each row again.
    const name = prefixRange(foldName(f.q));
    const label = prefixRange(f.q.trim().toLowerCase());
    q.where((w) => {
      for (const [column, [from, to]] of [['u.username', name], ['u.email', name], ['lower(u.display_name)', label], ['lower(u.given_name)', label],
        ['lower(u.family_name)', label], ['lower(u.employee_number)', label]] as const) {
        if (to === undefined) w.orWhereRaw(`${column} like ?`, [`${escapeLike(from)}%`]);
        else w.orWhereRaw(`(${column} ~>=~ ? and ${column} ~<~ ?)`, [from, to]);
      }
    });
  }
  if (f.groupId) q.whereExists((e) => e.select(db.raw('1')).from('group_members as gm').whereRaw('gm.user_id = u.id and gm.group_id = ?', [f.groupId!]));
  const departmentId = f.departmentId;
  if (departmentId) {
    q.whereExists((e) => {
      e.select(db.raw('1')).from('user_departments as ud').join('departments as d', 'd.id', 'ud.department_id').whereRaw('ud.user_id = u.id');
      if (f.recursive) e.whereRaw("d.path like (select path from departments where id = ?) || '%'", [departmentId]);
      else e.whereRaw('ud.department_id = ?', [departmentId]);
    });
  }
}

/** Filtering, ordering (createdAt by default, then id) and paging (keyset or offset), all in SQL. */
export async function findUsers(db: Tx, f: UserFilter): Promise<User[]> {
  const direction = f.order ?? 'asc';
  const columns = [...SORT_COLUMNS[f.sort ?? 'createdAt'], 'u.id'];
  const matches = db('users as u').select('u.*');
  applyUserFilter(db, matches, f);
  if (f.after) matches.whereRaw('(u.created_at, u.id) > (?::timestamptz, ?::uuid)', [f.after.createdAt, f.after.id]);
  // A search's matches come from its prefix indexes and are sorted (top-N). Without the fence
  // PostgreSQL may instead walk the sort column's index, testing each row, which reads most of
  // the table when the matches sort late (a search for "ying" sorted by name).
  const q = f.q ? db.withMaterialized('matches', matches).select('u.*').from('matches as u') : matches;
  q.orderBy(columns.map((column) => ({ column, order: direction }))).limit(f.limit);
  if (f.offset) q.offset(f.offset);
  return ((await q) as DbUserRow[]).map(toUser);
}

/**
 * A search's page and how many match, in one pass over the matches (their prefix indexes, then
 * the rows once): the matches' ids and sort columns are kept, counted and sorted, and only the
 * page's rows are read in full. Without a search, or past the last page, as findUsers and
 * countUsers.
 */
export async function findUsersWithCount(db: Tx, f: UserFilter): Promise<{ users: User[]; total: number }> {
  if (!f.q || f.after) {
    const [users, total] = await Promise.all([findUsers(db, f), countUsers(db, f)]);
    return { users, total };
  }
  const direction = f.order ?? 'asc';
  const columns = [...SORT_COLUMNS[f.sort ?? 'createdAt'], 'u.id'];
  const matches = db('users as u').select('u.id', 'u.display_name', 'u.username', 'u.email', 'u.status', 'u.created_at');
  applyUserFilter(db, matches, f);
  const pageOf = db('matches as u').select('u.*').orderBy(columns.map((column) => ({ column, order: direction }))).limit(f.limit);
  if (f.offset) pageOf.offset(f.offset);
  const rows = await db.withMaterialized('matches', matches)
    .select('full.*', db.raw('(select count(*) from matches)::int as search_total'))
    .from(pageOf.as('p')).join('users as full', 'full.id', 'p.id')
    .orderBy(columns.map((column) => ({ column: column.replace(/^u\./, 'p.'), order: direction }))) as (DbUserRow & { search_total: number })[];
  if (!rows.length) return { users: [], total: await countUsers(db, f) };
  return { users: rows.map(toUser), total: rows[0]!.search_total };
}

/** How many users the filter matches (paging aside). */
export async function countUsers(db: Tx, f: Where): Promise<number> {
  const q = db('users as u').count<{ count: string }[]>({ count: '*' });
  applyUserFilter(db, q as unknown as Knex.QueryBuilder, f);
  const [row] = await q;
  return Number(row?.count ?? 0);
}

export async function countAdmins(db: Tx): Promise<number> {
  const [row] = await db('users').whereRaw("'super_admin' = any(admin_roles)").andWhere({ status: 'active' }).count<{ count: number }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

export interface DbCredentialRow { id: string; user_id: string; type: string; data: { hash?: string } }

export async function upsertPasswordCredential(db: Tx, id: string, userId: string, hash: string): Promise<void> {
  await db('credentials')
    .insert({ id, user_id: userId, type: 'password', data: JSON.stringify({ hash }) })
    .onConflict(db.raw("(user_id) where type = 'password'") as unknown as string)
    .merge({ data: JSON.stringify({ hash }), updated_at: db.fn.now() });
}

/**
 * The sign-in time of what is left of a user's OIDC state (the kept session, its codes and
 * tokens) moved to `ts`: after a person changed their own password there, a later second than
 * the end of their other sessions (users.sessions_ended_at), which those times are checked against.
 */
export async function renewSignInTimeOfAccount(db: Tx, userId: string, ts: number): Promise<void> {
  await db.raw(`update oidc_payloads set payload = payload
      || case when jsonb_exists(payload, 'loginTs') then jsonb_build_object('loginTs', ?::bigint) else '{}'::jsonb end
      || case when jsonb_exists(payload, 'authTime') then jsonb_build_object('authTime', ?::bigint) else '{}'::jsonb end
    where account_id = ? and (jsonb_exists(payload, 'loginTs') or jsonb_exists(payload, 'authTime'))`, [ts, ts, userId]);
}

/**
 * Ends every OIDC session, grant, code and token of a user at once. With `keepSessionUid`, the
 * session with that uid stays, with the grants it holds (its `authorizations`) and the codes and
 * tokens issued under them.
 */
/** An app's OIDC client the person holds something with, and the sids of their sessions with it. */
export interface OidcClientOfAccount { clientId: string; sids: string[] }

/**
 * The OIDC clients holding a grant, token or code of the person, or a session with them, and
 * each session's sid (OpenID Connect Back-Channel Logout): read before deleteOidcStateOfAccount,
 * so that the apps can be told to end those sessions after.
 */
export async function findOidcClientsOfAccount(db: Tx, userId: string): Promise<OidcClientOfAccount[]> {
  const rows: { client_id: string; sid: string | null }[] = (await db.raw(`
    select payload->>'clientId' as client_id, null::text as sid
      from oidc_payloads
     where account_id = ? and model in ('Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode') and payload->>'clientId' is not null
    union
    select a.key, a.value->>'sid'
      from oidc_payloads s, jsonb_each(case when jsonb_typeof(s.payload->'authorizations') = 'object' then s.payload->'authorizations' else '{}'::jsonb end) a
     where s.model = 'Session' and s.account_id = ?`, [userId, userId])).rows;
  const byClient = new Map<string, Set<string>>();
  for (const r of rows) {
    const sids = byClient.get(r.client_id) ?? new Set<string>();
    if (r.sid) sids.add(r.sid);
    byClient.set(r.client_id, sids);
  }
  return [...byClient].sort(([a], [b]) => a.localeCompare(b)).map(([clientId, sids]) => ({ clientId, sids: [...sids].sort() }));
}

export async function deleteOidcStateOfAccount(db: Tx, userId: string, keepSessionUid?: string): Promise<number> {
  const rows = db('oidc_payloads').where({ account_id: userId });
  if (keepSessionUid !== undefined) {
    rows.whereRaw(`not (
      coalesce(model = 'Session' and uid = ?, false)
      or coalesce(case when model = 'Grant' then id else grant_id end in (
        select a.value->>'grantId'
          from oidc_payloads s, jsonb_each(case when jsonb_typeof(s.payload->'authorizations') = 'object' then s.payload->'authorizations' else '{}'::jsonb end) a
         where s.model = 'Session' and s.uid = ? and s.account_id = ?), false))`, [keepSessionUid, keepSessionUid, userId]);
  }
  return rows.delete();
}

/**
 * The users that references name, in one query each way: a uuid is a user id, anything else a
 * sign-in name (username or email, folded as stored; one namespace, see sign_in_names). Returns
 * the user id and status by the reference as given; references that name nobody are absent.
 */
export async function findUsersByReferences(db: Tx, refs: readonly string[]): Promise<Map<string, { id: string; status: UserStatus }>> {
  const found = new Map<string, { id: string; status: UserStatus }>();
  const ids = [...new Set(refs.filter(isUuid).map((r) => r.toLowerCase()))];
  const names = [...new Set(refs.filter((r) => !isUuid(r)).map(foldName))];
  const byId = new Map<string, { id: string; status: UserStatus }>();
  const byName = new Map<string, { id: string; status: UserStatus }>();
  if (ids.length) {
    const rows: { id: string; status: UserStatus }[] = await db('users').select('id', 'status').whereRaw('id = any(?::uuid[])', [ids]);
    for (const r of rows) byId.set(r.id, r);
  }
  if (names.length) {
    const rows: { name: string; id: string; status: UserStatus }[] = await db('sign_in_names as n').join('users as u', 'u.id', 'n.user_id')
      .select('n.name', 'u.id', 'u.status').whereRaw('n.name = any(?::text[])', [names]);
    for (const r of rows) byName.set(r.name, { id: r.id, status: r.status });
  }
  for (const ref of refs) {
    const user = isUuid(ref) ? byId.get(ref.toLowerCase()) : byName.get(foldName(ref));
    if (user) found.set(ref, user);
  }
  return found;
}
