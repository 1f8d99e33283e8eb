/**
 * Files to place on a partition, as plain data: what an unprivileged image builder feeds to a FAT or
 * ext4 writer, and what the apply functions write to a directory.
 */
import * as path from "node:path";
import { invalidArgument, type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import { type BootFs, nodeBootFs } from "./fs.js";

/** Which partition a file belongs on. */
export type PartitionRole = "esp" | "boot";

/** One thing to create, `path` relative to its partition's root (no leading `/`). */
export type PlacedFile =
  | {
      kind: "file";
      partition: PartitionRole;
      path: string;
      mode: number;
      content: Uint8Array | string;
    }
  | { kind: "file"; partition: PartitionRole; path: string; mode: number; sourcePath: string }
  | { kind: "symlink"; partition: PartitionRole; path: string; target: string }
  | { kind: "dir"; partition: PartitionRole; path: string; mode: number };

/** Bytes written directly to the disk (MBR, BIOS boot partition), by absolute byte offset. */
export interface RawWrite {
  /** What it is, for logs (`boot.img → MBR`). */
  description: string;
  offset: number;
  content: Uint8Array;
  /** Bytes at `offset` the write must stay within (e.g. 440 for the MBR boot code, the partition size). */
  limit: number;
}

/** Checks a partition-relative path: no `..`, no absolute paths, no empty components. */
export function checkRelativePath(p: string): string {
  const parts = p.split("/");
  if (p === "" || p.startsWith("/") || parts.some((c) => c === "" || c === "." || c === "..")) {
    throw invalidArgument(`invalid path on a partition: ${JSON.stringify(p)}`, {
      op: "bootloader.place",
      data: { path: p },
    });
  }
  return p;
}

/** Options for {@link placeFiles}. */
export interface PlaceFilesOptions extends OpOptions {
  fs?: BootFs;
}

/**
 * Writes placed files into directories standing for the partitions (`{ esp: dir, boot: dir }`).
 * Regular files go through a temp file + fsync + rename, so a crash leaves either the old or the
 * new file. Nothing is written outside the given directories.
 */
export async function placeFiles(
  files: readonly PlacedFile[],
  roots: Partial<Record<PartitionRole, string>>,
  options: PlaceFilesOptions = {},
): Promise<void> {
  const fs = options.fs ?? nodeBootFs;
  let n = 0;
  for (const f of files) {
    throwIfAborted(options.signal, "bootloader.place");
    const root = roots[f.partition];
    if (root === undefined)
      throw invalidArgument(`no directory given for the ${f.partition} partition`, {
        op: "bootloader.place",
        data: { path: f.path },
      });
    const dest = path.join(root, checkRelativePath(f.path));
    try {
      await fs.mkdir(path.dirname(dest), { recursive: true });
      if (f.kind === "dir") {
        await fs.mkdir(dest, { recursive: true, mode: f.mode });
      } else if (f.kind === "symlink") {
        const tmp = `${dest}.imagemode-tmp`;
        await fs.rm(tmp, { force: true });
        await fs.symlink(f.target, tmp);
        await fs.rename(tmp, dest);
      } else {
        const tmp = `${dest}.imagemode-tmp`;
        if ("sourcePath" in f) {
          await fs.copyFile(f.sourcePath, tmp);
          await fs.chmod(tmp, f.mode);
        } else await fs.writeFile(tmp, f.content, { mode: f.mode });
        await fs.fsync(tmp);
        await fs.rename(tmp, dest);
      }
      await fs.fsync(path.dirname(dest));
    } catch (err) {
      throw toImageModeError(err, "bootloader.place", { path: f.path, partition: f.partition });
    }
    options.onProgress?.({
      type: "step",
      task: "bootloader.place",
      step: ++n,
      steps: files.length,
      description: f.path,
    });
  }
}

/**
 * Applies raw writes to a disk image file (`r+`, never truncated or grown past its size), each
 * checked against its `limit`, then fsyncs it.
 */
export async function applyRawWrites(
  diskPath: string,
  writes: readonly RawWrite[],
  options: OpOptions = {},
): Promise<void> {
  const { open } = await import("node:fs/promises");
  for (const w of writes) {
    if (w.content.length > w.limit)
      throw invalidArgument(
        `${w.description}: ${w.content.length} bytes exceed the ${w.limit}-byte area`,
        { op: "bootloader.rawWrite" },
      );
  }
  const fh = await open(diskPath, "r+").catch((err) =>
    Promise.reject(toImageModeError(err, "bootloader.rawWrite", { diskPath })),
  );
  try {
    const { size } = await fh.stat();
    for (const w of writes) {
      throwIfAborted(options.signal, "bootloader.rawWrite");
      if (w.offset + w.content.length > size)
        throw invalidArgument(`${w.description}: write past the end of ${diskPath}`, {
          op: "bootloader.rawWrite",
          data: { offset: w.offset, size },
        });
      await fh.write(w.content, 0, w.content.length, w.offset);
      options.onProgress?.({
        type: "done",
        task: "bootloader.rawWrite",
        description: w.description,
        bytes: w.content.length,
      });
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}
