// Ceiling for scenario 2: how many argon2id verifications per second one core can do with
// OneID's parameters (PASSWORD_MEMORY_KIB / PASSWORD_TIME_COST / PASSWORD_PARALLELISM, default
// m=19456 KiB, t=2, p=1). run.ts starts it pinned to the server core, like OneID, with the same
// number of concurrent verifications as the sign-in scenario has virtual users, and with one
// libuv thread (UV_THREADPOOL_SIZE=1), so the core hashes one password at a time: the most it can
// do. Several threads taking turns on one core hash slower (about a fifth with four), each turn
// finding the caches filled with another thread's 19 MiB work area, so a ceiling measured that
// way would flatter whatever is compared with it.
//
// env: BENCH_CONCURRENCY, BENCH_DURATION_S, BENCH_WARMUP_S, PASSWORD_* ; prints one JSON line.
import argon2 from 'argon2';

const params = {
  memoryCost: Number(process.env.PASSWORD_MEMORY_KIB ?? 19456),
  timeCost: Number(process.env.PASSWORD_TIME_COST ?? 2),
  parallelism: Number(process.env.PASSWORD_PARALLELISM ?? 1),
};
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const durationS = Number(process.env.BENCH_DURATION_S ?? 10);
const warmupS = Number(process.env.BENCH_WARMUP_S ?? 2);

const password = 'correct horse battery staple';
const hash = await argon2.hash(password, { type: argon2.argon2id, ...params });

const start = performance.now();
const measureFrom = start + warmupS * 1000;
const end = measureFrom + durationS * 1000;
const latencies: number[] = [];
// Tells run.ts when the measured window starts and ends (it reads this process's CPU then).
setTimeout(() => process.stderr.write('@measure-start\n'), warmupS * 1000);
setTimeout(() => process.stderr.write('@measure-end\n'), (warmupS + durationS) * 1000);
let failures = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (performance.now() < end) {
    const t0 = performance.now();
    const ok = await argon2.verify(hash, password);
    const t1 = performance.now();
    if (t1 >= measureFrom && t1 <= end) {
      latencies.push(t1 - t0);
      if (!ok) failures += 1;
    }
  }
}));
latencies.sort((a, b) => a - b);
const at = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
process.stdout.write(`${JSON.stringify({
  rps: latencies.length / durationS, ok: latencies.length - failures, errors: failures,
  p50: at(0.5), p99: at(0.99), durationS, params, concurrency,
})}\n`);
