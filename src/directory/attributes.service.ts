// Custom user attributes: admins define them (key, type, required, enum values); user
// writes are validated against the definitions, so the JSON column stays meaningful.
import { z } from 'zod';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';
import type { Tx } from '../db/knex.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { recordAudit, SYSTEM_ACTOR, type Actor } from '../audit/audit.service.ts';

export const ATTRIBUTE_TYPES = ['string', 'number', 'boolean', 'date', 'enum'] as const;

export const attributeDefinitionInput = z.strictObject({
  key: z.string().regex(/^[a-z][a-zA-Z0-9_]{0,62}$/, 'starts with a lower-case letter; letters, digits and _ only'),
  type: z.enum(ATTRIBUTE_TYPES),
  required: z.boolean().default(false),
  enumValues: z.array(z.string().min(1).max(200)).min(1).max(500).optional(),
  description: z.string().max(1000).optional(),
}).refine((d) => d.type !== 'enum' || d.enumValues, { message: 'enum attributes need enumValues', path: ['enumValues'] });

export interface AttributeDefinition { key: string; type: (typeof ATTRIBUTE_TYPES)[number]; required: boolean; enumValues: string[] | null; description: string | null }

interface DbAttributeDefinitionRow { key: string; type: AttributeDefinition['type']; required: boolean; enum_values: string[] | null; description: string | null }

const toDefinition = (r: DbAttributeDefinitionRow): AttributeDefinition => ({ key: r.key, type: r.type, required: r.required, enumValues: r.enum_values, description: r.description });

export async function findAttributeDefinitions(db: Tx): Promise<AttributeDefinition[]> {
  return (await db<DbAttributeDefinitionRow>('attribute_definitions').orderBy('key')).map(toDefinition);
}

/** Returns the attributes if they match the definitions; otherwise invalid_argument naming the attribute. */
export async function validateCustomAttributes(db: Tx, attrs: Record<string, unknown>, enforceRequired: boolean): Promise<Record<string, unknown>> {
  const defs = new Map((await findAttributeDefinitions(db)).map((d) => [d.key, d]));
  const out: Record<string, unknown> = {};
  const fail = (key: string, message: string): never => {
    throw new AppError('invalid_argument', 'user.invalid_attribute', `customAttributes.${key}: ${message}`, { field: `customAttributes.${key}` });
  };
  for (const [key, value] of Object.entries(attrs)) {
    const def = defs.get(key);
    if (!def) fail(key, 'no attribute with this key is defined');
    if (value === null) continue; // null clears the attribute
    switch (def!.type) {
      case 'string': if (typeof value !== 'string' || value.length > 2000) fail(key, 'expected a string (up to 2000 characters)'); break;
      case 'number': if (typeof value !== 'number' || !Number.isFinite(value)) fail(key, 'expected a number'); break;
      case 'boolean': if (typeof value !== 'boolean') fail(key, 'expected true or false'); break;
      case 'date': if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value) || Number.isNaN(Date.parse(value))) fail(key, 'expected a date YYYY-MM-DD'); break;
      case 'enum': if (typeof value !== 'string' || !def!.enumValues?.includes(value)) fail(key, `expected one of ${def!.enumValues?.join(', ')}`); break;
    }
    out[key] = value;
  }
  if (enforceRequired) {
    for (const def of defs.values()) if (def.required && (out[def.key] === undefined || out[def.key] === null)) fail(def.key, 'required');
  }
  return out;
}

export class AttributesService {
  constructor(private readonly db: Knex) {}

  list(): Promise<AttributeDefinition[]> {
    return findAttributeDefinitions(this.db);
  }

  async define(raw: z.input<typeof attributeDefinitionInput>, actor: Actor = SYSTEM_ACTOR): Promise<AttributeDefinition> {
    const parsed = attributeDefinitionInput.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join('.') || 'body';
      throw new AppError('invalid_argument', 'request.invalid', `${field}: ${issue.message}`, { field });
    }
    const d = parsed.data;
    try {
      return await this.db.transaction(async (trx) => {
        const [row] = await trx('attribute_definitions').insert({
          key: d.key, type: d.type, required: d.required, enum_values: d.enumValues ? JSON.stringify(d.enumValues) : null, description: d.description ?? null,
        }).returning('*');
        await recordAudit(trx, actor, { action: 'attribute_definition.created', targetType: 'attribute_definition', targetId: d.key, changes: d });
        return toDefinition(row as DbAttributeDefinitionRow);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('already_exists', 'attribute.key_taken', 'an attribute with this key already exists', { field: 'key' });
      throw err;
    }
  }

  async remove(key: string, actor: Actor = SYSTEM_ACTOR): Promise<void> {
    await this.db.transaction(async (trx) => {
      const inUse = await trx('users').whereRaw('jsonb_exists(custom_attributes, ?)', [key]).first('id');
      if (inUse) throw new AppError('already_exists', 'attribute.in_use', `users still carry the attribute ${key}; clear it from them first`);
      const deleted = await trx('attribute_definitions').where({ key }).delete();
      if (!deleted) throw new AppError('not_found', 'attribute.not_found', 'no attribute with this key');
      await recordAudit(trx, actor, { action: 'attribute_definition.deleted', targetType: 'attribute_definition', targetId: key });
    });
  }
}
