import * as fsp from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  type ByteStream,
  type FileTree,
  invalidArgument,
  type OpOptions,
  type ProgressListener,
  throwIfAborted,
  toImageModeError,
  treeFromEntries,
} from "@imagemode/core";
import { type BlockSink, type Extent, FileBlockSink, offsetSink } from "./block-sink.js";
import { writeExt4 } from "./ext4/writer.js";
import type { DiskLayout, PlannedPartition } from "./layout.js";
import { writeQcow2 } from "./outputs/qcow2.js";
import { Qcow2BlockSink } from "./outputs/qcow2-sink.js";
import type { RawSource } from "./outputs/source.js";
import { writeVhd } from "./outputs/vhd.js";
import { writeVmdk } from "./outputs/vmdk.js";
import { writePartitionTable } from "./partition-table.js";
import { planRawWrites, type RawDiskWrite, writeRawWrites } from "./raw-writes.js";
import { writeSwap } from "./swap.js";
import { writeVfat } from "./vfat/write.js";
import { copyFileIntoSink, type ExecFn, writeXfs } from "./xfs.js";

/** Output formats of {@link writeDisk}. */
export type DiskFormat = "raw" | "qcow2" | "vmdk" | "vhd";

/** What goes into one partition. */
export interface PartitionContent {
  /** `vfat`/`ext4`/`xfs` build a filesystem from `tree`; `swap` writes a swap signature; `raw` copies `bytes` or `file` as they are. */
  fs: "vfat" | "ext4" | "xfs" | "swap" | "raw";
  tree?: FileTree;
  /** Raw content: bytes or a byte stream, written from the partition's first byte. */
  bytes?: Uint8Array | ByteStream;
  /** Raw content: a file (e.g. a filesystem image made by `mkfs`), copied from the partition's first byte. */
  file?: string;
  /** ext4: an empty jbd2 journal of mke2fs's default size (default true; false for none). */
  journal?: boolean;
}

/** A filesystem writer for one partition (the ext4 writer has this shape). */
export type FilesystemWriter = (
  tree: FileTree,
  sink: BlockSink,
  options: {
    size: number;
    label?: string;
    uuid: string;
    /** ext4: add a journal (the writer's default when absent). */
    journal?: boolean;
    signal?: AbortSignal;
    onProgress?: ProgressListener;
  },
) => Promise<unknown>;

/** Options of {@link writeDisk}. */
export interface WriteDiskOptions extends OpOptions {
  /** The image file to create (replaced atomically at the end). */
  output: string;
  format?: DiskFormat;
  /** qcow2: compress clusters with zlib. */
  compress?: boolean;
  /** The ext4 writer (default: this package's own). */
  ext4?: FilesystemWriter;
  /** How host tools (mkfs.xfs) are run. */
  exec?: ExecFn;
  /** Where staging files go (default: next to `output`). */
  tmpDir?: string;
  /**
   * Give partitions that the layout plans as `vfat`/`ext4`/`xfs`/`swap` but `contents` does not
   * mention an empty filesystem (like `mkfs`). Default true; false leaves them zero.
   */
  formatEmpty?: boolean;
  /**
   * Bytes placed at absolute disk offsets besides the partitions' contents — e.g. GRUB's boot.img
   * in the MBR boot code area (`offset: 0`, at most 440 bytes) and core.img in the BIOS boot
   * partition. Each must lie within the disk, overlap neither the partition table (protective MBR
   * entries and signature, GPT headers and entry arrays) nor another raw write nor a partition
   * that gets content from `contents` (or is formatted empty). Checked before anything is written
   * (streams: while they are written).
   */
  rawWrites?: readonly RawDiskWrite[];
}

/** What {@link writeDisk} made. */
export interface WriteDiskResult {
  output: string;
  format: DiskFormat;
  /** Virtual size of the disk. */
  size: number;
  /** Bytes of the disk that hold data (everything else is a hole / left out). */
  dataBytes: number;
  /** Size of the output file. */
  fileSize: number;
  /**
   * The disk's byte ranges that hold data (sorted, merged); everything else reads as zeros. With
   * a raw output, a later conversion (`writeQcow2`, `writeVmdk`, `writeVhd`) can take them as its
   * `RawSource.extents` and skip the holes without reading them.
   */
  extents: Extent[];
  partitions: { name: string; fs: string; offset: number; size: number }[];
}

const op = "diskimage.writeDisk";

/** This package's ext4 writer in the {@link FilesystemWriter} shape. */
const ownExt4: FilesystemWriter = (tree, sink, o) =>
  writeExt4(tree, sink, {
    sizeBytes: o.size,
    uuid: o.uuid,
    ...(o.label ? { label: o.label } : {}),
    ...(o.journal !== undefined ? { journal: o.journal } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });

async function writeRawContent(
  p: PlannedPartition,
  c: PartitionContent,
  sink: BlockSink,
  signal?: AbortSignal,
): Promise<void> {
  if (c.file) {
    await copyFileIntoSink(c.file, sink, p.size, signal);
    return;
  }
  if (!c.bytes)
    throw invalidArgument(`partition ${p.name}: fs raw needs bytes or file`, {
      op,
      data: { partition: p.name },
    });
  if (c.bytes instanceof Uint8Array) {
    if (c.bytes.length > p.size)
      throw invalidArgument(
        `partition ${p.name}: ${c.bytes.length} bytes do not fit in ${p.size}`,
        { op, data: { partition: p.name } },
      );
    for (let o = 0; o < c.bytes.length; o += 1 << 20)
      await sink.write(o, c.bytes.subarray(o, Math.min(c.bytes.length, o + (1 << 20))));
    return;
  }
  let pos = 0;
  for await (const chunk of c.bytes) {
    throwIfAborted(signal, op);
    if (pos + chunk.length > p.size)
      throw invalidArgument(
        `partition ${p.name}: content is larger than the ${p.size}-byte partition`,
        { op, data: { partition: p.name } },
      );
    await sink.write(pos, chunk);
    pos += chunk.length;
  }
}

/**
 * Writes a disk image from a planned layout (see `planLayout`/`defaultLayout`): the partition table,
 * then each partition's content through a window of the disk sink, and renames the result into
 * place. Raw: a sparse file (holes where nothing was written). Uncompressed qcow2: written
 * directly by a {@link Qcow2BlockSink} (host clusters allocated on first write, tables at the
 * end). Compressed qcow2, vmdk and vhd: a sparse raw staging file next to the output (or in
 * `tmpDir`), then converted reading only the written extents. Nothing outside `output` (and its staging files, removed on failure) is
 * written. Progress: `disk.write` (start/step per partition/done), the filesystem writers' own
 * tasks (`disk.vfat`, `disk.ext4`, `disk.xfs`) and the converter's (`disk.qcow2`, `disk.vmdk`, `disk.vhd`).
 */
export async function writeDisk(
  layout: DiskLayout,
  contents: Record<string, PartitionContent>,
  options: WriteDiskOptions,
): Promise<WriteDiskResult> {
  const { signal, onProgress } = options;
  const format = options.format ?? "raw";
  if (!["raw", "qcow2", "vmdk", "vhd"].includes(format))
    throw invalidArgument(`unknown disk format ${JSON.stringify(format)} (raw, qcow2, vmdk, vhd)`, {
      op,
    });
  const byName = new Map(layout.partitions.map((p) => [p.name, p]));
  for (const [name, c] of Object.entries(contents)) {
    const p = byName.get(name);
    if (!p)
      throw invalidArgument(
        `no partition named ${JSON.stringify(name)} in the layout (${[...byName.keys()].join(", ")})`,
        { op, data: { partition: name } },
      );
    if (c.fs !== "raw" && c.fs !== "swap" && !c.tree)
      throw invalidArgument(`partition ${name}: fs ${c.fs} needs a tree`, {
        op,
        data: { partition: name },
      });
    if (!["vfat", "ext4", "xfs", "swap", "raw"].includes(c.fs))
      throw invalidArgument(`partition ${name}: unknown fs ${JSON.stringify(c.fs)}`, {
        op,
        data: { partition: name },
      });
  }
  const outDir = dirname(options.output);
  const stagingDir = options.tmpDir ?? outDir;
  const tag = `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const staging = join(stagingDir, `.${basename(options.output)}.${tag}.raw`);
  const converted = join(outDir, `.${basename(options.output)}.${tag}.${format}`);
  const work = Object.entries(contents);
  if (options.formatEmpty ?? true) {
    for (const p of layout.partitions) {
      if (p.name in contents) continue;
      if (p.fs === "vfat" || p.fs === "ext4" || p.fs === "xfs")
        work.push([p.name, { fs: p.fs, tree: treeFromEntries([]) }]);
      else if (p.fs === "swap") work.push([p.name, { fs: "swap" }]);
    }
  }
  const rawPlan = planRawWrites(
    layout,
    options.rawWrites ?? [],
    work.map(([name]) => byName.get(name)!),
  );
  // uncompressed qcow2 is written directly (no staging file, no conversion pass); compressed
  // qcow2, vmdk and vhd are converted from a sparse raw staging file
  const direct = format === "qcow2" && !options.compress;
  let sink: FileBlockSink | Qcow2BlockSink | undefined;
  try {
    sink = direct
      ? await Qcow2BlockSink.create(converted, layout.size)
      : await FileBlockSink.create(staging, layout.size);
    onProgress?.({
      type: "start",
      task: "disk.write",
      total: work.length + 1 + (rawPlan.length > 0 ? 1 : 0),
      description: `${layout.table.toUpperCase()} ${layout.size} bytes → ${format}`,
    });
    await writePartitionTable(layout, sink);
    const steps = work.length + (rawPlan.length > 0 ? 1 : 0);
    let step = 0;
    for (const [name, c] of work) {
      throwIfAborted(signal, op);
      const p = byName.get(name)!;
      step++;
      onProgress?.({
        type: "step",
        task: "disk.write",
        step,
        steps,
        description: `${name}: ${c.fs}`,
      });
      const part = offsetSink(sink, p.offset, p.size);
      const fo = { ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}) };
      if (c.fs === "vfat") {
        await writeVfat(c.tree!, part, {
          size: p.size,
          volumeId: p.fatVolumeId,
          bytesPerSector: layout.sectorSize,
          hiddenSectors: p.startLba,
          ...(p.fsLabel ? { label: p.fsLabel } : {}),
          ...fo,
        });
      } else if (c.fs === "ext4") {
        await (options.ext4 ?? ownExt4)(c.tree!, part, {
          size: p.size,
          uuid: p.fsUuid,
          ...(c.journal !== undefined ? { journal: c.journal } : {}),
          ...(p.fsLabel ? { label: p.fsLabel } : {}),
          ...fo,
        });
      } else if (c.fs === "xfs") {
        await writeXfs(c.tree!, part, {
          size: p.size,
          uuid: p.fsUuid,
          ...(p.fsLabel ? { label: p.fsLabel } : {}),
          ...(options.exec ? { exec: options.exec } : {}),
          ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
          ...fo,
        });
      } else if (c.fs === "swap") {
        await writeSwap(part, {
          size: p.size,
          uuid: p.fsUuid,
          ...(p.fsLabel ? { label: p.fsLabel } : {}),
        });
      } else {
        await writeRawContent(p, c, part, signal);
      }
    }
    if (rawPlan.length > 0) {
      onProgress?.({
        type: "step",
        task: "disk.write",
        step: ++step,
        steps,
        description: `${rawPlan.length} raw write(s)`,
      });
      await writeRawWrites(rawPlan, sink, signal);
    }
    const extents = sink.written.extents();
    const dataBytes = sink.written.bytes;
    let fileSize = layout.size;
    const co = { ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}) };
    if (sink instanceof Qcow2BlockSink) {
      fileSize = (await sink.finish(co)).fileSize;
      await fsp.rename(converted, options.output);
    } else {
      // the staging file is the output only for raw; converted formats fsync their own file,
      // and the staging file is removed unread by anyone else (flushing it would write it to
      // disk twice)
      if (format === "raw") await sink.sync();
      await sink.close();
      const src: RawSource = { path: staging, size: layout.size, extents };
      if (format === "raw") {
        await fsp.rename(staging, options.output);
      } else {
        if (format === "qcow2")
          fileSize = (
            await writeQcow2(src, converted, {
              ...co,
              ...(options.compress ? { compress: true } : {}),
            })
          ).fileSize;
        else if (format === "vmdk") fileSize = (await writeVmdk(src, converted, co)).fileSize;
        else
          fileSize = (
            await writeVhd(src, converted, {
              ...co,
              uniqueId: layout.table === "gpt" ? layout.diskId : undefined,
            })
          ).fileSize;
        await fsp.rename(converted, options.output);
        await fsp.rm(staging, { force: true });
      }
    }
    onProgress?.({ type: "done", task: "disk.write", bytes: fileSize });
    return {
      output: options.output,
      format,
      size: layout.size,
      dataBytes,
      fileSize,
      extents,
      partitions: work.map(([name, c]) => ({
        name,
        fs: c.fs,
        offset: byName.get(name)!.offset,
        size: byName.get(name)!.size,
      })),
    };
  } catch (e) {
    await sink?.close().catch(() => {});
    await fsp.rm(staging, { force: true }).catch(() => {});
    await fsp.rm(converted, { force: true }).catch(() => {});
    throw toImageModeError(e, op, { output: options.output });
  }
}
