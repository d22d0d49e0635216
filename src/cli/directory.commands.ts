// `oneid departments ...` and `oneid groups ...`
import type { Command } from './command.ts';

export const directoryCommands: Record<string, Command> = {};
export const directoryUsage = '';
