// Ceiling for scenarios 1 and 3: the bare library. oidc-provider of the same version as OneID,
// its default in-memory adapter, one static client, client_credentials enabled and resource
// indicators configured exactly like OneID's (RFC 9068 JWT access token for <ISSUER>/api,
// ES256, same TTL), an ES256 and an RS256 signing key like OneID's keystore.
// No logging, no database, no extra middleware: this is what the library can do on one core.
//
// As the ceiling of row 3 it also rotates refresh tokens as OneID's bench web app does
// (client BENCH_WEB_CLIENT_ID, rotation, an ES256 ID token with a static account's profile and
// email claims): GET /bench/refresh-tokens?n=N mints N refresh tokens, each of its own grant (a JSON array).
//
// env: PORT, ISSUER, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, BENCH_WEB_CLIENT_ID, BENCH_WEB_CLIENT_SECRET
import http from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import { apiResourceIndicators } from '../../../src/oidc/provider.ts';

const port = Number(process.env.PORT ?? 0);
const issuer = process.env.ISSUER ?? `http://127.0.0.1:${port}`;
const api = `${issuer}/api`;

const webClientId = process.env.BENCH_WEB_CLIENT_ID ?? 'bench-web';
const SCOPE = 'openid offline_access profile email';

const key = async (alg: 'ES256' | 'RS256', kid: string) => {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid };
};

const configuration: Configuration = {
  clients: [{
    client_id: process.env.BENCH_CLIENT_ID ?? 'bench',
    client_secret: process.env.BENCH_CLIENT_SECRET ?? 'bench-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }, {
    client_id: webClientId,
    client_secret: process.env.BENCH_WEB_CLIENT_SECRET ?? 'bench-web-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/cb'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: 'Bench User', preferred_username: 'bench', email: 'bench@example.com', email_verified: true }),
  }),
  rotateRefreshToken: true,
  jwks: { keys: [await key('ES256', 'es'), await key('RS256', 'rs')] } as Configuration['jwks'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // The same resource server and token format as OneID's (src/oidc/provider.ts).
    resourceIndicators: apiResourceIndicators(api, 3600),
  },
  ttl: { ClientCredentials: 3600, AccessToken: 3600, RefreshToken: 86400, Grant: 86400, IdToken: 3600 },
};

const provider = new Provider(issuer, configuration);
const handle = provider.callback();

/** A refresh token from a grant of its own, as a sign-in with SCOPE would have left it. */
async function mintRefreshToken(): Promise<string> {
  const grant = new provider.Grant({ accountId: 'bench-user', clientId: webClientId });
  grant.addOIDCScope(SCOPE);
  const grantId = await grant.save();
  const client = await provider.Client.find(webClientId);
  if (!client) throw new Error(`no client ${webClientId}`);
  const now = Math.floor(Date.now() / 1000);
  return new provider.RefreshToken({
    accountId: 'bench-user', client, grantId, scope: SCOPE, authTime: now, iiat: now, gty: 'authorization_code',
  }).save();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', issuer);
  if (url.pathname !== '/bench/refresh-tokens') return handle(req, res);
  Promise.all(Array.from({ length: Number(url.searchParams.get('n') ?? 1) }, mintRefreshToken)).then((tokens) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(tokens));
  }, (err: Error) => {
    res.statusCode = 500;
    res.end(err.message);
  });
});
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
