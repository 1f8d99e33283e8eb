import { execFile } from "node:child_process";
import { createWriteStream } from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import {
  type FileTree,
  ImageModeError,
  invalidArgument,
  type OpOptions,
  ROOT_PATH,
  type TreeEntry,
  throwIfAborted,
  toImageModeError,
  unsupported,
} from "@imagemode/core";
import type { BlockSink } from "./block-sink.js";

/** Runs a program; resolves on exit status 0, rejects otherwise (with stderr in the message). */
export type ExecFn = (
  file: string,
  args: string[],
  options?: { signal?: AbortSignal },
) => Promise<{ stdout: string; stderr: string }>;

/** The default {@link ExecFn}: `child_process.execFile`, with `/usr/sbin` and `/sbin` added to PATH. */
export const execHost: ExecFn = (file, args, options) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        maxBuffer: 16 << 20,
        env: { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` },
        ...(options?.signal ? { signal: options.signal } : {}),
      },
      (err, stdout, stderr) => {
        if (err) reject(Object.assign(err, { stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
  });

/** Options of {@link writeXfs}. */
export interface XfsOptions extends OpOptions {
  /** Filesystem size in bytes (mkfs.xfs 6.x refuses less than 300 MiB). */
  size: number;
  label?: string;
  uuid?: string;
  /** Directory for the staging area (default `os.tmpdir()`); removed afterwards. */
  tmpDir?: string;
  /** How `mkfs.xfs` is run (default {@link execHost}). */
  exec?: ExecFn;
}

/** What {@link writeXfs} wrote. */
export interface XfsResult {
  files: number;
  directories: number;
  /** Entries the protofile cannot express as the tree has them (warnings were emitted). */
  warnings: string[];
}

/** `major`/`minor` of a Linux `dev_t` (glibc's `gnu_dev_major`/`gnu_dev_minor`). */
function devNumbers(rdev: number): [number, number] {
  const r = BigInt(rdev);
  const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
  const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
  return [major, minor];
}

const TOKEN_OK = /^[^\s:$]+$/;

function modeString(e: TreeEntry, typeChar: string): string {
  return `${typeChar}${e.mode & 0o4000 ? "u" : "-"}${e.mode & 0o2000 ? "g" : "-"}${(e.mode & 0o777).toString(8).padStart(3, "0")}`;
}

/**
 * Builds an XFS filesystem holding `tree` with `mkfs.xfs -p protofile` (unprivileged: it formats a
 * plain file) and writes it into `sink`. File contents are staged as files in a temporary directory
 * and named in the protofile; ownership, permissions, setuid/setgid, devices, fifos and symlinks come
 * from the protofile. What the protofile (xfsprogs 6.1) cannot say is reported with `warn` events:
 * hard links become copies, the sticky bit, mtimes and xattrs are lost, sockets are skipped. Names
 * with whitespace or `:` cannot be expressed and are rejected (`UNSUPPORTED`).
 */
export async function writeXfs(
  tree: FileTree,
  sink: BlockSink,
  options: XfsOptions,
): Promise<XfsResult> {
  const op = "diskimage.xfs";
  const { signal, onProgress } = options;
  const exec = options.exec ?? execHost;
  const warnings: string[] = [];
  const warn = (message: string, code: string) => {
    warnings.push(message);
    onProgress?.({ type: "warn", task: "disk.xfs", message, code });
  };
  const stage = await fsp.mkdtemp(join(options.tmpDir ?? tmpdir(), "imagemode-xfs-"));
  try {
    const filesDir = join(stage, "files");
    await fsp.mkdir(filesDir);
    // directory tree in memory (metadata only); contents staged as they stream by
    interface PNode {
      e: TreeEntry;
      name: string;
      children: PNode[];
      staged?: string;
    }
    const root: PNode = {
      e: { path: ROOT_PATH, type: "dir", mode: 0o755, uid: 0, gid: 0 },
      name: "",
      children: [],
    };
    const dirs = new Map<string, PNode>([["", root]]);
    const linkSeen = new Map<string, string>();
    let files = 0;
    let directories = 0;
    let hardLinks = 0;
    let sticky = 0;
    let xattrs = 0;
    for await (const e of tree) {
      throwIfAborted(signal, op);
      if (e.path === ROOT_PATH) {
        root.e = e;
        continue;
      }
      const slash = e.path.lastIndexOf("/");
      const parent = dirs.get(slash >= 0 ? e.path.slice(0, slash) : "");
      const name = e.path.slice(slash + 1);
      if (!parent)
        throw invalidArgument(`${e.path}: parent directory not in the tree before it`, {
          op,
          data: { path: e.path },
        });
      if (!TOKEN_OK.test(name))
        throw unsupported(
          `${e.path}: mkfs.xfs protofiles cannot express names with whitespace, ':' or '$'`,
          { op, data: { path: e.path } },
        );
      if (e.type === "socket") {
        warn(`xfs protofile cannot create sockets: skipped ${e.path}`, "XFS_SOCKET_SKIPPED");
        continue;
      }
      if (e.mode & 0o1000) sticky++;
      if (e.xattrs && e.xattrs.size > 0) xattrs++;
      const node: PNode = { e, name, children: [] };
      if (e.type === "file") {
        files++;
        const key = e.inode;
        const already = key ? linkSeen.get(key) : undefined;
        if (already) {
          node.staged = already;
          hardLinks++;
        } else {
          const p = join(filesDir, String(files));
          if (e.content && (e.size ?? 0) > 0)
            await pipeline(
              await e.content(),
              createWriteStream(p),
              ...(signal ? [{ signal }] : []),
            );
          else await fsp.writeFile(p, new Uint8Array());
          const st = await fsp.stat(p);
          if (e.size !== undefined && st.size !== e.size)
            throw new ImageModeError(
              "SIZE_MISMATCH",
              `${e.path}: content has ${st.size} bytes, the tree says ${e.size}`,
              { op, data: { path: e.path } },
            );
          node.staged = p;
          if (key) linkSeen.set(key, p);
        }
      } else if (e.type === "symlink") {
        if (!e.linkTarget || !TOKEN_OK.test(e.linkTarget))
          throw unsupported(
            `${e.path}: mkfs.xfs protofiles cannot express symlink target ${JSON.stringify(e.linkTarget)}`,
            { op, data: { path: e.path } },
          );
      } else if (e.type === "dir") {
        directories++;
        dirs.set(e.path, node);
      }
      parent.children.push(node);
    }
    if (hardLinks > 0)
      warn(
        `xfs via mkfs.xfs protofile: ${hardLinks} hard link(s) became separate copies`,
        "XFS_HARDLINKS_COPIED",
      );
    if (sticky > 0)
      warn(
        `xfs via mkfs.xfs protofile: the sticky bit of ${sticky} entr(y/ies) is lost`,
        "XFS_STICKY_LOST",
      );
    if (xattrs > 0)
      warn(
        `xfs via mkfs.xfs protofile: xattrs of ${xattrs} entr(y/ies) are lost`,
        "XFS_XATTRS_LOST",
      );
    warn(
      "xfs via mkfs.xfs protofile: modification times are the build time, not the tree's",
      "XFS_MTIME_LOST",
    );
    // protofile
    const lines: string[] = ["/dev/null", "0 0"];
    const emit = (n: PNode, depth: number) => {
      const ind = "  ".repeat(depth);
      const e = n.e;
      const own = `${e.uid} ${e.gid}`;
      if (n === root) lines.push(`${modeString(e, "d")} ${own}`);
      else if (e.type === "dir") lines.push(`${ind}${n.name} ${modeString(e, "d")} ${own}`);
      else if (e.type === "file")
        lines.push(`${ind}${n.name} ${modeString(e, "-")} ${own} ${n.staged}`);
      else if (e.type === "symlink")
        lines.push(`${ind}${n.name} ${modeString(e, "l")} ${own} ${e.linkTarget}`);
      else if (e.type === "chardev" || e.type === "blockdev")
        lines.push(
          `${ind}${n.name} ${modeString(e, e.type === "chardev" ? "c" : "b")} ${own} ${devNumbers(e.rdev ?? 0).join(" ")}`,
        );
      else if (e.type === "fifo") lines.push(`${ind}${n.name} ${modeString(e, "p")} ${own}`);
      if (e.type === "dir" || n === root) {
        for (const c of n.children) emit(c, depth + 1);
        lines.push(`${ind}$`);
      }
    };
    emit(root, 0);
    const proto = join(stage, "proto");
    await fsp.writeFile(proto, `${lines.join("\n")}\n`);
    const img = join(stage, "xfs.img");
    const fh = await fsp.open(img, "w");
    await fh.truncate(options.size);
    await fh.close();
    const args = ["-q", "-f", "-p", proto];
    if (options.label) args.push("-L", options.label);
    if (options.uuid) args.push("-m", `uuid=${options.uuid}`);
    args.push(img);
    onProgress?.({ type: "start", task: "disk.xfs", description: "mkfs.xfs -p protofile" });
    try {
      await exec("mkfs.xfs", args, signal ? { signal } : {});
    } catch (e) {
      const x = e as { code?: unknown; stderr?: string };
      if (x.code === "ENOENT")
        throw new ImageModeError("HOST", "mkfs.xfs not found (install xfsprogs)", { op, cause: e });
      throw new ImageModeError("HOST", `mkfs.xfs failed: ${(x.stderr ?? String(e)).trim()}`, {
        op,
        cause: e,
      });
    }
    await copyFileIntoSink(img, sink, options.size, signal, (done) =>
      onProgress?.({ type: "bytes", task: "disk.xfs", done, total: options.size }),
    );
    onProgress?.({ type: "done", task: "disk.xfs" });
    return { files, directories, warnings };
  } catch (e) {
    throw toImageModeError(e, op);
  } finally {
    await fsp.rm(stage, { recursive: true, force: true });
  }
}

/** Copies a file into a sink in 1 MiB chunks (all-zero chunks over holes stay holes). */
export async function copyFileIntoSink(
  path: string,
  sink: BlockSink,
  limit: number,
  signal?: AbortSignal,
  progress?: (done: number) => void,
): Promise<number> {
  const fh = await fsp.open(path, "r");
  try {
    const st = await fh.stat();
    if (st.size > limit)
      throw invalidArgument(
        `${path} (${st.size} bytes) is larger than the ${limit}-byte partition`,
        { op: "diskimage.copy", data: { path } },
      );
    const buf = new Uint8Array(1 << 20);
    let pos = 0;
    while (pos < st.size) {
      throwIfAborted(signal, "diskimage.copy");
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, st.size - pos), pos);
      if (bytesRead === 0) break;
      await sink.write(pos, buf.subarray(0, bytesRead));
      pos += bytesRead;
      progress?.(pos);
    }
    return pos;
  } finally {
    await fh.close();
  }
}
