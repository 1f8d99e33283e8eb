import { invalidArgument } from "@imagemode/core";

/** Characters a short (8.3) name may hold besides A–Z and 0–9 (Microsoft FAT spec, fatgen103). */
const SHORT_EXTRA = new Set("$%'-_@~`!(){}^#&");
/** Characters a long name may not hold (besides control characters). */
const LONG_FORBIDDEN = new Set('"*/:<>?\\|');

/** Longest long file name in UTF-16 code units. */
export const MAX_LONG_NAME = 255;

/** Throws unless `name` is a valid FAT long file name. */
export function checkLongName(name: string, path: string): void {
  const bad = (why: string) =>
    invalidArgument(`${path}: not a valid FAT file name (${why})`, {
      op: "diskimage.vfat",
      data: { path },
    });
  if (name.length === 0 || name === "." || name === "..") throw bad("empty or dot");
  if (name.length > MAX_LONG_NAME) throw bad("longer than 255 UTF-16 code units");
  if (name.endsWith(".") || name.endsWith(" ")) throw bad("ends with a period or space");
  for (const ch of name) {
    if (ch.charCodeAt(0) < 0x20 || LONG_FORBIDDEN.has(ch))
      throw bad(`contains ${JSON.stringify(ch)}`);
  }
}

/** The exact 11-byte short name when `name` is already a valid upper-case 8.3 name, else null. */
export function exactShortName(name: string): string | null {
  const m = /^([^.]{1,8})(?:\.([^.]{1,3}))?$/.exec(name);
  if (!m) return null;
  const base = m[1]!;
  const ext = m[2] ?? "";
  for (const c of base + ext) if (!(/[A-Z0-9]/.test(c) || SHORT_EXTRA.has(c))) return null;
  return base.padEnd(8, " ") + ext.padEnd(3, " ");
}

function shortChar(c: string): { ch: string; lossy: boolean } {
  const u = c.toUpperCase();
  if (u.length === 1 && (/[A-Z0-9]/.test(u) || SHORT_EXTRA.has(u))) return { ch: u, lossy: false };
  return { ch: "_", lossy: true };
}

/**
 * The basis short name of a long name (fatgen103 "basis-name generation"): upper-cased, spaces and
 * leading periods removed, invalid characters as `_`, at most 8 + 3 characters; `needsTail` when the
 * conversion lost information or the name did not fit 8.3.
 */
export function basisName(name: string): { base: string; ext: string; needsTail: boolean } {
  let lossy = false;
  let s = name.replace(/ /g, "");
  if (s !== name) lossy = true;
  const stripped = s.replace(/^\.+/, "");
  if (stripped !== s) lossy = true;
  s = stripped;
  const dot = s.lastIndexOf(".");
  const rawBase = dot >= 0 ? s.slice(0, dot) : s;
  const rawExt = dot >= 0 ? s.slice(dot + 1) : "";
  let base = "";
  for (const c of rawBase) {
    if (c === ".") {
      lossy = true;
      continue;
    }
    const r = shortChar(c);
    lossy ||= r.lossy;
    base += r.ch;
  }
  let ext = "";
  for (const c of rawExt) {
    const r = shortChar(c);
    lossy ||= r.lossy;
    ext += r.ch;
  }
  const fits = base.length >= 1 && base.length <= 8 && ext.length <= 3;
  if (base.length === 0) {
    base = "_";
    lossy = true;
  }
  return { base: base.slice(0, 8), ext: ext.slice(0, 3), needsTail: lossy || !fits };
}

/**
 * Picks a unique 11-byte short name for `name` in a directory whose used short names are `used`
 * (upper-case, space-padded); adds it to `used`. Numeric tails `~1`, `~2`, … as fatgen103 describes.
 */
export function shortNameFor(name: string, used: Set<string>): string {
  const exact = exactShortName(name);
  if (exact && !used.has(exact)) {
    used.add(exact);
    return exact;
  }
  const { base, ext, needsTail } = basisName(name);
  const plain = base.padEnd(8, " ") + ext.padEnd(3, " ");
  if (!needsTail && !used.has(plain)) {
    used.add(plain);
    return plain;
  }
  for (let n = 1; n < 1_000_000; n++) {
    const tail = `~${n}`;
    const candidate = (base.slice(0, 8 - tail.length) + tail).padEnd(8, " ") + ext.padEnd(3, " ");
    if (!used.has(candidate)) {
      used.add(candidate);
      return candidate;
    }
  }
  throw invalidArgument(`no free short name for ${name}`, { op: "diskimage.vfat" });
}

/** The LFN checksum of an 11-byte short name (fatgen103: rotate right, add). */
export function lfnChecksum(short11: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + short11[i]!) & 0xff;
  return sum;
}

/**
 * The long-name directory entries for `name` in on-disk order (last part first), each 32 bytes,
 * 13 UTF-16 units per entry, NUL-terminated and 0xFFFF-padded.
 */
export function lfnEntries(name: string, short11: Uint8Array): Uint8Array[] {
  const units: number[] = [];
  for (let i = 0; i < name.length; i++) units.push(name.charCodeAt(i));
  if (units.length % 13 !== 0) units.push(0);
  while (units.length % 13 !== 0) units.push(0xffff);
  const count = units.length / 13;
  const sum = lfnChecksum(short11);
  const out: Uint8Array[] = [];
  for (let k = count; k >= 1; k--) {
    const e = Buffer.alloc(32);
    e[0] = k | (k === count ? 0x40 : 0);
    e[11] = 0x0f;
    e[12] = 0;
    e[13] = sum;
    const part = units.slice((k - 1) * 13, k * 13);
    const offs = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    for (let i = 0; i < part.length; i++) e.writeUInt16LE(part[i]!, offs[i]!);
    out.push(new Uint8Array(e.buffer, e.byteOffset, 32));
  }
  return out;
}

/** A volume label in the 11-byte on-disk form (upper-case, space-padded). */
export function volumeLabelBytes(label: string | undefined): string {
  if (label === undefined || label === "") return "NO NAME    ";
  const u = label.toUpperCase();
  if (u.length > 11)
    throw invalidArgument(
      `FAT volume label ${JSON.stringify(label)} is longer than 11 characters`,
      { op: "diskimage.vfat" },
    );
  for (const c of u) {
    if (!(/[A-Z0-9 ]/.test(c) || SHORT_EXTRA.has(c)))
      throw invalidArgument(
        `FAT volume label ${JSON.stringify(label)} contains ${JSON.stringify(c)}`,
        { op: "diskimage.vfat" },
      );
  }
  return u.padEnd(11, " ");
}
