// The account pages serve every protocol's users, so they must not depend on one: nothing they
// load, directly or through the modules they import, is src/oidc/ or oidc-provider.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/server.ts';

const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm;

/** Every module `entry` loads (relative imports followed; packages listed by name). */
function closure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, spec] of fs.readFileSync(file, 'utf8').matchAll(IMPORT)) {
      if (spec!.startsWith('.')) visit(path.resolve(path.dirname(file), spec!));
      else packages.add(spec!);
    }
  };
  visit(path.join(ROOT, entry));
  return { files, packages };
}

describe('src/account', () => {
  it('loads nothing from src/oidc/ nor oidc-provider, directly or indirectly', () => {
    const { files, packages } = closure('src/account/security.routes.ts');
    expect(files.size).toBeGreaterThan(5);
    expect([...files].filter((f) => f.includes(`${path.sep}src${path.sep}oidc${path.sep}`))).toEqual([]);
    expect([...packages].filter((p) => p === 'oidc-provider' || p.startsWith('oidc-provider/'))).toEqual([]);
  });
});
