// oidc-provider storage adapter: every model in one PostgreSQL table (oidc_payloads).
// Clients are not stored here: they are read from the apps table.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import Provider, { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { findAppByClientId, type App } from '../apps/apps.repo.ts';
import { run, runCount, statement } from '../db/prepared.ts';
import type { ClientCache } from '../apps/client-cache.ts';
import { TOKEN_ACCOUNT_SQL, accountFromTokenRow, type TokenAccountColumns } from '../access/entitlements.ts';
import { payloadColumns, type PendingWrites, type WithPendingWrites } from './request-writes.ts';
import { hasIllFormedText } from '../shared/text-input.ts';
import { appPolicy, isSignInPolicy, type SignInPolicy } from '../access/signin-policy.ts';

/** RFC 8693's grant type (token-exchange.ts, which imports this module). */
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The metadata oidc-provider sees for an app. client_secret holds the SHA-256 of the secret. */
export function clientMetadataFor(app: App): AdapterPayload {
  return {
    client_id: app.clientId,
    client_name: app.name,
    ...(app.clientSecretHash ? { client_secret: app.clientSecretHash } : {}),
    ...(app.logoUrl ? { logo_uri: app.logoUrl } : {}),
    redirect_uris: app.oidc.redirect_uris,
    post_logout_redirect_uris: app.oidc.post_logout_redirect_uris,
    // A confidential app may also exchange a person's token for one at another app of its suites
    // (token-exchange.ts): what it gets is decided by the suite grants, not by its registration.
    grant_types: app.oidc.token_endpoint_auth_method === 'none' || app.oidc.grant_types.includes(TOKEN_EXCHANGE)
      ? app.oidc.grant_types : [...app.oidc.grant_types, TOKEN_EXCHANGE],
    response_types: app.oidc.response_types,
    token_endpoint_auth_method: app.oidc.token_endpoint_auth_method,
    application_type: app.oidc.application_type,
    id_token_signed_response_alg: app.oidc.id_token_signed_response_alg ?? 'RS256',
    // Back-Channel Logout: oidc-provider sends the app a logout token at RP-initiated logout too.
    ...(app.oidc.backchannel_logout_uri ? {
      backchannel_logout_uri: app.oidc.backchannel_logout_uri,
      backchannel_logout_session_required: app.oidc.backchannel_logout_session_required ?? false,
    } : {}),
    'urn:oneid:first_party': app.firstParty,
    'urn:oneid:app_id': app.id,
    'urn:oneid:allow_no_pkce': app.allowNoPkce,
    // The app's level (its own, or its suites' when stronger), or null: the caller applies
    // SIGNIN_POLICY_DEFAULT (config), which a cached client must not freeze.
    'urn:oneid:signin_policy': appPolicy(app),
  } as AdapterPayload;
}

/**
 * What clientMetadataFor put on a client that oidc-provider built from it: its app id, whether
 * it is first-party, whether it was let off PKCE and its own sign-in policy (null: the global
 * default). Extra metadata sits on the client under its
 * own name; client.metadata() would copy every property to answer, on every refresh and userinfo.
 */
export function oneIdClientFacts(client: object | undefined): {
  appId: string | undefined; firstParty: boolean; allowNoPkce: boolean; signInPolicy: SignInPolicy | null;
} {
  const c = client as Record<string, unknown> | undefined;
  const appId = c?.['urn:oneid:app_id'];
  const policy = c?.['urn:oneid:signin_policy'];
  return {
    appId: typeof appId === 'string' ? appId : undefined,
    firstParty: Boolean(c?.['urn:oneid:first_party']),
    allowNoPkce: c?.['urn:oneid:allow_no_pkce'] === true,
    signInPolicy: isSignInPolicy(policy) ? policy : null,
  };
}

interface DbOidcPayloadRow {
  payload: AdapterPayload;
  expires_at: Date | null;
  consumed_at: Date | null;
}

// Every call of the token, userinfo and sign-in endpoints runs these: prepared statements (see db/prepared.ts).
const UPSERT = statement('oidc_upsert', `
  insert into oidc_payloads (model, id, payload, uid, grant_id, user_code, account_id, expires_at)
  values (?, ?, ?, ?, ?, ?, ?, ?)
  on conflict (model, id) do update set payload = excluded.payload, uid = excluded.uid, grant_id = excluded.grant_id,
    user_code = excluded.user_code, account_id = excluded.account_id, expires_at = excluded.expires_at`);
/** The row (of the table or alias `t`) has not expired. */
const live = (t = 'oidc_payloads'): string => `(${t}.expires_at is null or ${t}.expires_at > now())`;
const FIND = {
  id: statement('oidc_find_id', `select payload, expires_at, consumed_at from oidc_payloads where model = ? and id = ? and ${live()}`),
  uid: statement('oidc_find_uid', `select payload, expires_at, consumed_at from oidc_payloads where model = ? and uid = ? and ${live()} limit 1`),
  user_code: statement('oidc_find_user_code', `select payload, expires_at, consumed_at from oidc_payloads where model = ? and user_code = ? and ${live()} limit 1`),
};
// A token's grant and session, and its account in the app of its client, read with the token:
// oidc-provider asks for them next whenever it finds an access token, refresh token or code
// (userinfo, refresh, code exchange, introspection); findAccount (provider.ts) takes the account.
// Every row is found by its key, taken from `tok` in a subquery: a prepared statement keeps the
// plan it made on its connection's first calls, and as a join, a plan made while the table was
// small read every grant to find the token's one (the plan for any key then looks as cheap).
const FIND_TOKEN = statement('oidc_find_token', `
  with tok as (
    select payload, expires_at, consumed_at, account_id, grant_id from oidc_payloads where model = ? and id = ? and ${live()}
  ), ${TOKEN_ACCOUNT_SQL.ctes}
  select t.payload, t.expires_at, t.consumed_at,
         g.payload as grant_payload, g.consumed_at as grant_consumed_at,
         s.payload as session_payload, s.consumed_at as session_consumed_at,
         ${TOKEN_ACCOUNT_SQL.columns}
    from tok t
    left join oidc_payloads g on g.model = 'Grant' and g.id = (select grant_id from tok) and ${live('g')}
    left join oidc_payloads s on s.model = 'Session' and s.uid = (select payload->>'sessionUid' from tok) and ${live('s')}`);
const TOKEN_MODELS = new Set(['AccessToken', 'RefreshToken', 'AuthorizationCode']);
interface DbTokenRow extends DbOidcPayloadRow, TokenAccountColumns {
  grant_payload: AdapterPayload | null;
  grant_consumed_at: Date | null;
  session_payload: AdapterPayload | null;
  session_consumed_at: Date | null;
}

const withConsumed = (payload: AdapterPayload, consumedAt: Date | null): AdapterPayload =>
  consumedAt ? { ...payload, consumed: Math.floor(new Date(consumedAt).getTime() / 1000) } : payload;

/**
 * What a token lookup read along with the token, for the rest of the same request: read once
 * (taken out when used), dropped when this request writes the same row. Keys: `Grant <id>`,
 * `Session uid <uid>`, and `Account <accountId> <clientId>` (see takePrefetchedAccount). Lives on
 * the request's koa context, which oidc-provider keeps in an AsyncLocalStorage (Provider.ctx);
 * outside a provider request there is none.
 */
type Prefetched = Map<string, unknown>;
type RequestState = WithPendingWrites & { oidcPrefetch?: Prefetched };
const requestState = (): RequestState | undefined => (Provider as unknown as { ctx?: { state: RequestState } }).ctx?.state;
function prefetched(create: boolean): Prefetched | undefined {
  const state = requestState();
  if (!state) return undefined;
  if (create) state.oidcPrefetch ??= new Map();
  return state.oidcPrefetch;
}
function takePrefetched<T = AdapterPayload>(key: string): { value: T | undefined } | undefined {
  const map = prefetched(false);
  if (!map?.has(key)) return undefined;
  const value = map.get(key) as T | undefined;
  map.delete(key);
  return { value };
}

export type TokenAccount = NonNullable<ReturnType<typeof accountFromTokenRow>>;
const accountKey = (accountId: string, clientId: string): string => `Account ${accountId} ${clientId}`;

/**
 * The account (active user and entitlements) of the token this request found, when it is
 * `accountId` of `clientId`'s app: `{ value: undefined }` when the user is not active (any more),
 * undefined when nothing was read with a token (read it yourself). Once.
 */
export function takePrefetchedAccount(accountId: string, clientId: string): { value: TokenAccount | undefined } | undefined {
  return takePrefetched<TokenAccount>(accountKey(accountId, clientId));
}
function forget(model: string, id: string, payload?: AdapterPayload): void {
  const map = prefetched(false);
  if (!map?.size) return;
  if (model === 'Grant') map.delete(`Grant ${id}`);
  if (model === 'Session') {
    if (payload?.uid) map.delete(`Session uid ${payload.uid}`);
    else for (const key of [...map.keys()]) if (key.startsWith('Session ')) map.delete(key);
  }
}

const DESTROY = statement('oidc_destroy', 'delete from oidc_payloads where model = ? and id = ?');
const CONSUME = statement('oidc_consume', 'update oidc_payloads set consumed_at = now() where model = ? and id = ?');
const REVOKE_GRANT = statement('oidc_revoke_grant', 'delete from oidc_payloads where grant_id = ?');
const DELETE_EXPIRED = statement('oidc_delete_expired', `
  delete from oidc_payloads where ctid in (select ctid from oidc_payloads where expires_at < now() limit ?)`);

/** `clients`: where read clients are kept between requests (see apps/client-cache.ts). */
export function createAdapterFactory(db: Knex, clients: ClientCache<AdapterPayload>): new (name: string) => Adapter {
  return class PostgresAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      // PostgreSQL stores no NUL character nor (in JSON) an unpaired surrogate, and only a request
      // parameter can bring one (`%00` in state, nonce, login_hint; a request object's JSON):
      // refused as oidc-provider refuses any bad parameter (see shared/text-input.ts).
      if (hasIllFormedText(payload)) throw new errors.InvalidRequest('request parameters must be well-formed text without NUL characters');
      forget(this.name, id, payload);
      const pending = requestState()?.oidcWrites;
      if (pending) return pending.upsert(this.name, id, payload, expiresIn);
      const c = payloadColumns(payload, expiresIn);
      await runCount(db, UPSERT, [this.name, id, JSON.stringify(payload), c.uid, c.grant_id, c.user_code, c.account_id, c.expires_at]);
    }

    /** Before anything else touches the table: this request's recorded writes (request-writes.ts). */
    async #sendPending(when: (pending: PendingWrites) => boolean): Promise<void> {
      const pending = requestState()?.oidcWrites;
      if (pending?.size && when(pending)) await pending.flush(db);
    }

    // Ids, uids and user codes come from requests; none stored holds a NUL (see upsert), and
    // PostgreSQL would refuse to compare one: not found, without asking.

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (id.includes('\0')) return undefined;
      await this.#sendPending((pending) => pending.has(this.name, id));
      if (this.name === 'Client') {
        return clients.get(id, async () => {
          const app = await findAppByClientId(db, id);
          // A SAML app has a client_id too, but it is no OIDC client: unknown here (invalid_client).
          return app && app.protocol === 'oidc' ? clientMetadataFor(app) : undefined;
        });
      }
      if (TOKEN_MODELS.has(this.name)) return this.#findToken(id);
      if (this.name === 'Grant') {
        const taken = takePrefetched(`Grant ${id}`);
        if (taken) return taken.value;
      }
      return this.#findBy('id', id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (uid.includes('\0')) return undefined;
      await this.#sendPending(() => true);
      if (this.name === 'Session') {
        const taken = takePrefetched(`Session uid ${uid}`);
        if (taken) return taken.value;
      }
      return this.#findBy('uid', uid);
    }

    async #findToken(id: string): Promise<AdapterPayload | undefined> {
      const [row] = await run<DbTokenRow>(db, FIND_TOKEN, [this.name, id]);
      if (!row) return undefined;
      const map = prefetched(true);
      if (map) {
        const { grantId, sessionUid, accountId, clientId } = row.payload as Record<string, unknown>;
        if (typeof grantId === 'string') map.set(`Grant ${grantId}`, row.grant_payload ? withConsumed(row.grant_payload, row.grant_consumed_at) : undefined);
        if (typeof sessionUid === 'string') map.set(`Session uid ${sessionUid}`, row.session_payload ? withConsumed(row.session_payload, row.session_consumed_at) : undefined);
        if (typeof accountId === 'string' && typeof clientId === 'string' && row.account_app_id) map.set(accountKey(accountId, clientId), accountFromTokenRow(row));
      }
      return withConsumed(row.payload, row.consumed_at);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (userCode.includes('\0')) return undefined;
      await this.#sendPending(() => true);
      return this.#findBy('user_code', userCode);
    }

    async #findBy(key: keyof typeof FIND, value: string): Promise<AdapterPayload | undefined> {
      const [row] = await run<DbOidcPayloadRow>(db, FIND[key], [this.name, value]);
      return row ? withConsumed(row.payload, row.consumed_at) : undefined;
    }

    async destroy(id: string): Promise<void> {
      if (id.includes('\0')) return;
      forget(this.name, id);
      const pending = requestState()?.oidcWrites;
      if (pending) return pending.destroy(this.name, id);
      await runCount(db, DESTROY, [this.name, id]);
    }

    async consume(id: string): Promise<void> {
      if (id.includes('\0')) return;
      forget(this.name, id);
      const pending = requestState()?.oidcWrites;
      if (pending) return pending.consume(this.name, id);
      await runCount(db, CONSUME, [this.name, id]);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (grantId.includes('\0')) return;
      forget('Grant', grantId);
      await this.#sendPending(() => true);
      // Every token and code of a grant goes, whatever its model.
      await runCount(db, REVOKE_GRANT, [grantId]);
    }
  };
}

// Remembers a one-time value (a DPoP proof's jti) unless a live row has it: one statement, so that
// of requests carrying the same value at once, on any node, exactly one is told it is new.
const REMEMBER_ONCE = statement('oidc_remember_once', `
  insert into oidc_payloads (model, id, payload, expires_at) values ('ReplayDetection', ?, ?, to_timestamp(?))
  on conflict (model, id) do update set payload = excluded.payload, expires_at = excluded.expires_at
    where oidc_payloads.expires_at <= now()`);

/**
 * For oidc-provider's ReplayDetection.unique(iss, jti, exp), which finds and then saves: two
 * requests with one DPoP proof, on two nodes or even on one (its save waits in the request's
 * pending writes, request-writes.ts), both found nothing and both got tokens.
 */
export function rememberOnce(db: Knex): (iss: string, jti: string, exp: number) => Promise<boolean> {
  return async (iss, jti, exp) => {
    const id = createHash('sha256').update(`${iss}${jti}`).digest('base64url');
    return await runCount(db, REMEMBER_ONCE, [id, JSON.stringify({ kind: 'ReplayDetection', jti: id, iss, exp }), exp]) === 1;
  };
}

/** Deletes expired rows. Returns how many went. Run periodically by every node (cheap, idempotent). */
export function deleteExpiredPayloads(db: Knex, batch = 5000): Promise<number> {
  return runCount(db, DELETE_EXPIRED, [batch]);
}
