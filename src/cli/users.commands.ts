// `oneid users ...`: create, find, list, set a password, lifecycle. JSON on stdout except
// `users list`, which prints a table unless --json.
import { randomBytes } from 'node:crypto';
import { command, TextOutput, UsageError, type CommandDef } from './command.ts';
import { presentUser } from '../admin/users.routes.ts';
import { createdAtIdCursor, decodeCursorAs, encodeCursor } from '../admin/api.ts';
import { AppError } from '../shared/errors.ts';
import type { Services } from '../services.ts';
import type { User } from '../directory/users.repo.ts';
import { OffboardingService } from '../offboarding/offboarding.service.ts';

const lifecycle = (action: 'suspend' | 'reactivate' | 'deprovision', summary: string): CommandDef => command({
  summary,
  options: { id: { type: 'id', required: true, value: 'USER_ID', help: 'the person (see: oneid users list)' } },
  run: async (o, { services, actor }) => {
    const user = await services.users.changeStatus(o.id, action, actor);
    return { id: user.id, username: user.username, status: user.status, version: user.version };
  },
});

const who = {
  id: { type: 'id', value: 'USER_ID', help: 'the person\'s id' },
  username: { type: 'string', value: 'NAME', help: 'or their username' },
  email: { type: 'string', value: 'ADDRESS', help: 'or their sign-in email' },
} as const;

/** The one person named by exactly one of --id, --username or --email. */
async function findOne(services: Services, o: { id?: string; username?: string; email?: string }): Promise<User> {
  const given = (['id', 'username', 'email'] as const).filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw new UsageError('give exactly one of --id, --username or --email');
  if (o.id) return services.users.getUser(o.id);
  const [user] = await services.users.listUsers({ username: o.username, email: o.email, limit: 1 });
  if (!user) throw new AppError('not_found', 'user.not_found', `no user with this ${o.username !== undefined ? 'username' : 'email'}`);
  return user;
}

/** Terminal-safe text: a stored name must not be able to move the cursor or recolour a terminal. */
const cell = (value: string | null | undefined): string => (value ?? '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_c, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** 24 characters from 144 random bits: strong, and safe to paste anywhere. */
const generatePassword = (): string => randomBytes(18).toString('base64url');

/** Reads the new password without it ever being an argument (visible to everyone in `ps`). */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
    if (!line) throw new UsageError('no password on standard input; pipe one line, or use --generate');
    return line;
  }
  const first = await promptHidden('New password: ');
  const again = await promptHidden('Repeat it: ');
  if (first !== again) throw new UsageError('the two passwords differ; nothing was changed');
  if (!first) throw new UsageError('no password typed; nothing was changed');
  return first;
}

/** A prompt that does not echo what is typed (the terminal in raw mode, read key by key). */
function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(question);
  input.setRawMode(true);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') { finish(); resolve(value); return; }
        if (ch === '\u0003') { finish(); reject(new UsageError('cancelled; nothing was changed')); return; }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    input.on('data', onData);
  });
}

export const usersCommands: Record<string, CommandDef> = {
  'users create': command({
    summary: 'Create a person who can sign in with a password.',
    details: 'Without --password or --generate, the first password is read from standard input (one line)\n'
      + 'or typed at a prompt that does not echo it.',
    options: {
      username: { type: 'string', required: true, value: 'NAME', help: 'their username (letters, digits, . _ @ - +)' },
      email: { type: 'string', required: true, value: 'ADDRESS', help: 'their email address, also usable to sign in' },
      password: { type: 'string', value: 'PASSWORD', help: 'their first password, at least 8 characters (anyone on this machine can read it in `ps`: prefer standard input)' },
      generate: { type: 'boolean', help: 'generate a first password and print it once' },
      name: { type: 'string', value: '"FULL NAME"', help: 'their display name' },
      admin: { type: 'boolean', help: 'make them a super admin', field: 'adminRoles' },
    },
    run: async (o, { services, actor }) => {
      if (o.password !== undefined && o.generate) throw new UsageError('use either --password or --generate, not both');
      const password = o.password ?? (o.generate ? generatePassword() : await readPassword());
      const user = await services.users.createUser({
        username: o.username, email: o.email, password, name: o.name, adminRoles: o.admin ? ['super_admin'] : [],
      }, actor);
      return { id: user.id, username: user.username, email: user.email, ...(o.generate ? { password } : {}) };
    },
  }),
  'users list': command({
    summary: 'List people, oldest first, a page at a time.',
    details: 'Prints a table (id, username, email, name, status) and, when there is more, the --cursor of the next page.',
    options: {
      q: { type: 'string', value: 'TEXT', help: 'only people whose username, email or name starts with this' },
      status: { type: 'string', value: 'active|suspended|deprovisioned', help: 'only people in this state' },
      limit: { type: 'string', value: 'N', help: 'people per page, 1-500 (default 50)' },
      cursor: { type: 'string', value: 'CURSOR', help: 'the page after the one that printed this cursor' },
      json: { type: 'boolean', help: 'print {"items": [...], "next_cursor": ...} instead of a table' },
    },
    run: async (o, { services }) => {
      const limit = o.limit === undefined ? 50 : Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError('--limit must be a whole number from 1 to 500');
      if (o.status !== undefined && !['active', 'suspended', 'deprovisioned'].includes(o.status)) {
        throw new UsageError('--status must be active, suspended or deprovisioned');
      }
      let after: [string, string] | undefined;
      try {
        after = decodeCursorAs(o.cursor, 'users', createdAtIdCursor);
      } catch {
        throw new UsageError('--cursor is not one this command printed; start again without it');
      }
      const rows = await services.users.listUsers({
        q: o.q, status: o.status as User['status'] | undefined, after: after && { createdAt: after[0], id: after[1] }, limit: limit + 1,
      });
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      const next = rows.length > limit && last ? encodeCursor('users', [new Date(last.createdAt).toISOString(), last.id]) : null;
      if (o.json) return { items: items.map(presentUser), next_cursor: next };
      if (!items.length) return new TextOutput('no people found');
      const text = table([['ID', 'USERNAME', 'EMAIL', 'NAME', 'STATUS'],
        ...items.map((u) => [u.id, cell(u.username), cell(u.email), cell(u.displayName), u.status])]);
      return new TextOutput(next ? `${text}\n\nmore: add --cursor ${next}` : text);
    },
  }),
  'users get': command({
    summary: 'Show one person, found by id, username or email.',
    options: who,
    run: async (o, { services }) => presentUser(await findOne(services, o)),
  }),
  'users set-password': command({
    summary: 'Set a person\'s password. Their sessions and refresh tokens end.',
    details: 'The password is read from standard input (one line) or typed at a prompt that does not\n'
      + 'echo it; it is never an argument, which anyone on the machine could read in `ps`.\n'
      + 'With --generate, OneID makes a strong one and prints it once.',
    options: { ...who, generate: { type: 'boolean', help: 'generate a password and print it once' } },
    run: async (o, { services, actor }) => {
      const user = await findOne(services, o);
      const password = o.generate ? generatePassword() : await readPassword();
      const updated = await services.users.updateUser(user.id, { password }, actor);
      return { id: updated.id, username: updated.username, password_set: true, ...(o.generate ? { password } : {}) };
    },
  }),
  'users methods': command({
    summary: 'Show how a person can sign in: password, passkeys, authenticator app, recovery codes left.',
    details: 'Never prints a secret. A passkey\'s id is what `oneid users reset-method --passkey` takes.',
    options: who,
    run: async (o, { services }) => {
      const user = await findOne(services, o);
      return { id: user.id, username: user.username, ...(await services.methods.listMethods(user.id)) };
    },
  }),
  'users reset-method': command({
    summary: 'Remove one of a person\'s sign-in methods: a passkey, their authenticator app, or all recovery codes.',
    details: 'For a lost phone or security key: the person sets the method up again at their next sign-in\n'
      + '(when an app needs it) or on their security page. Recorded in the audit log.',
    options: {
      ...who,
      passkey: { type: 'id', value: 'PASSKEY_ID', help: 'remove this passkey (its id from `oneid users methods`)' },
      totp: { type: 'boolean', help: 'remove the authenticator app' },
      'recovery-codes': { type: 'boolean', help: 'void every recovery code' },
    },
    run: async (o, { services, actor }) => {
      const chosen = [o.passkey !== undefined, o.totp === true, o['recovery-codes'] === true].filter(Boolean).length;
      if (chosen !== 1) throw new UsageError('give exactly one of --passkey PASSKEY_ID, --totp or --recovery-codes');
      const user = await findOne(services, o);
      const kind = o.passkey !== undefined ? 'passkey' : o.totp ? 'totp' : 'recovery_codes';
      await services.methods.removeMethod(user.id, kind, o.passkey, actor);
      return { id: user.id, username: user.username, removed: o.passkey !== undefined ? { passkey: o.passkey } : kind, methods: await services.methods.listMethods(user.id) };
    },
  }),
  'users suspend': lifecycle('suspend', 'Suspend a person: they cannot sign in and their sessions and tokens end.'),
  'users reactivate': lifecycle('reactivate', 'Let a suspended person sign in again (their old sessions stay ended).'),
  'users offboard': command({
    summary: 'Offboard a person in one action: suspend them, end every session, grant and token, send back-channel logout tokens to the apps that registered one; prints the receipt (a running OneID server sends the logout tokens and updates it: oneid has no queue of its own).',
    options: { id: { type: 'id', required: true, value: 'USER_ID', help: 'the person (see: oneid users list)' } },
    run: async (o, { services, actor }) => new OffboardingService(services.db, services.hasher).offboard(o.id, actor),
  }),
  'users deprovision': lifecycle('deprovision', 'Deprovision a person who has left: they cannot sign in and their sessions and tokens end.'),
};
