import { AppError } from '../shared/errors.ts';

/** Maps a PostgreSQL unique violation (23505) to already_exists; rethrows anything else. */
export function mapDbError(err: unknown, code: string, message: string): never {
  if ((err as { code?: string }).code === '23505') throw new AppError('already_exists', code, message);
  throw err;
}

export const isUniqueViolation = (err: unknown): boolean => (err as { code?: string }).code === '23505';
