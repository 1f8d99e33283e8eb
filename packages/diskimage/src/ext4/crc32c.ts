/**
 * CRC32C (Castagnoli) as ext4 uses it: the raw register, seed in, no final inversion
 * (`crc32c_le(seed, data)` in the kernel, `ext2fs_crc32c_le` in e2fsprogs).
 */

const TABLE = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i] as number;
    for (let s = 1; s < 8; s++) {
      c = ((t[c & 0xff] as number) ^ (c >>> 8)) >>> 0;
      t[s * 256 + i] = c;
    }
  }
  return t;
})();

/** Continues a CRC32C register `crc` over `data` (no pre- or post-inversion). */
export function crc32cRaw(crc: number, data: Uint8Array): number {
  let c = crc >>> 0;
  let i = 0;
  const n = data.length;
  const t = TABLE;
  // slicing-by-8
  while (n - i >= 8) {
    const lo =
      (c ^
        ((data[i] as number) |
          ((data[i + 1] as number) << 8) |
          ((data[i + 2] as number) << 16) |
          ((data[i + 3] as number) << 24))) >>>
      0;
    c =
      ((t[7 * 256 + (lo & 0xff)] as number) ^
        (t[6 * 256 + ((lo >>> 8) & 0xff)] as number) ^
        (t[5 * 256 + ((lo >>> 16) & 0xff)] as number) ^
        (t[4 * 256 + (lo >>> 24)] as number) ^
        (t[3 * 256 + (data[i + 4] as number)] as number) ^
        (t[2 * 256 + (data[i + 5] as number)] as number) ^
        (t[256 + (data[i + 6] as number)] as number) ^
        (t[data[i + 7] as number] as number)) >>>
      0;
    i += 8;
  }
  for (; i < n; i++) c = ((t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8)) >>> 0;
  return c;
}

/** The standard CRC-32C of `data` (for test vectors: `"123456789"` → `0xe3069283`). */
export function crc32c(data: Uint8Array): number {
  return (crc32cRaw(0xffffffff, data) ^ 0xffffffff) >>> 0;
}

/** Continues a CRC32C register over the 4 little-endian bytes of `n` (no allocation). */
export function crc32cU32(crc: number, n: number): number {
  let c = crc >>> 0;
  const t = TABLE;
  for (let i = 0; i < 4; i++) c = ((t[(c ^ (n >>> (8 * i))) & 0xff] as number) ^ (c >>> 8)) >>> 0;
  return c;
}

/** A little-endian u32 as 4 bytes (checksums cover group and inode numbers this way). */
export function le32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

/** A little-endian u64 as 8 bytes. */
export function le64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}
