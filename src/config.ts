// The only module that reads process.env. Everything else receives a Config.
import path from 'node:path';
import { z } from 'zod';
import type { SignInPolicy } from './access/signin-policy.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: port.default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  ISSUER: z.url({ protocol: /^https?$/ }).refine((u) => !/[?#]/.test(u), 'must not contain a query or fragment').optional(),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
  DATABASE_POOL_MAX: positiveInt.default(10),
  DATA_DIR: z.string().min(1).default('./data'),
  ONEID_MASTER_KEY: z.string().regex(/^[A-Za-z0-9_-]{43}$|^[0-9a-fA-F]{64}$/, 'must be 32 bytes as base64url (43 chars) or hex (64 chars)').optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  // false, true (one proxy in front) or the number of proxies in front that each append to X-Forwarded-For.
  TRUST_PROXY: z.string().regex(/^(true|false|[1-9])$/, 'must be false, true, or the number of proxies in front (1-9)').default('false'),
  MAX_BODY_BYTES: positiveInt.default(100 * 1024),
  SHUTDOWN_GRACE_MS: positiveInt.default(10000),
  SESSION_TTL_SECONDS: positiveInt.default(14 * 24 * 3600),
  ACCESS_TOKEN_TTL_SECONDS: positiveInt.default(3600),
  TOKEN_EXCHANGE_TTL_SECONDS: positiveInt.default(300),
  REFRESH_TOKEN_TTL_SECONDS: positiveInt.default(30 * 24 * 3600),
  SIGNIN_MAX_FAILURES: positiveInt.default(10),
  SIGNIN_MAX_FAILURES_PER_IP: positiveInt.default(100),
  SIGNIN_LOCK_SECONDS: positiveInt.default(900),
  AUTHORIZE_MAX_PER_IP: positiveInt.default(300),
  AUTHORIZE_WINDOW_SECONDS: positiveInt.default(60),
  PASSWORD_MEMORY_KIB: z.coerce.number().int().min(19456).default(19456),
  PASSWORD_TIME_COST: z.coerce.number().int().min(2).default(2),
  PASSWORD_PARALLELISM: z.coerce.number().int().min(1).default(1),
  // NIST SP 800-63B: at least 8 for a password a person chooses; at most the longest we accept.
  PASSWORD_MIN_LENGTH: z.coerce.number().int().min(8).max(256).default(8),
  SIGNIN_POLICY_DEFAULT: z.enum(['password', 'mfa', 'phishing_resistant'] satisfies SignInPolicy[], {
    error: 'must be password, mfa or phishing_resistant',
  }).default('password'),
  PASSKEY_USER_VERIFICATION: z.enum(['preferred', 'required'], { error: 'must be preferred or required' }).default('preferred'),
  SAML_METADATA_SIGNED: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  // A bearer token (RFC 6750 characters) long enough not to be guessed.
  // Background jobs (SCIM pushes, webhooks, logout fan-out): the first retry waits about this long,
  // each next one about twice as long (with jitter), up to JOBS_RETRY_MAX_SECONDS; after
  // JOBS_RETRY_LIMIT retries a job is dead-lettered (failed) for an administrator to retry.
  JOBS_RETRY_DELAY_SECONDS: positiveInt.default(5),
  JOBS_RETRY_MAX_SECONDS: positiveInt.default(3600),
  JOBS_RETRY_LIMIT: z.coerce.number().int().min(0).max(100).default(12),
  // A worker that stops sending heartbeats for this long (a killed node) gives its job back.
  JOBS_HEARTBEAT_SECONDS: z.coerce.number().int().min(10).max(3600).default(30),
  METRICS_TOKEN: z.string().regex(/^[A-Za-z0-9._~+/-]+=*$/, 'must be a bearer token (letters, digits, -._~+/)').min(32, 'must be at least 32 characters').optional(),
});

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  issuer: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  dataDir: string;
  masterKey: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  trustProxy: boolean;
  /**
   * How many proxies in front of OneID append to X-Forwarded-For (0 when not trusted): the
   * client's address is that many entries from the right; anything further left was written by
   * the client and is ignored.
   */
  proxyHops: number;
  maxBodyBytes: number;
  shutdownGraceMs: number;
  sessionTtlSeconds: number;
  accessTokenTtlSeconds: number;
  /** Lifetime of a token one suite app gets to act for a person at another (token exchange, ID-JAG): never longer than access tokens'. */
  tokenExchangeTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  password: { memoryCost: number; timeCost: number; parallelism: number };
  /** Shortest password a person may choose for themselves, unless the console sets another (access/policy-settings.ts). */
  passwordMinLength: number;
  signinMaxFailures: number;
  signinMaxFailuresPerIp: number;
  signinLockSeconds: number;
  /** The sign-in policy of apps that have none of their own (apps.signin_policy null), unless the console sets another. */
  signinPolicyDefault: SignInPolicy;
  /** Whether every passkey must verify its person (biometric or PIN), or only should. */
  passkeyUserVerification: 'preferred' | 'required';
  /**
   * Prometheus metrics at /metrics: on a port of their own when `port` is set, and on the public
   * listener only when `token` is set; the token, when set, is required on both. Neither: off.
   */
  metrics: { port: number | undefined; host: string; token: string | undefined };
  /** Whether GET /saml/metadata is signed with the current RS256 key (some SPs require it). */
  samlMetadataSigned: boolean;
  /** Authorization requests (each may store an interaction) allowed per client IP per window. */
  authorizeMaxPerIp: number;
  authorizeWindowSeconds: number;
  /** The job queue's retry policy and heartbeat (jobs/queue.ts). */
  jobs: { retryDelaySeconds: number; retryMaxSeconds: number; retryLimit: number; heartbeatSeconds: number };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once. A bad value throws a ConfigError naming the key. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings count as unset, as in most .env tooling.
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? 'environment');
    throw new ConfigError(`invalid configuration: ${key}: ${issue.message}`);
  }
  const v = parsed.data;
  if (v.NODE_ENV === 'production' && !v.ONEID_MASTER_KEY) {
    throw new ConfigError('invalid configuration: ONEID_MASTER_KEY: required when NODE_ENV=production');
  }
  if (v.NODE_ENV === 'production' && !v.ISSUER) {
    throw new ConfigError('invalid configuration: ISSUER: required when NODE_ENV=production');
  }
  if (v.METRICS_PORT !== undefined && v.METRICS_PORT === v.PORT) {
    throw new ConfigError('invalid configuration: METRICS_PORT: must differ from PORT (unset it to serve metrics on the public port with METRICS_TOKEN)');
  }
  const issuer = (v.ISSUER ?? `http://localhost:${v.PORT}`).replace(/\/+$/, '');
  return {
    env: v.NODE_ENV,
    port: v.PORT,
    host: v.HOST,
    issuer,
    databaseUrl: v.DATABASE_URL,
    databasePoolMax: v.DATABASE_POOL_MAX,
    dataDir: path.resolve(v.DATA_DIR),
    masterKey: v.ONEID_MASTER_KEY,
    logLevel: v.LOG_LEVEL,
    trustProxy: v.TRUST_PROXY !== 'false',
    proxyHops: v.TRUST_PROXY === 'false' ? 0 : v.TRUST_PROXY === 'true' ? 1 : Number(v.TRUST_PROXY),
    maxBodyBytes: v.MAX_BODY_BYTES,
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS,
    sessionTtlSeconds: v.SESSION_TTL_SECONDS,
    accessTokenTtlSeconds: v.ACCESS_TOKEN_TTL_SECONDS,
    tokenExchangeTtlSeconds: Math.min(v.TOKEN_EXCHANGE_TTL_SECONDS, v.ACCESS_TOKEN_TTL_SECONDS),
    refreshTokenTtlSeconds: v.REFRESH_TOKEN_TTL_SECONDS,
    signinMaxFailures: v.SIGNIN_MAX_FAILURES,
    signinMaxFailuresPerIp: v.SIGNIN_MAX_FAILURES_PER_IP,
    signinLockSeconds: v.SIGNIN_LOCK_SECONDS,
    signinPolicyDefault: v.SIGNIN_POLICY_DEFAULT,
    passkeyUserVerification: v.PASSKEY_USER_VERIFICATION,
    authorizeMaxPerIp: v.AUTHORIZE_MAX_PER_IP,
    authorizeWindowSeconds: v.AUTHORIZE_WINDOW_SECONDS,
    jobs: { retryDelaySeconds: v.JOBS_RETRY_DELAY_SECONDS, retryMaxSeconds: v.JOBS_RETRY_MAX_SECONDS, retryLimit: v.JOBS_RETRY_LIMIT, heartbeatSeconds: v.JOBS_HEARTBEAT_SECONDS },
    password: { memoryCost: v.PASSWORD_MEMORY_KIB, timeCost: v.PASSWORD_TIME_COST, parallelism: v.PASSWORD_PARALLELISM },
    passwordMinLength: v.PASSWORD_MIN_LENGTH,
    metrics: { port: v.METRICS_PORT, host: v.METRICS_HOST, token: v.METRICS_TOKEN },
    samlMetadataSigned: v.SAML_METADATA_SIGNED === 'true',
  };
}
