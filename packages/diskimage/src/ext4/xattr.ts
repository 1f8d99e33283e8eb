/**
 * Extended attributes: the in-inode area after `i_extra_isize` and the one-block form
 * (`ext4_xattr_header` + entries + values), with the entry and block hashes e2fsck checks.
 * POSIX ACL values are converted from the xattr form (version 2) to ext4's on-disk form (version 1).
 */
import { invalidArgument, unsupported } from "@imagemode/core";

/** Magic of both xattr forms. */
export const XATTR_MAGIC = 0xea020000;

const PREFIXES: [string, number][] = [
  ["user.", 1],
  ["trusted.", 4],
  ["security.", 6],
  ["system.", 7],
];

/** One attribute as stored: name index, name suffix, value. */
export interface XattrRecord {
  index: number;
  name: Uint8Array;
  value: Uint8Array;
}

/** Splits a full attribute name into ext4's name index and suffix (and converts ACL values). */
export function toXattrRecord(fullName: string, value: Uint8Array): XattrRecord {
  if (fullName === "system.posix_acl_access")
    return { index: 2, name: new Uint8Array(0), value: aclToDisk(value, fullName) };
  if (fullName === "system.posix_acl_default")
    return { index: 3, name: new Uint8Array(0), value: aclToDisk(value, fullName) };
  for (const [p, idx] of PREFIXES) {
    if (fullName.startsWith(p) && fullName.length > p.length) {
      const name = Buffer.from(fullName.slice(p.length));
      if (name.length > 255)
        throw invalidArgument(`xattr name too long: ${fullName}`, {
          op: "diskimage.ext4",
          data: { name: fullName },
        });
      if (idx === 7 && fullName !== "system.data") {
        // other system.* names have no generic on-disk form
        throw unsupported(`xattr ${fullName} cannot be stored on ext4`, {
          op: "diskimage.ext4",
          data: { name: fullName },
        });
      }
      if (idx === 7)
        throw unsupported("system.data (inline data) is not supported", { op: "diskimage.ext4" });
      return { index: idx, name: new Uint8Array(name), value };
    }
  }
  throw invalidArgument(
    `xattr ${JSON.stringify(fullName)} has no namespace ext4 stores (user., trusted., security., system.posix_acl_*)`,
    {
      op: "diskimage.ext4",
      data: { name: fullName },
    },
  );
}

const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;

function aclToDisk(v: Uint8Array, name: string): Uint8Array {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (v.length < 4 || (v.length - 4) % 8 !== 0 || dv.getUint32(0, true) !== 2) {
    throw invalidArgument(`${name}: not a POSIX ACL xattr value (version 2)`, {
      op: "diskimage.ext4",
    });
  }
  const parts: number[] = [1, 0, 0, 0];
  for (let o = 4; o < v.length; o += 8) {
    const tag = dv.getUint16(o, true);
    const perm = dv.getUint16(o + 2, true);
    const id = dv.getUint32(o + 4, true);
    parts.push(tag & 0xff, tag >> 8, perm & 0xff, perm >> 8);
    if (tag === ACL_USER || tag === ACL_GROUP)
      parts.push(id & 0xff, (id >>> 8) & 0xff, (id >>> 16) & 0xff, id >>> 24);
    else if (
      tag !== ACL_USER_OBJ &&
      tag !== ACL_GROUP_OBJ &&
      tag !== ACL_MASK &&
      tag !== ACL_OTHER
    ) {
      throw invalidArgument(`${name}: unknown ACL tag ${tag}`, { op: "diskimage.ext4" });
    }
  }
  return new Uint8Array(parts);
}

/** Sorts records the way ext4 keeps them in a block: name index, name length, name bytes. */
export function sortXattrs(records: XattrRecord[]): XattrRecord[] {
  return records.sort(
    (a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name),
  );
}

const pad4 = (n: number) => (n + 3) & ~3;

/** Bytes the entries (with terminator) and padded values need. */
export function xattrSpace(records: readonly XattrRecord[]): number {
  let n = 4;
  for (const r of records) n += pad4(16 + r.name.length) + pad4(r.value.length);
  return n;
}

/** `ext4_xattr_hash_entry`: hash of the name (unsigned chars) and the zero-padded value words. */
export function xattrEntryHash(r: XattrRecord): number {
  let h = 0;
  for (const c of r.name) h = ((h << 5) ^ (h >>> 27) ^ c) >>> 0;
  if (r.value.length > 0) {
    const padded = new Uint8Array(pad4(r.value.length));
    padded.set(r.value);
    const dv = new DataView(padded.buffer);
    for (let o = 0; o < padded.length; o += 4)
      h = ((h << 16) ^ (h >>> 16) ^ dv.getUint32(o, true)) >>> 0;
  }
  return h >>> 0;
}

/**
 * Writes entries at `entriesOff` and values downward from `end` in `buf`; value offsets are
 * relative to `base`. Returns the entry hashes.
 */
function writeEntries(
  buf: Uint8Array,
  records: readonly XattrRecord[],
  entriesOff: number,
  end: number,
  base: number,
): number[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let e = entriesOff;
  let v = end;
  const hashes: number[] = [];
  for (const r of records) {
    v -= pad4(r.value.length);
    buf.set(r.value, v);
    const h = xattrEntryHash(r);
    hashes.push(h);
    dv.setUint8(e, r.name.length);
    dv.setUint8(e + 1, r.index);
    dv.setUint16(e + 2, r.value.length === 0 ? 0 : v - base, true);
    dv.setUint32(e + 4, 0, true);
    dv.setUint32(e + 8, r.value.length, true);
    dv.setUint32(e + 12, h, true);
    buf.set(r.name, e + 16);
    e += pad4(16 + r.name.length);
  }
  if (e + 4 > v) throw new Error("internal: xattr area overflow");
  return hashes;
}

/** Writes the in-inode xattr area (magic + entries + values) into `area`. */
export function encodeInodeXattrs(records: readonly XattrRecord[], area: Uint8Array): void {
  new DataView(area.buffer, area.byteOffset, area.byteLength).setUint32(0, XATTR_MAGIC, true);
  writeEntries(area, records, 4, area.length, 4);
}

/** Encodes an xattr block (checksum left zero: it depends on the block number). */
export function encodeXattrBlock(records: readonly XattrRecord[], blockSize: number): Uint8Array {
  const b = new Uint8Array(blockSize);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, XATTR_MAGIC, true);
  dv.setUint32(4, 1, true); // h_refcount
  dv.setUint32(8, 1, true); // h_blocks
  const hashes = writeEntries(b, records, 32, blockSize, 0);
  let h = 0;
  for (const eh of hashes) {
    if (eh === 0) {
      h = 0;
      break;
    }
    h = ((h << 16) ^ (h >>> 16) ^ eh) >>> 0;
  }
  dv.setUint32(12, h, true);
  return b;
}
