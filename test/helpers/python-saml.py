#!/usr/bin/python3
"""A strict SAML service provider nobody here wrote, for OneID's e2e tests: Debian's
python3-onelogin-saml2 behind a small JSON-in, JSON-out command line.

Reads one JSON object on stdin: {"command": ..., "settings": {...onelogin settings...}, ...}
and writes one JSON object on stdout. Runs under Debian's /usr/bin/python3 (the one with
onelogin.saml2 and xmlsec). Strict mode and schema validation are always on: the point of this SP
is that it refuses what a lenient one lets through.

Commands:
  login         {relay_state?, force_authn?, is_passive?} -> {url, request_id, xml}
  login-post    {relay_state?} -> {saml_request (base64, signed when authnRequestsSigned), request_id, xml, action}
  acs           {saml_response (base64), request_id} -> {ok, errors, last_error_reason, name_id, name_id_format,
                 session_index, attributes, response_xml}
  logout        {name_id, session_index?, name_id_format?, relay_state?} -> {url, request_id, xml}
  sls-response  {query (the raw query string of the redirect), request_id} -> {ok, errors, last_error_reason}
  sls-request   {query} -> {ok, errors, last_error_reason, url (the LogoutResponse redirect), in_response_to}
"""
import base64
import json
import sys
import warnings
from urllib.parse import urlsplit, parse_qsl

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

# The answer is JSON on stdout: library warnings belong on stderr only, and never abort a command.
warnings.simplefilter('default')

SECURITY_DEFAULTS = {
    'wantAssertionsSigned': True,
    'wantMessagesSigned': True,
    'authnRequestsSigned': False,
    'logoutRequestSigned': False,
    'logoutResponseSigned': False,
    'signatureAlgorithm': OneLogin_Saml2_Constants.RSA_SHA256,
    'digestAlgorithm': OneLogin_Saml2_Constants.SHA256,
    'wantXMLValidation': True,
    'wantNameId': True,
    'rejectDeprecatedAlgorithm': True,
}


def build_settings(given):
    settings = dict(given)
    settings['strict'] = True
    settings['debug'] = False
    settings['security'] = {**SECURITY_DEFAULTS, **given.get('security', {})}
    return OneLogin_Saml2_Settings(settings)


def request_data(url, get_data=None, post_data=None, query=None):
    """What a web framework hands onelogin for a request to `url`: its host (with the port, as
    http_host carries it), path and scheme, so strict Destination and Recipient checks compare
    OneID's values with the SP's real endpoint."""
    parts = urlsplit(url)
    data = {
        'https': 'on' if parts.scheme == 'https' else 'off',
        'http_host': parts.netloc,
        'script_name': parts.path,
        'get_data': get_data or {},
        'post_data': post_data or {},
    }
    if query is not None:
        # Verify the Redirect-binding signature over the query exactly as it arrived, not over
        # onelogin's own re-encoding of the decoded values.
        data['query_string'] = query
        data['validate_signature_from_qs'] = True
    return data


def sp_url(settings, key):
    return settings.get_sp_data()[key]['url']


def query_of(text):
    return text.split('?', 1)[1] if '?' in text else text


def cmd_login(settings, msg):
    auth = OneLogin_Saml2_Auth(request_data(sp_url(settings, 'assertionConsumerService')), settings)
    url = auth.login(return_to=msg.get('relay_state'), force_authn=bool(msg.get('force_authn')), is_passive=bool(msg.get('is_passive')))
    return {'url': url, 'request_id': auth.get_last_request_id(), 'xml': auth.get_last_request_xml()}


def cmd_login_post(settings, msg):
    request = OneLogin_Saml2_Authn_Request(settings)
    xml = request.get_xml()
    security = settings.get_security_data()
    if security.get('authnRequestsSigned'):
        sp = settings.get_sp_data()
        xml = OneLogin_Saml2_Utils.add_sign(xml, sp['privateKey'], sp['x509cert'], False,
                                            security['signatureAlgorithm'], security['digestAlgorithm'])
    if isinstance(xml, str):
        xml = xml.encode('utf-8')
    result = {'saml_request': base64.b64encode(xml).decode('ascii'), 'request_id': request.get_id(),
              'xml': xml.decode('utf-8'), 'action': settings.get_idp_data()['singleSignOnService']['url']}
    if msg.get('relay_state') is not None:
        result['relay_state'] = msg['relay_state']
    return result


def cmd_acs(settings, msg):
    acs = sp_url(settings, 'assertionConsumerService')
    auth = OneLogin_Saml2_Auth(request_data(acs, post_data={'SAMLResponse': msg['saml_response']}), settings)
    try:
        auth.process_response(request_id=msg.get('request_id'))
    except Exception as err:  # e.g. a Response that is not XML: refused like any invalid one
        return {'ok': False, 'errors': ['exception'], 'last_error_reason': '%s: %s' % (type(err).__name__, err)}
    errors = auth.get_errors()
    response_xml = auth.get_last_response_xml()
    if isinstance(response_xml, bytes):
        response_xml = response_xml.decode('utf-8')
    return {
        'ok': not errors and auth.is_authenticated(),
        'errors': errors,
        'last_error_reason': auth.get_last_error_reason(),
        'name_id': auth.get_nameid(),
        'name_id_format': auth.get_nameid_format(),
        'session_index': auth.get_session_index(),
        'attributes': auth.get_attributes(),
        'response_xml': response_xml,
    }


def cmd_logout(settings, msg):
    auth = OneLogin_Saml2_Auth(request_data(sp_url(settings, 'singleLogoutService')), settings)
    url = auth.logout(return_to=msg.get('relay_state'), name_id=msg['name_id'], session_index=msg.get('session_index'),
                      name_id_format=msg.get('name_id_format'))
    return {'url': url, 'request_id': auth.get_last_request_id(), 'xml': auth.get_last_request_xml()}


def sls(settings, msg):
    query = query_of(msg['query'])
    get_data = dict(parse_qsl(query, keep_blank_values=True))
    auth = OneLogin_Saml2_Auth(request_data(sp_url(settings, 'singleLogoutService'), get_data=get_data, query=query), settings)
    # keep_local_session: this SP has no session store of its own to clear.
    try:
        url = auth.process_slo(keep_local_session=True, request_id=msg.get('request_id'))
        errors = auth.get_errors()
    except Exception as err:
        url, errors = None, ['exception: %s: %s' % (type(err).__name__, err)]
    return auth, url, errors, get_data


def cmd_sls_response(settings, msg):
    auth, _, errors, get_data = sls(settings, msg)
    if 'SAMLResponse' not in get_data:
        return {'ok': False, 'errors': ['not_a_logout_response'], 'last_error_reason': 'no SAMLResponse in the query'}
    # Signed-ness: wantMessagesSigned makes onelogin require the query's Signature.
    return {'ok': not errors, 'errors': errors, 'last_error_reason': auth.get_last_error_reason()}


def cmd_sls_request(settings, msg):
    auth, url, errors, get_data = sls(settings, msg)
    if 'SAMLRequest' not in get_data:
        return {'ok': False, 'errors': ['not_a_logout_request'], 'last_error_reason': 'no SAMLRequest in the query'}
    return {'ok': not errors, 'errors': errors, 'last_error_reason': auth.get_last_error_reason(),
            'url': url if not errors else None, 'in_response_to': auth.get_last_message_id()}


COMMANDS = {
    'login': cmd_login,
    'login-post': cmd_login_post,
    'acs': cmd_acs,
    'logout': cmd_logout,
    'sls-response': cmd_sls_response,
    'sls-request': cmd_sls_request,
}


def main():
    msg = json.load(sys.stdin)
    command = COMMANDS.get(msg.get('command'))
    if command is None:
        json.dump({'error': 'unknown command %r' % msg.get('command')}, sys.stdout)
        return 2
    try:
        result = command(build_settings(msg['settings']), msg)
    except Exception as err:  # the caller gets the library's refusal as data, not a traceback
        json.dump({'error': '%s: %s' % (type(err).__name__, err)}, sys.stdout)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == '__main__':
    sys.exit(main())
