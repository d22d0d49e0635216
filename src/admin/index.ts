// The admin REST API under /admin/api/v1: authentication, every resource's routes, OpenAPI.
import Router from '@koa/router';
import type { Services } from '../services.ts';
import { AdminApi } from './api.ts';
import type { Principal } from './auth.ts';
import type { Context } from 'koa';
import { registerUserRoutes } from './users.routes.ts';
import { registerDepartmentsRoutes } from './departments.routes.ts';
import { registerGroupsRoutes } from './groups.routes.ts';
import { registerAppsRoutes } from './apps.routes.ts';
import { registerAssignmentsRoutes } from './assignments.routes.ts';
import { registerAuditRoutes } from './audit.routes.ts';
import { registerScimTokenRoutes } from './scim-tokens.routes.ts';
import { registerMethodsRoutes } from './methods.routes.ts';
import { registerKeysRoutes } from './keys.routes.ts';
import { registerSettingsRoutes } from './settings.routes.ts';
import { registerJobsRoutes } from './jobs.routes.ts';
import { registerWebhooksRoutes } from './webhooks.routes.ts';
import { registerOffboardingRoutes } from './offboarding.routes.ts';
import { registerProvisioningRoutes } from './provisioning.routes.ts';
import { registerSuitesRoutes } from './suites.routes.ts';

export const ADMIN_API_PREFIX = '/admin/api/v1';

export function buildAdminApi(services: Services): AdminApi {
  const api = new AdminApi(services.db);
  registerUserRoutes(api, services);
  registerMethodsRoutes(api, services);
  registerDepartmentsRoutes(api, services);
  registerGroupsRoutes(api, services);
  registerAppsRoutes(api, services);
  registerAssignmentsRoutes(api, services);
  registerSuitesRoutes(api, services);
  registerAuditRoutes(api, services);
  registerScimTokenRoutes(api, services);
  registerKeysRoutes(api, services);
  registerSettingsRoutes(api, services);
  registerJobsRoutes(api, services);
  registerWebhooksRoutes(api, services);
  registerOffboardingRoutes(api, services);
  registerProvisioningRoutes(api, services);
  return api;
}

export function adminRouter(api: AdminApi, authenticate: (ctx: Context) => Promise<Principal>, issuer: string, maxBodyBytes: number): Router {
  const router = new Router({ prefix: ADMIN_API_PREFIX });
  const doc = api.openapi(`${issuer}${ADMIN_API_PREFIX}`);
  router.get('/openapi.json', (ctx) => {
    ctx.body = doc;
  });
  router.use(api.router(authenticate, maxBodyBytes).routes());
  return router;
}
