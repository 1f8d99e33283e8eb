/**
 * ext4 directory-index name hashes (`fs/ext4/hash.c`): half-MD4 and TEA, signed and unsigned
 * character variants. The result's low bit is always clear (it marks hash collisions in
 * index entries).
 */

/** Hash versions as stored in the superblock and in `dx_root_info`. */
export const DX_HASH = {
  legacy: 0,
  halfMd4: 1,
  tea: 2,
  legacyUnsigned: 3,
  halfMd4Unsigned: 4,
  teaUnsigned: 5,
} as const;

/** The major and minor hash of a name. */
export interface DirHash {
  hash: number;
  minor: number;
}

function rol(x: number, s: number): number {
  return ((x << s) | (x >>> (32 - s))) >>> 0;
}

const K2 = 0o13240474631;
const K3 = 0o15666365641;

function halfMd4Transform(buf: Uint32Array, inp: Uint32Array): void {
  let a = buf[0] as number;
  let b = buf[1] as number;
  let c = buf[2] as number;
  let d = buf[3] as number;
  const x = (i: number) => inp[i] as number;
  const F = (p: number, q: number, r: number) => (r ^ (p & (q ^ r))) >>> 0;
  const G = (p: number, q: number, r: number) => ((p & q) + ((p ^ q) & r)) >>> 0;
  const H = (p: number, q: number, r: number) => (p ^ q ^ r) >>> 0;
  // Round 1
  a = rol((a + F(b, c, d) + x(0)) >>> 0, 3);
  d = rol((d + F(a, b, c) + x(1)) >>> 0, 7);
  c = rol((c + F(d, a, b) + x(2)) >>> 0, 11);
  b = rol((b + F(c, d, a) + x(3)) >>> 0, 19);
  a = rol((a + F(b, c, d) + x(4)) >>> 0, 3);
  d = rol((d + F(a, b, c) + x(5)) >>> 0, 7);
  c = rol((c + F(d, a, b) + x(6)) >>> 0, 11);
  b = rol((b + F(c, d, a) + x(7)) >>> 0, 19);
  // Round 2
  a = rol((a + G(b, c, d) + x(1) + K2) >>> 0, 3);
  d = rol((d + G(a, b, c) + x(3) + K2) >>> 0, 5);
  c = rol((c + G(d, a, b) + x(5) + K2) >>> 0, 9);
  b = rol((b + G(c, d, a) + x(7) + K2) >>> 0, 13);
  a = rol((a + G(b, c, d) + x(0) + K2) >>> 0, 3);
  d = rol((d + G(a, b, c) + x(2) + K2) >>> 0, 5);
  c = rol((c + G(d, a, b) + x(4) + K2) >>> 0, 9);
  b = rol((b + G(c, d, a) + x(6) + K2) >>> 0, 13);
  // Round 3
  a = rol((a + H(b, c, d) + x(3) + K3) >>> 0, 3);
  d = rol((d + H(a, b, c) + x(7) + K3) >>> 0, 9);
  c = rol((c + H(d, a, b) + x(2) + K3) >>> 0, 11);
  b = rol((b + H(c, d, a) + x(6) + K3) >>> 0, 15);
  a = rol((a + H(b, c, d) + x(1) + K3) >>> 0, 3);
  d = rol((d + H(a, b, c) + x(5) + K3) >>> 0, 9);
  c = rol((c + H(d, a, b) + x(0) + K3) >>> 0, 11);
  b = rol((b + H(c, d, a) + x(4) + K3) >>> 0, 15);
  buf[0] = (buf[0] as number) + a;
  buf[1] = (buf[1] as number) + b;
  buf[2] = (buf[2] as number) + c;
  buf[3] = (buf[3] as number) + d;
}

function teaTransform(buf: Uint32Array, inp: Uint32Array): void {
  let sum = 0;
  let b0 = buf[0] as number;
  let b1 = buf[1] as number;
  const a = inp[0] as number;
  const b = inp[1] as number;
  const c = inp[2] as number;
  const d = inp[3] as number;
  for (let n = 0; n < 16; n++) {
    sum = (sum + 0x9e3779b9) >>> 0;
    b0 = (b0 + ((((b1 << 4) + a) >>> 0) ^ ((b1 + sum) >>> 0) ^ (((b1 >>> 5) + b) >>> 0))) >>> 0;
    b1 = (b1 + ((((b0 << 4) + c) >>> 0) ^ ((b0 + sum) >>> 0) ^ (((b0 >>> 5) + d) >>> 0))) >>> 0;
  }
  buf[0] = (buf[0] as number) + b0;
  buf[1] = (buf[1] as number) + b1;
}

function str2hashbuf(
  msg: Uint8Array,
  off: number,
  len: number,
  out: Uint32Array,
  num: number,
  signed: boolean,
): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  let o = 0;
  const n = Math.min(len, num * 4);
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) val = pad;
    let ch = msg[off + i] as number;
    if (signed && ch > 127) ch -= 256;
    val = (ch + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[o++] = val;
      val = pad;
      num--;
    }
  }
  if (--num >= 0) out[o++] = val;
  while (--num >= 0) out[o++] = pad;
}

/**
 * Hashes `name` with hash `version` (a {@link DX_HASH} value) and the superblock's 4-word seed
 * (an all-zero seed means the default MD4 initial state).
 */
export function dirHash(
  name: Uint8Array,
  version: number,
  seed: Uint32Array | readonly number[],
): DirHash {
  const buf = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  if (seed.some((w) => w !== 0)) for (let i = 0; i < 4; i++) buf[i] = seed[i] as number;
  let hash: number;
  let minor = 0;
  const inp = new Uint32Array(8);
  switch (version) {
    case DX_HASH.legacy:
    case DX_HASH.legacyUnsigned: {
      let h0 = 0x12a3fe2d;
      let h1 = 0x37abe8f9;
      for (const raw of name) {
        const ch = version === DX_HASH.legacy && raw > 127 ? raw - 256 : raw;
        let h = (h1 + ((h0 ^ Math.imul(ch, 7152373)) >>> 0)) >>> 0;
        if (h & 0x80000000) h = (h - 0x7fffffff) >>> 0;
        h1 = h0;
        h0 = h;
      }
      hash = (h0 << 1) >>> 0;
      break;
    }
    case DX_HASH.halfMd4:
    case DX_HASH.halfMd4Unsigned: {
      const signed = version === DX_HASH.halfMd4;
      for (let p = 0, len = name.length; len > 0; len -= 32, p += 32) {
        str2hashbuf(name, p, len, inp, 8, signed);
        halfMd4Transform(buf, inp);
      }
      minor = buf[2] as number;
      hash = buf[1] as number;
      break;
    }
    case DX_HASH.tea:
    case DX_HASH.teaUnsigned: {
      const signed = version === DX_HASH.tea;
      for (let p = 0, len = name.length; len > 0; len -= 16, p += 16) {
        str2hashbuf(name, p, len, inp, 4, signed);
        teaTransform(buf, inp);
      }
      hash = buf[0] as number;
      minor = buf[1] as number;
      break;
    }
    default:
      throw new RangeError(`unknown dir hash version ${version}`);
  }
  hash = (hash & ~1) >>> 0;
  if (hash === 0xfffffffe) hash = 0xfffffffc;
  return { hash: hash >>> 0, minor: minor >>> 0 };
}
