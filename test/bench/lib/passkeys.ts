// Scenario 6's people: one per virtual user, each with one passkey registered through
// PasskeyStrategy against the bench database, as the security page or the enrolment step would
// register it (registration options, the soft authenticator's attestation, register()).
//
// Synced passkeys, as the platform authenticators most people sign in with make them (iCloud
// Keychain, Google Password Manager): flags BE and BS, signature counter always 0, amr "swk". A
// device-bound key (a security key, Windows Hello) costs OneID the same statement per sign-in
// (the counter and last use are written either way, passkey.strategy.ts #recordUse).
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { loadConfig } from '../../../src/config.ts';
import { createDb } from '../../../src/db/knex.ts';
import { createServices } from '../../../src/services.ts';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.ts';
import { passkeyToJSON, type PasskeyJSON } from './passkey-signin.ts';

export interface PasskeyUser {
  login: string;
  userId: string;
  passkey: PasskeyJSON;
}

export async function registerPasskeys(env: NodeJS.ProcessEnv, count: number): Promise<PasskeyUser[]> {
  const config = loadConfig(env);
  const handle = createDb(config);
  try {
    const { users, passkeys } = createServices(handle.db as Knex, config);
    const origin = new URL(config.issuer).origin;
    const out: PasskeyUser[] = [];
    for (let i = 0; i < count; i += 1) {
      const username = `bench.passkey${i}`;
      // No password: a person who signs in with a passkey only.
      const user = await users.createUser({ username, email: `${username}@bench.example`, name: `Bench Passkey ${i}` });
      const authenticator = new SoftAuthenticator({ origin, synced: true });
      const binding = randomBytes(16).toString('hex');
      const options = await passkeys.registrationOptions(binding, { id: user.id, username, displayName: user.displayName ?? null });
      const result = await passkeys.register(binding, user.id, authenticator.register(options), 'bench', { type: 'system', id: null });
      if (!result.ok) throw new Error(`passkey registration for ${username} refused: ${result.reason}`);
      out.push({ login: username, userId: user.id, passkey: passkeyToJSON(authenticator.credentials[0]!) });
    }
    return out;
  } finally {
    await handle.close();
  }
}
