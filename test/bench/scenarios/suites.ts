// Scenario 12: a token exchange inside a suite (#22) beside the bare oidc-provider's
// client_credentials, the ceiling of row 1, in the same run. App A is the bench's web app; app B
// an app with its own API audience that A's suite grant names; the subject token is a person's
// access token from a real sign-in (each exchange reads it, its grant and session, the grant and
// the entitlement again, and signs, stores and audits a new token).
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { basicAuth, FORM } from '../lib/http.ts';
import type { BenchContext, Scenario } from '../lib/scenario.ts';
import { bareClientCredentials, pairedRounds, ratioRow } from './oidc.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const AUDIENCE = 'https://orders.bench.example/api';

/** B, the suite and A's grant to B, as plain rows (what the suites admin API writes). */
async function suiteOf(ctx: BenchContext): Promise<void> {
  const b = await ctx.cli(['apps', 'create', '--name', 'Bench orders', '--redirect-uri', 'http://127.0.0.1:9/cb']);
  const db = new pg.Client({ connectionString: ctx.env.DATABASE_URL });
  await db.connect();
  try {
    const suiteId = randomUUID();
    const [a] = (await db.query<{ id: string }>('select id from apps where client_id = $1', [ctx.apps.web.clientId])).rows;
    // Everyone may use B: the entitlement query runs all the same.
    await db.query("update apps set api_audience = $2, access = 'everyone' where id = $1", [b.id, AUDIENCE]);
    await db.query('insert into suites (id, name) values ($1, $2)', [suiteId, 'Bench suite']);
    await db.query('insert into suite_apps (suite_id, app_id) values ($1, $2), ($1, $3)', [suiteId, a!.id, b.id]);
    await db.query('insert into suite_grants (id, suite_id, client_app_id, audience_app_id, scopes) values ($1, $2, $3, $4, $5)',
      [randomUUID(), suiteId, a!.id, b.id, ['orders.read']]);
  } finally {
    await db.end();
  }
}

export const suiteTokenExchange: Scenario = {
  id: '12',
  title: 'token exchange inside a suite (RFC 8693, JWT for another app\'s API)',
  goal: '>= 60% of bare oidc-provider client_credentials',
  measure: async (ctx) => {
    await suiteOf(ctx);
    const [subject] = await ctx.prepareTokens(1);
    const body = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subject!.access_token, subject_token_type: ACCESS_TOKEN, audience: AUDIENCE }).toString();
    const rounds = await pairedRounds(ctx, '12: token exchange on OneID / client_credentials on the bare oidc-provider',
      () => ctx.load(ctx.oneid, {
        kind: 'http', base: ctx.oneid.base, connections: ctx.connections, durationS: ctx.durationS, warmupS: ctx.warmupS,
        method: 'POST', path: '/token', body,
        headers: { 'content-type': FORM, accept: 'application/json', authorization: basicAuth(ctx.apps.web.clientId, ctx.apps.web.clientSecret) },
      }),
      () => bareClientCredentials(ctx));
    return [ratioRow('12', 'token exchange inside a suite', rounds, 'bare oidc-provider client_credentials', 0.6, '>= 60% of ceiling')];
  },
};
