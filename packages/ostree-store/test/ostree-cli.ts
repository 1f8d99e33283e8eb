import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** Runs the real ostree CLI (the oracle). */
export async function ostree(args: string[]): Promise<string> {
  try {
    const { stdout } = await exec("ostree", args, {
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, LC_ALL: "C.UTF-8" },
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ostree ${args.join(" ")} failed: ${err.stderr ?? err.message}`);
  }
}

/** Fails (never skips) when the ostree CLI is missing. */
export async function requireOstree(): Promise<void> {
  await exec("ostree", ["--version"]).catch(() => {
    throw new Error("the ostree CLI is required for these tests (apt-get install ostree)");
  });
}

/** A temp dir removed by the returned cleanup. */
export async function tempDir(
  prefix = "ostree-store-",
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Runs a shell snippet (set -eu) in a directory. */
export async function sh(cwd: string, script: string): Promise<string> {
  const { stdout } = await exec("bash", ["-c", `set -euo pipefail\n${script}`], {
    cwd,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** One entry of a {@link snapshot}. */
export interface SnapEntry {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  target?: string;
  xattrs?: string;
}

/**
 * Everything checkouts must preserve about a directory tree (type, mode, owner, size, content
 * hash, symlink target, user.* xattrs), sorted by path. The root's own metadata included.
 */
export async function snapshot(
  root: string,
  options: { xattrs?: boolean } = {},
): Promise<SnapEntry[]> {
  const { lstat, readdir, readlink } = await import("node:fs/promises");
  const { createHash } = await import("node:crypto");
  const { createReadStream } = await import("node:fs");
  const { loadXattrBackend } = await import("@imagemode/core");
  const xb = options.xattrs ? loadXattrBackend() : null;
  const out: SnapEntry[] = [];
  const visit = async (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    const st = await lstat(abs);
    const e: SnapEntry = {
      path: rel || ".",
      type: st.isDirectory()
        ? "dir"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isFile()
            ? "file"
            : "other",
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.isFile() ? st.size : 0,
    };
    if (st.isFile()) {
      const h = createHash("sha256");
      for await (const c of createReadStream(abs)) h.update(c as Buffer);
      e.sha256 = h.digest("hex");
    }
    if (st.isSymbolicLink()) e.target = await readlink(abs);
    if (xb && !st.isSymbolicLink()) {
      const names = (await xb.list(abs)).filter((n) => n.startsWith("user.")).sort();
      const parts: string[] = [];
      // ostree drops xattrs with empty values (libglnx), so they are not compared
      for (const n of names) {
        const v = (await xb.get(abs, n)) ?? new Uint8Array(0);
        if (v.length > 0) parts.push(`${n}=${Buffer.from(v).toString("hex")}`);
      }
      if (parts.length) e.xattrs = parts.join(",");
    }
    out.push(e);
    if (st.isDirectory())
      for (const n of (await readdir(abs)).sort()) await visit(rel ? `${rel}/${n}` : n);
  };
  await visit("");
  return out;
}
