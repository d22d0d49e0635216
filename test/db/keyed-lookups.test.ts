// The hot lookups (the token with its grant, session and account at userinfo, refresh and code
// exchange; a user's access to an app; the account a sign-in names; a token request's writes,
// planned inside oidc_apply_writes) read by key however small
// the tables were when their connection planned them. A prepared statement keeps its plan for
// the life of the connection (until the tables are analyzed again, and never where autovacuum
// is off), so a plan made on a fresh installation must still be right once there are thousands
// of grants, sessions and users.
import type { Knex } from 'knex';
import type { Adapter } from 'oidc-provider';
import { activeUserWithEntitlements, entitlements } from '../../src/access/entitlements.ts';
import { findUserByLoginWithPassword } from '../../src/directory/users.repo.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import { PendingWrites } from '../../src/oidc/request-writes.ts';
import { rowsReadBy } from '../helpers/knex.ts';
import { createAdapterDatabase, type AdapterDatabase } from '../helpers/oidc-adapter.ts';

let mdb: AdapterDatabase;
let db: Knex;
let Adapter: new (name: string) => Adapter;

beforeAll(async () => {
  // One connection: the statement prepared by the adapter is the one explained below.
  mdb = await createAdapterDatabase('oneid_test_keyed_lookups', 1);
  ({ db, Adapter } = mdb);
});

afterAll(async () => {
  await mdb?.close();
});

const GROWN = 3000;

it('reads every row of the hot lookups by its key, with plans made while the tables were nearly empty', async () => {
  const app = await new AppsService(db).createApp({ name: 'Wiki', redirectUris: ['https://wiki.example/cb'] });
  const userId = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b';
  await db('users').insert({ id: userId, username: 'ada', email: 'ada@example.com', status: 'active' });
  await db('credentials').insert({ id: '0b1c2d3e-4f50-4a6b-8c7d-8e9f0a1b2c3d', user_id: userId, type: 'password', data: JSON.stringify({ hash: 'not-checked-here' }) });
  const adapter = (model: string) => new Adapter(model);
  await adapter('Grant').upsert('g-1', { kind: 'Grant', accountId: userId, clientId: app.client_id }, 3600);
  await adapter('Session').upsert('s-1', { kind: 'Session', uid: 'uid-1', accountId: userId }, 3600);
  const token = { kind: 'AccessToken', grantId: 'g-1', sessionUid: 'uid-1', accountId: userId, clientId: app.client_id };
  await adapter('AccessToken').upsert('at-1', token, 3600);

  // Planned now, for any values (what PostgreSQL settles on after five calls), on these few rows.
  await db.raw('set plan_cache_mode = force_generic_plan');
  try {
    expect(await adapter('AccessToken').find('at-1')).toEqual(token);
    expect(await entitlements(db, userId, app.id)).toMatchObject({ allowed: false, assigned: false });
    expect((await activeUserWithEntitlements(db, userId, app.id))?.user.username).toBe('ada');
    expect((await findUserByLoginWithPassword(db, 'ada@example.com'))?.password).toBeDefined();
    expect(await adapter('Session').findByUid('uid-1')).toMatchObject({ uid: 'uid-1' });
    expect(await adapter('Grant').find('g-1')).toMatchObject({ kind: 'Grant' });
    // A refresh's writes (oidc_apply_writes: consume the old token, write the new one), planned
    // inside the function on these few rows too.
    const rotate = async (from: string, to: string): Promise<void> => {
      const writes = new PendingWrites();
      writes.consume('RefreshToken', from);
      writes.upsert('RefreshToken', to, { ...token, kind: 'RefreshToken' }, 3600);
      writes.destroy('AccessToken', `at-gone-${to}`);
      await writes.flush(db);
    };
    await adapter('RefreshToken').upsert('rt-0', { ...token, kind: 'RefreshToken' }, 3600);
    for (let i = 0; i < 5; i += 1) await rotate(`rt-${i}`, `rt-${i + 1}`);

    await db.raw(`insert into oidc_payloads (model, id, payload, uid, grant_id, account_id, expires_at)
      select 'Grant', 'g-other-' || n, '{}'::jsonb, null, null, null, now() + interval '1 hour' from generate_series(1, ${GROWN}) n
      union all
      select 'Session', 's-other-' || n, '{}'::jsonb, 'uid-other-' || n, null, null, now() + interval '1 hour' from generate_series(1, ${GROWN}) n
      union all
      select 'RefreshToken', 'rt-other-' || n, '{}'::jsonb, null, 'g-other-' || n, null, now() + interval '1 hour' from generate_series(1, ${GROWN}) n`);
    await db.raw(`insert into users (id, username, email, status)
      select gen_random_uuid(), 'user-' || n, 'user-' || n || '@example.com', 'active' from generate_series(1, ${GROWN}) n`);
    await db.raw(`insert into credentials (id, user_id, type, data) select gen_random_uuid(), id, 'password', '{}' from users where username like 'user-%'`);

    expect(await adapter('AccessToken').find('at-1')).toEqual(token); // the same plan, still right
    const read = await rowsReadBy(db, 'oidc_find_token', ["'AccessToken'", "'at-1'"]);
    // Each lookup by key touches its one row; a scan would touch thousands.
    expect(read.mostRowsInOneNode).toBeLessThanOrEqual(2);
    expect(read.plan).not.toMatch(/Seq Scan on (oidc_payloads|users)/);

    // A session by its uid (every authorization request with a session cookie), a row by its id.
    expect(await adapter('Session').findByUid('uid-1')).toMatchObject({ uid: 'uid-1' });
    expect((await rowsReadBy(db, 'oidc_find_uid', ["'Session'", "'uid-1'"])).mostRowsInOneNode).toBeLessThanOrEqual(2);
    expect(await adapter('Grant').find('g-1')).toMatchObject({ kind: 'Grant' });
    expect((await rowsReadBy(db, 'oidc_find_id', ["'Grant'", "'g-1'"])).mostRowsInOneNode).toBeLessThanOrEqual(2);

    // The writes, by the plans the function made above: each row found by its key. (This
    // backend's table statistics not yet reported, before and after.)
    const scans = async () => {
      const [row] = (await db.raw(`select seq_scan, seq_tup_read, coalesce(idx_tup_fetch, 0) as idx_tup_fetch
        from pg_stat_xact_user_tables where relname = 'oidc_payloads'`)).rows as Record<string, string>[];
      return { seqScans: Number(row!.seq_scan), rowsReadBySeqScans: Number(row!.seq_tup_read), rowsFetchedByIndex: Number(row!.idx_tup_fetch) };
    };
    await db.raw('begin');
    try {
      const before = await scans();
      await rotate('rt-5', 'rt-6');
      const after = await scans();
      expect(after.seqScans - before.seqScans).toBe(0);
      expect(after.rowsFetchedByIndex - before.rowsFetchedByIndex).toBeLessThanOrEqual(3);
    } finally {
      await db.raw('commit');
    }
    expect(await adapter('RefreshToken').find('rt-5')).toMatchObject({ consumed: expect.any(Number) });
    expect(await adapter('RefreshToken').find('rt-6')).toMatchObject({ kind: 'RefreshToken' });

    // The sign-in's check of the user's access to the app (the same user lookup).
    expect((await activeUserWithEntitlements(db, userId, app.id))?.user.username).toBe('ada');
    for (const name of ['entitlements_one_app', 'account_entitlements_one_app']) {
      const access = await rowsReadBy(db, name, [`'${userId}'`, `'${app.id}'`, `'${app.id}'`]);
      expect(access.mostRowsInOneNode).toBeLessThanOrEqual(2);
    }

    // The sign-in's lookup of the account it names (sign_in_names: user name or email), with its password.
    for (const login of ['ada', 'ada@example.com']) {
      expect((await findUserByLoginWithPassword(db, login))?.user.id).toBe(userId);
      const named = await rowsReadBy(db, 'user_by_sign_in_name_with_password', [`'${login}'`]);
      expect(named.mostRowsInOneNode).toBeLessThanOrEqual(2);
    }
  } finally {
    await db.raw('reset plan_cache_mode');
  }
});
