import { AppError } from '../shared/errors.ts';

/** Maps a PostgreSQL unique violation (23505) to already_exists; rethrows anything else. */
export function mapDbError(err: unknown, code: string, message: string): never {
  if ((err as { code?: string }).code === '23505') throw new AppError('already_exists', code, message);
  throw err;
}

export const isUniqueViolation = (err: unknown): boolean => (err as { code?: string }).code === '23505';

/**
 * PostgreSQL cannot store a NUL character: in a text value it answers 22021
 * (character_not_in_repertoire), in JSON 22P05 (untranslatable_character). Only input can carry
 * one (a `%00` in a parameter), so each protocol answers it as a bad request.
 */
const NUL_CODES = new Set(['22021', '22P05']);
export const isNulInText = (err: unknown): boolean => NUL_CODES.has((err as { code?: string } | undefined)?.code ?? '');

/**
 * PostgreSQL's answer to JSON holding an unpaired UTF-16 surrogate ("\ud800", which JSON.stringify
 * writes as an escape): 22P02 invalid_text_representation, "invalid input syntax for type json",
 * detail "Unicode low surrogate must follow a high surrogate." (PostgreSQL 15; other versions word
 * the detail differently but name the surrogate). 22P02 is also a malformed uuid, integer or other
 * JSON, which are bugs when they reach the database, so only this message counts as bad input.
 */
export function isLoneSurrogateInJson(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; detail?: unknown } | undefined;
  if (e?.code !== '22P02') return false;
  const message = typeof e.message === 'string' ? e.message : '';
  const detail = typeof e.detail === 'string' ? e.detail : '';
  return /invalid input syntax for type jsonb?\b/i.test(message) && /surrogate/i.test(detail || message);
}

/** Text PostgreSQL refused to store: a NUL character, or an unpaired surrogate in JSON. */
export const isUnstorableText = (err: unknown): boolean => isNulInText(err) || isLoneSurrogateInJson(err);

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000', '08003', '08006', '08001', '08004', // connection exceptions
  '53300', // too_many_connections
]);

/** True when an error means "the database cannot be reached right now" (answer 503, retry). */
export function isDbUnavailable(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string } | undefined;
  if (!e) return false;
  if (e.code && UNAVAILABLE_CODES.has(e.code)) return true;
  if (e.name === 'KnexTimeoutError') return true;
  return typeof e.message === 'string' && /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(e.message);
}
