/**
 * For builds of several output types: writes the planned disk into one sparse raw staging file
 * (diskimage's `writeDisk`, used for a single type, converts to one format per call), plus the
 * bootloader's raw writes (GRUB's boot.img in the MBR, core.img in the BIOS boot partition). The
 * sink's record of written extents then lets every output format be converted without reading
 * the holes.
 */

import type { RawWrite } from "@imagemode/bootloader";
import { type FileTree, type OpOptions, throwIfAborted } from "@imagemode/core";
import {
  type DiskLayout,
  FileBlockSink,
  offsetSink,
  type RawSource,
  writeExt4,
  writePartitionTable,
  writeVfat,
  writeXfs,
} from "@imagemode/diskimage";

/** What goes where: a filesystem tree per partition name. */
export type PartitionTrees = Record<string, { fs: "vfat" | "ext4" | "xfs"; tree: FileTree }>;

/** Writes the staging raw disk; returns it as a conversion source. */
export async function writeStagingDisk(
  layout: DiskLayout,
  trees: PartitionTrees,
  rawWrites: readonly RawWrite[],
  path: string,
  options: OpOptions & { tmpDir: string },
): Promise<RawSource> {
  const op = "build.write";
  const { signal, onProgress } = options;
  const sink = await FileBlockSink.create(path, layout.size);
  try {
    await writePartitionTable(layout, sink);
    const names = Object.keys(trees);
    let step = 0;
    for (const p of layout.partitions) {
      const c = trees[p.name];
      if (!c) continue;
      throwIfAborted(signal, op);
      step++;
      onProgress?.({
        type: "step",
        task: op,
        step,
        steps: names.length,
        description: `${p.name}: ${c.fs}`,
      });
      const part = offsetSink(sink, p.offset, p.size);
      const fo = { ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}) };
      const label = p.fsLabel ? { label: p.fsLabel } : {};
      if (c.fs === "vfat")
        await writeVfat(c.tree, part, {
          size: p.size,
          volumeId: p.fatVolumeId,
          bytesPerSector: layout.sectorSize,
          hiddenSectors: p.startLba,
          ...label,
          ...fo,
        });
      else if (c.fs === "ext4")
        await writeExt4(c.tree, part, { sizeBytes: p.size, uuid: p.fsUuid, ...label, ...fo });
      else
        await writeXfs(c.tree, part, {
          size: p.size,
          uuid: p.fsUuid,
          tmpDir: options.tmpDir,
          ...label,
          ...fo,
        });
    }
    for (const w of rawWrites) {
      if (w.content.length > w.limit)
        throw new RangeError(
          `${w.description}: ${w.content.length} bytes over its limit ${w.limit}`,
        );
      await sink.write(w.offset, w.content);
    }
    await sink.sync();
  } finally {
    await sink.close();
  }
  return { path, size: layout.size, extents: sink.written.extents() };
}
