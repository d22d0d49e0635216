// A node that was busy and has gone quiet gives back the memory its garbage holds.
//
// Under load V8 grows its heap, and after the load it shrinks it again only when its own
// heuristics see the process idle. OneID is never quite idle (the audit chainer runs four times
// a second, load balancers poll /readyz), and a minute after a load the heap still held 70 MB of
// garbage in some bench runs, 30 MB in others. So after at least `minRequests` requests since
// the last collection, once fewer than `quietRequests` arrive in a `windowMs` window, OneID runs
// one full collection. It costs tens of milliseconds of a core that is idle at that moment.
//
// It needs `gc`, which exists when node runs with --expose-gc (`npm start` passes it); without
// it nothing happens.
export interface IdleCollectorOptions {
  /** Requests since the last collection before it counts as having been busy. */
  minRequests: number;
  /** Fewer requests than this in one window is quiet (health checks are not load). */
  quietRequests: number;
  windowMs: number;
  gc: (() => void) | undefined;
  /** Called after a collection with what it took (for the log). */
  collected?: (ms: number) => void;
}

export interface IdleCollector {
  /** Count one request. */
  request(): void;
  /** Close one window: collects if the node was busy and this window was quiet. */
  tick(): void;
  /** Ticks every windowMs (an unref'd timer) until stop(); does nothing without gc. */
  start(): void;
  stop(): void;
}

export function idleCollector(opts: IdleCollectorOptions): IdleCollector {
  let sinceCollection = 0;
  let inWindow = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const quiet = inWindow < opts.quietRequests;
    inWindow = 0;
    if (!opts.gc || !quiet || sinceCollection < opts.minRequests) return;
    sinceCollection = 0;
    const started = performance.now();
    opts.gc();
    opts.collected?.(performance.now() - started);
  };
  return {
    request: () => {
      sinceCollection += 1;
      inWindow += 1;
    },
    tick,
    start: () => {
      if (!opts.gc || timer) return;
      timer = setInterval(tick, opts.windowMs);
      timer.unref();
    },
    stop: () => {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
