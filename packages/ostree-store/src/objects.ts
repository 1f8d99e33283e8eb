/**
 * OSTree object codecs: commit, dirtree, dirmeta, content header, archive `.filez` header,
 * `user.ostreemeta`, detached commit metadata, and the checksum rules of libostree. Pure.
 */
import { createHash } from "node:crypto";
import { parseError } from "@imagemode/core";
import { decodeVariant, encodeVariant, type GValue, type Variant } from "./gvariant.js";

/** The object types of an OSTree repository. */
export type ObjectType =
  | "file"
  | "dirtree"
  | "dirmeta"
  | "commit"
  | "commitmeta"
  | "commit-tombstone";

/** File-name extension of each object type (content objects: `file`, or `filez` in archive repos). */
export const OBJECT_EXT: Record<ObjectType, string> = {
  file: "file",
  dirtree: "dirtree",
  dirmeta: "dirmeta",
  commit: "commit",
  commitmeta: "commitmeta",
  "commit-tombstone": "commit-tombstone",
};

/** GVariant type strings of OSTree objects. */
export const OSTREE_TYPES = {
  commit: "(a{sv}aya(say)sstayay)",
  dirtree: "(a(say)a(sayay))",
  dirmeta: "(uuua(ayay))",
  fileHeader: "(uuuusa(ayay))",
  archiveHeader: "(tuuuusa(ayay))",
  ostreemeta: "(uuua(ayay))",
  commitmeta: "a{sv}",
  xattrs: "a(ayay)",
} as const;

/** Extended attributes by name (without the trailing NUL). */
export type Xattrs = ReadonlyMap<string, Uint8Array>;

/** Ownership, mode (with file-type bits) and xattrs of a directory. */
export interface DirMeta {
  uid: number;
  gid: number;
  /** Full mode including `S_IFDIR` (e.g. `0o40755`). */
  mode: number;
  xattrs?: Xattrs;
}

/** The header of a content object (regular file or symlink). */
export interface FileHeader {
  uid: number;
  gid: number;
  /** Full mode including the type bits (`0o100644`, `0o120777`). */
  mode: number;
  /** Always 0 for content objects ostree accepts. */
  rdev?: number;
  /** Symlink target; `""` for regular files. */
  symlinkTarget?: string;
  xattrs?: Xattrs;
}

/** A file entry of a dirtree. */
export interface DirTreeFile {
  name: string;
  /** Content object checksum (hex). */
  checksum: string;
}

/** A subdirectory entry of a dirtree. */
export interface DirTreeDir {
  name: string;
  /** Dirtree checksum (hex). */
  tree: string;
  /** Dirmeta checksum (hex). */
  meta: string;
}

/** A decoded dirtree. Entries are sorted by byte-wise name order. */
export interface DirTree {
  files: DirTreeFile[];
  dirs: DirTreeDir[];
}

/** A decoded commit. */
export interface Commit {
  /** Commit metadata, in stored order. */
  metadata: [string, Variant][];
  /** Parent commit checksum, or `null`. */
  parent: string | null;
  /** Related objects `(name, checksum)` (the CLI always leaves this empty). */
  related: [string, string][];
  subject: string;
  body: string;
  /** Seconds since the epoch (stored big-endian). */
  timestamp: bigint;
  /** Root dirtree checksum. */
  rootTree: string;
  /** Root dirmeta checksum. */
  rootMeta: string;
}

/** `S_IFMT` and friends. */
export const S_IFMT = 0o170000;
/** Directory type bits. */
export const S_IFDIR = 0o040000;
/** Regular-file type bits. */
export const S_IFREG = 0o100000;
/** Symlink type bits. */
export const S_IFLNK = 0o120000;

/** The dirtree of an empty directory: `6e340b9c…`. */
export const EMPTY_DIRTREE_CHECKSUM =
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";

const HEX64 = /^[0-9a-f]{64}$/;

/** True for a 64-character lowercase hex checksum. */
export function isChecksum(s: string): boolean {
  return HEX64.test(s);
}

/** SHA-256 of bytes, lowercase hex. */
export function sha256Hex(...parts: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** Hex checksum → its 32 raw bytes. */
export function checksumToBytes(csum: string): Uint8Array {
  if (!isChecksum(csum)) throw parseError(`invalid checksum ${JSON.stringify(csum)}`);
  return Uint8Array.from(Buffer.from(csum, "hex"));
}

/** 32 raw bytes → hex checksum. */
export function bytesToChecksum(b: Uint8Array): string {
  if (b.length !== 32) throw parseError(`invalid raw checksum of ${b.length} bytes`);
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex");
}

/** Swaps the byte order of a 32-bit unsigned integer (OSTree stores its `u` fields big-endian). */
export function bswap32(v: number): number {
  return (
    (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | ((v >>> 24) & 0xff)) >>> 0
  );
}

/** Swaps the byte order of a 64-bit unsigned integer. */
export function bswap64(v: bigint): bigint {
  let x = BigInt.asUintN(64, v);
  let r = 0n;
  for (let i = 0; i < 8; i++) {
    r = (r << 8n) | (x & 0xffn);
    x >>= 8n;
  }
  return r;
}

const utf8 = new TextEncoder();

/** Byte-wise (strcmp) order of two names. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Encodes xattrs the way libostree does: sorted by name, name + NUL, empty values dropped. */
export function xattrsToGValue(xattrs: Xattrs | undefined): GValue[] {
  if (!xattrs || xattrs.size === 0) return [];
  const items: [Uint8Array, Uint8Array][] = [];
  for (const [name, value] of xattrs) {
    if (value.length === 0) continue;
    const nb = utf8.encode(name);
    const n = new Uint8Array(nb.length + 1);
    n.set(nb);
    items.push([n, value]);
  }
  items.sort((x, y) => Buffer.compare(x[0], y[0]));
  return items;
}

/** Decodes an `a(ayay)` xattr list into a map (names without their NUL). */
export function xattrsFromGValue(v: GValue): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const e of v as GValue[]) {
    const [n, val] = e as [Uint8Array, Uint8Array];
    const end = n.length > 0 && n[n.length - 1] === 0 ? n.length - 1 : n.length;
    out.set(Buffer.from(n.subarray(0, end)).toString("utf8"), val);
  }
  return out;
}

/** Serializes a dirmeta object. */
export function encodeDirMeta(m: DirMeta): Uint8Array {
  return encodeVariant(OSTREE_TYPES.dirmeta, [
    bswap32(m.uid),
    bswap32(m.gid),
    bswap32(m.mode),
    xattrsToGValue(m.xattrs),
  ]);
}

/** Parses a dirmeta object. */
export function decodeDirMeta(b: Uint8Array): DirMeta {
  const [uid, gid, mode, x] = decodeVariant(OSTREE_TYPES.dirmeta, b) as [
    number,
    number,
    number,
    GValue,
  ];
  return { uid: bswap32(uid), gid: bswap32(gid), mode: bswap32(mode), xattrs: xattrsFromGValue(x) };
}

/** Checksum of a dirmeta. */
export function dirMetaChecksum(m: DirMeta): string {
  return sha256Hex(encodeDirMeta(m));
}

function sortedEntries<T extends { name: string }>(xs: readonly T[]): T[] {
  const keyed = xs.map((x) => [Buffer.from(x.name), x] as const);
  keyed.sort((a, b) => Buffer.compare(a[0], b[0]));
  return keyed.map((k) => k[1]);
}

/** Checks a dirtree entry name: UTF-8, not empty, not `.`/`..`, no `/` or NUL. */
export function validateName(name: string): void {
  if (
    name === "" ||
    name === "." ||
    name === ".." ||
    name.includes("/") ||
    name.includes("\0") ||
    /\p{Cs}/u.test(name)
  ) {
    throw parseError(`invalid file name ${JSON.stringify(name)} in dirtree`);
  }
}

/** Serializes a dirtree (entries are sorted here, byte-wise). */
export function encodeDirTree(t: DirTree): Uint8Array {
  const files = sortedEntries(t.files).map((f) => {
    validateName(f.name);
    return [f.name, checksumToBytes(f.checksum)];
  });
  const dirs = sortedEntries(t.dirs).map((d) => {
    validateName(d.name);
    return [d.name, checksumToBytes(d.tree), checksumToBytes(d.meta)];
  });
  return encodeVariant(OSTREE_TYPES.dirtree, [files, dirs]);
}

/** Parses a dirtree. */
export function decodeDirTree(b: Uint8Array): DirTree {
  const [files, dirs] = decodeVariant(OSTREE_TYPES.dirtree, b) as [GValue[], GValue[]];
  return {
    files: files.map((f) => {
      const [name, c] = f as [string, Uint8Array];
      validateName(name);
      return { name, checksum: bytesToChecksum(c) };
    }),
    dirs: dirs.map((d) => {
      const [name, t, m] = d as [string, Uint8Array, Uint8Array];
      validateName(name);
      return { name, tree: bytesToChecksum(t), meta: bytesToChecksum(m) };
    }),
  };
}

function headerTuple(h: FileHeader): GValue[] {
  return [
    bswap32(h.uid),
    bswap32(h.gid),
    bswap32(h.mode),
    bswap32(h.rdev ?? 0),
    h.symlinkTarget ?? "",
    xattrsToGValue(h.xattrs),
  ];
}

/** The `(uuuusa(ayay))` file header hashed into a content checksum. */
export function encodeFileHeader(h: FileHeader): Uint8Array {
  return encodeVariant(OSTREE_TYPES.fileHeader, headerTuple(h));
}

/** Parses a `(uuuusa(ayay))` file header. */
export function decodeFileHeader(b: Uint8Array): FileHeader {
  const [uid, gid, mode, rdev, target, x] = decodeVariant(OSTREE_TYPES.fileHeader, b) as [
    number,
    number,
    number,
    number,
    string,
    GValue,
  ];
  return {
    uid: bswap32(uid),
    gid: bswap32(gid),
    mode: bswap32(mode),
    rdev: bswap32(rdev),
    symlinkTarget: target,
    xattrs: xattrsFromGValue(x),
  };
}

/** Wraps a header in the 8-byte prefix: u32 BE length, then 4 zero bytes. */
export function framedHeader(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + header.length);
  new DataView(out.buffer).setUint32(0, header.length, false);
  out.set(header, 8);
  return out;
}

/** The bytes that start a content object's checksum stream (prefix + header); the payload follows. */
export function contentChecksumPrefix(h: FileHeader): Uint8Array {
  return framedHeader(encodeFileHeader(h));
}

/** Checksum of a content object whose payload is in memory (symlinks: empty payload). */
export function contentChecksum(h: FileHeader, payload: Uint8Array = new Uint8Array(0)): string {
  return sha256Hex(contentChecksumPrefix(h), payload);
}

/** The archive `.filez` header `(tuuuusa(ayay))`, framed (prefix included), for a payload of `size` bytes. */
export function encodeArchiveHeader(h: FileHeader, size: bigint | number): Uint8Array {
  const [uid, gid, mode, rdev, target, x] = headerTuple(h);
  return framedHeader(
    encodeVariant(OSTREE_TYPES.archiveHeader, [
      bswap64(BigInt(size)),
      uid!,
      gid!,
      mode!,
      rdev!,
      target!,
      x!,
    ]),
  );
}

/** Parses the start of a `.filez` object: header and the offset where the deflate payload begins. */
export function decodeArchiveHeader(b: Uint8Array): {
  header: FileHeader;
  size: bigint;
  payloadOffset: number;
} {
  if (b.length < 8) throw parseError("archive content object truncated");
  const len = new DataView(b.buffer, b.byteOffset, b.length).getUint32(0, false);
  if (len > 10 * 1024 * 1024 || 8 + len > b.length)
    throw parseError("archive content object header truncated");
  const [size, uid, gid, mode, rdev, target, x] = decodeVariant(
    OSTREE_TYPES.archiveHeader,
    b.subarray(8, 8 + len),
  ) as [bigint, number, number, number, number, string, GValue];
  return {
    header: {
      uid: bswap32(uid),
      gid: bswap32(gid),
      mode: bswap32(mode),
      rdev: bswap32(rdev),
      symlinkTarget: target,
      xattrs: xattrsFromGValue(x),
    },
    size: bswap64(size),
    payloadOffset: 8 + len,
  };
}

/** The bare-user `user.ostreemeta` xattr value `(uuua(ayay))`. */
export function encodeOstreeMeta(h: FileHeader): Uint8Array {
  return encodeVariant(OSTREE_TYPES.ostreemeta, [
    bswap32(h.uid),
    bswap32(h.gid),
    bswap32(h.mode),
    xattrsToGValue(h.xattrs),
  ]);
}

/** Parses a `user.ostreemeta` value. */
export function decodeOstreeMeta(b: Uint8Array): FileHeader {
  const [uid, gid, mode, x] = decodeVariant(OSTREE_TYPES.ostreemeta, b) as [
    number,
    number,
    number,
    GValue,
  ];
  return {
    uid: bswap32(uid),
    gid: bswap32(gid),
    mode: bswap32(mode),
    rdev: 0,
    xattrs: xattrsFromGValue(x),
  };
}

/** Serializes a commit. */
export function encodeCommit(c: Commit): Uint8Array {
  return encodeVariant(OSTREE_TYPES.commit, [
    c.metadata.map(([k, v]) => [k, v]),
    c.parent ? checksumToBytes(c.parent) : new Uint8Array(0),
    c.related.map(([n, s]) => [n, checksumToBytes(s)]),
    c.subject,
    c.body,
    bswap64(c.timestamp),
    checksumToBytes(c.rootTree),
    checksumToBytes(c.rootMeta),
  ]);
}

/** Parses a commit. */
export function decodeCommit(b: Uint8Array): Commit {
  const [md, parent, related, subject, body, ts, tree, meta] = decodeVariant(
    OSTREE_TYPES.commit,
    b,
  ) as [GValue[], Uint8Array, GValue[], string, string, bigint, Uint8Array, Uint8Array];
  return {
    metadata: md.map((e) => [(e as GValue[])[0] as string, (e as GValue[])[1] as Variant]),
    parent: parent.length === 0 ? null : bytesToChecksum(parent),
    related: related.map((r) => [
      (r as GValue[])[0] as string,
      bytesToChecksum((r as GValue[])[1] as Uint8Array),
    ]),
    subject,
    body,
    timestamp: bswap64(ts),
    rootTree: bytesToChecksum(tree),
    rootMeta: bytesToChecksum(meta),
  };
}

/** Serializes detached commit metadata (`.commitmeta`, an `a{sv}`). */
export function encodeCommitMeta(entries: readonly (readonly [string, Variant])[]): Uint8Array {
  return encodeVariant(
    OSTREE_TYPES.commitmeta,
    entries.map(([k, v]) => [k, v]),
  );
}

/** Parses detached commit metadata. */
export function decodeCommitMeta(b: Uint8Array): [string, Variant][] {
  return (decodeVariant(OSTREE_TYPES.commitmeta, b) as GValue[]).map((e) => [
    (e as GValue[])[0] as string,
    (e as GValue[])[1] as Variant,
  ]);
}

/** `ContentChecksum` of a commit as `ostree show` prints it: SHA-256(root dirtree ‖ root dirmeta). */
export function commitContentChecksum(c: Pick<Commit, "rootTree" | "rootMeta">): string {
  return sha256Hex(checksumToBytes(c.rootTree), checksumToBytes(c.rootMeta));
}

/** Looks up a key of commit metadata. */
export function metadataValue(
  md: readonly (readonly [string, Variant])[],
  key: string,
): Variant | undefined {
  return md.find(([k]) => k === key)?.[1];
}

/** Path of an object inside the repo: `objects/XX/YYYY….ext`. */
export function objectPath(checksum: string, ext: string): string {
  return `objects/${checksum.slice(0, 2)}/${checksum.slice(2)}.${ext}`;
}

/** Masks applied by `--canonical-permissions` and bare-user-only (regular files and dirs: 0755). */
export function canonicalMode(mode: number): number {
  const fmt = mode & S_IFMT;
  if (fmt === S_IFREG || fmt === S_IFDIR) return fmt | (mode & 0o755);
  return mode;
}
