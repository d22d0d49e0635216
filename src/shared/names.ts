// The one folding rule for sign-in names (usernames and the email addresses people sign in with).
// Names are stored folded and every comparison (sign-in, SCIM filters, admin search, uniqueness)
// folds the other side with this same function, so SQL never folds case itself: PostgreSQL's
// lower() follows the database's locale and disagrees with JavaScript on characters such as
// U+0130 (lower('ALİCE') is 'alice' under glibc, 'ali̇ce' here), which once let a lookup for one
// person return another.
//
// The rule: Unicode NFKC (compatibility forms such as fullwidth ａｌｉｃｅ become alice), then
// JavaScript's locale-independent toLowerCase (Unicode default case mapping), repeated until
// stable (lower-casing may leave a string that is not NFKC), then trimmed.

const MAX_ROUNDS = 4;

/** A sign-in name in its stored, compared form. Idempotent: foldName(foldName(x)) === foldName(x). */
export function foldName(value: string): string {
  let out = value.normalize('NFKC');
  for (let i = 0; i < MAX_ROUNDS; i += 1) {
    const next = out.toLowerCase().normalize('NFKC');
    if (next === out) break;
    out = next;
  }
  return out.trim();
}
