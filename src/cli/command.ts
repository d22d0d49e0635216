// Shared pieces of `oneid` subcommands: each command declares its options once, and that one
// declaration parses the arguments (node:util parseArgs), writes the --help text and names the
// flag in an error about the value it fed to a service.
import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import type { Runtime } from '../runtime.ts';
import type { Services } from '../services.ts';
import type { Actor } from '../audit/audit.service.ts';
import { AppError } from '../shared/errors.ts';

/** Wrong use of the command line: exit code 2 and a pointer to --help. */
export class UsageError extends Error {}

export interface CommandContext {
  rt: Runtime;
  config: Config;
  services: Services;
  /** Who the audit log records for CLI changes. */
  actor: Actor;
}

export interface OptionDef {
  /** `id` is a string that must be a UUID, checked before anything reaches the database. */
  type: 'string' | 'boolean' | 'id';
  multiple?: boolean;
  required?: boolean;
  /** Placeholder for the value in the help text (e.g. URI). */
  value?: string;
  help: string;
  /**
   * The service input field this flag fills (default: the flag in camelCase), so that a
   * service's complaint about `redirectUris.0` is reported as one about --redirect-uri.
   */
  field?: string;
}

type Value<D extends OptionDef> = D['type'] extends 'boolean' ? boolean : D['multiple'] extends true ? string[] : string;
export type Values<O extends Record<string, OptionDef>> =
  { [K in keyof O as O[K]['required'] extends true ? K : never]: Value<O[K]> } &
  { [K in keyof O as O[K]['required'] extends true ? never : K]?: Value<O[K]> };

export interface CommandDef<O extends Record<string, OptionDef> = Record<string, OptionDef>> {
  summary: string;
  /** More lines for `--help`: what the command does, what it prints. */
  details?: string;
  options: O;
  run(values: Values<O>, ctx: CommandContext): Promise<unknown>;
}

/** Declares a command with its options typed from the declaration. */
export const command = <const O extends Record<string, OptionDef>>(def: CommandDef<O>): CommandDef =>
  def as unknown as CommandDef;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Parses a command's arguments against its declaration; every mistake is a UsageError naming the flag. */
export function parseOptions(args: string[], spec: Record<string, OptionDef>): Record<string, unknown> {
  const known = new Set(Object.keys(spec));
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args,
      options: Object.fromEntries(Object.entries(spec).map(([name, o]) => [name, { type: o.type === 'boolean' ? 'boolean' : 'string', multiple: o.multiple ?? false }])),
      strict: true,
      allowPositionals: false,
    }).values as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(parseArgsProblem(err as Error & { code?: string }, known));
  }
  for (const [name, o] of Object.entries(spec)) {
    const value = values[name];
    const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
    if (o.type !== 'boolean' && list.some((v) => v === '')) throw new UsageError(`--${name} needs a value`);
    if (o.required && list.length === 0) throw new UsageError(`missing --${name}`);
    if (o.type === 'id' && list.some((v) => !UUID.test(String(v)))) {
      throw new UsageError(`--${name} must be an id such as 0f8e0d2c-5a4b-4c3d-9e2f-1a2b3c4d5e6f (as printed by the list and create commands)`);
    }
  }
  return values;
}

function parseArgsProblem(err: Error & { code?: string }, known: Set<string>): string {
  const quoted = /'(-{1,2}[^' ]*)/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted ?? ''}`.trim() + (known.size ? `; this command takes ${[...known].map((k) => `--${k}`).join(', ')}` : '; this command takes no options');
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return quoted && /argument missing|ambiguous/.test(err.message) ? `${quoted} needs a value` : `${quoted ?? 'an option'} takes no value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /'([^']*)'/.exec(err.message)?.[1];
      return `unexpected argument ${arg === undefined ? '' : `"${arg}"`}; values go after their flag, e.g. --id ID`.replace('  ', ' ');
    }
    default:
      return err.message.split('\n')[0]!;
  }
}

const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/**
 * Rewrites a service's validation error (`redirectUris.0: Invalid URL`) in terms of the flag
 * the person typed (`--redirect-uri: Invalid URL`). Errors about fields no flag fills pass as they are.
 */
export function inFlagTerms(err: AppError, spec: Record<string, OptionDef>, given: Record<string, unknown> = {}): string {
  const field = typeof err.details?.field === 'string' ? err.details.field : undefined;
  if (!field) return err.message;
  const head = field.split('.')[0]!;
  // Several flags may fill one field (--user, --group or --department: principalId); the one typed wins.
  const candidates = Object.entries(spec).filter(([name, o]) => (o.field ?? camel(name)) === head).map(([name]) => name);
  const flag = candidates.find((name) => given[name] !== undefined) ?? candidates[0];
  if (!flag) return err.message;
  const detail = err.message.startsWith(`${field}: `) ? err.message.slice(field.length + 2)
    : err.message.startsWith(`${head}: `) ? err.message.slice(head.length + 2) : err.message;
  return `--${flag}: ${detail}`;
}

/** The usage line and option list of one command, for `oneid <group> <command> --help`. */
export function helpFor(name: string, def: CommandDef): string {
  const opts = Object.entries(def.options);
  const synopsis = opts.map(([flag, o]) => {
    const part = o.type === 'boolean' ? `--${flag}` : `--${flag} ${o.value ?? (o.type === 'id' ? 'ID' : 'VALUE')}`;
    return `${o.required ? part : `[${part}]`}${o.multiple ? ' ...' : ''}`;
  });
  const width = Math.max(0, ...opts.map(([flag, o]) => flag.length + (o.type === 'boolean' ? 2 : 3 + (o.value ?? (o.type === 'id' ? 'ID' : 'VALUE')).length)));
  const lines = [`usage: oneid ${name}${synopsis.length ? ` ${synopsis.join(' ')}` : ''}`, '', def.summary];
  if (def.details) lines.push('', def.details);
  if (opts.length) {
    lines.push('', 'options:');
    for (const [flag, o] of opts) {
      const left = o.type === 'boolean' ? `--${flag}` : `--${flag} ${o.value ?? (o.type === 'id' ? 'ID' : 'VALUE')}`;
      lines.push(`  ${left.padEnd(width + 2)}  ${o.help}${o.required ? ' (required)' : ''}${o.multiple ? ' (repeatable)' : ''}`);
    }
  }
  lines.push('  --help'.padEnd(width + 6) + 'show this help');
  return lines.join('\n');
}

/** A command's answer meant for people (a table), printed as is instead of as JSON. */
export class TextOutput {
  constructor(readonly text: string) {}
}
