// One error type for the whole domain. Each protocol maps `kind` to its own format.
export type ErrorKind =
  | 'not_found'
  | 'already_exists'
  | 'invalid_argument'
  | 'permission_denied'
  | 'failed_precondition'
  | 'unauthenticated'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export class AppError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(kind: ErrorKind, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'AppError';
    this.kind = kind;
    this.code = code;
    this.details = details;
  }
}

export function assertThat(condition: unknown, kind: ErrorKind, code: string, message: string): asserts condition {
  if (!condition) throw new AppError(kind, code, message);
}

export const HTTP_STATUS: Record<ErrorKind, number> = {
  not_found: 404,
  already_exists: 409,
  invalid_argument: 400,
  permission_denied: 403,
  failed_precondition: 412,
  unauthenticated: 401,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};
