// The idle collection: one full garbage collection after a busy spell, once requests go quiet;
// health checks alone neither start one nor keep one from happening.
import { execFileSync } from 'node:child_process';
import { compacting, idleCollector } from '../../src/shared/idle-gc.ts';
import { jest } from '@jest/globals';

function setup(gc: (() => void) | undefined = jest.fn()) {
  const collector = idleCollector({ minRequests: 100, quietRequests: 5, windowMs: 10_000, gc });
  const requests = (n: number) => { for (let i = 0; i < n; i += 1) collector.request(); };
  return { collector, requests, gc: gc as jest.Mock<() => void> };
}

describe('idleCollector', () => {
  it('collects once when a busy node goes quiet, and not again until it has been busy again', () => {
    const { collector, requests, gc } = setup();
    requests(500);
    collector.tick(); // the busy window itself
    expect(gc).not.toHaveBeenCalled();
    requests(2); // two health checks
    collector.tick();
    expect(gc).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 5; i += 1) { requests(2); collector.tick(); }
    expect(gc).toHaveBeenCalledTimes(1);
    requests(150);
    collector.tick();
    collector.tick();
    expect(gc).toHaveBeenCalledTimes(2);
  });

  it('does not collect under steady load, nor after only a few requests', () => {
    const { collector, requests, gc } = setup();
    for (let i = 0; i < 20; i += 1) { requests(50); collector.tick(); }
    expect(gc).not.toHaveBeenCalled();
    const quietNode = setup();
    for (let i = 0; i < 30; i += 1) { quietNode.requests(3); quietNode.collector.tick(); }
    expect(quietNode.gc).not.toHaveBeenCalled(); // 90 health checks are not a busy spell
  });

  it('does nothing without gc (node started without --expose-gc)', () => {
    const { collector, requests } = setup(undefined);
    requests(500);
    expect(() => { collector.tick(); collector.tick(); }).not.toThrow();
    collector.start();
    collector.stop();
  });

  it('ticks on its own timer, every window, until stopped', () => {
    jest.useFakeTimers();
    try {
      const { collector, requests, gc } = setup();
      collector.start();
      requests(200);
      jest.advanceTimersByTime(10_000);
      jest.advanceTimersByTime(10_000);
      expect(gc).toHaveBeenCalledTimes(1);
      collector.stop();
      requests(200);
      jest.advanceTimersByTime(30_000);
      expect(gc).toHaveBeenCalledTimes(1);
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('compacting', () => {
  it('is absent without gc; collects twice, then again while the last collection gave back a MiB or more, at most maxPasses', () => {
    expect(compacting(undefined)).toBeUndefined();
    const MiB = 2 ** 20;
    // A heap that each collection shrinks by `steps[i]` bytes (then by nothing).
    const heap = (steps: number[]) => {
      let total = 500 * MiB;
      let calls = 0;
      const gc = jest.fn(() => { total -= steps[calls] ?? 0; calls += 1; });
      return { gc, total: () => total };
    };
    const still = heap([]);
    compacting(still.gc, still.total)?.();
    expect(still.gc).toHaveBeenCalledTimes(2);
    // 330 -> 164 -> 45 MB, as a sparse heap went: the third collection gave back most, a fourth found nothing.
    const sparse = heap([0, 166 * MiB, 119 * MiB, MiB / 2]);
    compacting(sparse.gc, sparse.total)?.();
    expect(sparse.gc).toHaveBeenCalledTimes(4);
    const endless = heap(Array(20).fill(10 * MiB));
    compacting(endless.gc, endless.total, 6)?.();
    expect(endless.gc).toHaveBeenCalledTimes(6);
  });

  // What the idle node is for: a heap left sparse by a load (every 40th object survives) is
  // given back by `compacting`, run in a node of its own. One plain collection keeps nearly all
  // of its pages.
  it('gives back the pages a load left sparse, where one collection keeps them', () => {
    const module = new URL('../../src/shared/idle-gc.ts', import.meta.url).href;
    const heapAfter = (collect: string): number => {
      const script = `
        import { compacting } from ${JSON.stringify(module)};
        const keep = []; let load = [];
        for (let i = 0; i < 5e6; i += 1) { const o = { i, s: 'x' + i }; load.push(o); if (i % 40 === 0) keep.push(o); }
        load = null;
        ${collect}
        process.stdout.write(JSON.stringify({ total: process.memoryUsage().heapTotal, kept: keep.length }));`;
      const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })) as { total: number; kept: number };
      expect(out.kept).toBe(125_000); // every survivor is still there
      return out.total / 2 ** 20;
    };
    const once = heapAfter('gc();');
    const compacted = heapAfter('compacting(gc)();'); // what the idle node runs
    expect(once).toBeGreaterThan(100);
    expect(compacted).toBeLessThan(60);
  });
});
