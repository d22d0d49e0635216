import type { User } from '../directory/users.repo.ts';

export const SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

export const CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'locale', 'updated_at'],
  email: ['email', 'email_verified'],
};

/** Standard OIDC claims for a user; oidc-provider filters them by granted scope and claims. */
export function claimsFor(user: User, _scope: string): Record<string, unknown> & { sub: string } {
  return {
    sub: user.id,
    name: user.displayName ?? undefined,
    given_name: user.givenName ?? undefined,
    family_name: user.familyName ?? undefined,
    preferred_username: user.username,
    locale: user.locale ?? undefined,
    updated_at: Math.floor(new Date(user.updatedAt).getTime() / 1000),
    email: user.email ?? undefined,
    email_verified: user.email ? user.emailVerified : undefined,
  };
}
