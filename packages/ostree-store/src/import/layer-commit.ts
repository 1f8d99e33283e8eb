/**
 * Writes one normalized layer as an OSTree commit, with exactly the tree libostree builds for
 * `ostree commit --tree=tar=… --tar-autocreate-parents` (which is what bootc runs per layer):
 * the same dirmeta for auto-created parents, the same deferred hard-link resolution, the same
 * handling of repeated directory entries. Whiteout markers stay in the layer commit; they are
 * applied when layers are merged.
 */
import {
  bytesStream,
  ImageModeError,
  invalidArgument,
  invalidState,
  type OpOptions,
  readAll,
  throwIfAborted,
  unsupported,
} from "@imagemode/core";
import type { Variant } from "../gvariant.js";
import { MutableTree, splitPath } from "../mutable-tree.js";
import {
  type DirMeta,
  encodeCommit,
  encodeDirMeta,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
} from "../objects.js";
import type { OstreeRepo, WriteStats } from "../repo.js";
import type { LayerEntry } from "./layer.js";

const OP = "ostree.import.layer";
const DEFAULT_DIRMODE = S_IFDIR | 0o755;

/** Options for {@link writeLayerTree} and {@link writeLayerCommit}. */
export interface LayerCommitOptions extends OpOptions {
  stats?: WriteStats;
}

/** The root of a written tree. */
export interface TreeRoot {
  tree: string;
  meta: string;
}

interface DeferredLink {
  parent: string[];
  name: string;
  size: number;
}

/**
 * Content writes in flight. Small files are read into memory and written concurrently (their
 * latency, not their bytes, dominates); the number of jobs and the bytes held are bounded.
 */
class WritePool {
  private readonly inflight = new Set<Promise<void>>();
  private bytes = 0;
  private error: unknown;
  private serial = 0;
  /** Placeholder → real checksum. */
  readonly resolved = new Map<string, string>();
  /** Where placeholders were put: [path, placeholder]. */
  readonly placed: Array<[string, string]> = [];

  constructor(
    private readonly maxJobs: number,
    private readonly maxBytes: number,
  ) {}

  placeholder(): string {
    return `pending:${this.serial++}`;
  }

  async submit(size: number, placeholder: string, job: () => Promise<string>): Promise<void> {
    while (
      this.inflight.size >= this.maxJobs ||
      (this.inflight.size > 0 && this.bytes + size > this.maxBytes)
    ) {
      await Promise.race(this.inflight);
    }
    if (this.error) throw this.error;
    this.bytes += size;
    const p: Promise<void> = job()
      .then(
        (c) => {
          this.resolved.set(placeholder, c);
        },
        (e: unknown) => {
          this.error ??= e;
        },
      )
      .finally(() => {
        this.bytes -= size;
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  /** Waits for every write; throws the first error. */
  async drain(): Promise<void> {
    await Promise.all([...this.inflight]);
    if (this.error) throw this.error;
  }
}

/** Files up to this size are buffered and written concurrently. */
const SMALL_FILE = 1024 * 1024;

function xattrMap(x: Array<[string, Uint8Array]>): Map<string, Uint8Array> | undefined {
  if (x.length === 0) return undefined;
  return new Map(x);
}

/**
 * Consumes normalized layer entries, writes every content object as it streams by, and returns
 * the root dirtree/dirmeta checksums. Errors are typed: a hard link to a path the layer does not
 * contain, a file replacing a directory (or the reverse), and device/fifo entries.
 */
export async function writeLayerTree(
  repo: OstreeRepo,
  entries: AsyncIterable<LayerEntry>,
  options: LayerCommitOptions = {},
): Promise<TreeRoot> {
  const root = MutableTree.create(null);
  const metaCache = new Map<string, string>();
  const writeMeta = async (m: DirMeta): Promise<string> => {
    const bytes = encodeDirMeta(m);
    const key = Buffer.from(bytes).toString("base64");
    let c = metaCache.get(key);
    if (!c) {
      c = await repo.writeMetadata("dirmeta", bytes, options.stats);
      metaCache.set(key, c);
    }
    return c;
  };
  // Deferred hard links, by target path, in the order they were seen.
  const deferred = new Map<string, DeferredLink[]>();

  /** libostree `aic_get_parent_dir` with autocreate_parents. */
  const parentDir = async (
    parts: string[],
    uid: number,
    gid: number,
    path: string,
  ): Promise<MutableTree> => {
    const parentParts = parts.slice(0, -1);
    const existing = await root.lookup(parentParts.join("/"));
    if (existing?.type === "dir") return existing.tree;
    // Not found: create every parent, and (as libostree does) reset the dirmeta of the root and
    // of every parent on the way, existing or not, to uid/gid of this entry and mode 0755.
    const meta = await writeMeta({ uid, gid, mode: DEFAULT_DIRMODE });
    await root.putDir("", meta, meta);
    let cur = root;
    for (let i = 0; i < parentParts.length; i++) {
      const sub = parentParts.slice(0, i + 1).join("/");
      const node = await root.lookup(sub);
      if (node?.type === "file") {
        throw invalidState(`Can't replace file with directory: ${sub} (while adding ${path})`, {
          op: OP,
          data: { path },
        });
      }
      cur = await root.putDir(sub, meta, meta);
    }
    return cur;
  };

  const pool = new WritePool(32, 16 * 1024 * 1024);
  try {
    for await (const e of entries) {
      throwIfAborted(options.signal, OP);
      const parts = e.path === "" ? [] : splitPath(e.path);
      if (e.type === "dir") {
        const meta = await writeMeta({
          uid: e.uid,
          gid: e.gid,
          mode: S_IFDIR | e.mode,
          ...(e.xattrs.length ? { xattrs: xattrMap(e.xattrs) } : {}),
        });
        if (parts.length === 0) {
          await root.putDir("", meta, meta);
          continue;
        }
        const parent = await parentDir(parts, e.uid, e.gid, e.path);
        const name = parts[parts.length - 1] as string;
        if ((await parent.fileEntries()).has(name)) {
          throw invalidState(`Can't replace file with directory: ${e.path}`, {
            op: OP,
            data: { path: e.path },
          });
        }
        await root.putDir(e.path, meta, meta);
        continue;
      }
      if (e.type !== "file" && e.type !== "symlink" && e.type !== "hardlink") {
        throw unsupported(`Unsupported file type for path "${e.path}" (${e.type})`, {
          op: OP,
          data: { path: e.path, type: e.type },
        });
      }
      const parent = await parentDir(parts, e.uid, e.gid, e.path);
      const name = parts[parts.length - 1] as string;
      const isLink = e.type === "hardlink";
      if (!isLink || e.size > 0) {
        if ((await parent.dirEntries()).has(name)) {
          throw invalidState(`Can't replace directory with file: ${e.path}`, {
            op: OP,
            data: { path: e.path },
          });
        }
        const xattrs = xattrMap(e.xattrs);
        // Symlinks keep the mode the archive records (libarchive's st_mode), as ostree does.
        const header =
          e.type === "symlink"
            ? {
                uid: e.uid,
                gid: e.gid,
                mode: S_IFLNK | e.mode,
                symlinkTarget: e.linkTarget ?? "",
                ...(xattrs ? { xattrs } : {}),
              }
            : { uid: e.uid, gid: e.gid, mode: S_IFREG | e.mode, ...(xattrs ? { xattrs } : {}) };
        if (e.type === "symlink" || e.size <= SMALL_FILE) {
          const body =
            e.type === "symlink"
              ? null
              : await readAll(e.content, SMALL_FILE + 1, { what: e.path });
          const ph = pool.placeholder();
          await pool.submit(body?.byteLength ?? 0, ph, () =>
            repo.writeContent(
              header,
              body ? bytesStream(body) : null,
              options.stats,
              options.signal,
              { workers: true },
            ),
          );
          await root.putFile(e.path, ph, "");
          pool.placed.push([e.path, ph]);
        } else {
          const csum = await repo.writeContent(header, e.content, options.stats, options.signal);
          await root.putFile(e.path, csum, "");
        }
      }
      if (isLink) {
        const target = e.hardlinkTarget as string;
        const list = deferred.get(target) ?? [];
        list.push({ parent: parts.slice(0, -1), name, size: e.size });
        deferred.set(target, list);
      }
    }
  } finally {
    await pool.drain().catch(() => undefined);
  }
  await pool.drain();
  for (const [path, ph] of pool.placed) {
    const node = await root.lookup(path);
    const real = pool.resolved.get(ph);
    if (node?.type === "file" && node.checksum === ph && real) await root.putFile(path, real, "");
  }

  // libostree `aic_import_deferred_hardlinks`.
  for (const [target, links] of deferred) {
    const payload = links.find((l) => l.size > 0);
    if (payload) {
      const p = await root.lookup([...payload.parent, payload.name].join("/"));
      if (p?.type !== "file") throw invalidState(`hard link ${payload.name} vanished`, { op: OP });
      const tparts = splitPath(target);
      const tparent = await root.lookup(tparts.slice(0, -1).join("/"));
      if (tparent?.type !== "dir") throw missingTarget(target);
      await root.putFile(target, p.checksum, "");
    }
    const t = await root.lookup(target);
    if (!t) throw missingTarget(target);
    if (t.type !== "file") {
      throw new ImageModeError(
        "INVALID_ARGUMENT",
        `Expected hardlink file target at "${target}" but found a directory`,
        { op: OP, data: { target } },
      );
    }
    for (const l of links) {
      if (l === payload) continue;
      await root.putFile([...l.parent, l.name].join("/"), t.checksum, "");
    }
  }

  if (root.meta === null) {
    root.meta = await writeMeta({ uid: 0, gid: 0, mode: DEFAULT_DIRMODE });
  }
  return root.write(repo, options.stats);
}

function missingTarget(target: string): ImageModeError {
  return invalidArgument(`hard link to a path not in the layer: ${target}`, {
    op: OP,
    data: { target },
  });
}

/** Fields of a commit the importer writes. */
export interface CommitFields {
  metadata?: [string, Variant][];
  parent?: string | null;
  subject?: string;
  body?: string;
  /** Seconds since the epoch. */
  timestamp: number;
}

/** Writes a commit object for a tree and returns its checksum (no ref is touched). */
export async function writeCommitObject(
  repo: OstreeRepo,
  root: TreeRoot,
  fields: CommitFields,
  stats?: WriteStats,
): Promise<string> {
  const bytes = encodeCommit({
    metadata: fields.metadata ?? [],
    parent: fields.parent ?? null,
    related: [],
    subject: fields.subject ?? "",
    body: fields.body ?? "",
    timestamp: BigInt(fields.timestamp),
    rootTree: root.tree,
    rootMeta: root.meta,
  });
  return repo.writeMetadata("commit", bytes, stats);
}
