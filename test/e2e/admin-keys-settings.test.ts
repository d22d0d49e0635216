// Black-box: the admin API routes behind the console's settings and audit pages, on a real server
// and database: the signing keys (list; rotate, audited, super_admin only, nothing breaks for the
// running node), the configured policies, and the chain's verification in bounded, resumable steps.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { runCli, startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, adminClientsOfEachRole, type AdminClient } from '../helpers/admin.ts';

let db: TestDatabase;
let sql: pg.Client;
let server: RunningServer;
let env: Record<string, string>;
let superAdmin: AdminClient;
let userAdmin: AdminClient;
let appAdmin: AdminClient;
let auditor: AdminClient;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, ONEID_MASTER_KEY: testMasterKey(), PASSWORD_MIN_LENGTH: '12', SIGNIN_POLICY_DEFAULT: 'mfa' };
  server = await startServer(env);
  [superAdmin, userAdmin, appAdmin, auditor] = await adminClientsOfEachRole(server.url, env);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await server?.stop();
  await db?.drop();
});

const keysInDb = async () => (await sql.query('select kid, alg, state from signing_keys order by kid')).rows;
const kidOf = (items: { kid: string; alg: string; state: string }[], alg: string, state: string) => items.find((k) => k.alg === alg && k.state === state)?.kid;

async function chained(): Promise<void> {
  const deadline = Date.now() + 10000;
  while ((await sql.query('select count(*)::int as n from audit_pending')).rows[0].n > 0) {
    if (Date.now() > deadline) throw new Error('audit events were not chained');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('GET /keys', () => {
  it('lists the current, next and previous keys of each algorithm, never a private part', async () => {
    const res = await auditor.call('GET', '/keys');
    expect(res.status).toBe(200);
    for (const alg of ['ES256', 'RS256']) {
      expect(kidOf(res.body.items, alg, 'current')).toBeTruthy();
      expect(kidOf(res.body.items, alg, 'next')).toBeTruthy();
    }
    expect(Object.keys(res.body.items[0]).sort()).toEqual(['alg', 'createdAt', 'kid', 'state']);
    expect(JSON.stringify(res.body)).not.toMatch(/"d"|private/);
  });

  it('is refused to roles that do not read settings, and to anonymous callers', async () => {
    expect((await userAdmin.call('GET', '/keys')).status).toBe(403);
    expect((await appAdmin.call('GET', '/keys')).status).toBe(403);
    expect((await fetch(`${server.url}/admin/api/v1/keys`)).status).toBe(401);
  });
});

describe('POST /keys/rotate', () => {
  it('is refused to every role but super_admin, changes nothing, and the refusal is recorded', async () => {
    const before = await keysInDb();
    for (const who of [auditor, userAdmin, appAdmin]) {
      const res = await who.call('POST', '/keys/rotate');
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('admin.forbidden');
    }
    expect(await keysInDb()).toEqual(before);
    const refused = (await auditor.call('GET', `/audit-events?action=write.refused&actorId=${encodeURIComponent(auditor.clientId)}`)).body.items;
    expect(refused[0]).toMatchObject({ targetType: 'key', changes: { operation: 'POST /admin/api/v1/keys/rotate', code: 'admin.forbidden' } });
  });

  it('makes next current and current previous, is audited, and the running node goes on working', async () => {
    const listed = (await superAdmin.call('GET', '/keys')).body.items;
    const res = await superAdmin.call('POST', '/keys/rotate');
    expect(res.status).toBe(200);
    for (const alg of ['ES256', 'RS256']) {
      expect(kidOf(res.body.items, alg, 'current')).toBe(kidOf(listed, alg, 'next'));
      expect(kidOf(res.body.items, alg, 'previous')).toBe(kidOf(listed, alg, 'current'));
      expect(kidOf(res.body.items, alg, 'next')).not.toBe(kidOf(listed, alg, 'next'));
    }
    // The new next RS256 key has its SAML certificate at once (published before it signs).
    const { rows } = await sql.query("select certificate from signing_keys where alg = 'RS256' and state = 'next'");
    expect(rows[0].certificate).toBeTruthy();

    const events = (await auditor.call('GET', '/audit-events?action=signing_keys.rotated')).body.items;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actorType: 'admin_client', actorId: superAdmin.clientId, targetType: 'signing_key', targetId: kidOf(listed, 'ES256', 'next'),
      changes: { current: { ES256: kidOf(listed, 'ES256', 'next'), RS256: kidOf(listed, 'RS256', 'next') } },
      before: { current: { ES256: kidOf(listed, 'ES256', 'current'), RS256: kidOf(listed, 'RS256', 'current') } },
    });

    // This node keeps signing with the key it loaded at start until it restarts: that key is still
    // published (now previous), the new current was already published as next, and tokens
    // issued before the rotation still work.
    const jwks = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: { kid: string }[] };
    const published = jwks.keys.map((k) => k.kid);
    expect(published).toContain(kidOf(listed, 'ES256', 'current'));
    expect(published).toContain(kidOf(listed, 'ES256', 'next'));
    expect((await auditor.call('GET', '/keys')).status).toBe(200);
    const fresh = await adminClient(server.url, env, ['auditor']);
    expect((await fresh.call('GET', '/keys')).status).toBe(200);
  });

  it('is the same audited rotation from the CLI', async () => {
    const cli = await runCli(['keys', 'rotate'], env);
    expect(cli.code).toBe(0);
    const events = (await auditor.call('GET', '/audit-events?action=signing_keys.rotated')).body.items;
    expect(events).toHaveLength(2);
    expect(events[0].actorType).toBe('system');
    expect(events[0].actorId).toMatch(/^cli:/);
    expect(events[0].changes.current.ES256).toBe(kidOf(cli.json.keys, 'ES256', 'current'));
  });
});

describe('GET /settings', () => {
  it('gives every admin role the configured policies and the variables that set them', async () => {
    for (const who of [auditor, userAdmin, appAdmin, superAdmin]) {
      const res = await who.call('GET', '/settings');
      expect(res.status).toBe(200);
      // Nothing stored from the console: the environment's values, named by their variables.
      expect(res.body).toEqual({
        passwordPolicy: { minLength: 12, maxLength: 256, rejectsCommonPasswords: true, source: 'environment', environment: { variable: 'PASSWORD_MIN_LENGTH', minLength: 12 } },
        signInPolicyDefault: { level: 'mfa', source: 'environment', environment: { variable: 'SIGNIN_POLICY_DEFAULT', level: 'mfa' } },
      });
    }
    expect((await fetch(`${server.url}/admin/api/v1/settings`)).status).toBe(401);
  });
});

describe('GET /audit-events/verification', () => {
  it('checks the whole chain, or a bounded stretch of it that the next call continues', async () => {
    await chained();
    const all = await auditor.call('GET', '/audit-events/verification');
    expect(all.status).toBe(200);
    const length = all.body.chainLength;
    expect(length).toBeGreaterThan(3);
    expect(all.body).toMatchObject({ ok: true, complete: true, after: 0, through: length, checked: length });

    const first = (await auditor.call('GET', '/audit-events/verification?limit=2')).body;
    expect(first).toMatchObject({ ok: true, complete: false, after: 0, through: 2, checked: 2 });
    const { rows } = await sql.query('select seq from audit_chain where pos = 2');
    expect(first.throughSeq).toBe(Number(rows[0].seq));
    const rest = (await auditor.call('GET', `/audit-events/verification?after=${first.through}&limit=50000`)).body;
    expect(rest).toMatchObject({ ok: true, complete: true, after: 2, through: length, checked: length - 2 });
  });

  it('names the first altered event, and a stretch after it still verifies', async () => {
    await chained();
    const { rows: [row] } = await sql.query('select c.pos, c.seq, e.action from audit_chain c join audit_events e using (seq) order by pos offset 2 limit 1');
    await sql.query("update audit_events set action = 'tampered' where seq = $1", [row.seq]);
    try {
      const res = (await auditor.call('GET', '/audit-events/verification')).body;
      expect(res).toMatchObject({ ok: false, complete: true, through: Number(row.pos) - 1, firstBroken: { seq: Number(row.seq) } });
      expect(res.firstBroken.reason).toContain('altered');
      const after = (await auditor.call('GET', `/audit-events/verification?after=${row.pos}`)).body;
      expect(after.ok).toBe(true);
    } finally {
      await sql.query('update audit_events set action = $2 where seq = $1', [row.seq, row.action]);
    }
  });

  it('refuses bad input with a 400 naming the field, and other roles with a 403', async () => {
    for (const [query, field] of [['after=-1', 'after'], ['limit=0', 'limit'], ['limit=50001', 'limit'], ['after=abc', 'after'], ['nope=1', 'nope'], ['after=999999', 'after']]) {
      const res = await auditor.call('GET', `/audit-events/verification?${query}`);
      expect([query, res.status]).toEqual([query, 400]);
      expect(res.body.detail ?? res.body.field).toContain(field);
    }
    expect((await userAdmin.call('GET', '/audit-events/verification')).status).toBe(403);
    expect((await fetch(`${server.url}/admin/api/v1/audit-events/verification`)).status).toBe(401);
  });
});

describe('OpenAPI', () => {
  it('documents the new routes with their roles', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as { paths: Record<string, Record<string, { description: string }>> };
    expect(doc.paths['/keys']!.get!.description).toBe('Roles: super_admin, auditor');
    expect(doc.paths['/keys/rotate']!.post!.description).toBe('Roles: super_admin');
    expect(doc.paths['/settings']!.get!.description).toBe('Roles: super_admin, auditor, user_admin, app_admin');
    expect(doc.paths['/audit-events/verification']!.get!.description).toBe('Roles: super_admin, auditor');
  });
});
