// What an AuthnRequest's RequestedAuthnContext asks of OneID's sign-in, and what the assertion
// then says about it.
import { authnContextFor, levelOfClass, requiredLevel } from '../../src/saml/signin-request.ts';
import type { CheckedAuthnRequest } from '../../src/saml/authn-request.ts';
import type { Session } from '../../src/sessions/sessions.repo.ts';
import type { Proof } from '../../src/credentials/methods.ts';

const PPT = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
const KERBEROS = 'urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos';

const request = (requestedContext?: CheckedAuthnRequest['requestedContext']): CheckedAuthnRequest => ({
  acsUrl: 'https://sp.example.com/acs', forceAuthn: false, isPassive: false, allowCreate: true, signed: false, requestedContext,
});

const password: Proof = { method: 'password', at: 1, amr: ['pwd'] };
const totp: Proof = { method: 'totp', at: 2, amr: ['otp'] };
const passkey: Proof = { method: 'passkey', at: 3, amr: ['hwk', 'user'], userVerified: true };

const session = (methods: Proof[]): Session => ({
  id: 's', userId: 'u', createdAt: new Date(), lastSeenAt: new Date(), authTime: 1, methods, acr: null, amr: [],
  userAgent: null, ip: null, expiresAt: new Date(Date.now() + 3600e3), endedAt: null, endedReason: null,
});

describe('requiredLevel', () => {
  it('is the app\'s policy when the request names no context', () => {
    expect(requiredLevel('mfa', request())).toBe('mfa');
  });

  it('raises the level to the weakest class named (exact and minimum), never lowers it below the app\'s', () => {
    expect(requiredLevel('password', request({ comparison: 'exact', classRefs: ['urn:oneid:acr:mfa'] }))).toBe('mfa');
    expect(requiredLevel('password', request({ comparison: 'minimum', classRefs: ['urn:oneid:acr:phishing_resistant', 'urn:oneid:acr:mfa'] }))).toBe('mfa');
    expect(requiredLevel('mfa', request({ comparison: 'exact', classRefs: [PPT] }))).toBe('mfa');
  });

  it('asks for the level above with "better", and has nothing above phishing-resistant', () => {
    expect(requiredLevel('password', request({ comparison: 'better', classRefs: [PPT] }))).toBe('mfa');
    expect(requiredLevel('password', request({ comparison: 'better', classRefs: ['urn:oneid:acr:phishing_resistant'] }))).toBeUndefined();
  });

  it('cannot meet "maximum" below the app\'s own policy', () => {
    expect(requiredLevel('password', request({ comparison: 'maximum', classRefs: ['urn:oneid:acr:mfa'] }))).toBe('password');
    expect(requiredLevel('phishing_resistant', request({ comparison: 'maximum', classRefs: [PPT] }))).toBeUndefined();
  });

  it('cannot meet a request naming only classes OneID does not know (NoAuthnContext)', () => {
    expect(requiredLevel('password', request({ comparison: 'exact', classRefs: [KERBEROS] }))).toBeUndefined();
    expect(levelOfClass(KERBEROS)).toBeUndefined();
  });
});

describe('authnContextFor', () => {
  it('states PasswordProtectedTransport for a password and OneID\'s level URN above it', () => {
    expect(authnContextFor(session([password]), request())).toBe(PPT);
    expect(authnContextFor(session([password, totp]), request())).toBe('urn:oneid:acr:mfa');
    expect(authnContextFor(session([passkey]), request())).toBe('urn:oneid:acr:phishing_resistant');
  });

  it('echoes the class the SP asked for when the session meets it', () => {
    expect(authnContextFor(session([password, totp]), request({ comparison: 'minimum', classRefs: ['urn:oneid:acr:mfa'] }))).toBe('urn:oneid:acr:mfa');
    expect(authnContextFor(session([password, totp]), request({ comparison: 'exact', classRefs: [PPT] }))).toBe(PPT);
  });
});
