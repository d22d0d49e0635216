import type { User } from '../directory/users.repo.ts';

export const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups', 'roles'] as const;

export const CLAIMS = {
  // acr (the sign-in level reached), amr (the methods behind it, RFC 8176: pwd, hwk, otp, ...)
  // and auth_time (the session's sign-in) in every ID token, so an app can check how and when
  // the person signed in without asking; oidc-provider includes them only when a granted scope
  // lists them (or the request asks).
  openid: ['sub', 'acr', 'amr', 'auth_time'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'locale', 'updated_at'],
  email: ['email', 'email_verified'],
  /** Names of the groups the user is a member of. */
  groups: ['groups'],
  /** The user's role keys in the app that asks (never another app's), from access/entitlements. */
  roles: ['roles'],
};

/** The claims that come from the permission model; present only when their scope was granted. */
export interface AccessClaims {
  groups?: string[];
  roles?: string[];
}

export const scopeSet = (scope: string | undefined): Set<string> => new Set((scope ?? '').split(' ').filter(Boolean));

/** Standard OIDC claims for a user; oidc-provider filters them by granted scope and claims. */
export function claimsFor(user: User, _scope: string, access: AccessClaims = {}): Record<string, unknown> & { sub: string } {
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
    ...(access.groups ? { groups: access.groups } : {}),
    ...(access.roles ? { roles: access.roles } : {}),
  };
}
