/**
 * Sizing: what a tree needs from an ext4 volume, and the smallest volume that holds it (the
 * layout planner adds the room for a later update on top).
 */

import { type FileTree, invalidArgument, type OpOptions, throwIfAborted } from "@imagemode/core";
import { direntSize } from "./directory.js";
import { planExt4 } from "./geometry.js";
import { defaultJournalBlocks } from "./journal.js";

/** What a tree needs, in the units the ext4 writer allocates. */
export interface Ext4TreeSummary {
  /** Inodes the tree takes (hard links counted once), excluding root and lost+found. */
  inodes: number;
  /** Blocks of file contents if nothing were a hole, plus slow symlinks and xattr blocks (upper bound). */
  dataBlocks: number;
  /** Directory blocks (upper bound: linear packing plus one htree index block per directory). */
  dirBlocks: number;
  /** Bytes of file contents. */
  contentBytes: number;
  blockSize: number;
}

/** Walks a tree's metadata (contents are not opened) and sums what it needs on ext4. */
export async function summarizeExt4Tree(
  tree: FileTree,
  options: OpOptions & { blockSize?: number } = {},
): Promise<Ext4TreeSummary> {
  const bs = options.blockSize ?? 4096;
  const seen = new Set<string>();
  const dirBytes = new Map<string, number>([["", 24]]);
  let inodes = 0;
  let dataBlocks = 0;
  let contentBytes = 0;
  let n = 0;
  for await (const e of tree) {
    if ((++n & 1023) === 0) throwIfAborted(options.signal, "diskimage.ext4.summary");
    if (e.path === ".") continue;
    const slash = e.path.lastIndexOf("/");
    const parent = slash < 0 ? "" : e.path.slice(0, slash);
    const name = Buffer.byteLength(slash < 0 ? e.path : e.path.slice(slash + 1));
    dirBytes.set(parent, (dirBytes.get(parent) ?? 24) + direntSize(name));
    if (e.type === "dir") dirBytes.set(e.path, dirBytes.get(e.path) ?? 24);
    if (e.inode !== undefined) {
      if (seen.has(e.inode)) continue;
      seen.add(e.inode);
    }
    inodes++;
    if (e.type === "file") {
      const size = e.size ?? 0;
      contentBytes += size;
      const blocks = Math.ceil(size / bs);
      // extent-tree blocks: at worst one extent per 2 blocks (holes between)
      dataBlocks += blocks + (blocks > 8 ? Math.ceil(blocks / 2 / 340) : 0);
    } else if (e.type === "symlink" && Buffer.byteLength(e.linkTarget ?? "") >= 60) dataBlocks++;
    if (e.xattrs && e.xattrs.size > 0) {
      let x = 0;
      for (const [k, v] of e.xattrs) x += 16 + Buffer.byteLength(k) + v.length + 8;
      if (x > 90) dataBlocks++;
    }
  }
  let dirBlocks = Math.ceil(16384 / bs); // lost+found
  for (const bytes of dirBytes.values()) {
    const leaves = Math.ceil(bytes / (bs - 12));
    dirBlocks += leaves === 1 ? 1 : Math.ceil(leaves * 1.05) + 2;
  }
  return { inodes, dataBlocks, dirBlocks, contentBytes, blockSize: bs };
}

/**
 * The smallest volume size (a multiple of 1 MiB) whose ext4 geometry holds `summary` with
 * `reservedPercent` of it still free for root, as the writer would lay it out (with its default
 * journal unless `journal: false`).
 */
export function minimumExt4Size(
  summary: Ext4TreeSummary,
  options: { inodeRatio?: number; reservedPercent?: number; journal?: boolean } = {},
): number {
  const bs = summary.blockSize;
  const MiB = 1024 * 1024;
  const fits = (size: number): boolean => {
    let g: ReturnType<typeof planExt4>;
    try {
      g = planExt4({
        sizeBytes: size,
        blockSize: bs,
        inodeRatio: options.inodeRatio,
        minInodes: summary.inodes + 11,
      });
    } catch {
      return false;
    }
    const journal = options.journal === false ? 0 : defaultJournalBlocks(g.blocksCount);
    const free =
      g.blocksCount - g.overheadBlocks - journal - summary.dataBlocks - summary.dirBlocks;
    return free >= Math.ceil((g.blocksCount * (options.reservedPercent ?? 5)) / 100);
  };
  let hi = 8 * MiB;
  while (!fits(hi)) {
    hi *= 2;
    if (hi > 2 ** 52)
      throw invalidArgument("tree too large for ext4", { op: "diskimage.ext4.size" });
  }
  let lo = Math.max(2 * MiB, hi / 2);
  if (fits(lo)) return lo;
  while (hi - lo > MiB) {
    const mid = Math.floor((lo + hi) / 2 / MiB) * MiB;
    if (mid <= lo) break;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}
