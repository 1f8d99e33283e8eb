import { run } from "./internal/exec.js";
import { findTool, requireTool } from "./tools.js";

/** Options of {@link ostreeCli} calls. */
export interface OstreeCliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Uint8Array;
  signal?: AbortSignal;
  /** Kill the command after this many milliseconds (default 300 000). */
  timeoutMs?: number;
}

/** Output of a successful `ostree` run. */
export interface OstreeCliResult {
  stdout: string;
  stderr: string;
}

/**
 * The real `ostree` CLI (Debian 2022.7), the oracle imagemode's OSTree code is checked
 * against. A non-zero exit throws a `HOST` error with the tail of stderr.
 */
export interface OstreeCli {
  /** Whether the `ostree` binary is installed. */
  available(): boolean;
  /** `ostree <args>`. */
  run(args: readonly string[], options?: OstreeCliOptions): Promise<OstreeCliResult>;
  /**
   * `ostree admin <args>`. As root it runs under
   * `setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin`: ostree 2022.7's
   * `admin deploy` FIFREEZEs the filesystem holding `<sysroot>/boot` — with the sysroot in
   * /tmp that would be the host's root fs. Without CAP_SYS_ADMIN the freeze fails with EPERM
   * and ostree falls back to syncfs.
   */
  admin(args: readonly string[], options?: OstreeCliOptions): Promise<OstreeCliResult>;
}

function exec(
  cmd: string,
  args: readonly string[],
  options: OstreeCliOptions,
): Promise<OstreeCliResult> {
  return run(cmd, args, { timeoutMs: 300_000, ...options }).then(({ stdout, stderr }) => ({
    stdout,
    stderr,
  }));
}

/**
 * The `ostree` CLI wrapper.
 *
 * @example
 * ```ts
 * await ostreeCli.run(["init", "--repo", repo, "--mode", "bare-user"]);
 * await ostreeCli.admin(["init-fs", "--modern", sysroot]);
 * ```
 */
export const ostreeCli: OstreeCli = {
  available: () => findTool("ostree") !== undefined,
  run(args, options = {}) {
    requireTool("ostree");
    return exec("ostree", args, options);
  },
  admin(args, options = {}) {
    requireTool("ostree");
    if (process.getuid?.() === 0) {
      requireTool("setpriv");
      return exec(
        "setpriv",
        ["--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "ostree", "admin", ...args],
        options,
      );
    }
    return exec("ostree", ["admin", ...args], options);
  },
};
