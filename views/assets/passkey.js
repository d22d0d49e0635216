// OneID's passkey page script, served as /assets/passkey.js after /assets/webauthn.js (the
// @simplewebauthn/browser bundle, global SimpleWebAuthnBrowser). Plain browser JavaScript, no
// build step; the page's markup says what to do:
//   [data-passkey="signin"]    a button: sign in with a passkey
//   [data-passkey="register"]  a button: create a passkey (name from [data-passkey-name], if any)
//   [data-passkey="autofill"]  the username input: passkeys offered in its autofill (conditional UI)
// Each carries data-options-url and data-verify-url, and may carry data-login-field (a selector of
// the username input, sent as {login} for username-first) and data-error-text (shown when the
// server gives no message). Requests are same-origin JSON with the CSRF token of
// <meta name="csrf-token">; a 200 answer {redirect} is followed, an error's message is shown in
// [data-passkey-error] as text.
(function () {
  'use strict';

  var swa = window.SimpleWebAuthnBrowser;
  // Conditional UI is restarted before its challenge (5 minutes on the server) runs out.
  var AUTOFILL_RENEW_MS = 4 * 60 * 1000;
  var autofillTimer = null;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') || '' : '';
  }

  function errorBoxFor(el) {
    var scope = el.closest('form, [data-passkey-scope]');
    return (scope && scope.querySelector('[data-passkey-error]')) || document.querySelector('[data-passkey-error]');
  }

  function showError(el, message) {
    var box = errorBoxFor(el);
    if (!box) return;
    box.textContent = message || el.getAttribute('data-error-text') || 'Something went wrong. Please try again.';
    box.hidden = false;
  }

  function clearError(el) {
    var box = errorBoxFor(el);
    if (!box) return;
    box.textContent = '';
    box.hidden = true;
  }

  /** An error carrying the server's message (status 4xx/5xx with {error, message}). */
  function ServerError(message) {
    this.message = message;
  }

  function postJson(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': csrfToken() },
      body: JSON.stringify(body),
    }).then(function (res) {
      return res.json().then(
        function (data) { return { ok: res.ok, data: data }; },
        function () { return { ok: res.ok, data: null }; }
      );
    }).then(function (r) {
      if (!r.ok) throw new ServerError(r.data && typeof r.data.message === 'string' ? r.data.message : '');
      return r.data || {};
    });
  }

  // Only a same-origin address is followed: the flow always continues on OneID.
  function go(redirect) {
    if (typeof redirect !== 'string') return;
    var target = new URL(redirect, window.location.href);
    if (target.origin !== window.location.origin) return;
    window.location.assign(target.href);
  }

  function isAbort(err) {
    return err && (err.code === 'ERROR_CEREMONY_ABORTED' || err.name === 'AbortError');
  }

  function optionsBody(el) {
    var selector = el.getAttribute('data-login-field');
    var field = selector ? document.querySelector(selector) : null;
    var login = field && typeof field.value === 'string' ? field.value.trim() : '';
    return login ? { login: login } : {};
  }

  /** A failure in the browser (cancelled, no passkey, timed out) gets the page's own text. */
  function report(el, err) {
    if (isAbort(err)) return;
    showError(el, err instanceof ServerError ? err.message : '');
  }

  function signIn(el, autofill) {
    return postJson(el.getAttribute('data-options-url'), autofill ? {} : optionsBody(el))
      .then(function (optionsJSON) {
        return swa.startAuthentication({ optionsJSON: optionsJSON, useBrowserAutofill: autofill });
      })
      .then(function (response) {
        clearError(el);
        return postJson(el.getAttribute('data-verify-url'), { response: response });
      })
      .then(function (data) { go(data.redirect); });
  }

  function startAutofill(input) {
    if (autofillTimer) window.clearTimeout(autofillTimer);
    autofillTimer = window.setTimeout(function () { startAutofill(input); }, AUTOFILL_RENEW_MS);
    // A new ceremony aborts the one before it (simplewebauthn's WebAuthnAbortService).
    signIn(input, true).catch(function (err) {
      if (isAbort(err)) return;
      if (autofillTimer) window.clearTimeout(autofillTimer);
      autofillTimer = null;
      report(input, err);
    });
  }

  function stopAutofill() {
    if (autofillTimer) window.clearTimeout(autofillTimer);
    autofillTimer = null;
  }

  function withBusy(button, run) {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    clearError(button);
    run().catch(function (err) { report(button, err); }).then(function () {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    });
  }

  function init() {
    if (!swa || !swa.browserSupportsWebAuthn()) {
      // Without WebAuthn, passkey buttons would only fail: leave the other methods.
      document.querySelectorAll('[data-passkey="signin"], [data-passkey="register"]').forEach(function (b) { b.hidden = true; });
      return;
    }
    var autofill = document.querySelector('[data-passkey="autofill"]');

    document.querySelectorAll('[data-passkey="signin"]').forEach(function (button) {
      button.addEventListener('click', function (event) {
        event.preventDefault();
        stopAutofill();
        withBusy(button, function () {
          return signIn(button, false).catch(function (err) {
            // Back to autofill after a cancelled or failed button sign-in.
            if (autofill && !isAbort(err)) startAutofill(autofill);
            throw err;
          });
        });
      });
    });

    document.querySelectorAll('[data-passkey="register"]').forEach(function (button) {
      button.addEventListener('click', function (event) {
        event.preventDefault();
        stopAutofill();
        withBusy(button, function () {
          return postJson(button.getAttribute('data-options-url'), {})
            .then(function (optionsJSON) { return swa.startRegistration({ optionsJSON: optionsJSON }); })
            .then(function (response) {
              var nameInput = document.querySelector('[data-passkey-name]');
              var body = { response: response };
              if (nameInput && nameInput.value.trim()) body.name = nameInput.value.trim();
              return postJson(button.getAttribute('data-verify-url'), body);
            })
            .then(function (data) { go(data.redirect); });
        });
      });
    });

    if (autofill) {
      swa.browserSupportsWebAuthnAutofill().then(function (supported) {
        if (supported) startAutofill(autofill);
      });
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
