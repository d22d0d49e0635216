// Shared shapes of the SCIM layer: who is calling, and what a resource operation returns,
// so that the HTTP routes and /Bulk run exactly the same code.
import type { Actor } from '../audit/audit.service.ts';
import type { ScimClient } from '../apps/scim-tokens.service.ts';

export interface ScimRequestContext {
  client: ScimClient;
  /** Recorded in the audit log: the SCIM client (token) that made the change. */
  actor: Actor;
  /** Absolute base URL of the SCIM API, e.g. https://id.example.com/scim/v2 (for meta.location). */
  baseUrl: string;
}

export interface ScimResult {
  status: number;
  body?: Record<string, unknown>;
  /** meta.location of the resource, for the Location header and Bulk responses. */
  location?: string;
  /** Weak ETag of the resource version, e.g. W/"3". */
  etag?: string;
}

/** The write operations a resource type supports; ids are the resource ids from the URL. */
export interface ScimResourceOps {
  create(body: unknown, rc: ScimRequestContext): Promise<ScimResult>;
  replace(id: string, body: unknown, rc: ScimRequestContext, ifMatch?: string): Promise<ScimResult>;
  patch(id: string, body: unknown, rc: ScimRequestContext, ifMatch?: string): Promise<ScimResult>;
  remove(id: string, rc: ScimRequestContext, ifMatch?: string): Promise<ScimResult>;
}

export const weakEtag = (version: number): string => `W/"${version}"`;

/** Parses If-Match / If-None-Match values: * or a list of (weak) ETags; returns the versions. */
export function parseEtagList(header: string | undefined): { any: boolean; versions: number[] } | undefined {
  if (!header) return undefined;
  if (header.trim() === '*') return { any: true, versions: [] };
  const versions = [...header.matchAll(/(?:W\/)?"(\d+)"/g)].map((m) => Number(m[1]));
  return { any: false, versions };
}

/**
 * The client's `Prefer: return=...` (RFC 7240 section 4.2, which RFC 7644 section 3.5.2 lets a
 * PATCH honour), or undefined when it states none.
 */
export function preferredReturn(prefer: string): 'minimal' | 'representation' | undefined {
  const m = /(?:^|[,;\s])return\s*=\s*"?(minimal|representation)"?\s*(?:[,;]|$)/i.exec(prefer);
  return m ? (m[1]!.toLowerCase() as 'minimal' | 'representation') : undefined;
}
