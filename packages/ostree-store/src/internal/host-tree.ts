/**
 * A host directory as a `FileTree`, read with synchronous calls (see direct-io.ts): the same
 * entries, in the same order, as core's `readHostDirectory(dir, { includeRoot: true, xattrs })`
 * — depth-first, parents first, names in byte order, hard links sharing an `inode` key, xattrs
 * sorted by name (unreadable ones skipped), symlinks never followed.
 */
import { createReadStream, type Stats } from "node:fs";
import { join } from "node:path";
import {
  compareNames,
  type FileTree,
  ImageModeError,
  type TreeEntry,
  throwIfAborted,
  toImageModeError,
  typeFromMode,
} from "@imagemode/core";
import { type DirectIo, yieldToLoop } from "./direct-io.js";

const OP = "core.readHostDirectory";
/** Files up to this size are read with one synchronous read when their content is asked for. */
const SMALL_FILE = 512 * 1024;
/** Entries between two turns of the event loop. */
const BATCH = 256;

/** Options of {@link readHostTreeDirect}. */
export interface HostTreeOptions {
  /** Read xattrs (needs `io.xattrs`). */
  xattrs: boolean;
  signal?: AbortSignal;
}

/** Reads `root` (root entry `.` first) with synchronous calls. */
export async function* readHostTreeDirect(
  io: DirectIo,
  root: string,
  options: HostTreeOptions,
): FileTree {
  const fs = io.fs;
  const stat = (p: string): Stats => {
    try {
      return fs.lstatSync(p);
    } catch (e) {
      throw toImageModeError(e, OP, { path: p });
    }
  };
  const rootStat = stat(root);
  if (!rootStat.isDirectory())
    throw new ImageModeError("INVALID_ARGUMENT", `${root} is not a directory`, { op: OP });

  const entryFor = (abs: string, rel: string, st: Stats): TreeEntry => {
    const type = typeFromMode(st.mode);
    const entry: TreeEntry = {
      path: rel,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: Math.floor(st.mtimeMs / 1000),
    };
    if (type === "file") {
      const size = st.size;
      entry.size = size;
      if (st.nlink > 1) entry.inode = `${st.dev}:${st.ino}`;
      entry.content =
        size <= SMALL_FILE
          ? async () => oneChunk(fs.readFileSync(abs))
          : async () => createReadStream(abs, { highWaterMark: 256 * 1024 });
    } else if (type === "symlink") {
      try {
        entry.linkTarget = fs.readlinkSync(abs);
      } catch (e) {
        throw toImageModeError(e, OP, { path: abs });
      }
    } else if (type === "chardev" || type === "blockdev") {
      entry.rdev = st.rdev;
    }
    if (options.xattrs && io.xattrs && type !== "symlink") {
      const x = readXattrs(io, abs);
      if (x.size > 0) entry.xattrs = x;
    }
    return entry;
  };

  yield entryFor(root, ".", rootStat);
  let n = 0;
  // an explicit stack of directories still to list: [relative path, sorted names, next index]
  const stack: { rel: string; names: string[]; i: number }[] = [];
  const list = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch (e) {
      throw toImageModeError(e, OP, { path: abs });
    }
    stack.push({ rel, names: names.sort(compareNames), i: 0 });
  };
  list("");
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.names.length) {
      stack.pop();
      continue;
    }
    const name = top.names[top.i++]!;
    const rel = top.rel ? `${top.rel}/${name}` : name;
    const abs = join(root, rel);
    const st = stat(abs);
    yield entryFor(abs, rel, st);
    if (st.isDirectory()) list(rel);
    if (++n % BATCH === 0) {
      await yieldToLoop();
      throwIfAborted(options.signal, OP);
    }
  }
}

function readXattrs(io: DirectIo, path: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const x = io.xattrs!;
  let names: string[];
  try {
    names = x.list(path);
  } catch {
    return out;
  }
  for (const n of [...names].sort(compareNames)) {
    try {
      const v = x.get(path, n);
      if (v) out.set(n, v);
    } catch {
      // unreadable (e.g. trusted.* as non-root): skipped, as readHostDirectory does
    }
  }
  return out;
}

async function* oneChunk(b: Uint8Array): AsyncIterable<Uint8Array> {
  if (b.byteLength > 0) yield b;
}
