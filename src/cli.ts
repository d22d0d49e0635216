// The `oneid` command. JSON on stdout, logs on stderr, non-zero exit with a one-line reason.
import { loadConfig, ConfigError } from './config.ts';
import { createLogger } from './shared/logger.ts';
import { AppError } from './shared/errors.ts';
import { startRuntime } from './runtime.ts';
import { createServices } from './services.ts';
import { GRANT_TYPES } from './apps/apps.service.ts';
import type { AdminRole } from './directory/users.service.ts';
import { listSigningKeys, rotateSigningKeys } from './keys/keys.service.ts';
import { chainAllPendingAuditEvents, verifyAuditChain } from './audit/audit.service.ts';
import { options, required, UsageError, type Command } from './cli/command.ts';
import { directoryCommands, directoryUsage } from './cli/directory.commands.ts';
import { accessCommands, accessUsage } from './cli/access.commands.ts';
import { scimCommands, scimUsage } from './cli/scim.commands.ts';
import { cliActor } from './cli/actor.ts';

const USAGE = `usage:
  oneid migrate
  oneid users create --username U --email E --password P [--name "Full Name"] [--admin]
  oneid users suspend|reactivate|deprovision --id ID
  oneid apps create --name N --redirect-uri URI [--redirect-uri URI ...] [--post-logout-redirect-uri URI]
                    [--public] [--first-party] [--grant-types authorization_code,refresh_token,client_credentials]
                    [--access assigned|everyone] [--admin-role super_admin|user_admin|app_admin|auditor ...]
                    [--id-token-alg RS256|ES256]
  oneid keys rotate
  oneid keys list
  oneid audit verify${directoryUsage}${accessUsage}${scimUsage}`;

const lifecycle = (action: 'suspend' | 'reactivate' | 'deprovision'): Command => async (args, { services, actor }) => {
  const o = options(args, { id: { type: 'string' } });
  const user = await services.users.changeStatus(required(o.id, 'id'), action, actor);
  return { id: user.id, username: user.username, status: user.status, version: user.version };
};

const commands: Record<string, Command> = {
  'users create': async (args, { services, actor }) => {
    const o = options(args, {
      username: { type: 'string' }, email: { type: 'string' }, password: { type: 'string' },
      name: { type: 'string' }, admin: { type: 'boolean' },
    });
    const user = await services.users.createUser({
      username: required(o.username, 'username'),
      email: required(o.email, 'email'),
      password: required(o.password, 'password'),
      name: o.name,
      adminRoles: o.admin ? ['super_admin'] : [],
    }, actor);
    return { id: user.id, username: user.username, email: user.email };
  },
  'users suspend': lifecycle('suspend'),
  'users reactivate': lifecycle('reactivate'),
  'users deprovision': lifecycle('deprovision'),
  'apps create': async (args, { services, actor }) => {
    const o = options(args, {
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      public: { type: 'boolean' },
      'first-party': { type: 'boolean' },
      'grant-types': { type: 'string' },
      access: { type: 'string' },
      'admin-role': { type: 'string', multiple: true },
      'id-token-alg': { type: 'string' },
    });
    const grantTypes = o['grant-types']?.split(',').map((g) => g.trim()).filter(Boolean);
    for (const g of grantTypes ?? []) {
      if (!(GRANT_TYPES as readonly string[]).includes(g)) throw new UsageError(`unknown grant type ${g}; use ${GRANT_TYPES.join(', ')}`);
    }
    const created = await services.apps.createApp({
      name: required(o.name, 'name'),
      redirectUris: o['redirect-uri'] ?? [],
      postLogoutRedirectUris: o['post-logout-redirect-uri'] ?? [],
      public: o.public ?? false,
      firstParty: o['first-party'] ?? false,
      grantTypes: grantTypes as (typeof GRANT_TYPES)[number][] | undefined,
      // Scripts that register an app and sign a user straight in (the foundation contract) get
      // an app open to every active user unless they ask for --access assigned.
      access: (o.access ?? 'everyone') as 'assigned' | 'everyone',
      adminRoles: (o['admin-role'] ?? []) as AdminRole[],
      ...(o['id-token-alg'] ? { idTokenSigningAlg: o['id-token-alg'] as 'RS256' | 'ES256' } : {}),
    }, actor);
    return { id: created.id, client_id: created.client_id, client_secret: created.client_secret };
  },
  'keys rotate': async (args, { rt }) => {
    options(args, {});
    return { keys: await rotateSigningKeys(rt.db, rt.masterKey) };
  },
  'keys list': async (args, { rt }) => {
    options(args, {});
    return { keys: await listSigningKeys(rt.db) };
  },
  'audit verify': async (args, { rt }) => {
    options(args, {});
    await chainAllPendingAuditEvents(rt.db);
    const result = await verifyAuditChain(rt.db);
    if (!result.ok) {
      const b = result.firstBroken!;
      throw new AppError('failed_precondition', 'audit.chain_broken', `audit chain broken at event seq ${b.seq}${b.id ? ` (id ${b.id})` : ''}: ${b.reason}; ${result.checked} events before it verified`);
    }
    return result;
  },
  ...directoryCommands,
  ...accessCommands,
  ...scimCommands,
};

async function run(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (!first || first === '--help' || first === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return first ? 0 : 2;
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 2);
  if (first === 'migrate') {
    options([second, ...rest].filter((a): a is string => a !== undefined), {});
    const rt = await startRuntime(config, log, 'cli');
    await rt.close();
    process.stdout.write(`${JSON.stringify({ applied: rt.applied })}\n`);
    return 0;
  }
  const command = commands[`${first} ${second ?? ''}`];
  if (!command) throw new UsageError(`unknown command "${[first, second].filter(Boolean).join(' ')}"`);
  const rt = await startRuntime(config, log, 'cli');
  try {
    const services = createServices(rt.db, config);
    const result = await command(rest, { rt, config, services, actor: cliActor() });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } finally {
    await rt.close();
    log.flush();
  }
}

run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`oneid: ${err.message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const known = err instanceof AppError || err instanceof ConfigError;
  const message = known ? (err as Error).message : `unexpected error: ${(err as Error)?.message ?? String(err)}`;
  process.stderr.write(`oneid: ${message}\n`);
  process.exitCode = 1;
});
