// OneID as a SAML 2.0 identity provider: metadata, single sign-on and single logout, mounted
// together under /saml.
import Router from '@koa/router';
import type { SamlKeys } from '../keys/saml-keys.ts';
import { metadataRouter } from './metadata.routes.ts';
import { ssoRouter, type SsoDeps } from './sso.routes.ts';
import { sloRouter, type SloDeps } from './slo.routes.ts';

export { SAML_PREFIX } from './paths.ts';
export { startSignOutChain } from './slo.routes.ts';

export interface SamlDeps extends Omit<SsoDeps, 'signingKey'>, Pick<SloDeps, 'endOtherProtocols'> {
  keys: SamlKeys;
  metadataSigned: boolean;
}

export function samlRouter(deps: SamlDeps): Router {
  const router = new Router();
  const signingKey = () => deps.keys.signing;
  router.use(metadataRouter({ issuer: deps.issuer, keys: () => deps.keys, signed: deps.metadataSigned }).routes());
  router.use(ssoRouter({ ...deps, signingKey }).routes());
  router.use(sloRouter({ ...deps, signingKey }).routes());
  return router;
}
