#!/usr/bin/env node
// Entry point for `npx oneid`: loads the TypeScript CLI through tsx, no build step needed.
import { register } from 'tsx/esm/api';

register();
await import('../cli.ts');
