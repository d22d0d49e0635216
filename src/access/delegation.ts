// Delegation inside a suite (#22): may app A act for person P at app B, and with what.
//
// The administrator's suite grant (suite_grants) is the one-time consent: A may ask for tokens for
// B's API (or B's own authorization server) on behalf of whoever signed in to A, within the grant's
// scopes and roles, when the person's sign-in is strong and recent enough. A grant holds only while
// A and B are both in its suite (the table's foreign keys remove it otherwise), so "a suite
// containing both" is "a grant exists". The person must be active and entitled to B: the answer
// carries B's roles of the person, cut down to the grant's roles when it names some.
//
// The protocol (oidc/token-exchange.ts) maps the refusals, AppErrors with stable codes, to OAuth
// errors; nothing here knows OAuth.
import { activeUserWithEntitlements, PERSON_AT_APP_SQL, personAtAppFromRow, type Entitlements, type PersonAtAppColumns } from './entitlements.ts';
import { ACR, policyOfAcr, SIGN_IN_POLICIES, type SignInPolicy } from './signin-policy.ts';
import { run, statement } from '../db/prepared.ts';
import { AppError } from '../shared/errors.ts';
import type { Tx } from '../db/knex.ts';

/** An app a delegated token can be for: B, found by what the token's audience names. */
export interface TargetApp {
  id: string;
  clientId: string;
  apiAudience: string | null;
  authorizationServer: string | null;
}

export interface SuiteGrant {
  id: string;
  suiteId: string;
  scopes: string[];
  /** B's role keys the token may carry; null: all the person holds. */
  roles: string[] | null;
  minSignInPolicy: SignInPolicy | null;
  maxAgeSeconds: number | null;
}

/** How and when the person signed in, as the subject token tells it. */
export interface SignInFacts {
  acr?: string | null;
  /** Seconds since the epoch. */
  authTime?: number | null;
}

/** What A may receive for B. */
export interface Delegation {
  grant: SuiteGrant;
  target: TargetApp;
  /** The scopes granted: those asked for, or all the grant allows when none were asked for. */
  scopes: string[];
  /** B's roles of the person, within the grant's roles. */
  roles: string[];
}

/**
 * What the delegated token names: `token` (an access token for B's API: `audience` is B's
 * api_audience or client_id, `resource` B's api_audience) or `assertion` (an ID-JAG for B's own
 * authorization server: `audience` is its issuer, `resource` when given B's api_audience).
 */
export interface TargetRequest {
  kind: 'token' | 'assertion';
  audience?: string;
  resource?: string;
}

// Each candidate for a target value with how it was named, and A's grants to it, in one read;
// with the person's access to each candidate too when the caller names the person (the token
// exchange: one statement instead of a second read for B's entitlement).
const TARGET_COLUMNS = `ap.id, ap.client_id, ap.api_audience, ap.authorization_server,
         (ap.api_audience = ?) as by_api_audience, (ap.client_id = ?) as by_client_id, (ap.authorization_server = ?) as by_authorization_server,
         coalesce((select json_agg(json_build_object(
                    'id', g.id, 'suiteId', g.suite_id, 'scopes', g.scopes, 'roles', g.roles,
                    'minSignInPolicy', g.min_signin_policy, 'maxAgeSeconds', g.max_age_seconds) order by g.created_at, g.id)
                     from suite_grants g where g.client_app_id = ? and g.audience_app_id = ap.id), '[]'::json) as grants`;
const TARGET_WHERE = 'ap.api_audience = ? or ap.client_id = ? or ap.authorization_server = ?';
const TARGET = statement('delegation_target', `select ${TARGET_COLUMNS} from apps ap where ${TARGET_WHERE}`);
const TARGET_FOR_PERSON = statement('delegation_target_for_person', `
  with ${PERSON_AT_APP_SQL.ctes}
  select ${TARGET_COLUMNS}, ${PERSON_AT_APP_SQL.columns}
    from apps ap
   where ${TARGET_WHERE}`);

/** The person at B, as the token exchange reads it with B: undefined when not active. */
export type PersonAtTarget = { entitlements: Entitlements; sessionsEndedAt: Date | null } | undefined;

interface TargetRow {
  id: string; client_id: string; api_audience: string | null; authorization_server: string | null;
  by_api_audience: boolean | null; by_client_id: boolean | null; by_authorization_server: boolean | null;
  grants: SuiteGrant[];
}
type TargetPersonRow = TargetRow & PersonAtAppColumns;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** With `personId` (null: a person who cannot exist), each row with the person's access to its app. */
async function targetRows(db: Tx, value: string, clientAppId: string, personId?: string | null): Promise<TargetRow[]> {
  const values = [value, value, value, clientAppId, value, value, value];
  return personId === undefined ? run<TargetRow>(db, TARGET, values) : run<TargetPersonRow>(db, TARGET_FOR_PERSON, [personId, ...values]);
}

/**
 * The app `value` names in one of the ways `accepts` lists (in order of preference: an app's
 * api_audience before another's client_id), with A's grants to it; undefined when none.
 */
async function findTarget(db: Tx, value: string, clientAppId: string, accepts: ((r: TargetRow) => unknown)[], personId?: string | null): Promise<TargetRow | undefined> {
  if (value.includes('\0')) return undefined;
  const rows = await targetRows(db, value, clientAppId, personId);
  for (const accept of accepts) {
    const row = rows.find(accept);
    if (row) return row;
  }
  return undefined;
}

const byApiAudience = (r: TargetRow): unknown => r.by_api_audience;
const byClientId = (r: TargetRow): unknown => r.by_client_id;
const byAuthorizationServer = (r: TargetRow): unknown => r.by_authorization_server;

const unknownTarget = (): AppError => new AppError('not_found', 'delegation.target_unknown', 'the requested audience or resource is not an app of a suite this app may act in');

/**
 * B and A's grants to it, from the request's audience and resource (both, when given, must name
 * the same app). A target unknown to OneID and one that A has no grant for are refused alike, so
 * that an app learns nothing about apps outside its suites. With `personId`, also that person's
 * access to B (`person`, for authorizeDelegation), read in the same statement.
 */
export async function resolveTarget(db: Tx, clientAppId: string, request: TargetRequest, personId?: string): Promise<{ target: TargetApp; grants: SuiteGrant[]; person?: PersonAtTarget }> {
  if (!UUID.test(clientAppId)) throw unknownTarget();
  // Person ids are user ids (uuid); anything else is nobody.
  const person = personId === undefined ? undefined : UUID.test(personId) ? personId : null;
  const found: TargetRow[] = [];
  if (request.audience !== undefined) {
    const row = await findTarget(db, request.audience, clientAppId, request.kind === 'token' ? [byApiAudience, byClientId] : [byAuthorizationServer], person);
    if (!row) throw unknownTarget();
    found.push(row);
  }
  if (request.resource !== undefined) {
    const row = await findTarget(db, request.resource, clientAppId, [byApiAudience], person);
    if (!row) throw unknownTarget();
    found.push(row);
  }
  const [row] = found;
  if (!row) throw new AppError('invalid_argument', 'delegation.target_missing', 'audience or resource is required');
  if (found.some((r) => r.id !== row.id)) throw new AppError('invalid_argument', 'delegation.target_mismatch', 'audience and resource name different apps');
  if (!row.grants.length) {
    throw new AppError('permission_denied', 'delegation.no_grant', 'no suite grant lets this app act for a person at the requested audience');
  }
  return {
    target: { id: row.id, clientId: row.client_id, apiAudience: row.api_audience, authorizationServer: row.authorization_server },
    grants: row.grants,
    ...(person !== undefined ? { person: personAtAppFromRow(row as TargetPersonRow) } : {}),
  };
}

const rank = (p: SignInPolicy): number => SIGN_IN_POLICIES.indexOf(p);

/** Whether the sign-in meets the grant's conditions at `now` (seconds). */
function signInMeets(grant: SuiteGrant, signIn: SignInFacts, now: number): { level: boolean; age: boolean } {
  const level = policyOfAcr(signIn.acr ?? undefined);
  return {
    level: !grant.minSignInPolicy || (level !== undefined && rank(level) >= rank(grant.minSignInPolicy)),
    age: !grant.maxAgeSeconds || (typeof signIn.authTime === 'number' && now - signIn.authTime <= grant.maxAgeSeconds),
  };
}

export interface DelegationInput {
  clientAppId: string;
  personId: string;
  target: TargetApp;
  grants: SuiteGrant[];
  /** Asked for; undefined: everything the grant allows. */
  scopes?: string[];
  signIn: SignInFacts;
  /** The person at B as resolveTarget read it (`person` in its answer; undefined: not active); read here when the property is absent. */
  person?: PersonAtTarget;
  /** Seconds since the epoch; now when not given. */
  now?: number;
}

/**
 * The delegation A may have for the person at B, from the grants resolveTarget found: the first
 * grant (oldest) that covers the scopes asked for and whose conditions the sign-in meets. Refusals
 * name what is missing; for a sign-in that is too weak or too old, the least a new sign-in must
 * reach among the grants that cover the scopes (details acrValues, maxAge).
 */
export async function authorizeDelegation(db: Tx, input: DelegationInput): Promise<Delegation> {
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const account = 'person' in input ? input.person : await activeUserWithEntitlements(db, input.personId, input.target.id);
  if (!account) throw new AppError('failed_precondition', 'delegation.person_inactive', 'the person is not active');
  if (!account.entitlements.allowed) throw new AppError('permission_denied', 'delegation.not_entitled', 'the person has no access to the requested app');
  // A sign-in from before every session of the person was ended (a password set by someone else).
  if (account.sessionsEndedAt && !(typeof input.signIn.authTime === 'number' && input.signIn.authTime > Math.floor(account.sessionsEndedAt.getTime() / 1000))) {
    throw new AppError('failed_precondition', 'delegation.signin_ended', 'the sign-in has been ended since');
  }
  const asked = input.scopes ? [...new Set(input.scopes)] : undefined;
  const covering = input.grants.filter((g) => !asked || asked.every((s) => g.scopes.includes(s)));
  if (!covering.length) throw new AppError('permission_denied', 'delegation.scope_beyond_grant', 'the requested scope is beyond what the suite grant allows');
  const grant = covering.find((g) => {
    const meets = signInMeets(g, input.signIn, now);
    return meets.level && meets.age;
  });
  if (!grant) {
    // The weakest and the least recent sign-in some covering grant would accept.
    const levels = covering.map((g) => g.minSignInPolicy ?? 'password').sort((a, b) => rank(a) - rank(b));
    const ages = covering.map((g) => g.maxAgeSeconds);
    const maxAge = ages.includes(null) ? undefined : Math.max(...(ages as number[]));
    const tooWeak = covering.every((g) => !signInMeets(g, input.signIn, now).level);
    throw new AppError('unauthenticated', tooWeak ? 'delegation.signin_too_weak' : 'delegation.signin_too_old',
      tooWeak ? 'the sign-in is weaker than the suite grant requires' : 'the sign-in is older than the suite grant allows', {
        acrValues: ACR[levels[0]!],
        ...(maxAge !== undefined ? { maxAge } : {}),
      });
  }
  const roles = grant.roles ? account.entitlements.roles.filter((r) => grant.roles!.includes(r)) : account.entitlements.roles;
  return { grant, target: input.target, scopes: asked ?? [...grant.scopes], roles };
}

/**
 * Whether a delegated token still holds, for introspection: A still has a grant to the app its
 * audience names that covers its scopes, and the person is still active and entitled to that app.
 * The id of that app (B) when it holds, else undefined. The sign-in conditions were checked when
 * the token was issued; its short life bounds them since.
 */
export async function delegationHolds(db: Tx, input: { clientAppId: string; personId: string; audience: string; scopes: string[] }): Promise<string | undefined> {
  if (!UUID.test(input.clientAppId)) return undefined;
  const row = await findTarget(db, input.audience, input.clientAppId, [byApiAudience, byClientId]);
  if (!row || !row.grants.some((g) => input.scopes.every((s) => g.scopes.includes(s)))) return undefined;
  const account = await activeUserWithEntitlements(db, input.personId, row.id);
  return account?.entitlements.allowed ? row.id : undefined;
}
