/**
 * Glue between deploy-manager's whole-sysroot `FileTree` and the disk's partitions: blueprint
 * edits land in the deployment's `/etc` and the stateroot's `/var`, merged into the stream in
 * tree order; `/boot` is split off onto its own partition. Nothing here holds the whole tree:
 * only the edits and the `/boot` part (kernel, initramfs, entries) are collected.
 */

import type { TreeEdit } from "@imagemode/blueprint";
import {
  type FileContexts,
  type FileTree,
  SELINUX_XATTR,
  selinuxXattrValue,
  type TreeEntry,
} from "@imagemode/core";
import { compareTreePaths } from "@imagemode/deploy-manager";

/** Orders entries like a `FileTree`: parents before children, names in byte order. */
export function sortTree(entries: TreeEntry[]): TreeEntry[] {
  return entries.sort((a, b) => compareTreePaths(a.path, b.path));
}

/** Collects a (small) tree into an array (entries are metadata; contents stay lazy). */
export async function collect(tree: FileTree): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  for await (const e of tree) out.push(e);
  return out;
}

/**
 * Where an image-root path of a blueprint edit lives in the sysroot: `etc/…` in the deployment,
 * `var/…` in the stateroot's shared `/var`, anything else in the deployment.
 */
export function sysrootPathOf(path: string, deployment: string, stateroot: string): string {
  if (path === "var" || path.startsWith("var/")) return `ostree/deploy/${stateroot}/${path}`;
  return `${deployment}/${path}`;
}

/** One edit at a sysroot path, ready to be merged into the sysroot's stream. */
export interface OverlayEntry {
  entry: TreeEntry;
  /** The tree's own entry at this path, if any, wins. */
  createOnly: boolean;
  /** Mode and owner come from the tree's entry at this path, if any. */
  metadataFromTree: boolean;
}

/**
 * Blueprint tree edits (image-root paths) as a sorted overlay of sysroot paths. Later edits of a
 * path replace earlier ones (a `createOnly` edit never does); missing parents are made as
 * `0755` root directories unless the tree has them.
 */
export async function overlayOf(
  edits: AsyncIterable<TreeEdit>,
  deployment: string,
  stateroot: string,
): Promise<OverlayEntry[]> {
  const byPath = new Map<string, OverlayEntry>();
  for await (const edit of edits) {
    const path = sysrootPathOf(edit.path, deployment, stateroot);
    const prev = byPath.get(path);
    if (prev && edit.createOnly) continue;
    const { createOnly, keepMetadata, ...entry } = edit;
    const next: OverlayEntry = {
      entry: { ...entry, path },
      createOnly: createOnly === true,
      metadataFromTree: keepMetadata === true,
    };
    if (prev && keepMetadata) {
      next.entry.mode = prev.entry.mode;
      next.entry.uid = prev.entry.uid;
      next.entry.gid = prev.entry.gid;
      // the tree's entry is what the earlier edit kept or replaced
      next.metadataFromTree = prev.createOnly || prev.metadataFromTree;
    }
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (!byPath.has(parent))
        byPath.set(parent, {
          entry: { path: parent, type: "dir", mode: 0o755, uid: 0, gid: 0 },
          createOnly: true,
          metadataFromTree: false,
        });
    }
    byPath.set(path, next);
  }
  return [...byPath.values()].sort((a, b) => compareTreePaths(a.entry.path, b.entry.path));
}

/**
 * The runtime path (as the booted system sees it) of a sysroot path: the deployment's files
 * are `/…` (its `etc/…` is `/etc/…`), the stateroot's `var/…` is `/var/…`; other sysroot paths
 * (`ostree`, `boot`, …) have none.
 */
export function runtimePathOf(path: string, deployment: string, stateroot: string): string | null {
  if (path === deployment) return "/";
  if (path.startsWith(`${deployment}/`)) return path.slice(deployment.length);
  const varDir = `ostree/deploy/${stateroot}/var`;
  if (path === varDir || path.startsWith(`${varDir}/`)) return `/var${path.slice(varDir.length)}`;
  return null;
}

/**
 * Labels the overlay's entries (blueprint edits: `/etc/passwd`, users' homes, …) with the
 * deployment's SELinux policy, as bootc-image-builder's `setfiles` pass labels what it wrote;
 * the sysroot stream itself is labelled by deploy-manager. A `null` policy leaves them as they
 * are. Entries the lookup gives no context keep their xattrs.
 */
export function labelOverlay(
  overlay: readonly OverlayEntry[],
  contexts: FileContexts | null,
  deployment: string,
  stateroot: string,
): OverlayEntry[] {
  if (contexts === null) return [...overlay];
  return overlay.map((o) => {
    const runtime = runtimePathOf(o.entry.path, deployment, stateroot);
    const context = runtime === null ? null : contexts.lookup(runtime, o.entry.type);
    if (context === null) return o;
    const xattrs = new Map(o.entry.xattrs ?? []);
    xattrs.set(SELINUX_XATTR, selinuxXattrValue(context));
    return { ...o, entry: { ...o.entry, xattrs } };
  });
}

/** Merges a sorted overlay into a sorted tree, as a stream. */
export async function* applyOverlay(tree: FileTree, overlay: readonly OverlayEntry[]): FileTree {
  let i = 0;
  for await (const e of tree) {
    while (
      i < overlay.length &&
      compareTreePaths((overlay[i] as OverlayEntry).entry.path, e.path) < 0
    )
      yield (overlay[i++] as OverlayEntry).entry;
    const o = overlay[i];
    if (o && o.entry.path === e.path) {
      i++;
      if (o.createOnly) yield e;
      else if (o.metadataFromTree) yield { ...o.entry, mode: e.mode, uid: e.uid, gid: e.gid };
      else yield o.entry;
      continue;
    }
    yield e;
  }
  while (i < overlay.length) yield (overlay[i++] as OverlayEntry).entry;
}

/**
 * Splits a sysroot stream into the `/boot` partition's entries (collected: kernel, initramfs,
 * entries) and the root partition's tree (the rest of the stream; `/boot` stays as an empty
 * mount point). Reads the stream only up to the end of `boot/`.
 */
export async function splitBoot(tree: FileTree): Promise<{ boot: TreeEntry[]; root: FileTree }> {
  const it = tree[Symbol.asyncIterator]();
  const head: TreeEntry[] = [];
  const boot: TreeEntry[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    const e = r.value;
    if (e.path.startsWith("boot/")) boot.push({ ...e, path: e.path.slice("boot/".length) });
    else if (e.path === "boot") {
      head.push(e);
      boot.push({ ...e, path: "." });
    } else {
      head.push(e);
      if (compareTreePaths(e.path, "boot") > 0) break;
    }
  }
  async function* root(): FileTree {
    yield* head;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  return { boot, root: root() };
}

/** Merges two small trees' entries; on the same path the second wins. */
export function mergeEntries(a: TreeEntry[], b: TreeEntry[]): TreeEntry[] {
  const m = new Map(a.map((e) => [e.path, e] as const));
  for (const e of b) m.set(e.path, e);
  return sortTree([...m.values()]);
}

/** A `FileTree` over an array. */
export async function* treeOf(entries: readonly TreeEntry[]): FileTree {
  yield* entries;
}
