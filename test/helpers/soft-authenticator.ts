// A software WebAuthn authenticator for tests and the bench: what a browser and a passkey
// provider hand to OneID, without a browser. ES256 keys from node:crypto; registration answers
// with attestation 'none'; assertions carry the flags (UP, UV, BE, BS) and signature counter a
// test asks for. Everything it makes is the JSON @simplewebauthn/browser would POST.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import type {
  AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON,
} from '@simplewebauthn/server';

export interface SoftCredential {
  /** base64url credential id. */
  id: string;
  rpId: string;
  /** base64url user handle given at registration (options.user.id). */
  userHandle: string;
  privateKey: KeyObject;
  /** Synced passkey (flag BE): its counter stays 0, as with most passkey providers. */
  backupEligible: boolean;
  counter: number;
}

export interface SoftAuthenticatorOptions {
  /** The page origin the "browser" reports in clientDataJSON. */
  origin: string;
  /** A synced (backup-eligible, backed-up) passkey provider rather than a device-bound key. Default false. */
  synced?: boolean;
  /** Whether the authenticator verifies its user (flag UV). Default true. */
  userVerification?: boolean;
  aaguid?: Uint8Array;
}

/** What a single ceremony may change, for tests of refusals. */
export interface CeremonyOverrides {
  origin?: string;
  /** The RP ID whose hash goes into authenticatorData (default: the options' RP ID). */
  rpId?: string;
  /** clientDataJSON.type (default webauthn.create / webauthn.get). */
  type?: string;
  /** The challenge echoed back (default: the options' challenge). */
  challenge?: string;
  userPresent?: boolean;
  userVerified?: boolean;
  /** Signature counter to report (default: the credential's next count, 0 for a synced key). */
  counter?: number;
  /** Assertion: which of this authenticator's credentials answers (default: the first allowed or the only one for the RP). */
  credentialId?: string;
  /** Assertion: the user handle to send (default: the credential's; null to send none). */
  userHandle?: string | null;
  /** Assertion: sign with this key instead of the credential's (a forged signature). */
  signWith?: KeyObject;
}

const b64u = (bytes: Uint8Array | Buffer): string => Buffer.from(bytes).toString('base64url');
const sha256 = (data: Uint8Array | string): Buffer => createHash('sha256').update(data).digest();

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;

/** COSE_Key (RFC 9053) of an EC2 P-256 public key for ES256 (-7). */
function coseKeyOf(publicKey: KeyObject): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  return isoCBOR.encode(new Map<number, number | Uint8Array>([
    [1, 2], // kty: EC2
    [3, -7], // alg: ES256
    [-1, 1], // crv: P-256
    [-2, Buffer.from(jwk.x!, 'base64url')],
    [-3, Buffer.from(jwk.y!, 'base64url')],
  ]));
}

function counterBytes(counter: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(counter >>> 0);
  return b;
}

export class SoftAuthenticator {
  readonly credentials: SoftCredential[] = [];
  readonly #options: Required<Omit<SoftAuthenticatorOptions, 'aaguid'>> & { aaguid: Uint8Array };

  constructor(options: SoftAuthenticatorOptions) {
    this.#options = {
      origin: options.origin,
      synced: options.synced ?? false,
      userVerification: options.userVerification ?? true,
      aaguid: options.aaguid ?? new Uint8Array(16),
    };
  }

  #flags(o: CeremonyOverrides, backupEligible: boolean, attested: boolean): number {
    let flags = 0;
    if (o.userPresent ?? true) flags |= FLAG_UP;
    if (o.userVerified ?? this.#options.userVerification) flags |= FLAG_UV;
    if (backupEligible) flags |= FLAG_BE | FLAG_BS;
    if (attested) flags |= FLAG_AT;
    return flags;
  }

  #clientData(type: string, challenge: string, o: CeremonyOverrides): Buffer {
    return Buffer.from(JSON.stringify({ type: o.type ?? type, challenge: o.challenge ?? challenge, origin: o.origin ?? this.#options.origin, crossOrigin: false }));
  }

  /** navigator.credentials.create(): a new ES256 credential, kept here for later assertions. */
  register(options: PublicKeyCredentialCreationOptionsJSON, o: CeremonyOverrides = {}): RegistrationResponseJSON {
    const rpId = options.rp.id ?? new URL(this.#options.origin).hostname;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const id = randomBytes(16);
    const backupEligible = this.#options.synced;
    const counter = o.counter ?? 0;
    const credIdLength = Buffer.alloc(2);
    credIdLength.writeUInt16BE(id.length);
    const authData = Buffer.concat([
      sha256(o.rpId ?? rpId), Buffer.of(this.#flags(o, backupEligible, true)), counterBytes(counter),
      Buffer.from(this.#options.aaguid), credIdLength, id, Buffer.from(coseKeyOf(publicKey)),
    ]);
    const attestationObject = isoCBOR.encode(new Map<string, Parameters<typeof isoCBOR.encode>[0]>([
      ['fmt', 'none'], ['attStmt', new Map<string, string>()], ['authData', Uint8Array.from(authData)],
    ]));
    const clientDataJSON = this.#clientData('webauthn.create', options.challenge, o);
    this.credentials.push({ id: b64u(id), rpId, userHandle: options.user.id, privateKey, backupEligible, counter });
    return {
      id: b64u(id),
      rawId: b64u(id),
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64u(clientDataJSON),
        attestationObject: b64u(attestationObject),
        transports: backupEligible ? ['hybrid', 'internal'] : ['usb'],
        publicKeyAlgorithm: -7,
      },
    };
  }

  /** navigator.credentials.get(): an assertion by one of this authenticator's credentials. */
  authenticate(options: PublicKeyCredentialRequestOptionsJSON, o: CeremonyOverrides = {}): AuthenticationResponseJSON {
    const rpId = options.rpId ?? new URL(this.#options.origin).hostname;
    const allowed = (options.allowCredentials ?? []).map((c) => c.id);
    const credential = this.credentials.find((c) => (o.credentialId ? c.id === o.credentialId : (allowed.length ? allowed.includes(c.id) : c.rpId === rpId)));
    if (!credential) throw new Error('the soft authenticator holds no credential for these options');
    if (o.counter !== undefined) credential.counter = o.counter;
    else if (!credential.backupEligible) credential.counter += 1;
    const authData = Buffer.concat([sha256(o.rpId ?? rpId), Buffer.of(this.#flags(o, credential.backupEligible, false)), counterBytes(credential.counter)]);
    const clientDataJSON = this.#clientData('webauthn.get', options.challenge, o);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), o.signWith ?? credential.privateKey);
    const userHandle = o.userHandle === undefined ? credential.userHandle : o.userHandle;
    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64u(clientDataJSON),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        ...(userHandle === null ? {} : { userHandle }),
      },
    };
  }
}
