// The `oneid` command. JSON on stdout, logs on stderr; an error is one line on stderr naming
// what to fix, never SQL or a stack: exit 2 for a wrong command line, 1 for a refused operation.
import { loadConfig, ConfigError } from './config.ts';
import { createLogger, type Logger } from './shared/logger.ts';
import { AppError } from './shared/errors.ts';
import { startRuntime } from './runtime.ts';
import { createServices } from './services.ts';
import { GRANT_TYPES } from './apps/apps.service.ts';
import type { AdminRole } from './directory/users.service.ts';
import { listSigningKeys } from './keys/keys.service.ts';
import { chainAllPendingAuditEvents, verifyAuditChain } from './audit/audit.service.ts';
import { command as define, helpFor, inFlagTerms, parseOptions, TextOutput, UsageError, type CommandContext, type CommandDef } from './cli/command.ts';
import { usersCommands } from './cli/users.commands.ts';
import { directoryCommands } from './cli/directory.commands.ts';
import { accessCommands, apiAudienceFlag, appWithSaml, authorizationServerFlag, parseSignInPolicyFlag, signInPolicyFlag } from './cli/access.commands.ts';
import { readFile, stat } from 'node:fs/promises';
import type { Services } from './services.ts';
import type { Actor } from './audit/audit.service.ts';
import { NAME_ID_FORMATS, type NameIdFormat } from './apps/saml-providers.repo.ts';
import { scimCommands } from './cli/scim.commands.ts';
import { provisioningCommands } from './cli/provisioning.commands.ts';
import { suitesCommands } from './cli/suites.commands.ts';
import { cliActor } from './cli/actor.ts';

const migrate = define({
  summary: 'Apply the database migrations that have not run yet (the server also does this when it starts).',
  options: {},
  run: async () => undefined,
});

const commands: Record<string, CommandDef> = {
  ...usersCommands,
  'apps create': define({
    summary: 'Register an app (an OpenID Connect client, or with --type saml a SAML service provider).',
    details: [
      'OpenID Connect: prints its client_id and, unless --public, its secret once.',
      'SAML: oneid apps create --type saml --name N (--metadata-file F | --entity-id E --acs-url U [--slo-url U] [--name-id-format F])',
      'With --metadata-file, the SP metadata gives the settings and --entity-id, --acs-url, --slo-url and --name-id-format override them. Prints the app as `oneid apps get` does.',
    ].join('\n'),
    options: {
      name: { type: 'string', required: true, value: 'NAME', help: 'the app\'s name, shown on sign-in pages' },
      type: { type: 'string', value: 'oidc|saml', help: 'the protocol the app speaks (default oidc)' },
      'redirect-uri': { type: 'string', multiple: true, value: 'URI', help: 'where the app receives sign-ins (needed for authorization_code)', field: 'redirectUris' },
      'post-logout-redirect-uri': { type: 'string', multiple: true, value: 'URI', help: 'where the app may send people after sign-out', field: 'postLogoutRedirectUris' },
      public: { type: 'boolean', help: 'an app that cannot keep a secret (single-page or native): no secret, PKCE required' },
      'first-party': { type: 'boolean', help: 'your own app: people are not asked to consent' },
      'grant-types': { type: 'string', value: 'LIST', help: `comma-separated, from ${GRANT_TYPES.join(', ')} (default: authorization_code,refresh_token)` },
      access: { type: 'string', value: 'assigned|everyone', help: 'who may sign in: everyone active (default) or only people assigned to it' },
      'admin-role': { type: 'string', multiple: true, value: 'ROLE', help: 'an admin API role for its client_credentials tokens: super_admin, user_admin, app_admin or auditor', field: 'adminRoles' },
      'id-token-alg': { type: 'string', value: 'RS256|ES256', help: 'how its ID tokens are signed (default RS256)', field: 'idTokenSigningAlg' },
      'allow-no-pkce': { type: 'boolean', help: 'let a legacy confidential app sign in without PKCE (RFC 9700 asks for PKCE; public apps always need it)', field: 'allowNoPkce' },
      'metadata-file': { type: 'string', value: 'FILE', help: 'SAML: the SP metadata XML file', field: 'metadataXml' },
      'entity-id': { type: 'string', value: 'ENTITY_ID', help: 'SAML: the SP entity ID', field: 'entityId' },
      'acs-url': { type: 'string', multiple: true, value: 'URL', help: 'SAML: an assertion consumer service URL (HTTP-POST); the first is the default', field: 'acsUrls' },
      'slo-url': { type: 'string', value: 'URL', help: 'SAML: the SP single logout URL (HTTP-Redirect binding)', field: 'sloUrl' },
      'name-id-format': { type: 'string', value: 'FORMAT', help: `SAML: the NameID format: ${NAME_ID_FORMATS.join(', ')} (default emailAddress)`, field: 'nameIdFormat' },
      'signin-policy': signInPolicyFlag,
      'api-audience': apiAudienceFlag,
      'authorization-server': authorizationServerFlag,
    },
    run: async (o, { services, actor }) => {
      const type = o.type ?? 'oidc';
      if (type !== 'oidc' && type !== 'saml') throw new UsageError('--type must be oidc or saml');
      if (type === 'saml') return createSamlApp(o, services, actor);
      const samlOnly = SAML_FLAGS.find((f) => o[f] !== undefined);
      if (samlOnly) throw new UsageError(`--${samlOnly} is for SAML apps; add --type saml`);
      const grantTypes = o['grant-types']?.split(',').map((g) => g.trim()).filter(Boolean);
      for (const g of grantTypes ?? []) {
        if (!(GRANT_TYPES as readonly string[]).includes(g)) throw new UsageError(`--grant-types: unknown grant type "${g}"; use ${GRANT_TYPES.join(', ')}`);
      }
      if (o.access !== undefined && o.access !== 'assigned' && o.access !== 'everyone') throw new UsageError('--access must be assigned or everyone');
      const created = await services.apps.createApp({
        name: o.name,
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
        allowNoPkce: o['allow-no-pkce'] ?? false,
        signInPolicy: o['signin-policy'] === undefined ? null : parseSignInPolicyFlag(o['signin-policy']),
        ...(o['api-audience'] !== undefined ? { apiAudience: o['api-audience'] } : {}),
        ...(o['authorization-server'] !== undefined ? { authorizationServer: o['authorization-server'] } : {}),
      }, actor);
      return { id: created.id, client_id: created.client_id, client_secret: created.client_secret };
    },
  }),
  ...accessCommands,
  'keys rotate': define({
    summary: 'Rotate the signing keys: the next key becomes active, a new next key is made, the old one retires.',
    options: {},
    // The same rotation as the console's (audited; the fresh next key gets its SAML certificate).
    run: async (_o, { services, actor }) => ({ keys: await services.signingKeys!.rotate(actor) }),
  }),
  'keys list': define({
    summary: 'List the signing keys and their states (never the private parts).',
    options: {},
    run: async (_o, { rt }) => ({ keys: await listSigningKeys(rt.db) }),
  }),
  'audit verify': define({
    summary: 'Check the audit log\'s hash chain from the first event to the last.',
    options: {},
    run: async (_o, { rt }) => {
      await chainAllPendingAuditEvents(rt.db);
      const result = await verifyAuditChain(rt.db);
      if (!result.ok) {
        const b = result.firstBroken!;
        throw new AppError('failed_precondition', 'audit.chain_broken', `audit chain broken at event seq ${b.seq}${b.id ? ` (id ${b.id})` : ''}: ${b.reason}; ${result.checked} events before it verified`);
      }
      return result;
    },
  }),
  ...directoryCommands,
  ...scimCommands,
  ...provisioningCommands,
  ...suitesCommands,
};

const SAML_FLAGS = ['metadata-file', 'entity-id', 'acs-url', 'slo-url', 'name-id-format'] as const;
const OIDC_FLAGS = ['redirect-uri', 'post-logout-redirect-uri', 'public', 'first-party', 'grant-types', 'admin-role', 'id-token-alg', 'allow-no-pkce'] as const;
/** SP metadata is a few kilobytes; a larger file is not metadata. */
const MAX_METADATA_BYTES = 1024 * 1024;

type AppsCreateValues = Record<string, string | string[] | boolean | undefined>;

async function createSamlApp(o: AppsCreateValues, services: Services, actor: Actor): Promise<unknown> {
  const oidcOnly = OIDC_FLAGS.find((f) => o[f] !== undefined);
  if (oidcOnly) throw new UsageError(`--${oidcOnly} is for OpenID Connect apps, not --type saml`);
  const file = o['metadata-file'] as string | undefined;
  if (!file && (!o['entity-id'] || !o['acs-url'])) throw new UsageError('--type saml needs --metadata-file, or --entity-id and --acs-url');
  const nameIdFormat = o['name-id-format'] as string | undefined;
  if (nameIdFormat !== undefined && !(NAME_ID_FORMATS as readonly string[]).includes(nameIdFormat)) {
    throw new UsageError(`--name-id-format must be ${NAME_ID_FORMATS.join(', ')}`);
  }
  if (o.access !== undefined && o.access !== 'assigned' && o.access !== 'everyone') throw new UsageError('--access must be assigned or everyone');
  let metadataXml: string | undefined;
  if (file) {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      throw new UsageError(`--metadata-file: cannot read ${file}`);
    }
    if (size > MAX_METADATA_BYTES) throw new UsageError(`--metadata-file: ${file} is larger than 1 MiB; SP metadata is a few kilobytes`);
    metadataXml = await readFile(file, 'utf8');
  }
  const acsUrls = o['acs-url'] as string[] | undefined;
  const created = await services.samlApps.createSamlApp({
    name: o.name as string,
    ...(metadataXml !== undefined ? { metadataXml } : {}),
    ...(o['entity-id'] ? { entityId: o['entity-id'] as string } : {}),
    ...(acsUrls ? { acsUrls: acsUrls.map((location) => ({ location })) } : {}),
    ...(o['slo-url'] ? { sloUrl: o['slo-url'] as string } : {}),
    ...(nameIdFormat ? { nameIdFormat: nameIdFormat as NameIdFormat } : {}),
    // As for OIDC apps made here: open to every active user unless --access assigned.
    access: (o.access ?? 'everyone') as 'assigned' | 'everyone',
    signInPolicy: o['signin-policy'] === undefined ? null : parseSignInPolicyFlag(o['signin-policy'] as string),
    ...(o['api-audience'] !== undefined ? { apiAudience: o['api-audience'] as string } : {}),
    ...(o['authorization-server'] !== undefined ? { authorizationServer: o['authorization-server'] as string } : {}),
  }, actor);
  return appWithSaml(created.app, created.sp);
}

const GROUP_SUMMARY: Record<string, string> = {
  users: 'people and their passwords',
  apps: 'apps that sign people in through OneID',
  'app-roles': 'roles inside an app',
  assignments: 'who may use which app',
  suites: 'sets of apps that work as one product',
  departments: 'the department tree',
  groups: 'groups of people',
  'scim-tokens': 'tokens for provisioning clients (SCIM)',
  keys: 'token signing keys',
  audit: 'the audit log',
};

function overview(): string {
  const lines = ['usage: oneid <command> [options]', '       oneid <command> --help   (what a command does and its options)', '', 'commands:',
    `  ${'migrate'.padEnd(28)}${migrate.summary}`];
  for (const group of Object.keys(GROUP_SUMMARY)) {
    lines.push('', `${group}: ${GROUP_SUMMARY[group]}`);
    for (const [name, def] of Object.entries(commands)) {
      if (name.split(' ')[0] === group) lines.push(`  ${name.padEnd(28)}${def.summary}`);
    }
  }
  return lines.join('\n');
}

function groupHelp(group: string): string {
  const lines = [`usage: oneid ${group} <command> [options]`, '', `${GROUP_SUMMARY[group]}.`, '', 'commands:'];
  for (const [name, def] of Object.entries(commands)) if (name.split(' ')[0] === group) lines.push(`  ${name.padEnd(28)}${def.summary}`);
  lines.push('', `Run 'oneid ${group} <command> --help' for its options.`);
  return lines.join('\n');
}

/** The details of an unexpected failure go to the log (at debug level), never to the person's screen. */
function debugUnexpected(log: Logger, err: unknown): void {
  if (!(err instanceof AppError) && !(err instanceof UsageError) && !(err instanceof ConfigError)) log.debug({ err }, 'command failed');
}

async function logged<T>(log: Logger, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    debugUnexpected(log, err);
    log.flush();
    throw err;
  }
}

/** The command being run, for the hint after a usage error. */
let current: string | undefined;

async function run(argv: string[]): Promise<number> {
  // Three-word commands (`apps provisioning set`): the second and third words make one.
  const joined = argv[2] !== undefined && commands[`${argv[0]} ${argv[1]} ${argv[2]}`] ? [argv[0]!, `${argv[1]} ${argv[2]}`, ...argv.slice(3)] : argv;
  const [first, second, ...rest] = joined;
  const wantsHelp = (args: (string | undefined)[]) => args.some((a) => a === '--help' || a === '-h');
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${overview()}\n`);
    return first ? 0 : 2;
  }
  if (first === 'migrate') {
    current = 'migrate';
    const args = [second, ...rest].filter((a): a is string => a !== undefined);
    if (wantsHelp(args)) {
      process.stdout.write(`${helpFor('migrate', migrate)}\n`);
      return 0;
    }
    parseOptions(args, migrate.options);
    const config = loadConfig();
    const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 2);
    const rt = await logged(log, () => startRuntime(config, log, 'cli'));
    await rt.close();
    process.stdout.write(`${JSON.stringify({ applied: rt.applied })}\n`);
    return 0;
  }
  if (GROUP_SUMMARY[first] && (second === undefined || second === '--help' || second === '-h')) {
    process.stdout.write(`${groupHelp(first)}\n`);
    return second ? 0 : 2;
  }
  const name = `${first} ${second ?? ''}`;
  const def = commands[name];
  if (!def) {
    current = GROUP_SUMMARY[first] ? first : undefined;
    throw new UsageError(GROUP_SUMMARY[first] ? `unknown command "${name}"` : `unknown command "${first}"`);
  }
  current = name;
  if (wantsHelp(rest)) {
    process.stdout.write(`${helpFor(name, def)}\n`);
    return 0;
  }
  // The command line is checked in full before the database is opened.
  const values = parseOptions(rest, def.options);
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 2);
  const rt = await logged(log, () => startRuntime(config, log, 'cli'));
  try {
    const services = createServices(rt.db, config, rt.masterKey);
    const command = async (_args: string[], ctx: CommandContext): Promise<unknown> => {
      try {
        return await def.run(values as never, ctx);
      } catch (err) {
        if (err instanceof AppError) throw new AppError(err.kind, err.code, inFlagTerms(err, def.options, values), err.details);
        throw err;
      }
    };
    const result = await command(rest, { rt, config, services, actor: cliActor() });
    process.stdout.write(result instanceof TextOutput ? `${result.text}\n` : `${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    debugUnexpected(log, err);
    throw err;
  } finally {
    await rt.close();
    log.flush();
  }
}

run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`oneid: ${err.message} (see: oneid ${current ?? ''}${current ? ' ' : ''}--help)\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`oneid: ${describe(err)}\n`);
  process.exitCode = 1;
});

/** One line for a refused or failed operation: OneID's own messages as they are, nothing else. */
function describe(err: unknown): string {
  if (err instanceof AppError || err instanceof ConfigError) return err.message;
  const code = (err as { code?: unknown })?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === '57P03' || code === '3D000' || code === '28P01') {
    return 'cannot reach the database; check DATABASE_URL and that PostgreSQL is running';
  }
  return 'the command failed unexpectedly; run it again with LOG_LEVEL=debug for details';
}
