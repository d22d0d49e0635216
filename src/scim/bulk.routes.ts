import type Router from '@koa/router';
import type { ScimDeps } from './index.ts';

export function registerScimBulkRoute(_router: Router, _deps: ScimDeps): void {
  // POST /Bulk is added here
}
