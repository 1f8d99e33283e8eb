import { compareNames, type TreeEntryType } from "@imagemode/core";

/** One entry of an `/etc` tree as the merge compares it (paths relative to the etc root). */
export interface EtcEntry {
  path: string;
  type: TreeEntryType;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
  /** A hash of the content for regular files (any stable hash: sha256 hex). */
  contentHash?: string;
  /** A hash of the sorted xattrs, when they are compared. */
  xattrsHash?: string;
}

/** One change between the image's default `/usr/etc` and the machine's `/etc`. */
export interface EtcChange {
  kind: "modified" | "added" | "removed";
  path: string;
  type: TreeEntryType;
}

/** The result of {@link planEtcMerge}: what to carry from the old deployment into the new one. */
export interface EtcMergePlan {
  /** Local changes, in path order (parents before children). */
  changes: EtcChange[];
  modified: number;
  added: number;
  removed: number;
  /**
   * Actions on the new deployment's `/etc` (which starts as a copy of its `usr/etc`):
   * `remove` deletes the path (recursively); `copy` takes the entry from the old `/etc`,
   * replacing whatever is there (a local copy wins whole; directories keep their children
   * from the new image unless those were changed locally too).
   */
  actions: ({ op: "remove"; path: string } | { op: "copy"; path: string; type: TreeEntryType })[];
}

function sameEntry(a: EtcEntry, b: EtcEntry): boolean {
  return (
    a.type === b.type &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.linkTarget === b.linkTarget &&
    a.contentHash === b.contentHash &&
    a.xattrsHash === b.xattrsHash
  );
}

function isUnder(path: string, dir: string): boolean {
  return path.startsWith(`${dir}/`);
}

/**
 * The three-way `/etc` merge of `ostree admin deploy`: the changes between the old image's
 * defaults (`oldDefaults`, its `usr/etc`) and the machine's `/etc` (`current`) are replayed onto
 * the new image's defaults. Modified and added files are copied whole from the machine's
 * `/etc`; removed ones are removed. Pure: the caller lists the trees and applies the actions.
 */
export function planEtcMerge(
  oldDefaults: readonly EtcEntry[],
  current: readonly EtcEntry[],
): EtcMergePlan {
  const base = new Map(oldDefaults.map((e) => [e.path, e]));
  const local = new Map(current.map((e) => [e.path, e]));
  const changes: EtcChange[] = [];
  for (const e of current) {
    const b = base.get(e.path);
    if (!b) changes.push({ kind: "added", path: e.path, type: e.type });
    else if (!sameEntry(b, e)) changes.push({ kind: "modified", path: e.path, type: e.type });
  }
  // Like ostree, a removed directory is one change: its children are not listed separately.
  const removed = oldDefaults
    .filter((b) => !local.has(b.path))
    .sort((x, y) => compareNames(x.path, y.path));
  const removedDirs: string[] = [];
  for (const b of removed) {
    if (removedDirs.some((d) => isUnder(b.path, d))) continue;
    changes.push({ kind: "removed", path: b.path, type: b.type });
    if (b.type === "dir") removedDirs.push(b.path);
  }
  changes.sort((x, y) => compareNames(x.path, y.path));

  const actions: EtcMergePlan["actions"] = [];
  for (const c of changes) {
    if (c.kind === "removed") {
      actions.push({ op: "remove", path: c.path });
    } else {
      const before = base.get(c.path);
      // a type change (file -> dir, dir -> symlink, …) replaces the whole path
      if (before && before.type !== c.type) actions.push({ op: "remove", path: c.path });
      actions.push({ op: "copy", path: c.path, type: c.type });
    }
  }
  return {
    changes,
    modified: changes.filter((c) => c.kind === "modified").length,
    added: changes.filter((c) => c.kind === "added").length,
    removed: changes.filter((c) => c.kind === "removed").length,
    actions,
  };
}

/** ostree's summary line: `Copying /etc changes: 2 modified, 1 removed, 3 added`. */
export function describeEtcMerge(plan: EtcMergePlan): string {
  return `Copying /etc changes: ${plan.modified} modified, ${plan.removed} removed, ${plan.added} added`;
}

/** `ostree admin config-diff` lines: `M    a.conf`, `A    local.conf`, `D    c.conf`. */
export function formatConfigDiff(plan: EtcMergePlan): string[] {
  const order = { modified: 0, removed: 1, added: 2 } as const;
  const letter = { modified: "M", added: "A", removed: "D" } as const;
  return [...plan.changes]
    .sort((a, b) => order[a.kind] - order[b.kind] || compareNames(a.path, b.path))
    .map((c) => `${letter[c.kind]}    ${c.path}`);
}
