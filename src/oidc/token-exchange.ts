// OAuth 2.0 Token Exchange (RFC 8693) inside a suite (#22): app A presents the signed-in person's
// access token or ID token and receives, within the administrator's suite grant
// (access/delegation.ts), a short-lived access token for app B's API carrying the person, B's
// roles of the person and `act: {sub: A}` (RFC 8693 section 4.1), or an Identity Assertion JWT
// Authorization Grant for B's own authorization server (draft-ietf-oauth-identity-assertion-authz-grant).
//
// The access token is a JWT signed as OneID's other JWT access tokens are (oidc-provider's jwt
// format, RFC 9068), and its record is stored through the AccessToken model under the SHA-256 of
// the JWT, so that introspection and revocation find it (see exchangedTokenLookup). Every refusal
// is audited (token.exchange_refused with a reason) and issues nothing.
import { Readable } from 'node:stream';
import type { Knex } from 'knex';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWK, type JWTPayload } from 'jose';
import { createPrivateKey, randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import { authorizeDelegation, delegationHolds, resolveTarget, type Delegation, type SignInFacts } from '../access/delegation.ts';
import { recordAuditNow, type Actor, type AuditEntry } from '../audit/audit.service.ts';
import type { WithPendingWrites } from './request-writes.ts';
import { AppError } from '../shared/errors.ts';
import { sha256 } from '../shared/ids.ts';
import { oneIdClientFacts } from './adapter.ts';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
export const ID_JAG_TYPE = 'urn:ietf:params:oauth:token-type:id-jag';
const ID_JAG_TYP = 'oauth-id-jag+jwt';
const PARAMETERS = ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope', 'actor_token', 'actor_token_type'];
/** oidc-provider reads at most this much of a body (shared/selective_body.js); so does the lookup. */
const BODY_LIMIT = 56 * 1024;
const INTROSPECTION_PATHS = new Set(['/token/introspection', '/token/revocation']);
const TOKEN_PATH = '/token';

export interface TokenExchangeDeps {
  db: Knex;
  issuer: string;
  /** TOKEN_EXCHANGE_TTL_SECONDS (config.ts caps it at the access tokens' lifetime). */
  ttlSeconds: number;
  /** The provider's private JWKS, current keys first (keys/keys.service.ts loadProviderJwks). */
  jwks: { keys: JWK[] };
}

/** The record of an exchanged access token is stored under this id: only the JWT's holder can name it. */
export const exchangedTokenId = (jwt: string): string => sha256(jwt);

/** An access token this module issued (its record, as oidc-provider loads it). */
export function isExchangedToken(token: object): boolean {
  return (token as { gty?: unknown }).gty === TOKEN_EXCHANGE;
}

/** A refusal: the OAuth error, the audited reason and what the client reads. */
class Refusal extends Error {
  constructor(readonly error: 'invalid_request' | 'invalid_grant' | 'invalid_target' | 'invalid_scope' | 'insufficient_user_authentication',
    readonly reason: string, description: string, readonly stepUp?: { acrValues?: string; maxAge?: number }) {
    super(description);
  }
}

const DELEGATION_ERRORS: Record<string, Refusal['error']> = {
  'delegation.target_unknown': 'invalid_target',
  'delegation.target_missing': 'invalid_request',
  'delegation.target_mismatch': 'invalid_target',
  'delegation.no_grant': 'invalid_target',
  'delegation.scope_beyond_grant': 'invalid_scope',
  'delegation.person_inactive': 'invalid_grant',
  'delegation.not_entitled': 'invalid_grant',
  'delegation.signin_ended': 'invalid_grant',
  'delegation.signin_too_weak': 'insufficient_user_authentication',
  'delegation.signin_too_old': 'insufficient_user_authentication',
};

function refusalOf(err: AppError): Refusal {
  const error = DELEGATION_ERRORS[err.code];
  if (!error) throw err;
  const details = err.details as { acrValues?: string; maxAge?: number } | undefined;
  return new Refusal(error, err.code.replace(/^delegation\./, ''), err.message, error === 'insufficient_user_authentication' ? details : undefined);
}

/** What the subject token says: whose it is, how they signed in, and the grant it came from. */
interface Subject {
  personId: string;
  signIn: SignInFacts;
  amr?: string[];
  /** oidc-provider's grant of the subject access token: the exchanged token lives and dies with it. */
  grantId?: string;
}

const publicJwks = (jwks: { keys: JWK[] }): { keys: JWK[] } => ({
  keys: jwks.keys.map(({ kty, crv, x, y, n, e, kid, alg, use }) => ({ kty, crv, x, y, n, e, kid, alg, use })),
});

const looksLikeJwt = (value: string): boolean => {
  // An opaque token (oidc-provider's, base64url) has no dot: no need to try decoding it.
  if (!value.includes('.')) return false;
  try {
    return Boolean(decodeProtectedHeader(value));
  } catch {
    return false;
  }
};

const single = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const { db, issuer, ttlSeconds } = deps;
  const verificationKeys = createLocalJWKSet(publicJwks(deps.jwks));
  const currentEs256 = deps.jwks.keys.find((k) => k.alg === 'ES256');
  if (!currentEs256?.kid) throw new Error('token exchange needs an ES256 signing key');
  const assertionKey = { kid: currentEs256.kid, key: createPrivateKey({ key: currentEs256 as import('node:crypto').JsonWebKey, format: 'jwk' }) };

  /** A JWT OneID signed (an access token or an ID token), checked for A; refusals as Refusal. */
  async function verifiedJwt(value: string, opts: { typ?: string; audience?: string }): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(value, verificationKeys, { issuer, algorithms: ['ES256', 'RS256'], ...opts });
      return payload;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new Refusal('invalid_grant', 'subject_token_expired', 'the subject token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') {
        throw new Refusal('invalid_grant', 'subject_token_other_app', 'the subject token was not issued to this app');
      }
      throw new Refusal('invalid_grant', 'subject_token_invalid', 'the subject token is not valid');
    }
  }

  async function subjectOf(ctx: KoaContextWithOIDC, value: string, type: string): Promise<Subject> {
    const clientId = ctx.oidc.client!.clientId;
    if (type === ID_TOKEN_TYPE) {
      const claims = await verifiedJwt(value, { audience: clientId });
      if (typeof claims.sub !== 'string') throw new Refusal('invalid_grant', 'subject_token_invalid', 'the subject token names nobody');
      return { personId: claims.sub, signIn: { acr: claims.acr as string | undefined, authTime: claims.auth_time as number | undefined }, amr: claims.amr as string[] | undefined };
    }
    if (looksLikeJwt(value)) {
      // A JWT access token (for OneID's own API): not stored, so its signature and life are all there is.
      const claims = await verifiedJwt(value, { typ: 'at+jwt' });
      if (claims.client_id !== clientId) throw new Refusal('invalid_grant', 'subject_token_other_app', 'the subject token was not issued to this app');
      if (claims.act) throw new Refusal('invalid_grant', 'subject_token_delegated', 'a delegated token cannot be exchanged again');
      if (typeof claims.sub !== 'string' || claims.sub === claims.client_id) throw new Refusal('invalid_grant', 'subject_token_no_person', 'the subject token was not issued for a person');
      return { personId: claims.sub, signIn: { acr: claims.acr as string | undefined, authTime: claims.auth_time as number | undefined }, amr: claims.amr as string[] | undefined };
    }
    const token = await provider.AccessToken.find(value);
    // Expired, revoked and unknown tokens are all gone from the store.
    if (!token) throw new Refusal('invalid_grant', 'subject_token_inactive', 'the subject token is expired, revoked or unknown');
    if (token.clientId !== clientId) throw new Refusal('invalid_grant', 'subject_token_other_app', 'the subject token was not issued to this app');
    if (isExchangedToken(token)) throw new Refusal('invalid_grant', 'subject_token_delegated', 'a delegated token cannot be exchanged again');
    if (!token.accountId) throw new Refusal('invalid_grant', 'subject_token_no_person', 'the subject token was not issued for a person');
    if (token.grantId) {
      const grant = await provider.Grant.find(token.grantId);
      if (!grant || grant.clientId !== token.clientId || grant.accountId !== token.accountId) {
        throw new Refusal('invalid_grant', 'subject_token_revoked', 'the subject token has been revoked');
      }
    }
    // The person's sign-in: oidc-provider's session, which follows OneID's (provider.ts).
    const session = token.sessionUid ? await provider.Session.findByUid(token.sessionUid) : undefined;
    if (!session || session.accountId !== token.accountId) {
      throw new Refusal('invalid_grant', 'session_ended', 'the sign-in the subject token comes from has ended');
    }
    return {
      personId: token.accountId,
      signIn: { acr: session.acr, authTime: session.authTime() },
      amr: session.amr,
      grantId: token.grantId,
    };
  }

  async function accessTokenFor(ctx: KoaContextWithOIDC, subject: Subject, delegation: Delegation): Promise<{ jwt: string; jti: string; aud: string; exp: number }> {
    const client = ctx.oidc.client!;
    const aud = delegation.target.apiAudience ?? delegation.target.clientId;
    const iat = Math.floor(Date.now() / 1000);
    const common = {
      accountId: subject.personId,
      client,
      gty: TOKEN_EXCHANGE,
      scope: delegation.scopes.join(' ') || undefined,
      grantId: subject.grantId,
      extra: {
        act: { sub: client.clientId },
        roles: delegation.roles,
        ...(subject.signIn.acr ? { acr: subject.signIn.acr } : {}),
        ...(subject.amr?.length ? { amr: subject.amr } : {}),
        ...(typeof subject.signIn.authTime === 'number' ? { auth_time: subject.signIn.authTime } : {}),
      },
    };
    // The JWT, through oidc-provider's jwt format: B's audience only here, never a resource
    // indicator any other grant could ask for.
    const token = new provider.AccessToken(common as never);
    Object.assign(token, { iat, exp: iat + ttlSeconds });
    token.resourceServer = { audience: aud, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } }, scope: common.scope ?? '', accessTokenTTL: ttlSeconds } as never;
    const jwt = await token.save();
    const record = new provider.AccessToken({ ...common, jti: exchangedTokenId(jwt), aud, iat, exp: iat + ttlSeconds } as never);
    (record as unknown as { format: string }).format = 'opaque';
    await record.save();
    return { jwt, jti: token.jti!, aud, exp: iat + ttlSeconds };
  }

  async function assertionFor(ctx: KoaContextWithOIDC, subject: Subject, delegation: Delegation, resource: string | undefined): Promise<{ jwt: string; jti: string; aud: string }> {
    const aud = delegation.target.authorizationServer!;
    const jti = randomUUID();
    const jwt = await new SignJWT({
      client_id: ctx.oidc.client!.clientId,
      ...(resource ? { resource } : {}),
      ...(delegation.scopes.length ? { scope: delegation.scopes.join(' ') } : {}),
      ...(typeof subject.signIn.authTime === 'number' ? { auth_time: subject.signIn.authTime } : {}),
      ...(subject.signIn.acr ? { acr: subject.signIn.acr } : {}),
      ...(subject.amr?.length ? { amr: subject.amr } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', kid: assertionKey.kid, typ: ID_JAG_TYP })
      .setIssuer(issuer).setSubject(subject.personId).setAudience(aud).setJti(jti)
      .setIssuedAt().setExpirationTime(`${ttlSeconds}s`)
      .sign(assertionKey.key);
    return { jwt, jti, aud };
  }

  async function exchange(ctx: KoaContextWithOIDC): Promise<void> {
    const client = ctx.oidc.client!;
    const params = ctx.oidc.params as Record<string, unknown>;
    const appId = oneIdClientFacts(client).appId;
    const requested = single(params.requested_token_type) ?? ACCESS_TOKEN_TYPE;
    const audience = single(params.audience);
    const resource = single(params.resource);
    const actor = (personId?: string): Actor => ({
      type: personId ? 'user' : 'anonymous', id: personId ?? null, clientId: client.clientId, ip: ctx.ip, userAgent: ctx.get('user-agent') || null,
    });
    let subject: Subject | undefined;
    let targetAppId: string | undefined;
    try {
      if (client.clientAuthMethod === 'none' || !appId) throw new errors.UnauthorizedClient('token exchange is for confidential apps');
      if (params.actor_token !== undefined || params.actor_token_type !== undefined) {
        throw new Refusal('invalid_request', 'actor_token_unsupported', 'actor_token is not supported: the authenticated app is the actor');
      }
      const subjectToken = single(params.subject_token);
      const subjectType = single(params.subject_token_type);
      if (!subjectToken || !subjectType) throw new Refusal('invalid_request', 'subject_token_missing', 'subject_token and subject_token_type are required');
      if (subjectType !== ACCESS_TOKEN_TYPE && subjectType !== ID_TOKEN_TYPE) {
        throw new Refusal('invalid_request', 'subject_token_type_unsupported', 'subject_token_type must be an access token or an ID token');
      }
      if (requested !== ACCESS_TOKEN_TYPE && requested !== ID_JAG_TYPE) {
        throw new Refusal('invalid_request', 'requested_token_type_unsupported', 'requested_token_type must be an access token or an ID-JAG');
      }
      if (resource !== undefined && !URL.canParse(resource)) throw new Refusal('invalid_target', 'resource_invalid', 'resource must be an absolute URI');
      subject = await subjectOf(ctx, subjectToken, subjectType);
      const scopes = single(params.scope)?.split(' ').filter(Boolean);
      let delegation: Delegation;
      try {
        // B, A's grants to it and the person's access to B, in one read.
        const { target, grants, person } = await resolveTarget(db, appId, { kind: requested === ID_JAG_TYPE ? 'assertion' : 'token', audience, resource }, subject.personId);
        targetAppId = target.id;
        delegation = await authorizeDelegation(db, { clientAppId: appId, personId: subject.personId, target, grants, scopes, signIn: subject.signIn, person });
      } catch (err) {
        throw err instanceof AppError ? refusalOf(err) : err;
      }
      const issued = requested === ID_JAG_TYPE
        ? await assertionFor(ctx, subject, delegation, resource)
        : await accessTokenFor(ctx, subject, delegation);
      const exchanged: AuditEntry = {
        action: 'token.exchanged', targetType: 'app', targetId: delegation.target.id,
        changes: {
          grantId: delegation.grant.id, suiteId: delegation.grant.suiteId, sub: subject.personId, act: { sub: client.clientId },
          scope: delegation.scopes.join(' '), jti: issued.jti, aud: issued.aud, issued: requested === ID_JAG_TYPE ? 'id_jag' : 'access_token',
        },
      };
      // Written with the token's record when the response is ready (request-writes.ts): both or neither.
      const pending = (ctx.state as WithPendingWrites).oidcWrites;
      if (pending) pending.audit(actor(subject.personId), exchanged);
      else await recordAuditNow(db, actor(subject.personId), exchanged);
      ctx.body = requested === ID_JAG_TYPE
        ? { access_token: issued.jwt, issued_token_type: ID_JAG_TYPE, token_type: 'N_A', expires_in: ttlSeconds, ...(delegation.scopes.length ? { scope: delegation.scopes.join(' ') } : {}) }
        : { access_token: issued.jwt, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: ttlSeconds, ...(delegation.scopes.length ? { scope: delegation.scopes.join(' ') } : {}) };
    } catch (err) {
      const refusal = err instanceof Refusal ? err : undefined;
      const oauthError = err as { error?: string };
      if (!refusal && !(err instanceof errors.OIDCProviderError)) throw err;
      await recordAuditNow(db, actor(subject?.personId), {
        action: 'token.exchange_refused', targetType: targetAppId ? 'app' : null, targetId: targetAppId ?? null,
        changes: {
          reason: refusal?.reason ?? oauthError.error ?? 'refused', error: refusal?.error ?? oauthError.error ?? null,
          audience: audience?.slice(0, 300) ?? null, resource: resource?.slice(0, 300) ?? null, requested: requested.slice(0, 100),
        },
      });
      if (!refusal) throw err;
      if (refusal.stepUp) ctx.state.tokenExchangeStepUp = refusal.stepUp;
      throw toProviderError(refusal);
    }
  }

  provider.registerGrantType(TOKEN_EXCHANGE, exchange, PARAMETERS);
  provider.use(stepUpDetails());
  provider.use(exchangedTokenLookup(issuer));

  // Introspection (provider.ts allowedPolicy) of an exchanged token asks this.
  exchangedTokenPolicies.set(provider, async (client, token) => {
    const t = token as { clientId?: string; accountId?: string; aud?: string; scope?: string };
    const clientApp = oneIdClientFacts(await provider.Client.find(t.clientId ?? '')).appId;
    if (!clientApp || !t.accountId || !t.aud) return false;
    const heldAt = await delegationHolds(db, { clientAppId: clientApp, personId: t.accountId, audience: t.aud, scopes: t.scope ? t.scope.split(' ') : [] });
    if (!heldAt) return false;
    return client.clientId === t.clientId || oneIdClientFacts(client).appId === heldAt;
  });
}

/** The refusal as oidc-provider's error, with its own description (InvalidGrant's would be generic). */
const toProviderError = (refusal: Refusal): Error => new errors.CustomOIDCProviderError(refusal.error, refusal.message);

type ExchangedTokenPolicy = (client: { clientId: string }, token: object) => Promise<boolean>;
const exchangedTokenPolicies = new WeakMap<Provider, ExchangedTokenPolicy>();

/**
 * For introspection's allowedPolicy: undefined for a token this module did not issue (the usual
 * rule applies). An exchanged token is shown to A and to B (B authenticates as its own client),
 * and only while A's suite grant to B covers it and the person is active and entitled to B.
 */
export async function exchangedTokenAllowed(provider: Provider, client: { clientId: string }, token: object): Promise<boolean | undefined> {
  if (!isExchangedToken(token)) return undefined;
  const policy = exchangedTokenPolicies.get(provider);
  return policy ? policy(client, token) : false;
}

/**
 * RFC 9470: the refusal of a sign-in that is too weak or too old says what a new one must reach
 * (acr_values, max_age), which oidc-provider's error body has no place for.
 */
function stepUpDetails(): Middleware {
  return async (ctx, next) => {
    await next();
    const stepUp = ctx.state.tokenExchangeStepUp as { acrValues?: string; maxAge?: number } | undefined;
    if (!stepUp || ctx.path !== TOKEN_PATH) return;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (body?.error !== 'insufficient_user_authentication') return;
    ctx.body = { ...body, ...(stepUp.acrValues ? { acr_values: stepUp.acrValues } : {}), ...(stepUp.maxAge !== undefined ? { max_age: stepUp.maxAge } : {}) };
  };
}

async function readBody(req: NodeJS.ReadableStream, length: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > length) return undefined;
    chunks.push(chunk);
  }
  return received === length ? Buffer.concat(chunks, received) : undefined;
}

/**
 * oidc-provider refuses every JWT at introspection and revocation (unsupported_token_type), and
 * does not store JWT access tokens. An exchanged token's record is stored under the SHA-256 of
 * its JWT: when the token presented is a JWT of this issuer that acts for someone (`act`), its
 * body is handed on with the token replaced by that id, and oidc-provider finds the record as it
 * finds an opaque token (the usual client checks, allowedPolicy). Any other JWT is left alone.
 */
export function exchangedTokenLookup(issuer: string): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !INTROSPECTION_PATHS.has(ctx.path) || !ctx.is('application/x-www-form-urlencoded')) return next();
    const length = Number(ctx.get('content-length'));
    if (!Number.isInteger(length) || length <= 0 || length > BODY_LIMIT || ctx.req.readableEncoding) return next();
    const raw = await readBody(ctx.req, length);
    if (!raw) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'failed to parse the request body' };
      return;
    }
    const params = new URLSearchParams(raw.toString('utf8'));
    const tokens = params.getAll('token');
    let body = raw;
    if (tokens.length === 1 && isExchangedJwt(tokens[0]!, issuer)) {
      params.set('token', exchangedTokenId(tokens[0]!));
      body = Buffer.from(params.toString());
    }
    // The request's headers stay (koa reads them from the original request); oidc-provider reads
    // the body from ctx.req.
    const original = ctx.req;
    ctx.req.headers['content-length'] = String(body.length);
    ctx.req = Object.assign(Readable.from([body], { objectMode: false }), { headers: original.headers }) as never;
    try {
      await next();
    } finally {
      ctx.req = original;
    }
  };
}

function isExchangedJwt(value: string, issuer: string): boolean {
  try {
    const header = decodeProtectedHeader(value);
    const claims = decodeJwt(value);
    return header.typ === 'at+jwt' && claims.iss === issuer && typeof claims.act === 'object' && claims.act !== null;
  } catch {
    return false;
  }
}
