/**
 * Filesystem geometry: block groups, inodes per group, where every group's superblock backup,
 * descriptor table, bitmaps and inode table go (flex_bg packs a flex group's bitmaps and tables
 * together at its start). Pure: a plan, no I/O.
 */
import { invalidArgument } from "@imagemode/core";

/** Inputs to {@link planExt4}. */
export interface Ext4GeometryOptions {
  /** Bytes of the volume. The filesystem uses whole blocks and may drop a too-small last group. */
  sizeBytes: number;
  /** 1024, 2048 or 4096 (default 4096). */
  blockSize?: number;
  /** Bytes of volume per inode (default 16384, as mke2fs's default profile). */
  inodeRatio?: number;
  /** At least this many inodes in total (the writer asks for what the tree needs). */
  minInodes?: number;
  /** Percent of blocks reserved for root (default 5). */
  reservedPercent?: number;
  /** log2 of groups per flex group (default 4: 16 groups). */
  logGroupsPerFlex?: number;
}

/** Where one group's metadata lives. */
export interface GroupLayout {
  /** First block of the group. */
  start: number;
  /** Blocks in the group (the last may be shorter). */
  blocks: number;
  /** Has a superblock + descriptor backup (sparse_super: groups 0, 1 and powers of 3, 5, 7). */
  hasSuper: boolean;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
}

/** The geometry of an ext4 filesystem (see {@link planExt4}). */
export interface Ext4Geometry {
  blockSize: number;
  blocksCount: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  groupCount: number;
  inodesPerGroup: number;
  inodesCount: number;
  inodeSize: number;
  descSize: number;
  /** Blocks of the group descriptor table. */
  gdtBlocks: number;
  inodeTableBlocks: number;
  logGroupsPerFlex: number;
  reservedBlocks: number;
  groups: GroupLayout[];
  /** Blocks used by fixed metadata (superblocks, descriptor tables, bitmaps, inode tables). */
  overheadBlocks: number;
}

/** True when group `g` holds a superblock backup under sparse_super. */
export function groupHasSuper(g: number): boolean {
  if (g <= 1) return true;
  for (const p of [3, 5, 7]) {
    let n = p;
    while (n < g) n *= p;
    if (n === g) return true;
  }
  return false;
}

/** A bitmap over all blocks of the volume with a simple first-fit allocator. */
export class BlockBitmap {
  readonly bits: Uint8Array;
  readonly count: number;
  constructor(count: number) {
    this.count = count;
    this.bits = new Uint8Array(Math.ceil(count / 8));
  }
  isUsed(b: number): boolean {
    return ((this.bits[b >>> 3] as number) & (1 << (b & 7))) !== 0;
  }
  mark(start: number, len = 1): void {
    for (let b = start; b < start + len; b++)
      this.bits[b >>> 3] = (this.bits[b >>> 3] as number) | (1 << (b & 7));
  }
  /** First free block at or after `from`, or -1. */
  nextFree(from: number): number {
    let b = from;
    while (b < this.count) {
      if ((b & 7) === 0 && this.bits[b >>> 3] === 0xff) {
        b += 8;
        continue;
      }
      if (!this.isUsed(b)) return b;
      b++;
    }
    return -1;
  }
  /** First run of `len` free blocks at or after `from` (wrapping to `min` once), or -1. */
  findRun(len: number, from: number, min: number): number {
    for (const start of [from, min]) {
      let b = this.nextFree(start);
      while (b >= 0 && b + len <= this.count) {
        let ok = true;
        for (let i = 1; i < len; i++) {
          if (this.isUsed(b + i)) {
            ok = false;
            b = this.nextFree(b + i);
            break;
          }
        }
        if (ok) return b;
      }
    }
    return -1;
  }
  /** Free blocks in `[start, start + len)`. */
  freeIn(start: number, len: number): number {
    let n = 0;
    for (let b = start; b < start + len; b++) if (!this.isUsed(b)) n++;
    return n;
  }
}

/** Smallest volume we format. */
export const MIN_EXT4_BYTES = 2 * 1024 * 1024;

/**
 * Plans the geometry of an ext4 volume and returns it with the bitmap of the blocks its fixed
 * metadata takes. Throws `INVALID_ARGUMENT` for sizes or options out of range.
 */
export function planExt4(options: Ext4GeometryOptions): Ext4Geometry {
  return planWithBitmap(options).geometry;
}

/** {@link planExt4} plus the block bitmap with all fixed metadata marked (for the writer). */
export function planWithBitmap(options: Ext4GeometryOptions): {
  geometry: Ext4Geometry;
  bitmap: BlockBitmap;
} {
  const op = "diskimage.ext4.plan";
  const bs = options.blockSize ?? 4096;
  if (bs !== 1024 && bs !== 2048 && bs !== 4096)
    throw invalidArgument(`ext4 block size must be 1024, 2048 or 4096, not ${bs}`, { op });
  if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < MIN_EXT4_BYTES) {
    throw invalidArgument(
      `ext4 volume of ${options.sizeBytes} bytes is too small (minimum ${MIN_EXT4_BYTES})`,
      { op, data: { sizeBytes: options.sizeBytes } },
    );
  }
  const inodeRatio = options.inodeRatio ?? 16384;
  if (!Number.isInteger(inodeRatio) || inodeRatio < bs || inodeRatio > 64 * 1024 * 1024) {
    throw invalidArgument(`inode ratio ${inodeRatio} out of range (${bs}..67108864)`, { op });
  }
  const reservedPercent = options.reservedPercent ?? 5;
  if (!(reservedPercent >= 0 && reservedPercent <= 50))
    throw invalidArgument(`reserved percent ${reservedPercent} out of range 0..50`, { op });
  const logFlex = options.logGroupsPerFlex ?? 4;
  const inodeSize = 256;
  const descSize = 64;
  const firstDataBlock = bs === 1024 ? 1 : 0;
  const bpg = 8 * bs;
  let blocksCount = Math.floor(options.sizeBytes / bs);
  if (blocksCount >= 2 ** 48) throw invalidArgument("volume too large", { op });
  let groupCount = Math.ceil((blocksCount - firstDataBlock) / bpg);
  const gdtBlocksFor = (gc: number) => Math.ceil((gc * descSize) / bs);
  const rem = (blocksCount - firstDataBlock) % bpg;
  if (groupCount > 1 && rem !== 0) {
    const g = groupCount - 1;
    const overhead = (groupHasSuper(g) ? 1 + gdtBlocksFor(groupCount) : 0) + 50;
    if (rem < overhead) {
      blocksCount -= rem;
      groupCount--;
    }
  }
  const inodesPerBlock = bs / inodeSize;
  const wantTotal = Math.max(
    Math.ceil((blocksCount * bs) / inodeRatio),
    options.minInodes ?? 0,
    16,
  );
  const unit = Math.max(8, inodesPerBlock);
  const ipg = Math.ceil(Math.ceil(wantTotal / groupCount) / unit) * unit;
  if (ipg > bs * 8) {
    throw invalidArgument(`volume too small for ${wantTotal} inodes`, {
      op,
      data: { inodes: wantTotal, sizeBytes: options.sizeBytes },
    });
  }
  const itb = (ipg * inodeSize) / bs;
  const gdtBlocks = gdtBlocksFor(groupCount);
  const bitmap = new BlockBitmap(blocksCount);
  if (firstDataBlock > 0) bitmap.mark(0, firstDataBlock);
  const groups: GroupLayout[] = [];
  for (let g = 0; g < groupCount; g++) {
    const start = firstDataBlock + g * bpg;
    const blocks = Math.min(bpg, blocksCount - start);
    const hasSuper = groupHasSuper(g);
    if (hasSuper) bitmap.mark(start, Math.min(blocks, 1 + gdtBlocks));
    groups.push({ start, blocks, hasSuper, blockBitmap: 0, inodeBitmap: 0, inodeTable: 0 });
  }
  const perFlex = 2 ** logFlex;
  const fail = () =>
    invalidArgument(`ext4 volume of ${options.sizeBytes} bytes is too small for its metadata`, {
      op,
      data: { sizeBytes: options.sizeBytes },
    });
  for (let f = 0; f < groupCount; f += perFlex) {
    const members = groups.slice(f, f + perFlex);
    const hint = (members[0] as GroupLayout).start;
    for (const key of ["blockBitmap", "inodeBitmap"] as const) {
      let at = bitmap.findRun(members.length, hint, firstDataBlock);
      if (at < 0) {
        // no contiguous run: one at a time
        for (const m of members) {
          const b = bitmap.findRun(1, hint, firstDataBlock);
          if (b < 0) throw fail();
          m[key] = b;
          bitmap.mark(b);
        }
        continue;
      }
      for (const m of members) {
        m[key] = at;
        bitmap.mark(at);
        at++;
      }
    }
    for (const m of members) {
      const b = bitmap.findRun(itb, hint, firstDataBlock);
      if (b < 0) throw fail();
      m.inodeTable = b;
      bitmap.mark(b, itb);
    }
  }
  let overhead = 0;
  for (let i = 0; i < bitmap.bits.length; i++) {
    let v = bitmap.bits[i] as number;
    while (v) {
      overhead += v & 1;
      v >>>= 1;
    }
  }
  const geometry: Ext4Geometry = {
    blockSize: bs,
    blocksCount,
    firstDataBlock,
    blocksPerGroup: bpg,
    groupCount,
    inodesPerGroup: ipg,
    inodesCount: ipg * groupCount,
    inodeSize,
    descSize,
    gdtBlocks,
    inodeTableBlocks: itb,
    logGroupsPerFlex: logFlex,
    reservedBlocks: Math.floor((blocksCount * reservedPercent) / 100),
    groups,
    overheadBlocks: overhead,
  };
  return { geometry, bitmap };
}
