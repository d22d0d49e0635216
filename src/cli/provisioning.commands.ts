// `oneid apps provisioning set|show|remove|sync|drift --app ID`: an app's outbound SCIM target,
// as the admin API offers it. The app's token is read from a file or stdin, never from an
// argument: arguments end up in shell histories and process listings.
import { readFile } from 'node:fs/promises';
import { command, UsageError, type CommandDef } from './command.ts';
import { AppError } from '../shared/errors.ts';
import type { Services } from '../services.ts';
import type { ProvisioningService } from '../provisioning/provisioning.service.ts';

const appFlag = { type: 'id', required: true, value: 'ID', help: 'the app' } as const;

function service(services: Services): ProvisioningService {
  if (!services.provisioning) throw new AppError('failed_precondition', 'provisioning.no_master_key', 'provisioning needs the master key');
  return services.provisioning;
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

/** The token from a file, or from stdin with `-`; one trailing newline (as `echo` leaves) is dropped. */
async function readToken(source: string): Promise<string> {
  const text = source === '-' ? await readStdin() : await readFile(source, 'utf8').catch(() => {
    throw new UsageError(`--token-file: cannot read ${source}`);
  });
  const token = text.replace(/\r?\n$/, '');
  if (!token) throw new UsageError('--token-file: the token is empty');
  return token;
}

const oneOf = <T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T | undefined => {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}`);
  return value as T;
};

export const provisioningCommands: Record<string, CommandDef> = {
  'apps provisioning set': command({
    summary: "Set or replace an app's provisioning target (OneID pushes the app's entitled people to its SCIM API); a running server then syncs the app.",
    details: 'The token is read from --token-file (a path, or - for stdin) and is never printed again. Prints the target without its token.',
    options: {
      app: appFlag,
      'base-url': { type: 'string', required: true, value: 'URL', help: "the app's SCIM base URL, e.g. https://app.example/scim/v2", field: 'baseUrl' },
      'token-file': { type: 'string', required: true, value: 'FILE|-', help: 'a file holding the bearer token the app gave (- reads it from stdin)', field: 'token' },
      'push-groups': { type: 'boolean', help: 'also push the groups assigned to the app, with their members', field: 'pushGroups' },
      'on-unassign': { type: 'string', value: 'deactivate|delete', help: 'when a person loses the app: active false (default) or delete', field: 'onUnassign' },
      'roles-as': { type: 'string', value: 'roles|entitlements|groups|none', help: 'how app roles go out (default roles)', field: 'rolesAs' },
      'mapping-file': { type: 'string', value: 'FILE', help: 'a JSON file: SCIM attribute -> OneID source, over the defaults (docs/admin-api.md)', field: 'attributeMapping' },
      disabled: { type: 'boolean', help: 'keep the target but push nothing', field: 'enabled' },
    },
    run: async (o, { services, actor }) => {
      let mapping: Record<string, string | null> | null = null;
      if (o['mapping-file']) {
        try {
          mapping = JSON.parse(await readFile(o['mapping-file'], 'utf8')) as Record<string, string | null>;
        } catch {
          throw new UsageError('--mapping-file: not a readable JSON file');
        }
      }
      return service(services).set(o.app, {
        baseUrl: o['base-url'], token: await readToken(o['token-file']), enabled: !o.disabled, pushGroups: Boolean(o['push-groups']),
        onUnassign: oneOf('on-unassign', o['on-unassign'], ['deactivate', 'delete'] as const),
        rolesAs: oneOf('roles-as', o['roles-as'], ['roles', 'entitlements', 'groups', 'none'] as const),
        attributeMapping: mapping,
      }, actor);
    },
  }),
  'apps provisioning show': command({
    summary: "Show an app's provisioning target (never its token) and status: counts, failures with the app's error, last full sync.",
    options: { app: appFlag },
    run: async (o, { services }) => {
      const found = await service(services).get(o.app);
      if (!found) throw new AppError('not_found', 'provisioning.no_target', 'this app has no provisioning target');
      return found;
    },
  }),
  'apps provisioning remove': command({
    summary: "Remove an app's provisioning target: nothing more is pushed; what the app holds stays there.",
    options: { app: appFlag },
    run: async (o, { services, actor }) => {
      await service(services).remove(o.app, actor);
      return { removed: true };
    },
  }),
  'apps provisioning sync': command({
    summary: 'Ask for a full sync of the app; a running OneID server does it in the background.',
    options: { app: appFlag },
    run: async (o, { services, actor }) => {
      await service(services).requestSync(o.app, actor);
      return { accepted: true };
    },
  }),
  'apps provisioning drift': command({
    summary: 'The drift report (changes nothing): who the app lacks, holds but should not, and whose attributes differ.',
    options: { app: appFlag },
    run: async (o, { services }) => service(services).drift(o.app, { limit: 50, timeBudgetMs: 60_000 }),
  }),
};
