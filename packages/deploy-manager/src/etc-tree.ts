import { createHash } from "node:crypto";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import {
  compareNames,
  readHostDirectory,
  toImageModeError,
  type XattrBackend,
} from "@imagemode/core";
import type { EtcEntry, EtcMergePlan } from "./etc-merge.js";

/** Lists a host `/etc` directory as {@link EtcEntry} values (content hashed, streaming). */
export async function listEtcDirectory(
  dir: string,
  options: { xattrs?: XattrBackend | null; signal?: AbortSignal } = {},
): Promise<EtcEntry[]> {
  const out: EtcEntry[] = [];
  for await (const e of readHostDirectory(dir, {
    xattrs: options.xattrs ?? null,
    ...(options.signal ? { signal: options.signal } : {}),
  })) {
    const entry: EtcEntry = { path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid };
    if (e.linkTarget !== undefined) entry.linkTarget = e.linkTarget;
    if (e.type === "file" && e.content) {
      const h = createHash("sha256");
      for await (const c of await e.content()) h.update(c);
      entry.contentHash = h.digest("hex");
    }
    if (e.xattrs?.size) {
      const h = createHash("sha256");
      for (const k of [...e.xattrs.keys()].sort(compareNames))
        h.update(k).update("\0").update(e.xattrs.get(k)!).update("\0");
      entry.xattrsHash = h.digest("hex");
    }
    out.push(entry);
  }
  return out;
}

/**
 * Applies an {@link EtcMergePlan} on host directories: `newEtc` starts as the new image's
 * `usr/etc` copy; entries are taken whole from `oldEtc`. Ownership is copied when the process
 * may (root); modes, symlink targets and xattrs always.
 */
export async function applyEtcMergeToDirectory(
  plan: EtcMergePlan,
  oldEtc: string,
  newEtc: string,
  options: { xattrs?: XattrBackend | null } = {},
): Promise<void> {
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  try {
    for (const a of plan.actions) {
      const dst = join(newEtc, a.path);
      if (a.op === "remove") {
        await fsp.rm(dst, { recursive: true, force: true });
        continue;
      }
      const src = join(oldEtc, a.path);
      const st = await fsp.lstat(src);
      if (a.type === "dir") {
        await fsp.mkdir(dst, { recursive: true });
        await fsp.chmod(dst, st.mode & 0o7777);
      } else if (a.type === "symlink") {
        await fsp.rm(dst, { recursive: true, force: true });
        await fsp.symlink(await fsp.readlink(src), dst);
      } else if (a.type === "file") {
        await fsp.rm(dst, { recursive: true, force: true });
        await fsp.copyFile(src, dst);
        await fsp.chmod(dst, st.mode & 0o7777);
      } else {
        // devices, fifos and sockets do not belong in /etc; carrying them over would need mknod
        continue;
      }
      if (asRoot) await fsp.lchown(dst, st.uid, st.gid);
      if (asRoot && a.type !== "symlink") await fsp.chmod(dst, st.mode & 0o7777);
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
