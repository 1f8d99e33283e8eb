/**
 * An OSTree repository on disk: layout, `config`, refs, the lock, and atomic object I/O in
 * every mode (`archive`, `bare`, `bare-user`, `bare-user-only`).
 */
import { createHash, randomBytes } from "node:crypto";
import * as nodeFsp from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync } from "node:zlib";
import {
  type ByteStream,
  type FileTree,
  ImageModeError,
  invalidArgument,
  loadXattrBackend,
  notFound,
  type OpOptions,
  parseError,
  toImageModeError,
  unsupported,
  type XattrBackend,
} from "@imagemode/core";
import { type CheckoutOptions, type CheckoutStats, checkout } from "./checkout.js";
import {
  applyTree,
  type CommitOptions,
  type CommitResult,
  commit,
  type WriteTreeOptions,
  type WriteTreeResult,
  writeTree,
} from "./commit.js";
import type { Variant } from "./gvariant.js";
import { type DirectIo, loadDirectIo, xattrModulePath } from "./internal/direct-io.js";
import { defaultObjectWorkers, type ObjectJob, ObjectWorkers } from "./internal/object-workers.js";
import {
  type FsckOptions,
  type FsckResult,
  fsck,
  type PruneOptions,
  type PrunePlan,
  planPrune,
  prune,
  type RepoStats,
  repoStats,
} from "./maintain.js";
import type { MutableTree } from "./mutable-tree.js";
import {
  type Commit,
  contentChecksumPrefix,
  type DirMeta,
  type DirTree,
  decodeArchiveHeader,
  decodeCommit,
  decodeCommitMeta,
  decodeDirMeta,
  decodeDirTree,
  decodeOstreeMeta,
  encodeArchiveHeader,
  encodeCommitMeta,
  encodeDirMeta,
  encodeOstreeMeta,
  type FileHeader,
  isChecksum,
  OBJECT_EXT,
  type ObjectType,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  sha256Hex,
} from "./objects.js";
import {
  type CommitDiff,
  type CommitInfo,
  type CommitTreeOptions,
  cat,
  diff,
  type LsEntry,
  type LsOptions,
  log,
  ls,
  readCommitTree,
  show,
} from "./read.js";
import { REF_RE, validateRefName } from "./refs.js";
import type { WriteStats } from "./stats.js";

/** Repository modes. `archive` is written to `config` as `archive-z2`, as `ostree init` does. */
export type RepoMode = "archive" | "bare" | "bare-user" | "bare-user-only";

/**
 * The file-system functions the repository uses (a subset of `node:fs/promises`). Inject a
 * wrapper to observe or fail operations (the crash tests do).
 */
export type RepoFs = Pick<
  typeof nodeFsp,
  | "mkdir"
  | "open"
  | "rename"
  | "unlink"
  | "rm"
  | "rmdir"
  | "readdir"
  | "readFile"
  | "writeFile"
  | "lstat"
  | "stat"
  | "link"
  | "symlink"
  | "readlink"
  | "chmod"
  | "lchown"
  | "lutimes"
  | "copyFile"
>;

/** Options for opening or creating a repository. */
export interface RepoOptions {
  /** File-system implementation (default `node:fs/promises`). */
  fs?: RepoFs;
  /** Xattr backend (default: core's `loadXattrBackend()`); `null` disables xattrs. */
  xattrs?: XattrBackend | null;
  /** fsync objects and refs before they are renamed into place (default true, like ostree). */
  fsync?: boolean;
  /** Wall clock in milliseconds, used for default commit timestamps (default `Date.now`). */
  now?: () => number;
  /**
   * Worker threads that hash, compress (archive) and write content objects whose payload is in
   * memory (small files: most of a root tree). Default: one per core, at most 4, when the
   * repository uses the real file system; `0` writes every object on the main thread. Ignored
   * when `fs` or `xattrs` is injected.
   */
  workers?: number;
}

/** Options for {@link OstreeRepo.init}. */
export interface InitOptions extends RepoOptions {
  mode: RepoMode;
}

export { validateRefName } from "./refs.js";
export { emptyStats, type WriteStats } from "./stats.js";

/** A content object opened for reading. */
export interface LoadedFile {
  header: FileHeader;
  /** Payload size (0 for symlinks). */
  size: number;
  /** Path of the object file in the repo (for hard links). */
  objectPath: string;
  /** Streams the uncompressed payload. */
  open(): Promise<ByteStream>;
}

const MAX_METADATA = 20 * 1024 * 1024;
/** Archive objects up to this size are read with one read. */
const SMALL_OBJECT = 64 * 1024;
/** ...and inflated in memory when their payload is at most this large. */
const MAX_INFLATE_IN_MEMORY = 4 * 1024 * 1024;
const OP = "ostree.repo";

/** The directories `ostree init` creates inside a repository, parents first. */
export const REPO_DIRECTORIES: readonly string[] = [
  "extensions",
  "objects",
  "refs",
  "refs/heads",
  "refs/mirrors",
  "refs/remotes",
  "state",
  "tmp",
  "tmp/cache",
];

/** The exact bytes `ostree init` writes to `config`. */
export function configText(mode: RepoMode): string {
  return `[core]\nrepo_version=1\nmode=${mode === "archive" ? "archive-z2" : mode}\n`;
}

/** Parses a GKeyFile (INI) as ostree's `config` uses it. */
export function parseKeyFile(text: string): Map<string, Map<string, string>> {
  const groups = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const g = /^\[(.+)\]$/.exec(line);
    if (g) {
      cur = groups.get(g[1]!) ?? new Map();
      groups.set(g[1]!, cur);
      continue;
    }
    const eq = line.indexOf("=");
    if (!cur || eq < 0)
      throw parseError(`invalid line in repo config: ${JSON.stringify(raw)}`, { op: OP });
    cur.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return groups;
}

/** Where a ref lives: a local head or a remote's ref. */
export interface RefName {
  name: string;
  /** Remote name for `refs/remotes/<remote>/<name>`. */
  remote?: string;
}

/**
 * An OSTree repository. Create one with {@link OstreeRepo.init} or {@link OstreeRepo.open}.
 * Every object and ref write is atomic (temp file in `tmp/`, then rename).
 */
export class OstreeRepo {
  /** The repository directory. */
  readonly path: string;
  /** The repository mode. */
  readonly mode: RepoMode;
  /** The parsed `config`. */
  readonly config: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** The file system in use. */
  readonly fs: RepoFs;
  /** The xattr backend in use (`null`: none). */
  readonly xattrs: XattrBackend | null;
  /** Whether writes are fsynced. */
  readonly fsync: boolean;
  /** Wall clock (ms). */
  readonly now: () => number;
  /**
   * Synchronous I/O for the hot paths (object writes, hard-link checkouts), or `null` when a
   * file system or an xattr backend was injected (then every call goes through those).
   * Internal: not part of the stable API.
   */
  readonly direct: DirectIo | null;
  private readonly objectWorkers: ObjectWorkers | null;
  private lockDepth = 0;
  private releaseLock: (() => Promise<void>) | null = null;

  private constructor(
    path: string,
    mode: RepoMode,
    config: Map<string, Map<string, string>>,
    options: RepoOptions,
  ) {
    this.path = path;
    this.mode = mode;
    this.config = config;
    this.fs = options.fs ?? nodeFsp;
    this.xattrs = options.xattrs === undefined ? loadXattrBackend() : options.xattrs;
    this.fsync = options.fsync ?? true;
    this.now = options.now ?? Date.now;
    this.objectsDir = `${join(path, "objects")}/`;
    this.direct =
      options.fs === undefined && (options.xattrs === undefined || options.xattrs === null)
        ? loadDirectIo(options.xattrs === undefined && this.xattrs !== null)
        : null;
    const nWorkers = options.workers ?? defaultObjectWorkers();
    const xattrModule = this.direct?.xattrs ? xattrModulePath() : null;
    this.objectWorkers =
      this.direct && nWorkers > 0 && (mode !== "bare-user" || xattrModule !== null)
        ? new ObjectWorkers(
            { objectsDir: join(path, "objects"), mode, fsync: this.fsync, xattrModule },
            nWorkers,
          )
        : null;
  }

  /**
   * Creates a repository like `ostree init --mode=…` (no-op on an existing repository; the
   * parent directory must exist). Bare-user needs an xattr backend (`UNSUPPORTED` otherwise).
   */
  static async init(path: string, options: InitOptions): Promise<OstreeRepo> {
    const fs = options.fs ?? nodeFsp;
    const xattrs = options.xattrs === undefined ? loadXattrBackend() : options.xattrs;
    if (options.mode === "bare-user" && !xattrs) {
      throw unsupported("bare-user repositories need an xattr backend (install @napi-rs/xattr)", {
        op: "ostree.init",
        data: { path },
      });
    }
    try {
      await fs.stat(join(path, "config"));
      return await OstreeRepo.open(path, options);
    } catch (e) {
      if (!(e instanceof Error && "code" in e && (e as NodeJS.ErrnoException).code === "ENOENT"))
        throw toImageModeError(e, "ostree.init", { path });
    }
    try {
      await fs.mkdir(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "EEXIST") throw e;
      });
      for (const d of REPO_DIRECTORIES) {
        await fs.mkdir(join(path, d), { recursive: true });
      }
      await atomicWrite(
        fs,
        join(path, "tmp"),
        join(path, "config"),
        new TextEncoder().encode(configText(options.mode)),
        options.fsync ?? true,
      );
    } catch (e) {
      throw toImageModeError(e, "ostree.init", { path });
    }
    return OstreeRepo.open(path, options);
  }

  /** Opens an existing repository (any mode ostree 2022.7 writes, plus reading `bare-user-only`). */
  static async open(path: string, options: RepoOptions = {}): Promise<OstreeRepo> {
    const fs = options.fs ?? nodeFsp;
    let text: string;
    try {
      text = await fs.readFile(join(path, "config"), "utf8");
    } catch (e) {
      throw toImageModeError(e, "ostree.open", { path });
    }
    const config = parseKeyFile(text);
    const core = config.get("core");
    if (!core) throw parseError(`${path}/config has no [core] group`, { op: "ostree.open" });
    if (core.get("repo_version") !== "1")
      throw unsupported(`invalid repository version ${core.get("repo_version")}`, {
        op: "ostree.open",
      });
    if (core.has("archive"))
      throw unsupported("legacy archive=true repositories are not supported", {
        op: "ostree.open",
      });
    const m = core.get("mode") ?? "bare";
    const mode: RepoMode | undefined =
      m === "archive-z2" || m === "archive"
        ? "archive"
        : m === "bare" || m === "bare-user" || m === "bare-user-only"
          ? m
          : undefined;
    if (!mode)
      throw unsupported(`repository mode ${m} is not supported`, {
        op: "ostree.open",
        data: { mode: m },
      });
    const repo = new OstreeRepo(path, mode, config, options);
    if (mode === "bare-user" && !repo.xattrs) {
      throw unsupported("bare-user repositories need an xattr backend (install @napi-rs/xattr)", {
        op: "ostree.open",
        data: { path },
      });
    }
    await fs.mkdir(join(path, "tmp", "cache"), { recursive: true }).catch(() => undefined);
    return repo;
  }

  /** Absolute path of an object file. */
  objectFile(checksum: string, type: ObjectType): string {
    const ext = type === "file" && this.mode === "archive" ? "filez" : OBJECT_EXT[type];
    // = join(this.path, objectPath(checksum, ext)) without normalizing the path on every call
    return `${this.objectsDir}${checksum.slice(0, 2)}/${checksum.slice(2)}.${ext}`;
  }

  /** `<repo>/objects/`, normalized once. */
  private readonly objectsDir: string;

  /** True when the object is present. */
  async hasObject(checksum: string, type: ObjectType): Promise<boolean> {
    if (this.direct) return this.hasObjectSync(checksum, type);
    try {
      await this.fs.lstat(this.objectFile(checksum, type));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw toImageModeError(e, OP);
    }
  }

  private hasObjectSync(checksum: string, type: ObjectType): boolean {
    try {
      return (
        this.direct!.fs.lstatSync(this.objectFile(checksum, type), { throwIfNoEntry: false }) !==
        undefined
      );
    } catch (e) {
      throw toImageModeError(e, OP);
    }
  }

  /** A new unique temp path inside `tmp/` (name carries the pid so stale ones can be cleaned). */
  tmpPath(): string {
    return join(this.path, "tmp", `${this.tmpPrefix}${(this.tmpSerial++).toString(16)}`);
  }

  private readonly tmpPrefix = `imagemode-${process.pid}-${randomBytes(6).toString("hex")}`;
  private tmpSerial = 0;

  // ───────────── metadata objects ─────────────

  /** Reads the raw bytes of a metadata object (`NOT_FOUND` when absent). */
  async readMetadata(type: Exclude<ObjectType, "file">, checksum: string): Promise<Uint8Array> {
    if (!isChecksum(checksum))
      throw invalidArgument(`invalid checksum ${JSON.stringify(checksum)}`, { op: OP });
    const p = this.objectFile(checksum, type);
    try {
      if (this.direct) return this.readSmallFileSync(p, MAX_METADATA, `${type} object ${checksum}`);
      const st = await this.fs.stat(p);
      if (st.size > MAX_METADATA)
        throw parseError(`${type} object ${checksum} is larger than ${MAX_METADATA} bytes`, {
          op: OP,
        });
      const b = await this.fs.readFile(p);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw notFound(`no ${type} object ${checksum} in ${this.path}`, {
          op: OP,
          data: { checksum, type },
        });
      }
      throw toImageModeError(e, OP, { checksum, type });
    }
  }

  /** Reads a whole file of at most `limit` bytes with synchronous calls (`PARSE` if larger). */
  private readSmallFileSync(p: string, limit: number, what: string): Uint8Array {
    const fs = this.direct!.fs;
    const fd = fs.openSync(p, "r");
    try {
      const size = fs.fstatSync(fd).size;
      if (size > limit) throw parseError(`${what} is larger than ${limit} bytes`, { op: OP });
      const b = Buffer.allocUnsafe(size);
      let off = 0;
      while (off < size) {
        const n = fs.readSync(fd, b, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      return new Uint8Array(b.buffer, b.byteOffset, off);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Writes a metadata object atomically and returns its checksum (SHA-256 of the bytes;
   * `commitmeta` is named after its commit, pass `checksum`).
   */
  async writeMetadata(
    type: Exclude<ObjectType, "file">,
    bytes: Uint8Array,
    stats?: WriteStats,
    checksum?: string,
  ): Promise<string> {
    const csum = checksum ?? sha256Hex(bytes);
    const dest = this.objectFile(csum, type);
    if (type !== "commitmeta" && (await this.hasObject(csum, type))) {
      if (stats) stats.metadataExisting++;
      return csum;
    }
    if (this.direct) {
      try {
        this.ensureObjectDirSync(dest);
        this.writeObjectSync(dest, 0o644, (fd) => {
          this.direct!.fs.writeSync(fd, bytes, 0, bytes.length, 0);
        });
      } catch (e) {
        throw toImageModeError(e, OP, { checksum: csum, type });
      }
      if (stats) stats.metadataWritten++;
      return csum;
    }
    await this.ensureObjectDir(dest);
    await atomicWrite(this.fs, join(this.path, "tmp"), dest, bytes, this.fsync, 0o644);
    if (stats) stats.metadataWritten++;
    return csum;
  }

  /** Writes a dirmeta object (e.g. the parent-directory metadata {@link MutableTree.putFile} needs). */
  async writeDirMeta(meta: DirMeta, stats?: WriteStats): Promise<string> {
    return this.writeMetadata("dirmeta", encodeDirMeta(meta), stats);
  }

  /** Reads and parses a commit. */
  async readCommit(checksum: string): Promise<Commit> {
    return decodeCommit(await this.readMetadata("commit", checksum));
  }

  /** Reads and parses a dirtree. */
  async readDirTree(checksum: string): Promise<DirTree> {
    return decodeDirTree(await this.readMetadata("dirtree", checksum));
  }

  /** Reads and parses a dirmeta. */
  async readDirMeta(checksum: string): Promise<DirMeta> {
    return decodeDirMeta(await this.readMetadata("dirmeta", checksum));
  }

  /** Detached metadata of a commit, or `null` when it has none. */
  async readCommitMeta(commit: string): Promise<[string, Variant][] | null> {
    try {
      return decodeCommitMeta(await this.readMetadata("commitmeta", commit));
    } catch (e) {
      if (e instanceof ImageModeError && e.code === "NOT_FOUND") return null;
      throw e;
    }
  }

  /** Replaces the detached metadata of a commit (`ostree commit --add-detached-metadata-string`). */
  async writeCommitMeta(
    commit: string,
    entries: readonly (readonly [string, Variant])[],
  ): Promise<void> {
    await this.writeMetadata("commitmeta", encodeCommitMeta(entries), undefined, commit);
  }

  // ───────────── content objects ─────────────

  /**
   * Writes a content object (regular file or symlink) from a stream and returns its checksum.
   * The payload is hashed, (in archive mode) raw-deflated and written to a temp file as it
   * arrives; nothing is held in memory. Existing objects are kept.
   *
   * With `options.workers` (for callers that keep many writes in flight, like a commit or a
   * layer import), a payload that arrives as one chunk may be hashed, compressed and written by
   * one of the repository's worker threads (see {@link RepoOptions.workers}).
   */
  async writeContent(
    header: FileHeader,
    content: ByteStream | null,
    stats?: WriteStats,
    signal?: AbortSignal,
    options: { workers?: boolean } = {},
  ): Promise<string> {
    const fmt = header.mode & S_IFMT;
    if (fmt !== S_IFREG && fmt !== S_IFLNK) {
      throw unsupported(
        `content objects must be regular files or symlinks (mode 0${header.mode.toString(8)})`,
        { op: OP },
      );
    }
    const hasXattrs = !!header.xattrs && [...header.xattrs.values()].some((v) => v.length > 0);
    if (
      this.mode === "bare-user-only" &&
      (hasXattrs ||
        header.uid !== 0 ||
        header.gid !== 0 ||
        (fmt === S_IFREG && (header.mode & ~0o100755) !== 0))
    ) {
      throw invalidArgument(
        "bare-user-only repositories only hold canonical content (uid/gid 0, mode ≤ 0755, no xattrs)",
        { op: OP },
      );
    }
    const hash = createHash("sha256");
    const prefix = contentChecksumPrefix(header);
    hash.update(prefix);
    if (fmt === S_IFLNK) {
      const csum = hash.digest("hex");
      if (await this.hasObject(csum, "file")) {
        if (stats) stats.contentExisting++;
        return csum;
      }
      if (this.direct) this.writeSymlinkObjectSync(csum, header);
      else await this.writeSymlinkObject(csum, header);
      if (stats) stats.contentWritten++;
      return csum;
    }
    // Peek at most two chunks: a payload that fits in one chunk (most files) is written with
    // one write (archive: one synchronous raw deflate); anything longer is streamed.
    const it = (content ?? emptyStream())[Symbol.asyncIterator]();
    let first: IteratorResult<Uint8Array>;
    let second: IteratorResult<Uint8Array>;
    try {
      first = await it.next();
      second = first.done ? first : await it.next();
    } catch (e) {
      throw toImageModeError(e, OP);
    }
    const check = () => {
      if (signal?.aborted) throw toImageModeError(signal.reason ?? new Error("aborted"), OP);
    };
    check();
    if (second.done && this.objectWorkers && options.workers) {
      const data = first.done ? new Uint8Array(0) : first.value;
      const job = this.objectJob(header, prefix, data);
      if (job) {
        let r: { checksum: string; written: boolean };
        try {
          r = await this.objectWorkers.write(job);
        } catch (e) {
          throw toImageModeError(e, OP);
        }
        if (stats) {
          stats.contentBytes += data.byteLength;
          if (r.written) stats.contentWritten++;
          else stats.contentExisting++;
        }
        return r.checksum;
      }
    }
    if (second.done && this.direct) {
      const data = first.done ? new Uint8Array(0) : first.value;
      hash.update(data);
      const csum = hash.digest("hex");
      if (stats) stats.contentBytes += data.byteLength;
      if (this.hasObjectSync(csum, "file")) {
        if (stats) stats.contentExisting++;
        return csum;
      }
      this.writeRegularObjectSync(csum, header, data);
      if (stats) stats.contentWritten++;
      return csum;
    }
    const tmp = this.tmpPath();
    let size = 0;
    let fh: nodeFsp.FileHandle | undefined;
    try {
      fh = await this.fs.open(tmp, "wx", 0o600);
      if (second.done) {
        const data = first.done ? new Uint8Array(0) : first.value;
        hash.update(data);
        size = data.byteLength;
        if (this.mode === "archive") {
          const h = encodeArchiveHeader(header, size);
          const z = deflateRawSync(data, { level: 6 });
          await fh.writev([h, z], 0);
        } else if (size > 0) await fh.write(data, 0, size, 0);
      } else {
        const handle = fh;
        let pos = 0;
        const source = async function* () {
          for (const r of [first, second]) {
            hash.update(r.value as Uint8Array);
            size += (r.value as Uint8Array).byteLength;
            yield r.value as Uint8Array;
          }
          for (let r = await it.next(); !r.done; r = await it.next()) {
            check();
            hash.update(r.value);
            size += r.value.byteLength;
            yield r.value;
          }
        };
        const sink = new Writable({
          highWaterMark: 1 << 20,
          write(chunk: Buffer, _enc, cb) {
            handle.write(chunk, 0, chunk.length, pos).then(
              () => cb(),
              (e: unknown) => cb(e as Error),
            );
            pos += chunk.length;
          },
        });
        if (this.mode === "archive") {
          const h0 = encodeArchiveHeader(header, 0);
          pos = h0.length;
          await pipeline(Readable.from(source()), createDeflateRaw({ level: 6 }), sink);
          // the header's length does not depend on the size value, so it is written last
          await fh.write(encodeArchiveHeader(header, size), 0, h0.length, 0);
        } else {
          await pipeline(Readable.from(source()), sink);
        }
      }
      const csum = hash.digest("hex");
      if (stats) stats.contentBytes += size;
      if (await this.hasObject(csum, "file")) {
        await fh.close();
        fh = undefined;
        await this.fs.unlink(tmp).catch(() => undefined);
        if (stats) stats.contentExisting++;
        return csum;
      }
      if (this.mode !== "archive") {
        await this.applyBareMetadata(fh, tmp, header);
        await fh.utimes(0, 0);
      }
      if (this.fsync) await fh.sync();
      await fh.close();
      fh = undefined;
      const dest = this.objectFile(csum, "file");
      await this.ensureObjectDir(dest);
      await this.fs.rename(tmp, dest);
      if (stats) stats.contentWritten++;
      return csum;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await this.fs.unlink(tmp).catch(() => undefined);
      throw toImageModeError(e, OP);
    }
  }

  private readonly objectDirs = new Set<string>();

  /** A worker job for a regular file in memory, or `null` when a worker cannot write it. */
  private objectJob(header: FileHeader, prefix: Uint8Array, data: Uint8Array): ObjectJob | null {
    const job: ObjectJob = { prefix, data, tmp: this.tmpPath(), chmod: 0 };
    switch (this.mode) {
      case "archive":
        job.archiveHeader = encodeArchiveHeader(header, data.byteLength);
        break;
      case "bare-user":
        job.ostreemeta = encodeOstreeMeta(header);
        job.chmod = (header.mode & 0o775) | 0o400;
        break;
      case "bare-user-only":
        job.chmod = header.mode & 0o755;
        break;
      case "bare": {
        const x = [...(header.xattrs ?? [])].filter(([, v]) => v.length > 0);
        if (x.length > 0 && !this.direct?.xattrs) return null;
        job.uid = header.uid;
        job.gid = header.gid;
        job.chmod = header.mode & 0o7777;
        job.xattrs = x;
        break;
      }
    }
    return job;
  }

  /** {@link ensureObjectDir}, synchronously. */
  private ensureObjectDirSync(objectFile: string): void {
    const dir = join(objectFile, "..");
    if (this.objectDirs.has(dir)) return;
    this.direct!.fs.mkdirSync(dir, { recursive: true });
    this.objectDirs.add(dir);
  }

  /**
   * Writes an object file synchronously: a temp file in `tmp/` filled by `fill`, fsynced when
   * enabled, renamed to `dest` (the object directory must exist). The temp file is removed on
   * failure.
   */
  private writeObjectSync(dest: string, mode: number, fill: (fd: number, tmp: string) => void) {
    const fs = this.direct!.fs;
    const tmp = this.tmpPath();
    let fd: number | undefined = fs.openSync(tmp, "wx", mode);
    try {
      fill(fd, tmp);
      if (this.fsync) fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
      fs.renameSync(tmp, dest);
    } catch (e) {
      if (fd !== undefined) fs.closeSync(fd);
      try {
        fs.unlinkSync(tmp);
      } catch {
        // already gone
      }
      throw e;
    }
  }

  /** A regular-file content object whose whole payload is in memory, written synchronously. */
  private writeRegularObjectSync(csum: string, header: FileHeader, data: Uint8Array): void {
    const fs = this.direct!.fs;
    const dest = this.objectFile(csum, "file");
    try {
      this.ensureObjectDirSync(dest);
      this.writeObjectSync(dest, 0o600, (fd, tmp) => {
        if (this.mode === "archive") {
          const h = encodeArchiveHeader(header, data.byteLength);
          const z = deflateRawSync(data, { level: 6 });
          fs.writevSync(fd, [h, z], 0);
          return;
        }
        if (data.byteLength > 0) fs.writeSync(fd, data, 0, data.byteLength, 0);
        this.applyBareMetadataSync(fd, tmp, header);
        fs.futimesSync(fd, 0, 0);
      });
    } catch (e) {
      throw toImageModeError(e, OP, { checksum: csum });
    }
  }

  /** {@link applyBareMetadata}, synchronously. */
  private applyBareMetadataSync(fd: number, tmp: string, header: FileHeader): void {
    const { fs, xattrs } = this.direct!;
    if (this.mode === "bare") {
      fs.fchownSync(fd, header.uid, header.gid);
      fs.fchmodSync(fd, header.mode & 0o7777);
      if (header.xattrs && header.xattrs.size > 0) {
        if (!xattrs)
          throw unsupported("writing xattrs to a bare repository needs an xattr backend", {
            op: OP,
          });
        for (const [k, v] of header.xattrs) if (v.length > 0) xattrs.set(tmp, k, v);
      }
    } else if (this.mode === "bare-user") {
      if (!xattrs) throw this.noXattrs();
      xattrs.set(tmp, "user.ostreemeta", encodeOstreeMeta(header));
      fs.fchmodSync(fd, (header.mode & 0o775) | 0o400);
    } else {
      fs.fchmodSync(fd, header.mode & 0o755);
    }
  }

  /** {@link writeSymlinkObject}, synchronously. */
  private writeSymlinkObjectSync(csum: string, header: FileHeader): void {
    const target = header.symlinkTarget ?? "";
    if (target === "") throw invalidArgument("symlink with an empty target", { op: OP });
    const { fs, xattrs } = this.direct!;
    const dest = this.objectFile(csum, "file");
    try {
      this.ensureObjectDirSync(dest);
      if (this.mode === "archive") {
        const h = encodeArchiveHeader(header, 0);
        this.writeObjectSync(dest, 0o644, (fd) => {
          fs.writeSync(fd, h, 0, h.length, 0);
        });
      } else if (this.mode === "bare-user") {
        if (!xattrs) throw this.noXattrs();
        const t = Buffer.from(`${target}\0`);
        this.writeObjectSync(dest, 0o644, (fd, tmp) => {
          fs.writeSync(fd, t, 0, t.length, 0);
          xattrs.set(tmp, "user.ostreemeta", encodeOstreeMeta(header));
          fs.futimesSync(fd, 0, 0);
        });
      } else {
        const tmp = this.tmpPath();
        try {
          fs.symlinkSync(target, tmp);
          if (this.mode === "bare") fs.lchownSync(tmp, header.uid, header.gid);
          fs.lutimesSync(tmp, 0, 0);
          fs.renameSync(tmp, dest);
        } catch (e) {
          try {
            fs.unlinkSync(tmp);
          } catch {
            // already gone
          }
          throw e;
        }
      }
    } catch (e) {
      throw toImageModeError(e, OP, { checksum: csum });
    }
  }

  private noXattrs(): ImageModeError {
    return unsupported("bare-user repositories need an xattr backend (install @napi-rs/xattr)", {
      op: OP,
    });
  }

  /** Creates `objects/XX` once per repository object. */
  private async ensureObjectDir(objectFile: string): Promise<void> {
    const dir = join(objectFile, "..");
    if (this.objectDirs.has(dir)) return;
    await this.fs.mkdir(dir, { recursive: true });
    this.objectDirs.add(dir);
  }

  private async applyBareMetadata(
    fh: nodeFsp.FileHandle,
    tmp: string,
    header: FileHeader,
  ): Promise<void> {
    if (this.mode === "bare") {
      await fh.chown(header.uid, header.gid);
      await fh.chmod(header.mode & 0o7777);
      if (header.xattrs && header.xattrs.size > 0) {
        if (!this.xattrs)
          throw unsupported("writing xattrs to a bare repository needs an xattr backend", {
            op: OP,
          });
        for (const [k, v] of header.xattrs) if (v.length > 0) await this.xattrs.set(tmp, k, v);
      }
    } else if (this.mode === "bare-user") {
      await this.requireXattrs().set(tmp, "user.ostreemeta", encodeOstreeMeta(header));
      await fh.chmod((header.mode & 0o775) | 0o400);
    } else {
      await fh.chmod(header.mode & 0o755);
    }
  }

  private requireXattrs(): XattrBackend {
    if (!this.xattrs)
      throw unsupported("bare-user repositories need an xattr backend (install @napi-rs/xattr)", {
        op: OP,
      });
    return this.xattrs;
  }

  private async writeSymlinkObject(csum: string, header: FileHeader): Promise<void> {
    const target = header.symlinkTarget ?? "";
    if (target === "") throw invalidArgument("symlink with an empty target", { op: OP });
    const tmp = this.tmpPath();
    try {
      if (this.mode === "archive") {
        await atomicWrite(
          this.fs,
          join(this.path, "tmp"),
          tmp,
          encodeArchiveHeader(header, 0),
          this.fsync,
          0o644,
        );
      } else if (this.mode === "bare-user") {
        const t = Buffer.from(`${target}\0`);
        const fh = await this.fs.open(tmp, "wx", 0o644);
        try {
          await fh.write(t, 0, t.length, 0);
          await this.requireXattrs().set(tmp, "user.ostreemeta", encodeOstreeMeta(header));
          if (this.fsync) await fh.sync();
        } finally {
          await fh.close();
        }
        await this.fs.lutimes(tmp, 0, 0);
      } else {
        await this.fs.symlink(target, tmp);
        if (this.mode === "bare") await this.fs.lchown(tmp, header.uid, header.gid);
        await this.fs.lutimes(tmp, 0, 0);
      }
      const dest = this.objectFile(csum, "file");
      await this.ensureObjectDir(dest);
      await this.fs.rename(tmp, dest);
    } catch (e) {
      await this.fs.unlink(tmp).catch(() => undefined);
      throw toImageModeError(e, OP);
    }
  }

  /** Opens a content object: its header (ownership, mode, xattrs, symlink target) and payload. */
  async loadFile(checksum: string): Promise<LoadedFile> {
    const p = this.objectFile(checksum, "file");
    const fs = this.fs;
    try {
      if (this.mode === "archive") {
        const fh = await fs.open(p, "r");
        let parsed: ReturnType<typeof decodeArchiveHeader>;
        // small objects are read whole (one read, then inflated in memory: bounded below)
        let whole: Buffer | null = null;
        try {
          const head = Buffer.alloc(SMALL_OBJECT);
          const { bytesRead } = await fh.read(head, 0, SMALL_OBJECT, 0);
          if (bytesRead < 8) throw parseError(`content object ${checksum}: truncated`, { op: OP });
          const len = head.readUInt32BE(0);
          if (len > 10 * 1024 * 1024)
            throw parseError(`content object ${checksum}: header too large`, { op: OP });
          let hb: Buffer = head.subarray(0, bytesRead);
          if (8 + len > bytesRead) {
            hb = Buffer.alloc(8 + len);
            const r = await fh.read(hb, 0, hb.length, 0);
            if (r.bytesRead !== hb.length)
              throw parseError(`content object ${checksum}: truncated header`, { op: OP });
          } else if (bytesRead < SMALL_OBJECT) whole = head.subarray(0, bytesRead);
          parsed = decodeArchiveHeader(hb);
        } finally {
          await fh.close();
        }
        const { header, size, payloadOffset } = parsed;
        const isLink = (header.mode & S_IFMT) === S_IFLNK;
        const small = whole !== null && size <= BigInt(MAX_INFLATE_IN_MEMORY) ? whole : null;
        return {
          header,
          size: isLink ? 0 : Number(size),
          objectPath: p,
          open: async () => {
            if (isLink) return emptyStream();
            if (small) {
              const out = inflateRawSync(small.subarray(payloadOffset), {
                maxOutputLength: MAX_INFLATE_IN_MEMORY + 1,
              });
              return bytesOf(out);
            }
            const h = await fs.open(p, "r");
            const raw = h.createReadStream({ start: payloadOffset, highWaterMark: 256 * 1024 });
            const inflate = createInflateRaw();
            raw.on("error", (e) => inflate.destroy(e));
            return raw.pipe(inflate);
          },
        };
      }
      const st = await fs.lstat(p);
      if (this.mode === "bare-user") {
        const meta = await this.requireXattrs().get(p, "user.ostreemeta");
        if (!meta)
          throw parseError(`content object ${checksum} has no user.ostreemeta xattr`, { op: OP });
        const header = decodeOstreeMeta(meta);
        if ((header.mode & S_IFMT) === S_IFLNK) {
          const b = await fs.readFile(p);
          const end = b.length > 0 && b[b.length - 1] === 0 ? b.length - 1 : b.length;
          header.symlinkTarget = b.subarray(0, end).toString("utf8");
          return { header, size: 0, objectPath: p, open: async () => emptyStream() };
        }
        header.symlinkTarget = "";
        return { header, size: st.size, objectPath: p, open: async () => readStream(fs, p) };
      }
      const bareUserOnly = this.mode === "bare-user-only";
      const header: FileHeader = {
        uid: bareUserOnly ? 0 : st.uid,
        gid: bareUserOnly ? 0 : st.gid,
        mode: st.mode,
        rdev: 0,
        symlinkTarget: "",
      };
      if (st.isSymbolicLink()) {
        header.symlinkTarget = await fs.readlink(p);
        header.mode = S_IFLNK | 0o777;
        return { header, size: 0, objectPath: p, open: async () => emptyStream() };
      }
      if (!bareUserOnly && this.xattrs) {
        const x = new Map<string, Uint8Array>();
        for (const n of await this.xattrs.list(p)) {
          const v = await this.xattrs.get(p, n);
          if (v && v.length > 0) x.set(n, v);
        }
        header.xattrs = x;
      }
      return { header, size: st.size, objectPath: p, open: async () => readStream(fs, p) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw notFound(`no content object ${checksum} in ${this.path}`, {
          op: OP,
          data: { checksum, type: "file" },
        });
      }
      throw toImageModeError(e, OP, { checksum });
    }
  }

  // ───────────── refs ─────────────

  private refFile(ref: RefName): string {
    validateRefName(ref.name);
    if (ref.remote !== undefined) {
      validateRefName(ref.remote);
      return join(this.path, "refs", "remotes", ref.remote, ref.name);
    }
    return join(this.path, "refs", "heads", ref.name);
  }

  /** The commit a ref points to, or `null` when the ref does not exist. */
  async readRef(ref: string | RefName): Promise<string | null> {
    const r = typeof ref === "string" ? parseRefspec(ref) : ref;
    try {
      const text = (await this.fs.readFile(this.refFile(r), "utf8")).trim();
      if (!isChecksum(text)) throw parseError(`ref ${r.name} does not hold a checksum`, { op: OP });
      return text;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return null;
      throw toImageModeError(e, OP);
    }
  }

  /** Points a ref at a commit (atomic: temp + rename), or deletes it when `checksum` is `null`. */
  async setRef(ref: string | RefName, checksum: string | null): Promise<void> {
    const r = typeof ref === "string" ? parseRefspec(ref) : ref;
    const file = this.refFile(r);
    try {
      if (checksum === null) {
        await this.fs.unlink(file).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== "ENOENT") throw e;
        });
        return;
      }
      if (!isChecksum(checksum))
        throw invalidArgument(`invalid checksum ${JSON.stringify(checksum)}`, { op: OP });
      await this.fs.mkdir(join(file, ".."), { recursive: true });
      await atomicWrite(
        this.fs,
        join(this.path, "tmp"),
        file,
        new TextEncoder().encode(`${checksum}\n`),
        this.fsync,
        0o644,
      );
    } catch (e) {
      throw toImageModeError(e, OP, { ref: r.name });
    }
  }

  /**
   * Lists refs: local heads by name, remote refs as `remote:name` (like `ostree refs`), sorted.
   * Pass `remote` to list one remote's refs only (names without the prefix).
   */
  async listRefs(
    options: { remote?: string; includeRemotes?: boolean } = {},
  ): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const walk = async (dir: string, prefix: string, key: (n: string) => string) => {
      let names: string[];
      try {
        names = await this.fs.readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw toImageModeError(e, OP);
      }
      for (const n of names) {
        const p = join(dir, n);
        const st = await this.fs.lstat(p);
        const name = prefix ? `${prefix}/${n}` : n;
        if (st.isDirectory()) await walk(p, name, key);
        else if (st.isFile()) {
          const v = (await this.fs.readFile(p, "utf8")).trim();
          if (isChecksum(v)) out.set(key(name), v);
        }
      }
    };
    if (options.remote !== undefined) {
      validateRefName(options.remote);
      await walk(join(this.path, "refs", "remotes", options.remote), "", (n) => n);
    } else {
      await walk(join(this.path, "refs", "heads"), "", (n) => n);
      if (options.includeRemotes !== false) {
        let remotes: string[] = [];
        try {
          remotes = await this.fs.readdir(join(this.path, "refs", "remotes"));
        } catch {
          remotes = [];
        }
        for (const r of remotes)
          await walk(join(this.path, "refs", "remotes", r), "", (n) => `${r}:${n}`);
      }
    }
    return new Map([...out].sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0]))));
  }

  /** All commit checksums whose objects start with `prefix` (hex). */
  async listCommitObjects(prefix = ""): Promise<string[]> {
    const out: string[] = [];
    const objects = join(this.path, "objects");
    let dirs: string[];
    try {
      dirs = await this.fs.readdir(objects);
    } catch {
      return out;
    }
    for (const d of dirs) {
      if (d.length !== 2 || !(prefix.startsWith(d) || d.startsWith(prefix.slice(0, 2)))) continue;
      for (const f of await this.fs.readdir(join(objects, d))) {
        if (!f.endsWith(".commit")) continue;
        const c = d + f.slice(0, -".commit".length);
        if (c.startsWith(prefix) && isChecksum(c)) out.push(c);
      }
    }
    return out.sort();
  }

  /**
   * Resolves a revision: a full checksum, a ref (`name` or `remote:name`), a unique partial
   * checksum, each optionally followed by `^` (parent) any number of times.
   */
  async resolveRev(rev: string): Promise<string> {
    let base = rev;
    let up = 0;
    while (base.endsWith("^")) {
      base = base.slice(0, -1);
      up++;
    }
    let csum: string | null = null;
    if (isChecksum(base)) csum = base;
    else {
      const r = parseRefspecLoose(base);
      if (r) csum = await this.readRef(r);
      if (!csum && /^[0-9a-f]{4,63}$/.test(base)) {
        const matches = await this.listCommitObjects(base);
        if (matches.length > 1)
          throw invalidArgument(`ambiguous partial checksum ${base}`, {
            op: OP,
            data: { rev, matches },
          });
        csum = matches[0] ?? null;
      }
    }
    if (!csum)
      throw notFound(`rev ${JSON.stringify(rev)} not found in ${this.path}`, {
        op: OP,
        data: { rev },
      });
    for (let i = 0; i < up; i++) {
      const c = await this.readCommit(csum);
      if (!c.parent) throw notFound(`commit ${csum} has no parent`, { op: OP, data: { rev } });
      csum = c.parent;
    }
    return csum;
  }

  // ───────────── high-level operations (see the modules they delegate to) ─────────────

  /** Streams a `FileTree` into objects; returns the root checksums (see {@link writeTree}). */
  writeTree(tree: FileTree, options?: WriteTreeOptions): Promise<WriteTreeResult> {
    return writeTree(this, tree, options);
  }

  /** Applies a `FileTree` on top of a {@link MutableTree} (overlay semantics, see {@link applyTree}). */
  applyTree(mtree: MutableTree, tree: FileTree, options?: WriteTreeOptions): Promise<WriteStats> {
    return applyTree(this, mtree, tree, options);
  }

  /** Writes a commit (see {@link commit}). */
  commit(options: CommitOptions): Promise<CommitResult> {
    return commit(this, options);
  }

  /** Lists a path of a commit (see {@link ls}). */
  ls(rev: string, path?: string, options?: LsOptions): Promise<LsEntry[]> {
    return ls(this, rev, path, options);
  }

  /** Streams a file of a commit (see {@link cat}). */
  cat(rev: string, path: string): Promise<ByteStream> {
    return cat(this, rev, path);
  }

  /** A commit for display (see {@link show}). */
  show(rev: string): Promise<CommitInfo> {
    return show(this, rev);
  }

  /** A commit and its ancestors (see {@link log}). */
  log(rev: string, options?: OpOptions & { limit?: number }): Promise<CommitInfo[]> {
    return log(this, rev, options);
  }

  /** Differences between two commits (see {@link diff}). */
  diff(revA: string, revB: string, options?: OpOptions): Promise<CommitDiff> {
    return diff(this, revA, revB, options);
  }

  /** A commit as a core `FileTree` (see {@link readCommitTree}). */
  readCommitTree(rev: string, options?: CommitTreeOptions): FileTree {
    return readCommitTree(this, rev, options);
  }

  /** Checks a commit out to a directory (see {@link checkout}). */
  checkout(rev: string, dest: string, options?: CheckoutOptions): Promise<CheckoutStats> {
    return checkout(this, rev, dest, options);
  }

  /** Verifies reachable objects (see {@link fsck}). */
  fsck(options?: FsckOptions): Promise<FsckResult> {
    return fsck(this, options);
  }

  /** What a prune would delete (see {@link planPrune}). */
  planPrune(options?: PruneOptions): Promise<PrunePlan> {
    return planPrune(this, options);
  }

  /** Deletes unreachable objects (see {@link prune}). */
  prune(options?: PruneOptions): Promise<PrunePlan> {
    return prune(this, options);
  }

  /** Object counts and sizes (see {@link repoStats}). */
  stats(): Promise<RepoStats> {
    return repoStats(this);
  }

  // ───────────── lock and tmp ─────────────

  /**
   * Takes the repository's write lock: the directory `tmp/imagemode.lock`, holding a file
   * `owner` with `<pid> <hostname> <token>`. The directory is prepared under a temp name and
   * renamed into place, so it never exists without its owner. A lock whose owner is a process of
   * this host that is no longer running (a crash) is stale and taken over: it is renamed away
   * (atomic: one taker wins), checked to still be the stale one, and removed. Locks of other
   * hosts are never taken over (`CONFLICT` after `timeoutMs`, default 30 s). Release removes the
   * lock only while it is still ours. Note: this lock is not libostree's `flock()` on `.lock`,
   * which Node.js cannot take.
   */
  async lock(options: { timeoutMs?: number } = {}): Promise<() => Promise<void>> {
    if (this.lockDepth > 0) {
      // re-entrant for this repository object (e.g. an import that commits while holding it)
      this.lockDepth++;
      let done = false;
      return async () => {
        if (done) return;
        done = true;
        this.lockDepth--;
        if (this.lockDepth === 0 && this.releaseLock) await this.releaseLock();
      };
    }
    const dir = join(this.path, "tmp", LOCK_DIR);
    const me: LockOwner = {
      pid: process.pid,
      host: hostname(),
      token: randomBytes(8).toString("hex"),
    };
    const deadline = this.now() + (options.timeoutMs ?? 30_000);
    for (;;) {
      const prep = this.tmpPath();
      try {
        await this.fs.mkdir(prep, { mode: 0o755 });
        await this.fs.writeFile(join(prep, LOCK_OWNER), formatLockOwner(me));
        await this.fs.rename(prep, dir);
        break;
      } catch (e) {
        await this.fs.rm(prep, { recursive: true, force: true }).catch(() => undefined);
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "EEXIST" && code !== "ENOTEMPTY") throw toImageModeError(e, "ostree.lock");
      }
      const held = await this.readLockOwner(dir);
      if (held === undefined) continue; // released in the meantime
      if (held !== null && held.host === me.host && !processAlive(held.pid)) {
        if (await this.breakStaleLock(dir, held)) continue;
      }
      if (this.now() > deadline)
        throw new ImageModeError(
          "CONFLICT",
          `repository ${this.path} is locked by ${held ? `pid ${held.pid} on ${held.host}` : "another process"}`,
          { op: "ostree.lock", data: held ? { pid: held.pid, host: held.host } : {} },
        );
      await new Promise((r) => setTimeout(r, 50));
    }
    // ostree's own lock file, created like ostree does (empty, 0640); we never flock it
    await this.fs
      .writeFile(join(this.path, ".lock"), "", { flag: "a", mode: 0o640 })
      .catch(() => undefined);
    this.lockDepth = 1;
    this.releaseLock = async () => {
      this.releaseLock = null;
      const held = await this.readLockOwner(dir);
      if (!held || held.token !== me.token) return; // not ours any more: leave it alone
      await this.removeLockDir(dir);
    };
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      this.lockDepth--;
      if (this.lockDepth === 0 && this.releaseLock) await this.releaseLock();
    };
  }

  /**
   * The owner of the lock directory: `undefined` when there is no lock, `null` when it has no
   * readable owner. Locks of earlier versions (a `pid` file) count as owned by this host.
   */
  private async readLockOwner(dir: string): Promise<LockOwner | null | undefined> {
    try {
      return parseLockOwner(await this.fs.readFile(join(dir, LOCK_OWNER), "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") return null;
    }
    try {
      const pid = Number((await this.fs.readFile(join(dir, "pid"), "utf8")).trim());
      return Number.isInteger(pid) && pid > 0 ? { pid, host: hostname(), token: "" } : null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") return null;
    }
    try {
      await this.fs.lstat(dir);
      return null;
    } catch {
      return undefined;
    }
  }

  /**
   * Takes a stale lock away: renames it to a temp name (only one taker can), then checks that
   * what it moved is the stale lock it looked at. If a live process took the lock in between,
   * the lock is put back. Returns true when the caller should try to take the lock again.
   */
  private async breakStaleLock(dir: string, stale: LockOwner): Promise<boolean> {
    const grave = this.tmpPath();
    try {
      await this.fs.rename(dir, grave);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return true; // someone else did
      throw toImageModeError(e, "ostree.lock");
    }
    const moved = await this.readLockOwner(grave);
    if (
      moved &&
      moved.pid === stale.pid &&
      moved.host === stale.host &&
      moved.token === stale.token
    ) {
      await this.fs.rm(grave, { recursive: true, force: true });
      return true;
    }
    // not the stale lock any more: give it back (fails only if a third process took the lock)
    await this.fs.rename(grave, dir).catch(() => undefined);
    return false;
  }

  /** Removes the lock directory: renamed away first, so it never exists half-removed. */
  private async removeLockDir(dir: string): Promise<void> {
    const grave = this.tmpPath();
    try {
      await this.fs.rename(dir, grave);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw toImageModeError(e, "ostree.lock");
    }
    await this.fs.rm(grave, { recursive: true, force: true });
  }

  /** Removes temp files left in `tmp/` by imagemode processes that are no longer running. */
  async cleanupTmp(): Promise<number> {
    let n = 0;
    let names: string[];
    try {
      names = await this.fs.readdir(join(this.path, "tmp"));
    } catch {
      return 0;
    }
    for (const name of names) {
      const m = /^imagemode-(\d+)-[0-9a-f]+$/.exec(name);
      if (!m || processAlive(Number(m[1]))) continue;
      await this.fs.rm(join(this.path, "tmp", name), { recursive: true, force: true });
      n++;
    }
    return n;
  }
}

/** The lock directory (in `tmp/`) and the file in it that names the owner. */
const LOCK_DIR = "imagemode.lock";
const LOCK_OWNER = "owner";

/** Who holds the repository lock. */
interface LockOwner {
  pid: number;
  host: string;
  /** Random per lock taken: tells two locks of the same process apart. */
  token: string;
}

function formatLockOwner(o: LockOwner): string {
  return `${o.pid} ${o.host} ${o.token}\n`;
}

function parseLockOwner(text: string): LockOwner | null {
  const m = /^(\d+) (\S+) ([0-9a-f]*)\s*$/.exec(text);
  if (!m) return null;
  return { pid: Number(m[1]), host: m[2]!, token: m[3]! };
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Parses `remote:name` or `name`. */
export function parseRefspec(spec: string): RefName {
  const r = parseRefspecLoose(spec);
  if (!r) throw invalidArgument(`invalid refspec ${JSON.stringify(spec)}`, { op: OP });
  return r;
}

function parseRefspecLoose(spec: string): RefName | null {
  const i = spec.indexOf(":");
  const r: RefName =
    i >= 0 ? { remote: spec.slice(0, i), name: spec.slice(i + 1) } : { name: spec };
  if (!REF_RE.test(r.name) || (r.remote !== undefined && !REF_RE.test(r.remote))) return null;
  return r;
}

async function* emptyStream(): ByteStream {}

async function* bytesOf(b: Uint8Array): ByteStream {
  if (b.byteLength > 0) yield b;
}

async function readStream(fs: RepoFs, p: string): Promise<ByteStream> {
  const h = await fs.open(p, "r");
  return h.createReadStream({ highWaterMark: 256 * 1024 });
}

/** Writes `bytes` to `dest` atomically: temp file in `tmpDir`, optional fsync, rename. */
export async function atomicWrite(
  fs: RepoFs,
  tmpDir: string,
  dest: string,
  bytes: Uint8Array,
  fsync: boolean,
  mode = 0o644,
): Promise<void> {
  const tmp = join(tmpDir, `imagemode-${process.pid}-${randomBytes(8).toString("hex")}`);
  let fh: nodeFsp.FileHandle | undefined;
  try {
    fh = await fs.open(tmp, "wx", mode);
    await fh.write(bytes, 0, bytes.length, 0);
    if (fsync) await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.rename(tmp, dest);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw e;
  }
}
