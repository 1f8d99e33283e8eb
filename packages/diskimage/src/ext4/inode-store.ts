/**
 * The ext4 writer's per-inode state, packed: one slot per inode number in typed arrays (about
 * 110 bytes an inode, no object per inode), directory entries as packed records per directory
 * (freed once the directory is laid out), and the few things only some inodes have (xattrs,
 * slow symlink targets, file contents to open) in side tables.
 */
import type { ByteStream, HostFile, TreeEntryType } from "@imagemode/core";
import type { DirEntry } from "./directory.js";
import type { XattrRecord } from "./xattr.js";

/** Inode types by code (0: unused slot). */
export const TYPE_CODES: readonly (TreeEntryType | undefined)[] = [
  undefined,
  "file",
  "dir",
  "symlink",
  "chardev",
  "blockdev",
  "fifo",
  "socket",
];
const CODE_OF = new Map(TYPE_CODES.map((t, i) => [t, i]));

/** The code of a tree entry type. */
export function typeCode(t: TreeEntryType): number {
  return CODE_OF.get(t) as number;
}

/** Inode flag bits kept per inode. */
export const NODE_FLAG = { indexed: 1 } as const;

/** Packed entries of one directory: `[ino u32][file type u8][name length u8][name]…`. */
export class DirList {
  #buf = new Uint8Array(64);
  #len = 0;
  count = 0;
  /** Sum of the names' lengths. */
  nameBytes = 0;
  /** Names seen (for duplicate detection while collecting; dropped afterwards). */
  names: Set<string> | undefined = new Set();

  add(name: Uint8Array, ino: number, fileType: number): void {
    const need = this.#len + 6 + name.length;
    if (need > this.#buf.length) {
      const next = new Uint8Array(Math.max(need, this.#buf.length * 2));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    const b = this.#buf;
    const o = this.#len;
    b[o] = ino & 0xff;
    b[o + 1] = (ino >>> 8) & 0xff;
    b[o + 2] = (ino >>> 16) & 0xff;
    b[o + 3] = (ino >>> 24) & 0xff;
    b[o + 4] = fileType;
    b[o + 5] = name.length;
    b.set(name, o + 6);
    this.#len = need;
    this.count++;
    this.nameBytes += name.length;
  }

  /** The entries, as views into the packed records. */
  entries(): DirEntry[] {
    const out: DirEntry[] = [];
    const b = this.#buf;
    for (let o = 0; o < this.#len; ) {
      const ino =
        ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16)) +
        (b[o + 3] as number) * 2 ** 24;
      const len = b[o + 5] as number;
      out.push({ ino, fileType: b[o + 4] as number, name: b.subarray(o + 6, o + 6 + len) });
      o += 6 + len;
    }
    return out;
  }
}

/** Opens a regular file's content. */
export type ContentOpener = () => Promise<ByteStream>;

/** Per-inode state of the ext4 writer, indexed by inode number. */
export class InodeStore {
  #cap = 0;
  /** Highest inode number in use. */
  maxIno = 0;
  type = new Uint8Array(0);
  mode = new Uint16Array(0);
  flags = new Uint8Array(0);
  uid = new Uint32Array(0);
  gid = new Uint32Array(0);
  /** Hard links (files); for directories, the number of subdirectories. */
  links = new Uint32Array(0);
  parent = new Uint32Array(0);
  mtime = new Float64Array(0);
  size = new Float64Array(0);
  rdev = new Float64Array(0);
  /** Blocks allocated to the inode (data, extent tree, xattr block). */
  blocks = new Float64Array(0);
  xattrBlock = new Float64Array(0);
  /** `i_block` (60 bytes) per inode. */
  iBlock = new Uint8Array(0);
  /** Each inode's first name (UTF-8, packed in `#names`): offset and length; with `parent`, its path. */
  nameAt = new Float64Array(0);
  nameLen = new Uint8Array(0);
  #names = new Uint8Array(1 << 16);
  #namesLen = 0;
  /** Side tables: only some inodes have these. */
  readonly xattrs = new Map<number, XattrRecord[]>();
  readonly targets = new Map<number, Uint8Array>();
  readonly dirs = new Map<number, DirList>();
  /**
   * Regular files in inode order and how to open each (dropped once opened): a host file's
   * directory and name (read by the writer into its own buffer) or the tree's opener.
   */
  fileInos: number[] = [];
  openers: (ContentOpener | HostFile | undefined)[] = [];

  constructor(capacity = 1024) {
    this.#grow(capacity);
  }

  #grow(cap: number): void {
    const g = <T extends { length: number; set(a: T): void }>(
      a: T,
      make: (n: number) => T,
      k = 1,
    ) => {
      const n = make(cap * k);
      n.set(a);
      return n;
    };
    this.type = g(this.type, (n) => new Uint8Array(n));
    this.mode = g(this.mode, (n) => new Uint16Array(n));
    this.flags = g(this.flags, (n) => new Uint8Array(n));
    this.uid = g(this.uid, (n) => new Uint32Array(n));
    this.gid = g(this.gid, (n) => new Uint32Array(n));
    this.links = g(this.links, (n) => new Uint32Array(n));
    this.parent = g(this.parent, (n) => new Uint32Array(n));
    this.mtime = g(this.mtime, (n) => new Float64Array(n));
    this.size = g(this.size, (n) => new Float64Array(n));
    this.rdev = g(this.rdev, (n) => new Float64Array(n));
    this.blocks = g(this.blocks, (n) => new Float64Array(n));
    this.xattrBlock = g(this.xattrBlock, (n) => new Float64Array(n));
    this.iBlock = g(this.iBlock, (n) => new Uint8Array(n), 60);
    this.nameAt = g(this.nameAt, (n) => new Float64Array(n));
    this.nameLen = g(this.nameLen, (n) => new Uint8Array(n));
    this.#cap = cap;
  }

  /** Makes slot `ino` usable (growing the arrays) and records it as used. */
  ensure(ino: number): void {
    if (ino >= this.#cap) this.#grow(Math.max(ino + 1, this.#cap * 2));
    if (ino > this.maxIno) this.maxIno = ino;
  }

  /** The `i_block` bytes of `ino` (a view). */
  iBlockOf(ino: number): Uint8Array {
    return this.iBlock.subarray(ino * 60, ino * 60 + 60);
  }

  typeOf(ino: number): TreeEntryType | undefined {
    return TYPE_CODES[this.type[ino] as number];
  }

  /** Records `ino`'s first name (at most 255 bytes) and the directory that holds it. */
  setName(ino: number, parent: number, name: Uint8Array): void {
    const need = this.#namesLen + name.length;
    if (need > this.#names.length) {
      const next = new Uint8Array(Math.max(need, this.#names.length * 2));
      next.set(this.#names.subarray(0, this.#namesLen));
      this.#names = next;
    }
    this.#names.set(name, this.#namesLen);
    this.nameAt[ino] = this.#namesLen;
    this.nameLen[ino] = name.length;
    this.#namesLen = need;
    this.parent[ino] = parent;
  }

  /** The tree path of `ino` (for messages), rebuilt from names and parents. */
  pathOf(ino: number): string {
    if (ino === 2) return ".";
    const parts: string[] = [];
    for (let i = ino, hops = 0; i !== 2 && hops < 4096; i = this.parent[i] as number, hops++) {
      if (!this.type[i] || i === 0)
        return parts.length ? parts.reverse().join("/") : `<inode ${ino}>`;
      const at = this.nameAt[i] as number;
      parts.push(
        Buffer.from(this.#names.subarray(at, at + (this.nameLen[i] as number))).toString(),
      );
    }
    return parts.reverse().join("/");
  }
}
