// The embedded database allows one process at a time. A lock file in DATA_DIR records
// the holder's pid, so a second process (the CLI while a server runs) can refuse clearly.
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../shared/errors.ts';

export interface DataDirLock {
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockDataDir(dataDir: string, role: 'server' | 'cli'): DataDirLock {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'oneid.lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, role, since: new Date().toISOString() }));
      fs.closeSync(fd);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        try { fs.unlinkSync(file); } catch { /* already gone */ }
      };
      process.once('exit', release);
      return { release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder: { pid?: number; role?: string } = {};
      try { holder = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof holder; } catch { /* half-written: treat as stale */ }
      if (holder.pid && holder.pid !== process.pid && isAlive(holder.pid)) {
        throw new AppError('unavailable', 'db.embedded_in_use',
          `the embedded database in ${dataDir} is in use by a running OneID ${holder.role ?? 'process'} (pid ${holder.pid}); ` +
          'stop it first, or set DATABASE_URL to a PostgreSQL server that both can share');
      }
      try { fs.unlinkSync(file); } catch { /* raced with another cleaner */ }
    }
  }
  throw new AppError('unavailable', 'db.embedded_in_use', `could not lock ${file}`);
}
