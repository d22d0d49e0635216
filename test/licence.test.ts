// The licence a user of OneID reads: package.json names it, LICENSE holds its full text.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { ROOT } from './helpers/server.ts';

describe('licence', () => {
  it('is Apache-2.0 in package.json and package-lock.json', () => {
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).license).toBe('Apache-2.0');
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')).packages[''].license).toBe('Apache-2.0');
  });

  it('LICENSE is the unmodified Apache License 2.0 text with the OneID authors as copyright holder', () => {
    const text = fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8');
    expect(text).toContain('   Copyright 2026 The OneID authors\n');
    // With the appendix's placeholder put back, the text is byte for byte the one the Apache
    // Software Foundation publishes (https://www.apache.org/licenses/LICENSE-2.0.txt).
    const original = text.replace('   Copyright 2026 The OneID authors\n', '   Copyright [yyyy] [name of copyright owner]\n');
    expect(createHash('sha256').update(original).digest('hex')).toBe('c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4');
  });
});
