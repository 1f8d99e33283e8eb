/**
 * The file-system surface a sysroot is read and written through. Injected (`{ fs }` options), so
 * tests can wrap it — the crash tests fail every operation after the K-th.
 */
import * as nodeFsp from "node:fs/promises";
import type { BootFs } from "@imagemode/bootloader";
import type { RepoFs } from "@imagemode/ostree-store";

/** The subset of `node:fs/promises` deploy-manager (and the repository under it) uses. */
export type SysrootFs = RepoFs & Pick<typeof nodeFsp, "statfs" | "realpath">;

/** Node's `fs/promises`. */
export const nodeSysrootFs: SysrootFs = nodeFsp;

/** Adapts a {@link SysrootFs} to the bootloader package's `BootFs`. */
export function bootFsOf(fs: SysrootFs): BootFs {
  return {
    readFile: async (p) => new Uint8Array(await fs.readFile(p)),
    writeFile: (p, d, o) => fs.writeFile(p, d, o?.mode === undefined ? {} : { mode: o.mode }),
    mkdir: (p, o) => fs.mkdir(p, o),
    readdir: (p) => fs.readdir(p),
    rename: (a, b) => fs.rename(a, b),
    symlink: (t, p) => fs.symlink(t, p),
    readlink: (p) => fs.readlink(p),
    rm: (p, o) => fs.rm(p, o),
    lstat: (p) => fs.lstat(p),
    copyFile: (a, b) => fs.copyFile(a, b),
    chmod: (p, mode) => fs.chmod(p, mode),
    fsync: (p) => fsyncPath(fs, p),
  };
}

/** fsync a file or a directory by path. */
export async function fsyncPath(fs: SysrootFs, path: string): Promise<void> {
  const fh = await fs.open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a file crash-safely: temp file beside it, fsync, rename, fsync the directory. */
export async function writeFileAtomic(
  fs: SysrootFs,
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await fs.open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.chmod(tmp, mode);
  await fs.rename(tmp, path);
  await fsyncPath(fs, path.slice(0, path.lastIndexOf("/")) || "/");
}

/** Replaces a symlink atomically: `symlink(target, tmp)` then `rename(tmp, path)`. */
export async function symlinkAtomic(fs: SysrootFs, target: string, path: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await fs.rm(tmp, { force: true });
  await fs.symlink(target, tmp);
  await fs.rename(tmp, path);
}

/** Whether a path exists (lstat). */
export async function exists(fs: SysrootFs, path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}
