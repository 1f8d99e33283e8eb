import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ImageModeError } from "@imagemode/core";

const pexec = promisify(execFile);
const MiB = 1 << 20;

/**
 * Copies the byte range `[offset, offset + size)` of a disk image into its own (sparse) file with
 * `dd`, e.g. a partition for `fsck.vfat`, `e2fsck` or `debugfs`. Both numbers must be multiples of
 * 1 MiB (partitions are 1 MiB-aligned). Throws a `HOST` error with dd's message on failure.
 *
 * @example
 * ```ts
 * await extractRange("disk.raw", esp.offset, esp.size, "esp.img");
 * ```
 */
export async function extractRange(
  disk: string,
  offset: number,
  size: number,
  out: string,
): Promise<void> {
  if (offset % MiB !== 0 || size % MiB !== 0)
    throw new ImageModeError("INVALID_ARGUMENT", `range ${offset}+${size} is not MiB-aligned`, {
      op: "testkit.extractRange",
    });
  try {
    await pexec("dd", [
      `if=${disk}`,
      `of=${out}`,
      "bs=1M",
      `skip=${offset / MiB}`,
      `count=${size / MiB}`,
      "conv=sparse",
      "status=none",
    ]);
  } catch (e) {
    throw new ImageModeError(
      "HOST",
      `dd of ${disk} [${offset}+${size}] failed: ${(e as Error).message}`,
      {
        op: "testkit.extractRange",
        cause: e,
      },
    );
  }
}
