import { join } from "node:path";
import type { SysrootFs } from "../sysroot-fs.js";

/**
 * Copies a directory tree (regular files, symlinks, directories; modes always, owners when
 * `chown`). With `noClobber`, existing destination entries are left alone (used to seed /var).
 */
export async function copyTree(
  fs: SysrootFs,
  src: string,
  dst: string,
  options: { chown: boolean; noClobber?: boolean },
): Promise<number> {
  let bytes = 0;
  const st = await fs.lstat(src);
  const exists = await fs.lstat(dst).then(
    () => true,
    () => false,
  );
  if (st.isDirectory()) {
    if (!exists) await fs.mkdir(dst);
    if (!exists || !options.noClobber) {
      await fs.chmod(dst, st.mode & 0o7777);
      if (options.chown) await fs.lchown(dst, st.uid, st.gid);
    }
    for (const name of (await fs.readdir(src)).sort())
      bytes += await copyTree(fs, join(src, name), join(dst, name), options);
    // chmod again: a directory's mode may forbid writing into it (0555)
    return bytes;
  }
  if (exists && options.noClobber) return 0;
  if (st.isSymbolicLink()) {
    await fs.symlink(await fs.readlink(src), dst);
  } else if (st.isFile()) {
    await fs.copyFile(src, dst);
    await fs.chmod(dst, st.mode & 0o7777);
    bytes += st.size;
  } else {
    return 0; // devices, fifos and sockets are not copied (ostree copies only these three types)
  }
  if (options.chown) await fs.lchown(dst, st.uid, st.gid);
  if (options.chown && st.isFile()) await fs.chmod(dst, st.mode & 0o7777);
  return bytes;
}

/** Sums the sizes of regular files under a directory. */
export async function treeSize(fs: SysrootFs, dir: string): Promise<number> {
  const st = await fs.lstat(dir);
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  let n = 0;
  for (const name of await fs.readdir(dir)) n += await treeSize(fs, join(dir, name));
  return n;
}
