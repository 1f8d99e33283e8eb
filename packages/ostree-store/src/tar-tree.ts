/**
 * A tar stream as a core {@link FileTree} (what `ostree commit --tree=tar=` reads). Entries are
 * produced in archive order; each file's content must be read before the next entry (the commit
 * writer does exactly that), so nothing is buffered.
 */
import {
  type ByteStream,
  type FileTree,
  invalidArgument,
  normalizeTreePath,
  type TreeEntry,
} from "@imagemode/core";
import { readTar } from "./import/tar.js";

/** Options of {@link tarFileTree}. */
export interface TarFileTreeOptions {
  signal?: AbortSignal;
}

/**
 * Reads a tar stream into tree entries: `./` is the root entry `.`, hard links share the
 * `inode` key of their target (a link to a path not seen earlier in the archive is
 * `INVALID_ARGUMENT`), pax xattrs are kept. Devices and fifos come through as such (the
 * commit writer refuses them with `UNSUPPORTED`).
 */
export async function* tarFileTree(stream: ByteStream, options: TarFileTreeOptions = {}): FileTree {
  const keys = new Map<string, string>();
  let serial = 0;
  for await (const t of readTar(stream, { signal: options.signal, op: "ostree.commit.tar" })) {
    const stripped = t.path.replace(/^(\.\/|\/)+/, "");
    const path =
      stripped === "" || stripped === "." || stripped === "./" ? "." : normalizeTreePath(t.path);
    const e: TreeEntry = {
      path,
      type: "file",
      mode: t.mode & 0o7777,
      uid: t.uid,
      gid: t.gid,
      mtime: t.mtime,
    };
    if (t.xattrs.length > 0) e.xattrs = new Map(t.xattrs);
    switch (t.type) {
      case "file": {
        const key = `${path}#${serial++}`;
        keys.set(path, key);
        e.size = t.size;
        e.inode = key;
        const body = t.content;
        e.content = async () => body;
        break;
      }
      case "hardlink": {
        const target = normalizeTreePath(t.linkName ?? "");
        const key = keys.get(target);
        if (!key)
          throw invalidArgument(
            `${t.path}: hard link to ${target}, which is not earlier in the archive`,
            { op: "ostree.commit.tar", data: { path: t.path, target } },
          );
        keys.set(path, key);
        e.inode = key;
        break;
      }
      case "symlink":
        e.type = "symlink";
        e.linkTarget = t.linkName ?? "";
        break;
      case "dir":
        e.type = "dir";
        break;
      default:
        e.type = t.type === "blockdev" ? "blockdev" : t.type === "chardev" ? "chardev" : "fifo";
        e.rdev = t.devMajor * 256 + t.devMinor;
    }
    yield e;
  }
}
