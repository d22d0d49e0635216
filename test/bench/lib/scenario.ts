// What a bench scenario is, and what run.ts gives it. Scenarios live in test/bench/scenarios/;
// run.ts lists them in order. A scenario without `measure` is printed as "not yet measured".
import type { Job, LoadResult } from './load.ts';
import type { WebApp } from './signin.ts';
import type { PasskeyUser } from './passkeys.ts';
import type { SamlSetup } from './saml-setup.ts';

export interface Figures {
  /** Successful operations per second with the server on one core. */
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export interface Measured extends Figures {
  /** Share of one core the measured server process used during the run (1 = saturated). */
  serverCpu: number;
  /** The main (JavaScript) thread's part of serverCpu; the rest is libuv's pool (argon2, crypto), GC and tsx threads. */
  serverMainThreadCpu?: number;
  /** The kernel's part of serverCpu (syscalls: sockets, wake-ups). */
  serverSysCpu?: number;
  /** Cores' worth of CPU PostgreSQL spent for this database during the run (OneID only). */
  dbCpu?: number;
  /** Share of the load core the load generator used (near 1: the generator, not the server, was the limit). */
  loadGenCpu?: number;
  /** Cores' worth of CPU used by everything else on the machine during the run (other people's work). */
  otherCpu?: number;
  /** Cores' worth of CPU the hypervisor stole during the run. */
  steal?: number;
  /** OneID's peak RSS during the run (VmHWM, reset before the run), MB. */
  peakRssMb?: number;
  requestsPerOp?: number;
  stepsMs?: Record<string, number>;
  statusCodes?: Record<string, number>;
  firstError?: string;
}

export interface Row {
  /** "1", "2", "4a", ... */
  id: string;
  scenario: string;
  /** undefined: not measured (yet). */
  oneid?: Measured;
  ceiling?: { name: string } & Partial<Measured>;
  /** A further comparison for the diagnostics (not the goal), e.g. the bare library on the same path. */
  reference?: { name: string } & Partial<Measured>;
  /** oneid.rps / ceiling.rps */
  ratio?: number;
  goal: string;
  /** null: no verdict (not measured). */
  pass: boolean | null;
  /** Shown in the table's figure columns for rows that are not throughput (memory, start-up). */
  value?: string;
  note?: string;
}

export interface Server {
  base: string;
  pid: number;
}

/** A second OneID (on the load core, its own database): the app OneID provisions into (rows 10, 11). */
export interface Downstream {
  base: string;
  pid: number;
  scimUrl: string;
  /** Its SCIM bearer token. */
  token: string;
  databaseUrl: string;
}

export interface BenchContext {
  root: string;
  durationS: number;
  warmupS: number;
  /** Scenarios measured as a ratio to their ceiling run this many OneID/ceiling pairs (median ratio). */
  rounds: number;
  /** Concurrent connections / virtual users for the fixed-request scenarios. */
  connections: number;
  /** Virtual users for the sign-in scenario. */
  signinUsers: number;
  oneid: Server;
  /** The environment OneID runs with (also what the CLI needs). */
  env: NodeJS.ProcessEnv;
  databaseName: string;
  apps: {
    service: { clientId: string; clientSecret: string };
    web: WebApp;
  };
  users: { login: string; password: string }[];
  /** The operator's CLI (`oneid ...`) against OneID's database; its JSON output. */
  cli(args: string[]): Promise<Record<string, string>>;
  /** Runs a load job from the load core while watching `server` (CPU, and for OneID RSS and PostgreSQL). */
  load(server: Server, job: Job): Promise<Measured>;
  /** K sign-ins from the load core, for tokens a scenario needs beforehand. */
  prepareTokens(count: number): Promise<{ access_token: string; refresh_token?: string }[]>;
  /** Ceiling servers, started on the server core on first use, stopped at the end. */
  bareProvider(): Promise<Server>;
  koaHello(): Promise<Server>;
  /** The bare library's code flow whose login accepts anyone (baselines/oidc-code-flow.ts); its client is bareCodeFlowApp. */
  bareCodeFlow(): Promise<Server>;
  bareCodeFlowApp: WebApp;
  /** People with one registered passkey each, one per sign-in virtual user (made on first call). */
  passkeyUsers(): Promise<PasskeyUser[]>;
  /** Row 7's SAML apps, signed-in browsers (one per connection) and the ceiling's input (made on first call). */
  samlSetup(): Promise<SamlSetup>;
  /** Signatures per second of that assertion by xml-crypto alone, on the server core (baselines/saml-sign.ts). */
  /** The second OneID, started on first use and stopped at the end. */
  downstream(): Promise<Downstream>;
  samlSignCeiling(input: SamlSetup['ceilingInput']): Promise<Measured>;
  /** argon2id verifications per second on the server core with OneID's parameters. */
  argon2Ceiling(concurrency: number): Promise<Measured>;
  log(message: string): void;
}

export interface Scenario {
  id: string;
  title: string;
  goal: string;
  measure?: (ctx: BenchContext) => Promise<Row[]>;
}

export type { Job, LoadResult };
