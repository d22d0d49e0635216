import knexFactory from 'knex';
import { run, statement } from '../src/db/prepared.ts';
const db = knexFactory({ client: 'pg', connection: process.env.URL, pool: { min: 1, max: 1 } });
const q = async (sql: string, b: unknown[] = []) => (await db.raw(sql, b as never)).rows;
const src = await import('../src/oidc/adapter.ts');
void src;
const user = (await q("select id, username, email from users where status = 'active' limit 1"))[0];
const app = (await q("select id, client_id from apps limit 1"))[0];
const tok = (await q("select model, id from oidc_payloads where model in ('AccessToken','RefreshToken','Session') limit 1"))[0] ?? { model: 'AccessToken', id: 'x' };
const { entitlementsForBench } = {} as never;
void entitlementsForBench;
// Re-declare the hot statements' SQL by importing modules that declare them, then call via their exported functions.
const ent = await import('../src/access/entitlements.ts');
const users = await import('../src/directory/users.repo.ts');
const apps = await import('../src/apps/apps.repo.ts');
for (let i = 0; i < 8; i += 1) {
  await ent.entitlements(db, user.id, app.id);
  await ent.activeUserWithEntitlements(db, user.id, app.id);
  await users.findUserById(db, user.id);
  await users.findUserByLoginWithPassword(db, user.username);
  if ('findAppByClientId' in apps) await (apps as any).findAppByClientId(db, app.client_id);
}
const adapterMod = await import('../src/oidc/adapter.ts');
const Adapter = adapterMod.createAdapterFactory(db as never, { get: async () => undefined } as never);
const toks = await q("select model, id from oidc_payloads where model in ('AccessToken','RefreshToken','AuthorizationCode')");
const sess = await q("select model, id, uid from oidc_payloads where model = 'Session'");
for (let i = 0; i < 8; i += 1) {
  for (const t of toks) { try { await new Adapter(t.model).find(t.id); } catch (e) { console.log(String(e)); } }
  for (const t of sess) { await new Adapter('Session').find(t.id); await new Adapter('Session').findByUid(t.uid); }
}
console.table(await q('select name, generic_plans, custom_plans from pg_prepared_statements order by name'));
await db.destroy();
