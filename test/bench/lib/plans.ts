// Query plans and statement shapes of the hot paths, printed by `npm run bench` as diagnostics.
// They describe how PostgreSQL runs OneID's statements, which a PostgreSQL upgrade may change
// without any fault a user would notice, so they are reported here (what was measured beside what
// was expected) and never fail a test. Each check runs on its own fresh, migrated database.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import pg from 'pg';
import { pino } from 'pino';
import type { AdapterPayload } from 'oidc-provider';
import { activeUserWithEntitlements, entitlements } from '../../../src/access/entitlements.ts';
import { ClientCache } from '../../../src/apps/client-cache.ts';
import { AppsService } from '../../../src/apps/apps.service.ts';
import { createDb } from '../../../src/db/knex.ts';
import { migrateLatest } from '../../../src/db/migrate.ts';
import { findUserByLoginWithPassword } from '../../../src/directory/users.repo.ts';
import { createAdapterFactory } from '../../../src/oidc/adapter.ts';
import { PendingWrites } from '../../../src/oidc/request-writes.ts';
import { listScimUsers } from '../../../src/scim/users.query.ts';
import { loadConfig } from '../../../src/config.ts';
import { createServices } from '../../../src/services.ts';
import type { Actor } from '../../../src/audit/audit.service.ts';
import { planCostsOf, rowsReadBy } from '../../helpers/knex.ts';

export interface PlanCheck {
  what: string;
  measured: string;
  expected: string;
  asExpected: boolean;
}

async function withDatabase<T>(adminUrl: string, poolMax: number, fn: (db: Knex, url: string) => Promise<T>): Promise<T> {
  const name = `oneid_bench_plans_${randomBytes(5).toString('hex')}`;
  const admin = async (sql: string): Promise<void> => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try { await c.query(sql); } finally { await c.end(); }
  };
  await admin(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const handle = createDb({ databaseUrl: url.toString(), databasePoolMax: poolMax, dataDir: '/nonexistent/unused' });
  try {
    await migrateLatest(handle.db);
    return await fn(handle.db, url.toString());
  } finally {
    await handle.close();
    await admin(`drop database if exists ${name} with (force)`);
  }
}

const check = (what: string, measured: number | string, expected: string, asExpected: boolean): PlanCheck =>
  ({ what, measured: String(measured), expected, asExpected });
const atMost = (what: string, n: number, max: number): PlanCheck => check(what, n, `<= ${max}`, n <= max);

const GROWN = 3000;

/**
 * The hot lookups (a token with its grant, session and account; a user's access to an app; the
 * account a sign-in names; a refresh's writes inside oidc_apply_writes) read each row by its key,
 * with plans their connection made while the tables were nearly empty. A prepared statement keeps
 * its plan until the tables are analyzed again (never where autovacuum is off).
 */
async function keyedLookups(adminUrl: string): Promise<PlanCheck[]> {
  return withDatabase(adminUrl, 1, async (db, url) => {
    const clients = new ClientCache<AdapterPayload>({ databaseUrl: url, log: pino({ level: 'silent' }) });
    await clients.start();
    try {
      const Adapter = createAdapterFactory(db, clients);
      const adapter = (model: string) => new Adapter(model);
      const out: PlanCheck[] = [];
      const app = await new AppsService(db).createApp({ name: 'Wiki', redirectUris: ['https://wiki.example/cb'] });
      const userId = randomUUID();
      await db('users').insert({ id: userId, username: 'ada', email: 'ada@example.com', status: 'active' });
      await db('credentials').insert({ id: randomUUID(), user_id: userId, type: 'password', data: JSON.stringify({ hash: 'not-checked-here' }) });
      await adapter('Grant').upsert('g-1', { kind: 'Grant', accountId: userId, clientId: app.client_id }, 3600);
      await adapter('Session').upsert('s-1', { kind: 'Session', uid: 'uid-1', accountId: userId }, 3600);
      const token = { kind: 'AccessToken', grantId: 'g-1', sessionUid: 'uid-1', accountId: userId, clientId: app.client_id };
      await adapter('AccessToken').upsert('at-1', token, 3600);

      // Planned now, for any values (what PostgreSQL settles on after five calls), on these few rows.
      await db.raw('set plan_cache_mode = force_generic_plan');
      try {
        await adapter('AccessToken').find('at-1');
        await entitlements(db, userId, app.id);
        await activeUserWithEntitlements(db, userId, app.id);
        await findUserByLoginWithPassword(db, 'ada@example.com');
        await adapter('Session').findByUid('uid-1');
        await adapter('Grant').find('g-1');
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

        const found = await adapter('AccessToken').find('at-1');
        out.push(check('token lookup still finds its token', found?.grantId === 'g-1' ? 'yes' : 'no', 'yes', found?.grantId === 'g-1'));
        const read = await rowsReadBy(db, 'oidc_find_token', ["'AccessToken'", "'at-1'"]);
        out.push(atMost(`token with grant, session, account (oidc_find_token): most rows in one plan node, ${GROWN} of each in the tables`, read.mostRowsInOneNode, 2));
        const seq = /Seq Scan on (oidc_payloads|users)/.test(read.plan);
        out.push(check('token lookup: sequential scan of oidc_payloads or users', seq ? 'yes' : 'no', 'no', !seq));
        await adapter('Session').findByUid('uid-1');
        out.push(atMost('session by uid (oidc_find_uid): most rows in one plan node', (await rowsReadBy(db, 'oidc_find_uid', ["'Session'", "'uid-1'"])).mostRowsInOneNode, 2));
        await adapter('Grant').find('g-1');
        out.push(atMost('grant by id (oidc_find_id): most rows in one plan node', (await rowsReadBy(db, 'oidc_find_id', ["'Grant'", "'g-1'"])).mostRowsInOneNode, 2));

        // A refresh's writes by the plans oidc_apply_writes made above. (This backend's table
        // statistics not yet reported, before and after.)
        const scans = async () => {
          const [row] = (await db.raw(`select seq_scan, coalesce(idx_tup_fetch, 0) as idx_tup_fetch
            from pg_stat_xact_user_tables where relname = 'oidc_payloads'`)).rows as Record<string, string>[];
          return { seqScans: Number(row!.seq_scan), rowsFetchedByIndex: Number(row!.idx_tup_fetch) };
        };
        await db.raw('begin');
        try {
          const before = await scans();
          await rotate('rt-5', 'rt-6');
          const after = await scans();
          out.push(atMost('refresh writes (oidc_apply_writes): sequential scans of oidc_payloads', after.seqScans - before.seqScans, 0));
          out.push(atMost('refresh writes (oidc_apply_writes): rows fetched by index', after.rowsFetchedByIndex - before.rowsFetchedByIndex, 3));
        } finally {
          await db.raw('commit');
        }

        await activeUserWithEntitlements(db, userId, app.id);
        for (const name of ['entitlements_one_app', 'account_entitlements_one_app']) {
          const access = await rowsReadBy(db, name, [`'${userId}'`, `'${app.id}'`, `'${app.id}'`]);
          out.push(atMost(`a user's access to an app (${name}): most rows in one plan node`, access.mostRowsInOneNode, 2));
        }
        for (const login of ['ada', 'ada@example.com']) {
          await findUserByLoginWithPassword(db, login);
          const named = await rowsReadBy(db, 'user_by_sign_in_name_with_password', [`'${login}'`]);
          out.push(atMost(`the account a sign-in names, by ${login.includes('@') ? 'email' : 'username'} (user_by_sign_in_name_with_password): most rows in one plan node`, named.mostRowsInOneNode, 2));
        }
      } finally {
        await db.raw('reset plan_cache_mode');
      }
      return out;
    } finally {
      await clients.close();
    }
  });
}

/** Statements a function sends (knex's query event; prepared statements included). */
async function statementsOf(db: Knex, fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (q: { sql: string }) => { seen.push(q.sql); };
  db.on('query', listener);
  try {
    await fn();
  } finally {
    db.removeListener('query', listener);
  }
  return seen;
}

/**
 * SCIM lists of everyone: totalResults from the counters (no count(*)), a page from its block
 * of visible_user_blocks (no OFFSET over users), planned once per connection.
 */
async function scimLists(adminUrl: string): Promise<PlanCheck[]> {
  return withDatabase(adminUrl, 1, async (db, url) => {
    const out: PlanCheck[] = [];
    let seq = 0;
    for (let i = 0; i < 4; i += 1) {
      await db('users').insert(Array.from({ length: 900 }, (_, j) => ({
        id: randomUUID(), username: `block-${(seq += 1)}`, status: i % 2 && j % 3 ? (j % 3 === 1 ? 'deprovisioned' : 'suspended') : 'active',
      })));
    }
    const [counted] = await db('users').whereNot('status', 'deprovisioned').count<{ count: number }[]>({ count: '*' });
    const total = Number(counted?.count);

    const first = await statementsOf(db, () => listScimUsers(db, null, { sortOrder: 'ascending', startIndex: 1, count: 5 }));
    const counts = first.filter((sql) => /count\(/i.test(sql)).length;
    out.push(check('SCIM list of everyone: count(*) statements (totalResults comes from visible_user_counts)', counts, '0', counts === 0));
    const usesCounters = first.some((sql) => sql.includes('visible_user_counts'));
    out.push(check('SCIM list of everyone: reads visible_user_counts', usesCounters ? 'yes' : 'no', 'yes', usesCounters));

    const pages = await statementsOf(db, async () => {
      await listScimUsers(db, null, { sortOrder: 'ascending', startIndex: total - 3, count: 10 });
      await listScimUsers(db, null, { sortOrder: 'ascending', startIndex: 1025, count: 3 });
    });
    const blockReads = pages.filter((sql) => sql.includes('visible_user_blocks')).length;
    out.push(check('SCIM later pages (2): statements that start at a block of visible_user_blocks', blockReads, '2', blockReads === 2));
    const offsets = pages.filter((sql) => /offset \$\d+|offset \d+/i.test(sql) && !sql.includes('visible_user_blocks')).length;
    out.push(check('SCIM later pages: statements that skip rows with OFFSET', offsets, '0', offsets === 0));

    // A connection of its own, so that pg_prepared_statements shows the one page shape used.
    const handle = createDb({ databaseUrl: url, databasePoolMax: 1, dataDir: '/nonexistent/unused' });
    try {
      const one = handle.db;
      for (let i = 0; i < 10; i += 1) await listScimUsers(one, null, { sortOrder: 'ascending', startIndex: 2 + ((i * 977) % (total - 2)), count: 100 });
      const [page] = (await one.raw(
        "select generic_plans, custom_plans from pg_prepared_statements where statement like '%visible_user_blocks%'",
      )).rows as { generic_plans: string; custom_plans: string }[];
      // PostgreSQL plans for the values at hand five times, then keeps one plan for any values
      // unless that one looks dearer (then it would plan every call).
      const custom = Number(page?.custom_plans ?? NaN);
      out.push(check('SCIM page of everyone, 10 calls on one connection: plans made for the values at hand (custom_plans)', custom, '<= 5', custom <= 5));
      const costs = await planCostsOf(one, 'visible_user_blocks');
      out.push(check('SCIM page of everyone: estimated cost of the plan for any values / for given values',
        `${costs.generic.toFixed(1)} / ${costs.custom.toFixed(1)}`, 'generic <= 1.05 x custom', costs.generic <= costs.custom * 1.05));
    } finally {
      await handle.close();
    }
    return out;
  });
}

/** A user with their access to an app in one statement (the sign-in's and userinfo's lookup). */
async function accessInOneStatement(adminUrl: string): Promise<PlanCheck[]> {
  return withDatabase(adminUrl, 1, async (db) => {
    const app = await new AppsService(db).createApp({ name: 'Wiki', redirectUris: ['https://wiki.example/cb'] });
    const userId = randomUUID();
    await db('users').insert({ id: userId, username: 'ada', email: 'ada@example.com', status: 'active' });
    await activeUserWithEntitlements(db, userId, app.id);
    const n = (await statementsOf(db, () => activeUserWithEntitlements(db, userId, app.id))).length;
    return [check("a user with their access to an app (activeUserWithEntitlements): statements", n, '1', n === 1)];
  });
}

/**
 * A SCIM member add or remove: one statement without a transaction (member rows, users'
 * versions, audit events, the group's version bump), planned once per connection.
 */
async function groupMemberChanges(adminUrl: string): Promise<PlanCheck[]> {
  return withDatabase(adminUrl, 1, async (db) => {
    const out: PlanCheck[] = [];
    const { users, groups } = createServices(db, loadConfig({ NODE_ENV: 'test' }));
    const actor: Actor = { type: 'scim_client', id: 'bench-diagnostics' };
    const people = await Promise.all(Array.from({ length: 8 }, (_, i) => users.createUser({ username: `member-${i}` })));
    const g = await groups.createGroupWithMembers({ name: 'Bench group' }, [], actor);
    const add = await statementsOf(db, () => groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [people[0]!.id, people[1]!.id] }], actor));
    out.push(check('SCIM group member add: statements', add.length, '1', add.length === 1));
    const remove = await statementsOf(db, () => groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [people[0]!.id] }], actor));
    out.push(check('SCIM group member remove: statements', remove.length, '1', remove.length === 1));
    await groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [people[1]!.id] }], actor);
    for (const p of people) {
      await groups.changeGroup(g.id, [{ kind: 'addMembers', userIds: [p.id] }], actor);
      await groups.changeGroup(g.id, [{ kind: 'removeMembers', userIds: [p.id] }], actor);
    }
    const plans = (await db.raw(
      "select statement, generic_plans, custom_plans from pg_prepared_statements where statement like '%changed as%'",
    )).rows as { statement: string; generic_plans: string; custom_plans: string }[];
    // Nine or ten calls each: five planned for their values, then the plan for any values (were
    // it dearer, PostgreSQL would plan every call).
    for (const p of plans) {
      const kind = p.statement.includes('delete from group_members') ? 'remove' : 'add';
      out.push(check(`SCIM group member ${kind}, ${Number(p.custom_plans) + Number(p.generic_plans)} calls on one connection: plans for the values at hand / for any values`,
        `${p.custom_plans} / ${p.generic_plans}`, 'custom <= 5', Number(p.custom_plans) <= 5));
    }
    for (const like of ['insert into group_members', 'delete from group_members']) {
      const costs = await planCostsOf(db, like);
      out.push(check(`SCIM group member change (${like}): estimated cost of the plan for any values / for given values`,
        `${costs.generic.toFixed(1)} / ${costs.custom.toFixed(1)}`, 'generic <= 1.05 x custom', costs.generic <= costs.custom * 1.05));
    }
    return out;
  });
}

export async function planDiagnostics(adminUrl: string): Promise<PlanCheck[]> {
  const out: PlanCheck[] = [];
  for (const [name, run] of [['keyed lookups', keyedLookups], ['SCIM lists', scimLists], ['group members', groupMemberChanges], ['access', accessInOneStatement]] as const) {
    try {
      out.push(...await run(adminUrl));
    } catch (err) {
      out.push(check(`${name}: could not measure`, (err as Error).message.split('\n')[0]!, 'measured', false));
    }
  }
  return out;
}
