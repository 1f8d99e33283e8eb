/**
 * Extent trees: up to four extents live in the inode's `i_block`; more become leaf blocks under
 * index entries (depth 1, 2, …), each block ending in a crc32c `ext4_extent_tail`.
 */
import { crc32cRaw } from "./crc32c.js";

/** One mapped run: `len` blocks at logical `logical` stored from physical block `physical`. */
export interface Extent4 {
  logical: number;
  physical: number;
  len: number;
}

/** The most blocks an initialized extent covers. */
export const MAX_EXTENT_LEN = 32768;
const MAGIC = 0xf30a;

/** The encoded tree: the 60-byte `i_block` and the tree blocks to write. */
export interface ExtentTree {
  iBlock: Uint8Array;
  blocks: { physical: number; data: Uint8Array }[];
}

function header(dv: DataView, at: number, entries: number, max: number, depth: number): void {
  dv.setUint16(at, MAGIC, true);
  dv.setUint16(at + 2, entries, true);
  dv.setUint16(at + 4, max, true);
  dv.setUint16(at + 6, depth, true);
  dv.setUint32(at + 8, 0, true);
}

function putLeaf(dv: DataView, at: number, e: Extent4): void {
  dv.setUint32(at, e.logical, true);
  dv.setUint16(at + 4, e.len, true);
  dv.setUint16(at + 6, Math.floor(e.physical / 0x100000000), true);
  dv.setUint32(at + 8, e.physical >>> 0, true);
}

function putIndex(dv: DataView, at: number, logical: number, child: number): void {
  dv.setUint32(at, logical, true);
  dv.setUint32(at + 4, child >>> 0, true);
  dv.setUint16(at + 8, Math.floor(child / 0x100000000), true);
  dv.setUint16(at + 10, 0, true);
}

/** How many tree blocks `extentCount` extents need (beyond the inode). */
export function extentTreeBlocks(extentCount: number, blockSize: number): number {
  const per = Math.floor((blockSize - 12) / 12);
  let n = extentCount;
  let total = 0;
  while (n > 4) {
    n = Math.ceil(n / per);
    total += n;
  }
  return total;
}

/**
 * Builds the tree for `extents` (sorted by logical block, each `len <= 32768`), taking tree
 * blocks from `alloc`. `inodeSeed` (the inode's checksum seed) enables the block tails.
 */
export function buildExtentTree(
  extents: readonly Extent4[],
  blockSize: number,
  alloc: () => number,
  inodeSeed: number | undefined,
): ExtentTree {
  const iBlock = new Uint8Array(60);
  const idv = new DataView(iBlock.buffer);
  if (extents.length <= 4) {
    header(idv, 0, extents.length, 4, 0);
    extents.forEach((e, i) => {
      putLeaf(idv, 12 + i * 12, e);
    });
    return { iBlock, blocks: [] };
  }
  const per = Math.floor((blockSize - 12) / 12);
  const blocks: { physical: number; data: Uint8Array }[] = [];
  // level: list of (first logical, physical block) of the nodes just built
  let level: { logical: number; physical: number }[] = [];
  for (let i = 0; i < extents.length; i += per) {
    const chunk = extents.slice(i, i + per);
    const data = new Uint8Array(blockSize);
    const dv = new DataView(data.buffer);
    header(dv, 0, chunk.length, per, 0);
    chunk.forEach((e, j) => {
      putLeaf(dv, 12 + j * 12, e);
    });
    const physical = alloc();
    blocks.push({ physical, data });
    level.push({ logical: (chunk[0] as Extent4).logical, physical });
  }
  let depth = 1;
  while (level.length > 4) {
    const next: { logical: number; physical: number }[] = [];
    for (let i = 0; i < level.length; i += per) {
      const chunk = level.slice(i, i + per);
      const data = new Uint8Array(blockSize);
      const dv = new DataView(data.buffer);
      header(dv, 0, chunk.length, per, depth);
      chunk.forEach((c, j) => {
        putIndex(dv, 12 + j * 12, c.logical, c.physical);
      });
      const physical = alloc();
      blocks.push({ physical, data });
      next.push({ logical: (chunk[0] as { logical: number }).logical, physical });
    }
    level = next;
    depth++;
  }
  header(idv, 0, level.length, 4, depth);
  level.forEach((c, j) => {
    putIndex(idv, 12 + j * 12, c.logical, c.physical);
  });
  if (inodeSeed !== undefined) {
    for (const b of blocks) {
      const tail = 12 + per * 12;
      new DataView(b.data.buffer).setUint32(
        tail,
        crc32cRaw(inodeSeed, b.data.subarray(0, tail)),
        true,
      );
    }
  }
  return { iBlock, blocks };
}
