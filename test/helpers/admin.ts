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
