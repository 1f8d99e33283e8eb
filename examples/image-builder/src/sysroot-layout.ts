/**
 * Glue between deploy-manager's whole-sysroot `FileTree` and the disk's partitions: blueprint
 * edits land in the deployment's `/etc` and the stateroot's `/var`; `/boot` is split off onto
 * its own partition. Entries are metadata only (contents stay lazy), so collecting them is cheap.
 */

import type { TreeEdit } from "@imagemode/blueprint";
import { compareNames, type FileTree, type TreeEntry } from "@imagemode/core";

/** Orders entries like a `FileTree`: parents before children, names in byte order. */
export function sortTree(entries: TreeEntry[]): TreeEntry[] {
  const key = (p: string) => (p === "." ? [] : p.split("/"));
  return entries.sort((a, b) => {
    const ka = key(a.path);
    const kb = key(b.path);
    for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
      const c = compareNames(ka[i] as string, kb[i] as string);
      if (c !== 0) return c;
    }
    return ka.length - kb.length;
  });
}

/** Collects a tree into an array (entries are metadata; contents stay lazy). */
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

/** Applies blueprint tree edits (image-root paths) to sysroot entries; missing parents are created. */
export async function applyEdits(
  entries: TreeEntry[],
  edits: AsyncIterable<TreeEdit>,
  deployment: string,
  stateroot: string,
): Promise<{ entries: TreeEntry[]; applied: string[] }> {
  const byPath = new Map(entries.map((e) => [e.path, e] as const));
  const applied: string[] = [];
  for await (const edit of edits) {
    const path = sysrootPathOf(edit.path, deployment, stateroot);
    const existing = byPath.get(path);
    if (existing && edit.createOnly) continue;
    const { createOnly: _c, keepMetadata, ...entry } = edit;
    const next: TreeEntry = { ...entry, path };
    if (existing && keepMetadata) {
      next.mode = existing.mode;
      next.uid = existing.uid;
      next.gid = existing.gid;
    }
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (!byPath.has(parent))
        byPath.set(parent, { path: parent, type: "dir", mode: 0o755, uid: 0, gid: 0 });
    }
    byPath.set(path, next);
    applied.push(path);
  }
  return { entries: sortTree([...byPath.values()]), applied };
}

/** Splits a sysroot into the root partition's tree and the /boot partition's tree. */
export function splitBoot(entries: TreeEntry[]): { root: TreeEntry[]; boot: TreeEntry[] } {
  const root: TreeEntry[] = [];
  const boot: TreeEntry[] = [];
  for (const e of entries) {
    if (e.path.startsWith("boot/")) boot.push({ ...e, path: e.path.slice("boot/".length) });
    else if (e.path === "boot") {
      root.push(e);
      boot.push({ ...e, path: "." });
    } else root.push(e);
  }
  return { root, boot };
}

/** Merges two trees' entries; on the same path the second wins. */
export function mergeEntries(a: TreeEntry[], b: TreeEntry[]): TreeEntry[] {
  const m = new Map(a.map((e) => [e.path, e] as const));
  for (const e of b) m.set(e.path, e);
  return sortTree([...m.values()]);
}

/** A `FileTree` over an array. */
export async function* treeOf(entries: readonly TreeEntry[]): FileTree {
  yield* entries;
}
