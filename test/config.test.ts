// Unit tests of the environment parser: what an operator gets for each setting, and the
// message they read when a value is wrong.
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config.ts';

const MASTER_KEY = 'A'.repeat(43); // 32 bytes as base64url

/** The ConfigError thrown by loadConfig(env); fails the test when nothing is thrown. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig defaults', () => {
  it('starts on port 3000 with issuer http://localhost:3000 and ./data resolved to an absolute path', () => {
    const config = loadConfig({});
    expect(config.port).toBe(3000);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.dataDir).toBe(path.resolve(process.cwd(), 'data'));
    expect(path.isAbsolute(config.dataDir)).toBe(true);
    expect(config.env).toBe('development');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.masterKey).toBeUndefined();
    expect(config.logLevel).toBe('info');
    expect(config.trustProxy).toBe(false);
    expect(config.password).toEqual({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    expect(config.passwordMinLength).toBe(8);
  });

  it('signs SAML metadata only when SAML_METADATA_SIGNED=true', () => {
    expect(loadConfig({}).samlMetadataSigned).toBe(false);
    expect(loadConfig({ SAML_METADATA_SIGNED: 'true' }).samlMetadataSigned).toBe(true);
    expect(loadConfig({ SAML_METADATA_SIGNED: 'false' }).samlMetadataSigned).toBe(false);
  });

  it('reads PASSWORD_MIN_LENGTH', () => {
    expect(loadConfig({ PASSWORD_MIN_LENGTH: '12' }).passwordMinLength).toBe(12);
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig({ PORT: '', ISSUER: '', DATABASE_URL: '', LOG_LEVEL: '' });
    expect(config.port).toBe(3000);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.logLevel).toBe('info');
  });

  it('ignores variables it does not know', () => {
    expect(() => loadConfig({ SOMETHING_ELSE: 'x', PATH: '/usr/bin' })).not.toThrow();
  });
});

describe('loadConfig ISSUER', () => {
  it('derives the issuer from PORT when ISSUER is not set', () => {
    const config = loadConfig({ PORT: '8080' });
    expect(config.port).toBe(8080);
    expect(config.issuer).toBe('http://localhost:8080');
  });

  it('strips trailing slashes from ISSUER', () => {
    expect(loadConfig({ ISSUER: 'https://id.example.com/' }).issuer).toBe('https://id.example.com');
    expect(loadConfig({ ISSUER: 'https://example.com/oneid//' }).issuer).toBe('https://example.com/oneid');
  });

  it('keeps an explicit ISSUER even when PORT differs', () => {
    expect(loadConfig({ PORT: '8080', ISSUER: 'https://id.example.com' }).issuer).toBe('https://id.example.com');
  });

  it('throws a ConfigError naming ISSUER when it is not an http(s) URL', () => {
    expect(configError({ ISSUER: 'ftp://id.example.com' }).message).toContain('ISSUER');
    expect(configError({ ISSUER: 'not a url' }).message).toContain('ISSUER');
  });
});

describe('loadConfig bad values', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '80.5'],
    ['DATABASE_URL', 'mysql://x'],
    ['LOG_LEVEL', 'loud'],
    ['ONEID_MASTER_KEY', 'short'],
    ['PASSWORD_MEMORY_KIB', '19455'],
    ['PASSWORD_MEMORY_KIB', '4096'],
    ['PASSWORD_TIME_COST', '1'],
    ['PASSWORD_MIN_LENGTH', '7'],
    ['PASSWORD_MIN_LENGTH', '257'],
    ['DATABASE_POOL_MAX', '0'],
    ['NODE_ENV', 'staging'],
    ['TRUST_PROXY', 'yes'],
    ['TRUST_PROXY', '0'],
    ['SAML_METADATA_SIGNED', 'yes'],
  ])('throws a ConfigError naming %s for %s', (key, value) => {
    const err = configError({ [key]: value });
    expect(err.message).toContain(key);
    expect(err.name).toBe('ConfigError');
  });

  it('names the key but does not echo a bad master key', () => {
    const err = configError({ ONEID_MASTER_KEY: 'my-secret-but-too-short' });
    expect(err.message).toContain('ONEID_MASTER_KEY');
    expect(err.message).not.toContain('my-secret-but-too-short');
  });

  it('accepts the documented forms of the values it refuses above', () => {
    const config = loadConfig({
      PORT: '0',
      DATABASE_URL: 'postgresql://u@db:5432/oneid',
      LOG_LEVEL: 'debug',
      ONEID_MASTER_KEY: 'ab'.repeat(32),
      PASSWORD_MEMORY_KIB: '19456',
      PASSWORD_TIME_COST: '3',
      TRUST_PROXY: 'true',
    });
    expect(config.port).toBe(0);
    expect(config.databaseUrl).toBe('postgresql://u@db:5432/oneid');
    expect(config.logLevel).toBe('debug');
    expect(config.masterKey).toBe('ab'.repeat(32));
    expect(config.password).toEqual({ memoryCost: 19456, timeCost: 3, parallelism: 1 });
    expect(config.trustProxy).toBe(true);
    expect(config.proxyHops).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '2' })).toMatchObject({ trustProxy: true, proxyHops: 2 });
    expect(loadConfig({})).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(loadConfig({ ONEID_MASTER_KEY: MASTER_KEY, DATABASE_URL: 'postgres://x' }).masterKey).toBe(MASTER_KEY);
  });
});

describe('loadConfig NODE_ENV=production', () => {
  it('refuses to start without ONEID_MASTER_KEY', () => {
    expect(configError({ NODE_ENV: 'production', ISSUER: 'https://id.example.com' }).message).toContain('ONEID_MASTER_KEY');
  });

  it('refuses to start without ISSUER', () => {
    expect(configError({ NODE_ENV: 'production', ONEID_MASTER_KEY: MASTER_KEY }).message).toContain('ISSUER');
  });

  it('refuses to start with neither ONEID_MASTER_KEY nor ISSUER', () => {
    expect(configError({ NODE_ENV: 'production' }).message).toMatch(/ONEID_MASTER_KEY|ISSUER/);
  });

  it('starts with both set', () => {
    const config = loadConfig({ NODE_ENV: 'production', ONEID_MASTER_KEY: MASTER_KEY, ISSUER: 'https://id.example.com/' });
    expect(config.env).toBe('production');
    expect(config.issuer).toBe('https://id.example.com');
  });
});

describe('loadConfig METRICS_*', () => {
  it('serves no metrics unless METRICS_PORT or METRICS_TOKEN is set; the metrics port binds to 127.0.0.1', () => {
    expect(loadConfig({}).metrics).toEqual({ port: undefined, host: '127.0.0.1', token: undefined });
    const token = 'a'.repeat(32);
    expect(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0', METRICS_TOKEN: token }).metrics).toEqual({ port: 9464, host: '0.0.0.0', token });
  });

  it('refuses METRICS_PORT equal to PORT, which would put /metrics on the public port without a token', () => {
    expect(configError({ METRICS_PORT: '3000' }).message).toMatch(/^invalid configuration: METRICS_PORT: must differ from PORT/);
    expect(configError({ PORT: '8080', METRICS_PORT: '8080' }).message).toContain('METRICS_PORT');
  });

  it('refuses a METRICS_TOKEN that is short or not a bearer token', () => {
    expect(configError({ METRICS_TOKEN: 'secret' }).message).toBe('invalid configuration: METRICS_TOKEN: must be at least 32 characters');
    expect(configError({ METRICS_TOKEN: `${'a'.repeat(32)} b` }).message).toContain('METRICS_TOKEN');
    expect(configError({ METRICS_PORT: '0' }).message).toContain('METRICS_PORT');
  });
});

describe('loadConfig SIGNIN_POLICY_DEFAULT', () => {
  it('defaults to password and takes each level', () => {
    expect(loadConfig({}).signinPolicyDefault).toBe('password');
    for (const level of ['password', 'mfa', 'phishing_resistant']) {
      expect(loadConfig({ SIGNIN_POLICY_DEFAULT: level }).signinPolicyDefault).toBe(level);
    }
  });

  it.each(['MFA', 'passkey', 'default', 'two_factor'])('refuses %s, naming the key and the values it takes', (value) => {
    const err = configError({ SIGNIN_POLICY_DEFAULT: value });
    expect(err.message).toBe('invalid configuration: SIGNIN_POLICY_DEFAULT: must be password, mfa or phishing_resistant');
  });
});
