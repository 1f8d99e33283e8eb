/**
 * A general GVariant serializer/deserializer (normal form), the encoding every OSTree metadata
 * object uses. Pure: bytes in, values out.
 *
 * Value mapping:
 * - `b` ↔ `boolean`; `y n q i u h` ↔ `number`; `x t` ↔ `bigint`; `d` ↔ `number`
 * - `s o g` ↔ `string`; `ay` ↔ `Uint8Array`; other arrays ↔ JS arrays
 * - `mT` ↔ `null` (Nothing) or the value (Just); `(…)` and `{KV}` ↔ JS arrays of members
 * - `v` ↔ {@link Variant}; `a{sv}` therefore is an array of `[key, Variant]` pairs, in stored order
 *
 * Integers are stored little-endian (GVariant host order on every machine ostree runs on);
 * fields that OSTree stores big-endian are byte-swapped by the object codecs, not here.
 */
import { parseError } from "@imagemode/core";

/** A variant value: a type string plus a value of that type. */
export class Variant {
  /**
   * @param type - a single complete GVariant type string (`s`, `a{sv}`, `(yu)`, …)
   * @param value - a value of that type (see the module docs for the mapping)
   */
  constructor(
    readonly type: string,
    readonly value: GValue,
  ) {}
}

/** Any value the codec handles. */
export type GValue = boolean | number | bigint | string | Uint8Array | null | Variant | GValue[];

/** A parsed GVariant type. */
export interface GType {
  /** The type string. */
  readonly str: string;
  readonly kind: "basic" | "string" | "variant" | "array" | "maybe" | "tuple";
  /** The type character for basic and string types. */
  readonly char?: string;
  /** Element type of arrays and maybes. */
  readonly elem?: GType;
  /** Members of tuples and dict entries. */
  readonly members?: readonly GType[];
  readonly align: number;
  /** Size in bytes when fixed-size, else `undefined`. */
  readonly fixedSize: number | undefined;
}

const BASIC: Record<string, [number, number]> = {
  b: [1, 1],
  y: [1, 1],
  n: [2, 2],
  q: [2, 2],
  i: [4, 4],
  u: [4, 4],
  h: [4, 4],
  x: [8, 8],
  t: [8, 8],
  d: [8, 8],
};

const typeCache = new Map<string, GType>();

/** Parses a single complete GVariant type string. Throws `PARSE` on anything else. */
export function parseType(str: string): GType {
  const cached = typeCache.get(str);
  if (cached) return cached;
  const [t, end] = parseAt(str, 0);
  if (end !== str.length) throw parseError(`invalid GVariant type ${JSON.stringify(str)}`);
  if (typeCache.size < 1024) typeCache.set(str, t);
  return t;
}

function alignUp(n: number, a: number): number {
  return (n + a - 1) & ~(a - 1);
}

function parseAt(s: string, pos: number): [GType, number] {
  const c = s[pos];
  if (c === undefined) throw parseError(`invalid GVariant type ${JSON.stringify(s)}: truncated`);
  const basic = BASIC[c];
  if (basic)
    return [{ str: c, kind: "basic", char: c, align: basic[0], fixedSize: basic[1] }, pos + 1];
  if (c === "s" || c === "o" || c === "g")
    return [{ str: c, kind: "string", char: c, align: 1, fixedSize: undefined }, pos + 1];
  if (c === "v") return [{ str: c, kind: "variant", align: 8, fixedSize: undefined }, pos + 1];
  if (c === "a" || c === "m") {
    const [elem, end] = parseAt(s, pos + 1);
    return [
      {
        str: s.slice(pos, end),
        kind: c === "a" ? "array" : "maybe",
        elem,
        align: elem.align,
        fixedSize: undefined,
      },
      end,
    ];
  }
  if (c === "(" || c === "{") {
    const close = c === "(" ? ")" : "}";
    const members: GType[] = [];
    let p = pos + 1;
    while (s[p] !== close) {
      if (p >= s.length)
        throw parseError(`invalid GVariant type ${JSON.stringify(s)}: unclosed ${c}`);
      const [m, e] = parseAt(s, p);
      members.push(m);
      p = e;
    }
    if (
      c === "{" &&
      (members.length !== 2 || (members[0]!.kind !== "basic" && members[0]!.kind !== "string"))
    ) {
      throw parseError(`invalid GVariant dict entry type ${JSON.stringify(s.slice(pos, p + 1))}`);
    }
    let align = 1;
    let size = 0;
    let fixed = true;
    for (const m of members) {
      align = Math.max(align, m.align);
      if (m.fixedSize === undefined) fixed = false;
      else size = alignUp(size, m.align) + m.fixedSize;
    }
    let fixedSize: number | undefined;
    if (fixed) fixedSize = members.length === 0 ? 1 : alignUp(size, align);
    return [{ str: s.slice(pos, p + 1), kind: "tuple", members, align, fixedSize }, p + 1];
  }
  throw parseError(`invalid GVariant type ${JSON.stringify(s)} at ${pos}`);
}

/** Width in bytes of framing offsets for a container whose serialized size is `size` (reader rule). */
export function offsetWidth(size: number): number {
  if (size === 0) return 0;
  if (size <= 0xff) return 1;
  if (size <= 0xffff) return 2;
  if (size <= 0xffffffff) return 4;
  return 8;
}

/** Writer rule: smallest width w such that body + n·w fits in w bytes. */
function writerWidth(body: number, n: number): number {
  if (n === 0) return 0;
  if (body + n <= 0xff) return 1;
  if (body + 2 * n <= 0xffff) return 2;
  if (body + 4 * n <= 0xffffffff) return 4;
  return 8;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** A growable byte buffer (internal to the encoder). */
class Out {
  buf = new Uint8Array(256);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  pad(to: number, start: number): void {
    const target = start + alignUp(this.len - start, to);
    this.ensure(target - this.len);
    this.buf.fill(0, this.len, target);
    this.len = target;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  byte(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }
  uint(v: number, w: number): void {
    this.ensure(w);
    let x = BigInt(v);
    for (let i = 0; i < w; i++) {
      this.buf[this.len++] = Number(x & 0xffn);
      x >>= 8n;
    }
  }
}

function fail(t: GType, v: unknown): never {
  throw parseError(`value ${describe(v)} does not match GVariant type ${t.str}`);
}

function describe(v: unknown): string {
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})`;
  if (typeof v === "bigint") return `${v}n`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Serializes `value` as type `type` (normal form). Throws `PARSE` if the value does not fit the type. */
export function encodeVariant(type: string | GType, value: GValue): Uint8Array {
  const t = typeof type === "string" ? parseType(type) : type;
  const out = new Out();
  write(out, t, value);
  return out.buf.slice(0, out.len);
}

function write(out: Out, t: GType, v: GValue): void {
  const start = out.len;
  switch (t.kind) {
    case "basic":
      writeBasic(out, t, v);
      return;
    case "string": {
      if (typeof v !== "string") fail(t, v);
      if (v.includes("\0")) throw parseError(`GVariant string contains NUL: ${JSON.stringify(v)}`);
      out.bytes(enc.encode(v));
      out.byte(0);
      return;
    }
    case "variant": {
      if (!(v instanceof Variant)) fail(t, v);
      const ct = parseType(v.type);
      write(out, ct, v.value);
      out.byte(0);
      out.bytes(enc.encode(ct.str));
      return;
    }
    case "maybe": {
      if (v === null) return;
      const e = t.elem!;
      write(out, e, v);
      if (e.fixedSize === undefined) out.byte(0);
      return;
    }
    case "array": {
      const e = t.elem!;
      if (e.kind === "basic" && e.char === "y") {
        if (!(v instanceof Uint8Array)) fail(t, v);
        out.bytes(v);
        return;
      }
      if (!Array.isArray(v)) fail(t, v);
      if (e.fixedSize !== undefined) {
        for (const x of v) write(out, e, x);
        return;
      }
      const ends: number[] = [];
      for (const x of v) {
        out.pad(e.align, start);
        write(out, e, x);
        ends.push(out.len - start);
      }
      const w = writerWidth(out.len - start, ends.length);
      for (const o of ends) out.uint(o, w);
      return;
    }
    case "tuple": {
      const ms = t.members!;
      if (ms.length === 0) {
        out.byte(0);
        return;
      }
      if (!Array.isArray(v) || v.length !== ms.length) fail(t, v);
      const ends: number[] = [];
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i]!;
        out.pad(m.align, start);
        write(out, m, v[i]!);
        if (m.fixedSize === undefined && i !== ms.length - 1) ends.push(out.len - start);
      }
      if (t.fixedSize !== undefined) {
        out.pad(t.align, start);
        return;
      }
      const w = writerWidth(out.len - start, ends.length);
      for (let i = ends.length - 1; i >= 0; i--) out.uint(ends[i]!, w);
      return;
    }
  }
}

function writeBasic(out: Out, t: GType, v: GValue): void {
  const size = t.fixedSize!;
  out.ensure(size);
  const dv = new DataView(out.buf.buffer, out.buf.byteOffset + out.len, size);
  switch (t.char) {
    case "b":
      if (typeof v !== "boolean") fail(t, v);
      dv.setUint8(0, v ? 1 : 0);
      break;
    case "y":
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xff) fail(t, v);
      dv.setUint8(0, v);
      break;
    case "n":
      if (typeof v !== "number" || !Number.isInteger(v) || v < -0x8000 || v > 0x7fff) fail(t, v);
      dv.setInt16(0, v, true);
      break;
    case "q":
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff) fail(t, v);
      dv.setUint16(0, v, true);
      break;
    case "i":
    case "h":
      if (typeof v !== "number" || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
        fail(t, v);
      dv.setInt32(0, v, true);
      break;
    case "u":
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(t, v);
      dv.setUint32(0, v, true);
      break;
    case "x":
      if (typeof v !== "bigint" || BigInt.asIntN(64, v) !== v) fail(t, v);
      dv.setBigInt64(0, v, true);
      break;
    case "t":
      if (typeof v !== "bigint" || BigInt.asUintN(64, v) !== v) fail(t, v);
      dv.setBigUint64(0, v, true);
      break;
    case "d":
      if (typeof v !== "number") fail(t, v);
      dv.setFloat64(0, v, true);
      break;
  }
  out.len += size;
}

/** Deserializes bytes of type `type`. Throws `PARSE` on data that is not in normal form. */
export function decodeVariant(type: string | GType, bytes: Uint8Array): GValue {
  const t = typeof type === "string" ? parseType(type) : type;
  return read(t, bytes);
}

function bad(t: GType, why: string): never {
  throw parseError(`malformed GVariant of type ${t.str}: ${why}`);
}

function readUint(b: Uint8Array, off: number, w: number): number {
  let v = 0;
  for (let i = w - 1; i >= 0; i--) v = v * 256 + b[off + i]!;
  return v;
}

function read(t: GType, b: Uint8Array): GValue {
  switch (t.kind) {
    case "basic": {
      if (b.length !== t.fixedSize) bad(t, `size ${b.length}, expected ${t.fixedSize}`);
      const dv = new DataView(b.buffer, b.byteOffset, b.length);
      switch (t.char) {
        case "b":
          if (b[0]! > 1) bad(t, "boolean not 0 or 1");
          return b[0] === 1;
        case "y":
          return b[0]!;
        case "n":
          return dv.getInt16(0, true);
        case "q":
          return dv.getUint16(0, true);
        case "i":
        case "h":
          return dv.getInt32(0, true);
        case "u":
          return dv.getUint32(0, true);
        case "x":
          return dv.getBigInt64(0, true);
        case "t":
          return dv.getBigUint64(0, true);
        default:
          return dv.getFloat64(0, true);
      }
    }
    case "string": {
      if (b.length === 0 || b[b.length - 1] !== 0) bad(t, "string not NUL-terminated");
      const body = b.subarray(0, b.length - 1);
      if (body.includes(0)) bad(t, "string contains NUL");
      try {
        return dec.decode(body);
      } catch {
        return bad(t, "string is not UTF-8");
      }
    }
    case "variant": {
      const z = b.lastIndexOf(0);
      if (z < 0) bad(t, "variant without type separator");
      let ts: string;
      try {
        ts = dec.decode(b.subarray(z + 1));
      } catch {
        return bad(t, "variant type not ASCII");
      }
      const ct = parseType(ts);
      return new Variant(ts, read(ct, b.subarray(0, z)));
    }
    case "maybe": {
      if (b.length === 0) return null;
      const e = t.elem!;
      if (e.fixedSize !== undefined) return read(e, b);
      if (b[b.length - 1] !== 0) bad(t, "maybe without trailing NUL");
      return read(e, b.subarray(0, b.length - 1));
    }
    case "array": {
      const e = t.elem!;
      if (e.kind === "basic" && e.char === "y") return b.slice();
      if (e.fixedSize !== undefined) {
        if (b.length % e.fixedSize !== 0) bad(t, "size not a multiple of the element size");
        const out: GValue[] = [];
        for (let o = 0; o < b.length; o += e.fixedSize)
          out.push(read(e, b.subarray(o, o + e.fixedSize)));
        return out;
      }
      if (b.length === 0) return [];
      const w = offsetWidth(b.length);
      const tableStart = readUint(b, b.length - w, w);
      if (tableStart > b.length || (b.length - tableStart) % w !== 0)
        bad(t, "bad framing offset table");
      const n = (b.length - tableStart) / w;
      const out: GValue[] = [];
      let pos = 0;
      for (let i = 0; i < n; i++) {
        const start = alignUp(pos, e.align);
        const end = readUint(b, tableStart + i * w, w);
        if (end < start || end > tableStart) bad(t, "bad element offset");
        out.push(read(e, b.subarray(start, end)));
        pos = end;
      }
      return out;
    }
    case "tuple": {
      const ms = t.members!;
      if (ms.length === 0) {
        if (b.length !== 1 || b[0] !== 0) bad(t, "unit must be one zero byte");
        return [];
      }
      if (t.fixedSize !== undefined && b.length !== t.fixedSize)
        bad(t, `size ${b.length}, expected ${t.fixedSize}`);
      const w = offsetWidth(b.length);
      let frameEnd = b.length; // offsets are read from the end backwards
      let pos = 0;
      const out: GValue[] = [];
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i]!;
        const start = alignUp(pos, m.align);
        let end: number;
        if (m.fixedSize !== undefined) end = start + m.fixedSize;
        else if (i === ms.length - 1) end = frameEnd;
        else {
          frameEnd -= w;
          if (frameEnd < 0) bad(t, "truncated framing offsets");
          end = readUint(b, frameEnd, w);
        }
        if (start > end || end > b.length) bad(t, `member ${i} out of bounds`);
        out.push(read(m, b.subarray(start, end)));
        pos = end;
      }
      return out;
    }
  }
}

/** Builds an `a{sv}` value from entries (order kept). */
export function asv(entries: Iterable<readonly [string, Variant]>): GValue[] {
  return [...entries].map(([k, v]) => [k, v]);
}

/** Reads an `a{sv}` value into ordered `[key, Variant]` pairs. */
export function asvEntries(value: GValue): [string, Variant][] {
  if (!Array.isArray(value)) throw parseError("a{sv} value is not an array");
  return value.map((e) => {
    if (!Array.isArray(e) || typeof e[0] !== "string" || !(e[1] instanceof Variant))
      throw parseError("bad a{sv} entry");
    return [e[0], e[1]];
  });
}

/** Renders a value in GVariant text format (as `ostree show --raw` prints it, close enough for display). */
export function formatVariant(type: string | GType, value: GValue): string {
  const t = typeof type === "string" ? parseType(type) : type;
  switch (t.kind) {
    case "basic":
      if (t.char === "b") return value ? "true" : "false";
      if (t.char === "d") return Number.isInteger(value) ? `${value}.0` : String(value);
      return String(value);
    case "string":
      return `'${String(value).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
    case "variant": {
      const v = value as Variant;
      return `<${formatVariant(v.type, v.value)}>`;
    }
    case "maybe":
      return value === null ? "nothing" : formatVariant(t.elem!, value);
    case "array": {
      if (value instanceof Uint8Array)
        return `[${[...value].map((x) => `0x${x.toString(16).padStart(2, "0")}`).join(", ")}]`;
      const arr = value as GValue[];
      if (t.elem!.str.startsWith("{")) {
        const [kt, vt] = t.elem!.members!;
        return `{${arr.map((e) => `${formatVariant(kt!, (e as GValue[])[0]!)}: ${formatVariant(vt!, (e as GValue[])[1]!)}`).join(", ")}}`;
      }
      return `[${arr.map((x) => formatVariant(t.elem!, x)).join(", ")}]`;
    }
    case "tuple": {
      const arr = value as GValue[];
      const parts = t.members!.map((m, i) => formatVariant(m, arr[i]!));
      return parts.length === 1 ? `(${parts[0]},)` : `(${parts.join(", ")})`;
    }
  }
}
