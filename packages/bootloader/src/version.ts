/**
 * Version comparison as the UAPI Version Format Specification defines it (systemd's
 * `strverscmp_improved`), and GNU `strverscmp` (what ostree uses to sort its entries by `version`).
 * Both compare UTF-8 bytes, like their C originals.
 */

const enc = new TextEncoder();

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const TILDE = 0x7e;
const DASH = 0x2d;
const CARET = 0x5e;
const DOT = 0x2e;
const isValidVersionChar = (c: number): boolean =>
  isDigit(c) || isAlpha(c) || c === TILDE || c === DASH || c === CARET || c === DOT;

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
const cmp = (a: number | boolean, b: number | boolean): number => sign(Number(a) - Number(b));

function bytesCompare(a: Uint8Array, ai: number, b: Uint8Array, bi: number, len: number): number {
  for (let k = 0; k < len; k++) {
    const x = a[ai + k] ?? 0;
    const y = b[bi + k] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
    if (x === 0) return 0;
  }
  return 0;
}

/**
 * Compares two version strings by the UAPI Version Format Specification (systemd's
 * `strverscmp_improved`): `~` sorts before everything (pre-releases), `-` separates version from
 * release, `^` marks a patched release, `.` separates components, numeric segments compare by value
 * and sort after alphabetic ones. `null`/`undefined` and the empty string sort before any version.
 *
 * @returns -1, 0 or 1.
 */
export function compareVersions(
  a: string | null | undefined,
  b: string | null | undefined,
): number {
  // systemd treats a missing version like the empty string (verified against bootctl 252): it is
  // older than any version except one starting with "~".
  const x = enc.encode(a ?? "");
  const y = enc.encode(b ?? "");
  let i = 0;
  let j = 0;
  const at = (s: Uint8Array, k: number): number => s[k] ?? 0;
  for (;;) {
    while (at(x, i) !== 0 && !isValidVersionChar(at(x, i))) i++;
    while (at(y, j) !== 0 && !isValidVersionChar(at(y, j))) j++;

    if (at(x, i) === TILDE || at(y, j) === TILDE) {
      const r = cmp(at(x, i) !== TILDE, at(y, j) !== TILDE);
      if (r !== 0) return r;
      i++;
      j++;
    }
    if (at(x, i) === 0 || at(y, j) === 0) return cmp(at(x, i), at(y, j));

    for (const sep of [DASH, CARET, DOT]) {
      if (at(x, i) === sep || at(y, j) === sep) {
        const r = cmp(at(x, i) !== sep, at(y, j) !== sep);
        if (r !== 0) return r;
        i++;
        j++;
      }
    }

    let ii = i;
    let jj = j;
    if (isDigit(at(x, i)) || isDigit(at(y, j))) {
      while (isDigit(at(x, ii))) ii++;
      while (isDigit(at(y, jj))) jj++;
      let r = cmp(i !== ii, j !== jj);
      if (r !== 0) return r;
      while (at(x, i) === 0x30) i++;
      while (at(y, j) === 0x30) j++;
      r = cmp(ii - i, jj - j);
      if (r !== 0) return r;
      r = bytesCompare(x, i, y, j, ii - i);
      if (r !== 0) return r;
    } else {
      while (isAlpha(at(x, ii))) ii++;
      while (isAlpha(at(y, jj))) jj++;
      let r = bytesCompare(x, i, y, j, Math.min(ii - i, jj - j));
      if (r !== 0) return r;
      r = cmp(ii - i, jj - j);
      if (r !== 0) return r;
    }
    i = ii;
    j = jj;
  }
}

/**
 * GNU `strverscmp(3)`: strings compared bytewise, digit runs compared numerically, runs with leading
 * zeros treated as fractional parts. ostree (via GLib) sorts BLS entries by `version` with it.
 *
 * @returns -1, 0 or 1.
 */
export function strverscmp(a: string, b: string): number {
  // The glibc state machine: S_N normal, S_I integral, S_F fractional, S_Z leading zeros.
  const S_N = 0;
  const S_I = 3;
  const S_F = 6;
  const S_Z = 9;
  const CMP = 2;
  const LEN = 3;
  const nextState = [S_N, S_I, S_Z, S_N, S_I, S_I, S_N, S_F, S_F, S_N, S_F, S_Z];
  const resultType = [
    CMP,
    CMP,
    CMP,
    CMP,
    LEN,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    -1,
    -1,
    1,
    LEN,
    LEN,
    1,
    LEN,
    LEN,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    CMP,
    1,
    1,
    -1,
    CMP,
    CMP,
    -1,
    CMP,
    CMP,
  ];
  const p1 = enc.encode(a);
  const p2 = enc.encode(b);
  const at = (s: Uint8Array, k: number): number => s[k] ?? 0;
  const cls = (c: number): number => (c === 0x30 ? 1 : 0) + (isDigit(c) ? 1 : 0);
  let i = 0;
  let j = 0;
  let c1 = at(p1, i++);
  let c2 = at(p2, j++);
  let state = S_N + cls(c1);
  let diff = c1 - c2;
  while (diff === 0) {
    if (c1 === 0) return 0;
    state = nextState[state] ?? S_N;
    c1 = at(p1, i++);
    c2 = at(p2, j++);
    state += cls(c1);
    diff = c1 - c2;
  }
  const result = resultType[state * 3 + cls(c2)] ?? CMP;
  if (result === CMP) return sign(diff);
  if (result === LEN) {
    while (isDigit(at(p1, i++))) {
      if (!isDigit(at(p2, j++))) return 1;
    }
    return isDigit(at(p2, j)) ? -1 : sign(diff);
  }
  return result;
}
