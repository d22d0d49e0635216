// What an AuthnRequest requires of OneID's sign-in (login/flow.ts), and how the assertion states
// what the sign-in was. SAML names authentication contexts by class URNs: OneID understands its
// own levels (urn:oneid:acr:password|mfa|phishing_resistant, as in OIDC) and the password classes
// of saml-authn-context-2.0; a request naming only classes OneID cannot vouch for gets NoAuthnContext.
import { ACR, levelOf, policyOfAcr, satisfies, stronger, SIGN_IN_POLICIES, type SignInPolicy } from '../access/signin-policy.ts';
import type { SignInRequest } from '../login/flow.ts';
import type { Session } from '../sessions/sessions.repo.ts';
import { AUTHN_CONTEXT } from './constants.ts';
import type { CheckedAuthnRequest } from './authn-request.ts';

const PASSWORD_CLASSES: readonly string[] = [AUTHN_CONTEXT.passwordProtectedTransport, AUTHN_CONTEXT.password, AUTHN_CONTEXT.unspecified];

/** The level a class URN stands for in OneID, if any. */
export function levelOfClass(classRef: string): SignInPolicy | undefined {
  if (PASSWORD_CLASSES.includes(classRef)) return 'password';
  return policyOfAcr(classRef);
}

const rank = (p: SignInPolicy): number => SIGN_IN_POLICIES.indexOf(p);

/**
 * The level the sign-in must reach: the app's policy (or the default), raised by the request's
 * RequestedAuthnContext. Undefined when no sign-in OneID can do meets the requested context.
 */
export function requiredLevel(appPolicy: SignInPolicy, request: CheckedAuthnRequest): SignInPolicy | undefined {
  const requested = request.requestedContext;
  if (!requested?.classRefs.length) return appPolicy;
  const levels = requested.classRefs.map(levelOfClass).filter((l): l is SignInPolicy => l !== undefined);
  if (!levels.length) return undefined;
  const weakest = levels.reduce((a, b) => (rank(a) <= rank(b) ? a : b));
  const strongest = levels.reduce((a, b) => (rank(a) >= rank(b) ? a : b));
  switch (requested.comparison) {
    case 'maximum':
      // Anything up to the strongest named: the app's own policy must still fit under it.
      return rank(appPolicy) <= rank(strongest) ? appPolicy : undefined;
    case 'better': {
      const above = SIGN_IN_POLICIES[rank(weakest) + 1];
      return above ? stronger(appPolicy, above) : undefined;
    }
    default:
      return stronger(appPolicy, weakest);
  }
}

export function signInRequestFor(appName: string, appId: string, clientId: string, level: SignInPolicy, request: CheckedAuthnRequest): SignInRequest {
  return { appName, appId, clientId, policy: level, force: request.forceAuthn };
}

/**
 * The AuthnContextClassRef for the assertion: the first class the SP asked for that the session
 * meets, else the session's own level (PasswordProtectedTransport for a password, which every SP
 * knows; OneID's URN for the stronger levels).
 */
export function authnContextFor(session: Session, request: CheckedAuthnRequest): string {
  for (const classRef of request.requestedContext?.classRefs ?? []) {
    const level = levelOfClass(classRef);
    if (!level || !satisfies(session.methods, level)) continue;
    if (request.requestedContext?.comparison === 'better' || (request.requestedContext?.comparison === 'exact' && level !== levelOf(session.methods) && level !== 'password')) continue;
    return classRef;
  }
  const level = levelOf(session.methods) ?? 'password';
  return level === 'password' ? AUTHN_CONTEXT.passwordProtectedTransport : ACR[level];
}
