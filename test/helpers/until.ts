// Waits for something that happens in the background (a job, a delivery, a push): polls `fn`
// until it returns a truthy value, which it returns; fails naming `what` after `ms`.
export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 30000, everyMs = 150): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
