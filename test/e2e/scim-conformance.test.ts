// Microsoft's SCIM reference collection, run by newman through `npm run conformance:scim`
// (scripts/conformance-scim.ts: a fresh database, a OneID server on a port, a SCIM token from
// the CLI), folders "Endpoint tests" through "Teardown garbage".
//
// Every assertion must pass, except the few where the collection contradicts RFC 7643/7644
// (KNOWN_RFC_CONFLICTS in the script, explained in the README); for those, this test checks
// that OneID answered the RFC's way, so they cannot hide a real failure.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/server.ts';

interface Failure { folder: string; request: string; assertion: string; message: string; knownConflict?: string }
interface Executed { folder: string; name: string; method: string; url: string; status?: number; body?: string; error?: string }
interface Report {
  assertions: { total: number; failed: number };
  requests: { total: number; failed: number };
  failures: Failure[];
  unexpected: Failure[];
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
    execFile(process.execPath, ['--import', 'tsx', 'scripts/conformance-scim.ts', '--quiet', '--report', file], { cwd: ROOT, env, timeout: 240000 }, (err, stdout, stderr) => {
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

  it('passes every assertion that does not contradict RFC 7643/7644', () => {
    expect(report.unexpected).toEqual([]);
    expect(exitCode).toBe(0);
  });

  it('answers the assertions that contradict the RFC the way the RFC says', () => {
    expect(report.failures.map((f) => `${f.request} / ${f.assertion}`).sort()).toEqual([
      'Get group by id / Body contians user',
      'Group patch add member / Status code is 204',
      'Group patch add member2 / Status code is 204',
    ]);
    // "value": "string id 1" is not a member: 400 invalidValue, and the group is left as it was.
    for (const name of ['Group patch add member', 'Group patch add member2']) {
      const res = responseOf(name)!;
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body!)).toMatchObject({ status: '400', scimType: 'invalidValue' });
    }
    expect(responseOf('Get group', 0)!.body).not.toContain('string id');
    // members[].displayName is not a Group attribute: the member is shown with the user's own name.
    const group = JSON.parse(responseOf('Get group by id', 0)!.body!);
    expect(group.members).toEqual([expect.objectContaining({ display: 'lennay', type: 'User' })]);
  });
});
