// Passkeys on real PostgreSQL, with a software authenticator standing in for the browser and the
// passkey provider: registration, discoverable and username-first sign-in, and every refusal a
// person or an attacker could meet (replays, another browser's challenge, another site, another
// person's key, a cloned key, a suspended account).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { createMigratedDatabase, type MigratedDatabase } from '../helpers/knex.ts';
import { SoftAuthenticator } from '../helpers/soft-authenticator.ts';
import { PasskeyStrategy, passkeyConfigFromIssuer, userHandleOf, type PasskeyConfig } from '../../src/credentials/passkey.strategy.ts';
import type { Actor } from '../../src/audit/audit.service.ts';

const ISSUER = 'https://id.example.com';
const ORIGIN = 'https://id.example.com';
const CONFIG: PasskeyConfig = passkeyConfigFromIssuer(ISSUER, 'OneID');

let m: MigratedDatabase;
let db: Knex;
let passkeys: PasskeyStrategy;

const alice = { id: randomUUID(), username: 'alice', displayName: 'Alice Liddell' };
const bob = { id: randomUUID(), username: 'bob', displayName: null };
const carol = { id: randomUUID(), username: 'carol', displayName: 'Carol' };
const actorOf = (userId: string): Actor => ({ type: 'user', id: userId, ip: '192.0.2.1', userAgent: 'jest' });
const binding = (): string => `flow-${randomUUID()}`;

beforeAll(async () => {
  m = await createMigratedDatabase('oneid_passkey');
  db = m.db;
  await db('users').insert([
    { id: alice.id, username: alice.username, display_name: alice.displayName },
    { id: bob.id, username: bob.username },
    { id: carol.id, username: carol.username },
  ]);
  passkeys = new PasskeyStrategy(db, CONFIG);
}, 60000);

afterAll(async () => {
  await m?.close();
});

const webauthnRows = (userId: string): Promise<{ id: string; external_id: string; name: string; data: Record<string, unknown>; last_used_at: Date | null }[]> =>
  db('credentials').where({ user_id: userId, type: 'webauthn' }).orderBy('created_at');
const auditOf = (action: string, userId: string): Promise<{ actor_type: string; actor_id: string | null; changes: Record<string, unknown>; before: Record<string, unknown> | null }[]> =>
  db('audit_events').where({ action, target_id: userId }).orderBy('seq');

/** Registers a new passkey for `user` on a fresh authenticator; returns both. */
async function enrol(user: { id: string; username: string; displayName: string | null }, options: { synced?: boolean; name?: string } = {}) {
  const authenticator = new SoftAuthenticator({ origin: ORIGIN, synced: options.synced ?? false });
  const flow = binding();
  const creation = await passkeys.registrationOptions(flow, user);
  const result = await passkeys.register(flow, user.id, authenticator.register(creation), options.name, actorOf(user.id));
  if (!result.ok) throw new Error(`registration refused: ${result.reason}`);
  return { authenticator, passkey: result.passkey, proof: result.proof };
}

describe('PasskeyStrategy registration', () => {
  it('offers a discoverable credential for the issuer host, named by the person\'s uuid, attestation none', async () => {
    const options = await passkeys.registrationOptions(binding(), alice);
    expect(options.rp).toEqual({ id: 'id.example.com', name: 'OneID' });
    expect(options.user.name).toBe('alice');
    expect(options.user.displayName).toBe('Alice Liddell');
    expect(Buffer.from(options.user.id, 'base64url')).toEqual(Buffer.from(userHandleOf(alice.id)));
    expect(Buffer.from(options.user.id, 'base64url').toString('hex')).toBe(alice.id.replace(/-/g, ''));
    expect(options.attestation).toBe('none');
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', requireResidentKey: true, userVerification: 'preferred' });
    expect(options.pubKeyCredParams.map((p) => p.alg)).toContain(-7);
    expect(options.timeout).toBe(300000);
    const stored = await db('webauthn_challenges').where({ challenge: options.challenge }).first();
    expect(stored).toMatchObject({ purpose: 'register', user_id: alice.id });
    const ttl = (new Date(stored.expires_at).getTime() - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(280);
    expect(ttl).toBeLessThanOrEqual(301);
  });

  it('stores a registered passkey with its key, counter and flags, audits it, and proves the method', async () => {
    const { authenticator, passkey, proof } = await enrol(alice, { name: '  Work laptop  ' });
    expect(passkey).toMatchObject({ name: 'Work laptop', synced: false, lastUsedAt: null });
    expect(proof).toMatchObject({ method: 'passkey', amr: ['hwk', 'user'], userVerified: true, credentialId: passkey.id });
    const [row] = (await webauthnRows(alice.id)).filter((r) => r.id === passkey.id);
    expect(row!.external_id).toBe(authenticator.credentials[0]!.id);
    expect(row!.data).toMatchObject({ counter: 0, backupEligible: false, backedUp: false, deviceType: 'singleDevice', transports: ['usb'] });
    expect(typeof row!.data.publicKey).toBe('string');
    expect(await passkeys.isEnrolled(alice.id)).toBe(true);
    const events = await auditOf('passkey.registered', alice.id);
    expect(events.at(-1)).toMatchObject({ actor_type: 'user', actor_id: alice.id, changes: { keyId: passkey.id, name: 'Work laptop', synced: false } });
  });

  it('names a passkey by date when no name is given, and excludes the person\'s passkeys from the next registration', async () => {
    const { passkey, authenticator } = await enrol(bob);
    expect(passkey.name).toMatch(/^Passkey \d{4}-\d{2}-\d{2}$/);
    const next = await passkeys.registrationOptions(binding(), bob);
    expect(next.excludeCredentials?.map((c) => c.id)).toEqual([authenticator.credentials[0]!.id]);
  });

  it('stores nothing when a registration is refused', async () => {
    const before = (await webauthnRows(carol.id)).length;
    const authenticator = new SoftAuthenticator({ origin: ORIGIN });
    const attempt = async (o: Parameters<SoftAuthenticator['register']>[1], as = carol.id, presentedBinding?: string) => {
      const flow = binding();
      const options = await passkeys.registrationOptions(flow, carol);
      return passkeys.register(presentedBinding ?? flow, as, authenticator.register(options, o), undefined, actorOf(carol.id));
    };
    expect(await attempt({ origin: 'https://evil.example' })).toEqual({ ok: false, reason: 'origin_mismatch' });
    expect(await attempt({ rpId: 'evil.example' })).toEqual({ ok: false, reason: 'rp_id_mismatch' });
    expect(await attempt({ type: 'webauthn.get' })).toEqual({ ok: false, reason: 'invalid_response' });
    expect(await attempt({ userPresent: false })).toEqual({ ok: false, reason: 'user_not_present' });
    expect(await attempt({}, bob.id)).toEqual({ ok: false, reason: 'challenge_other_person' });
    expect(await attempt({}, carol.id, binding())).toEqual({ ok: false, reason: 'challenge_other_binding' });
    expect(await passkeys.register(binding(), carol.id, { id: 'x' }, undefined, actorOf(carol.id))).toEqual({ ok: false, reason: 'malformed_response' });
    expect(await passkeys.register(binding(), carol.id, 'not json at all', undefined, actorOf(carol.id))).toEqual({ ok: false, reason: 'malformed_response' });
    // A tampered attestation object: the CBOR no longer decodes.
    const flow = binding();
    const response = authenticator.register(await passkeys.registrationOptions(flow, carol));
    response.response.attestationObject = response.response.attestationObject.slice(0, 40);
    expect(await passkeys.register(flow, carol.id, response, undefined, actorOf(carol.id))).toEqual({ ok: false, reason: 'invalid_response' });

    expect(await webauthnRows(carol.id)).toHaveLength(before);
    expect(await auditOf('passkey.registered', carol.id)).toHaveLength(0);
  });

  it('refuses a registration answer used twice (the challenge is gone after the first)', async () => {
    const user = { id: randomUUID(), username: 'dave', displayName: null };
    await db('users').insert({ id: user.id, username: user.username });
    const authenticator = new SoftAuthenticator({ origin: ORIGIN });
    const flow = binding();
    const response = authenticator.register(await passkeys.registrationOptions(flow, user));
    expect((await passkeys.register(flow, user.id, response, 'one', actorOf(user.id))).ok).toBe(true);
    expect(await passkeys.register(flow, user.id, response, 'two', actorOf(user.id))).toEqual({ ok: false, reason: 'challenge_unknown' });
    expect(await webauthnRows(user.id)).toHaveLength(1);
  });

  it('requires user verification at registration when configured to', async () => {
    const strict = new PasskeyStrategy(db, { ...CONFIG, userVerification: 'required' });
    const flow = binding();
    const options = await strict.registrationOptions(flow, carol);
    expect(options.authenticatorSelection?.userVerification).toBe('required');
    const noUv = new SoftAuthenticator({ origin: ORIGIN, userVerification: false });
    expect(await strict.register(flow, carol.id, noUv.register(options), undefined, actorOf(carol.id))).toEqual({ ok: false, reason: 'user_not_verified' });
  });
});

describe('PasskeyStrategy.authenticate', () => {
  it('signs a person in with a discoverable passkey: the user handle names them, the count and time of use are kept', async () => {
    const { authenticator, passkey } = await enrol(alice);
    const flow = binding();
    const options = await passkeys.authenticationOptions(flow);
    expect(options.rpId).toBe('id.example.com');
    expect(options.allowCredentials ?? []).toEqual([]);
    expect(options.userVerification).toBe('preferred');
    const result = await passkeys.authenticate(flow, authenticator.authenticate(options));
    expect(result).toEqual({
      ok: true, userId: alice.id,
      proof: { method: 'passkey', at: expect.any(Number), amr: ['hwk', 'user'], credentialId: passkey.id, userVerified: true },
    });
    const [row] = (await webauthnRows(alice.id)).filter((r) => r.id === passkey.id);
    expect(row!.data.counter).toBe(1);
    expect(row!.last_used_at).toBeInstanceOf(Date);
    expect((await passkeys.list(alice.id)).find((p) => p.id === passkey.id)?.lastUsedAt).toBeInstanceOf(Date);
  });

  it('signs in username-first: the browser is offered the person\'s passkeys and the key must be theirs', async () => {
    const { authenticator, passkey } = await enrol(carol);
    const flow = binding();
    const options = await passkeys.authenticationOptions(flow, carol.id, 'required');
    expect(options.userVerification).toBe('required');
    expect(options.allowCredentials?.map((c) => c.id)).toContain(authenticator.credentials[0]!.id);
    const result = await passkeys.authenticate(flow, authenticator.authenticate(options), carol.id);
    expect(result).toMatchObject({ ok: true, userId: carol.id, proof: { credentialId: passkey.id } });
  });

  it('refuses an assertion replayed, also when both copies arrive at once', async () => {
    const { authenticator } = await enrol(alice);
    const flow = binding();
    const response = authenticator.authenticate(await passkeys.authenticationOptions(flow));
    expect((await passkeys.authenticate(flow, response)).ok).toBe(true);
    expect(await passkeys.authenticate(flow, response)).toEqual({ ok: false, reason: 'challenge_unknown' });

    // Two nodes (two strategies, two pools) handed the same answer at the same moment.
    const other = await createPool();
    try {
      const flow2 = binding();
      const fresh = authenticator.authenticate(await passkeys.authenticationOptions(flow2));
      const results = await Promise.all([passkeys.authenticate(flow2, fresh), new PasskeyStrategy(other, CONFIG).authenticate(flow2, fresh)]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.find((r) => !r.ok)).toEqual({ ok: false, reason: 'challenge_unknown' });
    } finally {
      await other.destroy();
    }
  });

  it('refuses a challenge issued to another flow, which its own flow can still use', async () => {
    const { authenticator } = await enrol(alice);
    const mine = binding();
    const options = await passkeys.authenticationOptions(mine);
    const response = authenticator.authenticate(options);
    expect(await passkeys.authenticate(binding(), response)).toEqual({ ok: false, reason: 'challenge_other_binding' });
    expect((await passkeys.authenticate(mine, response)).ok).toBe(true);
  });

  it('refuses a registration challenge answered as a sign-in, and an expired challenge', async () => {
    const { authenticator } = await enrol(alice);
    const flow = binding();
    const creation = await passkeys.registrationOptions(flow, alice);
    const request = { challenge: creation.challenge, rpId: CONFIG.rpId, allowCredentials: [] };
    expect(await passkeys.authenticate(flow, authenticator.authenticate(request))).toEqual({ ok: false, reason: 'challenge_wrong_purpose' });

    const options = await passkeys.authenticationOptions(flow);
    await db('webauthn_challenges').where({ challenge: options.challenge }).update({ expires_at: new Date(Date.now() - 1000) });
    expect(await passkeys.authenticate(flow, authenticator.authenticate(options))).toEqual({ ok: false, reason: 'challenge_expired' });
    // Cleaned up when the next challenge is issued, by any flow.
    await passkeys.authenticationOptions(binding());
    expect(await db('webauthn_challenges').where({ challenge: options.challenge }).first()).toBeUndefined();
  });

  it('refuses an assertion made for another site: wrong origin, wrong RP ID, or a forged signature', async () => {
    const { authenticator } = await enrol(alice);
    const tryWith = async (o: Parameters<SoftAuthenticator['authenticate']>[1]) => {
      const flow = binding();
      return passkeys.authenticate(flow, authenticator.authenticate(await passkeys.authenticationOptions(flow), o));
    };
    expect(await tryWith({ origin: 'https://id.example.com.evil.example' })).toEqual({ ok: false, reason: 'origin_mismatch', userId: alice.id });
    expect(await tryWith({ origin: 'http://id.example.com' })).toEqual({ ok: false, reason: 'origin_mismatch', userId: alice.id });
    expect(await tryWith({ rpId: 'example.com' })).toEqual({ ok: false, reason: 'rp_id_mismatch', userId: alice.id });
    expect(await tryWith({ signWith: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })).toEqual({ ok: false, reason: 'bad_signature', userId: alice.id });
    expect(await tryWith({ userPresent: false })).toEqual({ ok: false, reason: 'user_not_present', userId: alice.id });
  });

  it('refuses another person\'s passkey where a person is expected, and a user handle that does not name the key\'s owner', async () => {
    const { authenticator: bobs } = await enrol(bob);
    // Step-up / username-first for alice, answered with bob's key.
    let flow = binding();
    let options = await passkeys.authenticationOptions(flow);
    expect(await passkeys.authenticate(flow, bobs.authenticate(options), alice.id)).toEqual({ ok: false, reason: 'other_person', userId: bob.id });
    // A challenge issued for alice (username-first), answered by bob's key without expectedUserId.
    flow = binding();
    options = await passkeys.authenticationOptions(flow, alice.id);
    expect(await passkeys.authenticate(flow, bobs.authenticate({ ...options, allowCredentials: [] }))).toEqual({ ok: false, reason: 'other_person', userId: bob.id });
    // Bob's key claiming alice's user handle.
    flow = binding();
    options = await passkeys.authenticationOptions(flow);
    const handle = Buffer.from(userHandleOf(alice.id)).toString('base64url');
    expect(await passkeys.authenticate(flow, bobs.authenticate(options, { userHandle: handle }))).toEqual({ ok: false, reason: 'user_handle_mismatch', userId: bob.id });
    // A discoverable sign-in without any user handle names nobody.
    flow = binding();
    options = await passkeys.authenticationOptions(flow);
    expect(await passkeys.authenticate(flow, bobs.authenticate(options, { userHandle: null }))).toEqual({ ok: false, reason: 'user_handle_mismatch', userId: bob.id });
  });

  it('refuses a device-bound key whose counter goes backwards, and audits it; only signed assertions count', async () => {
    const user = { id: randomUUID(), username: 'erin', displayName: null };
    await db('users').insert({ id: user.id, username: user.username });
    const { authenticator, passkey } = await enrol(user);
    const signIn = async (o: Parameters<SoftAuthenticator['authenticate']>[1]) => {
      const flow = binding();
      return passkeys.authenticate(flow, authenticator.authenticate(await passkeys.authenticationOptions(flow), o));
    };
    expect((await signIn({ counter: 5 })).ok).toBe(true);
    // A forged assertion with a low count is a bad signature, not evidence of a clone.
    expect(await signIn({ counter: 2, signWith: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(await auditOf('passkey.counter_regressed', user.id)).toHaveLength(0);

    expect(await signIn({ counter: 3 })).toEqual({ ok: false, reason: 'counter_regressed', userId: user.id });
    expect(await signIn({ counter: 5 })).toEqual({ ok: false, reason: 'counter_regressed', userId: user.id });
    const events = await auditOf('passkey.counter_regressed', user.id);
    expect(events.map((e) => e.changes)).toEqual([
      { keyId: passkey.id, storedCounter: 5, presentedCounter: 3 },
      { keyId: passkey.id, storedCounter: 5, presentedCounter: 5 },
    ]);
    const [row] = await webauthnRows(user.id);
    expect(row!.data.counter).toBe(5);
    expect((await signIn({ counter: 6 })).ok).toBe(true);
  });

  it('accepts a synced passkey whose counter stays 0, again and again, as a software key', async () => {
    const user = { id: randomUUID(), username: 'frank', displayName: null };
    await db('users').insert({ id: user.id, username: user.username });
    const { authenticator, passkey, proof } = await enrol(user, { synced: true });
    expect(passkey.synced).toBe(true);
    expect(proof.amr).toEqual(['swk', 'user']);
    for (let i = 0; i < 2; i += 1) {
      const flow = binding();
      const result = await passkeys.authenticate(flow, authenticator.authenticate(await passkeys.authenticationOptions(flow)));
      expect(result).toMatchObject({ ok: true, userId: user.id, proof: { amr: ['swk', 'user'], userVerified: true } });
    }
    const [row] = await webauthnRows(user.id);
    expect(row!.data).toMatchObject({ counter: 0, backupEligible: true, backedUp: true, deviceType: 'multiDevice' });
  });

  it('proves no user verification when the authenticator did not verify, and refuses that when verification is required', async () => {
    const user = { id: randomUUID(), username: 'grace', displayName: null };
    await db('users').insert({ id: user.id, username: user.username });
    const authenticator = new SoftAuthenticator({ origin: ORIGIN, userVerification: false });
    let flow = binding();
    const registered = await passkeys.register(flow, user.id, authenticator.register(await passkeys.registrationOptions(flow, user)), undefined, actorOf(user.id));
    expect(registered).toMatchObject({ ok: true, proof: { amr: ['hwk'], userVerified: false } });
    flow = binding();
    expect(await passkeys.authenticate(flow, authenticator.authenticate(await passkeys.authenticationOptions(flow))))
      .toMatchObject({ ok: true, proof: { amr: ['hwk'], userVerified: false } });
    const strict = new PasskeyStrategy(db, { ...CONFIG, userVerification: 'required' });
    flow = binding();
    expect(await strict.authenticate(flow, authenticator.authenticate(await strict.authenticationOptions(flow))))
      .toEqual({ ok: false, reason: 'user_not_verified', userId: user.id });
  });

  it('refuses a suspended person, an unknown credential and malformed answers, without throwing', async () => {
    const user = { id: randomUUID(), username: 'heidi', displayName: null };
    await db('users').insert({ id: user.id, username: user.username });
    const { authenticator } = await enrol(user);
    await db('users').where({ id: user.id }).update({ status: 'suspended' });
    let flow = binding();
    expect(await passkeys.authenticate(flow, authenticator.authenticate(await passkeys.authenticationOptions(flow))))
      .toEqual({ ok: false, reason: 'user_inactive', userId: user.id });

    const stranger = new SoftAuthenticator({ origin: ORIGIN });
    const otherSite = new PasskeyStrategy(db, { ...CONFIG, rpId: 'other.example', origin: 'https://other.example' });
    const f0 = binding();
    stranger.register(await otherSite.registrationOptions(f0, alice)); // known to nobody here
    flow = binding();
    const options = await passkeys.authenticationOptions(flow);
    expect(await passkeys.authenticate(flow, stranger.authenticate(options, { credentialId: stranger.credentials[0]!.id })))
      .toEqual({ ok: false, reason: 'unknown_credential' });

    for (const junk of [undefined, null, 'text', 42, [], {}, { id: 'a', rawId: 'a', type: 'public-key', response: {} },
      { id: 'a', rawId: 'b', type: 'public-key', response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' } },
      { id: 'a', rawId: 'a', type: 'public-key', response: { clientDataJSON: 'bm90IGpzb24', authenticatorData: 'AA', signature: 'AA' } },
      { id: 'a'.repeat(5000), rawId: 'a'.repeat(5000), type: 'public-key', response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' } }]) {
      expect(await passkeys.authenticate(binding(), junk)).toEqual({ ok: false, reason: 'malformed_response' });
    }
    // Well-formed, with a challenge that was issued, but authenticator data too short to parse.
    flow = binding();
    const { challenge } = await passkeys.authenticationOptions(flow);
    const [cred] = (await webauthnRows(alice.id));
    const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge, origin: ORIGIN })).toString('base64url');
    expect(await passkeys.authenticate(flow, { id: cred!.external_id, rawId: cred!.external_id, type: 'public-key', response: { clientDataJSON, authenticatorData: 'AAAA', signature: 'AAAA', userHandle: Buffer.from(userHandleOf(alice.id)).toString('base64url') } }))
      .toEqual({ ok: false, reason: 'invalid_response', userId: alice.id });
  });
});

describe('PasskeyStrategy list, rename and remove', () => {
  it('lists, renames and removes the person\'s own passkeys, audited; another person\'s id is refused', async () => {
    const user = { id: randomUUID(), username: 'ivan', displayName: null };
    await db('users').insert({ id: user.id, username: user.username });
    const first = await enrol(user, { name: 'Phone' });
    const second = await enrol(user, { name: 'Key', synced: true });
    expect((await passkeys.list(user.id)).map((p) => [p.name, p.synced])).toEqual([['Phone', false], ['Key', true]]);
    const bobs = await passkeys.list(bob.id);
    const bobsId = bobs[0]!.id;

    expect(await passkeys.rename(user.id, first.passkey.id, `  ${'x'.repeat(100)}\n`, actorOf(user.id))).toBe(true);
    expect((await passkeys.list(user.id))[0]!.name).toBe('x'.repeat(64));
    expect(await passkeys.rename(user.id, first.passkey.id, '   ', actorOf(user.id))).toBe(false);
    expect(await passkeys.rename(user.id, bobsId, 'Mine now', actorOf(user.id))).toBe(false);
    expect(await passkeys.rename(user.id, 'not-a-uuid', 'Mine now', actorOf(user.id))).toBe(false);
    expect((await passkeys.list(bob.id))[0]!.name).not.toBe('Mine now');
    expect((await auditOf('passkey.renamed', user.id)).map((e) => [e.changes, e.before]))
      .toEqual([[{ keyId: first.passkey.id, name: 'x'.repeat(64) }, { name: 'Phone' }]]);

    expect(await passkeys.remove(user.id, bobsId, actorOf(user.id))).toBe(false);
    expect(await passkeys.list(bob.id)).toEqual(bobs);
    // A credential of another type is not a passkey, even the person's own.
    const password = randomUUID();
    await db('credentials').insert({ id: password, user_id: user.id, type: 'password', data: JSON.stringify({ hash: 'x' }) });
    expect(await passkeys.remove(user.id, password, actorOf(user.id))).toBe(false);
    expect(await passkeys.rename(user.id, password, 'Nope', actorOf(user.id))).toBe(false);
    expect(await db('credentials').where({ id: password }).first()).toBeDefined();

    expect(await passkeys.remove(user.id, second.passkey.id, actorOf(user.id))).toBe(true);
    expect(await passkeys.remove(user.id, second.passkey.id, actorOf(user.id))).toBe(false);
    expect((await passkeys.list(user.id)).map((p) => p.id)).toEqual([first.passkey.id]);
    expect((await auditOf('passkey.removed', user.id)).map((e) => e.changes)).toEqual([{ keyId: second.passkey.id, name: 'Key' }]);
    // A removed passkey signs nobody in.
    const flow = binding();
    expect(await passkeys.authenticate(flow, second.authenticator.authenticate(await passkeys.authenticationOptions(flow))))
      .toEqual({ ok: false, reason: 'unknown_credential' });

    expect(await passkeys.remove(user.id, first.passkey.id, actorOf(user.id))).toBe(true);
    expect(await passkeys.isEnrolled(user.id)).toBe(false);
  });
});

async function createPool(): Promise<Knex> {
  const { createDb } = await import('../../src/db/knex.ts');
  return createDb({ databaseUrl: m.database.url, databasePoolMax: 2, dataDir: '/nonexistent/unused' }).db;
}
