// What a person reads when something fails on a page: what happened and what to do next, in
// their language. The technical code (an OAuth error and its description, or OneID's own code)
// goes into a collapsed block for the app's developer, never into the message itself.
import type { MessageKey } from './i18n.ts';

export interface ErrorPage {
  /** What happened. */
  what: MessageKey;
  /** What to do next. */
  next: MessageKey;
  /** For the app's developer: the error code and its description, as the library or service gave them. */
  error?: string;
  description?: string;
}

/** The interaction or authorization request is gone: expired, finished, or opened in another browser. */
const isLostInteraction = (name: string | undefined, description: string): boolean =>
  name === 'SessionNotFound' || /\b(session|cookie)\b.*\bnot found\b|has expired|mismatch/.test(description);

/**
 * An OAuth / OpenID Connect error (oidc-provider's, or one raised in the interaction routes),
 * as the person who met it should read it. `name` is the error's class name when known.
 */
export function pageForOAuthError(error: string, description: string | undefined, status: number, name?: string): ErrorPage {
  const d = description ?? '';
  const dev = { error, description };
  if (status >= 500 || error === 'server_error' || error === 'temporarily_unavailable') {
    return { what: 'error.unavailable', next: 'error.unavailable_next', error, ...(status >= 500 ? {} : { description }) };
  }
  switch (error) {
    case 'invalid_client':
      return { what: 'error.unknown_client', next: 'error.tell_app_admin', ...dev };
    case 'invalid_redirect_uri':
      return { what: 'error.redirect_uri', next: 'error.tell_app_admin', ...dev };
    case 'access_denied':
      return { what: 'error.access_denied', next: 'error.back_to_app', ...dev };
    case 'invalid_request':
      if (isLostInteraction(name, d)) return { what: 'error.expired', next: 'error.expired_next', ...dev };
      return { what: 'error.bad_request', next: 'error.bad_request_next', ...dev };
    default:
      return { what: 'error.bad_request', next: 'error.bad_request_next', ...dev };
  }
}

/** OneID's own error kinds (AppError, body parsers, the database) on a page. */
export function pageForStatus(status: number, code: string, detail?: string): ErrorPage {
  if (code === 'csrf.invalid') return { what: 'csrf.invalid', next: 'error.reload_next', error: code };
  // A sign-in flow that is gone (expired, finished, another browser's) or not at that step.
  if (code === 'signin.expired' || code === 'signin.step') return { what: 'error.expired', next: 'error.expired_next', error: code };
  if (status === 404) return { what: 'error.not_found', next: 'error.not_found_next', error: code };
  if (status === 429) return { what: 'error.rate_limited', next: 'error.rate_limited_next', error: code };
  if (status === 401 || status === 403) return { what: 'error.forbidden', next: 'error.back_to_app', error: code, description: detail };
  if (status >= 500) return { what: 'error.unavailable', next: 'error.unavailable_next', error: code };
  return { what: 'error.bad_request', next: 'error.bad_request_next', error: code, description: detail };
}
