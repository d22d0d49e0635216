// Shared pieces of `oneid` subcommands: argument parsing and the command signature.
import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import type { Runtime } from '../runtime.ts';
import type { Services } from '../services.ts';
import type { Actor } from '../audit/audit.service.ts';

export class UsageError extends Error {}

export interface CommandContext {
  rt: Runtime;
  config: Config;
  services: Services;
  /** Who the audit log records for CLI changes. */
  actor: Actor;
}

export type Command = (args: string[], ctx: CommandContext) => Promise<unknown>;

type OptionSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

export function options<T extends OptionSpec>(args: string[], spec: T) {
  try {
    return parseArgs({ args, options: spec, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
}

export const required = (value: string | undefined, flag: string): string => {
  if (!value) throw new UsageError(`missing --${flag}`);
  return value;
};
