// Black-box: what the console's People pages need from the admin API, over HTTP with OneID's own
// bearer tokens: the user list's wider search, sorting, numbered pages and total; the CSV export;
// one-time set-up links (and their public page); the paths that give a person each app.
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

let database: TestDatabase;
let server: RunningServer;
let admin: AdminClient;
let auditor: AdminClient;
let superAdmin: AdminClient;
let db: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_admin_people');
  const env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  [admin, auditor, superAdmin] = await Promise.all([
    adminClient(server.url, env, ['user_admin']),
    adminClient(server.url, env, ['auditor']),
    adminClient(server.url, env, ['super_admin']),
  ]);
  db = new pg.Client({ connectionString: database.url });
  await db.connect();
}, 120000);

afterAll(async () => {
  await db?.end();
  await server?.stop();
  await database?.drop();
});

async function createUser(body: Record<string, unknown>): Promise<{ id: string; username: string }> {
  const res = await admin.call('POST', '/users', body);
  expect(res.status).toBe(201);
  return res.body;
}

const usernames = (body: { items: { username: string }[] }): string[] => body.items.map((u) => u.username);

describe('GET /users (search, sort, numbered pages, total)', () => {
  beforeAll(async () => {
    await createUser({ username: 'zhang.wei', email: 'wei@corp.example', name: '张伟', employeeNumber: 'CN-0042' });
    await createUser({ username: 'grace.h', email: 'hopper@navy.example', givenName: 'Grace', familyName: 'Hopper', employeeNumber: 'US-1906' });
    for (let i = 1; i <= 7; i += 1) await createUser({ username: `sorter${i}`, email: `s${8 - i}@sort.example`, name: `Sorter ${String.fromCharCode(96 + ((i * 3) % 7) + 1)}` });
  });

  it('matches a prefix of the username, email, display, given or family name and employee number, in any case', async () => {
    for (const [q, want] of [['ZHANG', 'zhang.wei'], ['wei@', 'zhang.wei'], ['张', 'zhang.wei'], ['cn-00', 'zhang.wei'],
      ['hopper', 'grace.h'], ['GRACE', 'grace.h'], ['us-19', 'grace.h']] as const) {
      const res = await auditor.call('GET', `/users?q=${encodeURIComponent(q)}`);
      expect(res.status).toBe(200);
      expect(usernames(res.body)).toEqual([want]);
    }
    // A prefix, not a substring; LIKE's wildcards are plain characters.
    expect(usernames((await auditor.call('GET', '/users?q=0042')).body)).toEqual([]);
    expect(usernames((await auditor.call('GET', '/users?q=%25')).body)).toEqual([]);
  });

  it('sorts by each column both ways and pages by offset with the total', async () => {
    const all = await auditor.call('GET', '/users?q=sorter&sort=username&count=true&limit=3');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ total: 7, next_offset: 3, next_cursor: null });
    expect(usernames(all.body)).toEqual(['sorter1', 'sorter2', 'sorter3']);
    const last = await auditor.call('GET', '/users?q=sorter&sort=username&count=true&limit=3&offset=6');
    expect(last.body).toMatchObject({ total: 7, next_offset: null });
    expect(usernames(last.body)).toEqual(['sorter7']);
    const byEmailDesc = await auditor.call('GET', '/users?q=sorter&sort=email&order=desc');
    expect(usernames(byEmailDesc.body)).toEqual(['sorter1', 'sorter2', 'sorter3', 'sorter4', 'sorter5', 'sorter6', 'sorter7']);
    const byName = await auditor.call('GET', '/users?q=sorter&sort=name');
    const names = byName.body.items.map((u: { name: string }) => u.name);
    expect(names).toEqual([...names].sort());
    for (const sort of ['status', 'createdAt']) expect((await auditor.call('GET', `/users?q=sorter&sort=${sort}&order=desc`)).body.items).toHaveLength(7);
    // Without count, no total; the default order still pages by cursor.
    const plain = await auditor.call('GET', '/users?q=sorter&limit=2');
    expect(plain.body.total).toBeUndefined();
    expect(typeof plain.body.next_cursor).toBe('string');
  });

  it('answers 400 in problem+json, never 500, for a bad sort, order, offset or a cursor with a sort', async () => {
    const cursor = (await auditor.call('GET', '/users?limit=1')).body.next_cursor;
    for (const [query, field] of [['sort=password', 'sort'], ['order=up', 'order'], ['offset=-1', 'offset'], ['count=yes', 'count'],
      [`sort=name&cursor=${cursor}`, 'cursor'], [`offset=5&cursor=${cursor}`, 'cursor']] as const) {
      const res = await auditor.call('GET', `/users?${query}`);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.field).toBe(field);
    }
  });
});

describe('GET /users/export', () => {
  it('streams every match as CSV with a BOM, defuses formulas, and records the export with its filter and count', async () => {
    await createUser({ username: 'csv.one', name: '=SUM(A1:A9)', email: 'csv1@export.example', title: '+danger', phone: '-1' });
    await createUser({ username: 'csv.two', name: 'Comma, "Quoted"', email: 'csv2@export.example', employeeNumber: '@home' });
    const res = await fetch(`${server.url}/admin/api/v1/users/export?q=csv.`, { headers: { authorization: `Bearer ${auditor.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="people-\d{4}-\d{2}-\d{2}\.csv"$/);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const [header, ...rows] = bytes.toString('utf8').slice(1).trimEnd().split('\r\n');
    expect(header).toBe('id,username,name,givenName,familyName,email,employeeNumber,title,phone,status,createdAt');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain(",csv.one,'=SUM(A1:A9),");
    expect(rows[0]).toContain(",'+danger,'-1,active,");
    expect(rows[1]).toContain(',csv.two,"Comma, ""Quoted""","Comma,","""Quoted""",csv2@export.example,\'@home,');
    const events = await superAdmin.call('GET', '/audit-events?action=user.exported&limit=1');
    expect(events.body.items[0]).toMatchObject({ action: 'user.exported', changes: { filter: { q: 'csv.' }, count: 2, format: 'csv' } });
  });

  it('is refused without a role and answers 400 for an unknown filter', async () => {
    expect((await fetch(`${server.url}/admin/api/v1/users/export`)).status).toBe(401);
    const bad = await auditor.call('GET', '/users/export?sort=name');
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('sort');
  });

  it('is described in OpenAPI as text/csv, beside the set-up link route', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> };
    expect(Object.keys(doc.paths['/users/export']!.get!.responses['200']!.content!)).toEqual(['text/csv']);
    expect(doc.paths['/users/{id}/setup-link']!.post).toBeDefined();
  });
});

describe('POST /users/{id}/setup-link', () => {
  /** The public page's form: its CSRF cookie and token, as a browser would get them. */
  async function openLink(url: string): Promise<{ status: number; cookie: string; csrf: string; html: string }> {
    const res = await fetch(url);
    const html = await res.text();
    return { status: res.status, html, cookie: (res.headers.getSetCookie()).map((c) => c.split(';')[0]).join('; '), csrf: /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '' };
  }
  async function submit(url: string, password: string, confirm = password): Promise<{ status: number; html: string }> {
    const form = await openLink(url);
    const res = await fetch(new URL('/password-setup', url), {
      method: 'POST', headers: { cookie: form.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: form.csrf, token: new URL(url).searchParams.get('token')!, password, confirm }),
    });
    return { status: res.status, html: await res.text() };
  }

  it('gives a link, shown once, that sets the password once; a newer link voids the older; both are audited', async () => {
    const person = await createUser({ username: 'linked', email: 'linked@example.com' });
    const first = await admin.call('POST', `/users/${person.id}/setup-link`, {});
    expect(first.status).toBe(201);
    expect(first.body.url).toMatch(/\/password-setup\?token=[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(first.body.expiresAt) - Date.now()).toBeGreaterThan(6.9 * 24 * 3600 * 1000);
    const second = await admin.call('POST', `/users/${person.id}/setup-link`, { expiresInDays: 1 });
    expect(Date.parse(second.body.expiresAt) - Date.now()).toBeLessThan(24 * 3600 * 1000 + 60000);
    expect((await openLink(first.body.url)).status).toBe(404);
    const stored = await db.query('select token_hash from password_setup_links where user_id = $1', [person.id]);
    expect(stored.rows.map((r) => r.token_hash).join()).not.toContain(new URL(second.body.url).searchParams.get('token'));

    expect((await submit(second.body.url, 'short')).status).toBe(400);
    expect((await submit(second.body.url, 'a-long-enough-password', 'another')).status).toBe(400);
    const done = await submit(second.body.url, 'a-long-enough-password');
    expect(done.status).toBe(200);
    expect(done.html).toContain('password-setup-done');
    expect((await openLink(second.body.url)).status).toBe(404);
    const methods = await admin.call('GET', `/users/${person.id}/methods`);
    expect(methods.body.password).toBe(true);
    const events = await superAdmin.call('GET', `/audit-events?targetType=user&targetId=${person.id}&limit=20`);
    const actions = events.body.items.map((e: { action: string }) => e.action);
    expect(actions.filter((a: string) => a.startsWith('user.password_setup'))).toEqual(['user.password_setup_link_used', 'user.password_setup_link_created', 'user.password_setup_link_created']);
  });

  it('answers a made-up token with the invalid page, and refuses auditors, unknown and deprovisioned people, and super admins for a user_admin', async () => {
    const made = await openLink(`${server.url}/password-setup?token=made-up`);
    expect(made.status).toBe(404);
    expect(made.html).toContain('password-setup-invalid');
    const person = await createUser({ username: 'refusals', email: 'refusals@example.com' });
    expect((await auditor.call('POST', `/users/${person.id}/setup-link`, {})).status).toBe(403);
    expect((await admin.call('POST', '/users/00000000-0000-4000-8000-000000000000/setup-link', {})).status).toBe(404);
    expect((await admin.call('POST', `/users/${person.id}/setup-link`, { expiresInDays: 99 })).status).toBe(400);
    const boss = await superAdmin.call('POST', '/users', { username: 'boss', email: 'boss@example.com', adminRoles: ['super_admin'] });
    expect((await admin.call('POST', `/users/${boss.body.id}/setup-link`, {})).status).toBe(403);
    await admin.call('POST', `/users/${person.id}/deprovision`);
    expect((await admin.call('POST', `/users/${person.id}/setup-link`, {})).status).toBe(412);
    expect((await db.query('select count(*)::int as n from password_setup_links where user_id = any($1::uuid[])', [[person.id, boss.body.id]])).rows[0].n).toBe(0);
  });
});

describe('GET /users/{id}/entitlements (paths)', () => {
  it('names each assignment path that gives an app, with its roles, including a department inherited from an ancestor', async () => {
    const person = await createUser({ username: 'pathfinder', email: 'path@example.com' });
    const top = (await admin.call('POST', '/departments', { name: 'Engineering' })).body;
    const team = (await admin.call('POST', '/departments', { name: 'Platform', parentId: top.id })).body;
    expect((await admin.call('POST', `/departments/${team.id}/members`, { userId: person.id })).status).toBeLessThan(300);
    const group = (await admin.call('POST', '/groups', { name: 'On call' })).body;
    expect((await admin.call('POST', `/groups/${group.id}/members`, { userId: person.id })).status).toBe(204);
    const app = (await superAdmin.call('POST', '/apps', { name: 'Wiki', redirectUris: ['https://wiki.example/cb'] })).body;
    await superAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'wiki.editor', name: 'Editor' });
    await superAdmin.call('POST', `/apps/${app.id}/roles`, { key: 'wiki.reader', name: 'Reader' });
    for (const body of [
      { principalType: 'department', principalId: top.id, includeSubdepartments: true, roleKeys: ['wiki.reader'] },
      { principalType: 'group', principalId: group.id, roleKeys: ['wiki.editor'] },
      { principalType: 'user', principalId: person.id },
    ]) expect((await superAdmin.call('POST', `/apps/${app.id}/assignments`, body)).status).toBe(201);

    const res = await auditor.call('GET', `/users/${person.id}/entitlements`);
    expect(res.status).toBe(200);
    const wiki = res.body.items.find((e: { appId: string }) => e.appId === app.id);
    expect(wiki).toMatchObject({ appName: 'Wiki', allowed: true, roles: ['wiki.editor', 'wiki.reader'] });
    expect(wiki.paths.map((p: Record<string, unknown>) => ({ type: p.principalType, name: p.principalName, via: (p.via as { name: string } | null)?.name ?? null, roles: p.roles }))).toEqual([
      { type: 'user', name: null, via: null, roles: [] },
      { type: 'group', name: 'On call', via: null, roles: ['wiki.editor'] },
      { type: 'department', name: 'Engineering', via: 'Platform', roles: ['wiki.reader'] },
    ]);
  });
});
