// The idle collection: one full garbage collection after a busy spell, once requests go quiet;
// health checks alone neither start one nor keep one from happening.
import { idleCollector } from '../../src/shared/idle-gc.ts';
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
