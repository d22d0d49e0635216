// Where a sign-in's CPU goes on OneID's main thread, step by step: sign-ins one at a time
// against the measured OneID, reading its main thread's CPU time before each request. The
// kernel counts CPU time in ticks of 10 ms, so a step's figure is an average over many
// sign-ins (sampled, not exact); the whole sign-in's total is exact to a tick.
import http from 'node:http';
import { cpuTimes } from './proc.ts';
import { signIn, type StepHook, type WebApp } from './signin.ts';

export interface StepCpu {
  signIns: number;
  /** OneID's main thread, ms per sign-in. */
  mainMs: number;
  /** The whole process (argon2id and RS256 signatures on libuv's pool included), ms per sign-in. */
  processMs: number;
  /** Main thread ms per sign-in, per step (HTTP request) in order. */
  steps: Record<string, number>;
}

const ms = (t: { user: number; sys: number }): number => (t.user + t.sys) * 1000;

export async function stepCpu(opts: {
  base: string; pid: number; web: WebApp; users: { login: string; password: string }[]; signIns: number; warmup: number;
  /** Another sign-in than row 2's password sign-in (row 6: a passkey sign-in, or the bare code flow). */
  signInOnce?: (agent: http.Agent, onStep: StepHook) => Promise<unknown>;
}): Promise<StepCpu> {
  const main = (): number => ms(cpuTimes(opts.pid, opts.pid));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const steps = new Map<string, number>();
  let main0 = 0;
  let process0 = 0;
  try {
    for (let i = 0; i < opts.warmup + opts.signIns; i += 1) {
      const counted = i >= opts.warmup;
      if (i === opts.warmup) {
        main0 = main();
        process0 = ms(cpuTimes(opts.pid));
      }
      let step: string | undefined;
      let at = main();
      const close = (): void => {
        const now = main();
        if (counted && step) steps.set(step, (steps.get(step) ?? 0) + now - at);
        at = now;
      };
      const user = opts.users[i % opts.users.length]!;
      const onStep = async (next: string): Promise<void> => {
        close();
        step = next;
      };
      if (opts.signInOnce) await opts.signInOnce(agent, onStep);
      else await signIn(opts.base, agent, opts.web, user.login, user.password, onStep);
      // The last response is written; let the server finish the request's bookkeeping.
      await new Promise((resolve) => setTimeout(resolve, 5));
      close();
    }
  } finally {
    agent.destroy();
  }
  const per = (total: number): number => total / opts.signIns;
  return {
    signIns: opts.signIns,
    mainMs: per(main() - main0),
    processMs: per(ms(cpuTimes(opts.pid)) - process0),
    steps: Object.fromEntries([...steps].map(([name, total]) => [name, per(total)])),
  };
}
