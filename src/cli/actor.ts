// Who the audit log names for a change made with `oneid`: the operating-system user running it,
// as the system's user database knows the process's user id (os.userInfo). Not $USER or
// $LOGNAME: anyone can set those to another person's name. Under sudo this is the user sudo ran
// the command as (sudo's own log names who ran it).
import { userInfo } from 'node:os';
import type { Actor } from '../audit/audit.service.ts';

/** `cli:<os user name>`; `cli:uid:<n>` when the user id has no name (a container's arbitrary uid). */
export function cliActorId(): string {
  try {
    const name = userInfo().username;
    if (name) return `cli:${name}`;
  } catch { /* no entry for this uid in the user database */ }
  const uid = process.getuid?.();
  return uid === undefined ? 'cli:unknown' : `cli:uid:${uid}`;
}

export const cliActor = (): Actor => ({ type: 'system', id: cliActorId() });
