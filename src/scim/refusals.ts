// Writes refused with 403 over SCIM (a department-scoped token reaching outside its department,
// a password for an administrator) go to the audit log, after the refused write rolled back.
// The resource operations are wrapped once, so the SCIM routes and /Bulk (each refused operation)
// record them alike.
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import { recordRefusal } from '../audit/audit.service.ts';
import { ScimError } from './errors.ts';
import type { ScimRequestContext, ScimResourceOps } from './types.ts';

const WRITES = { create: 'POST', replace: 'PUT', patch: 'PATCH', remove: 'DELETE' } as const;
type Write = keyof typeof WRITES;

function refusalCode(err: unknown): string | undefined {
  if (err instanceof ScimError && err.status === 403) return err.code ?? 'scim.forbidden';
  if (err instanceof AppError && err.kind === 'permission_denied') return err.code;
  return undefined;
}

/** The attribute names a SCIM write tried to set: PATCH operations' paths, else the body's keys. */
function fieldsOf(body: unknown): string[] {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return [];
  const entries = Object.entries(body as Record<string, unknown>);
  const ops = entries.find(([k]) => k.toLowerCase() === 'operations')?.[1];
  if (Array.isArray(ops)) {
    return ops.flatMap((op) => {
      if (!op || typeof op !== 'object') return [];
      const path = (op as Record<string, unknown>).path;
      const value = (op as Record<string, unknown>).value;
      if (typeof path === 'string') return [path];
      return value && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [];
    });
  }
  return entries.map(([k]) => k).filter((k) => k.toLowerCase() !== 'schemas');
}

/** `ops`, with each write refused with 403 recorded (the refusal still reaches the client as before). */
export function recordingRefusals<T extends ScimResourceOps>(db: Knex, resource: 'Users' | 'Groups', ops: T): T {
  const wrap = (name: Write) => async (...args: unknown[]) => {
    try {
      return await (ops[name] as (...a: unknown[]) => Promise<unknown>).apply(ops, args);
    } catch (err) {
      const code = refusalCode(err);
      if (code) {
        const id = name === 'create' ? undefined : args[0] as string;
        const body = name === 'create' ? args[0] : name === 'remove' ? undefined : args[1];
        const rc = args[name === 'create' ? 1 : name === 'remove' ? 1 : 2] as ScimRequestContext;
        await recordRefusal(db, rc.actor, {
          operation: `${WRITES[name]} /scim/v2/${resource}${id === undefined ? '' : '/:id'}`,
          targetType: resource === 'Users' ? 'user' : 'group',
          targetId: id ?? null,
          code,
          reason: (err as Error).message,
          fields: fieldsOf(body),
        });
      }
      throw err;
    }
  };
  return new Proxy(ops, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && prop in WRITES) return wrap(prop as Write);
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
