// What an authorization request requires of the sign-in, in the terms of OneID's flow
// (login/flow.ts): the app's sign-in policy, raised by the acr the request asks for (acr_values,
// or an essential acr in `claims`), max_age, prompt=login, login_hint and ui_locales.
import { isSignInPolicy, policyOfAcr, stronger, type SignInPolicy } from '../access/signin-policy.ts';
import type { SignInRequest } from '../login/flow.ts';

/** The acr values a request names, in its order of preference. */
export function requestedAcrValues(params: Record<string, unknown>): string[] {
  const values: string[] = [];
  if (typeof params.claims === 'string') {
    try {
      const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { value?: unknown; values?: unknown } } })?.id_token?.acr;
      if (typeof acr?.value === 'string') values.push(acr.value);
      if (Array.isArray(acr?.values)) values.push(...acr.values.filter((v): v is string => typeof v === 'string'));
    } catch {
      // oidc-provider refuses malformed claims before any interaction; nothing to add here.
    }
  }
  if (typeof params.acr_values === 'string') values.push(...params.acr_values.split(' ').filter(Boolean));
  return values;
}

/**
 * Whether the request makes acr essential (the claims parameter) with only values that are not
 * OneID's: no sign-in can meet it, and it must fail (OpenID Connect Core 5.5.1.1) rather than
 * sign the person in again and again.
 */
export function essentialAcrUnknown(params: Record<string, unknown>): boolean {
  if (typeof params.claims !== 'string') return false;
  try {
    const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { essential?: unknown; value?: unknown; values?: unknown } } })?.id_token?.acr;
    if (acr?.essential !== true) return false;
    const values = [...(typeof acr.value === 'string' ? [acr.value] : []), ...(Array.isArray(acr.values) ? acr.values : [])];
    return values.length > 0 && values.every((v) => typeof v !== 'string' || policyOfAcr(v) === undefined);
  } catch {
    return false;
  }
}

/** The app's own policy (client metadata urn:oneid:signin_policy), if it has one. */
export function clientPolicy(client: object | undefined): SignInPolicy | undefined {
  const value = (client as Record<string, unknown> | undefined)?.['urn:oneid:signin_policy'];
  return isSignInPolicy(value) ? value : undefined;
}

/**
 * The level a request needs: the app's policy (or the default), or more when the request asks
 * for it. Of several acr values any one will do (OpenID Connect Core 3.1.2.1), so the weakest of
 * ours counts; values that are not ours are ignored.
 */
export function requiredPolicy(client: object | undefined, params: Record<string, unknown>, defaultPolicy: SignInPolicy): SignInPolicy {
  const asked = requestedAcrValues(params).map(policyOfAcr).filter((p): p is SignInPolicy => p !== undefined);
  const weakestAsked = asked.reduce<SignInPolicy | undefined>((min, p) => (min && stronger(min, p) === p ? min : p), undefined);
  return stronger(clientPolicy(client) ?? defaultPolicy, weakestAsked) ?? 'password';
}

export function signInRequestOf(client: object | undefined, params: Record<string, unknown>, defaultPolicy: SignInPolicy, force: boolean): { request: SignInRequest; acrValues: string[]; appName?: string } {
  const maxAge = params.max_age === undefined || params.max_age === null ? undefined : Number(params.max_age);
  const c = client as Record<string, unknown> | undefined;
  return {
    acrValues: requestedAcrValues(params),
    request: {
      policy: requiredPolicy(client, params, defaultPolicy),
      ...(maxAge !== undefined && Number.isFinite(maxAge) ? { maxAge } : {}),
      force,
      ...(typeof params.login_hint === 'string' ? { loginHint: params.login_hint.slice(0, 254) } : {}),
      ...(typeof params.ui_locales === 'string' ? { uiLocales: params.ui_locales } : {}),
      clientId: typeof params.client_id === 'string' ? params.client_id : null,
      appId: typeof c?.['urn:oneid:app_id'] === 'string' ? c['urn:oneid:app_id'] as string : null,
    },
  };
}
