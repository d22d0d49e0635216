// OneID's own first-party pages (the admin console) sign in as an OIDC client of OneID: they send
// the browser through the authorization endpoint like any app, then redeem the code here, in
// process, rather than over HTTP to their own token endpoint (which a server behind a proxy may
// not reach by its public name). The checks are the token endpoint's for a public client: the
// code is this client's, for this redirect URI, unexpired, PKCE (S256) matches, used once.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type Provider from 'oidc-provider';

export interface RedeemedCode {
  accountId: string;
  acr: string | undefined;
  authTime: number | undefined;
}

const s256 = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url');

/** The code's sign-in, or undefined when the code is not one this client may redeem now. */
export async function redeemOwnCode(provider: Provider, db: Knex, input: { code: string; clientId: string; redirectUri: string; verifier: string }): Promise<RedeemedCode | undefined> {
  if (!/^[A-Za-z0-9_-]{10,200}$/.test(input.code)) return undefined;
  const code = await provider.AuthorizationCode.find(input.code);
  if (!code || code.isExpired || (code as { consumed?: unknown }).consumed || code.clientId !== input.clientId || code.redirectUri !== input.redirectUri) return undefined;
  if (code.codeChallengeMethod !== 'S256' || !code.codeChallenge || s256(input.verifier) !== code.codeChallenge) return undefined;
  // Used once, also against a second request racing this one: only one update finds it unused.
  const used = await db('oidc_payloads').where({ model: 'AuthorizationCode', id: input.code }).whereNull('consumed_at')
    .update({ consumed_at: db.fn.now() }).returning('id');
  if (used.length !== 1 || !code.accountId) return undefined;
  return { accountId: code.accountId, acr: code.acr, authTime: code.authTime };
}
