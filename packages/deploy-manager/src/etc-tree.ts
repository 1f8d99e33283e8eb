/**
 * The `/etc` merge on host directories: listing an `/etc` tree and applying an
 * {@link EtcMergePlan}. Every file-system call goes through the injected {@link SysrootFs}
 * (so the crash tests fail them too); xattrs go through the optional xattr backend.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  compareNames,
  throwIfAborted,
  toImageModeError,
  typeFromMode,
  type XattrBackend,
} from "@imagemode/core";
import type { EtcEntry, EtcMergePlan } from "./etc-merge.js";
import { nodeSysrootFs, type SysrootFs } from "./sysroot-fs.js";

/** Options of {@link listEtcDirectory} and {@link applyEtcMergeToDirectory}. */
export interface EtcTreeOptions {
  /** File-system implementation (default `node:fs/promises`). */
  fs?: SysrootFs;
  /** Xattr backend; xattrs are compared and copied only with one. */
  xattrs?: XattrBackend | null;
  signal?: AbortSignal;
}

const CHUNK = 64 * 1024;

/** SHA-256 of a file's content, read in chunks (never the whole file in memory). */
async function hashFile(fs: SysrootFs, path: string): Promise<string> {
  const h = createHash("sha256");
  const fh = await fs.open(path, "r");
  try {
    const buf = new Uint8Array(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

/**
 * Lists a host `/etc` directory as {@link EtcEntry} values (paths relative to it, parents
 * before children, names in byte order; content hashed in chunks).
 */
export async function listEtcDirectory(
  dir: string,
  options: EtcTreeOptions = {},
): Promise<EtcEntry[]> {
  const fs = options.fs ?? nodeSysrootFs;
  const out: EtcEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    throwIfAborted(options.signal, "deploy.etc-list");
    const names = (await fs.readdir(rel ? join(dir, rel) : dir)).sort(compareNames);
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(dir, path);
      const st = await fs.lstat(abs);
      const type = typeFromMode(st.mode);
      const entry: EtcEntry = { path, type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (type === "symlink") entry.linkTarget = await fs.readlink(abs);
      if (type === "file") entry.contentHash = await hashFile(fs, abs);
      if (options.xattrs && type !== "symlink") {
        const names = (await options.xattrs.list(abs).catch(() => [] as string[])).sort(
          compareNames,
        );
        if (names.length > 0) {
          const h = createHash("sha256");
          for (const k of names) {
            const v = await options.xattrs.get(abs, k).catch(() => null);
            h.update(k).update("\0");
            if (v) h.update(v);
            h.update("\0");
          }
          entry.xattrsHash = h.digest("hex");
        }
      }
      out.push(entry);
      if (type === "dir") await walk(path);
    }
  };
  try {
    await walk("");
  } catch (e) {
    throw toImageModeError(e, "deploy.etc-list", { path: dir });
  }
  return out;
}

/**
 * Applies an {@link EtcMergePlan} on host directories: `newEtc` starts as the new image's
 * `usr/etc` copy; entries are taken whole from `oldEtc`. Ownership is copied when the process
 * may (root); modes, symlink targets and (with a backend) xattrs always.
 */
export async function applyEtcMergeToDirectory(
  plan: EtcMergePlan,
  oldEtc: string,
  newEtc: string,
  options: EtcTreeOptions = {},
): Promise<void> {
  const fs = options.fs ?? nodeSysrootFs;
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  try {
    for (const a of plan.actions) {
      throwIfAborted(options.signal, "deploy.etc-merge");
      const dst = join(newEtc, a.path);
      if (a.op === "remove") {
        await fs.rm(dst, { recursive: true, force: true });
        continue;
      }
      const src = join(oldEtc, a.path);
      const st = await fs.lstat(src);
      if (a.type === "dir") {
        await fs.mkdir(dst, { recursive: true });
        await fs.chmod(dst, st.mode & 0o7777);
      } else if (a.type === "symlink") {
        await fs.rm(dst, { recursive: true, force: true });
        await fs.symlink(await fs.readlink(src), dst);
      } else if (a.type === "file") {
        await fs.rm(dst, { recursive: true, force: true });
        await fs.copyFile(src, dst);
        await fs.chmod(dst, st.mode & 0o7777);
      } else {
        // devices, fifos and sockets do not belong in /etc; carrying them over would need mknod
        continue;
      }
      if (asRoot) await fs.lchown(dst, st.uid, st.gid);
      if (asRoot && a.type !== "symlink") await fs.chmod(dst, st.mode & 0o7777);
      if (options.xattrs && a.type !== "symlink") {
        for (const name of await options.xattrs.list(src).catch(() => [] as string[])) {
          const v = await options.xattrs.get(src, name).catch(() => null);
          if (v) await options.xattrs.set(dst, name, v).catch(() => undefined);
        }
      }
    }
  } catch (e) {
    throw toImageModeError(e, "deploy.etc-merge");
  }
}
