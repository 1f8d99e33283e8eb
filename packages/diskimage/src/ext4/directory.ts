/**
 * Directory blocks: linear blocks of `ext4_dir_entry_2` records and hashed (`dir_index`) htrees
 * of a root block, optional interior index blocks and leaf blocks. With metadata_csum every leaf
 * ends in a 12-byte checksum tail and every index block in a `dx_tail`.
 */
import { crc32cRaw } from "./crc32c.js";
import { dirHash } from "./dirhash.js";

/** `file_type` codes of directory entries. */
export const FT = {
  unknown: 0,
  file: 1,
  dir: 2,
  chardev: 3,
  blockdev: 4,
  fifo: 5,
  socket: 6,
  symlink: 7,
} as const;

/** One name in a directory. */
export interface DirEntry {
  name: Uint8Array;
  ino: number;
  fileType: number;
}

/** What a directory needs to know to lay out its blocks. */
export interface DirLayoutOptions {
  blockSize: number;
  /** Add the checksum tails (metadata_csum)? */
  csum: boolean;
  /** This directory's inode number and its parent's (the root is its own parent). */
  ino: number;
  parentIno: number;
  /** Hash version for an htree (the superblock's default, without the unsigned offset). */
  hashVersion: number;
  /** Whether names hash as unsigned chars (superblock flag). */
  unsignedHash: boolean;
  hashSeed: Uint32Array;
  /** Lay out at least this many blocks (lost+found is pre-grown). */
  minBlocks?: number;
}

/** A laid-out directory: its logical blocks (checksums not yet applied) and whether it is indexed. */
export interface DirLayout {
  blocks: Uint8Array[];
  indexed: boolean;
}

/** Bytes a directory entry with a `nameLen`-byte name takes (8-byte header, 4-byte aligned). */
export function direntSize(nameLen: number): number {
  return (8 + nameLen + 3) & ~3;
}

const TAIL = 12;

function putDirent(
  block: Uint8Array,
  off: number,
  ino: number,
  recLen: number,
  name: Uint8Array,
  fileType: number,
): void {
  const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
  dv.setUint32(off, ino, true);
  dv.setUint16(off + 4, recLen, true);
  dv.setUint8(off + 6, name.length);
  dv.setUint8(off + 7, fileType);
  block.set(name, off + 8);
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/** Packs entries into leaf blocks (each leaf's last entry stretches to the tail). */
function packLeaves(
  entries: readonly DirEntry[],
  bs: number,
  csum: boolean,
  first: DirEntry[] = [],
): Uint8Array[] {
  const usable = bs - (csum ? TAIL : 0);
  const blocks: Uint8Array[] = [];
  let block = new Uint8Array(bs);
  let off = 0;
  let lastOff = -1;
  let last: DirEntry | undefined;
  const finish = () => {
    if (last) putDirent(block, lastOff, last.ino, usable - lastOff, last.name, last.fileType);
    else putDirent(block, 0, 0, usable, new Uint8Array(0), 0);
    blocks.push(block);
  };
  for (const e of [...first, ...entries]) {
    const size = direntSize(e.name.length);
    if (off + size > usable) {
      finish();
      block = new Uint8Array(bs);
      off = 0;
      last = undefined;
    }
    if (last) putDirent(block, lastOff, last.ino, off - lastOff, last.name, last.fileType);
    lastOff = off;
    last = e;
    off += size;
  }
  finish();
  return blocks;
}

/** An empty leaf block (one unused entry spanning it). */
export function emptyDirBlock(bs: number, csum: boolean): Uint8Array {
  const b = new Uint8Array(bs);
  putDirent(b, 0, 0, bs - (csum ? TAIL : 0), new Uint8Array(0), 0);
  return b;
}

/** Lays out a directory: linear when it fits in one block, else an htree. */
export function layoutDirectory(entries: readonly DirEntry[], o: DirLayoutOptions): DirLayout {
  const bs = o.blockSize;
  const dots: DirEntry[] = [
    { name: DOT, ino: o.ino, fileType: FT.dir },
    { name: DOTDOT, ino: o.parentIno, fileType: FT.dir },
  ];
  let bytes = 24;
  for (const e of entries) bytes += direntSize(e.name.length);
  if (bytes <= bs - (o.csum ? TAIL : 0)) {
    const blocks = packLeaves(entries, bs, o.csum, dots);
    while (blocks.length < (o.minBlocks ?? 1)) blocks.push(emptyDirBlock(bs, o.csum));
    return { blocks, indexed: false };
  }
  return { blocks: layoutHtree(entries, o), indexed: true };
}

interface Hashed {
  e: DirEntry;
  hash: number;
  minor: number;
}

function layoutHtree(entries: readonly DirEntry[], o: DirLayoutOptions): Uint8Array[] {
  const bs = o.blockSize;
  const version = o.hashVersion + (o.unsignedHash && o.hashVersion <= 2 ? 3 : 0);
  const hashed: Hashed[] = entries.map((e) => ({ e, ...dirHash(e.name, version, o.hashSeed) }));
  hashed.sort((a, b) => a.hash - b.hash || a.minor - b.minor || Buffer.compare(a.e.name, b.e.name));
  // leaves: fill each up to its usable size
  const usable = bs - (o.csum ? TAIL : 0);
  const leaves: { items: Hashed[]; lowHash: number }[] = [];
  let cur: Hashed[] = [];
  let used = 0;
  for (const h of hashed) {
    const size = direntSize(h.e.name.length);
    if (used + size > usable) {
      leaves.push({ items: cur, lowHash: 0 });
      cur = [];
      used = 0;
    }
    cur.push(h);
    used += size;
  }
  leaves.push({ items: cur, lowHash: 0 });
  for (let i = 1; i < leaves.length; i++) {
    const leaf = leaves[i] as { items: Hashed[]; lowHash: number };
    const prev = leaves[i - 1] as { items: Hashed[] };
    const first = (leaf.items[0] as Hashed).hash;
    const prevLast = (prev.items[prev.items.length - 1] as Hashed).hash;
    // a hash run split across two leaves is marked by the low "collision" bit
    leaf.lowHash = first === prevLast ? (first | 1) >>> 0 : first;
  }
  const csumSlots = o.csum ? 1 : 0;
  const rootLimit = (bs - 32) / 8 - csumSlots;
  const nodeLimit = (bs - 8) / 8 - csumSlots;
  let levels: number;
  let nodes: { lowHash: number; leaves: number[] }[] = [];
  if (leaves.length <= rootLimit) levels = 0;
  else if (leaves.length <= rootLimit * nodeLimit) {
    levels = 1;
    for (let i = 0; i < leaves.length; i += nodeLimit) {
      const idx: number[] = [];
      for (let j = i; j < Math.min(i + nodeLimit, leaves.length); j++) idx.push(j);
      nodes.push({ lowHash: (leaves[i] as { lowHash: number }).lowHash, leaves: idx });
    }
  } else
    throw new RangeError(
      `directory with ${entries.length} entries needs a three-level htree (largedir), not supported`,
    );
  // logical blocks: 0 root, 1..nodes, then leaves
  const leafBase = 1 + nodes.length;
  const root = new Uint8Array(bs);
  putDirent(root, 0, o.ino, 12, DOT, FT.dir);
  putDirent(root, 12, o.parentIno, bs - 12, DOTDOT, FT.dir);
  const rdv = new DataView(root.buffer);
  rdv.setUint32(24, 0, true);
  rdv.setUint8(28, o.hashVersion);
  rdv.setUint8(29, 8);
  rdv.setUint8(30, levels);
  rdv.setUint8(31, 0);
  const writeIndex = (
    blk: Uint8Array,
    at: number,
    limit: number,
    items: { hash: number; block: number }[],
  ) => {
    const dv = new DataView(blk.buffer);
    dv.setUint16(at, limit, true);
    dv.setUint16(at + 2, items.length, true);
    items.forEach((it, i) => {
      if (i > 0) dv.setUint32(at + i * 8, it.hash, true);
      dv.setUint32(at + i * 8 + 4, it.block, true);
    });
  };
  const blocks: Uint8Array[] = [root];
  if (levels === 0) {
    writeIndex(
      root,
      32,
      rootLimit,
      leaves.map((l, i) => ({ hash: l.lowHash, block: leafBase + i })),
    );
  } else {
    writeIndex(
      root,
      32,
      rootLimit,
      nodes.map((n, i) => ({ hash: n.lowHash, block: 1 + i })),
    );
    for (const n of nodes) {
      const nb = new Uint8Array(bs);
      const dv = new DataView(nb.buffer);
      dv.setUint32(0, 0, true);
      dv.setUint16(4, bs === 65536 ? 0 : bs, true);
      writeIndex(
        nb,
        8,
        nodeLimit,
        n.leaves.map((li) => ({
          hash: (leaves[li] as { lowHash: number }).lowHash,
          block: leafBase + li,
        })),
      );
      blocks.push(nb);
    }
  }
  nodes = [];
  for (const l of leaves) {
    const packed = packLeaves(
      l.items.map((h) => h.e),
      bs,
      o.csum,
    );
    if (packed.length !== 1) throw new Error("internal: htree leaf overflow");
    blocks.push(packed[0] as Uint8Array);
  }
  return blocks;
}

/**
 * Applies the metadata_csum checksums to a directory's logical block `index`: a leaf gets its
 * 12-byte tail, an htree root/node its `dx_tail`. `inodeSeed` is the directory inode's seed.
 */
export function checksumDirBlock(
  block: Uint8Array,
  index: number,
  indexed: boolean,
  levels: number,
  nodeCount: number,
  inodeSeed: number,
): void {
  const bs = block.length;
  const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const isDx = indexed && (index === 0 || (levels > 0 && index <= nodeCount));
  if (isDx) {
    const countOff = index === 0 ? 32 : 8;
    const limit = dv.getUint16(countOff, true);
    const count = dv.getUint16(countOff + 2, true);
    const tailOff = countOff + limit * 8;
    let c = crc32cRaw(inodeSeed, block.subarray(0, countOff + count * 8));
    c = crc32cRaw(c, block.subarray(tailOff, tailOff + 4));
    c = crc32cRaw(c, new Uint8Array(4));
    dv.setUint32(tailOff, 0, true);
    dv.setUint32(tailOff + 4, c, true);
    return;
  }
  const t = bs - TAIL;
  dv.setUint32(t, 0, true);
  dv.setUint16(t + 4, TAIL, true);
  dv.setUint8(t + 6, 0);
  dv.setUint8(t + 7, 0xde);
  dv.setUint32(t + 8, crc32cRaw(inodeSeed, block.subarray(0, t)), true);
}

/** For an htree laid out by {@link layoutDirectory}: its indirect levels and interior node count. */
export function htreeShape(blocks: readonly Uint8Array[]): { levels: number; nodes: number } {
  const root = blocks[0] as Uint8Array;
  const levels = root[30] as number;
  if (levels === 0) return { levels, nodes: 0 };
  const count = new DataView(root.buffer, root.byteOffset).getUint16(34, true);
  return { levels, nodes: count };
}
