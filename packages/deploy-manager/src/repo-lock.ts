/**
 * The sysroot repository's write lock after a crash. ostree-store takes `tmp/imagemode.lock` in
 * the repository (a directory holding its owner: an `owner` file `<pid> <host> <token>`, or a
 * `pid` file in earlier versions) and takes over a lock whose owner process is dead. Two cases
 * are left for the caller, and handled here before an upgrade, install or cleanup starts:
 *
 * - a lock directory without any owner file (an earlier ostree-store crashed between creating
 *   the directory and writing its owner): nobody can ever release it, so once it is older than
 *   a grace period it is removed (renamed away first, so two recovering processes cannot both
 *   act on it);
 * - a lock held by a live process: the operation fails at once with a typed `CONFLICT` naming
 *   the owner, instead of waiting for ostree-store's lock timeout.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import {
  ImageModeError,
  isImageModeError,
  type OpOptions,
  toImageModeError,
} from "@imagemode/core";
import { nodeSysrootFs, type SysrootFs } from "./sysroot-fs.js";

/** The lock directory ostree-store takes inside a repository. */
export const REPO_LOCK_DIR = "tmp/imagemode.lock";

/** What {@link checkRepoLock} found. */
export interface RepoLockState {
  /** `free`: no lock; `stale`: the owner is dead (ostree-store takes it over); `removed`: a lock without owner was removed; `held`: a live owner. */
  state: "free" | "stale" | "removed" | "held";
  /** The lock directory. */
  path: string;
  pid?: number;
  host?: string;
}

/** Options of {@link checkRepoLock}. */
export interface RepoLockOptions extends OpOptions {
  fs?: SysrootFs;
  /** A lock without owner younger than this may still be being created (default 10 s). */
  graceMs?: number;
  /** Wall clock in ms (default `Date.now`). */
  now?: () => number;
  /** This host's name, to tell our processes from another host's (default `os.hostname()`). */
  hostname?: string;
  /** Whether a pid is a running process of this host (default `process.kill(pid, 0)`). */
  processAlive?: (pid: number) => boolean;
  /** Throw `CONFLICT` when a live process holds the lock (default true). */
  failIfHeld?: boolean;
}

function defaultAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readOwner(
  fs: SysrootFs,
  dir: string,
): Promise<{ pid: number; host?: string } | null> {
  for (const name of ["owner", "pid"]) {
    let text: string;
    try {
      text = await fs.readFile(join(dir, name), "utf8");
    } catch {
      continue;
    }
    const [pid, host] = text.trim().split(/\s+/);
    const n = Number(pid);
    if (Number.isSafeInteger(n) && n > 0) return host ? { pid: n, host } : { pid: n };
  }
  return null;
}

/**
 * Looks at the repository lock before an operation that takes it: removes a lock that has no
 * owner and is older than the grace period, and (by default) throws `CONFLICT` when a live
 * process of this host holds it. A lock of a dead process is reported `stale` and left to
 * ostree-store, which takes it over atomically.
 *
 * @throws ImageModeError `CONFLICT` (data: `lockPath`, `pid`, `host`) when the lock is held.
 */
export async function checkRepoLock(
  repoPath: string,
  options: RepoLockOptions = {},
): Promise<RepoLockState> {
  const fs = options.fs ?? nodeSysrootFs;
  const op = "deploy.repoLock";
  const path = join(repoPath, REPO_LOCK_DIR);
  const now = options.now ?? Date.now;
  const alive = options.processAlive ?? defaultAlive;
  const host = options.hostname ?? hostname();
  let st: Awaited<ReturnType<SysrootFs["lstat"]>>;
  try {
    st = await fs.lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { state: "free", path };
    throw toImageModeError(e, op, { path });
  }
  const owner = await readOwner(fs, path);
  if (!owner) {
    if (now() - st.mtimeMs < (options.graceMs ?? 10_000)) return { state: "held", path };
    const away = `${path}.stale-${process.pid}-${now()}`;
    try {
      await fs.rename(path, away);
      await fs.rm(away, { recursive: true, force: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") throw toImageModeError(e, op, { path });
    }
    options.onProgress?.({
      type: "warn",
      task: op,
      message: `removed a repository lock without owner left by a crash: ${path}`,
    });
    return { state: "removed", path };
  }
  const ours = owner.host === undefined || owner.host === host;
  const base = { path, pid: owner.pid, ...(owner.host ? { host: owner.host } : {}) };
  if (ours && owner.pid !== process.pid && !alive(owner.pid)) return { state: "stale", ...base };
  if (options.failIfHeld !== false && !(ours && owner.pid === process.pid))
    throw repoLockedError(repoPath, base);
  return { state: "held", ...base };
}

/** The `CONFLICT` error of a held repository lock. */
export function repoLockedError(
  repoPath: string,
  owner: { pid?: number; host?: string },
  cause?: unknown,
): ImageModeError {
  const who =
    owner.pid === undefined
      ? "another process"
      : `process ${owner.pid}${owner.host ? ` on ${owner.host}` : ""}`;
  return new ImageModeError(
    "CONFLICT",
    `The sysroot repository ${repoPath} is locked by ${who} (another upgrade, install or cleanup is running); try again when it has finished`,
    {
      op: "deploy.repoLock",
      data: { lockPath: join(repoPath, REPO_LOCK_DIR), ...owner },
      ...(cause ? { cause } : {}),
    },
  );
}

/**
 * Runs `fn` (an ostree-store call that takes the repository lock) and turns ostree-store's lock
 * timeout (`CONFLICT` from `ostree.lock`) into {@link repoLockedError}.
 */
export async function withRepoLock<T>(repoPath: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isImageModeError(e, "CONFLICT") && e.op === "ostree.lock") {
      const d = (e.data ?? {}) as { pid?: unknown; host?: unknown };
      throw repoLockedError(
        repoPath,
        {
          ...(typeof d.pid === "number" ? { pid: d.pid } : {}),
          ...(typeof d.host === "string" ? { host: d.host } : {}),
        },
        e,
      );
    }
    throw e;
  }
}
