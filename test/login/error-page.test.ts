// Which message a person reads for an error, and that every message exists in both languages.
import { pageForOAuthError, pageForStatus } from '../../src/login/error-page.ts';
import { LOCALES, translate } from '../../src/login/i18n.ts';

describe('pageForOAuthError', () => {
  it('tells a person to wait and retry on server_error and when the service is unavailable, without the description of a 500', () => {
    expect(pageForOAuthError('server_error', 'oops: relation "x" does not exist', 500)).toEqual({ what: 'error.unavailable', next: 'error.unavailable_next', error: 'server_error' });
    expect(pageForOAuthError('temporarily_unavailable', 'try later', 503).what).toBe('error.unavailable');
  });

  it('treats every lost interaction or session as an expired sign-in', () => {
    for (const d of ['interaction session id cookie not found', 'interaction session not found', 'session not found', 'authorization request has expired', 'interaction mismatch']) {
      expect([d, pageForOAuthError('invalid_request', d, 400).what]).toEqual([d, 'error.expired']);
    }
    expect(pageForOAuthError('invalid_request', 'anything', 400, 'SessionNotFound').what).toBe('error.expired');
    expect(pageForOAuthError('invalid_request', "missing required parameter 'redirect_uri'", 400).what).toBe('error.bad_request');
  });

  it('keeps the code and description for the developer', () => {
    expect(pageForOAuthError('invalid_client', 'client is invalid', 400)).toMatchObject({ what: 'error.unknown_client', error: 'invalid_client', description: 'client is invalid' });
  });
});

describe('error messages', () => {
  it('exist in every language for every page an error can lead to', () => {
    const pages = [
      ...['invalid_client', 'invalid_redirect_uri', 'access_denied', 'invalid_request', 'invalid_scope', 'server_error'].map((e) => pageForOAuthError(e, undefined, 400)),
      pageForOAuthError('invalid_request', 'session not found', 400),
      ...[400, 401, 403, 404, 409, 413, 429, 500, 503].map((s) => pageForStatus(s, 'x')),
      pageForStatus(403, 'csrf.invalid'),
    ];
    for (const locale of LOCALES) {
      for (const p of pages) {
        for (const key of [p.what, p.next]) expect([locale, key, translate(locale, key) !== key]).toEqual([locale, key, true]);
      }
    }
  });
});
