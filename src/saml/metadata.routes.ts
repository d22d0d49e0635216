// GET /saml/metadata: OneID's IdP metadata at the URL that is also its entityID, so an SP can
// be configured with one address. Signed when SAML_METADATA_SIGNED is set (some SPs insist).
// The document changes only when the keys do (a rotation), so it is built once per keys object
// and SPs may cache it briefly: a rotation publishes the next key long before it signs.
import Router from '@koa/router';
import type { SamlKeys } from '../keys/saml-keys.ts';
import { idpMetadataXml, idpUrls } from './idp-metadata.ts';

export const METADATA_PATH = '/saml/metadata';
export const METADATA_CONTENT_TYPE = 'application/samlmetadata+xml';

export interface MetadataRouterDeps {
  issuer: string;
  /** The keys in use now; a new object after a reload makes a new document. */
  keys: () => SamlKeys | Promise<SamlKeys>;
  signed: boolean;
}

export function metadataRouter(deps: MetadataRouterDeps): Router {
  const urls = idpUrls(deps.issuer);
  const built = new WeakMap<SamlKeys, string>();
  const documentFor = (keys: SamlKeys): string => {
    let xml = built.get(keys);
    if (xml === undefined) {
      xml = idpMetadataXml({ ...urls, certificates: keys.published }, deps.signed ? keys.signing : undefined);
      built.set(keys, xml);
    }
    return xml;
  };

  const router = new Router();
  router.get(METADATA_PATH, async (ctx) => {
    ctx.body = documentFor(await deps.keys());
    ctx.type = METADATA_CONTENT_TYPE;
    ctx.set('Cache-Control', 'public, max-age=300');
  });
  return router;
}
