// Database round trips per operation: exact counts that no machine noise can blur.
// A separate OneID process runs with DEBUG=knex:query,oneid:sql (knex prints every statement it
// sends, BEGIN/COMMIT included; db/prepared.ts the prepared statements it sends past knex); we do each operation once, one step at a time, and count.
import http from 'node:http';
import { basicAuth, FORM, request } from './http.ts';
import { signIn, type WebApp } from './signin.ts';
import { authenticatorOf, passkeySignIn, type PasskeyJSON } from './passkey-signin.ts';
import { spawnPinned, waitFor200 } from './proc.ts';
import { authnRequestQuery, samlResponseOf, type BenchSp } from './saml.ts';

export interface QueryCount {
  operation: string;
  queries: number;
  /** Statements in order, shortened. */
  statements: string[];
  /** For multi-request operations: queries per HTTP request. */
  steps?: { step: string; queries: number }[];
}

/** How the audit chainer's write starts (audit.service.ts, chainPendingAuditEvents). */
const CHAINER_WRITE = 'with done as (delete from audit_pending';


export async function countQueries(opts: {
  root: string; cpu: number; env: NodeJS.ProcessEnv; base: string;
  service: { clientId: string; clientSecret: string }; web: WebApp; user: { login: string; password: string };
  /** Row 6's: a passkey registered for someone (counted last, so that the other counts stay as they were). */
  passkey?: PasskeyJSON;
  /** Row 7's: an SP and a browser already signed in to OneID (counted last, likewise). */
  saml?: { sp: BenchSp; cookie: string };
}): Promise<QueryCount[]> {
  const p = spawnPinned(opts.cpu, ['--import', 'tsx', 'src/main.ts'], { cwd: opts.root, env: { ...opts.env, DEBUG: 'knex:query,oneid:sql' } });
  const statements: string[] = [];
  /** When OneID last printed a statement (performance.now()). */
  let lastStatementAt = 0;
  /**
   * Waits until OneID has printed its statements for what was just done: 80 ms without a new
   * one (the audit chainer's, every 250 ms, leave such gaps), 5 s at most. A fixed pause was not
   * enough on a slow machine: a request's last statements then showed up in the next one's count.
   */
  const settle = async (): Promise<void> => {
    const started = performance.now();
    do await new Promise((r) => setTimeout(r, 20));
    while (performance.now() - Math.max(lastStatementAt, started) < 80 && performance.now() - started < 5000);
  };
  const chainer = new Set<string>();
  let partial = '';
  let rawPending = false;
  p.child.stderr!.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const tag = [' knex:query ', ' oneid:sql '].find((t) => line.includes(t));
      if (tag) {
        lastStatementAt = performance.now();
        const text = line.slice(line.indexOf(tag) + tag.length).replace(/\s+undefined$/, '').replace(/\s+/g, ' ').trim();
        // The audit chainer's transactions (main.ts, every 250 ms) belong to no operation: its
        // BEGIN is taken back when its next statement turns out to be the chainer's lock.
        if (text.startsWith(CHAINER_WRITE)) continue; // the chainer's, however printed
        const trx = /\s(trx\d+)$/.exec(text)?.[1];
        if (trx && chainer.has(trx)) continue;
        if (trx && text.startsWith('select pg_try_advisory_xact_lock') && statements.lastIndexOf(`BEGIN; ${trx}`) !== -1) {
          chainer.add(trx);
          statements.splice(statements.lastIndexOf(`BEGIN; ${trx}`), 1);
          continue;
        }
        statements.push(text.slice(0, 120));
        rawPending = text === '';
      } else if (rawPending && line.trim()) {
        // A raw statement that starts with a newline: its text follows on the next lines (its
        // transaction tag after the last one, out of sight here). The chainer's one is its own.
        if (line.trim().startsWith(CHAINER_WRITE)) statements.pop();
        else statements[statements.length - 1] = `(raw) ${line.trim().replace(/\s+/g, ' ')} ...`.slice(0, 120);
        rawPending = false;
      }
    }
  });
  try {
    await waitFor200(`${opts.base}/readyz`, p, performance.now());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const base = opts.base;
    const tokenPost = (body: string, client: { clientId: string; clientSecret: string }) => request(agent, new URL('/token', base), {
      method: 'POST', body, headers: { 'content-type': FORM, accept: 'application/json', authorization: basicAuth(client.clientId, client.clientSecret) },
    });
    const ops: { name: string; run: (onStep: (s: string) => Promise<void>) => Promise<unknown> }[] = [];
    let refreshToken = '';
    let accessToken = '';
    ops.push({ name: 'client_credentials token', run: () => tokenPost('grant_type=client_credentials', opts.service) });
    ops.push({
      name: 'password sign-in (full flow)',
      run: async (onStep) => {
        const r = await signIn(base, agent, opts.web, opts.user.login, opts.user.password, onStep);
        refreshToken = r.tokens.refresh_token ?? '';
        accessToken = r.tokens.access_token;
      },
    });
    ops.push({
      name: 'refresh token rotation',
      run: async () => {
        const r = await tokenPost(`grant_type=refresh_token&refresh_token=${encodeURIComponent(refreshToken)}`, opts.web);
        refreshToken = (JSON.parse(r.body) as { refresh_token: string }).refresh_token;
      },
    });
    ops.push({ name: 'userinfo', run: () => request(agent, new URL('/me', base), { headers: { authorization: `Bearer ${accessToken}` } }) });
    ops.push({ name: 'discovery', run: () => request(agent, new URL('/.well-known/openid-configuration', base)) });
    ops.push({ name: 'JWKS', run: () => request(agent, new URL('/jwks', base)) });
    if (opts.passkey) {
      const authenticator = authenticatorOf(new URL(base).origin, opts.passkey);
      // A fresh cookie jar each time, like the password sign-in: a new browser, no OneID session.
      ops.push({ name: 'passkey sign-in (full flow)', run: (onStep) => passkeySignIn(base, agent, opts.web, authenticator, onStep) });
    }
    const saml = opts.saml;
    if (saml) {
      ops.push({
        name: 'SAML SSO, already signed in (Redirect binding)',
        run: async () => {
          const res = await request(agent, new URL(`/saml/sso?${authnRequestQuery(base, saml.sp)}`, base), { headers: { accept: 'text/html', cookie: saml.cookie } });
          if (res.status !== 200 || !samlResponseOf(res.body)) throw new Error(`SAML SSO: ${res.status} ${res.body.slice(0, 200)}`);
        },
      });
    }

    // Once to warm up (lazy loads, caches), then counted.
    for (const op of ops) await op.run(async () => undefined);
    await settle();
    const counts: QueryCount[] = [];
    for (const op of ops) {
      const from = statements.length;
      const steps: { step: string; queries: number }[] = [];
      let stepFrom = from;
      let current: string | undefined;
      await op.run(async (step) => {
        await settle();
        if (current) steps.push({ step: current, queries: statements.length - stepFrom });
        current = step;
        stepFrom = statements.length;
      });
      await settle();
      if (current) steps.push({ step: current, queries: statements.length - stepFrom });
      counts.push({ operation: op.name, queries: statements.length - from, statements: statements.slice(from), ...(steps.length ? { steps } : {}) });
    }
    agent.destroy();
    return counts;
  } finally {
    await p.stop();
  }
}
