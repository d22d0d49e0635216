// List queries shared by /Users and /Groups (RFC 7644 sections 3.4.2 and 3.4.3): the parameters
// of GET ?filter=...&sortBy=...&sortOrder=...&startIndex=...&count=...&attributes=... and of a
// POST /.search SearchRequest body, validated into one shape; and the ListResponse envelope.
//
// - startIndex is 1-based; a value below 1 is treated as 1 (RFC 7644 3.4.2.4).
// - count defaults to 100 and is capped at SCIM_LIMITS.maxResults (1000); a negative count is
//   treated as 0; count=0 asks for totalResults only.
// - sortOrder is "ascending" (default) or "descending", case-insensitive.
// - A repeated query parameter, a non-integer startIndex/count, an unknown sortOrder, or a
//   SearchRequest field of the wrong type is a 400 invalidValue; a malformed filter, or one that
//   is not a single string (a number, an object, a list, a repeated parameter), is a 400
//   invalidFilter.
import { ScimError } from './errors.ts';
import { ScimFilterError } from './filter.ts';
import { parseAttributeList } from './projection.ts';
import { LIST_RESPONSE_SCHEMA, SCIM_LIMITS, SEARCH_REQUEST_SCHEMA } from './schemas.ts';

export interface ScimListParams {
  filter?: string;
  sortBy?: string;
  sortOrder: 'ascending' | 'descending';
  startIndex: number;
  count: number;
  attributes?: string[];
  excludedAttributes?: string[];
}

const lowerKeys = (source: Record<string, unknown>): Map<string, unknown> =>
  new Map(Object.entries(source).map(([k, v]) => [k.toLowerCase(), v]));

function single(params: Map<string, unknown>, name: string): unknown {
  const value = params.get(name.toLowerCase());
  if (Array.isArray(value)) throw new ScimError(400, `${name} is given more than once`, 'invalidValue');
  return value;
}

function integer(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*[+-]?\d{1,15}\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new ScimError(400, `${name} must be an integer`, 'invalidValue');
  return n;
}

function text(value: unknown, name: string, max: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ScimError(400, `${name} must be a string`, 'invalidValue');
  if (value.length > max) throw new ScimError(400, `${name} is longer than ${max} characters`, 'invalidValue');
  return value;
}

/**
 * The filter of a list request: one string (RFC 7644 3.4.3), or undefined when absent or empty.
 * A number, boolean, object or list in a SearchRequest, or a repeated query parameter, is an
 * invalidFilter (the parser gives a precise one for oversized or malformed text).
 */
export function filterParam(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string') return value;
  const what = Array.isArray(value) ? 'a list (or a repeated parameter)' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
  throw new ScimFilterError('invalidFilter', `filter must be given once, as a string, not ${what}`);
}

function fromMap(params: Map<string, unknown>): ScimListParams {
  const filter = filterParam(params.get('filter'));
  const sortBy = text(single(params, 'sortBy'), 'sortBy', 300)?.trim() || undefined;
  const orderText = text(single(params, 'sortOrder'), 'sortOrder', 20)?.trim().toLowerCase();
  if (orderText && orderText !== 'ascending' && orderText !== 'descending') {
    throw new ScimError(400, 'sortOrder must be "ascending" or "descending"', 'invalidValue');
  }
  const startIndex = Math.max(1, integer(single(params, 'startIndex'), 'startIndex') ?? 1);
  const count = Math.min(SCIM_LIMITS.maxResults, Math.max(0, integer(single(params, 'count'), 'count') ?? SCIM_LIMITS.defaultCount));
  const result: ScimListParams = { sortOrder: orderText === 'descending' ? 'descending' : 'ascending', startIndex, count };
  if (filter !== undefined) result.filter = filter;
  if (sortBy) result.sortBy = sortBy;
  const attributes = parseAttributeList(params.get('attributes'), 'attributes');
  const excluded = parseAttributeList(params.get('excludedattributes'), 'excludedAttributes');
  if (attributes) result.attributes = attributes;
  else if (excluded) result.excludedAttributes = excluded;
  return result;
}

/** From a GET query string (koa's ctx.query). */
export function listParamsFromQuery(query: Record<string, unknown>): ScimListParams {
  return fromMap(lowerKeys(query));
}

/** From a POST /.search body (a SearchRequest, RFC 7644 3.4.3). */
export function listParamsFromSearch(body: unknown): ScimListParams {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ScimError(400, 'the body must be a SearchRequest object', 'invalidSyntax');
  const params = lowerKeys(body as Record<string, unknown>);
  const schemas = params.get('schemas');
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === SEARCH_REQUEST_SCHEMA.toLowerCase())) {
    throw new ScimError(400, `schemas must include ${SEARCH_REQUEST_SCHEMA}`, 'invalidSyntax');
  }
  return fromMap(params);
}

/** Attribute / excluded-attribute lists also apply to single-resource responses (RFC 7644 3.9). */
export function projectionFromQuery(query: Record<string, unknown>): { attributes?: string[]; excludedAttributes?: string[] } {
  const params = lowerKeys(query);
  const attributes = parseAttributeList(params.get('attributes'));
  if (attributes) return { attributes };
  const excludedAttributes = parseAttributeList(params.get('excludedattributes'), 'excludedAttributes');
  return excludedAttributes ? { excludedAttributes } : {};
}

export function listResponse(resources: Record<string, unknown>[], totalResults: number, startIndex: number): Record<string, unknown> {
  return { schemas: [LIST_RESPONSE_SCHEMA], totalResults, itemsPerPage: resources.length, startIndex, Resources: resources };
}
