// Scenarios 1-4 of issue #5: the OpenID Connect hot paths, each beside its ceiling in the same run.
import { basicAuth, FORM } from '../lib/http.ts';
import type { BenchContext, Measured, Row, Scenario } from '../lib/scenario.ts';

const common = (ctx: BenchContext) => ({ connections: ctx.connections, durationS: ctx.durationS, warmupS: ctx.warmupS });

const ratioRow = (id: string, scenario: string, oneid: Measured, ceilingName: string, ceiling: Measured, min: number, goal: string, note?: string): Row => {
  const ratio = ceiling.rps > 0 ? oneid.rps / ceiling.rps : 0;
  return {
    id, scenario, oneid, ceiling: { name: ceilingName, ...ceiling }, ratio, goal,
    pass: ratio >= min && oneid.errors === 0, ...(note ? { note } : {}),
  };
};

const clientCredentialsJob = (ctx: BenchContext, base: string, client: { clientId: string; clientSecret: string }) => ({
  kind: 'http' as const, base, ...common(ctx), method: 'POST' as const, path: '/token',
  headers: { 'content-type': FORM, accept: 'application/json', authorization: basicAuth(client.clientId, client.clientSecret) },
  body: 'grant_type=client_credentials',
});

/** The bare library's client_credentials rate; measured next to every scenario that is compared with it. */
const bareClientCredentials = async (ctx: BenchContext): Promise<Measured> => {
  const bare = await ctx.bareProvider();
  return ctx.load(bare, clientCredentialsJob(ctx, bare.base, { clientId: 'bench', clientSecret: 'bench-secret' }));
};

export const clientCredentials: Scenario = {
  id: '1',
  title: 'client_credentials token (RFC 9068 JWT, ES256)',
  goal: '>= 80% of bare oidc-provider',
  measure: async (ctx) => {
    ctx.log('1: client_credentials on OneID');
    const oneid = await ctx.load(ctx.oneid, clientCredentialsJob(ctx, ctx.oneid.base, ctx.apps.service));
    ctx.log('1: client_credentials on the bare oidc-provider');
    const ceiling = await bareClientCredentials(ctx);
    return [ratioRow('1', 'client_credentials token (JWT)', oneid, 'bare oidc-provider client_credentials', ceiling, 0.8, '>= 80% of ceiling')];
  },
};

export const passwordSignIn: Scenario = {
  id: '2',
  title: 'full password sign-in: authorize -> form -> password -> code -> token',
  goal: '>= 75% of argon2id ceiling',
  measure: async (ctx) => {
    ctx.log(`2: sign-in with ${ctx.signinUsers} virtual users on OneID`);
    const oneid = await ctx.load(ctx.oneid, {
      kind: 'signin', base: ctx.oneid.base, connections: ctx.signinUsers, durationS: ctx.durationS, warmupS: ctx.warmupS,
      app: ctx.apps.web, users: ctx.users,
    });
    ctx.log('2: argon2id verifications on the server core');
    const ceiling = await ctx.argon2Ceiling(ctx.signinUsers);
    return [ratioRow('2', 'password sign-in (full flow)', oneid, 'argon2id verify, m=19456 t=2 p=1', ceiling, 0.75, '>= 75% of ceiling')];
  },
};

export const refreshRotation: Scenario = {
  id: '3',
  title: 'refresh token rotation',
  goal: '>= 50% of bare client_credentials',
  measure: async (ctx) => {
    // A request cut off when a run stops takes its token with it: three tokens per connection.
    const pool = await ctx.prepareTokens(ctx.connections * 3);
    const refreshTokens = pool.map((t) => t.refresh_token).filter((t): t is string => Boolean(t));
    if (refreshTokens.length !== pool.length) throw new Error('sign-ins returned no refresh token: is refresh_token granted to the bench app?');
    ctx.log(`3: refresh rotation on OneID (${refreshTokens.length} chains)`);
    const oneid = await ctx.load(ctx.oneid, {
      kind: 'refresh', base: ctx.oneid.base, ...common(ctx), refreshTokens,
      client: { clientId: ctx.apps.web.clientId, clientSecret: ctx.apps.web.clientSecret },
    });
    ctx.log('3: client_credentials on the bare oidc-provider');
    const ceiling = await bareClientCredentials(ctx);
    return [ratioRow('3', 'refresh token rotation', oneid, 'bare oidc-provider client_credentials', ceiling, 0.5, '>= 50% of ceiling')];
  },
};

export const readEndpoints: Scenario = {
  id: '4',
  title: 'userinfo, discovery, JWKS',
  goal: 'userinfo >= 1500/s; discovery and JWKS >= 5000/s',
  measure: async (ctx) => {
    const tokens = (await ctx.prepareTokens(8)).map((t) => t.access_token);
    const hello = await ctx.koaHello();
    ctx.log('4: koa hello-world');
    const ceiling = await ctx.load(hello, { kind: 'http', base: hello.base, ...common(ctx), method: 'GET', path: '/' });
    const rows: Row[] = [];
    const absolute = (id: string, scenario: string, oneid: Measured, min: number): Row => ({
      id, scenario, oneid, ceiling: { name: 'bare koa hello-world', ...ceiling }, ratio: ceiling.rps > 0 ? oneid.rps / ceiling.rps : 0,
      goal: `>= ${min}/s`, pass: oneid.rps >= min && oneid.errors === 0,
    });
    ctx.log('4a: userinfo on OneID');
    // Eight users' access tokens, taken in turn.
    const userinfo = await ctx.load(ctx.oneid, {
      kind: 'http', base: ctx.oneid.base, ...common(ctx), method: 'GET', path: '/me',
      headers: { accept: 'application/json' },
      rotateHeader: { name: 'authorization', values: tokens.map((t) => `Bearer ${t}`) },
    });
    rows.push(absolute('4a', 'userinfo (valid access token)', userinfo, 1500));
    // Discovery and JWKS also on the bare library (a diagnostic, not the goal): what is the
    // library's and what is OneID's own per-request cost.
    const bare = await ctx.bareProvider();
    for (const [id, scenario, path] of [['4b', 'discovery', '/.well-known/openid-configuration'], ['4c', 'JWKS', '/jwks']] as const) {
      ctx.log(`${id}: ${scenario} on OneID`);
      const oneid = await ctx.load(ctx.oneid, { kind: 'http', base: ctx.oneid.base, ...common(ctx), method: 'GET', path });
      ctx.log(`${id}: ${scenario} on the bare oidc-provider`);
      const reference = await ctx.load(bare, { kind: 'http', base: bare.base, ...common(ctx), method: 'GET', path });
      rows.push({ ...absolute(id, scenario, oneid, 5000), reference: { name: `bare oidc-provider ${path}`, ...reference } });
    }
    return rows;
  },
};
