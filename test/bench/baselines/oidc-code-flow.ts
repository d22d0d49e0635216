// Ceiling for scenario 6 (passkey sign-in): the bare library's authorization code flow, with a
// login that accepts anyone. oidc-provider of the same version as OneID, its default in-memory
// adapter, one confidential client shaped like OneID's bench web app (client_secret_basic, PKCE
// S256 required, an ES256 ID token, a refresh token for a client that may refresh), the same
// resource indicator configuration, signed cookies.
//
// GET /auth -> 303 /interaction/:uid, where this server signs in a fixed account and grants what
// was asked (login and consent at once, no page) -> 303 /auth/:uid (resume) -> 303 to the
// redirect_uri with the code -> POST /token. Four requests, no database, no proof checked: the
// protocol's own work per sign-in, which OneID's flow cannot do with less.
//
// A separate process from baselines/oidc-provider.ts (rows 1 and 3), so that their ceiling stays
// exactly as it was. env: PORT, ISSUER, BENCH_WEB_CLIENT_ID, BENCH_WEB_CLIENT_SECRET, BENCH_REDIRECT_URI
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { generateKeyPair, exportJWK } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import { apiResourceIndicators } from '../../../src/oidc/provider.ts';

const port = Number(process.env.PORT ?? 0);
const issuer = process.env.ISSUER ?? `http://127.0.0.1:${port}`;
const api = `${issuer}/api`;
const ACCOUNT = 'bench-user';

const key = async (alg: 'ES256' | 'RS256', kid: string) => {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), alg, use: 'sig', kid };
};

const configuration: Configuration = {
  clients: [{
    client_id: process.env.BENCH_WEB_CLIENT_ID ?? 'bench-web',
    client_secret: process.env.BENCH_WEB_CLIENT_SECRET ?? 'bench-web-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [process.env.BENCH_REDIRECT_URI ?? 'https://app.bench.example/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: 'Bench User', preferred_username: 'bench', email: 'bench@example.com', email_verified: true }),
  }),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  rotateRefreshToken: true,
  // As OneID decides it (src/oidc/provider.ts): a client that may refresh gets a refresh token.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  pkce: { required: () => true },
  jwks: { keys: [await key('ES256', 'es'), await key('RS256', 'rs')] } as Configuration['jwks'],
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: apiResourceIndicators(api, 3600),
  },
  ttl: { AccessToken: 3600, AuthorizationCode: 60, RefreshToken: 86400, Grant: 86400, IdToken: 3600, Interaction: 3600, Session: 86400 },
};

const provider = new Provider(issuer, configuration);
const handle = provider.callback();

/** The login that accepts anyone: the fixed account, and every scope and claim asked for granted. */
async function acceptAnyone(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const { params } = details;
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: String(params.client_id) });
  grant.addOIDCScope(String(params.scope ?? 'openid'));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId: ACCOUNT, amr: ['swk', 'user'] },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

const server = http.createServer((req, res) => {
  if (!req.url?.startsWith('/interaction/')) return handle(req, res);
  acceptAnyone(req, res).catch((err: Error) => {
    res.statusCode = 500;
    res.end(err.message);
  });
  return undefined;
});
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
