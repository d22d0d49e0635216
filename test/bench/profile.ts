// Summarises a V8 CPU profile (from `BENCH_CPU_PROF=1 npm run bench`, or node --cpu-prof):
// self time by package / OneID file, the top functions by self time, and the inclusive time of
// OneID's own functions. Usage:
//   node --import tsx test/bench/profile.ts test/bench/results/<file>.cpuprofile [top] [fromUs toUs] [operations]
// fromUs/toUs restrict it to one measured window (run.ts prints them; monotonic clock, µs);
// with the number of operations in that window, times are also shown in µs per operation.
import fs from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const file = process.argv[2];
const top = Number(process.argv[3] ?? 25);
const fromUs = process.argv[4] ? Number(process.argv[4]) : -Infinity;
const toUs = process.argv[5] ? Number(process.argv[5]) : Infinity;
const operations = process.argv[6] ? Number(process.argv[6]) : undefined;
process.stdout.on('error', () => process.exit(0)); // piped into head
if (!file) {
  process.stderr.write('usage: node --import tsx test/bench/profile.ts <file.cpuprofile> [top]\n');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;

// Time per sample: the delta that follows it. Sample i was taken at startTime + sum(timeDeltas[0..i]).
const selfMs = new Map<number, number>();
let at = profile.startTime;
profile.samples.forEach((id, i) => {
  at += profile.timeDeltas[i] ?? 0;
  if (at < fromUs || at > toUs) return;
  selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000);
});
const totalMs = [...selfMs.values()].reduce((a, b) => a + b, 0);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** "oidc-provider", "src/oidc/adapter.ts", "(idle)", "node:internal", ... */
function bucket(cf: CallFrame): string {
  const { url, functionName } = cf;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const src = url.indexOf('/src/');
  if (src !== -1) return url.slice(src + 1).replace(/\?.*$/, '');
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

const label = (cf: CallFrame): string => `${cf.functionName || '(anonymous)'} ${bucket(cf)}:${cf.lineNumber + 1}`;
const pct = (ms: number): string => `${(ms / totalMs * 100).toFixed(1).padStart(5)}%${operations ? ` ${(ms * 1000 / operations).toFixed(0).padStart(5)} µs/op` : ''}`;

const buckets = new Map<string, number>();
const functions = new Map<string, number>();
for (const [id, ms] of selfMs) {
  const cf = byId.get(id)!.callFrame;
  buckets.set(bucket(cf), (buckets.get(bucket(cf)) ?? 0) + ms);
  functions.set(label(cf), (functions.get(label(cf)) ?? 0) + ms);
}

// Inclusive time of each OneID function (src/): every sample whose stack contains it, once.
const inclusive = new Map<string, number>();
for (const [id, ms] of selfMs) {
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const cf = byId.get(cur)!.callFrame;
    if (!cf.url.includes('/src/')) continue;
    const l = label(cf);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + ms);
  }
}

const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
const busy = totalMs - (buckets.get('(idle)') ?? 0);
process.stdout.write(`${file}: ${(totalMs / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy (${pct(busy).trim()})\n`);
process.stdout.write('\nSelf time by package / file:\n');
for (const [k, v] of sorted(buckets)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
process.stdout.write('\nTop functions by self time:\n');
for (const [k, v] of sorted(functions)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
process.stdout.write('\nOneID functions by inclusive time:\n');
for (const [k, v] of sorted(inclusive)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
