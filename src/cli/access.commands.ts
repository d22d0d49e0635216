// `oneid assignments ...` and `oneid app-roles ...`
import type { Command } from './command.ts';

export const accessCommands: Record<string, Command> = {};
export const accessUsage = '';
