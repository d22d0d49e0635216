import type { Knex } from 'knex';

// A request's writes to oidc_payloads in one statement and one transaction
// (src/oidc/request-writes.ts): the tokens and codes it consumes, the rows it deletes, then the
// rows it writes.
// A consume only takes a live row that nobody consumed yet; when any consume finds none (the
// same refresh token or code redeemed by a request running at the same moment), the function
// raises SQLSTATE OI001 and nothing of the request is written.
//
// `writes` is {"consume": [{model, id}], "destroy": [{model, id}], "upsert": [{model, id, payload,
// uid, grant_id, user_code, account_id, expires_at, consumed}]}, each row in one list at most; an
// upsert with consumed = true is written consumed (a row created and consumed by the same request).
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function oidc_apply_writes(writes jsonb) returns void language plpgsql as $$
    declare
      c record;
      taken integer;
    begin
      -- One primary-key statement per row (a request has a few): a join with the whole list could
      -- be planned, once per connection and while the table is still small, as a scan.
      for c in select * from jsonb_to_recordset(coalesce(writes->'consume', '[]'::jsonb)) as r(model text, id text) loop
        update oidc_payloads set consumed_at = now()
         where model = c.model and id = c.id and consumed_at is null and (expires_at is null or expires_at > now());
        get diagnostics taken = row_count;
        if taken = 0 then
          -- The message names the model only: a token's id is the token.
          raise exception 'oidc: a % to consume was already consumed or is gone', c.model using errcode = 'OI001';
        end if;
      end loop;
      for c in select * from jsonb_to_recordset(coalesce(writes->'destroy', '[]'::jsonb)) as r(model text, id text) loop
        delete from oidc_payloads where model = c.model and id = c.id;
      end loop;
      insert into oidc_payloads (model, id, payload, uid, grant_id, user_code, account_id, expires_at, consumed_at)
      select u.model, u.id, u.payload, u.uid, u.grant_id, u.user_code, u.account_id, u.expires_at,
             case when u.consumed then now() end
        from jsonb_to_recordset(coalesce(writes->'upsert', '[]'::jsonb)) as u(model text, id text, payload jsonb, uid text,
             grant_id text, user_code text, account_id text, expires_at timestamptz, consumed boolean)
      on conflict (model, id) do update set payload = excluded.payload, uid = excluded.uid, grant_id = excluded.grant_id,
        user_code = excluded.user_code, account_id = excluded.account_id, expires_at = excluded.expires_at,
        consumed_at = coalesce(excluded.consumed_at, oidc_payloads.consumed_at);
    end $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop function oidc_apply_writes(jsonb)');
}
