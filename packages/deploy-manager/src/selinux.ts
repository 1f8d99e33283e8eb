/**
 * SELinux labels of what a deployment writes outside the commit, as libostree does at deploy:
 * the new deployment's `/etc` (copied from `usr/etc`, then merged) is relabelled as `/etc/…`,
 * and the stateroot's `var` is relabelled as `/var/…` once (until the `.ostree-selabeled`
 * stamp exists). The policy is the deployment's own, read from its merged `etc/selinux`
 * (else `usr/etc/selinux`); a deployment without one labels nothing.
 */
import { join } from "node:path";
import {
  compileFileContexts,
  type FileContexts,
  ImageModeError,
  isImageModeError,
  loadFileContextsSources,
  loadXattrBackend,
  readAll,
  SELINUX_XATTR,
  selinuxXattrValue,
  type TreeEntryType,
  throwIfAborted,
} from "@imagemode/core";
import type { OstreeRepo } from "@imagemode/ostree-store";
import type { SysrootFs } from "./sysroot-fs.js";

const OP = "deploy.selinux";

/** Sets one extended attribute on a path without following a final symlink. */
export type SetXattr = (path: string, name: string, value: Uint8Array) => Promise<void>;

/** How a deployment is labelled (the `selinux` option of deploy and finalize). */
export interface DeploySelinuxOptions {
  /**
   * `"auto"` (default): label when the deployment carries a policy; when the host refuses
   * `security.selinux` (not root: EPERM; no xattr support) a `warn` progress event says so and
   * the deployment goes on unlabelled. `"require"`: such a refusal is an error. `"off"`: never.
   */
  mode?: "auto" | "require" | "off";
  /** Writes the xattr (default: core's xattr backend, `@napi-rs/xattr`). */
  setXattr?: SetXattr;
}

/**
 * The compiled file contexts of a deployment directory's policy: `etc/selinux/config` (the
 * merged `/etc`, as libostree reads it) else `usr/etc/selinux/config`, then that policy's
 * `file_contexts` and siblings; `null` when there is no config or it names no `SELINUXTYPE`.
 */
export async function deploymentFileContexts(
  fs: SysrootFs,
  deploymentDir: string,
): Promise<FileContexts | null> {
  const root = await fs.realpath(deploymentDir);
  // Symlinks are followed only while they stay inside the deployment (an absolute link would
  // otherwise read the host's policy); a path leaving it counts as absent.
  const read = (base: string) => async (rel: string) => {
    try {
      const real = await fs.realpath(join(deploymentDir, base, rel));
      if (!real.startsWith(`${root}/`)) return null;
      return (await fs.readFile(real)).toString();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") return null;
      throw e;
    }
  };
  for (const base of ["etc", "usr/etc"]) {
    const loaded = await loadFileContextsSources(read(base));
    if (loaded !== null) return compileFileContexts(loaded.sources);
    if ((await read(base)("selinux/config")) !== null) return null; // config without a type
  }
  return null;
}

/**
 * The compiled file contexts of the policy a commit carries in `usr/etc/selinux` (what a fresh
 * deployment's `/etc` holds), or `null` when it has none.
 */
export async function commitFileContexts(
  repo: OstreeRepo,
  commit: string,
  options: { signal?: AbortSignal } = {},
): Promise<FileContexts | null> {
  const loaded = await loadFileContextsSources(async (rel) => {
    try {
      const bytes = await readAll(await repo.cat(commit, `usr/etc/${rel}`), 64 * 1024 * 1024, {
        what: `usr/etc/${rel}`,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
    } catch (e) {
      // absent, or a directory or symlink where a policy file should be: no policy there
      if (isImageModeError(e, "NOT_FOUND", "INVALID_ARGUMENT")) return null;
      throw e;
    }
  });
  return loaded === null ? null : compileFileContexts(loaded.sources);
}

function typeOf(st: {
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFile(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isFIFO(): boolean;
}): TreeEntryType {
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFile()) return "file";
  if (st.isCharacterDevice()) return "chardev";
  if (st.isBlockDevice()) return "blockdev";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

/** Options of {@link labelDirectory}. */
export interface LabelDirectoryOptions {
  /** The runtime path `dir` is at (`/etc`, `/var`). */
  runtimePath: string;
  setXattr: SetXattr;
  signal?: AbortSignal;
}

/**
 * Labels a directory tree in place, the directory itself included: every entry gets the
 * context of its runtime path and file type (`restorecon -R`; entries the policy does not
 * label keep what they have). Symlinks are labelled themselves, never followed. Returns the
 * number of entries labelled.
 */
export async function labelDirectory(
  fs: SysrootFs,
  dir: string,
  contexts: FileContexts,
  options: LabelDirectoryOptions,
): Promise<number> {
  const values = new Map<string, Uint8Array>();
  let n = 0;
  const walk = async (path: string, runtime: string): Promise<void> => {
    throwIfAborted(options.signal, OP);
    const st = await fs.lstat(path);
    const type = typeOf(st);
    const context = contexts.lookup(runtime, type);
    if (context !== null) {
      let v = values.get(context);
      if (v === undefined) {
        v = selinuxXattrValue(context);
        values.set(context, v);
      }
      await options.setXattr(path, SELINUX_XATTR, v);
      n++;
    }
    if (type === "dir") {
      for (const name of (await fs.readdir(path)).sort())
        await walk(join(path, name), runtime === "/" ? `/${name}` : `${runtime}/${name}`);
    }
  };
  await walk(dir, options.runtimePath);
  return n;
}

/**
 * The xattr writer for a deployment's labels, or `null` when labelling is off or impossible
 * here in `"auto"` mode (the reason goes to `warn`).
 */
export function selinuxWriter(
  options: DeploySelinuxOptions | undefined,
  warn: (message: string) => void,
): SetXattr | null {
  const mode = options?.mode ?? "auto";
  if (mode === "off") return null;
  if (options?.setXattr) return options.setXattr;
  const backend = loadXattrBackend();
  if (backend) return (p, name, value) => backend.set(p, name, value);
  if (mode === "require")
    throw new ImageModeError(
      "UNSUPPORTED",
      "SELinux labels need an xattr backend (@napi-rs/xattr), which is not available",
      { op: OP },
    );
  warn("SELinux labels not written: no xattr backend (@napi-rs/xattr)");
  return null;
}

/**
 * Labels `dir` as `runtimePath` with the deployment's policy. In `"auto"` mode a host that
 * refuses `security.selinux` (EPERM, ENOTSUP) is reported through `warn` and leaves the rest
 * unlabelled; in `"require"` mode it is a `HOST` (EPERM) or `UNSUPPORTED` error.
 */
export async function labelDeploymentPath(
  fs: SysrootFs,
  dir: string,
  contexts: FileContexts,
  runtimePath: string,
  options: {
    setXattr: SetXattr;
    mode: DeploySelinuxOptions["mode"];
    warn: (message: string) => void;
    signal?: AbortSignal;
  },
): Promise<number> {
  try {
    return await labelDirectory(fs, dir, contexts, {
      runtimePath,
      setXattr: options.setXattr,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EPERM" || code === "EACCES" || code === "ENOTSUP" || code === "EOPNOTSUPP") {
      const message = `SELinux labels of ${runtimePath} not written: ${(e as Error).message}`;
      if ((options.mode ?? "auto") === "auto") {
        options.warn(message);
        return 0;
      }
      throw new ImageModeError(
        code === "ENOTSUP" || code === "EOPNOTSUPP" ? "UNSUPPORTED" : "HOST",
        message,
        {
          op: OP,
          data: { path: dir, errno: code },
        },
      );
    }
    throw e;
  }
}

/**
 * Maps the paths of a rendered sysroot `FileTree` (relative to the sysroot) to the runtime
 * paths libostree labels at deploy: `ostree/deploy/<stateroot>/deploy/<name>/etc/…` → `/etc/…`
 * for the given deployments, `ostree/deploy/<stateroot>/var/…` → `/var/…` for the given
 * stateroots; everything else `null` (left as the commit labelled it). Use it as
 * `labelFileTree(tree, contexts, { mapPath, overwrite: true })`.
 */
export function sysrootSelinuxPaths(options: {
  deployments: ReadonlyArray<{ stateroot: string; name: string }>;
  stateroots: readonly string[];
}): (treePath: string) => string | null {
  const prefixes: Array<[string, string]> = [];
  for (const d of options.deployments)
    prefixes.push([`ostree/deploy/${d.stateroot}/deploy/${d.name}/etc`, "/etc"]);
  for (const s of options.stateroots) prefixes.push([`ostree/deploy/${s}/var`, "/var"]);
  return (p) => {
    for (const [prefix, runtime] of prefixes) {
      if (p === prefix) return runtime;
      if (p.startsWith(`${prefix}/`)) return runtime + p.slice(prefix.length);
    }
    return null;
  };
}
