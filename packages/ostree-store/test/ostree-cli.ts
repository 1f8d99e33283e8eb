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
      env: { ...process.env, LC_ALL: "C" },
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
