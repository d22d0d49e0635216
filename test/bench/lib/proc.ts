// Child processes pinned to one core, and what /proc says about them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

export interface Pinned {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `node <args>` through `taskset -c <cpu>`; taskset execs node, so the pid is node's. */
export function spawnPinned(cpu: number, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; stdin?: boolean }): Pinned {
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, ...args], {
    cwd: opts.cwd, env: opts.env, stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    output: () => out,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs a pinned node process to completion, feeding `input` on stdin; returns its stdout's last line as JSON. */
export async function runPinnedJson<T>(cpu: number, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string }): Promise<T> {
  const p = spawnPinned(cpu, args, { ...opts, stdin: true });
  let stdout = '';
  p.child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  p.child.stdin!.end(opts.input ?? '');
  const code = await p.exited;
  const last = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0) throw new Error(`${args.join(' ')} exited with ${code}:\n${p.output().slice(-3000)}`);
  return JSON.parse(last) as T;
}

/** A port nobody listens on (the tests' helper). */
export { freePort } from '../../helpers/server.ts';

/** Polls `url` every `everyMs` until it answers 200; returns the milliseconds since `since`. */
export async function waitFor200(url: string, p: Pinned, since: number, timeoutMs = 60000, everyMs = 10): Promise<number> {
  for (;;) {
    if (p.child.exitCode !== null) throw new Error(`process exited with ${p.child.exitCode} before ${url} answered:\n${p.output().slice(-3000)}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - since;
    } catch { /* not listening yet */ }
    if (performance.now() - since > timeoutMs) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function waitForLine(p: Pinned, pattern: RegExp, timeoutMs = 30000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(p.output());
    if (m) return m;
    if (p.child.exitCode !== null) throw new Error(`process exited with ${p.child.exitCode}:\n${p.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A `Field:   123 kB` line of a /proc file, in kB. */
const kbField = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
const statusField = (pid: number, field: string): number => kbField(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), field) / 1024;

/** Resident set size now, MB. */
export const rssMb = (pid: number): number => statusField(pid, 'VmRSS');
/** Peak resident set size (since start or the last resetPeakRss), MB. */
export const peakRssMb = (pid: number): number => statusField(pid, 'VmHWM');

/**
 * Where a process's resident memory is, MB: file-backed (the node binary, shared libraries),
 * anonymous, and of the anonymous part the V8 heap as Node's diagnostic report counts it
 * (`--report-on-signal`, SIGUSR2: written without stopping the process for long); the rest of
 * the anonymous memory is native (malloc arenas of the main and the libuv threads, buffers).
 */
export async function memoryBreakdown(pid: number, reportDir: string): Promise<{ fileMb: number; anonMb: number; heapTotalMb?: number; heapUsedMb?: number}> {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string): number => kbField(rollup, field);
  const result: { fileMb: number; anonMb: number; heapTotalMb?: number; heapUsedMb?: number } = {
    fileMb: (kb('Rss') - kb('Anonymous')) / 1024, anonMb: kb('Anonymous') / 1024,
  };
  const before = new Set(fs.existsSync(reportDir) ? fs.readdirSync(reportDir) : []);
  try {
    process.kill(pid, 'SIGUSR2');
  } catch {
    return result;
  }
  for (let i = 0; i < 100; i += 1) {
    await new Promise((r) => setTimeout(r, 50));
    const file = fs.readdirSync(reportDir).find((f) => f.startsWith('report.') && f.endsWith('.json') && !before.has(f));
    if (!file) continue;
    try {
      const report = JSON.parse(fs.readFileSync(`${reportDir}/${file}`, 'utf8')) as {
        javascriptHeap?: { totalMemory?: number; usedMemory?: number };
      };
      fs.rmSync(`${reportDir}/${file}`);
      const heap = report.javascriptHeap ?? {};
      if (heap.totalMemory !== undefined) result.heapTotalMb = heap.totalMemory / 2 ** 20;
      if (heap.usedMemory !== undefined) result.heapUsedMb = heap.usedMemory / 2 ** 20;
      return result;
    } catch {
      // Still being written.
    }
  }
  return result;
}

/** Resets VmHWM (writing 5 to clear_refs, Linux >= 4.0). Returns false where not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

const TICK = 100; // USER_HZ; 100 on every Linux we run on.

/** CPU seconds a process (or one of its threads, by tid) has used so far, in user space and in the kernel. */
export function cpuTimes(pid: number, tid?: number): { user: number; sys: number } {
  try {
    const stat = fs.readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / TICK, sys: Number(fields[12]) / TICK }; // utime, stime (fields 14 and 15)
  } catch {
    return { user: 0, sys: 0 };
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

/** CPU seconds used so far by every PostgreSQL backend serving `database`, by pid. */
export function postgresCpu(database: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.startsWith('postgres: ') && cmd.includes(` ${database} `)) out.set(Number(entry), cpuSeconds(Number(entry)));
    } catch { /* gone */ }
  }
  return out;
}

/** CPU seconds the database's backends used between two postgresCpu snapshots. */
export function postgresCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, cpu] of after) total += cpu - (before.get(pid) ?? 0);
  return total;
}

/** Machine-wide CPU seconds so far (all cores): busy (user, nice, system, irq, softirq) and steal. */
export function machineCpu(): { busy: number; steal: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) / TICK, steal: steal / TICK };
}

/** Load average over the last minute and the CPUs of this machine. */
export function machine(): { cpus: string; cores: number; memoryGb: number; load1: number; kernel: string } {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const mem = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const load1 = Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  const kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return { cpus: model, cores, memoryGb: Math.round(mem / 1024 / 1024 * 10) / 10, load1, kernel };
}

const parentOf = (pid: number): number | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
};

/** A process and its children (PostgreSQL's postmaster and the backends it forked). */
function withChildren(pid: number): number[] {
  const out = [pid];
  for (const entry of fs.readdirSync('/proc')) if (/^\d+$/.test(entry) && parentOf(Number(entry)) === pid) out.push(Number(entry));
  return out;
}

/**
 * Keeps the local PostgreSQL server (found through one of its backends, `backendPid`) on `cpu`:
 * its postmaster and every process it has, and so every backend it forks later. Resolves to a
 * function that gives them back the CPUs they had, or undefined when PostgreSQL is not a process
 * of this machine that taskset may move (another host, a container, not our user).
 */
export function pinPostgres(backendPid: number, cpu: number): (() => void) | undefined {
  const postmaster = parentOf(backendPid);
  if (!postmaster || postmaster <= 1) return undefined;
  try {
    if (!fs.readFileSync(`/proc/${postmaster}/cmdline`, 'utf8').includes('postgres')) return undefined;
    const mask = /affinity mask: ([0-9a-f]+)/.exec(execFileSync('taskset', ['-p', String(postmaster)], { encoding: 'utf8' }))?.[1];
    if (!mask) return undefined;
    const move = (args: string[]) => {
      for (const pid of withChildren(postmaster)) {
        try { execFileSync('taskset', ['-a', '-p', ...args, String(pid)], { stdio: 'ignore' }); } catch { /* exited meanwhile */ }
      }
    };
    move(['-c', String(cpu)]);
    return () => move([mask]);
  } catch {
    return undefined;
  }
}
