// Scenario 6: a passkey sign-in, the whole way (authorize, the sign-in page, passkey options,
// the assertion, resume, code exchange), beside the bare library's code flow whose login
// accepts anyone (baselines/oidc-code-flow.ts), on the same core in the same run. No password
// hash here: what the ratio shows is OneID's own sign-in machinery (flow, challenge, signature
// check, session, audit, the extra requests) against the protocol's minimum.
import type { Scenario } from '../lib/scenario.ts';
import { pairedRounds, ratioRow } from './oidc.ts';

export const passkeySignIn: Scenario = {
  id: '6',
  title: 'passkey sign-in: authorize -> page -> options -> assertion -> resume -> code -> token',
  goal: '>= 40% of bare oidc-provider code flow',
  measure: async (ctx) => {
    ctx.log(`6: registering ${ctx.signinUsers} passkeys (one per virtual user)`);
    const people = await ctx.passkeyUsers();
    const bare = await ctx.bareCodeFlow();
    const common = { connections: ctx.signinUsers, durationS: ctx.durationS, warmupS: ctx.warmupS };
    const rounds = await pairedRounds(ctx, `6: passkey sign-in with ${ctx.signinUsers} virtual users on OneID / code flow on the bare oidc-provider`,
      () => ctx.load(ctx.oneid, { kind: 'passkey-signin', base: ctx.oneid.base, ...common, app: ctx.apps.web, passkeys: people.map((p) => p.passkey) }),
      () => ctx.load(bare, { kind: 'code-flow', base: bare.base, ...common, app: ctx.bareCodeFlowApp }));
    const row = ratioRow('6', 'passkey sign-in (full flow)', rounds, 'bare oidc-provider code flow, login accepts anyone', 0.4, '>= 40% of ceiling');
    // Each server's CPU per sign-in under the load: the ratio a saturated core would give. The
    // throughput ratio is lower when OneID's core is not saturated (it waits on PostgreSQL, 26
    // round trips per sign-in, on the load core, which a busy machine slows down).
    const { oneid, ceiling } = rounds.median;
    if (oneid.rps > 0 && ceiling.rps > 0) {
      const ms = (m: { serverCpu: number; rps: number }): number => (m.serverCpu * 1000) / m.rps;
      const cpuNote = `server CPU per sign-in under load: OneID ${ms(oneid).toFixed(2)} ms, the bare library ${ms(ceiling).toFixed(2)} ms (${Math.round((ms(ceiling) / ms(oneid)) * 100)}%)`;
      row.note = row.note ? `${row.note}; ${cpuNote}` : cpuNote;
    }
    return [row];
  },
};
