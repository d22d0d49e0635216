// Scenario 8: the console's people search over a directory of 100,000 people (the issue: "one
// word, first page with count"). It seeds the people itself (set-based SQL), with names drawn from
// common given and family names so that a word matches a realistic share of them, and measures
// the admin API route the console's People page runs for a search, GET /admin/api/v1/users with
// q (one word), sort=name, a page of 25 and count=true, with an auditor's client-credentials token.
// The page itself calls that route in process and renders its table around it.
import pg from 'pg';
import { randomInt } from 'node:crypto';
import type { BenchContext, Row, Scenario } from '../lib/scenario.ts';

const PEOPLE = 100_000;
const CONNECTIONS = 4;
const GIVEN = ['Maria', 'Mark', 'Martin', 'Anna', 'Andrew', 'Wei', 'Li', 'Chen', 'Grace', 'Oliver', 'Sophia', 'James', 'Emma', 'Lucas', 'Mia',
  'Noah', 'Olivia', 'Liam', 'Ava', 'Ethan', 'Isabella', 'Mason', 'Yan', 'Jing', 'Hao', 'Min', 'Fang', 'Lei', 'Ying', 'Jun'];
const FAMILY = ['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Wang', 'Zhang', 'Liu',
  'Yang', 'Huang', 'Zhao', 'Wu', 'Zhou', 'Xu', 'Sun', 'Ma', 'Zhu', 'Hu', 'Guo', 'He', 'Lin', 'Luo', 'Gao', 'Müller', 'Schmidt', 'Nakamura', 'Kim'];
/** The words searched, in turn: names, a username and an email prefix, an employee number prefix. */
const WORDS = ['mar', 'chen', 'grace', 'zhang', 'li', 'smith', 'anna', 'wang', 'oli', 'kim', 'people.1234', 'e0042', 'müller', 'ma'];

async function seed(db: pg.Client): Promise<void> {
  const { rows: [have] } = await db.query<{ n: number }>("select count(*)::int as n from users where username like 'people.%'");
  if (have!.n >= PEOPLE) return;
  await db.query(`
    insert into users (id, username, email, email_verified, emails, given_name, family_name, display_name, employee_number, status, version, created_at, updated_at)
    select gen_random_uuid(), 'people.' || i, 'people.' || i || '@bench.example', true,
           jsonb_build_array(jsonb_build_object('value', 'people.' || i || '@bench.example', 'type', 'work', 'primary', true)),
           g, f, g || ' ' || f, 'E' || lpad(i::text, 6, '0'),
           case when i % 50 = 0 then 'suspended' else 'active' end, 1, at, at
      from generate_series(1, $1::int) i,
           lateral (select ($2::text[])[1 + (i * 7) % array_length($2::text[], 1)] as g,
                           ($3::text[])[1 + (i * 13) % array_length($3::text[], 1)] as f,
                           now() - ($1::int + 1 - i) * interval '5 minutes' as at) t`, [PEOPLE, GIVEN, FAMILY]);
  await db.query('vacuum analyze users');
}

async function auditorToken(ctx: BenchContext): Promise<string> {
  const app = await ctx.cli(['apps', 'create', '--name', 'bench console search', '--grant-types', 'client_credentials', '--admin-role', 'auditor']);
  const res = await fetch(`${ctx.oneid.base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  const { access_token: token } = await res.json() as { access_token?: string };
  if (!token) throw new Error(`8: no admin token (${res.status})`);
  return token;
}

const searchPath = (word: string): string => `/admin/api/v1/users?q=${encodeURIComponent(word)}&sort=name&limit=25&count=true`;

export const consolePeopleSearch: Scenario = {
  id: '8',
  title: 'console people search over 100,000 people (one word, first page with count)',
  goal: 'p99 < 100 ms',
  measure: async (ctx): Promise<Row[]> => {
    const db = new pg.Client({ connectionString: ctx.env.DATABASE_URL });
    await db.connect();
    try {
      ctx.log(`8: seeding ${PEOPLE} people (SQL)`);
      const t0 = performance.now();
      await seed(db);
      ctx.log(`8: seeded in ${Math.round(performance.now() - t0)} ms`);
      const token = await auditorToken(ctx);
      // One search by hand: the answer the measurement assumes (a full page and a count).
      const check = await fetch(ctx.oneid.base + searchPath('mar'), { headers: { authorization: `Bearer ${token}` } });
      const body = await check.json() as { items?: unknown[]; total?: number };
      if (check.status !== 200 || body.items?.length !== 25 || !(Number(body.total) > 1000)) {
        throw new Error(`8: search answered ${check.status} with ${body.items?.length} items of ${body.total}`);
      }
      const values = Array.from({ length: 2000 }, () => searchPath(WORDS[randomInt(WORDS.length)]!));
      const oneid = await ctx.load(ctx.oneid, {
        kind: 'steps', base: ctx.oneid.base, connections: CONNECTIONS, durationS: ctx.durationS, warmupS: ctx.warmupS,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, steps: [{ method: 'GET', path: '{value}' }], values,
      });
      return [{
        id: consolePeopleSearch.id, scenario: consolePeopleSearch.title, oneid, goal: consolePeopleSearch.goal,
        pass: oneid.p99 < 100 && oneid.errors === 0,
        note: `admin API route the People page runs (GET /users?q=word&sort=name&limit=25&count=true, auditor token), ${CONNECTIONS} connections, ${WORDS.length} words in turn (e.g. "mar": ${body.total} matches)`,
      }];
    } finally {
      await db.end();
    }
  },
};
