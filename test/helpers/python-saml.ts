// A strict SP nobody here wrote: Debian's python3-onelogin-saml2, run through
// test/helpers/python-saml.py (JSON on stdin, JSON on stdout) under /usr/bin/python3 (the
// python on PATH may be one without onelogin.saml2 and xmlsec).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './server.ts';
import { pemToBase64 } from './saml-keys.ts';

export const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(ROOT, 'test/helpers/python-saml.py');

const BINDING_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const BINDING_POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
export const NAMEID_EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

export interface PythonSpOptions {
  /** OneID's base URL: IdP entityID `<base>/saml/metadata`, SSO `<base>/saml/sso`, SLO `<base>/saml/slo`. */
  baseUrl: string;
  entityId: string;
  acsUrl: string;
  sloUrl?: string;
  /** OneID's signing certificates (base64 DER or PEM), from its metadata. */
  idpCertificates: string[];
  /** The SP's key and certificate: signs requests, decrypts encrypted assertions. */
  sp?: { privateKeyPem: string; certificatePem: string };
  nameIdFormat?: string;
  /** Overrides of the strict security defaults of python-saml.py (e.g. { wantMessagesSigned: false }). */
  security?: Record<string, unknown>;
  /** Which binding the IdP's SSO endpoint is given with (login-post: POST). */
  ssoBinding?: 'redirect' | 'post';
}

/** onelogin's settings dict for these options (strict, debug and security defaults are set by the script). */
export function pythonSettings(o: PythonSpOptions): Record<string, unknown> {
  const certs = o.idpCertificates.map(pemToBase64);
  const signed = o.sp !== undefined;
  return {
    sp: {
      entityId: o.entityId,
      assertionConsumerService: { url: o.acsUrl, binding: BINDING_POST },
      ...(o.sloUrl ? { singleLogoutService: { url: o.sloUrl, binding: BINDING_REDIRECT } } : {}),
      NameIDFormat: o.nameIdFormat ?? NAMEID_EMAIL,
      ...(o.sp ? { x509cert: pemToBase64(o.sp.certificatePem), privateKey: o.sp.privateKeyPem } : {}),
    },
    idp: {
      entityId: `${o.baseUrl}/saml/metadata`,
      singleSignOnService: { url: `${o.baseUrl}/saml/sso`, binding: o.ssoBinding === 'post' ? BINDING_POST : BINDING_REDIRECT },
      singleLogoutService: { url: `${o.baseUrl}/saml/slo`, binding: BINDING_REDIRECT },
      // x509certMulti: every published certificate (a rotation publishes two) may have signed.
      ...(certs.length === 1 ? { x509cert: certs[0] } : { x509certMulti: { signing: certs, encryption: [certs[0]] } }),
    },
    security: {
      authnRequestsSigned: signed,
      logoutRequestSigned: signed,
      logoutResponseSigned: signed,
      ...o.security,
    },
  };
}

/** Runs one command of python-saml.py; throws with the script's error (or stderr) when it fails. */
export function runPythonSaml<T = Record<string, any>>(command: string, settings: Record<string, unknown>, args: Record<string, unknown> = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [SCRIPT], { cwd: ROOT, timeout: 60_000, maxBuffer: 16 * 1024 * 1024, env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } },
      (err, stdout, stderr) => {
        let parsed: any;
        try { parsed = JSON.parse(stdout); } catch { parsed = undefined; }
        if (parsed && typeof parsed === 'object' && !('error' in parsed)) return resolve(parsed as T);
        reject(new Error(`python-saml ${command}: ${parsed?.error ?? err?.message ?? 'no JSON answer'}\n${stderr}`));
      });
    child.stdin!.end(JSON.stringify({ command, settings, ...args }));
  });
}

export interface AcsResult {
  ok: boolean;
  errors: string[];
  last_error_reason: string | null;
  name_id: string | null;
  name_id_format: string | null;
  session_index: string | null;
  attributes: Record<string, string[]>;
  response_xml?: string;
}

/** A strict onelogin SP for one OneID: each method runs the script once. */
export function pythonSp(options: PythonSpOptions) {
  const settings = pythonSettings(options);
  const postSettings = pythonSettings({ ...options, ssoBinding: 'post' });
  return {
    settings,
    /** An AuthnRequest for the HTTP-Redirect binding (signed in the query when the SP has a key). */
    login: (args: { relay_state?: string; force_authn?: boolean; is_passive?: boolean } = {}) =>
      runPythonSaml<{ url: string; request_id: string; xml: string }>('login', settings, args),
    /** An AuthnRequest for the HTTP-POST binding (enveloped signature when the SP has a key), base64. */
    loginPost: (args: { relay_state?: string } = {}) =>
      runPythonSaml<{ saml_request: string; request_id: string; xml: string; action: string; relay_state?: string }>('login-post', postSettings, args),
    /** Processes a Response as POSTed to the ACS, strictly, for the AuthnRequest `requestId` (null: unsolicited). */
    acs: (samlResponse: string, requestId: string | null) =>
      runPythonSaml<AcsResult>('acs', settings, { saml_response: samlResponse, request_id: requestId }),
    /** A LogoutRequest (HTTP-Redirect) for this person's session. */
    logout: (args: { name_id: string; session_index?: string; name_id_format?: string; relay_state?: string }) =>
      runPythonSaml<{ url: string; request_id: string; xml: string }>('logout', settings, args),
    /** Checks a LogoutResponse arriving at the SLO URL (its full URL or query) for the LogoutRequest `requestId`. */
    slsResponse: (urlOrQuery: string, requestId: string | null) =>
      runPythonSaml<{ ok: boolean; errors: string[]; last_error_reason: string | null }>('sls-response', settings, { query: urlOrQuery, request_id: requestId }),
    /** Checks a LogoutRequest from OneID arriving at the SLO URL and answers with a LogoutResponse URL. */
    slsRequest: (urlOrQuery: string) =>
      runPythonSaml<{ ok: boolean; errors: string[]; last_error_reason: string | null; url: string | null; in_response_to: string | null }>('sls-request', settings, { query: urlOrQuery }),
  };
}
export type PythonSp = ReturnType<typeof pythonSp>;
