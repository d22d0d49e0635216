// oidc-provider storage adapter: every model in one PostgreSQL table (oidc_payloads).
// Clients are not stored here: they are read from the apps table.
import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { findAppByClientId, type App } from '../apps/apps.repo.ts';

/** The metadata oidc-provider sees for an app. client_secret holds the SHA-256 of the secret. */
export function clientMetadataFor(app: App): AdapterPayload {
  return {
    client_id: app.clientId,
    client_name: app.name,
    ...(app.clientSecretHash ? { client_secret: app.clientSecretHash } : {}),
    ...(app.logoUrl ? { logo_uri: app.logoUrl } : {}),
    redirect_uris: app.oidc.redirect_uris,
    post_logout_redirect_uris: app.oidc.post_logout_redirect_uris,
    grant_types: app.oidc.grant_types,
    response_types: app.oidc.response_types,
    token_endpoint_auth_method: app.oidc.token_endpoint_auth_method,
    application_type: app.oidc.application_type,
    'urn:oneid:first_party': app.firstParty,
    'urn:oneid:app_id': app.id,
  } as AdapterPayload;
}

interface DbOidcPayloadRow {
  payload: AdapterPayload;
  expires_at: Date | null;
  consumed_at: Date | null;
}

export function createAdapterFactory(db: Knex): new (name: string) => Adapter {
  return class PostgresAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const row = {
        model: this.name,
        id,
        payload: JSON.stringify(payload),
        uid: payload.uid ?? null,
        grant_id: payload.grantId ?? null,
        user_code: payload.userCode ?? null,
        account_id: payload.accountId ?? null,
        expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      await db('oidc_payloads').insert(row).onConflict(['model', 'id']).merge(['payload', 'uid', 'grant_id', 'user_code', 'account_id', 'expires_at']);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.name === 'Client') {
        const app = await findAppByClientId(db, id);
        return app && app.oidc ? clientMetadataFor(app) : undefined;
      }
      return this.#findBy({ id });
    }

    findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.#findBy({ uid });
    }

    findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return this.#findBy({ user_code: userCode });
    }

    async #findBy(where: Record<string, string>): Promise<AdapterPayload | undefined> {
      const row: DbOidcPayloadRow | undefined = await db('oidc_payloads')
        .select('payload', 'expires_at', 'consumed_at')
        .where({ model: this.name, ...where })
        .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', db.fn.now()))
        .first();
      if (!row) return undefined;
      return row.consumed_at ? { ...row.payload, consumed: Math.floor(new Date(row.consumed_at).getTime() / 1000) } : row.payload;
    }

    async destroy(id: string): Promise<void> {
      await db('oidc_payloads').where({ model: this.name, id }).delete();
    }

    async consume(id: string): Promise<void> {
      await db('oidc_payloads').where({ model: this.name, id }).update({ consumed_at: db.fn.now() });
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      // Every token and code of a grant goes, whatever its model.
      await db('oidc_payloads').where({ grant_id: grantId }).delete();
    }
  };
}

/** Deletes expired rows. Returns how many went. Run periodically by every node (cheap, idempotent). */
export async function deleteExpiredPayloads(db: Knex, batch = 5000): Promise<number> {
  const result = await db.raw(
    `delete from oidc_payloads where ctid in (
       select ctid from oidc_payloads where expires_at < now() limit ?)`, [batch]);
  return (result as { rowCount?: number }).rowCount ?? 0;
}
