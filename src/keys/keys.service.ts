// Signing keys: generated on first start, encrypted at rest, rotated with `oneid keys rotate`.
// JWKS publishes next + current + previous, so a rotation never breaks a client or a node
// that has not reloaded yet: tokens signed with the new key verify against the old JWKS too.
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { MasterKey } from './master-key.ts';
import { newSecret } from '../shared/ids.ts';

export const SIGNING_ALGS = ['ES256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
type KeyState = 'next' | 'current' | 'previous' | 'retired';

interface DbSigningKeyRow {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  public_jwk: JWK;
  private_jwk_encrypted: string;
  created_at: Date;
}

export interface KeySummary { kid: string; alg: string; state: KeyState; createdAt: string }

async function newKeyRow(alg: SigningAlg, state: KeyState, master: MasterKey): Promise<DbSigningKeyRow> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const kid = newSecret(12);
  const priv = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const pub = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, state, public_jwk: pub, private_jwk_encrypted: master.encrypt(JSON.stringify(priv)), created_at: new Date() };
}

const insertRows = (db: Knex | Knex.Transaction, rows: DbSigningKeyRow[]) =>
  db('signing_keys').insert(rows.map((r) => ({ ...r, public_jwk: JSON.stringify(r.public_jwk) })));

/** Creates the first keys (current + next for each algorithm) unless they exist. Safe to race. */
export async function ensureSigningKeys(db: Knex, master: MasterKey): Promise<void> {
  await db.transaction(async (trx) => {
    // Serialise first-start key creation across nodes.
    await trx.raw('select pg_advisory_xact_lock(727001)');
    for (const alg of SIGNING_ALGS) {
      const existing = await trx('signing_keys').where({ alg }).whereIn('state', ['current', 'next']).select('state');
      const states = new Set(existing.map((r: { state: KeyState }) => r.state));
      const rows: DbSigningKeyRow[] = [];
      if (!states.has('current')) rows.push(await newKeyRow(alg, 'current', master));
      if (!states.has('next')) rows.push(await newKeyRow(alg, 'next', master));
      if (rows.length) await insertRows(trx, rows);
    }
    const cookie = await trx('cookie_keys').count<{ count: number }[]>({ count: '*' });
    if (Number(cookie[0]?.count ?? 0) === 0) {
      await trx('cookie_keys').insert({ key_encrypted: master.encrypt(randomBytes(32).toString('base64url')) });
    }
  });
}

/** previous -> retired, current -> previous, next -> current, and a fresh next, per algorithm. */
export async function rotateSigningKeys(db: Knex, master: MasterKey): Promise<KeySummary[]> {
  await db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(727001)');
    const now = trx.fn.now();
    for (const alg of SIGNING_ALGS) {
      await trx('signing_keys').where({ alg, state: 'previous' }).update({ state: 'retired', state_changed_at: now });
      await trx('signing_keys').where({ alg, state: 'current' }).update({ state: 'previous', state_changed_at: now });
      await trx('signing_keys').where({ alg, state: 'next' }).update({ state: 'current', state_changed_at: now });
      const hasCurrent = await trx('signing_keys').where({ alg, state: 'current' }).first();
      const rows = [await newKeyRow(alg, 'next', master)];
      if (!hasCurrent) rows.push(await newKeyRow(alg, 'current', master));
      await insertRows(trx, rows);
    }
    // Cookie keys: the newest signs, older ones still verify (keep the last three).
    await trx('cookie_keys').insert({ key_encrypted: master.encrypt(randomBytes(32).toString('base64url')) });
    const keep = await trx('cookie_keys').orderBy('id', 'desc').limit(3).pluck('id');
    await trx('cookie_keys').whereNotIn('id', keep).delete();
  });
  return listSigningKeys(db);
}

export async function listSigningKeys(db: Knex): Promise<KeySummary[]> {
  const rows: DbSigningKeyRow[] = await db('signing_keys').whereNot({ state: 'retired' }).orderBy('created_at', 'desc');
  return rows.map((r) => ({ kid: r.kid, alg: r.alg, state: r.state, createdAt: new Date(r.created_at).toISOString() }));
}

const STATE_ORDER: Record<KeyState, number> = { current: 0, next: 1, previous: 2, retired: 3 };

/**
 * The private JWKS handed to oidc-provider. Order matters: the provider signs with the first
 * key of a given alg, so current keys come first; ES256 first makes it the default id_token alg.
 */
export async function loadProviderJwks(db: Knex, master: MasterKey): Promise<{ keys: JWK[] }> {
  const rows: DbSigningKeyRow[] = await db('signing_keys').whereIn('state', ['current', 'next', 'previous']);
  rows.sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || SIGNING_ALGS.indexOf(a.alg) - SIGNING_ALGS.indexOf(b.alg));
  return { keys: rows.map((r) => JSON.parse(master.decrypt(r.private_jwk_encrypted)) as JWK) };
}

/** Cookie signing keys, newest first (the first one signs). */
export async function loadCookieKeys(db: Knex, master: MasterKey): Promise<string[]> {
  const rows: { key_encrypted: string }[] = await db('cookie_keys').orderBy('id', 'desc');
  return rows.map((r) => master.decrypt(r.key_encrypted));
}
