import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { bytesStream, type FileTree, type TreeEntry, treeFromEntries } from "@imagemode/core";

/** A generated in-memory file: its bytes (deterministic from a seed). */
export function bytesOf(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface MemFile {
  path: string;
  type: "file" | "dir" | "symlink";
  data?: Uint8Array;
  target?: string;
  mtime?: number;
  mode?: number;
}

/** A FileTree from an in-memory list (parents listed before children). */
export function memTree(files: MemFile[]): FileTree {
  const entries: TreeEntry[] = files.map((f) => {
    const e: TreeEntry = {
      path: f.path,
      type: f.type,
      mode: f.mode ?? (f.type === "dir" ? 0o755 : 0o644),
      uid: 0,
      gid: 0,
      mtime: f.mtime ?? 1700000000,
    };
    if (f.type === "file") {
      const d = f.data ?? new Uint8Array();
      e.size = d.length;
      e.content = async () => bytesStream(d);
    }
    if (f.type === "symlink") e.linkTarget = f.target ?? "x";
    return e;
  });
  return treeFromEntries(entries);
}

export const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** path → "dir" | sha256 of content, for a host directory (symlinks as "link:target"). */
export async function hashDir(
  root: string,
  rel = "",
  out = new Map<string, string>(),
): Promise<Map<string, string>> {
  for (const name of await readdir(join(root, rel))) {
    const p = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, p));
    if (st.isDirectory()) {
      out.set(p, "dir");
      await hashDir(root, p, out);
    } else if (st.isSymbolicLink()) out.set(p, `link:${await readlink(join(root, p))}`);
    else out.set(p, sha(await readFile(join(root, p))));
  }
  return out;
}
