/**
 * Reading commits: `ls`, `cat`, `show`, `log`, `diff`, and a core {@link FileTree} view of a
 * commit whose contents stream from the repository.
 */
import {
  type ByteStream,
  type FileTree,
  invalidArgument,
  notFound,
  type OpOptions,
  type TreeEntry,
  throwIfAborted,
} from "@imagemode/core";
import { formatVariant, type Variant } from "./gvariant.js";
import { splitPath } from "./mutable-tree.js";
import {
  type Commit,
  commitContentChecksum,
  metadataValue,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  type Xattrs,
} from "./objects.js";
import type { OstreeRepo } from "./repo.js";

/** One entry of a listing. */
export interface LsEntry {
  /** Absolute path inside the commit (`/`, `/usr/bin/sh`). */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Full mode including the type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Payload size (0 for directories and symlinks). */
  size: number;
  /** Content checksum (files and symlinks). */
  checksum?: string;
  /** Dirtree checksum (directories). */
  tree?: string;
  /** Dirmeta checksum (directories). */
  meta?: string;
  linkTarget?: string;
  xattrs: Xattrs;
}

/** Options of {@link ls}. */
export interface LsOptions extends OpOptions {
  /** List recursively (`ls -R`). */
  recursive?: boolean;
  /** Only the entry itself, not a directory's children (`ls -d`). */
  dirOnly?: boolean;
}

type Node =
  | { kind: "file"; name: string; checksum: string }
  | { kind: "dir"; name: string; tree: string; meta: string };

/** Finds the node at `path` in a commit's tree. */
export async function lookupPath(repo: OstreeRepo, commit: Commit, path: string): Promise<Node> {
  const parts = splitPath(path);
  let node: Node = { kind: "dir", name: "", tree: commit.rootTree, meta: commit.rootMeta };
  for (const name of parts) {
    if (node.kind !== "dir")
      throw notFound(`no such file or directory: ${path}`, { op: "ostree.read", data: { path } });
    const t = await repo.readDirTree(node.tree);
    const f = t.files.find((x) => x.name === name);
    const d = t.dirs.find((x) => x.name === name);
    if (f) node = { kind: "file", name, checksum: f.checksum };
    else if (d) node = { kind: "dir", name, tree: d.tree, meta: d.meta };
    else
      throw notFound(`no such file or directory: ${path}`, { op: "ostree.read", data: { path } });
  }
  return node;
}

async function entryOf(repo: OstreeRepo, path: string, node: Node): Promise<LsEntry> {
  if (node.kind === "dir") {
    const m = await repo.readDirMeta(node.meta);
    return {
      path,
      type: "dir",
      mode: m.mode,
      uid: m.uid,
      gid: m.gid,
      size: 0,
      tree: node.tree,
      meta: node.meta,
      xattrs: m.xattrs ?? new Map(),
    };
  }
  const f = await repo.loadFile(node.checksum);
  const isLink = (f.header.mode & S_IFMT) === S_IFLNK;
  const e: LsEntry = {
    path,
    type: isLink ? "symlink" : "file",
    mode: f.header.mode,
    uid: f.header.uid,
    gid: f.header.gid,
    size: f.size,
    checksum: node.checksum,
    xattrs: f.header.xattrs ?? new Map(),
  };
  if (isLink) e.linkTarget = f.header.symlinkTarget ?? "";
  return e;
}

function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}

/**
 * Lists `path` of a commit like `ostree ls`: the entry itself, then (for a directory) its
 * files, then each subdirectory (recursing with `recursive`).
 */
export async function ls(
  repo: OstreeRepo,
  rev: string,
  path = "/",
  options: LsOptions = {},
): Promise<LsEntry[]> {
  const c = await repo.readCommit(await repo.resolveRev(rev));
  const node = await lookupPath(repo, c, path);
  const abs = `/${splitPath(path).join("/")}`;
  const out: LsEntry[] = [await entryOf(repo, abs, node)];
  if (node.kind !== "dir" || options.dirOnly) return out;
  const walk = async (dirPath: string, tree: string, depth: number) => {
    throwIfAborted(options.signal, "ostree.ls");
    const t = await repo.readDirTree(tree);
    for (const f of t.files)
      out.push(await entryOf(repo, joinPath(dirPath, f.name), { kind: "file", ...f }));
    for (const d of t.dirs) {
      const p = joinPath(dirPath, d.name);
      out.push(await entryOf(repo, p, { kind: "dir", ...d }));
      if (options.recursive) await walk(p, d.tree, depth + 1);
    }
  };
  await walk(abs, node.tree, 0);
  return out;
}

/** Renders an entry as `ostree ls [-C]` prints it. */
export function formatLsEntry(
  e: LsEntry,
  options: { checksums?: boolean; xattrs?: boolean } = {},
): string {
  const c = e.type === "dir" ? "d" : e.type === "symlink" ? "l" : "-";
  let s = `${c}0${(e.mode & 0o7777).toString(8).padStart(4, "0")} ${e.uid} ${e.gid} ${String(e.size).padStart(6, " ")} `;
  if (options.checksums) s += e.type === "dir" ? `${e.tree} ${e.meta} ` : `${e.checksum} `;
  if (options.xattrs) s += `{ ${formatXattrs(e.xattrs)} } `;
  s += e.path;
  if (e.type === "symlink") s += ` -> ${e.linkTarget}`;
  return s;
}

/** Renders xattrs as `g_variant_print(a(ayay), TRUE)` does (what `ostree ls -X` shows). */
export function formatXattrs(x: Xattrs): string {
  if (x.size === 0) return "@a(ayay) []";
  const items = [...x].map(
    ([k, v], i) => `(${formatAy(Buffer.from(`${k}\0`), i === 0)}, ${formatAy(v, i === 0)})`,
  );
  return `[${items.join(", ")}]`;
}

/** GLib's rendering of an `ay`: a bytestring `b'…'` when its only NUL is the last byte. */
function formatAy(v: Uint8Array, annotate: boolean): string {
  const nul = v.indexOf(0);
  if (v.length > 0 && nul === v.length - 1) {
    const str = gStrEscape(v.subarray(0, nul));
    return v.includes(0x27) ? `b"${str}"` : `b'${str}'`;
  }
  if (v.length === 0) return annotate ? "@ay []" : "[]";
  return `[${[...v].map((b, i) => `${i === 0 && annotate ? "byte " : ""}0x${b.toString(16).padStart(2, "0")}`).join(", ")}]`;
}

/** `g_strescape`: C escapes for control characters, `\\` and `"`; octal for the rest. */
function gStrEscape(b: Uint8Array): string {
  const named: Record<number, string> = {
    8: "\\b",
    12: "\\f",
    10: "\\n",
    13: "\\r",
    9: "\\t",
    11: "\\v",
    92: "\\\\",
    34: '\\"',
  };
  let out = "";
  for (const c of b) {
    if (named[c] !== undefined) out += named[c];
    else if (c < 0x20 || c >= 0x7f) out += `\\${c.toString(8).padStart(3, "0")}`;
    else out += String.fromCharCode(c);
  }
  return out;
}

/** Streams a regular file of a commit (`ostree cat`). */
export async function cat(repo: OstreeRepo, rev: string, path: string): Promise<ByteStream> {
  const c = await repo.readCommit(await repo.resolveRev(rev));
  const node = await lookupPath(repo, c, path);
  if (node.kind !== "file")
    throw invalidArgument(`${path} is a directory`, { op: "ostree.cat", data: { path } });
  const f = await repo.loadFile(node.checksum);
  if ((f.header.mode & S_IFMT) === S_IFLNK)
    throw invalidArgument(`${path} is a symbolic link`, { op: "ostree.cat", data: { path } });
  return f.open();
}

/** A commit with its checksum and derived fields, as `ostree show` presents it. */
export interface CommitInfo {
  checksum: string;
  commit: Commit;
  contentChecksum: string;
  /** `version` metadata, if any. */
  version?: string;
  /** Detached metadata, or `null`. */
  detachedMetadata: [string, Variant][] | null;
}

/** Reads a commit for display (`ostree show`). */
export async function show(repo: OstreeRepo, rev: string): Promise<CommitInfo> {
  const checksum = await repo.resolveRev(rev);
  const commit = await repo.readCommit(checksum);
  const v = metadataValue(commit.metadata, "version");
  const info: CommitInfo = {
    checksum,
    commit,
    contentChecksum: commitContentChecksum(commit),
    detachedMetadata: await repo.readCommitMeta(checksum),
  };
  if (v && v.type === "s") info.version = v.value as string;
  return info;
}

/** The commit and its ancestors, newest first, until a parent is missing (`ostree log`). */
export async function log(
  repo: OstreeRepo,
  rev: string,
  options: OpOptions & { limit?: number } = {},
): Promise<CommitInfo[]> {
  const out: CommitInfo[] = [];
  let cur: string | null = await repo.resolveRev(rev);
  while (cur && out.length < (options.limit ?? Number.POSITIVE_INFINITY)) {
    throwIfAborted(options.signal, "ostree.log");
    if (!(await repo.hasObject(cur, "commit"))) break;
    const info = await show(repo, cur);
    out.push(info);
    cur = info.commit.parent;
  }
  return out;
}

function utcDate(ts: bigint): string {
  const d = new Date(Number(ts) * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** Renders a commit as `ostree show` / `ostree log` print it (UTC). */
export function formatCommitInfo(info: CommitInfo): string {
  const c = info.commit;
  let s = `commit ${info.checksum}\n`;
  if (c.parent) s += `Parent:  ${c.parent}\n`;
  s += `ContentChecksum:  ${info.contentChecksum}\n`;
  s += `Date:  ${utcDate(c.timestamp)}\n`;
  if (info.version !== undefined) s += `Version: ${info.version}\n`;
  const indent = (t: string) =>
    t
      .split("\n")
      .map((l) => `    ${l}\n`)
      .join("");
  if (c.subject) s += `\n${indent(c.subject)}`;
  else s += "(no subject)\n";
  if (c.body) s += `\n${indent(c.body)}`;
  return `${s}\n`;
}

/** Renders a metadata value like `ostree show --print-metadata-key`. */
export function formatMetadataValue(v: Variant): string {
  return formatVariant(v.type, v.value);
}

/** Differences between two commits (`ostree diff A B`), paths absolute. */
export interface CommitDiff {
  /** Entries whose content or metadata changed, or whose type changed (not recursed into). */
  modified: string[];
  /** In A only (a removed directory is listed once). */
  removed: string[];
  /** In B only (added directories are listed with everything below them). */
  added: string[];
}

/** Compares two commits' trees. */
export async function diff(
  repo: OstreeRepo,
  revA: string,
  revB: string,
  options: OpOptions = {},
): Promise<CommitDiff> {
  const a = await repo.readCommit(await repo.resolveRev(revA));
  const b = await repo.readCommit(await repo.resolveRev(revB));
  const out: CommitDiff = { modified: [], removed: [], added: [] };
  const addAll = async (path: string, tree: string) => {
    const t = await repo.readDirTree(tree);
    for (const f of t.files) out.added.push(joinPath(path, f.name));
    for (const d of t.dirs) {
      out.added.push(joinPath(path, d.name));
      await addAll(joinPath(path, d.name), d.tree);
    }
  };
  const walk = async (path: string, ta: string, tb: string) => {
    throwIfAborted(options.signal, "ostree.diff");
    if (ta === tb) return;
    const A = await repo.readDirTree(ta);
    const B = await repo.readDirTree(tb);
    const bFiles = new Map(B.files.map((f) => [f.name, f.checksum]));
    const bDirs = new Map(B.dirs.map((d) => [d.name, d]));
    const aNames = new Set([...A.files.map((f) => f.name), ...A.dirs.map((d) => d.name)]);
    for (const f of A.files) {
      const p = joinPath(path, f.name);
      const bf = bFiles.get(f.name);
      if (bf !== undefined) {
        if (bf !== f.checksum) out.modified.push(p);
      } else if (bDirs.has(f.name)) out.modified.push(p);
      else out.removed.push(p);
    }
    for (const d of A.dirs) {
      const p = joinPath(path, d.name);
      const bd = bDirs.get(d.name);
      if (bd) {
        if (bd.meta !== d.meta) out.modified.push(p);
        await walk(p, d.tree, bd.tree);
      } else if (bFiles.has(d.name)) out.modified.push(p);
      else out.removed.push(p);
    }
    for (const f of B.files) if (!aNames.has(f.name)) out.added.push(joinPath(path, f.name));
    for (const d of B.dirs) {
      if (aNames.has(d.name)) continue;
      out.added.push(joinPath(path, d.name));
      await addAll(joinPath(path, d.name), d.tree);
    }
  };
  if (a.rootMeta !== b.rootMeta) out.modified.push("/");
  await walk("/", a.rootTree, b.rootTree);
  return out;
}

/** Renders a diff like `ostree diff` (`M`, `D`, `A` lines). */
export function formatDiff(d: CommitDiff): string {
  return [
    ...d.modified.map((p) => `M    ${p}\n`),
    ...d.removed.map((p) => `D    ${p}\n`),
    ...d.added.map((p) => `A    ${p}\n`),
  ].join("");
}

/** Options of {@link readCommitTree}. */
export interface CommitTreeOptions extends OpOptions {
  /**
   * Give non-empty files with the same content checksum one `inode` key (as deployments
   * hard-link them; empty files stay separate, as ostree copies those). Default true.
   */
  hardlinks?: boolean;
  /** Only this subdirectory (its entry becomes the root `.`). */
  subpath?: string;
}

/**
 * A commit as a core {@link FileTree}: the root (`.`) first, then depth-first, names in byte
 * order, parents before children; file contents stream from the repository when opened.
 */
export async function* readCommitTree(
  repo: OstreeRepo,
  rev: string,
  options: CommitTreeOptions = {},
): FileTree {
  const c = await repo.readCommit(await repo.resolveRev(rev));
  const start = await lookupPath(repo, c, options.subpath ?? "/");
  if (start.kind !== "dir")
    throw invalidArgument(`${options.subpath} is not a directory`, { op: "ostree.tree" });
  const rootMeta = await repo.readDirMeta(start.meta);
  yield dirEntry(".", rootMeta);
  const hardlinks = options.hardlinks !== false;
  async function* walk(prefix: string, tree: string): FileTree {
    throwIfAborted(options.signal, "ostree.tree");
    const t = await repo.readDirTree(tree);
    const names: Node[] = [
      ...t.files.map((f) => ({ kind: "file" as const, ...f })),
      ...t.dirs.map((d) => ({ kind: "dir" as const, ...d })),
    ];
    names.sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)));
    for (const n of names) {
      const path = prefix ? `${prefix}/${n.name}` : n.name;
      if (n.kind === "dir") {
        yield dirEntry(path, await repo.readDirMeta(n.meta));
        yield* walk(path, n.tree);
        continue;
      }
      const f = await repo.loadFile(n.checksum);
      const fmt = f.header.mode & S_IFMT;
      const e: TreeEntry = {
        path,
        type: fmt === S_IFLNK ? "symlink" : "file",
        mode: f.header.mode & 0o7777,
        uid: f.header.uid,
        gid: f.header.gid,
        mtime: 0,
      };
      if (f.header.xattrs && f.header.xattrs.size > 0) e.xattrs = f.header.xattrs;
      if (fmt === S_IFLNK) e.linkTarget = f.header.symlinkTarget ?? "";
      else {
        e.size = f.size;
        // zero-sized files are never hard-linked (as in ostree deployments, which copy them)
        if (hardlinks && f.size > 0) e.inode = n.checksum;
        e.content = () => f.open();
      }
      yield e;
    }
  }
  yield* walk("", start.tree);
}

function dirEntry(
  path: string,
  m: { uid: number; gid: number; mode: number; xattrs?: Xattrs },
): TreeEntry {
  const e: TreeEntry = {
    path,
    type: "dir",
    mode: m.mode & 0o7777,
    uid: m.uid,
    gid: m.gid,
    mtime: 0,
  };
  if ((m.mode & S_IFMT) !== S_IFDIR)
    throw invalidArgument(`dirmeta of ${path} is not a directory mode`, { op: "ostree.tree" });
  if (m.xattrs && m.xattrs.size > 0) e.xattrs = m.xattrs;
  return e;
}
