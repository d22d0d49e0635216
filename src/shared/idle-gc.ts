// A node that was busy and has gone quiet gives back the memory its garbage holds.
//
// Under load V8 grows its heap, and after the load it shrinks it again only when its own
// heuristics see the process idle. OneID is never quite idle (the audit chainer runs four times
// a second, load balancers poll /readyz), so the heap can keep tens of MB of garbage long after
// a load. So after at least `minRequests` requests since the last collection, once fewer than
// `quietRequests` arrive in a `windowMs` window, OneID collects the garbage once (in full passes,
// see `compacting`). It costs tens of milliseconds of a core that is idle at that moment.
//
// It needs `gc`, which exists when node runs with --expose-gc (`npm start` passes it); without
// it nothing happens. Pass it through `compacting` (below): one plain full collection frees the
// garbage but keeps the pages it was spread over.
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

/**
 * A collection that gives the heap's free pages back. V8's first full collection after a load
 * frees the garbage but leaves most pages sparsely used, and keeps them. A later one, finding
 * those pages sparse, moves their survivors together and releases the emptied pages, but each
 * moves only so much (a large sparse heap needs a third pass to shrink most of the way). So it
 * collects at least twice, then again while the last collection still gave back a MiB or more,
 * `maxPasses` at most. Node 20's `gc` has no option that does this in one call (given
 * `{ type: 'major', flavor: 'last-resort' }` it ran no full collection at all).
 */
export function compacting(gc: (() => void) | undefined, heapTotal = (): number => process.memoryUsage().heapTotal, maxPasses = 6): (() => void) | undefined {
  if (!gc) return undefined;
  return () => {
    gc();
    let before = heapTotal();
    for (let pass = 2; pass <= maxPasses; pass += 1) {
      gc();
      const after = heapTotal();
      if (before - after < 2 ** 20) return;
      before = after;
    }
  };
}
