// Where OneID's SAML endpoints live: interfaces that service providers are configured with.
export const SAML_PREFIX = '/saml';

/** Where a logout under way goes on (the same for every issuer: a path on this origin). */
export const sloContinuePath = (id: string): string => `/saml/slo/continue/${id}`;

export function SAML_PATHS(issuer: string) {
  const base = issuer.replace(/\/+$/, '');
  return {
    /** OneID's entityID: the metadata URL, as is usual. */
    entityId: `${base}/saml/metadata`,
    metadataPath: '/saml/metadata',
    sso: `${base}/saml/sso`,
    ssoPath: '/saml/sso',
    slo: `${base}/saml/slo`,
    sloPath: '/saml/slo',
    startPath: '/saml/start',
    continuePath: (id: string): string => `/saml/sso/continue/${id}`,
    sloContinuePath,
  };
}
