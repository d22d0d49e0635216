// attributes / excludedAttributes (RFC 7644 section 3.4.2.5) applied to a rendered resource.
// id, schemas and meta are always returned; names are case-insensitive and may carry the
// schema URN (urn:...:User:userName) or a sub-attribute (name.givenName).
import { SCIM_ENTERPRISE_USER_SCHEMA } from './filter-sql.ts';
import { ScimError } from './errors.ts';

const ALWAYS = new Set(['id', 'schemas', 'meta']);

interface ParsedPath { ext?: string; top: string; sub?: string }

function parsePath(raw: string, coreSchema: string): ParsedPath {
  let path = raw.trim();
  let ext: string | undefined;
  const lower = path.toLowerCase();
  for (const urn of [coreSchema, SCIM_ENTERPRISE_USER_SCHEMA]) {
    if (lower.startsWith(`${urn.toLowerCase()}:`)) {
      path = path.slice(urn.length + 1);
      if (urn !== coreSchema) ext = urn;
      break;
    }
    if (lower === urn.toLowerCase()) return { top: urn, ext: urn === coreSchema ? undefined : urn };
  }
  // Value filters in attribute lists (emails[type eq "work"]) select the whole attribute.
  path = path.replace(/\[.*$/, '');
  const [top = '', sub] = path.split('.');
  return { ext, top: top.toLowerCase(), sub: sub?.toLowerCase() };
}

/**
 * attributes / excludedAttributes: a comma-separated string (a query parameter, possibly
 * repeated) or a list of such strings (a SearchRequest). Anything else (a number, an object, a
 * list holding one) is a 400 invalidValue, not an attribute named "[object Object]".
 */
export function parseAttributeList(value: unknown, name = 'attributes'): string[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
    throw new ScimError(400, `${name} must be a list of attribute names (strings)`, 'invalidValue');
  }
  const list = Array.isArray(value) ? value.flatMap((v: string) => v.split(',')) : value.split(',');
  const cleaned = list.map((s) => s.trim()).filter(Boolean);
  if (cleaned.some((s) => s.length > 300)) throw new ScimError(400, 'attribute names are too long', 'invalidValue');
  return cleaned.length ? cleaned : undefined;
}

const findKey = (obj: Record<string, unknown>, lower: string): string | undefined => Object.keys(obj).find((k) => k.toLowerCase() === lower);

function pick(obj: Record<string, unknown>, paths: ParsedPath[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of paths) {
    const key = findKey(obj, p.top);
    if (!key) continue;
    const value = obj[key];
    if (!p.sub) { out[key] = value; continue; }
    const pickSub = (v: unknown): unknown => {
      if (!v || typeof v !== 'object') return undefined;
      const sk = findKey(v as Record<string, unknown>, p.sub!);
      return sk ? { [sk]: (v as Record<string, unknown>)[sk] } : undefined;
    };
    if (Array.isArray(value)) {
      const prev = (out[key] as Record<string, unknown>[] | undefined) ?? value.map(() => ({}));
      out[key] = value.map((v, i) => ({ ...(prev[i] ?? {}), ...((pickSub(v) as object) ?? {}) }));
    } else {
      const s = pickSub(value);
      if (s) out[key] = { ...((out[key] as object) ?? {}), ...(s as object) };
    }
  }
  return out;
}

function drop(obj: Record<string, unknown>, paths: ParsedPath[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...obj };
  for (const p of paths) {
    const key = findKey(out, p.top);
    if (!key || ALWAYS.has(key)) continue;
    if (!p.sub) { delete out[key]; continue; }
    const strip = (v: unknown): unknown => {
      if (!v || typeof v !== 'object') return v;
      const copy = { ...(v as Record<string, unknown>) };
      const sk = findKey(copy, p.sub!);
      if (sk) delete copy[sk];
      return copy;
    };
    out[key] = Array.isArray(out[key]) ? (out[key] as unknown[]).map(strip) : strip(out[key]);
  }
  return out;
}

/**
 * Projects a resource. With `attributes`, only those (plus id, schemas, meta) are returned;
 * with `excludedAttributes`, those are left out. Extension attributes live under their URN key.
 */
export function projectResource(resource: Record<string, unknown>, coreSchema: string, attributes?: string[], excluded?: string[]): Record<string, unknown> {
  if (!attributes && !excluded) return resource;
  const split = (list: string[]) => {
    const core: ParsedPath[] = [];
    const ext = new Map<string, ParsedPath[]>();
    for (const raw of list) {
      const p = parsePath(raw, coreSchema);
      if (p.ext) {
        if (p.top === p.ext) { ext.set(p.ext, [...(ext.get(p.ext) ?? []), { top: '*' }]); continue; }
        ext.set(p.ext, [...(ext.get(p.ext) ?? []), p]);
      } else core.push(p);
    }
    return { core, ext };
  };
  if (attributes) {
    const { core, ext } = split(attributes);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(resource)) if (ALWAYS.has(k)) out[k] = resource[k];
    Object.assign(out, pick(resource, core));
    for (const [urn, paths] of ext) {
      const value = resource[urn] as Record<string, unknown> | undefined;
      if (!value) continue;
      out[urn] = paths.some((p) => p.top === '*') ? value : pick(value, paths);
    }
    return out;
  }
  const { core, ext } = split(excluded!);
  const out = drop(resource, core);
  for (const [urn, paths] of ext) {
    if (!out[urn]) continue;
    if (paths.some((p) => p.top === '*')) delete out[urn];
    else out[urn] = drop(out[urn] as Record<string, unknown>, paths);
  }
  return out;
}
