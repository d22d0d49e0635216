// How deeply a parsed JSON value nests, measured without recursion: a body nested 200,000
// levels parses fine (JSON.parse is iterative) but overflows the stack of any recursive walk
// after it (copying, validation, logging), so request edges refuse deep input first.

/** Whether `value` nests objects/arrays more than `max` levels deep (a scalar is depth 0). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node as Record<string, unknown>)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}
