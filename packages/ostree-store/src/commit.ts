/**
 * Writing trees and commits: a {@link FileTree} (host directory, tar stream, anything) is
 * streamed into content objects and a {@link MutableTree}, then dirtrees and the commit.
 * Same inputs and options as `ostree commit` give the same checksums.
 */
import { join } from "node:path";
import {
  type FileTree,
  invalidArgument,
  notFound,
  type OpOptions,
  readHostDirectory,
  S_IF,
  type TreeEntry,
  throwIfAborted,
  toImageModeError,
  unsupported,
} from "@imagemode/core";
import { Variant } from "./gvariant.js";
import { gHashTableOrder } from "./internal/ghash-order.js";
import { readHostTreeDirect } from "./internal/host-tree.js";
import { MutableTree, splitPath } from "./mutable-tree.js";
import {
  canonicalMode,
  type DirMeta,
  encodeCommit,
  encodeDirMeta,
  type FileHeader,
  isChecksum,
  sha256Hex,
  type Xattrs,
} from "./objects.js";
import { validateRefName } from "./refs.js";
import type { OstreeRepo } from "./repo.js";
import { emptyStats, type WriteStats } from "./stats.js";

/** How entries are turned into objects (the `ostree commit` flags of the same names). */
export interface WriteTreeOptions extends OpOptions {
  /** `--owner-uid`: force this uid on every entry. */
  ownerUid?: number;
  /** `--owner-gid`: force this gid on every entry. */
  ownerGid?: number;
  /** `--canonical-permissions`: uid/gid 0, modes masked with 0755, no xattrs. */
  canonicalPermissions?: boolean;
  /** `--no-xattrs`: drop all xattrs. */
  noXattrs?: boolean;
  /**
   * Interpret OCI whiteouts: `.wh.NAME` removes `NAME`, `.wh..wh..opq` empties its directory
   * (for layering onto an existing tree with {@link applyTree}). Default false.
   */
  whiteouts?: boolean;
  /** Dirmeta for directories that must be created but have no entry (default 0/0/0755, after owner overrides). */
  defaultDirMeta?: DirMeta;
  /** Counters to add to (a fresh set is returned otherwise). */
  stats?: WriteStats;
  /**
   * How many content objects may be written at once (default 1). Only for trees whose file
   * contents can be opened in any order (host directories, commits) — never tar streams.
   * `commit({ tree: { dir } })` uses 32.
   */
  concurrency?: number;
}

/** Result of writing a tree. */
export interface WriteTreeResult {
  /** Root dirtree checksum. */
  tree: string;
  /** Root dirmeta checksum. */
  meta: string;
  /** The tree in memory (checksums only), for further changes. */
  mtree: MutableTree;
  stats: WriteStats;
}

function xattrsFor(entry: TreeEntry, o: InternalOptions): Xattrs | undefined {
  if (o.noXattrs || o.canonicalPermissions || o.repoMode === "bare-user-only") return undefined;
  return entry.xattrs;
}

interface InternalOptions extends WriteTreeOptions {
  repoMode?: string;
}

function ownership(
  entry: { uid: number; gid: number },
  o: InternalOptions,
): { uid: number; gid: number } {
  if (o.canonicalPermissions || o.repoMode === "bare-user-only") return { uid: 0, gid: 0 };
  return { uid: o.ownerUid ?? entry.uid, gid: o.ownerGid ?? entry.gid };
}

function fullMode(entry: TreeEntry, o: InternalOptions): number {
  const m = S_IF[entry.type] | (entry.mode & 0o7777);
  return o.canonicalPermissions || o.repoMode === "bare-user-only" ? canonicalMode(m) : m;
}

/** The dirmeta an entry of type `dir` gives under the options. */
export function dirMetaFor(
  entry: TreeEntry,
  options: WriteTreeOptions & { repoMode?: string },
): DirMeta {
  return {
    ...ownership(entry, options),
    mode: fullMode(entry, options),
    xattrs: xattrsFor(entry, options),
  };
}

/** The content header a file or symlink entry gives under the options. */
export function fileHeaderFor(
  entry: TreeEntry,
  options: WriteTreeOptions & { repoMode?: string },
): FileHeader {
  return {
    ...ownership(entry, options),
    mode: fullMode(entry, options),
    rdev: 0,
    symlinkTarget: entry.type === "symlink" ? (entry.linkTarget ?? "") : "",
    xattrs: xattrsFor(entry, options),
  };
}

/**
 * Streams a {@link FileTree} into the repository on top of `mtree` (overlay semantics: files
 * replace what is at their path, directories update their dirmeta and keep their content,
 * whiteouts delete when enabled). Content is read entry by entry, in order, so tar-backed
 * trees work. Devices, fifos and sockets are refused with `UNSUPPORTED` naming the path.
 */
export async function applyTree(
  repo: OstreeRepo,
  mtree: MutableTree,
  tree: FileTree,
  options: WriteTreeOptions = {},
): Promise<WriteStats> {
  const o: InternalOptions = { ...options, repoMode: repo.mode };
  const stats = options.stats ?? emptyStats();
  const defaultMeta = options.defaultDirMeta ?? {
    ...ownership({ uid: 0, gid: 0 }, o),
    mode: 0o40755,
  };
  const defaultMetaCsum = await repo.writeMetadata("dirmeta", encodeDirMeta(defaultMeta), stats);
  if (mtree.meta === null) mtree.meta = defaultMetaCsum;
  const metaCache = new Map<string, string>();
  const writeMeta = async (m: DirMeta) => {
    const bytes = encodeDirMeta(m);
    const key = Buffer.from(bytes).toString("base64");
    let c = metaCache.get(key);
    if (!c) {
      c = await repo.writeMetadata("dirmeta", bytes, stats);
      metaCache.set(key, c);
    }
    return c;
  };
  let count = 0;
  // Content objects may be written concurrently (`concurrency` > 1, for trees whose contents
  // can be opened in any order); tree changes are always applied in entry order.
  const window = Math.max(1, options.concurrency ?? 1);
  const pending: { done: Promise<string | null>; apply: (csum: string | null) => Promise<void> }[] =
    [];
  const settle = async (keep: number) => {
    while (pending.length > keep) {
      const p = pending.shift()!;
      await p.apply(await p.done);
    }
  };
  const byInodeP = new Map<string, Promise<string>>();
  try {
    for await (const entry of tree) {
      throwIfAborted(options.signal, "ostree.commit");
      const path = entry.path === "." ? "" : entry.path;
      const parts = splitPath(path);
      const name = parts[parts.length - 1];
      if (options.whiteouts && name?.startsWith(".wh.")) {
        const parent = parts.slice(0, -1).join("/");
        let apply: () => Promise<void>;
        if (name === ".wh..wh..opq") {
          apply = async () => {
            await mtree.ensureDir(parent, defaultMetaCsum);
            await mtree.clear(parent);
          };
        } else {
          const target = name.slice(4);
          if (target === "" || target === "." || target === "..")
            throw invalidArgument(`invalid whiteout ${entry.path}`, {
              op: "ostree.commit",
              data: { path: entry.path },
            });
          apply = async () => {
            await mtree.remove(parent ? `${parent}/${target}` : target);
          };
        }
        pending.push({ done: Promise.resolve(null), apply });
        await settle(window - 1);
        continue;
      }
      switch (entry.type) {
        case "dir": {
          const meta = await writeMeta(dirMetaFor(entry, o));
          pending.push({
            done: Promise.resolve(meta),
            apply: async (m) => {
              await mtree.putDir(path, m!, defaultMetaCsum);
            },
          });
          break;
        }
        case "file":
        case "symlink": {
          if (path === "")
            throw invalidArgument("the root of a tree must be a directory", {
              op: "ostree.commit",
            });
          let done = entry.inode !== undefined ? byInodeP.get(entry.inode) : undefined;
          if (done === undefined) {
            const header = fileHeaderFor(entry, o);
            if (entry.type === "symlink") {
              if (!entry.linkTarget)
                throw invalidArgument(`symlink ${entry.path} has no target`, {
                  op: "ostree.commit",
                  data: { path: entry.path },
                });
              done = repo.writeContent(header, null, stats, options.signal);
            } else {
              if (!entry.content && (entry.size ?? 0) !== 0)
                throw invalidArgument(`file ${entry.path} has no content`, {
                  op: "ostree.commit",
                  data: { path: entry.path },
                });
              const open = entry.content;
              done = (async () =>
                repo.writeContent(header, open ? await open() : null, stats, options.signal, {
                  workers: window > 1,
                }))();
            }
            if (entry.inode !== undefined) byInodeP.set(entry.inode, done);
          }
          // an unhandled rejection must not escape while the promise waits in the window
          done.catch(() => undefined);
          pending.push({
            done,
            apply: async (csum) => {
              await mtree.putFile(path, csum!, defaultMetaCsum);
            },
          });
          break;
        }
        default:
          throw unsupported(
            `${entry.path}: ${entry.type} files cannot be stored in an OSTree repository`,
            {
              op: "ostree.commit",
              data: { path: entry.path, type: entry.type },
            },
          );
      }
      await settle(window - 1);
      count++;
      if (options.onProgress && count % 256 === 0)
        options.onProgress({
          type: "step",
          task: "ostree.commit",
          step: count,
          description: entry.path,
        });
    }
    await settle(0);
  } catch (e) {
    // let in-flight writes finish (they clean up their temp files) before reporting
    await Promise.allSettled(pending.map((p) => p.done));
    throw e;
  }
  return stats;
}

/** Writes a whole {@link FileTree} as a new tree; returns the root checksums. */
export async function writeTree(
  repo: OstreeRepo,
  tree: FileTree,
  options: WriteTreeOptions = {},
): Promise<WriteTreeResult> {
  const mtree = MutableTree.create();
  const stats = options.stats ?? emptyStats();
  await applyTree(repo, mtree, tree, { ...options, stats });
  const r = await mtree.write(repo, stats);
  return { ...r, mtree, stats };
}

/** Options for reading a host directory the way `ostree commit --tree=dir=` does. */
export interface WriteDirectoryOptions extends WriteTreeOptions {}

/** Reads a host directory (root included, xattrs unless disabled) as the `FileTree` ostree commits. */
export async function* hostDirectoryTree(
  repo: OstreeRepo,
  dir: string,
  options: WriteDirectoryOptions = {},
): FileTree {
  const wantX = !(
    options.noXattrs ||
    options.canonicalPermissions ||
    repo.mode === "bare-user-only"
  );
  if (repo.direct) {
    // the real file system: synchronous reads (same entries, same order; see internal/host-tree.ts)
    yield* readHostTreeDirect(repo.direct, dir, {
      xattrs: wantX && repo.direct.xattrs !== null,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return;
  }
  for await (const e of readHostDirectory(dir, {
    includeRoot: true,
    xattrs: wantX ? repo.xattrs : null,
    signal: options.signal,
  })) {
    if (e.type === "file" && e.size !== undefined && e.size <= SMALL_FILE) {
      // small files are read with one read (bounded: SMALL_FILE bytes per file in flight)
      const abs = join(dir, e.path);
      e.content = async () => oneChunk(await repo.fs.readFile(abs));
    }
    yield e;
  }
}

const SMALL_FILE = 512 * 1024;

async function* oneChunk(b: Uint8Array): AsyncIterable<Uint8Array> {
  if (b.byteLength > 0) yield b;
}

/** Commit metadata and identity. */
export interface CommitOptions extends WriteTreeOptions {
  /** The tree: a `FileTree`, a host directory path, a {@link MutableTree}, or root checksums. */
  tree: FileTree | { dir: string } | MutableTree | { tree: string; meta: string };
  /** Branch to update (and to take the default parent from). */
  branch?: string;
  /** Parent commit; default: the branch's current commit; `null`: none. */
  parent?: string | null;
  subject?: string;
  body?: string;
  /** Seconds since the epoch (or a Date); default now. */
  timestamp?: number | bigint | Date;
  /**
   * Commit metadata in order (`--add-metadata-string=K=V` → `["K", new Variant("s", V)]`).
   * A plain object is taken in key order; plain strings become `s` variants.
   */
  metadata?: Iterable<readonly [string, Variant]> | Record<string, string | Variant>;
  /** Adds `version` (like `--add-metadata-string=version=…`, after `metadata`). */
  version?: string;
  /**
   * Adds `ostree.ref-binding` (the sorted list of `branch` and `bindRefs`; empty without a
   * branch) after the other metadata, then `ostree.collection-binding` when the repository has
   * a `core.collection-id` — exactly as `ostree commit` does unless `--no-bindings`.
   * Default true; `false` is `--no-bindings`.
   */
  refBinding?: boolean;
  /** Extra refs to bind the commit to (`--bind-ref`). */
  bindRefs?: string[];
  /**
   * Marks the commit bootable like `ostree commit --bootable`: adds `ostree.bootable` (true) and
   * `ostree.linux` (the kernel version, see {@link findKernelVersion}) and, as the CLI does,
   * re-orders all metadata keys in GLib hash-table order.
   */
  bootable?: { linux: string };
  /** Detached metadata written to `.commitmeta`. */
  detachedMetadata?: Iterable<readonly [string, Variant]> | Record<string, string | Variant>;
}

/** Result of {@link commit}. */
export interface CommitResult {
  /** The commit checksum. */
  commit: string;
  /** Root dirtree and dirmeta. */
  tree: string;
  meta: string;
  parent: string | null;
  stats: WriteStats;
}

function metadataEntries(md: CommitOptions["metadata"]): [string, Variant][] {
  if (!md) return [];
  const entries: Iterable<readonly [string, unknown]> =
    Symbol.iterator in (md as object)
      ? (md as Iterable<readonly [string, Variant]>)
      : Object.entries(md);
  return [...entries].map(([k, v]) => [k, v instanceof Variant ? v : new Variant("s", String(v))]);
}

/** Converts a timestamp option to seconds. */
function toSeconds(ts: CommitOptions["timestamp"], now: () => number): bigint {
  if (ts === undefined) return BigInt(Math.floor(now() / 1000));
  if (ts instanceof Date) return BigInt(Math.floor(ts.getTime() / 1000));
  return BigInt(ts);
}

/**
 * Writes a commit (objects first, the commit object next, the branch ref last) under the repo
 * lock. A crash at any point leaves a repository `ostree fsck` accepts.
 */
export async function commit(repo: OstreeRepo, options: CommitOptions): Promise<CommitResult> {
  const release = await repo.lock();
  try {
    // temp files of crashed writers (dead pids) are removed before anything new is written
    await repo.cleanupTmp();
    const stats = options.stats ?? emptyStats();
    let root: { tree: string; meta: string };
    const t = options.tree;
    if (t instanceof MutableTree) root = await t.write(repo, stats);
    else if (typeof t === "object" && "tree" in t && "meta" in t && typeof t.tree === "string") {
      if (!isChecksum(t.tree) || !isChecksum(t.meta))
        throw invalidArgument("invalid root checksums", { op: "ostree.commit" });
      root = { tree: t.tree, meta: t.meta };
    } else if (typeof t === "object" && "dir" in t && typeof t.dir === "string") {
      root = await writeTree(repo, hostDirectoryTree(repo, t.dir, options), {
        concurrency: 32,
        ...options,
        stats,
      });
    } else root = await writeTree(repo, t as FileTree, { ...options, stats });

    if (options.branch !== undefined) validateRefName(options.branch);
    let parent: string | null;
    if (options.parent !== undefined)
      parent = options.parent === null ? null : await repo.resolveRev(options.parent);
    else parent = options.branch !== undefined ? await repo.readRef(options.branch) : null;

    const metadata = metadataEntries(options.metadata);
    if (options.version !== undefined)
      metadata.push(["version", new Variant("s", options.version)]);
    if (options.refBinding !== false) {
      const refs = [
        ...new Set([
          ...(options.branch !== undefined ? [options.branch] : []),
          ...(options.bindRefs ?? []),
        ]),
      ];
      for (const r of refs) validateRefName(r);
      refs.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      metadata.push(["ostree.ref-binding", new Variant("as", refs)]);
      // like the CLI: a repository collection ID binds the commit too (unless already given)
      const collection = repo.config.get("core")?.get("collection-id");
      if (collection && !metadata.some(([k]) => k === "ostree.collection-binding")) {
        metadata.push(["ostree.collection-binding", new Variant("s", collection)]);
      }
    }
    if (options.bootable) {
      // like `ostree commit --bootable`: the metadata goes through a GVariantDict (a GHashTable),
      // the bootable keys are added, and the dict's iteration order becomes the stored order
      // A key given twice keeps its first slot and takes the last value (g_hash_table_insert).
      const values = new Map<string, Variant>();
      for (const [k, v] of metadata) values.set(k, v);
      values.set("ostree.bootable", new Variant("b", true));
      values.set("ostree.linux", new Variant("s", options.bootable.linux));
      const order = gHashTableOrder([...values.keys()]);
      metadata.splice(
        0,
        metadata.length,
        ...order.map((k): [string, Variant] => [k, values.get(k)!]),
      );
    }

    const bytes = encodeCommit({
      metadata,
      parent,
      related: [],
      subject: options.subject ?? "",
      body: options.body ?? "",
      timestamp: toSeconds(options.timestamp, repo.now),
      rootTree: root.tree,
      rootMeta: root.meta,
    });
    const csum = sha256Hex(bytes);
    const detached = metadataEntries(options.detachedMetadata);
    if (detached.length > 0) await repo.writeCommitMeta(csum, detached);
    await repo.writeMetadata("commit", bytes, stats);
    if (options.branch !== undefined) await repo.setRef(options.branch, csum);
    options.onProgress?.({ type: "done", task: "ostree.commit", description: csum });
    return { commit: csum, tree: root.tree, meta: root.meta, parent, stats };
  } finally {
    await release();
  }
}

/**
 * The kernel version of a tree as `ostree commit --bootable` finds it: the one directory of
 * `usr/lib/modules/` that holds a `vmlinuz` (`NOT_FOUND` if none, `INVALID_ARGUMENT` if several).
 */
export async function findKernelVersion(dir: string): Promise<string> {
  const { readdir, lstat } = await import("node:fs/promises");
  const modules = join(dir, "usr/lib/modules");
  let found: string | undefined;
  let names: string[];
  try {
    names = await readdir(modules);
  } catch (e) {
    throw toImageModeError(e, "ostree.commit", { path: modules });
  }
  for (const n of names) {
    const st = await lstat(join(modules, n));
    if (!st.isDirectory()) continue;
    const k = await lstat(join(modules, n, "vmlinuz")).catch(() => null);
    if (!k) continue;
    if (found !== undefined)
      throw invalidArgument("Multiple kernels found in /usr/lib/modules", { op: "ostree.commit" });
    found = n;
  }
  if (found === undefined)
    throw notFound("No kernel found in /usr/lib/modules", {
      op: "ostree.commit",
      data: { path: modules },
    });
  return found;
}
