// Microsoft's SCIM reference collection, run by newman through `npm run conformance:scim`
// (test/conformance/scim.ts: a fresh database, a OneID server on a port, a SCIM token from
// the CLI), folders "Endpoint tests" through "Teardown garbage".
//
// Every assertion must pass. Where OneID reads the collection's requests leniently,
// the test also checks what it actually did, so a pass cannot hide a wrong write.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/server.ts';

interface Failure { folder: string; request: string; assertion: string; message: string }
interface Executed { folder: string; name: string; method: string; url: string; status?: number; body?: string; error?: string }
interface Report {
  assertions: { total: number; failed: number };
  requests: { total: number; failed: number };
  failures: Failure[];
  executed: Executed[];
}

let report: Report;
let exitCode: number;
let output: string;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oneid-scim-conformance-'));
  const file = path.join(dir, 'report.json');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  for (const key of ['TEST_DATABASE_URL', 'DATABASE_URL']) if (process.env[key]) env[key] = process.env[key];
  ({ code: exitCode, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'test/conformance/scim.ts', '--quiet', '--report', file], { cwd: ROOT, env, timeout: 240000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  }));
  if (!fs.existsSync(file)) throw new Error(`the conformance run wrote no report:\n${output}`);
  report = JSON.parse(fs.readFileSync(file, 'utf8')) as Report;
  fs.rmSync(dir, { recursive: true, force: true });
}, 300000);

const responseOf = (name: string, nth = 0) => report.executed.filter((e) => e.name === name)[nth];

describe('the Microsoft SCIM reference collection (newman)', () => {
  it('runs every request of the seven folders', () => {
    expect(report.requests).toEqual({ total: 76, failed: 0 });
    expect(report.executed.every((e) => e.status !== undefined && !e.error)).toBe(true);
    expect(report.assertions.total).toBe(103);
  });

  it('passes every assertion', () => {
    expect(report.failures).toEqual([]);
    expect(report.assertions.failed).toBe(0);
    expect(exitCode).toBe(0);
  });

  it('skips member ids that name no user, and keeps the member labels the client sent', () => {
    // "value": "string id 1" names no user: the PATCH succeeds and adds nobody.
    for (const name of ['Group patch add member', 'Group patch add member2']) expect(responseOf(name)!.status).toBe(204);
    expect(responseOf('Get group', 0)!.body).not.toContain('string id');
    // members[].displayName (Microsoft's spelling of display) is kept as the member's label.
    const group = JSON.parse(responseOf('Get group by id', 0)!.body!);
    expect(group.members).toEqual([expect.objectContaining({ display: 'new User', type: 'User' })]);
  });
});
