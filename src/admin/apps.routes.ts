import type { AdminApi } from './api.ts';
import type { Services } from '../services.ts';

export function registerAppsRoutes(_api: AdminApi, _services: Services): void {
  // routes are added here
}
