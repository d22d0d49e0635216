// The oidc-provider storage contract on a real database: every model in oidc_payloads,
// clients read from the apps table.
import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { deleteExpiredPayloads } from '../../src/oidc/adapter.ts';
import { AppsService } from '../../src/apps/apps.service.ts';
import { sha256 } from '../../src/shared/ids.ts';
import { PendingWrites, isAlreadyConsumed } from '../../src/oidc/request-writes.ts';
import { createAdapterDatabase, type AdapterDatabase } from '../helpers/oidc-adapter.ts';

let mdb: AdapterDatabase;
let db: Knex;
let Adapter: new (name: string) => Adapter;
const adapter = (model: string) => new Adapter(model);

beforeAll(async () => {
  mdb = await createAdapterDatabase('oneid_test_adapter');
  ({ db, Adapter } = mdb);
});

afterAll(async () => {
  await mdb?.close();
});

/** Moves a row's expiry into the past, as if its lifetime had run out. */
const expire = (model: string, id: string) =>
  db('oidc_payloads').where({ model, id }).update({ expires_at: db.raw("now() - interval '1 second'") });

describe('upsert and find', () => {
  it('returns what was stored, under the model it was stored for', async () => {
    const payload: AdapterPayload = { accountId: 'acc-1', kind: 'Session', jti: 'sess-1', loginTs: 1700000000, authorizations: { c1: { sid: 's' } } };
    await adapter('Session').upsert('sess-1', payload, 3600);
    expect(await adapter('Session').find('sess-1')).toEqual(payload);
    expect(await adapter('AccessToken').find('sess-1')).toBeUndefined();
    expect(await adapter('Session').find('sess-unknown')).toBeUndefined();
  });

  it('replaces the payload on a second upsert of the same id', async () => {
    await adapter('Grant').upsert('grant-x', { kind: 'Grant', accountId: 'a', clientId: 'c1' }, 60);
    await adapter('Grant').upsert('grant-x', { kind: 'Grant', accountId: 'a', clientId: 'c2' }, 60);
    expect(await adapter('Grant').find('grant-x')).toEqual({ kind: 'Grant', accountId: 'a', clientId: 'c2' });
    expect(await db('oidc_payloads').where({ model: 'Grant', id: 'grant-x' }).count<{ count: number }[]>({ count: '*' }))
      .toEqual([{ count: 1 }]);
  });

  it('refuses to store text PostgreSQL cannot hold, as a bad request, and finds nothing by such an id', async () => {
    const bad: AdapterPayload[] = [
      { kind: 'Interaction', params: { state: 'a\0b' } },
      { kind: 'Interaction', params: { claims: { 'x\0': 1 } } },
      { kind: 'Interaction', params: { nonce: 'lone \ud800 surrogate' } },
    ];
    for (const payload of bad) {
      const err = await adapter('Interaction').upsert('ill-formed', payload, 60).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ error: 'invalid_request', status: 400 });
    }
    expect(await db('oidc_payloads').where({ id: 'ill-formed' })).toHaveLength(0);
    // Accents and emoji (a surrogate pair) are stored as they are.
    await adapter('Interaction').upsert('well-formed', { kind: 'Interaction', params: { state: 'José 😀' } }, 60);
    expect(await adapter('Interaction').find('well-formed')).toEqual({ kind: 'Interaction', params: { state: 'José 😀' } });
    expect(await adapter('Interaction').find('well\0formed')).toBeUndefined();
    expect(await adapter('Session').findByUid('u\0')).toBeUndefined();
  });

  it('keeps rows stored without a lifetime', async () => {
    await adapter('Grant').upsert('grant-forever', { kind: 'Grant' }, 0);
    expect(await adapter('Grant').find('grant-forever')).toEqual({ kind: 'Grant' });
  });
});

describe('findByUid', () => {
  it('finds a row by its uid within its model', async () => {
    await adapter('Interaction').upsert('int-1', { kind: 'Interaction', uid: 'uid-abc', jti: 'int-1' }, 600);
    expect(await adapter('Interaction').findByUid('uid-abc')).toEqual({ kind: 'Interaction', uid: 'uid-abc', jti: 'int-1' });
    expect(await adapter('Session').findByUid('uid-abc')).toBeUndefined();
    expect(await adapter('Interaction').findByUid('uid-other')).toBeUndefined();
  });
});

describe('findByUserCode', () => {
  it('finds a device code by its user code', async () => {
    await adapter('DeviceCode').upsert('dc-1', { kind: 'DeviceCode', userCode: 'WDJB-MJHT', clientId: 'tv' }, 600);
    expect(await adapter('DeviceCode').findByUserCode('WDJB-MJHT')).toMatchObject({ userCode: 'WDJB-MJHT', clientId: 'tv' });
    expect(await adapter('DeviceCode').findByUserCode('XXXX-XXXX')).toBeUndefined();
  });
});

describe('consume', () => {
  it('marks the payload consumed with the time of consumption, in seconds', async () => {
    await adapter('AuthorizationCode').upsert('code-1', { kind: 'AuthorizationCode', grantId: 'g-consume' }, 60);
    expect((await adapter('AuthorizationCode').find('code-1'))!.consumed).toBeUndefined();
    const before = Math.floor(Date.now() / 1000);
    await adapter('AuthorizationCode').consume('code-1');
    const found = await adapter('AuthorizationCode').find('code-1');
    expect(found).toMatchObject({ kind: 'AuthorizationCode', grantId: 'g-consume' });
    expect(typeof found!.consumed).toBe('number');
    expect(found!.consumed).toBeGreaterThanOrEqual(before - 5);
    expect(found!.consumed).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 5);
  });
});

describe('destroy', () => {
  it('removes the row of that model only', async () => {
    await adapter('AccessToken').upsert('same-id', { kind: 'AccessToken' }, 60);
    await adapter('RefreshToken').upsert('same-id', { kind: 'RefreshToken' }, 60);
    await adapter('AccessToken').destroy('same-id');
    expect(await adapter('AccessToken').find('same-id')).toBeUndefined();
    expect(await adapter('RefreshToken').find('same-id')).toEqual({ kind: 'RefreshToken' });
  });
});

describe('revokeByGrantId', () => {
  it('removes every token and code of that grant, whatever the model, and nothing else', async () => {
    for (const [model, id, grantId] of [
      ['AccessToken', 'at-a', 'grant-a'], ['RefreshToken', 'rt-a', 'grant-a'], ['AuthorizationCode', 'ac-a', 'grant-a'],
      ['AccessToken', 'at-b', 'grant-b'], ['RefreshToken', 'rt-b', 'grant-b'],
    ] as const) {
      await adapter(model).upsert(id, { kind: model, grantId }, 600);
    }
    await adapter('Session').upsert('sess-keep', { kind: 'Session', accountId: 'acc' }, 600);

    await adapter('AccessToken').revokeByGrantId('grant-a');

    expect(await adapter('AccessToken').find('at-a')).toBeUndefined();
    expect(await adapter('RefreshToken').find('rt-a')).toBeUndefined();
    expect(await adapter('AuthorizationCode').find('ac-a')).toBeUndefined();
    expect(await adapter('AccessToken').find('at-b')).toEqual({ kind: 'AccessToken', grantId: 'grant-b' });
    expect(await adapter('RefreshToken').find('rt-b')).toEqual({ kind: 'RefreshToken', grantId: 'grant-b' });
    expect(await adapter('Session').find('sess-keep')).toEqual({ kind: 'Session', accountId: 'acc' });
  });
});

describe('expiry', () => {
  it('does not return expired rows, and deleteExpiredPayloads removes them and only them', async () => {
    await adapter('AccessToken').upsert('at-old', { kind: 'AccessToken' }, 60);
    await adapter('Interaction').upsert('int-old', { kind: 'Interaction', uid: 'uid-old' }, 60);
    await adapter('DeviceCode').upsert('dc-old', { kind: 'DeviceCode', userCode: 'OLD-CODE' }, 60);
    await adapter('AccessToken').upsert('at-live', { kind: 'AccessToken' }, 60);
    await expire('AccessToken', 'at-old');
    await expire('Interaction', 'int-old');
    await expire('DeviceCode', 'dc-old');

    expect(await adapter('AccessToken').find('at-old')).toBeUndefined();
    expect(await adapter('Interaction').findByUid('uid-old')).toBeUndefined();
    expect(await adapter('DeviceCode').findByUserCode('OLD-CODE')).toBeUndefined();
    expect(await adapter('AccessToken').find('at-live')).toEqual({ kind: 'AccessToken' });

    const total = async () => Number((await db('oidc_payloads').count<{ count: number }[]>({ count: '*' }))[0]!.count);
    const before = await total();
    expect(await deleteExpiredPayloads(db)).toBe(3);
    expect(await total()).toBe(before - 3);
    expect(await db('oidc_payloads').whereIn('id', ['at-old', 'int-old', 'dc-old'])).toEqual([]);
    expect(await adapter('AccessToken').find('at-live')).toEqual({ kind: 'AccessToken' });
    expect(await adapter('Grant').find('grant-forever')).toEqual({ kind: 'Grant' });
    expect(await deleteExpiredPayloads(db)).toBe(0);
  });

  it('deletes in batches of the given size', async () => {
    for (const id of ['e1', 'e2', 'e3']) {
      await adapter('AccessToken').upsert(id, { kind: 'AccessToken' }, 60);
      await expire('AccessToken', id);
    }
    expect(await deleteExpiredPayloads(db, 2)).toBe(2);
    expect(await deleteExpiredPayloads(db, 2)).toBe(1);
  });
});

describe('find for model Client', () => {
  it('reads the apps table and exposes the SHA-256 of the secret, never the secret', async () => {
    const created = await new AppsService(db).createApp({
      name: 'Wiki', redirectUris: ['https://wiki.example.com/cb'], postLogoutRedirectUris: ['https://wiki.example.com/'], firstParty: true,
    });
    expect(created.client_secret).toBeTruthy();
    const metadata = await adapter('Client').find(created.client_id);
    expect(metadata).toMatchObject({
      client_id: created.client_id,
      client_name: 'Wiki',
      client_secret: sha256(created.client_secret!),
      redirect_uris: ['https://wiki.example.com/cb'],
      post_logout_redirect_uris: ['https://wiki.example.com/'],
      // A confidential app may also exchange a person's token inside its suites (RFC 8693).
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      'urn:oneid:first_party': true,
      'urn:oneid:app_id': created.id,
    });
    expect(metadata!.client_secret).not.toBe(created.client_secret);
    expect(JSON.stringify(metadata)).not.toContain(created.client_secret!);
    expect(await db('oidc_payloads').where({ model: 'Client' })).toEqual([]);
  });

  it('returns no secret for a public app and undefined for an unknown client_id', async () => {
    const created = await new AppsService(db).createApp({ name: 'Mobile', redirectUris: ['com.example.app:/cb'], public: true });
    expect(created.client_secret).toBeNull();
    const metadata = await adapter('Client').find(created.client_id);
    expect(metadata).toMatchObject({ client_id: created.client_id, token_endpoint_auth_method: 'none', application_type: 'native' });
    expect(metadata).not.toHaveProperty('client_secret');
    // A public app cannot authenticate at the token endpoint: no token exchange.
    expect(metadata!.grant_types).toEqual(['authorization_code', 'refresh_token']);
    expect(await adapter('Client').find('no-such-client')).toBeUndefined();
  });
});

describe('a token read with its grant and session', () => {
  // oidc-provider keeps the request's koa context in this AsyncLocalStorage (Provider.ctx).
  const inRequest = async <T>(fn: () => Promise<T>): Promise<T> => {
    const { default: als } = await import('oidc-provider/lib/helpers/als.js' as string) as { default: { run<R>(store: unknown, f: () => R): R } };
    return als.run({ state: {} }, fn);
  };
  let statements = 0;
  const reads = () => statements;
  beforeAll(() => { db.on('query', () => { statements += 1; }); });

  beforeAll(async () => {
    await adapter('Grant').upsert('g-pre', { kind: 'Grant', accountId: 'acc-p', clientId: 'c1', openid: { scope: 'openid' } }, 60);
    await adapter('Session').upsert('s-pre', { kind: 'Session', uid: 'uid-pre', accountId: 'acc-p' }, 60);
    await adapter('AccessToken').upsert('at-pre', { kind: 'AccessToken', grantId: 'g-pre', sessionUid: 'uid-pre', accountId: 'acc-p' }, 60);
    await adapter('AccessToken').upsert('at-nogrant', { kind: 'AccessToken', grantId: 'g-gone', sessionUid: 'uid-gone', accountId: 'acc-p' }, 60);
  });

  it('answers the next lookups of that grant and session in the same request without a statement', async () => {
    await inRequest(async () => {
      expect(await adapter('AccessToken').find('at-pre')).toMatchObject({ grantId: 'g-pre' });
      const before = reads();
      expect(await adapter('Grant').find('g-pre')).toEqual({ kind: 'Grant', accountId: 'acc-p', clientId: 'c1', openid: { scope: 'openid' } });
      expect(await adapter('Session').findByUid('uid-pre')).toEqual({ kind: 'Session', uid: 'uid-pre', accountId: 'acc-p' });
      expect(reads()).toBe(before);
      // Used once: a second lookup reads the database again.
      expect(await adapter('Grant').find('g-pre')).toMatchObject({ clientId: 'c1' });
      expect(reads()).toBe(before + 1);
    });
  });

  it('answers a grant and session that do not exist (any more) as missing', async () => {
    await inRequest(async () => {
      await adapter('AccessToken').find('at-nogrant');
      const before = reads();
      expect(await adapter('Grant').find('g-gone')).toBeUndefined();
      expect(await adapter('Session').findByUid('uid-gone')).toBeUndefined();
      expect(reads()).toBe(before);
    });
  });

  it('never answers from what was read before this request wrote the same grant or session', async () => {
    await inRequest(async () => {
      await adapter('AccessToken').find('at-pre');
      await adapter('Grant').upsert('g-pre', { kind: 'Grant', accountId: 'acc-p', clientId: 'c2' }, 60);
      await adapter('Session').destroy('s-pre');
      expect(await adapter('Grant').find('g-pre')).toMatchObject({ clientId: 'c2' });
      expect(await adapter('Session').findByUid('uid-pre')).toBeUndefined();
    });
  });

  it('shares nothing between requests, nor with work outside a request', async () => {
    await adapter('Session').upsert('s-pre', { kind: 'Session', uid: 'uid-pre', accountId: 'acc-p' }, 60);
    await inRequest(() => adapter('AccessToken').find('at-pre'));
    await adapter('Grant').upsert('g-pre', { kind: 'Grant', accountId: 'acc-p', clientId: 'c3' }, 60);
    const before = reads();
    await inRequest(async () => { expect(await adapter('Grant').find('g-pre')).toMatchObject({ clientId: 'c3' }); });
    expect(await adapter('Session').findByUid('uid-pre')).toMatchObject({ uid: 'uid-pre' });
    expect(reads()).toBe(before + 2);
  });

  it('marks a consumed token as consumed, as a plain lookup does', async () => {
    await adapter('RefreshToken').upsert('rt-pre', { kind: 'RefreshToken', grantId: 'g-pre', sessionUid: 'uid-pre' }, 60);
    await adapter('RefreshToken').consume('rt-pre');
    const found = await inRequest(() => adapter('RefreshToken').find('rt-pre'));
    expect(found?.consumed).toEqual(expect.any(Number));
  });
});

describe("a token request's writes, sent together (request-writes.ts)", () => {
  const inTokenRequest = async <T>(writes: PendingWrites, fn: () => Promise<T>): Promise<T> => {
    const { default: als } = await import('oidc-provider/lib/helpers/als.js' as string) as { default: { run<R>(store: unknown, f: () => R): R } };
    return als.run({ state: { oidcWrites: writes } }, fn);
  };
  let statements = 0;
  beforeAll(() => { db.on('query', () => { statements += 1; }); });
  const row = (model: string, id: string) => db('oidc_payloads').where({ model, id }).first();

  it('records a rotation without a statement, then writes it with one', async () => {
    await adapter('RefreshToken').upsert('rt-old', { kind: 'RefreshToken', grantId: 'g-w', accountId: 'acc-w' }, 60);
    const writes = new PendingWrites();
    const before = statements;
    await inTokenRequest(writes, async () => {
      await adapter('RefreshToken').consume('rt-old');
      await adapter('RefreshToken').upsert('rt-new', { kind: 'RefreshToken', grantId: 'g-w', accountId: 'acc-w' }, 60);
      await adapter('AccessToken').upsert('at-new', { kind: 'AccessToken', grantId: 'g-w', accountId: 'acc-w' }, 60);
    });
    expect(statements).toBe(before);
    expect(await row('RefreshToken', 'rt-new')).toBeUndefined();
    expect((await row('RefreshToken', 'rt-old')).consumed_at).toBeNull();
    const beforeFlush = statements;
    await writes.flush(db);
    expect(statements).toBe(beforeFlush + 1);
    expect(writes.size).toBe(0);
    expect((await row('RefreshToken', 'rt-old')).consumed_at).not.toBeNull();
    expect(await row('RefreshToken', 'rt-new')).toMatchObject({ grant_id: 'g-w', account_id: 'acc-w', consumed_at: null });
    expect(await row('AccessToken', 'at-new')).toMatchObject({ grant_id: 'g-w' });
    expect((await row('AccessToken', 'at-new')).expires_at.getTime()).toBeGreaterThan(Date.now() + 50_000);
  });

  it('writes nothing when a token to consume was consumed by someone else meanwhile', async () => {
    await adapter('AuthorizationCode').upsert('code-raced', { kind: 'AuthorizationCode', grantId: 'g-r' }, 60);
    const writes = new PendingWrites();
    await inTokenRequest(writes, async () => {
      await adapter('AuthorizationCode').consume('code-raced');
      await adapter('AccessToken').upsert('at-raced', { kind: 'AccessToken', grantId: 'g-r' }, 60);
    });
    await adapter('AuthorizationCode').consume('code-raced'); // the other request
    const err = await writes.flush(db).catch((e: unknown) => e);
    expect(isAlreadyConsumed(err)).toBe(true);
    expect(await row('AccessToken', 'at-raced')).toBeUndefined();
  });

  it('lets exactly one of two requests redeeming the same token at once win', async () => {
    await adapter('RefreshToken').upsert('rt-twice', { kind: 'RefreshToken', grantId: 'g-t' }, 60);
    const attempt = async (n: number) => {
      const writes = new PendingWrites();
      await inTokenRequest(writes, async () => {
        await adapter('RefreshToken').consume('rt-twice');
        await adapter('RefreshToken').upsert(`rt-twice-${n}`, { kind: 'RefreshToken', grantId: 'g-t' }, 60);
      });
      return writes.flush(db).then(() => 'won', (e: unknown) => (isAlreadyConsumed(e) ? 'lost' : e));
    };
    const outcomes = await Promise.all([1, 2, 3, 4].map(attempt));
    expect(outcomes.filter((o) => o === 'won')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'lost')).toHaveLength(3);
    expect(await db('oidc_payloads').where({ model: 'RefreshToken' }).whereLike('id', 'rt-twice-%').count<{ count: number }[]>({ count: '*' }))
      .toEqual([{ count: 1 }]);
  });

  it('refuses to consume an expired token', async () => {
    await adapter('RefreshToken').upsert('rt-expired-w', { kind: 'RefreshToken' }, 60);
    await expire('RefreshToken', 'rt-expired-w');
    const writes = new PendingWrites();
    await inTokenRequest(writes, () => adapter('RefreshToken').consume('rt-expired-w'));
    expect(isAlreadyConsumed(await writes.flush(db).catch((e: unknown) => e))).toBe(true);
  });

  it('stores a row created and consumed by the same request as consumed', async () => {
    const writes = new PendingWrites();
    await inTokenRequest(writes, async () => {
      await adapter('AuthorizationCode').upsert('code-both', { kind: 'AuthorizationCode' }, 60);
      await adapter('AuthorizationCode').consume('code-both');
    });
    await writes.flush(db);
    expect((await row('AuthorizationCode', 'code-both')).consumed_at).not.toBeNull();
    expect((await adapter('AuthorizationCode').find('code-both'))?.consumed).toEqual(expect.any(Number));
  });

  it('records deletes too, and writes each row as the last call left it', async () => {
    await adapter('Interaction').upsert('int-w', { kind: 'Interaction', uid: 'int-w-uid' }, 60);
    await adapter('Session').upsert('sess-w', { kind: 'Session', uid: 'sess-w-uid' }, 60);
    const writes = new PendingWrites();
    await inTokenRequest(writes, async () => {
      await adapter('Interaction').destroy('int-w');
      await adapter('Session').destroy('sess-w');
      await adapter('Session').upsert('sess-w', { kind: 'Session', uid: 'sess-w-uid', accountId: 'back' }, 60);
      await adapter('AuthorizationCode').upsert('code-w', { kind: 'AuthorizationCode' }, 60);
      await adapter('AuthorizationCode').destroy('code-w');
    });
    expect(await row('Interaction', 'int-w')).toBeDefined();
    await writes.flush(db);
    expect(await row('Interaction', 'int-w')).toBeUndefined();
    expect((await row('Session', 'sess-w')).payload).toMatchObject({ accountId: 'back' });
    expect(await row('AuthorizationCode', 'code-w')).toBeUndefined();
  });

  it('sends pending writes before reading one of them, and before a revoke', async () => {
    const writes = new PendingWrites();
    await inTokenRequest(writes, async () => {
      await adapter('Grant').upsert('g-own', { kind: 'Grant', clientId: 'own' }, 60);
      expect(await adapter('Grant').find('g-own')).toEqual({ kind: 'Grant', clientId: 'own' });
      expect(writes.size).toBe(0);
      await adapter('AccessToken').upsert('at-own', { kind: 'AccessToken', grantId: 'g-own' }, 60);
      await adapter('Grant').revokeByGrantId('g-own');
      expect(writes.size).toBe(0);
    });
    // The token was written before the revocation, so the revocation took it too.
    expect(await row('AccessToken', 'at-own')).toBeUndefined();
  });
});
