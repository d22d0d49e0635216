// The master key encrypts secrets OneID must use later (signing keys, cookie keys).
import fs from 'node:fs';
import path from 'node:path';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { AppError } from '../shared/errors.ts';

export class MasterKey {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('master key must be 32 bytes');
    this.#key = key;
  }

  static parse(text: string): MasterKey {
    const trimmed = text.trim();
    return new MasterKey(/^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64url'));
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  decrypt(box: string): string {
    const [version, iv, tag, ct] = box.split('.');
    if (version !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unknown ciphertext format');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }
}

/**
 * Resolves the master key: ONEID_MASTER_KEY when set, otherwise DATA_DIR/master.key,
 * generated once (outside production; config refuses production without the variable).
 */
export function resolveMasterKey(configured: string | undefined, dataDir: string): MasterKey {
  if (configured) return MasterKey.parse(configured);
  const file = path.join(dataDir, 'master.key');
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    fs.writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return MasterKey.parse(fs.readFileSync(file, 'utf8'));
}

const CHECK_KEY = 'master_key_check';
const CHECK_TEXT = 'oneid-master-key-check';

/** Refuses to run with a master key other than the one this database was set up with. */
export async function verifyMasterKey(db: Knex, key: MasterKey): Promise<void> {
  const row = await db('instance_settings').where({ key: CHECK_KEY }).first<{ value: string } | undefined>();
  if (!row) {
    await db('instance_settings').insert({ key: CHECK_KEY, value: key.encrypt(CHECK_TEXT) }).onConflict('key').ignore();
    return;
  }
  let ok = false;
  try { ok = key.decrypt(row.value) === CHECK_TEXT; } catch { ok = false; }
  if (!ok) {
    throw new AppError('failed_precondition', 'keys.master_key_mismatch',
      'ONEID_MASTER_KEY does not match the key this database was set up with');
  }
}
