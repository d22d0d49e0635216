// Signing keys: generated on first start, encrypted at rest, rotated with `oneid keys rotate` or
// in the admin console (POST /admin/api/v1/keys/rotate).
// JWKS publishes next + current + previous, so a rotation never breaks a client or a node
// that has not reloaded yet: tokens signed with the new key verify against the old JWKS too.
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { MasterKey } from './master-key.ts';
import { newSecret } from '../shared/ids.ts';
import { recordAudit, type Actor } from '../audit/audit.service.ts';
import { ensureSamlCertificates } from './saml-keys.ts';

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

/**
 * previous -> retired, current -> previous, next -> current, and a fresh next, per algorithm.
 * With `actor`, the rotation is recorded in the audit log in its transaction.
 */
export async function rotateSigningKeys(db: Knex, master: MasterKey, actor?: Actor): Promise<KeySummary[]> {
  await db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(727001)');
    const before = actor ? await kidsByState(trx) : undefined;
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
    if (actor) {
      const after = await kidsByState(trx);
      await recordAudit(trx, actor, {
        action: 'signing_keys.rotated', targetType: 'signing_key', targetId: after.current.ES256 ?? null,
        changes: { current: after.current, next: after.next, previous: after.previous },
        before: { current: before!.current, next: before!.next, previous: before!.previous },
      });
    }
  });
  return listSigningKeys(db);
}

type KidsByAlg = Partial<Record<SigningAlg, string>>;

/** The kid of each algorithm's current, next and previous key (for the audit record of a rotation). */
async function kidsByState(db: Knex.Transaction): Promise<Record<'current' | 'next' | 'previous', KidsByAlg>> {
  const rows: { kid: string; alg: SigningAlg; state: KeyState }[] = await db('signing_keys').whereIn('state', ['current', 'next', 'previous']).select('kid', 'alg', 'state');
  const out: Record<'current' | 'next' | 'previous', KidsByAlg> = { current: {}, next: {}, previous: {} };
  for (const r of rows) out[r.state as 'current' | 'next' | 'previous'][r.alg] = r.kid;
  return out;
}

/**
 * Signing keys for the admin API and the CLI: one rotation for both (audited, and the fresh next
 * RS256 key gets its SAML certificate at once, so metadata publishes it before it ever signs).
 * A running node keeps the keys it loaded at start (oidc-provider's JWKS, the SAML signing key,
 * the cookie keys): a rotation takes effect on each node when it restarts.
 */
export class SigningKeysService {
  constructor(private readonly db: Knex, private readonly master: MasterKey, private readonly samlSubject: string) {}

  list(): Promise<KeySummary[]> {
    return listSigningKeys(this.db);
  }

  async rotate(actor: Actor): Promise<KeySummary[]> {
    await rotateSigningKeys(this.db, this.master, actor);
    await ensureSamlCertificates(this.db, this.master, this.samlSubject);
    return listSigningKeys(this.db);
  }
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

/**
 * The current private key of `alg`, as a JWK with its kid: what signs OneID's own tokens outside
 * oidc-provider (back-channel logout tokens), from the same keys the published JWKS verifies.
 */
export async function loadCurrentSigningJwk(db: Knex, master: MasterKey, alg: 'RS256' | 'ES256'): Promise<{ kid: string; jwk: JWK }> {
  const row: Pick<DbSigningKeyRow, 'kid' | 'private_jwk_encrypted'> | undefined = await db('signing_keys').where({ alg, state: 'current' }).first('kid', 'private_jwk_encrypted');
  if (!row) throw new Error(`no current ${alg} signing key`);
  return { kid: row.kid, jwk: JSON.parse(master.decrypt(row.private_jwk_encrypted)) as JWK };
}

/** Cookie signing keys, newest first (the first one signs). */
export async function loadCookieKeys(db: Knex, master: MasterKey): Promise<string[]> {
  const rows: { key_encrypted: string }[] = await db('cookie_keys').orderBy('id', 'desc');
  return rows.map((r) => master.decrypt(r.key_encrypted));
}
