import type { AdminApi } from './api.ts';
import type { Services } from '../services.ts';

export function registerAuditRoutes(_api: AdminApi, _services: Services): void {
  // routes are added here
}
