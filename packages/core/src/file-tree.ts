import { createReadStream } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { ImageModeError, invalidArgument, throwIfAborted, toImageModeError } from "./errors.js";
import type { ByteStream } from "./stream.js";
import type { XattrBackend } from "./xattr.js";

/** The kinds of file a {@link TreeEntry} can be. */
export type TreeEntryType = "file" | "dir" | "symlink" | "chardev" | "blockdev" | "fifo" | "socket";

/**
 * One entry of a {@link FileTree}. Ownership, mode and xattrs are the image's, never the
 * builder's: a tree read by an unprivileged user still says `uid: 0` where the image does.
 */
export interface TreeEntry {
  /** Relative, `/`-separated, normalized; never empty, absolute, or containing `..` (the root entry is `.`). */
  path: string;
  type: TreeEntryType;
  /** Permission bits and setuid/setgid/sticky (`0o7777` mask); the type bits are not included. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in seconds since the epoch. */
  mtime?: number;
  /** Device number for char/block devices (`makedev(major, minor)` as Linux encodes it). */
  rdev?: number;
  /** Size in bytes for regular files. */
  size?: number;
  /** Target of a symlink. */
  linkTarget?: string;
  xattrs?: ReadonlyMap<string, Uint8Array>;
  /** Entries with the same inode key are hard links of one file. */
  inode?: string;
  /** Opens the content of a regular file. Called at most once per consumer pass. */
  content?: () => Promise<ByteStream>;
  /**
   * For a regular file read from a host directory ({@link readHostDirectory}): where its content
   * lives, so a consumer may read it into buffers of its own instead of calling `content`. Valid
   * only while `content === hostFile.open` (a transform that replaces `content` but copies the
   * rest of the entry leaves a stale `hostFile`; consumers must check that identity).
   */
  hostFile?: HostFile;
}

/**
 * Where a regular file's content lives on the host: its directory's path (one string shared by
 * every file of that directory) and its name; the full path is joined only when asked for.
 */
export class HostFile {
  constructor(
    /** Absolute (or root-relative) path of the directory holding the file. */
    readonly dir: string,
    /** The file's name in that directory. */
    readonly name: string,
    /** The file's size when the tree was read. */
    readonly size: number,
  ) {}
  /** Opens the content as a stream ({@link openHostFile}); an entry's `content` is this function. */
  readonly open = (): Promise<ByteStream> => openHostFile(this);
  /** The file's path (`dir` joined with `name`). */
  path(): string {
    return join(this.dir, this.name);
  }
}

/** Files at most this large are read with one `read` call into a buffer of their size. */
const SMALL_FILE = 64 * 1024;

/**
 * Opens a host file's content as a stream: a small file is read with one call into a buffer of
 * its own size (open, read, close), a larger one streams in chunks of at most 256 KiB.
 */
export async function openHostFile(file: HostFile): Promise<ByteStream> {
  const path = file.path();
  if (file.size > SMALL_FILE) return createReadStream(path, { highWaterMark: 256 * 1024 });
  return (async function* () {
    const fh = await fsp.open(path, "r");
    try {
      // one byte more than the size: a short read is EOF, a full one means the file grew
      let buf = Buffer.allocUnsafe(file.size + 1);
      for (;;) {
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, null);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got > 0) yield got === buf.length ? buf : buf.subarray(0, got);
        if (got < buf.length) return;
        buf = Buffer.allocUnsafe(64 * 1024);
      }
    } finally {
      await fh.close();
    }
  })();
}

/**
 * A stream of entries, parents before their children. A tree may begin with one entry whose
 * path is `.`: the root directory's own mode, ownership and xattrs. Consumers that do not need
 * it skip it; every other path is in normalized form (see {@link normalizeTreePath}).
 */
export type FileTree = AsyncIterable<TreeEntry>;

/** The path of the optional root-directory entry of a {@link FileTree}. */
export const ROOT_PATH = ".";

/** Linux file-type bits for a tree entry type (`S_IFREG`, …). */
export const S_IF: Record<TreeEntryType, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chardev: 0o020000,
  blockdev: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

/** The tree entry type for a full `st_mode`. */
export function typeFromMode(mode: number): TreeEntryType {
  switch (mode & 0o170000) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "dir";
    case 0o120000:
      return "symlink";
    case 0o020000:
      return "chardev";
    case 0o060000:
      return "blockdev";
    case 0o010000:
      return "fifo";
    case 0o140000:
      return "socket";
    default:
      throw invalidArgument(`unknown file type in mode 0${mode.toString(8)}`);
  }
}

/**
 * Normalizes a path from untrusted input (a tar header, a manifest) into the tree form:
 * leading `/` and `./` removed, `.` components dropped. A `..` component, an empty result,
 * a NUL byte or a component longer than 255 bytes is rejected with `INVALID_ARGUMENT`.
 */
export function normalizeTreePath(raw: string): string {
  if (raw.includes("\0"))
    throw invalidArgument(`invalid path ${JSON.stringify(raw)}: contains NUL`, {
      data: { path: raw },
    });
  const parts: string[] = [];
  for (const c of raw.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..")
      throw invalidArgument(`invalid path ${JSON.stringify(raw)}: contains ".."`, {
        data: { path: raw },
      });
    if (Buffer.byteLength(c) > 255)
      throw invalidArgument(
        `invalid path ${JSON.stringify(raw)}: component longer than 255 bytes`,
        { data: { path: raw } },
      );
    parts.push(c);
  }
  if (parts.length === 0)
    throw invalidArgument(`invalid path ${JSON.stringify(raw)}: empty`, { data: { path: raw } });
  return parts.join("/");
}

/** True when `path` is already in normalized tree form. */
export function isTreePath(path: string): boolean {
  try {
    return normalizeTreePath(path) === path;
  } catch {
    return false;
  }
}

/** Byte-wise comparison of two names (UTF-8), the order on-disk formats sort by. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Options for {@link readHostDirectory}. */
export interface ReadHostDirectoryOptions {
  signal?: AbortSignal;
  /** Where to read xattrs from; `null`/absent skips them. Unreadable xattrs are skipped. */
  xattrs?: XattrBackend | null;
  /** Force ownership (like `mkfs -d` with `root_owner`, or `ostree commit --owner-uid`). */
  owner?: { uid: number; gid: number };
  /** Begin with the root directory's own entry (path `.`, see {@link ROOT_PATH})? Default false. */
  includeRoot?: boolean;
}

/**
 * Reads a host directory as a {@link FileTree}: depth-first, parents before children, names in
 * byte order. Hard links (same device and inode) share an `inode` key. Contents are opened
 * lazily as streams. Symlinks are never followed.
 */
export async function* readHostDirectory(
  root: string,
  options: ReadHostDirectoryOptions = {},
): FileTree {
  let rootStat: import("node:fs").Stats;
  try {
    rootStat = await fsp.lstat(root);
  } catch (e) {
    throw toImageModeError(e, "core.readHostDirectory", { path: root });
  }
  if (!rootStat.isDirectory())
    throw new ImageModeError("INVALID_ARGUMENT", `${root} is not a directory`, {
      op: "core.readHostDirectory",
    });
  if (options.includeRoot) {
    yield await entryFor(root, ".", rootStat, options);
  }
  yield* walk(root, "", options);
}

async function* walk(root: string, rel: string, options: ReadHostDirectoryOptions): FileTree {
  throwIfAborted(options.signal, "core.readHostDirectory");
  const abs = rel ? join(root, rel) : root;
  let names: string[];
  try {
    names = await fsp.readdir(abs);
  } catch (e) {
    throw toImageModeError(e, "core.readHostDirectory", { path: abs });
  }
  names.sort(compareNames);
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    const childAbs = join(abs, name);
    let st: import("node:fs").Stats;
    try {
      st = await fsp.lstat(childAbs);
    } catch (e) {
      throw toImageModeError(e, "core.readHostDirectory", { path: childAbs });
    }
    yield await entryFor(childAbs, childRel, st, options, abs, name);
    if (st.isDirectory()) yield* walk(root, childRel, options);
  }
}

async function entryFor(
  abs: string,
  rel: string,
  st: import("node:fs").Stats,
  options: ReadHostDirectoryOptions,
  dir?: string,
  name?: string,
): Promise<TreeEntry> {
  const type = typeFromMode(st.mode);
  const entry: TreeEntry = {
    path: rel,
    type,
    mode: st.mode & 0o7777,
    uid: options.owner ? options.owner.uid : st.uid,
    gid: options.owner ? options.owner.gid : st.gid,
    mtime: Math.floor(st.mtimeMs / 1000),
  };
  if (type === "file") {
    entry.size = st.size;
    if (st.nlink > 1) entry.inode = `${st.dev}:${st.ino}`;
    // The opener keeps the directory's path (shared) and the name, not a path per file; small
    // files are read with one call into a buffer of their own size.
    const file =
      dir !== undefined && name !== undefined
        ? new HostFile(dir, name, st.size)
        : new HostFile(abs, "", st.size);
    entry.hostFile = file;
    entry.content = file.open;
  } else if (type === "symlink") {
    entry.linkTarget = await fsp.readlink(abs);
  } else if (type === "chardev" || type === "blockdev") {
    entry.rdev = st.rdev;
  }
  if (options.xattrs && type !== "symlink") {
    const x = await readXattrs(options.xattrs, abs);
    if (x.size > 0) entry.xattrs = x;
  }
  return entry;
}

async function readXattrs(backend: XattrBackend, path: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  let names: string[];
  try {
    names = await backend.list(path);
  } catch {
    return out;
  }
  for (const n of [...names].sort(compareNames)) {
    try {
      const v = await backend.get(path, n);
      if (v) out.set(n, v);
    } catch {
      // unreadable (e.g. trusted.* as non-root): skipped, as the issue allows ("where readable")
    }
  }
  return out;
}

/** Builds a {@link FileTree} from entries held in memory (for tests and small generated trees). */
export async function* treeFromEntries(entries: Iterable<TreeEntry>): FileTree {
  for (const e of entries) yield e;
}

/** Collects a whole tree's metadata (contents stay lazy). */
export async function collectTree(tree: FileTree): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  for await (const e of tree) out.push(e);
  return out;
}
