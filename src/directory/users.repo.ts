import type { Tx } from '../db/knex.ts';

export type UserStatus = 'active' | 'suspended' | 'deprovisioned';

export interface DbUserRow {
  id: string;
  username: string;
  email: string | null;
  email_verified: boolean;
  given_name: string | null;
  family_name: string | null;
  display_name: string | null;
  locale: string | null;
  status: UserStatus;
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
  givenName: string | null;
  familyName: string | null;
  displayName: string | null;
  locale: string | null;
  status: UserStatus;
  adminRoles: string[];
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

const toUser = (r: DbUserRow): User => ({
  id: r.id,
  username: r.username,
  email: r.email,
  emailVerified: r.email_verified,
  givenName: r.given_name,
  familyName: r.family_name,
  displayName: r.display_name,
  locale: r.locale,
  status: r.status,
  adminRoles: r.admin_roles,
  version: r.version,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function findUserById(db: Tx, id: string): Promise<User | undefined> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
  const row = await db<DbUserRow>('users').where({ id }).first();
  return row ? toUser(row) : undefined;
}

/** Looks a user up by username or email (both stored lower-case). */
export async function findUserByLogin(db: Tx, login: string): Promise<User | undefined> {
  const key = login.trim().toLowerCase();
  const row = await db<DbUserRow>('users').where({ username: key }).orWhere({ email: key }).orderByRaw('(username = ?) desc', [key]).first();
  return row ? toUser(row) : undefined;
}

export async function insertUser(db: Tx, row: Omit<DbUserRow, 'created_at' | 'updated_at' | 'version'>): Promise<User> {
  const [inserted] = await db<DbUserRow>('users').insert({ ...row, admin_roles: db.raw('?::text[]', [row.admin_roles]) as unknown as string[] }).returning('*');
  return toUser(inserted!);
}

export async function countAdmins(db: Tx): Promise<number> {
  const [row] = await db('users').whereRaw("'super_admin' = any(admin_roles)").andWhere({ status: 'active' }).count<{ count: number }[]>({ count: '*' });
  return Number(row?.count ?? 0);
}

export interface DbCredentialRow { id: string; user_id: string; type: string; data: { hash?: string } }

export async function findPasswordCredential(db: Tx, userId: string): Promise<DbCredentialRow | undefined> {
  return db<DbCredentialRow>('credentials').where({ user_id: userId, type: 'password' }).first();
}

export async function upsertPasswordCredential(db: Tx, id: string, userId: string, hash: string): Promise<void> {
  await db('credentials')
    .insert({ id, user_id: userId, type: 'password', data: JSON.stringify({ hash }) })
    .onConflict(db.raw("(user_id) where type = 'password'") as unknown as string)
    .merge({ data: JSON.stringify({ hash }), updated_at: db.fn.now() });
}
