// Text PostgreSQL cannot take, refused where it enters: after a JSON body is parsed, and in query
// parameters. PostgreSQL stores no NUL character (a text value fails with 22021, JSON with
// 22P05), and JSON with an unpaired UTF-16 surrogate ("\ud800", which JSON.parse accepts and
// JSON.stringify writes back as an escape) fails jsonb's input with 22P02; in a text parameter the
// driver's UTF-8 encoding silently turns the surrogate into U+FFFD instead, which would store
// something the client never sent. Either way the request is a client error: it is answered 400
// before anything is written, with a message that says which value (never echoing it) and why.
//
// Used by SCIM and the admin API at their input, and by the OIDC adapter before it stores a
// payload (request parameters such as state or nonce travel in it).

export type TextProblem = 'nul' | 'unpaired_surrogate';

export interface IllFormedText {
  /** Where: `members[0].display`, `filter`; '' for the value itself. */
  path: string;
  /** The problem is in an object key (an attribute name) at `path`, not in a value. */
  inKey: boolean;
  problem: TextProblem;
}

// String.prototype.isWellFormed (ES2024) is in Node 20; the project's TypeScript lib is ES2022.
export const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** What is wrong with this string for storage, if anything. */
export function textProblem(s: string): TextProblem | undefined {
  if (s.includes('\0')) return 'nul';
  if (!isWellFormed(s)) return 'unpaired_surrogate';
  return undefined;
}

const MAX_SHOWN_KEY = 120;
const MAX_SHOWN_PATH = 300;
const showKey = (key: string): string => (key.length > MAX_SHOWN_KEY ? `${key.slice(0, MAX_SHOWN_KEY)}...` : key);
const join = (path: string, key: string): string => {
  const joined = /^[A-Za-z_$][\w$:.-]*$/.test(key) ? (path ? `${path}.${showKey(key)}` : showKey(key)) : `${path}[${JSON.stringify(showKey(key))}]`;
  return joined.length > MAX_SHOWN_PATH ? `${joined.slice(0, MAX_SHOWN_PATH)}...` : joined;
};

/**
 * Whether any string in `value` (object keys included) holds a NUL character or an unpaired
 * surrogate: findIllFormedText's answer without the path, cheap enough for every token saved.
 */
export function hasIllFormedText(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length) {
    const node = stack.pop();
    if (typeof node === 'string') {
      if (textProblem(node)) return true;
    } else if (Array.isArray(node)) {
      for (const item of node) stack.push(item);
    } else if (node !== null && typeof node === 'object') {
      for (const key in node) {
        if (textProblem(key)) return true;
        stack.push((node as Record<string, unknown>)[key]);
      }
    }
  }
  return false;
}

/**
 * The first string (object keys included) in `value` that holds a NUL character or an unpaired
 * surrogate, with its path; undefined when there is none. Walks any depth without recursion (a
 * deeply nested body cannot overflow the stack); each node is visited once.
 */
export function findIllFormedText(value: unknown): IllFormedText | undefined {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length) {
    const [node, path] = stack.pop()!;
    if (typeof node === 'string') {
      const problem = textProblem(node);
      if (problem) return { path, inKey: false, problem };
    } else if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i -= 1) stack.push([node[i], `${path}[${i}]`]);
    } else if (node !== null && typeof node === 'object') {
      const entries = Object.entries(node as Record<string, unknown>);
      for (const [key] of entries) {
        const problem = textProblem(key);
        if (problem) return { path, inKey: true, problem };
      }
      for (let i = entries.length - 1; i >= 0; i -= 1) {
        const [key, v] = entries[i]!;
        stack.push([v, join(path, key)]);
      }
    }
  }
  return undefined;
}

const WHY: Record<TextProblem, string> = {
  nul: 'text must not contain the NUL character (U+0000)',
  unpaired_surrogate: 'text must be well-formed Unicode, without an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff)',
};

/**
 * A message for a problem found by findIllFormedText: `<where>: <why>`. `whole` names the value
 * walked (e.g. "the request body", "query parameters"), used when the problem is at its top.
 */
export function describeIllFormedText(found: IllFormedText, whole: string, keyNoun = 'an attribute name'): { field: string; message: string } {
  const field = found.path || whole;
  const where = found.inKey ? `${keyNoun} in ${field}` : field;
  return { field, message: `${where}: ${WHY[found.problem]}` };
}
