/**
 * The ext4 writer: a {@link FileTree} in, an ext4 filesystem out through a {@link BlockSink}.
 * Pass one collects the tree's metadata, assigns inodes and plans the geometry; pass two lays
 * out directories, then streams every file's content straight to the sink (all-zero blocks
 * become holes), then writes inode tables, bitmaps, descriptors and superblocks.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import {
  type FileTree,
  HostFile,
  ImageModeError,
  invalidArgument,
  isTreePath,
  type OpOptions,
  S_IF,
  type TreeEntry,
  type TreeEntryType,
  throwIfAborted,
  toImageModeError,
  unsupported,
} from "@imagemode/core";
import type { BlockSink } from "../block-sink.js";
import { checksumDirBlock, FT, htreeShape, layoutDirectory } from "./directory.js";
import { DX_HASH } from "./dirhash.js";
import { buildExtentTree, type Extent4, MAX_EXTENT_LEN } from "./extents.js";
import { planWithBitmap } from "./geometry.js";
import { DirList, InodeStore, NODE_FLAG, typeCode } from "./inode-store.js";
import { defaultJournalBlocks, encodeJournalSuperblock, JOURNAL_INO } from "./journal.js";
import {
  BG_FLAGS,
  bitmapChecksum,
  checksumSeed,
  EXT4_MAGIC,
  encodeGroupDescriptor,
  encodeInode,
  encodeSuperblock,
  encodeTime,
  FEATURE,
  INODE_EXTRA_ISIZE,
  INODE_FLAGS,
  inodeChecksumSeed,
  setInodeChecksum,
  xattrBlockChecksum,
} from "./structs.js";
import {
  encodeInodeXattrs,
  encodeXattrBlock,
  sortXattrs,
  toXattrRecord,
  type XattrRecord,
  xattrSpace,
} from "./xattr.js";

const OP = "diskimage.ext4";
/** Most inodes sharing one xattr block (the kernel's `EXT4_XATTR_REFCOUNT_MAX`). */
const XATTR_REFCOUNT_MAX = 1024;

/** Options of {@link writeExt4}. */
export interface WriteExt4Options extends OpOptions {
  /** Bytes of the volume (the sink's size). */
  sizeBytes: number;
  /** 1024, 2048 or 4096 (default 4096). */
  blockSize?: number;
  /** Filesystem UUID (`xxxxxxxx-xxxx-…` or 16 bytes). Default: derived from label, size and time, so output stays deterministic. */
  uuid?: string | Uint8Array;
  /** Volume label, at most 16 bytes UTF-8. */
  label?: string;
  /** Seconds since the epoch for every time the tree does not give (default 0). */
  sourceDateEpoch?: number;
  /** Percent of blocks reserved for root (default 5). */
  reservedPercent?: number;
  /** Bytes of volume per inode (default 16384). */
  inodeRatio?: number;
  /** Directory index hash (default `half_md4`). */
  hashVersion?: "half_md4" | "tea";
  /** Directory hash seed (UUID form or 16 bytes). Default: derived from the UUID. */
  hashSeed?: string | Uint8Array;
  /**
   * An empty, clean jbd2 journal (inode 8, `has_journal`), as mke2fs makes by default: `true` for
   * mke2fs's default size, `{ blocks }` for another, `false` for none. Default: mke2fs's default
   * size, or none on a volume under 2048 blocks (as mke2fs). Only the journal's superblock is
   * written; its other blocks stay holes (zeros), which is a valid empty journal.
   */
  journal?: boolean | { blocks: number };
}

/** What {@link writeExt4} wrote. */
export interface Ext4Result {
  uuid: string;
  label: string;
  blockSize: number;
  blocksCount: number;
  /** Bytes the filesystem covers (`blocksCount × blockSize`, at most the volume size). */
  sizeBytes: number;
  groupCount: number;
  inodesCount: number;
  usedInodes: number;
  freeBlocks: number;
  freeInodes: number;
  /** Regular files (inodes), directories, symlinks, other nodes. */
  files: number;
  directories: number;
  symlinks: number;
  specials: number;
  /** Content bytes read from the tree. */
  contentBytes: number;
}

function parseUuid(u: string | Uint8Array, what: string): Uint8Array {
  if (u instanceof Uint8Array) {
    if (u.length !== 16) throw invalidArgument(`${what} must be 16 bytes`, { op: OP });
    return u;
  }
  const hex = u.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex))
    throw invalidArgument(`${what} ${JSON.stringify(u)} is not a UUID`, { op: OP });
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** Formats 16 bytes as a UUID string. */
export function formatUuid(b: Uint8Array): string {
  const h = Buffer.from(b).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function derivedUuid(seed: string): Uint8Array {
  const b = new Uint8Array(createHash("sha256").update(seed).digest().subarray(0, 16));
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  return b;
}

/** Type codes of the inode store. */
const TYPE = {
  file: typeCode("file"),
  dir: typeCode("dir"),
  symlink: typeCode("symlink"),
} as const;

const FILE_TYPE: Record<TreeEntryType, number> = {
  file: FT.file,
  dir: FT.dir,
  symlink: FT.symlink,
  chardev: FT.chardev,
  blockdev: FT.blockdev,
  fifo: FT.fifo,
  socket: FT.socket,
};

/** Linux `makedev` parts of an `rdev`. */
function devParts(rdev: number): { major: number; minor: number } {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return { major, minor };
}

/** Collects the tree (pass one) into `st`: inode numbers in tree order, parents before children. */
async function collect(
  tree: FileTree,
  st: InodeStore,
  sde: number,
  bs: number,
  signal?: AbortSignal,
): Promise<void> {
  const ROOT = 2;
  const LOST = 11;
  const init = (
    ino: number,
    parent: number,
    name: Uint8Array,
    e: Partial<TreeEntry> & { type: TreeEntryType },
  ) => {
    st.ensure(ino);
    st.type[ino] = typeCode(e.type);
    st.mode[ino] = (e.mode ?? (e.type === "dir" ? 0o755 : 0o644)) & 0o7777;
    st.uid[ino] = e.uid ?? 0;
    st.gid[ino] = e.gid ?? 0;
    st.mtime[ino] = Math.floor(e.mtime ?? sde);
    st.rdev[ino] = e.rdev ?? 0;
    st.links[ino] = e.type === "dir" ? 0 : 1;
    st.setName(ino, parent, name);
  };
  init(ROOT, ROOT, new Uint8Array(0), { type: "dir" });
  st.parent[ROOT] = ROOT;
  st.dirs.set(ROOT, new DirList());
  const dirs = new Map<string, number>([["", ROOT]]);
  const byKey = new Map<string, number>();
  let lostFound = 0;
  let next = 12;
  let count = 0;
  for await (const e of tree) {
    if ((++count & 1023) === 0) throwIfAborted(signal, OP);
    if (e.path === ".") {
      if (count !== 1) throw invalidArgument(`the root entry "." must come first`, { op: OP });
      if (e.type !== "dir")
        throw invalidArgument(`the root entry "." must be a directory`, { op: OP });
      st.mode[ROOT] = e.mode & 0o7777;
      st.uid[ROOT] = e.uid;
      st.gid[ROOT] = e.gid;
      st.mtime[ROOT] = Math.floor(e.mtime ?? sde);
      const x = xattrsOf(e);
      if (x.length > 0) st.xattrs.set(ROOT, x);
      continue;
    }
    for (const id of [e.uid, e.gid]) {
      if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
        throw invalidArgument(`${e.path}: uid/gid ${id} is not a 32-bit id`, {
          op: OP,
          data: { path: e.path },
        });
      }
    }
    if (!isTreePath(e.path))
      throw invalidArgument(`invalid tree path ${JSON.stringify(e.path)}`, {
        op: OP,
        data: { path: e.path },
      });
    const slash = e.path.lastIndexOf("/");
    const parentPath = slash < 0 ? "" : e.path.slice(0, slash);
    const name = slash < 0 ? e.path : e.path.slice(slash + 1);
    const parent = dirs.get(parentPath);
    const list = parent === undefined ? undefined : st.dirs.get(parent);
    if (parent === undefined || !list)
      throw invalidArgument(`${e.path}: parent directory is not in the tree before it`, {
        op: OP,
        data: { path: e.path },
      });
    if (list.names?.has(name))
      throw invalidArgument(`${e.path}: duplicate entry`, { op: OP, data: { path: e.path } });
    list.names?.add(name);
    const nameBytes = Buffer.from(name);
    if (nameBytes.length > 255)
      throw invalidArgument(`${e.path}: name longer than 255 bytes`, {
        op: OP,
        data: { path: e.path },
      });
    let ino = e.inode !== undefined ? (byKey.get(e.inode) ?? 0) : 0;
    if (ino > 0) {
      if (st.typeOf(ino) !== e.type || e.type === "dir") {
        throw invalidArgument(`${e.path}: hard link to ${st.pathOf(ino)} of another type`, {
          op: OP,
          data: { path: e.path },
        });
      }
      st.links[ino] = (st.links[ino] as number) + 1;
      if ((st.links[ino] as number) > 65000) {
        throw invalidArgument(`${st.pathOf(ino)}: more than 65000 hard links`, {
          op: OP,
          data: { path: e.path },
        });
      }
    } else {
      const isLost = parent === ROOT && name === "lost+found";
      if (isLost && e.type !== "dir")
        throw invalidArgument("lost+found at the root must be a directory", { op: OP });
      ino = isLost ? LOST : next++;
      if (isLost) lostFound = ino;
      init(ino, parent, nameBytes, e);
      const x = xattrsOf(e);
      if (x.length > 0) st.xattrs.set(ino, x);
      if (e.type === "file") {
        const size = e.size ?? 0;
        if (!Number.isSafeInteger(size) || size < 0)
          throw invalidArgument(`${e.path}: invalid size ${e.size}`, { op: OP });
        if (size > 0 && !e.content)
          throw invalidArgument(`${e.path}: file of ${size} bytes has no content`, { op: OP });
        st.size[ino] = size;
        st.fileInos.push(ino);
        // a host file is read by the writer itself, unless a transform replaced its content
        const host = e.hostFile && e.content === e.hostFile.open ? e.hostFile : undefined;
        st.openers.push(size > 0 ? (host ?? e.content) : undefined);
      } else if (e.type === "symlink") {
        const t = Buffer.from(e.linkTarget ?? "");
        if (t.length === 0 || t.length >= bs || t.includes(0)) {
          throw invalidArgument(
            `${e.path}: symlink target must be 1..${bs - 1} bytes without NUL`,
            { op: OP, data: { path: e.path } },
          );
        }
        st.size[ino] = t.length;
        if (t.length < 60) st.iBlockOf(ino).set(t);
        else st.targets.set(ino, new Uint8Array(t));
      } else if (e.type === "dir") {
        st.parent[ino] = parent;
        st.dirs.set(ino, new DirList());
        dirs.set(e.path, ino);
        st.links[parent] = (st.links[parent] as number) + 1;
      }
      if (e.inode !== undefined) byKey.set(e.inode, ino);
    }
    list.add(nameBytes, ino, FILE_TYPE[e.type]);
  }
  if (!lostFound) {
    lostFound = LOST;
    const lf = Buffer.from("lost+found");
    init(LOST, ROOT, lf, { type: "dir", mode: 0o700 });
    st.parent[LOST] = ROOT;
    st.dirs.set(LOST, new DirList());
    st.links[ROOT] = (st.links[ROOT] as number) + 1;
    st.dirs.get(ROOT)?.add(lf, LOST, FT.dir);
  }
  for (const d of st.dirs.values()) d.names = undefined; // only needed while collecting
  st.ensure(Math.max(LOST, next - 1));
}

/** Inode numbers in the order the writer lays them out: the root, lost+found, then the tree's. */
function* layoutOrder(st: InodeStore): Generator<number> {
  yield 2;
  yield 11;
  for (let ino = 12; ino <= st.maxIno; ino++) if (st.type[ino]) yield ino;
}

function xattrsOf(e: TreeEntry): XattrRecord[] {
  if (!e.xattrs || e.xattrs.size === 0) return [];
  const recs: XattrRecord[] = [];
  for (const [k, v] of e.xattrs) {
    try {
      recs.push(toXattrRecord(k, v));
    } catch (err) {
      if (err instanceof ImageModeError) (err.data as Record<string, unknown>).path = e.path;
      throw err;
    }
  }
  return sortXattrs(recs);
}

/**
 * Gathers writes of consecutive blocks into one staging buffer (copied, so callers may reuse
 * theirs) and hands the sink one large positional write per run of up to `STAGE_BLOCKS`.
 */
class BlockWriter {
  static readonly STAGE_BLOCKS = 256;
  #start = -1;
  #len = 0;
  #stage: Buffer;
  constructor(
    readonly sink: BlockSink,
    readonly bs: number,
  ) {
    this.#stage = Buffer.allocUnsafe(BlockWriter.STAGE_BLOCKS * bs);
  }
  async put(block: number, data: Uint8Array): Promise<void> {
    const n = data.length / this.bs;
    if (
      this.#len > 0 &&
      (this.#start + this.#len !== block || this.#len + n > BlockWriter.STAGE_BLOCKS)
    )
      await this.flush();
    if (n > BlockWriter.STAGE_BLOCKS) {
      await this.sink.write(block * this.bs, data);
      return;
    }
    if (this.#len === 0) this.#start = block;
    this.#stage.set(data, this.#len * this.bs);
    this.#len += n;
  }
  async flush(): Promise<void> {
    if (this.#len === 0) return;
    const data = this.#stage.subarray(0, this.#len * this.bs);
    const at = this.#start * this.bs;
    this.#len = 0;
    // a sink is done with the bytes once its write settles, so the stage is reused
    await this.sink.write(at, data);
  }
}

/** Small files at most this large are read ahead. */
const READ_AHEAD_FILE = 1024 * 1024;
/** Bytes of content read ahead at most. */
const READ_AHEAD_BYTES = 4 * 1024 * 1024;
/** Bytes read from a host file at a time (into one reused buffer). */
const HOST_READ = 1024 * 1024;
/** Files read ahead at most. */
const READ_AHEAD_FILES = 16;

/**
 * Reads the contents of the next small files while the current one is written: a bounded
 * window (files and bytes), each content opened once, errors surfacing when the file's turn comes.
 */
class ReadAhead {
  #pending = new Map<number, Promise<Uint8Array[]>>();
  #next = 0;
  #bytes = 0;
  constructor(readonly st: InodeStore) {}
  fill(current: number): void {
    const st = this.st;
    if (this.#next <= current) this.#next = current + 1;
    while (this.#next < st.fileInos.length && this.#next - current <= READ_AHEAD_FILES) {
      const i = this.#next;
      const ino = st.fileInos[i] as number;
      const size = st.size[ino] as number;
      const open = st.openers[i];
      if (size > READ_AHEAD_FILE || !open || open instanceof HostFile) {
        this.#next++; // large files stream in their turn
        continue;
      }
      if (this.#bytes + size > READ_AHEAD_BYTES) break;
      this.#bytes += size;
      st.openers[i] = undefined;
      const p = (async () => {
        const chunks: Uint8Array[] = [];
        let got = 0;
        for await (const c of await open()) {
          got += c.length;
          if (got > size)
            throw new ImageModeError(
              "SIZE_MISMATCH",
              `${st.pathOf(ino)}: content is longer than its size ${size}`,
              { op: OP, data: { path: st.pathOf(ino) } },
            );
          chunks.push(c);
        }
        return chunks;
      })();
      p.catch(() => {}); // observed when taken
      this.#pending.set(i, p);
      this.#next++;
    }
  }
  /**
   * A host file's content read synchronously into one reused buffer (each chunk is consumed
   * before the next read): no buffer per read for the garbage collector, and three system calls
   * for a small file instead of four thread-pool round trips.
   */
  *#readHostFile(file: HostFile): Generator<Uint8Array> {
    const path = file.path();
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (e) {
      throw toImageModeError(e, OP, { path });
    }
    try {
      for (;;) {
        let got: number;
        try {
          got = readSync(fd, this.#buf, 0, this.#buf.length, null);
        } catch (e) {
          throw toImageModeError(e, OP, { path });
        }
        if (got === 0) return;
        yield this.#buf.subarray(0, got);
      }
    } finally {
      closeSync(fd);
    }
  }
  #buf = Buffer.allocUnsafe(HOST_READ);

  /** The content of file `i`: read ahead, or opened now (each opener is used once, then dropped). */
  async take(i: number): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array> | undefined> {
    const p = this.#pending.get(i);
    if (!p) {
      const open = this.st.openers[i];
      this.st.openers[i] = undefined;
      if (open instanceof HostFile) return this.#readHostFile(open);
      return open ? await open() : undefined;
    }
    this.#pending.delete(i);
    const size = this.st.size[this.st.fileInos[i] as number] as number;
    const self = this;
    return (async function* () {
      try {
        yield* await p;
      } finally {
        self.#bytes -= size;
      }
    })();
  }
}

/**
 * Writes `tree` as an ext4 filesystem to `sink` (a zero-filled volume of `sizeBytes`): 64bit,
 * extents, flex_bg, sparse_super, huge_file, large_file, dir_nlink, extra_isize (256-byte
 * inodes), filetype, dir_index, ext_attr, metadata_csum, and (by default) an empty jbd2 journal. Ownership, modes, times,
 * xattrs and hard links come from the tree. The same tree and options give the same bytes.
 */
export async function writeExt4(
  tree: FileTree,
  sink: BlockSink,
  options: WriteExt4Options,
): Promise<Ext4Result> {
  const { signal, onProgress } = options;
  throwIfAborted(signal, OP);
  const bs = options.blockSize ?? 4096;
  const sde = options.sourceDateEpoch ?? 0;
  if (!Number.isSafeInteger(sde))
    throw invalidArgument(`sourceDateEpoch ${sde} is not an integer`, { op: OP });
  const label = options.label ?? "";
  const labelBytes = Buffer.from(label);
  if (labelBytes.length > 16)
    throw invalidArgument(`ext4 label ${JSON.stringify(label)} is longer than 16 bytes`, {
      op: OP,
    });
  const uuid =
    options.uuid !== undefined
      ? parseUuid(options.uuid, "uuid")
      : derivedUuid(`imagemode-ext4\0${label}\0${options.sizeBytes}\0${sde}`);
  const hashSeedBytes =
    options.hashSeed !== undefined
      ? parseUuid(options.hashSeed, "hashSeed")
      : derivedUuid(`imagemode-ext4-hash\0${formatUuid(uuid)}`);
  const hashSeed = new Uint32Array(4);
  for (let i = 0; i < 4; i++) hashSeed[i] = Buffer.from(hashSeedBytes).readUInt32LE(i * 4);
  const hashVersion = options.hashVersion === "tea" ? DX_HASH.tea : DX_HASH.halfMd4;
  // geometry validates bs/size before we walk the tree
  planWithBitmap({
    sizeBytes: options.sizeBytes,
    blockSize: bs,
    inodeRatio: options.inodeRatio,
    reservedPercent: options.reservedPercent,
  });

  const st = new InodeStore();
  await collect(tree, st, sde, bs, signal);
  const maxIno = st.maxIno;
  const { geometry: geo, bitmap } = planWithBitmap({
    sizeBytes: options.sizeBytes,
    blockSize: bs,
    inodeRatio: options.inodeRatio,
    reservedPercent: options.reservedPercent,
    minInodes: maxIno,
  });
  const csumSeed = checksumSeed(uuid);
  const seedOf = (ino: number) => inodeChecksumSeed(csumSeed, ino, 0);
  const writer = new BlockWriter(sink, bs);

  // space check before anything is written: metadata must fit; contents may still fit when
  // they have holes (all-zero blocks are not allocated), so for them this only warns
  let metaBlocks = 0;
  let contentBlocks = 0;
  let contentTotal = 0;
  for (const ino of layoutOrder(st)) {
    const t = st.type[ino];
    if (t === TYPE.file) {
      contentBlocks += Math.ceil((st.size[ino] as number) / bs);
      contentTotal += st.size[ino] as number;
    } else if (t === TYPE.dir) {
      const d = st.dirs.get(ino) as DirList;
      const bytes = 24 + 11 * d.count + d.nameBytes;
      metaBlocks += Math.ceil((bytes * 1.1) / (bs - 12)) + 4;
    } else if (t === TYPE.symlink && (st.size[ino] as number) >= 60) metaBlocks++;
    if (st.xattrs.has(ino)) metaBlocks++;
  }
  const journalBlocks =
    options.journal === false
      ? 0
      : options.journal === undefined || options.journal === true
        ? defaultJournalBlocks(geo.blocksCount)
        : options.journal.blocks;
  if (
    options.journal !== undefined &&
    options.journal !== false &&
    (!Number.isInteger(journalBlocks) || journalBlocks < 1024)
  ) {
    throw invalidArgument(`an ext4 journal needs at least 1024 blocks (got ${journalBlocks})`, {
      op: OP,
      data: { journalBlocks },
    });
  }
  metaBlocks += journalBlocks;
  const freeAtStart = geo.blocksCount - geo.overheadBlocks;
  const tooSmall = (need: number) =>
    `the tree needs about ${need * bs} bytes but the ${options.sizeBytes}-byte ext4 volume has ${freeAtStart * bs} free`;
  if (metaBlocks > freeAtStart) {
    throw invalidArgument(tooSmall(metaBlocks), {
      op: OP,
      data: { neededBytes: metaBlocks * bs, freeBytes: freeAtStart * bs },
    });
  }
  if (metaBlocks + contentBlocks > freeAtStart) {
    onProgress?.({
      type: "warn",
      task: "disk.ext4",
      code: "EXT4_TIGHT",
      message: `${tooSmall(metaBlocks + contentBlocks)}; it fits only if enough of the contents are holes`,
    });
  }

  let cursor = geo.firstDataBlock;
  const noSpace = () =>
    invalidArgument(`ext4 volume of ${options.sizeBytes} bytes is full`, {
      op: OP,
      data: { sizeBytes: options.sizeBytes },
    });
  const allocOne = (): number => {
    let b = bitmap.nextFree(cursor);
    if (b < 0) b = bitmap.nextFree(geo.firstDataBlock);
    if (b < 0) throw noSpace();
    bitmap.mark(b);
    cursor = b + 1;
    return b;
  };
  /** Allocates `count` blocks as extents starting at logical block 0. */
  const allocExtents = (count: number): Extent4[] => {
    const out: Extent4[] = [];
    let logical = 0;
    while (logical < count) {
      const p = allocOne();
      const last = out[out.length - 1];
      if (last && last.physical + last.len === p && last.len < MAX_EXTENT_LEN) last.len++;
      else out.push({ logical, physical: p, len: 1 });
      logical++;
    }
    return out;
  };
  /** Builds `ino`'s extent tree into its `i_block`, writes the tree's blocks, counts the blocks. */
  const finishExtents = async (ino: number, extents: readonly Extent4[]) => {
    const t = buildExtentTree(extents, bs, allocOne, seedOf(ino));
    st.iBlockOf(ino).set(t.iBlock);
    let n = t.blocks.length;
    for (const x of extents) n += x.len;
    st.blocks[ino] = (st.blocks[ino] as number) + n;
    for (const b of t.blocks) await writer.put(b.physical, b.data);
  };

  onProgress?.({ type: "start", task: "disk.ext4", total: contentTotal, description: "ext4" });
  // the journal first, contiguous at the start of the data area
  if (journalBlocks > 0) {
    st.type[JOURNAL_INO] = TYPE.file;
    st.mode[JOURNAL_INO] = 0o600;
    st.mtime[JOURNAL_INO] = sde;
    st.links[JOURNAL_INO] = 1;
    st.size[JOURNAL_INO] = journalBlocks * bs;
    const extents = allocExtents(journalBlocks);
    await writer.put(
      (extents[0] as Extent4).physical,
      encodeJournalSuperblock(bs, journalBlocks, uuid),
    );
    await finishExtents(JOURNAL_INO, extents);
  }
  // directories
  for (const ino of layoutOrder(st)) {
    if (st.type[ino] !== TYPE.dir) continue;
    throwIfAborted(signal, OP);
    const list = st.dirs.get(ino) as DirList;
    let layout: ReturnType<typeof layoutDirectory>;
    try {
      layout = layoutDirectory(list.entries(), {
        blockSize: bs,
        csum: true,
        ino,
        parentIno: st.parent[ino] as number,
        hashVersion,
        unsignedHash: true,
        hashSeed,
        minBlocks: ino === 11 ? Math.max(1, Math.ceil(16384 / bs)) : 1,
      });
    } catch (e) {
      if (e instanceof RangeError)
        throw unsupported(`${st.pathOf(ino)}: ${e.message}`, {
          op: OP,
          data: { path: st.pathOf(ino) },
        });
      throw e;
    }
    st.dirs.delete(ino); // its entries are laid out; nothing per entry is kept
    if (layout.indexed) st.flags[ino] = (st.flags[ino] as number) | NODE_FLAG.indexed;
    const shape = layout.indexed ? htreeShape(layout.blocks) : { levels: 0, nodes: 0 };
    const seed = seedOf(ino);
    layout.blocks.forEach((b, i) => {
      checksumDirBlock(b, i, layout.indexed, shape.levels, shape.nodes, seed);
    });
    const extents = allocExtents(layout.blocks.length);
    st.size[ino] = layout.blocks.length * bs;
    for (const x of extents)
      for (let i = 0; i < x.len; i++)
        await writer.put(x.physical + i, layout.blocks[x.logical + i] as Uint8Array);
    await finishExtents(ino, extents);
  }
  // slow symlinks and xattr blocks
  // only the records are kept; blocks are encoded again when written (memory per block: none)
  const sharedXattrs = new Map<string, { block: number; records: XattrRecord[]; users: number }>();
  const xattrBlocks: { block: number; records: XattrRecord[]; users: number }[] = [];
  for (const ino of layoutOrder(st)) {
    const target = st.targets.get(ino);
    if (target) {
      const extents = allocExtents(1);
      const blk = new Uint8Array(bs);
      blk.set(target);
      await writer.put((extents[0] as Extent4).physical, blk);
      await finishExtents(ino, extents);
      st.targets.delete(ino);
    }
    const xattrs = st.xattrs.get(ino);
    if (xattrs && 4 + xattrSpace(xattrs) > geo.inodeSize - 128 - INODE_EXTRA_ISIZE) {
      if (32 + xattrSpace(xattrs) > bs) {
        throw unsupported(
          `${st.pathOf(ino)}: xattrs take ${xattrSpace(xattrs)} bytes, more than one ${bs}-byte block`,
          { op: OP, data: { path: st.pathOf(ino) } },
        );
      }
      // identical xattr blocks are shared (h_refcount), as mke2fs and the kernel do
      const key = createHash("sha256").update(encodeXattrBlock(xattrs, bs)).digest("hex");
      let share = sharedXattrs.get(key);
      if (!share || share.users >= XATTR_REFCOUNT_MAX) {
        share = { block: allocOne(), records: xattrs, users: 0 };
        sharedXattrs.set(key, share);
        xattrBlocks.push(share);
      }
      share.users++;
      st.xattrBlock[ino] = share.block;
      st.blocks[ino] = (st.blocks[ino] as number) + 1;
      st.xattrs.delete(ino); // in the block now
    }
  }
  for (const x of xattrBlocks) {
    const data = encodeXattrBlock(x.records, bs);
    const dv = new DataView(data.buffer);
    dv.setUint32(4, x.users, true); // h_refcount
    dv.setUint32(0x10, xattrBlockChecksum(data, x.block, csumSeed), true);
    await writer.put(x.block, data);
  }
  sharedXattrs.clear();
  xattrBlocks.length = 0;
  await writer.flush();

  // file contents, in inode order; small files are read ahead (bounded) so opening and
  // reading the next files overlaps writing this one
  let done = 0;
  const zero = Buffer.alloc(bs);
  const carry = Buffer.alloc(bs);
  const readAhead = new ReadAhead(st);
  for (let fi = 0; fi < st.fileInos.length; fi++) {
    throwIfAborted(signal, OP);
    readAhead.fill(fi);
    const ino = st.fileInos[fi] as number;
    const size = st.size[ino] as number;
    const extents: Extent4[] = [];
    const stream = size > 0 ? await readAhead.take(fi) : undefined;
    if (stream) {
      let logical = 0;
      let read = 0;
      let carryLen = 0;
      const putBlock = async (blk: Uint8Array) => {
        if (zero.equals(blk)) {
          logical++;
          return;
        }
        const p = allocOne();
        const last = extents[extents.length - 1];
        if (
          last &&
          last.physical + last.len === p &&
          last.logical + last.len === logical &&
          last.len < MAX_EXTENT_LEN
        )
          last.len++;
        else extents.push({ logical, physical: p, len: 1 });
        logical++;
        await writer.put(p, blk);
      };
      for await (const chunk0 of stream) {
        const chunk =
          chunk0 instanceof Buffer
            ? chunk0
            : Buffer.from(chunk0.buffer, chunk0.byteOffset, chunk0.byteLength);
        read += chunk.length;
        if (read > size)
          throw new ImageModeError(
            "SIZE_MISMATCH",
            `${st.pathOf(ino)}: content is longer than its size ${size}`,
            { op: OP, data: { path: st.pathOf(ino) } },
          );
        let off = 0;
        if (carryLen > 0) {
          const take = Math.min(bs - carryLen, chunk.length);
          chunk.copy(carry, carryLen, 0, take);
          carryLen += take;
          off = take;
          if (carryLen === bs) {
            await putBlock(carry);
            carryLen = 0;
          }
        }
        while (chunk.length - off >= bs) {
          await putBlock(chunk.subarray(off, off + bs));
          off += bs;
        }
        if (off < chunk.length) {
          chunk.copy(carry, 0, off);
          carryLen = chunk.length - off;
        }
        done += chunk.length;
        onProgress?.({ type: "bytes", task: "disk.ext4", done, total: contentTotal });
        throwIfAborted(signal, OP);
      }
      if (read !== size)
        throw new ImageModeError(
          "SIZE_MISMATCH",
          `${st.pathOf(ino)}: content has ${read} bytes, its size says ${size}`,
          { op: OP, data: { path: st.pathOf(ino) } },
        );
      if (carryLen > 0) {
        carry.fill(0, carryLen);
        await putBlock(carry);
      }
    }
    await finishExtents(ino, extents);
  }
  await writer.flush();

  // inode tables, one group at a time
  const ipg = geo.inodesPerGroup;
  const isz = geo.inodeSize;
  const usedDirs = new Array<number>(geo.groupCount).fill(0);
  let files = 0;
  let directories = 0;
  let symlinks = 0;
  let specials = 0;
  for (let g = 0; g * ipg < maxIno; g++) {
    const first = g * ipg + 1;
    const last = Math.min(maxIno, (g + 1) * ipg);
    const table = new Uint8Array((last - first + 1) * isz);
    for (let ino = first; ino <= last; ino++) {
      const t = st.type[ino] as number;
      if (!t) continue;
      const raw = table.subarray((ino - first) * isz, (ino - first + 1) * isz);
      encodeStoredInode(st, ino, raw, bs, sde);
      setInodeChecksum(raw, ino, csumSeed);
      if (ino === JOURNAL_INO) continue;
      if (t === TYPE.dir) {
        directories++;
        usedDirs[g] = (usedDirs[g] as number) + 1;
      } else if (t === TYPE.file) files++;
      else if (t === TYPE.symlink) symlinks++;
      else specials++;
    }
    await sink.write(geo.groups[g]!.inodeTable * bs, table);
  }
  // bitmaps, descriptors, superblocks
  const gdt = new Uint8Array(geo.gdtBlocks * bs);
  let freeBlocks = 0;
  for (let g = 0; g < geo.groupCount; g++) {
    const grp = geo.groups[g]!;
    const bb = new Uint8Array(bs);
    for (let i = 0; i < geo.blocksPerGroup; i++) {
      if (i >= grp.blocks || bitmap.isUsed(grp.start + i))
        bb[i >>> 3] = (bb[i >>> 3] as number) | (1 << (i & 7));
    }
    const freeB = bitmap.freeIn(grp.start, grp.blocks);
    freeBlocks += freeB;
    const usedI = Math.max(0, Math.min(ipg, maxIno - g * ipg));
    const ib = new Uint8Array(bs);
    for (let i = 0; i < usedI; i++) ib[i >>> 3] = (ib[i >>> 3] as number) | (1 << (i & 7));
    for (let i = ipg; i < bs * 8; i++) ib[i >>> 3] = (ib[i >>> 3] as number) | (1 << (i & 7));
    await sink.write(grp.blockBitmap * bs, bb);
    await sink.write(grp.inodeBitmap * bs, ib);
    const desc = encodeGroupDescriptor(
      {
        blockBitmap: grp.blockBitmap,
        inodeBitmap: grp.inodeBitmap,
        inodeTable: grp.inodeTable,
        freeBlocks: freeB,
        freeInodes: ipg - usedI,
        usedDirs: usedDirs[g] as number,
        flags: (usedI === 0 ? BG_FLAGS.inodeUninit : 0) | BG_FLAGS.itableZeroed,
        blockBitmapCsum: bitmapChecksum(bb.subarray(0, geo.blocksPerGroup / 8), csumSeed),
        inodeBitmapCsum: bitmapChecksum(ib.subarray(0, ipg / 8), csumSeed),
        itableUnused: ipg - usedI,
      },
      g,
      geo.descSize,
      csumSeed,
    );
    gdt.set(desc, g * geo.descSize);
  }
  const freeInodes = geo.inodesCount - maxIno;
  const sbBase = {
    inodesCount: geo.inodesCount,
    blocksCountLo: geo.blocksCount >>> 0,
    blocksCountHi: Math.floor(geo.blocksCount / 2 ** 32),
    rBlocksCountLo: geo.reservedBlocks >>> 0,
    rBlocksCountHi: Math.floor(geo.reservedBlocks / 2 ** 32),
    freeBlocksCountLo: freeBlocks >>> 0,
    freeBlocksCountHi: Math.floor(freeBlocks / 2 ** 32),
    freeInodesCount: freeInodes,
    firstDataBlock: geo.firstDataBlock,
    logBlockSize: Math.log2(bs) - 10,
    logClusterSize: Math.log2(bs) - 10,
    blocksPerGroup: geo.blocksPerGroup,
    clustersPerGroup: geo.blocksPerGroup,
    inodesPerGroup: ipg,
    mtime: 0,
    wtime: sde >>> 0,
    mntCount: 0,
    maxMntCount: 0xffff,
    magic: EXT4_MAGIC,
    state: 1,
    errors: 1,
    minorRevLevel: 0,
    lastcheck: sde >>> 0,
    checkinterval: 0,
    creatorOs: 0,
    revLevel: 1,
    firstIno: 11,
    inodeSize: isz,
    featureCompat:
      FEATURE.compat.extAttr |
      FEATURE.compat.dirIndex |
      (journalBlocks > 0 ? FEATURE.compat.hasJournal : 0),
    ...(journalBlocks > 0
      ? { journalInum: JOURNAL_INO, jnlBackupType: 1, jnlBlocks: journalBackup(st) }
      : {}),
    featureIncompat:
      FEATURE.incompat.filetype |
      FEATURE.incompat.extents |
      FEATURE.incompat.bit64 |
      FEATURE.incompat.flexBg,
    featureRoCompat:
      FEATURE.roCompat.sparseSuper |
      FEATURE.roCompat.largeFile |
      FEATURE.roCompat.hugeFile |
      FEATURE.roCompat.dirNlink |
      FEATURE.roCompat.extraIsize |
      FEATURE.roCompat.metadataCsum,
    uuid,
    volumeName: new Uint8Array(labelBytes),
    hashSeed: hashSeedBytes,
    defHashVersion: hashVersion,
    descSize: geo.descSize,
    defaultMountOpts: 0x000c, // user_xattr, acl
    mkfsTime: sde >>> 0,
    minExtraIsize: INODE_EXTRA_ISIZE,
    wantExtraIsize: INODE_EXTRA_ISIZE,
    flags: 0x2, // unsigned directory hash
    logGroupsPerFlex: geo.logGroupsPerFlex,
    checksumType: 1,
  };
  for (let g = 0; g < geo.groupCount; g++) {
    const grp = geo.groups[g]!;
    if (!grp.hasSuper) continue;
    const sb = encodeSuperblock({ ...sbBase, blockGroupNr: g });
    await sink.write(g === 0 ? 1024 : grp.start * bs, sb);
    await sink.write((grp.start + 1) * bs, gdt);
  }
  onProgress?.({ type: "done", task: "disk.ext4", bytes: done });
  return {
    uuid: formatUuid(uuid),
    label,
    blockSize: bs,
    blocksCount: geo.blocksCount,
    sizeBytes: geo.blocksCount * bs,
    groupCount: geo.groupCount,
    inodesCount: geo.inodesCount,
    usedInodes: maxIno,
    freeBlocks,
    freeInodes,
    files,
    directories,
    symlinks,
    specials,
    contentBytes: done,
  };
}

/** `s_jnl_blocks`: the journal inode's `i_block`, then `i_size_high`, `i_size`. */
function journalBackup(st: InodeStore): Uint8Array {
  const b = new Uint8Array(68);
  b.set(st.iBlockOf(JOURNAL_INO), 0);
  const size = st.size[JOURNAL_INO] as number;
  const dv = new DataView(b.buffer);
  dv.setUint32(60, Math.floor(size / 2 ** 32), true);
  dv.setUint32(64, size >>> 0, true);
  return b;
}

function encodeStoredInode(
  st: InodeStore,
  ino: number,
  raw: Uint8Array,
  bs: number,
  sde: number,
): void {
  const type = st.typeOf(ino) as TreeEntryType;
  const size = st.size[ino] as number;
  let flags = 0;
  const iBlock = st.iBlockOf(ino);
  if (type === "file" || type === "dir" || (type === "symlink" && size >= 60)) {
    flags |= INODE_FLAGS.extents;
    if ((st.flags[ino] as number) & NODE_FLAG.indexed) flags |= INODE_FLAGS.index;
  } else if (type === "chardev" || type === "blockdev") {
    const { major, minor } = devParts(st.rdev[ino] as number);
    const dv = new DataView(iBlock.buffer, iBlock.byteOffset, 60);
    if (major < 256 && minor < 256) dv.setUint32(0, (major << 8) | minor, true);
    else dv.setUint32(4, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, true);
  }
  const sectors = (st.blocks[ino] as number) * (bs / 512);
  const m = encodeTime(st.mtime[ino] as number);
  const s = encodeTime(sde);
  let links = st.links[ino] as number;
  if (type === "dir") {
    links += 2;
    if (links >= 65000) links = 1;
  }
  const uid = st.uid[ino] as number;
  const gid = st.gid[ino] as number;
  const xattrBlock = st.xattrBlock[ino] as number;
  encodeInode(
    {
      mode: S_IF[type] | (st.mode[ino] as number),
      uidLo: uid & 0xffff,
      uidHigh: uid >>> 16,
      gidLo: gid & 0xffff,
      gidHigh: gid >>> 16,
      sizeLo: size >>> 0,
      sizeHigh: Math.floor(size / 2 ** 32),
      atime: m.lo,
      atimeExtra: m.extra,
      ctime: m.lo,
      ctimeExtra: m.extra,
      mtime: m.lo,
      mtimeExtra: m.extra,
      crtime: s.lo,
      crtimeExtra: s.extra,
      linksCount: links,
      blocksLo: sectors >>> 0,
      blocksHigh: Math.floor(sectors / 2 ** 32),
      flags,
      block: iBlock,
      generation: 0,
      fileAclLo: xattrBlock >>> 0,
      fileAclHigh: Math.floor(xattrBlock / 2 ** 32),
      extraIsize: INODE_EXTRA_ISIZE,
    },
    raw,
  );
  const xattrs = st.xattrs.get(ino);
  if (xattrs && !xattrBlock) encodeInodeXattrs(xattrs, raw.subarray(128 + INODE_EXTRA_ISIZE));
}
