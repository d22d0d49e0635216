// Black-box: what the console's Departments and Groups pages need from the admin API: totals
// counted in SQL (count=true), a department list with per-row counts (counts=true), and group
// members added and removed many at once by id, username or email (POST /groups/:id/members/batch).
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startServer, testMasterKey, type RunningServer } from '../helpers/server.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';

const UNKNOWN = '7f1b7e2a-4a5b-4c7d-8e9f-0a1b2c3d4e5f';

let database: TestDatabase;
let server: RunningServer;
let admin: AdminClient;
let auditor: AdminClient;

beforeAll(async () => {
  database = await createTestDatabase('oneid_test_admin_directory_batch');
  const env = { DATABASE_URL: database.url, ONEID_MASTER_KEY: testMasterKey() };
  server = await startServer(env);
  [admin, auditor] = await Promise.all([adminClient(server.url, env, ['user_admin']), adminClient(server.url, env, ['auditor'])]);
}, 120000);

afterAll(async () => {
  await server?.stop();
  await database?.drop();
});

let n = 0;
async function createUser(): Promise<{ id: string; username: string; email: string }> {
  n += 1;
  const res = await admin.call('POST', '/users', { username: `batch${n}`, email: `batch${n}@example.com` });
  expect(res.status).toBe(201);
  return res.body;
}

const ids = (body: { items: { id: string }[] }): string[] => body.items.map((x) => x.id);

describe('GET /departments with counts and totals', () => {
  it('gives each department its direct members and sub-departments, and the total over all pages', async () => {
    const top = (await admin.call('POST', '/departments', { name: 'Counted' })).body;
    const child = (await admin.call('POST', '/departments', { name: 'Counted child', parentId: top.id })).body;
    await admin.call('POST', '/departments', { name: 'Counted grandchild', parentId: child.id });
    const [u1, u2, u3] = [await createUser(), await createUser(), await createUser()];
    for (const u of [u1, u2]) expect((await admin.call('POST', `/departments/${top.id}/members`, { userId: u.id })).status).toBe(204);
    expect((await admin.call('POST', `/departments/${child.id}/members`, { userId: u3.id })).status).toBe(204);
    expect((await admin.call('POST', `/departments/${child.id}/members`, { userId: u1.id })).status).toBe(204);

    const page = await auditor.call('GET', `/departments?q=counted&counts=true&count=true&limit=2`);
    expect(page.status).toBe(200);
    expect(page.body.total).toBe(3);
    expect(page.body.items.map((d: { name: string; memberCount: number; subDepartmentCount: number }) => [d.name, d.memberCount, d.subDepartmentCount]))
      .toEqual([['Counted', 2, 1], ['Counted child', 2, 1]]);
    // Without the flags the answer is as before: no counts, no total.
    const plain = await auditor.call('GET', `/departments?parentId=${top.id}`);
    expect(plain.body.total).toBeUndefined();
    expect(plain.body.items[0].memberCount).toBeUndefined();

    const direct = await auditor.call('GET', `/departments/${top.id}/members?count=true&limit=1`);
    expect(direct.body).toMatchObject({ total: 2 });
    expect(direct.body.items).toHaveLength(1);
    // Recursive: u1 is in two departments of the subtree and counts once.
    expect((await auditor.call('GET', `/departments/${top.id}/members?count=true&recursive=true`)).body.total).toBe(3);
    expect((await auditor.call('GET', '/departments?count=maybe')).body).toMatchObject({ code: 'request.invalid', field: 'count' });
  });
});

describe('GET /groups with totals', () => {
  it('counts the matching groups and a group\'s members over all pages', async () => {
    for (const name of ['Tally one', 'Tally two', 'Tally three']) expect((await admin.call('POST', '/groups', { name })).status).toBe(201);
    const page = await auditor.call('GET', '/groups?q=tally&count=true&limit=1');
    expect(page.body.total).toBe(3);
    expect(page.body.items).toHaveLength(1);
    const g = page.body.items[0];
    const u = await createUser();
    await admin.call('POST', `/groups/${g.id}/members`, { userId: u.id });
    expect((await auditor.call('GET', `/groups/${g.id}/members?count=true`)).body).toMatchObject({ total: 1 });
    expect((await auditor.call('GET', `/groups/${g.id}/members?count=true&status=suspended`)).body).toMatchObject({ total: 0, items: [] });
  });
});

describe('POST /groups/:id/members/batch', () => {
  it('adds by username, email and id in one go and says what happened to each line', async () => {
    const g = (await admin.call('POST', '/groups', { name: 'Batch adds' })).body;
    const [a, b, c] = [await createUser(), await createUser(), await createUser()];
    expect((await admin.call('POST', `/groups/${g.id}/members`, { userId: c.id })).status).toBe(204);
    const res = await admin.call('POST', `/groups/${g.id}/members/batch`, {
      add: [a.username, b.email.toUpperCase(), c.id, 'nobody-here', a.email],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ added: 2, removed: 0 });
    expect(res.body.results).toEqual([
      { ref: a.username, userId: a.id, outcome: 'added' },
      { ref: b.email.toUpperCase(), userId: b.id, outcome: 'added' },
      { ref: c.id, userId: c.id, outcome: 'already_member' },
      { ref: 'nobody-here', userId: null, outcome: 'not_found' },
      { ref: a.email, userId: a.id, outcome: 'duplicate' },
    ]);
    expect(ids((await admin.call('GET', `/groups/${g.id}/members`)).body).sort()).toEqual([a.id, b.id, c.id].sort());
    // One version bump for the whole batch, and one audit event per member added.
    expect(res.body.group.version).toBe(g.version + 2);
    const events = (await auditor.call('GET', `/audit-events?targetType=group&targetId=${g.id}&limit=100`)).body.items;
    expect(events.filter((e: { action: string }) => e.action === 'group.member_added')).toHaveLength(3);
  });

  it('removes several at once, reporting who was no member', async () => {
    const g = (await admin.call('POST', '/groups', { name: 'Batch removes' })).body;
    const [a, b, c] = [await createUser(), await createUser(), await createUser()];
    await admin.call('POST', `/groups/${g.id}/members/batch`, { add: [a.id, b.id] });
    const res = await admin.call('POST', `/groups/${g.id}/members/batch`, { remove: [a.id, b.username, c.id, UNKNOWN] });
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { outcome: string }) => r.outcome)).toEqual(['removed', 'removed', 'not_member', 'not_found']);
    expect((await admin.call('GET', `/groups/${g.id}/members?count=true`)).body.total).toBe(0);
    const actions = (await auditor.call('GET', `/audit-events?targetType=group&targetId=${g.id}&limit=100`)).body.items.map((e: { action: string }) => e.action);
    expect(actions.filter((a: string) => a === 'group.member_removed')).toHaveLength(2);
  });

  it('does not add a deprovisioned person', async () => {
    const g = (await admin.call('POST', '/groups', { name: 'Batch gone' })).body;
    const gone = await createUser();
    expect((await admin.call('POST', `/users/${gone.id}/deprovision`, {})).status).toBeLessThan(300);
    const res = await admin.call('POST', `/groups/${g.id}/members/batch`, { add: [gone.id] });
    expect(res.body.results).toEqual([{ ref: gone.id, userId: gone.id, outcome: 'deprovisioned' }]);
    expect((await admin.call('GET', `/groups/${g.id}/members?count=true`)).body.total).toBe(0);
  });

  it('refuses empty and oversized batches with 400, an unknown group with 404, and an auditor with 403, changing nothing', async () => {
    const g = (await admin.call('POST', '/groups', { name: 'Batch limits' })).body;
    const u = await createUser();
    expect((await admin.call('POST', `/groups/${g.id}/members/batch`, {})).status).toBe(400);
    const tooMany = await admin.call('POST', `/groups/${g.id}/members/batch`, { add: Array.from({ length: 1001 }, (_, i) => `someone${i}`) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.field).toBe('add');
    const split = await admin.call('POST', `/groups/${g.id}/members/batch`, { add: Array.from({ length: 600 }, (_, i) => `a${i}`), remove: Array.from({ length: 401 }, (_, i) => `r${i}`) });
    expect(split.status).toBe(400);
    expect((await admin.call('POST', `/groups/${g.id}/members/batch`, { add: [''] })).status).toBe(400);
    expect((await admin.call('POST', `/groups/${g.id}/members/batch`, { add: [u.id], extra: 1 })).body.field).toBe('extra');
    expect((await admin.call('POST', `/groups/${UNKNOWN}/members/batch`, { add: [u.id] })).status).toBe(404);
    const refused = await auditor.call('POST', `/groups/${g.id}/members/batch`, { add: [u.id] });
    expect(refused.status).toBe(403);
    expect((await admin.call('GET', `/groups/${g.id}/members?count=true`)).body.total).toBe(0);
    expect((await admin.call('GET', `/groups/${g.id}`)).body.version).toBe(g.version);
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = await (await fetch(`${server.url}/admin/api/v1/openapi.json`)).json() as { paths: Record<string, Record<string, { summary: string }>> };
    expect(doc.paths['/groups/{id}/members/batch']?.post?.summary).toMatch(/many members/);
  });
});
