/**
 * The iteration order of a GLib 2.74 `GHashTable` keyed by `g_str_hash`, which is the key order
 * `g_variant_dict_end()` produces. `ostree commit --bootable` rebuilds the commit metadata
 * through a `GVariantDict`, so reproducing its checksum needs this order. Internal.
 */

/** `prime_mod[]` of ghash.c, indexed by shift. */
const PRIME_MOD = [
  1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
  262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
  268435399, 536870909, 1073741789, 2147483647,
];
const MIN_SHIFT = 3;

/** `g_str_hash`: djb2 over *signed* chars, 32-bit. */
export function gStrHash(s: string): number {
  let h = 5381;
  for (const b of Buffer.from(s, "utf8")) h = (Math.imul(h, 33) + (b >= 128 ? b - 256 : b)) >>> 0;
  return h;
}

const isReal = (h: number) => h >= 2;

class Table {
  shift = MIN_SHIFT;
  size = 1 << MIN_SHIFT;
  mod = PRIME_MOD[MIN_SHIFT]!;
  mask = (1 << MIN_SHIFT) - 1;
  hashes: number[] = new Array(8).fill(0);
  keys: (string | undefined)[] = new Array(8).fill(undefined);
  nnodes = 0;
  noccupied = 0;

  private setShift(shift: number): void {
    this.shift = shift;
    this.size = 1 << shift;
    this.mod = PRIME_MOD[shift]!;
    this.mask = this.size - 1;
  }

  private toIndex(hash: number): number {
    return (Math.imul(hash, 11) >>> 0) % this.mod;
  }

  private lookup(key: string, hash: number): number {
    let i = this.toIndex(hash);
    let step = 0;
    while (this.hashes[i] !== 0) {
      if (this.hashes[i] === hash && this.keys[i] === key) return i;
      step++;
      i = (i + step) & this.mask;
    }
    return i;
  }

  insert(key: string): void {
    let hash = gStrHash(key);
    if (!isReal(hash)) hash = 2;
    const i = this.lookup(key, hash);
    if (isReal(this.hashes[i]!)) return; // existing key: value replaced, position kept
    this.hashes[i] = hash;
    this.keys[i] = key;
    this.nnodes++;
    this.noccupied++;
    if (
      (this.size > this.nnodes * 4 && this.size > 1 << MIN_SHIFT) ||
      this.size <= this.noccupied + Math.floor(this.noccupied / 16)
    ) {
      this.resize();
    }
  }

  private resize(): void {
    const oldSize = this.size;
    let n = Math.trunc(this.nnodes * 1.333);
    let shift = 0;
    while (n) {
      n >>= 1;
      shift++;
    }
    this.setShift(Math.max(shift, MIN_SHIFT));
    if (this.size > oldSize) {
      for (let i = oldSize; i < this.size; i++) {
        this.hashes[i] = 0;
        this.keys[i] = undefined;
      }
    }
    const moved = new Uint8Array(Math.max(this.size, oldSize));
    for (let i = 0; i < oldSize; i++) {
      let h = this.hashes[i]!;
      if (!isReal(h)) {
        this.hashes[i] = 0;
        continue;
      }
      if (moved[i]) continue;
      this.hashes[i] = 0;
      let key = this.keys[i];
      this.keys[i] = undefined;
      for (;;) {
        let idx = this.toIndex(h);
        let step = 0;
        while (moved[idx]) {
          step++;
          idx = (idx + step) & this.mask;
        }
        moved[idx] = 1;
        const replaced = this.hashes[idx]!;
        this.hashes[idx] = h;
        if (!isReal(replaced)) {
          this.keys[idx] = key;
          break;
        }
        h = replaced;
        const k = this.keys[idx];
        this.keys[idx] = key;
        key = k;
      }
    }
    this.hashes.length = this.size;
    this.keys.length = this.size;
    this.noccupied = this.nnodes;
  }

  order(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.size; i++) if (isReal(this.hashes[i]!)) out.push(this.keys[i]!);
    return out;
  }
}

/** The order `g_variant_dict_end()` gives to keys inserted in `keys` order (duplicates keep their first slot). */
export function gHashTableOrder(keys: readonly string[]): string[] {
  const t = new Table();
  for (const k of keys) t.insert(k);
  return t.order();
}
