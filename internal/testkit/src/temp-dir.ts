import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./internal/exec.js";

/** A directory of its own under the system temp dir. */
export interface TempDir {
  /** Absolute path of the directory. */
  path: string;
  /**
   * Removes the directory and everything in it. Immutable files (`chattr +i`, as
   * `ostree admin deploy` leaves deployment roots) are made mutable first.
   */
  cleanup(): Promise<void>;
}

/**
 * Creates a fresh, empty temp directory (`mkdtemp` under `os.tmpdir()`).
 *
 * @example
 * ```ts
 * const dir = await tempDir("store-");
 * try { ... } finally { await dir.cleanup(); }
 * ```
 */
export async function tempDir(prefix = "imagemode-"): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    async cleanup() {
      try {
        await rm(path, { recursive: true, force: true });
      } catch {
        // ostree deployments are chattr +i (node then reports EPERM or even ENOTDIR): clear
        // the flag below our own dir, then retry once; a second failure is thrown.
        await run("chattr", ["-R", "-f", "-i", path], { allowFailure: true });
        await rm(path, { recursive: true, force: true });
      }
    },
  };
}
