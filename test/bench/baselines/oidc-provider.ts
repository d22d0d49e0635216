// Ceiling for scenarios 1 and 3: the bare library. oidc-provider of the same version as OneID,
// its default in-memory adapter, one static client, client_credentials enabled and resource
// indicators configured exactly like OneID's (RFC 9068 JWT access token for <ISSUER>/api,
// ES256, same TTL), an ES256 and an RS256 signing key like OneID's keystore.
// No logging, no database, no extra middleware: this is what the library can do on one core.
//
// env: PORT, ISSUER, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET
import http from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import { apiResourceIndicators } from '../../../src/oidc/provider.ts';

const port = Number(process.env.PORT ?? 0);
const issuer = process.env.ISSUER ?? `http://127.0.0.1:${port}`;
const api = `${issuer}/api`;

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
  }],
  jwks: { keys: [await key('ES256', 'es'), await key('RS256', 'rs')] } as Configuration['jwks'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // The same resource server and token format as OneID's (src/oidc/provider.ts).
    resourceIndicators: apiResourceIndicators(api, 3600),
  },
  ttl: { ClientCredentials: 3600 },
};

const provider = new Provider(issuer, configuration);
const server = http.createServer(provider.callback());
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
