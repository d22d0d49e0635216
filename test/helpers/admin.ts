// Admin API access for black-box tests: an admin client (client_credentials) per role set.
import { runCli } from './server.ts';

export interface AdminClient {
  clientId: string;
  token: string;
  /** fetch against /admin/api/v1 with the bearer token; JSON in and out. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function adminClient(serverUrl: string, env: Record<string, string>, roles: string[]): Promise<AdminClient> {
  const created = await runCli(['apps', 'create', '--name', `admin ${roles.join('+') || 'none'}`, '--grant-types', 'client_credentials',
    ...roles.flatMap((r) => ['--admin-role', r])], env);
  if (created.code !== 0) throw new Error(`could not create admin client: ${created.stderr}`);
  const { client_id: clientId, client_secret: secret } = created.json as { client_id: string; client_secret: string };
  const res = await fetch(`${serverUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  const { access_token: token } = await res.json() as { access_token: string };
  if (!token) throw new Error('no access token for the admin client');
  return {
    clientId,
    token,
    call: async (method, path, body, headers = {}) => {
      const r = await fetch(`${serverUrl}/admin/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      let parsed: unknown = text;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
      return { status: r.status, body: parsed, headers: r.headers };
    },
  };
}

/**
 * A person's admin API token as it will be once the sign-in records how strongly the person
 * signed in (RFC 9470 acr, added by the #18 sign-in flow): `token`, a genuine token from a real
 * sign-in, with `acr` set (or removed with null) and signed again with the server's own current
 * key, read from the database with the master key. Every other claim (sub, client_id, iat, jti,
 * scope) stays what the server issued, unless `extra` sets it (e.g. a DPoP binding, cnf).
 */
export async function withAcr(token: string, acr: string | null, databaseUrl: string, masterKey: string, extra: Record<string, unknown> = {}): Promise<string> {
  const { decodeJwt, decodeProtectedHeader, importJWK, SignJWT } = await import('jose');
  const { default: knex } = await import('knex');
  const { MasterKey } = await import('../../src/keys/master-key.ts');
  const { loadProviderJwks } = await import('../../src/keys/keys.service.ts');
  const header = decodeProtectedHeader(token);
  const { acr: _old, ...claims } = decodeJwt(token);
  const db = knex({ client: 'pg', connection: databaseUrl, pool: { min: 0, max: 1 } });
  try {
    const { keys } = await loadProviderJwks(db, MasterKey.parse(masterKey));
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk) throw new Error(`no signing key ${header.kid}`);
    return await new SignJWT({ ...claims, ...extra, ...(acr === null ? {} : { acr }) })
      .setProtectedHeader({ alg: header.alg!, kid: header.kid, typ: header.typ })
      .sign(await importJWK(jwk, header.alg));
  } finally {
    await db.destroy();
  }
}

/** An admin API client for each admin role, made at once (each is a CLI run and a token request). */
export async function adminClientsOfEachRole(serverUrl: string, env: Record<string, string>): Promise<[AdminClient, AdminClient, AdminClient, AdminClient]> {
  return Promise.all([
    adminClient(serverUrl, env, ['super_admin']),
    adminClient(serverUrl, env, ['user_admin']),
    adminClient(serverUrl, env, ['app_admin']),
    adminClient(serverUrl, env, ['auditor']),
  ]);
}
