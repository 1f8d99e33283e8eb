/**
 * Checking a commit out to a host directory, like `ostree checkout`: hard links to repository
 * objects where the repository mode allows it, copies otherwise; user mode; union mode; OCI
 * whiteouts.
 */
import { join } from "node:path";
import {
  ImageModeError,
  invalidArgument,
  type OpOptions,
  throwIfAborted,
  toImageModeError,
  unsupported,
} from "@imagemode/core";
import { defaultLinkWorkers, type LinkBatch, LinkWorkers } from "./internal/checkout-workers.js";
import { xattrModulePath, yieldToLoop } from "./internal/direct-io.js";
import { splitPath } from "./mutable-tree.js";
import { type DirMeta, type DirTree, decodeOstreeMeta, S_IFLNK, S_IFMT } from "./objects.js";
import { lookupPath } from "./read.js";
import type { OstreeRepo } from "./repo.js";

/** Options of {@link checkout}. */
export interface CheckoutOptions extends OpOptions {
  /**
   * `hardlink`: hard-link every file to its object (`ostree checkout -H`; `UNSUPPORTED` when the
   * repository mode does not allow it); `copy`: always copy; `auto` (default): hard links when
   * possible, copies otherwise (also on `EXDEV`).
   */
  mode?: "hardlink" | "copy" | "auto";
  /** User mode (`-U`): no chown, no xattrs, setuid/setgid bits dropped. */
  user?: boolean;
  /** Union (`--union`): the destination may exist; files in it are replaced. */
  union?: boolean;
  /**
   * Process OCI whiteouts (`--whiteouts`): `.wh.NAME` deletes `NAME`, `.wh..wh..opq` empties its
   * directory in the target first; the markers themselves are not checked out.
   */
  whiteouts?: boolean;
  /** Check out only this subpath (`--subpath`). */
  subpath?: string;
  /** Copy zero-sized files instead of hard-linking them (`--force-copy-zerosized`). */
  forceCopyZeroSized?: boolean;
  /**
   * Helper threads that make the links of a large hard-link checkout while the calling thread
   * walks the tree and makes the directories (started after the first
   * 1024 files; default: one per core beyond the first, at most 3; `0`: none). Used only on the
   * real file system (no injected `fs`).
   */
  workers?: number;
}

const CONCURRENCY = 8;
/** Synchronous operations between two turns of the event loop (hard-link fast path). */
const BATCH = 256;
/** Files of a checkout placed by the calling thread alone before helpers start. */
const HELPERS_AFTER = 1024;
/** Files in one batch given to a helper. */
const LINK_BATCH = 256;

/** Counters of a checkout. */
export interface CheckoutStats {
  files: number;
  hardlinked: number;
  copied: number;
  symlinks: number;
  dirs: number;
}

/** Checks out `rev` into `dest`. Returns what was done. */
export async function checkout(
  repo: OstreeRepo,
  rev: string,
  dest: string,
  options: CheckoutOptions = {},
): Promise<CheckoutStats> {
  if (dest === "") throw invalidArgument("empty destination", { op: "ostree.checkout" });
  if (options.subpath !== undefined) splitPath(options.subpath);
  const fs = repo.fs;
  const user = options.user ?? false;
  const mode = options.mode ?? "auto";
  const canLink =
    repo.mode === "bare"
      ? !user
      : repo.mode === "bare-user" || repo.mode === "bare-user-only"
        ? user
        : false;
  if (mode === "hardlink" && !canLink) {
    throw unsupported(
      `hard-link checkouts from a ${repo.mode} repository need ${repo.mode === "archive" ? "a bare repository" : user ? "the bare mode" : "user mode (-U)"}`,
      {
        op: "ostree.checkout",
        data: { mode: repo.mode },
      },
    );
  }
  let link = mode !== "copy" && canLink;
  const stats: CheckoutStats = { files: 0, hardlinked: 0, copied: 0, symlinks: 0, dirs: 0 };
  const c = await repo.readCommit(await repo.resolveRev(rev));
  const start = await lookupPath(repo, c, options.subpath ?? "/");
  const dirModes: [string, number][] = [];
  // The hard-link fast path: synchronous mkdir/link/symlink on the real file system (see
  // internal/direct-io.ts); anything it cannot do (a copy, a failed link) goes to placeFile.
  const direct =
    repo.direct && !options.union && !options.whiteouts && !options.forceCopyZeroSized
      ? repo.direct
      : null;
  const metaCache = new Map<string, DirMeta>();
  const dirMeta = async (csum: string): Promise<DirMeta> => {
    let m = metaCache.get(csum);
    if (!m) {
      m = await repo.readDirMeta(csum);
      metaCache.set(csum, m);
    }
    return m;
  };
  /** bare-user objects that are symlinks (their `user.ostreemeta` says so), by checksum. */
  const bareUserLinks = new Map<string, boolean>();
  let ops = 0;

  const applyOwner = async (p: string, uid: number, gid: number) => {
    if (!user) await fs.lchown(p, uid, gid);
  };
  const setXattrs = async (p: string, x: ReadonlyMap<string, Uint8Array> | undefined) => {
    if (user || !x || x.size === 0) return;
    if (!repo.xattrs)
      throw unsupported("checking out xattrs needs an xattr backend (or use user mode)", {
        op: "ostree.checkout",
      });
    for (const [k, v] of x) await repo.xattrs.set(p, k, v);
  };
  const exists = async (p: string) => {
    try {
      return await fs.lstat(p);
    } catch {
      return null;
    }
  };
  const makeDir = async (p: string, metaCsum: string, isRoot: boolean) => {
    const m = await dirMeta(metaCsum);
    if (direct) {
      try {
        direct.fs.mkdirSync(p, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST")
          throw new ImageModeError("ALREADY_EXISTS", `${p} already exists`, {
            op: "ostree.checkout",
            data: { path: p },
          });
        throw e;
      }
      if (!user) {
        direct.fs.lchownSync(p, m.uid, m.gid);
        if (m.xattrs && m.xattrs.size > 0) {
          if (!direct.xattrs)
            throw unsupported("checking out xattrs needs an xattr backend (or use user mode)", {
              op: "ostree.checkout",
            });
          for (const [k, v] of m.xattrs) direct.xattrs.set(p, k, v);
        }
      }
      dirModes.push([p, m.mode & (user ? 0o1777 : 0o7777)]);
      stats.dirs++;
      return;
    }
    const st = await exists(p);
    if (st) {
      if (!options.union || !st.isDirectory()) {
        if (!(isRoot && st.isDirectory() && options.union)) {
          throw new ImageModeError("ALREADY_EXISTS", `${p} already exists`, {
            op: "ostree.checkout",
            data: { path: p },
          });
        }
      }
      return;
    }
    await fs.mkdir(p, { mode: 0o700 });
    await applyOwner(p, m.uid, m.gid);
    await setXattrs(p, m.xattrs);
    dirModes.push([p, m.mode & (user ? 0o1777 : 0o7777)]);
    stats.dirs++;
  };
  const tryLink = async (from: string, p: string): Promise<boolean> => {
    try {
      await fs.link(from, p);
      stats.hardlinked++;
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (mode === "hardlink" || (code !== "EXDEV" && code !== "EMLINK" && code !== "EPERM"))
        throw toImageModeError(e, "ostree.checkout", { path: p });
      if (code === "EXDEV") link = false;
      return false;
    }
  };
  const placeFile = async (p: string, csum: string) => {
    if (options.union) {
      // only a union checkout can meet existing files; otherwise EEXIST → ALREADY_EXISTS below
      const st = await exists(p);
      if (st) {
        if (st.isDirectory()) await fs.rm(p, { recursive: true, force: true });
        else await fs.unlink(p);
      }
    }
    stats.files++;
    // bare / bare-user-only objects are the files themselves (symlinks included): link blindly
    if (
      link &&
      !options.forceCopyZeroSized &&
      (repo.mode === "bare" || repo.mode === "bare-user-only")
    ) {
      if (await tryLink(repo.objectFile(csum, "file"), p)) return;
    }
    const f = await repo.loadFile(csum);
    const isLink = (f.header.mode & S_IFMT) === S_IFLNK;
    // bare-user symlink objects are regular files: never link those
    if (
      link &&
      (repo.mode !== "bare-user" || !isLink) &&
      !(options.forceCopyZeroSized && f.size === 0 && !isLink)
    ) {
      if (await tryLink(f.objectPath, p)) return;
    }
    if (isLink) {
      await fs.symlink(f.header.symlinkTarget ?? "", p);
      await applyOwner(p, f.header.uid, f.header.gid);
      stats.symlinks++;
      return;
    }
    const fh = await fs.open(p, "wx", 0o600);
    try {
      let pos = 0;
      for await (const chunk of await f.open()) {
        throwIfAborted(options.signal, "ostree.checkout");
        await fh.write(chunk, 0, chunk.byteLength, pos);
        pos += chunk.byteLength;
      }
      if (!user) await fh.chown(f.header.uid, f.header.gid);
      await fh.chmod(f.header.mode & (user ? 0o1777 : 0o7777));
      await fh.utimes(0, 0);
    } finally {
      await fh.close();
    }
    await setXattrs(p, f.header.xattrs);
    stats.copied++;
  };

  /**
   * Places a file with synchronous calls when a hard link (or, for bare-user symlink objects, a
   * symlink) does it; returns false when {@link placeFile} has to (copies, failed links).
   */
  const placeFileDirect = (p: string, csum: string): boolean => {
    if (!direct || !link) return false;
    const obj = repo.objectFile(csum, "file");
    if (repo.mode === "bare-user") {
      let isLink = bareUserLinks.get(csum);
      if (isLink === undefined) {
        if (!direct.xattrs) return false;
        const meta = direct.xattrs.get(obj, "user.ostreemeta");
        if (!meta) return false;
        isLink = (decodeOstreeMeta(meta).mode & S_IFMT) === S_IFLNK;
        bareUserLinks.set(csum, isLink);
      }
      if (isLink) {
        // the object holds the target, NUL-terminated (user mode only: no chown)
        const b = direct.fs.readFileSync(obj);
        const end = b.length > 0 && b[b.length - 1] === 0 ? b.length - 1 : b.length;
        direct.fs.symlinkSync(b.subarray(0, end).toString("utf8"), p);
        stats.files++;
        stats.symlinks++;
        return true;
      }
    }
    try {
      direct.fs.linkSync(obj, p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (mode === "hardlink" || (code !== "EXDEV" && code !== "EMLINK" && code !== "EPERM"))
        throw toImageModeError(e, "ostree.checkout", { path: p });
      return false;
    }
    stats.files++;
    stats.hardlinked++;
    return true;
  };

  /** Makes the subdirectories of `t` (in `dir`), fills each with `fill`, reports `dir` as done. */
  const descend = async (
    dir: string,
    t: DirTree,
    fill: (dir: string, tree: string) => Promise<void>,
  ) => {
    for (const d of t.dirs) {
      const p = join(dir, d.name);
      await makeDir(p, d.meta, false);
      await fill(p, d.tree);
    }
    options.onProgress?.({
      type: "step",
      task: "ostree.checkout",
      step: stats.files,
      description: dir,
    });
  };

  // Large checkouts: helper threads place batches of files (whose directory exists) while this
  // thread walks and makes directories; it places a batch itself when every helper is busy.
  const helperCount =
    direct && (repo.mode !== "bare-user" || direct.xattrs)
      ? (options.workers ?? defaultLinkWorkers())
      : 0;
  let helpers = null as LinkWorkers | null;
  let seen = 0;
  let batch: LinkBatch = { paths: [], checksums: [] };
  /** Folds in what the helpers finished: counters, files sent back, the first failure. */
  const foldHelperResults = async () => {
    if (!helpers) return;
    for (const { batch: b, result: r } of helpers.takeResults()) {
      stats.files += r.hardlinked + r.symlinks;
      stats.hardlinked += r.hardlinked;
      stats.symlinks += r.symlinks;
      for (const i of r.fallback) await placeFile(b.paths[i]!, b.checksums[i]!);
      if (r.error) {
        const e = Object.assign(new Error(r.error.message), {
          code: r.error.code,
          syscall: r.error.syscall,
          path: r.error.path,
        });
        throw toImageModeError(e, "ostree.checkout", { path: b.paths[r.error.index] });
      }
    }
  };
  const placeBatch = async () => {
    const b = batch;
    batch = { paths: [], checksums: [] };
    if (link && helpers?.offer(b)) return;
    for (let i = 0; i < b.paths.length; i++)
      if (!placeFileDirect(b.paths[i]!, b.checksums[i]!))
        await placeFile(b.paths[i]!, b.checksums[i]!);
  };

  const walkDirect = async (dir: string, tree: string) => {
    throwIfAborted(options.signal, "ostree.checkout");
    const t = await repo.readDirTree(tree);
    // names in a dirtree are validated single components: no join() per file
    const base = dir.endsWith("/") ? dir : `${dir}/`;
    for (const f of t.files) {
      const p = base + f.name;
      if (helpers) {
        batch.paths.push(p);
        batch.checksums.push(f.checksum);
        if (batch.paths.length === LINK_BATCH) await placeBatch();
      } else {
        if (!placeFileDirect(p, f.checksum)) await placeFile(p, f.checksum);
        if (++seen === HELPERS_AFTER && helperCount > 0 && link && repo.mode !== "archive")
          helpers = new LinkWorkers(
            {
              objectsDir: `${join(repo.path, "objects")}/`,
              mode: repo.mode,
              xattrModule: repo.mode === "bare-user" ? xattrModulePath() : null,
              strict: mode === "hardlink",
            },
            helperCount,
          );
      }
      if (++ops % BATCH === 0) {
        await yieldToLoop();
        throwIfAborted(options.signal, "ostree.checkout");
        await foldHelperResults();
      }
    }
    await descend(dir, t, walkDirect);
  };

  const walk = async (dir: string, tree: string) => {
    throwIfAborted(options.signal, "ostree.checkout");
    const t = await repo.readDirTree(tree);
    if (options.whiteouts && t.files.some((f) => f.name === ".wh..wh..opq")) {
      // opaque directory: what the union target had here is hidden (removed) first
      for (const n of await fs.readdir(dir))
        await fs.rm(join(dir, n), { recursive: true, force: true });
    }
    const files: { name: string; checksum: string }[] = [];
    for (const f of t.files) {
      if (options.whiteouts && f.name.startsWith(".wh.")) {
        if (f.name !== ".wh..wh..opq")
          await fs.rm(join(dir, f.name.slice(4)), { recursive: true, force: true });
        continue;
      }
      files.push(f);
    }
    // files of one directory are independent: place a few at a time
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const f = files[next++]!;
        await placeFile(join(dir, f.name), f.checksum);
      }
    };
    const workers = Array.from({ length: Math.min(CONCURRENCY, files.length) }, worker);
    const results = await Promise.allSettled(workers);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    await descend(dir, t, walk);
  };

  try {
    if (start.kind === "file") {
      await placeFile(dest, start.checksum);
    } else {
      await makeDir(dest, start.meta, true);
      if (direct) {
        try {
          await walkDirect(dest, start.tree);
          if (batch.paths.length > 0) await placeBatch();
          await helpers?.drain();
          await foldHelperResults();
        } finally {
          await helpers?.close();
        }
        for (let i = dirModes.length - 1; i >= 0; i--)
          direct.fs.chmodSync(dirModes[i]![0], dirModes[i]![1]);
      } else {
        await walk(dest, start.tree);
        // modes last (a read-only directory could not be filled), deepest first
        for (let i = dirModes.length - 1; i >= 0; i--)
          await fs.chmod(dirModes[i]![0], dirModes[i]![1]);
      }
    }
  } catch (e) {
    throw toImageModeError(e, "ostree.checkout", { dest });
  }
  return stats;
}
