// Scenario 7: SAML single sign-on for a person who is already signed in to OneID. Each
// connection is a browser with its own OneID session (signed in once, through SAML, with a
// password) that an SP sends again and again with a new AuthnRequest by the HTTP-Redirect binding
// (unsigned, deflated, a fresh ID); OneID answers with its auto-post page carrying a signed
// Response. The ceiling is the one signature OneID makes per sign-on, on its own: xml-crypto
// signing the same assertion with the same key on the same core (baselines/saml-sign.ts). The
// row's app signs the assertion and not the Response (one signature, the same work as the
// ceiling's); a second app signing both is measured once beside it, for reference.
import type { BenchContext, Measured, Row, Scenario } from '../lib/scenario.ts';
import { authnRequestQuery, samlResponseOf, type BenchSp } from '../lib/saml.ts';
import { request } from '../lib/http.ts';
import { stepCpu } from '../lib/step-cpu.ts';
import { pairedRounds, ratioRow } from './oidc.ts';

const CEILING = 'xml-crypto signing the same assertion alone (RSA-SHA256, exc-c14n), one at a time';

/** Each server's CPU per operation under load: what the ratio would be on a saturated core. */
const cpuNote = (what: string, oneid: Measured, ceiling: Measured): string => {
  const ms = (m: Measured): number => (m.serverCpu * 1000) / m.rps;
  return `server CPU per ${what} under load: OneID ${ms(oneid).toFixed(2)} ms, the ceiling ${ms(ceiling).toFixed(2)} ms (${Math.round((ms(ceiling) / ms(oneid)) * 100)}%)`;
};

export const samlSso: Scenario = {
  id: '7',
  title: 'SAML SSO, already signed in: AuthnRequest (Redirect binding) in, signed Response out',
  goal: '>= 50% of signing the same assertion alone',
  measure: async (ctx: BenchContext) => {
    ctx.log(`7: two SAML apps, ${ctx.connections} browsers signed in once through SAML`);
    const saml = await ctx.samlSetup();
    const sso = (sp: BenchSp) => () => ctx.load(ctx.oneid, {
      kind: 'saml-sso', base: ctx.oneid.base, connections: ctx.connections, durationS: ctx.durationS, warmupS: ctx.warmupS, sp, cookies: saml.cookies,
    });
    const rounds = await pairedRounds(ctx, `7: SAML SSO with ${ctx.connections} signed-in browsers on OneID / signing the assertion alone on the server core`,
      sso(saml.assertionSigned), () => ctx.samlSignCeiling(saml.ceilingInput));
    const row = ratioRow('7', 'SAML SSO, already signed in (Redirect binding; assertion signed)', rounds, CEILING, 0.5, '>= 50% of ceiling');
    const { oneid, ceiling } = rounds.median;
    if (oneid.rps > 0 && ceiling.rps > 0) row.note = [row.note, cpuNote('sign-on', oneid, ceiling)].filter(Boolean).join('; ');
    // One sign-on at a time: OneID's main-thread CPU per sign-on, free of what a saturated core
    // shares between requests, beside the ceiling's CPU per signature (a busy loop: exact).
    const one = await stepCpu({
      base: ctx.oneid.base, pid: ctx.oneid.pid, web: ctx.apps.web, users: ctx.users, signIns: 300, warmup: 20,
      signInOnce: async (agent, onStep) => {
        await onStep('GET /saml/sso');
        const res = await request(agent, new URL(`/saml/sso?${authnRequestQuery(ctx.oneid.base, saml.assertionSigned)}`, ctx.oneid.base), {
          headers: { accept: 'text/html', 'accept-language': 'en', cookie: saml.cookies[0]! },
        });
        if (res.status !== 200 || !samlResponseOf(res.body)) throw new Error(`SAML SSO: ${res.status} ${res.body.slice(0, 200)}`);
      },
    });
    const ceilingMs = (ceiling.serverCpu * 1000) / ceiling.rps;
    row.scenario += `; one at a time: OneID main thread ${one.mainMs.toFixed(2)} ms per sign-on, the ceiling ${ceilingMs.toFixed(2)} ms per signature`;
    // Response and assertion both signed: two signatures per sign-on, against the same ceiling.
    ctx.log('7b: SAML SSO with the Response and the assertion signed (once, for reference)');
    const both = await sso(saml.bothSigned)();
    const reference: Row = {
      id: '7b', scenario: 'SAML SSO as row 7, Response and assertion both signed (reference)', oneid: both,
      ceiling: { name: `${CEILING} (row 7's median round)`, ...ceiling }, ratio: ceiling.rps > 0 ? both.rps / ceiling.rps : 0,
      goal: 'none (reference)', pass: null,
    };
    return [row, reference];
  },
};
