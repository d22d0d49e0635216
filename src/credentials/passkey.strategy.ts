// Passkeys (WebAuthn): registration and sign-in, one `credentials` row (type 'webauthn') per
// passkey. Challenges live in webauthn_challenges, each accepted once and only from the flow or
// session it was issued to. Signatures, origin and RP ID are checked by @simplewebauthn/server;
// this module decides which person a credential names, the signature counter policy and what the
// sign-in proves (amr).
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON, type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { recordAudit, recordAuditNow, type Actor } from '../audit/audit.service.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { findUserById, isUuid } from '../directory/users.repo.ts';
import {
  deleteCredentialById, findCredentialByExternalIdWithOwner, findCredentialById, findCredentialsOfUser, hasCredentialOfUser, insertCredential,
  updateCredentialById, type Credential,
} from './credentials.repo.ts';
import { nowSeconds, type CredentialStrategy, type Proof, type Verified } from './methods.ts';
import { consumeWebauthnChallenge, insertWebauthnChallenge, type ChallengePurpose, type IssuedChallenge } from './webauthn-challenges.repo.ts';

export interface PasskeyConfig { rpId: string; rpName: string; origin: string; userVerification: 'required' | 'preferred' }
export interface PasskeyInfo { id: string; name: string; createdAt: Date; lastUsedAt: Date | null; synced: boolean }

/** What a passkey's credentials row keeps in `data`. */
export interface PasskeyData {
  /** COSE public key, base64url. */
  publicKey: string;
  counter: number;
  transports: string[];
  backedUp: boolean;
  /** Fixed for the life of a credential: a synced (multi-device) passkey. */
  backupEligible: boolean;
  deviceType: 'singleDevice' | 'multiDevice';
  aaguid?: string;
}

/** RP ID and origin from OneID's issuer URL: a passkey is bound to the issuer's host. */
export function passkeyConfigFromIssuer(issuer: string, rpName = 'OneID', userVerification: PasskeyConfig['userVerification'] = 'preferred'): PasskeyConfig {
  const url = new URL(issuer);
  return { rpId: url.hostname, rpName, origin: url.origin, userVerification };
}

export const CHALLENGE_TTL_SECONDS = 5 * 60;
export const PASSKEY_NAME_MAX = 64;
const TYPE = 'webauthn';
// Bounds on what a browser sends, far above real values (a credential id is at most 1023 bytes;
// attestation 'none' keeps the attestation object small), so that nothing oversized is parsed.
const MAX_ID = 1400;
const MAX_FIELD = 16_384;
const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

/** Trimmed, without control characters, at most PASSKEY_NAME_MAX characters; '' when nothing is left. */
export function cleanPasskeyName(name: unknown): string {
  if (typeof name !== 'string') return '';
  // eslint-disable-next-line no-control-regex
  return [...name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ').trim()].slice(0, PASSKEY_NAME_MAX).join('').trim();
}

const defaultName = (): string => `Passkey ${new Date().toISOString().slice(0, 10)}`;

/** The user handle: the 16 bytes of the person's uuid, so that a discoverable sign-in names them. */
export const userHandleOf = (userId: string): Uint8Array<ArrayBuffer> => Uint8Array.from(Buffer.from(userId.replace(/-/g, ''), 'hex'));

function userIdOfHandle(handle: string): string | undefined {
  const bytes = Buffer.from(handle, 'base64url');
  if (bytes.length !== 16) return undefined;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isB64u = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max && /^[A-Za-z0-9_-]+={0,2}$/.test(v);

interface ClientData { type: string; challenge: string; origin: string }

/** The parts of clientDataJSON read before verification (the challenge names the row to consume). */
function clientDataOf(encoded: string): ClientData | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    if (!isObject(parsed)) return undefined;
    const { type, challenge, origin } = parsed;
    if (typeof type !== 'string' || typeof origin !== 'string' || !isB64u(challenge, 200)) return undefined;
    return { type, challenge, origin };
  } catch {
    return undefined;
  }
}

function registrationResponseOf(response: unknown): { json: RegistrationResponseJSON; client: ClientData } | undefined {
  if (!isObject(response) || !isObject(response.response) || response.type !== 'public-key') return undefined;
  const r = response.response;
  if (!isB64u(response.id, MAX_ID) || response.rawId !== response.id) return undefined;
  if (!isB64u(r.clientDataJSON, MAX_FIELD) || !isB64u(r.attestationObject, MAX_FIELD)) return undefined;
  const client = clientDataOf(r.clientDataJSON);
  if (!client) return undefined;
  const transports = Array.isArray(r.transports) ? r.transports.filter((t): t is string => typeof t === 'string' && TRANSPORTS.has(t)) : [];
  return {
    client,
    json: {
      id: response.id, rawId: response.id, type: 'public-key',
      response: { clientDataJSON: r.clientDataJSON, attestationObject: r.attestationObject, transports },
      clientExtensionResults: isObject(response.clientExtensionResults) ? response.clientExtensionResults : {},
    },
  };
}

function authenticationResponseOf(response: unknown): { json: AuthenticationResponseJSON; client: ClientData } | undefined {
  if (!isObject(response) || !isObject(response.response) || response.type !== 'public-key') return undefined;
  const r = response.response;
  if (!isB64u(response.id, MAX_ID) || response.rawId !== response.id) return undefined;
  if (!isB64u(r.clientDataJSON, MAX_FIELD) || !isB64u(r.authenticatorData, MAX_FIELD) || !isB64u(r.signature, 1024)) return undefined;
  // Some authenticators send an empty user handle for a non-discoverable credential.
  const userHandle = r.userHandle === undefined || r.userHandle === null || r.userHandle === '' ? undefined : r.userHandle;
  if (userHandle !== undefined && !isB64u(userHandle, 100)) return undefined;
  const client = clientDataOf(r.clientDataJSON);
  if (!client) return undefined;
  return {
    client,
    json: {
      id: response.id, rawId: response.id, type: 'public-key',
      response: { clientDataJSON: r.clientDataJSON, authenticatorData: r.authenticatorData, signature: r.signature, ...(userHandle ? { userHandle } : {}) },
      clientExtensionResults: isObject(response.clientExtensionResults) ? response.clientExtensionResults : {},
    },
  };
}

/** A stable reason for what @simplewebauthn/server refused (its errors are messages, not codes). */
function reasonOfError(err: unknown): string {
  const e = err as { name?: string; message?: string };
  const message = e?.message ?? '';
  if (e?.name === 'UnexpectedRPIDHash' || /RP ID/i.test(message)) return 'rp_id_mismatch';
  if (/origin/i.test(message)) return 'origin_mismatch';
  if (/User verification/i.test(message)) return 'user_not_verified';
  if (/User (presence|not present)/i.test(message)) return 'user_not_present';
  if (/alg/i.test(message)) return 'unsupported_algorithm';
  return 'invalid_response';
}

const amrOf = (data: PasskeyData, userVerified: boolean): string[] => [data.backupEligible ? 'swk' : 'hwk', ...(userVerified ? ['user'] : [])];

const toInfo = (c: Credential<PasskeyData>): PasskeyInfo => ({
  id: c.id, name: c.name ?? 'Passkey', createdAt: c.createdAt, lastUsedAt: c.lastUsedAt, synced: Boolean(c.data.backupEligible),
});

export class PasskeyStrategy implements CredentialStrategy {
  readonly method = 'passkey';
  readonly #db: Knex;
  readonly #config: PasskeyConfig;

  constructor(db: Knex, config: PasskeyConfig) {
    this.#db = db;
    this.#config = config;
  }

  /** Whether passkeys must verify their person (an administrator's setting) or only should. */
  get userVerification(): PasskeyConfig['userVerification'] {
    return this.#config.userVerification;
  }

  isEnrolled(userId: string): Promise<boolean> {
    return hasCredentialOfUser(this.#db, userId, TYPE);
  }

  async #issue(binding: string, purpose: ChallengePurpose, userId: string | null): Promise<Uint8Array<ArrayBuffer>> {
    const bytes = randomBytes(32);
    const challenge: IssuedChallenge = { challenge: bytes.toString('base64url'), binding, purpose, userId };
    await insertWebauthnChallenge(this.#db, challenge, CHALLENGE_TTL_SECONDS);
    return Uint8Array.from(bytes);
  }

  /**
   * Options for navigator.credentials.create(): a discoverable credential (so that the person can
   * later sign in without typing a name), none of the person's existing passkeys again.
   */
  async registrationOptions(binding: string, user: { id: string; username: string; displayName: string | null }): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await findCredentialsOfUser<PasskeyData>(this.#db, user.id, TYPE);
    const challenge = await this.#issue(binding, 'register', user.id);
    return generateRegistrationOptions({
      rpName: this.#config.rpName,
      rpID: this.#config.rpId,
      userName: user.username,
      userDisplayName: user.displayName || user.username,
      userID: userHandleOf(user.id),
      challenge,
      timeout: CHALLENGE_TTL_SECONDS * 1000,
      attestationType: 'none',
      excludeCredentials: existing.filter((c) => c.externalId).map((c) => ({
        id: c.externalId!, transports: c.data.transports,
      })),
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: this.#config.userVerification },
    });
  }

  /** Registers a passkey; a refusal (replayed challenge, wrong origin, ...) stores nothing and is audited. */
  async register(binding: string, userId: string, response: unknown, name: string | undefined, actor: Actor): Promise<{ ok: true; passkey: PasskeyInfo; proof: Proof } | { ok: false; reason: string }> {
    const result = await this.#register(binding, userId, response, name, actor);
    if (!result.ok) {
      await recordAuditNow(this.#db, actor, { action: 'passkey.registration_refused', targetType: 'user', targetId: userId, changes: { reason: result.reason } });
    }
    return result;
  }

  async #register(binding: string, userId: string, response: unknown, name: string | undefined, actor: Actor): Promise<{ ok: true; passkey: PasskeyInfo; proof: Proof } | { ok: false; reason: string }> {
    const parsed = registrationResponseOf(response);
    if (!parsed) return { ok: false, reason: 'malformed_response' };
    if (parsed.client.type !== 'webauthn.create') return { ok: false, reason: 'invalid_response' };
    const consumed = await consumeWebauthnChallenge(this.#db, parsed.client.challenge, binding, 'register');
    if (!consumed.ok) return { ok: false, reason: consumed.reason };
    if (consumed.challenge.userId !== userId) return { ok: false, reason: 'challenge_other_person' };
    if (!(await this.#isActive(userId))) return { ok: false, reason: 'user_inactive' };

    let info;
    try {
      const result = await verifyRegistrationResponse({
        response: parsed.json,
        expectedChallenge: consumed.challenge.challenge,
        expectedOrigin: this.#config.origin,
        expectedRPID: this.#config.rpId,
        requireUserVerification: this.#config.userVerification === 'required',
      });
      if (!result.verified) return { ok: false, reason: 'invalid_response' };
      info = result.registrationInfo;
    } catch (err) {
      return { ok: false, reason: reasonOfError(err) };
    }

    const data: PasskeyData = {
      publicKey: Buffer.from(info.credential.publicKey).toString('base64url'),
      counter: info.credential.counter,
      transports: parsed.json.response.transports ?? [],
      backedUp: info.credentialBackedUp,
      backupEligible: info.credentialDeviceType === 'multiDevice',
      deviceType: info.credentialDeviceType,
      ...(info.aaguid && info.aaguid !== '00000000-0000-0000-0000-000000000000' ? { aaguid: info.aaguid } : {}),
    };
    const passkeyName = cleanPasskeyName(name) || defaultName();
    try {
      const row = await this.#db.transaction(async (trx) => {
        const inserted = await insertCredential<PasskeyData>(trx, { userId, type: TYPE, externalId: info.credential.id, name: passkeyName, data: { ...data } });
        await recordAudit(trx, actor, {
          action: 'passkey.registered', targetType: 'user', targetId: userId,
          changes: { keyId: inserted.id, name: passkeyName, synced: data.backupEligible, userVerified: info.userVerified, ...(data.aaguid ? { aaguid: data.aaguid } : {}) },
        });
        return inserted;
      });
      return {
        ok: true,
        passkey: toInfo(row),
        proof: { method: 'passkey', at: nowSeconds(), amr: amrOf(data, info.userVerified), credentialId: row.id, userVerified: info.userVerified },
      };
    } catch (err) {
      // The same authenticator registered twice (excludeCredentials normally prevents it).
      if (isUniqueViolation(err)) return { ok: false, reason: 'already_registered' };
      throw err;
    }
  }

  /**
   * Options for navigator.credentials.get(). With `userId` (username-first, step-up) the browser
   * is offered that person's passkeys and the challenge is tied to them; without, any discoverable
   * passkey of this RP may answer (the passkey button and autofill).
   */
  async authenticationOptions(binding: string, userId?: string, userVerification?: 'required' | 'preferred'): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const known = userId && isUuid(userId) ? await findCredentialsOfUser<PasskeyData>(this.#db, userId, TYPE) : [];
    const challenge = await this.#issue(binding, 'authenticate', userId && isUuid(userId) ? userId : null);
    return generateAuthenticationOptions({
      rpID: this.#config.rpId,
      challenge,
      timeout: CHALLENGE_TTL_SECONDS * 1000,
      userVerification: userVerification ?? this.#config.userVerification,
      allowCredentials: known.filter((c) => c.externalId).map((c) => ({ id: c.externalId!, transports: c.data.transports })),
    });
  }

  /**
   * Checks an assertion. The person is the credential's owner; without `expectedUserId` (and a
   * challenge issued for nobody in particular) the user handle must name that owner too.
   * Refusals are values, never exceptions: reasons are for the audit log.
   */
  async authenticate(binding: string, response: unknown, expectedUserId?: string): Promise<Verified> {
    const parsed = authenticationResponseOf(response);
    if (!parsed) return { ok: false, reason: 'malformed_response' };
    if (parsed.client.type !== 'webauthn.get') return { ok: false, reason: 'invalid_response' };
    const consumed = await consumeWebauthnChallenge(this.#db, parsed.client.challenge, binding, 'authenticate');
    if (!consumed.ok) return { ok: false, reason: consumed.reason };

    const found = await findCredentialByExternalIdWithOwner<PasskeyData>(this.#db, TYPE, parsed.json.id);
    if (!found) return { ok: false, reason: 'unknown_credential' };
    const { credential, ownerStatus: status } = found;
    const owner = credential.userId;
    const expected = [expectedUserId, consumed.challenge.userId ?? undefined].filter((v): v is string => Boolean(v));
    if (expected.some((id) => id.toLowerCase() !== owner)) return { ok: false, reason: 'other_person', userId: owner };
    const handle = parsed.json.response.userHandle;
    if (handle !== undefined ? userIdOfHandle(handle) !== owner : expected.length === 0) {
      return { ok: false, reason: 'user_handle_mismatch', userId: owner };
    }
    if (status !== 'active') return { ok: false, reason: 'user_inactive', userId: owner };

    const data = credential.data;
    let result;
    try {
      result = await verifyAuthenticationResponse({
        response: parsed.json,
        expectedChallenge: consumed.challenge.challenge,
        expectedOrigin: this.#config.origin,
        expectedRPID: this.#config.rpId,
        requireUserVerification: this.#config.userVerification === 'required',
        // Counter 0 here turns the library's own counter check off: it runs before the signature
        // is checked, and OneID's check below must only judge (and audit) signed assertions.
        credential: { id: credential.externalId!, publicKey: Uint8Array.from(Buffer.from(data.publicKey, 'base64url')), counter: 0, transports: data.transports },
      });
    } catch (err) {
      return { ok: false, reason: reasonOfError(err), userId: owner };
    }
    if (!result.verified) return { ok: false, reason: 'bad_signature', userId: owner };
    const { newCounter, userVerified, credentialBackedUp } = result.authenticationInfo;

    // A device-bound key counts its signatures: a count that does not go up means a copy of the
    // key signs elsewhere. A synced passkey lives on several devices with no shared count (most
    // send 0 always), so its count proves nothing and is only kept at its highest.
    const regressed = !data.backupEligible && data.counter > 0 && newCounter <= data.counter;
    const updated = regressed ? 0 : await this.#recordUse(credential.id, newCounter, credentialBackedUp);
    if (!updated) {
      await recordAuditNow(this.#db, { type: 'anonymous', id: null }, {
        action: 'passkey.counter_regressed', targetType: 'user', targetId: owner,
        changes: { keyId: credential.id, storedCounter: data.counter, presentedCounter: newCounter },
      });
      return { ok: false, reason: 'counter_regressed', userId: owner };
    }
    return {
      ok: true,
      userId: owner,
      proof: { method: 'passkey', at: nowSeconds(), amr: amrOf(data, userVerified), credentialId: credential.id, userVerified },
    };
  }

  /**
   * Stores the new count and the time of use, in one statement that re-checks the count: of two
   * assertions with the same count checked at once on two nodes, only one is accepted. Returns
   * the rows updated (0: the count did not go up).
   */
  async #recordUse(id: string, counter: number, backedUp: boolean): Promise<number> {
    const result = await this.#db.raw(
      `update credentials
          set data = data || jsonb_build_object('counter', greatest((data->>'counter')::bigint, ?::bigint), 'backedUp', ?::boolean),
              last_used_at = now(), updated_at = now()
        where id = ? and type = 'webauthn'
          and ((data->>'backupEligible')::boolean or (data->>'counter')::bigint = 0 or ?::bigint > (data->>'counter')::bigint)`,
      [counter, backedUp, id, counter],
    );
    return Number(result.rowCount ?? 0);
  }

  async #isActive(userId: string): Promise<boolean> {
    return (await findUserById(this.#db, userId))?.status === 'active';
  }

  async list(userId: string): Promise<PasskeyInfo[]> {
    return (await findCredentialsOfUser<PasskeyData>(this.#db, userId, TYPE)).map(toInfo);
  }

  /** Renames one of the person's passkeys; false when it is not theirs or the name is empty. */
  async rename(userId: string, id: string, name: string, actor: Actor): Promise<boolean> {
    const clean = cleanPasskeyName(name);
    if (!clean) return false;
    return this.#db.transaction(async (trx) => {
      const before = await findCredentialById(trx, id);
      if (!before || before.userId !== userId || before.type !== TYPE) return false;
      const updated = await updateCredentialById(trx, id, { name: clean }, { userId, type: TYPE });
      if (!updated) return false;
      await recordAudit(trx, actor, {
        action: 'passkey.renamed', targetType: 'user', targetId: userId,
        changes: { keyId: id, name: clean }, before: { name: before.name },
      });
      return true;
    });
  }

  /** Removes one of the person's passkeys; false when it is not theirs. */
  async remove(userId: string, id: string, actor: Actor): Promise<boolean> {
    return this.#db.transaction(async (trx) => {
      const removed = await deleteCredentialById(trx, id, { userId, type: TYPE });
      if (!removed) return false;
      await recordAudit(trx, actor, {
        action: 'passkey.removed', targetType: 'user', targetId: userId,
        changes: { keyId: id, name: removed.name },
      });
      return true;
    });
  }
}
