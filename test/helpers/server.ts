// Starts real OneID processes (server and CLI) the way an operator would.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const testMasterKey = (): string => randomBytes(32).toString('base64url');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningServer {
  url: string;
  port: number;
  process: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Environment for a child process: the test's own settings only, nothing inherited by accident. */
export function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', LOG_LEVEL: 'info' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) base[k] = v;
  return base;
}

/**
 * Starts OneID from its TypeScript sources (tsx), or with `command` the way an operator does
 * (e.g. `npm start`: npm, a shell and node, in a process group of their own that stop() signals).
 */
export async function startServer(
  env: Record<string, string | undefined>, opts: { timeoutMs?: number; command?: { file: string; args: string[] } } = {},
): Promise<RunningServer> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const url = env.ISSUER ?? `http://localhost:${port}`;
  const group = opts.command !== undefined;
  const child = spawn(opts.command?.file ?? process.execPath, opts.command?.args ?? ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: childEnv({ ...env, PORT: String(port), ISSUER: url, HOST: '127.0.0.1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  const signal = (sig: NodeJS.Signals) => (group ? process.kill(-child.pid!, sig) : child.kill(sig));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + (opts.timeoutMs ?? 60000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`OneID exited with ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) {
      signal('SIGKILL');
      throw new Error(`OneID did not become ready:\n${out}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (res.status === 200) break;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    url,
    port,
    process: child,
    output: () => out,
    stop: async (sig: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null) signal(sig);
      return exited;
    },
  };
}

export interface CliResult { code: number; stdout: string; stderr: string; json: any }

export function runCli(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['src/bin/oneid.js', ...args], { cwd: ROOT, env: childEnv(env), timeout: 120000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      let json: unknown;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      resolve({ code, stdout, stderr, json });
    });
  });
}

/** Runs the CLI with `input` on its standard input (a pipe, as in `echo pw | oneid ...`). */
export function runCliWithInput(args: string[], input: string, env: Record<string, string | undefined>): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['src/bin/oneid.js', ...args], { cwd: ROOT, env: childEnv(env), timeout: 120000 }, (err, stdout, stderr) => {
      let json: unknown;
      try { json = JSON.parse(stdout); } catch { json = undefined; }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, json });
    });
    child.stdin!.end(input);
  });
}
