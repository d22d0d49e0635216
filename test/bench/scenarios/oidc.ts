// Scenarios 1-4: the OpenID Connect hot paths, each beside its ceiling in the same run. The
// goals are regression guards set below this kind of machine's noise, each against a ceiling the
// library itself could meet: 1 the bare oidc-provider's client_credentials, 2 argon2id one hash at
// a time, 3 the bare oidc-provider's own refresh rotation (in memory).
import { basicAuth, FORM } from '../lib/http.ts';
import type { BenchContext, Measured, Row, Scenario } from '../lib/scenario.ts';

const common = (ctx: BenchContext) => ({ connections: ctx.connections, durationS: ctx.durationS, warmupS: ctx.warmupS });

export interface Pair { oneid: Measured; ceiling: Measured; ratio: number }

/**
 * OneID and its ceiling, measured in turn `ctx.rounds` times (OneID first, then the ceiling first,
 * and so on, so that a drift of the machine weighs on both alike). The row shows the pair with the
 * median ratio; the note lists every round's ratio. On a VM whose hypervisor takes a share of the
 * core now and then, one pair alone passes or fails by luck.
 */
export async function pairedRounds(ctx: BenchContext, label: string, measureOneid: () => Promise<Measured>, measureCeiling: () => Promise<Measured>): Promise<{ median: Pair; note: string }> {
  const pairs: Pair[] = [];
  for (let round = 1; round <= ctx.rounds; round++) {
    ctx.log(`${label}: round ${round} of ${ctx.rounds}`);
    let oneid: Measured;
    let ceiling: Measured;
    if (round % 2 === 1) {
      oneid = await measureOneid();
      ceiling = await measureCeiling();
    } else {
      ceiling = await measureCeiling();
      oneid = await measureOneid();
    }
    pairs.push({ oneid, ceiling, ratio: ceiling.rps > 0 ? oneid.rps / ceiling.rps : 0 });
  }
  const sorted = [...pairs].sort((a, b) => a.ratio - b.ratio);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const note = pairs.length > 1
    ? `${pairs.length} rounds, ratios ${pairs.map((p) => `${Math.round(p.ratio * 100)}%`).join(', ')} (the median counts)`
    : '';
  return { median, note };
}

export const ratioRow = (id: string, scenario: string, rounds: { median: Pair; note: string }, ceilingName: string, min: number, goal: string): Row => {
  const { oneid, ceiling, ratio } = rounds.median;
  return {
    id, scenario, oneid, ceiling: { name: ceilingName, ...ceiling }, ratio, goal,
    pass: ratio >= min && oneid.errors === 0, ...(rounds.note ? { note: rounds.note } : {}),
  };
};

const clientCredentialsJob = (ctx: BenchContext, base: string, client: { clientId: string; clientSecret: string }) => ({
  kind: 'http' as const, base, ...common(ctx), method: 'POST' as const, path: '/token',
  headers: { 'content-type': FORM, accept: 'application/json', authorization: basicAuth(client.clientId, client.clientSecret) },
  body: 'grant_type=client_credentials',
});

/** The bare library's client_credentials rate; measured next to every scenario that is compared with it. */
export const bareClientCredentials = async (ctx: BenchContext): Promise<Measured> => {
  const bare = await ctx.bareProvider();
  return ctx.load(bare, clientCredentialsJob(ctx, bare.base, { clientId: 'bench', clientSecret: 'bench-secret' }));
};

export const clientCredentials: Scenario = {
  id: '1',
  title: 'client_credentials token (RFC 9068 JWT, ES256)',
  goal: '>= 65% of bare oidc-provider',
  measure: async (ctx) => {
    const rounds = await pairedRounds(ctx, '1: client_credentials on OneID / on the bare oidc-provider',
      () => ctx.load(ctx.oneid, clientCredentialsJob(ctx, ctx.oneid.base, ctx.apps.service)),
      () => bareClientCredentials(ctx));
    return [ratioRow('1', 'client_credentials token (JWT)', rounds, 'bare oidc-provider client_credentials', 0.65, '>= 65% of ceiling')];
  },
};

export const passwordSignIn: Scenario = {
  id: '2',
  title: 'full password sign-in: authorize -> form -> password -> code -> token',
  goal: '>= 55% of argon2id ceiling',
  measure: async (ctx) => {
    const rounds = await pairedRounds(ctx, `2: sign-in with ${ctx.signinUsers} virtual users on OneID / argon2id verifications on the server core`,
      () => ctx.load(ctx.oneid, {
        kind: 'signin', base: ctx.oneid.base, connections: ctx.signinUsers, durationS: ctx.durationS, warmupS: ctx.warmupS,
        app: ctx.apps.web, users: ctx.users,
      }),
      () => ctx.argon2Ceiling(ctx.signinUsers));
    return [ratioRow('2', 'password sign-in (full flow)', rounds, 'argon2id verify one at a time, m=19456 t=2 p=1', 0.55, '>= 55% of ceiling')];
  },
};

export const refreshRotation: Scenario = {
  id: '3',
  title: 'refresh token rotation',
  goal: '>= 60% of bare oidc-provider refresh rotation',
  measure: async (ctx) => {
    const rotate = async (): Promise<Measured> => {
      // Fresh chains for every round. A request cut off when a run stops takes its token with it: three tokens per connection.
      const pool = await ctx.prepareTokens(ctx.connections * 3);
      const refreshTokens = pool.map((t) => t.refresh_token).filter((t): t is string => Boolean(t));
      if (refreshTokens.length !== pool.length) throw new Error('sign-ins returned no refresh token: is refresh_token granted to the bench app?');
      return ctx.load(ctx.oneid, {
        kind: 'refresh', base: ctx.oneid.base, ...common(ctx), refreshTokens,
        client: { clientId: ctx.apps.web.clientId, clientSecret: ctx.apps.web.clientSecret },
      });
    };
    // The ceiling: the same rotation (client authentication, rotation, ES256 ID token) on the bare
    // library with its in-memory adapter, fresh tokens every round.
    const bareRotate = async (): Promise<Measured> => {
      const bare = await ctx.bareProvider();
      const minted = await (await fetch(`${bare.base}/bench/refresh-tokens?n=${ctx.connections * 3}`)).json() as string[];
      return ctx.load(bare, {
        kind: 'refresh', base: bare.base, ...common(ctx), refreshTokens: minted, client: { clientId: 'bench-web', clientSecret: 'bench-web-secret' },
      });
    };
    const rounds = await pairedRounds(ctx, '3: refresh rotation on OneID / on the bare oidc-provider', rotate, bareRotate);
    // A diagnostic, not the goal: OneID's refresh against the bare library's client_credentials.
    ctx.log('3: client_credentials on the bare oidc-provider (diagnostic)');
    const reference = await bareClientCredentials(ctx);
    return [{
      ...ratioRow('3', 'refresh token rotation', rounds, 'bare oidc-provider refresh rotation', 0.6, '>= 60% of ceiling'),
      reference: { name: 'bare oidc-provider client_credentials', ...reference },
    }];
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
