/**
 * Merging layer commits into one image tree, the way ostree-ext does it (a union checkout of every
 * layer in order with whiteout processing, then a commit of the result) — but on metadata only:
 * content objects are shared, never copied.
 *
 * Semantics (libostree `checkout_tree_at` with `UNION_FILES` + `process_whiteouts`):
 * - a file or symlink replaces whatever is at its path (a directory is removed recursively);
 * - `.wh.NAME` removes `NAME` from the lower layers and is not copied; `.wh.` alone is an error;
 * - a directory holding `.wh..wh..opq` is emptied first, then gets this layer's dirmeta;
 * - otherwise an existing directory keeps the dirmeta of the layer that created it.
 * Afterwards zero-length `usr/etc/hostname` and `usr/etc/resolv.conf` are removed (ostree-ext
 * `cleanup_root`).
 */
import { ImageModeError, type OpOptions, throwIfAborted } from "@imagemode/core";
import { MutableTree } from "../mutable-tree.js";
import { S_IFMT, S_IFREG } from "../objects.js";
import type { OstreeRepo, WriteStats } from "../repo.js";
import { OPAQUE_WHITEOUT_NAME, WHITEOUT_PREFIX } from "./layer.js";
import type { TreeRoot } from "./layer-commit.js";

const OP = "ostree.import.merge";

/** Files container builders inject at build time; removed from the merged tree when empty. */
export const RUNTIME_INJECTED: readonly string[] = ["usr/etc/hostname", "usr/etc/resolv.conf"];

/** Options for {@link mergeLayerCommits}. */
export interface MergeOptions extends OpOptions {
  stats?: WriteStats;
}

async function overlayDir(
  repo: OstreeRepo,
  dest: MutableTree,
  tree: string,
  meta: string,
  path: string[],
  signal?: AbortSignal,
): Promise<void> {
  throwIfAborted(signal, OP);
  const t = await repo.readDirTree(tree);
  const p = path.join("/");
  const opaque = t.files.some((f) => f.name === OPAQUE_WHITEOUT_NAME);
  if (path.length === 0) {
    if (opaque) await dest.clear("");
    if (dest.meta === null || opaque) await dest.putDir("", meta, meta);
  } else {
    let node = await dest.lookup(p);
    if (node && (opaque || node.type === "file")) {
      await dest.remove(p);
      node = null;
    }
    if (!node) await dest.putDir(p, meta, meta);
  }
  for (const f of t.files) {
    const child = p === "" ? f.name : `${p}/${f.name}`;
    if (f.name.startsWith(WHITEOUT_PREFIX)) {
      const name = f.name.slice(WHITEOUT_PREFIX.length);
      if (name === "")
        throw new ImageModeError("INVALID_ARGUMENT", `Invalid empty whiteout '${child}'`, {
          op: OP,
          data: { path: child },
        });
      if (f.name !== OPAQUE_WHITEOUT_NAME) await dest.remove(p === "" ? name : `${p}/${name}`);
      continue;
    }
    await dest.putFile(child, f.checksum, meta);
  }
  for (const d of t.dirs) await overlayDir(repo, dest, d.tree, d.meta, [...path, d.name], signal);
}

/**
 * Builds the merged tree of layer commits (lowest first) and writes its dirtree objects.
 * Returns the root checksums; no commit or ref is written.
 */
export async function mergeLayerCommits(
  repo: OstreeRepo,
  commits: readonly string[],
  options: MergeOptions = {},
): Promise<TreeRoot> {
  const dest = MutableTree.create(null);
  for (const c of commits) {
    const commit = await repo.readCommit(c);
    await overlayDir(repo, dest, commit.rootTree, commit.rootMeta, [], options.signal);
  }
  for (const path of RUNTIME_INJECTED) {
    const node = await dest.lookup(path);
    if (node?.type !== "file") continue;
    const f = await repo.loadFile(node.checksum);
    if ((f.header.mode & S_IFMT) === S_IFREG && f.size === 0) await dest.remove(path);
  }
  if (dest.meta === null)
    throw new ImageModeError("INVALID_ARGUMENT", "image has no layers", { op: OP });
  return dest.write(repo, options.stats);
}
