// An app's outbound SCIM provisioning: its target (where and how OneID keeps the app in step),
// status, full sync on demand and the drift report. Same roles as the app itself: app_admin
// writes (and only for an app whose admin roles it may manage), readers of apps read.
import { z } from 'zod';
import type { AdminApi } from './api.ts';
import { idParam } from './api.ts';
import type { Services } from '../services.ts';
import { manageApp } from './role-guard.ts';
import { AppError } from '../shared/errors.ts';
import { setTargetInput, type ProvisioningService } from '../provisioning/provisioning.service.ts';

const readers = ['app_admin', 'user_admin', 'auditor'] as const;
const writers = ['app_admin'] as const;

const targetResource = z.object({
  appId: z.uuid(),
  enabled: z.boolean(),
  baseUrl: z.string(),
  pushUsers: z.boolean(),
  pushGroups: z.boolean(),
  onUnassign: z.enum(['deactivate', 'delete']),
  rolesAs: z.enum(['roles', 'entitlements', 'groups', 'none']),
  attributeMapping: z.record(z.string(), z.string().nullable()).describe('over the defaults; the token is write-only and never shown'),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const statusResource = z.object({
  counts: z.object({ pending: z.number().int(), synced: z.number().int(), failed: z.number().int() }).describe('people and groups by the outcome of their last push'),
  held: z.number().int().describe('people and groups the app holds (created, not deleted)'),
  pending: z.number().int().describe('objects not yet pushed successfully (pending, or failed and retried)'),
  lastSuccessAt: z.string().nullable(),
  failed: z.array(z.object({
    kind: z.string(), localId: z.string(), remoteId: z.string().nullable(), error: z.string().nullable().describe("the app's own error"), lastAttemptAt: z.string().nullable(),
  })).describe('the most recent failures, first 20'),
  lastFullSyncAt: z.string().nullable(),
  lastFullSync: z.record(z.string(), z.unknown()).nullable().describe('summary of the last full sync: outcomes per kind, errors'),
});

const driftEntry = z.object({ userId: z.string().nullable(), remoteId: z.string().nullable(), userName: z.string() });
const driftResource = z.object({
  complete: z.boolean().describe('false when the time budget ran out before the whole app was compared'),
  checkedAt: z.string(),
  appUsers: z.number().int(),
  counts: z.object({ missing: z.number().int(), unexpected: z.number().int(), different: z.number().int(), unmanaged: z.number().int() }),
  missing: z.array(driftEntry).describe('entitled people the app does not hold'),
  unexpected: z.array(driftEntry.extend({ active: z.boolean(), expected: z.enum(['inactive', 'absent']) })).describe('people the app holds who should be inactive or absent'),
  different: z.array(driftEntry.extend({ attributes: z.array(z.string()) })).describe('people whose attributes in the app differ from what OneID sends'),
});

export function registerProvisioningRoutes(api: AdminApi, { provisioning }: Services): void {
  const service = (): ProvisioningService => {
    if (!provisioning) throw new AppError('failed_precondition', 'provisioning.no_master_key', 'provisioning needs the master key, which this process was not given');
    return provisioning;
  };

  api.add({
    method: 'get', path: '/apps/:id/provisioning', tag: 'provisioning', summary: "Get the app's provisioning target (never its token) and status: counts, pending, last success, failures with the app's error, last full sync",
    roles: readers, params: idParam, response: z.object({ target: targetResource, status: statusResource }),
    handler: async ({ params }) => {
      const found = await service().get(params.id);
      if (!found) throw new AppError('not_found', 'provisioning.no_target', 'this app has no provisioning target');
      return found;
    },
  });

  api.add({
    method: 'put', path: '/apps/:id/provisioning', tag: 'provisioning',
    summary: 'Set or replace the app\'s provisioning target (SCIM base URL and write-only bearer token, what goes out and how); starts a sync of the app',
    roles: writers, params: idParam, body: setTargetInput, response: targetResource,
    handler: async ({ params, body, principal }) => service().set(params.id, body, principal.actor, manageApp(principal)),
  });

  api.add({
    method: 'delete', path: '/apps/:id/provisioning', tag: 'provisioning', status: 204,
    summary: 'Remove the app\'s provisioning target: nothing more is pushed; what the app holds stays there',
    roles: writers, params: idParam,
    handler: async ({ params, principal }) => {
      await service().remove(params.id, principal.actor, manageApp(principal));
    },
  });

  api.add({
    method: 'post', path: '/apps/:id/provisioning/sync', tag: 'provisioning', status: 202,
    summary: 'Ask for a full sync: OneID compares with what the app has and sends every difference (in the background)',
    roles: writers, params: idParam, response: z.object({ accepted: z.literal(true) }),
    handler: async ({ params, principal }) => {
      await service().requestSync(params.id, principal.actor, manageApp(principal));
      return { accepted: true as const };
    },
  });

  api.add({
    method: 'get', path: '/apps/:id/provisioning/drift', tag: 'provisioning',
    summary: 'Drift report (a dry run, changes nothing): who the app lacks, holds but should not (or not active), and whose attributes differ; counts and the first 50 of each, within 20 s',
    roles: readers, params: idParam, response: driftResource,
    handler: async ({ params }) => service().drift(params.id, { limit: 50, timeBudgetMs: 20_000 }),
  });
}
