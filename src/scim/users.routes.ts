import type Router from '@koa/router';
import type { ScimDeps } from './index.ts';

export function registerScimUserRoutes(_router: Router, _deps: ScimDeps): void {
  // routes are added here
}
