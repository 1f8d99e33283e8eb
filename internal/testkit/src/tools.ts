import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { ImageModeError } from "@imagemode/core";

const SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/**
 * Finds a program on `PATH` (plus the sbin directories, which a normal user's `PATH`
 * often lacks: `sgdisk`, `mkfs.ext4`, …). Returns `undefined` when it is missing.
 */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes("/")) {
    try {
      accessSync(name, constants.X_OK);
      return name;
    } catch {
      return undefined;
    }
  }
  const dirs = [...(env.PATH ?? "").split(delimiter).filter(Boolean), ...SBIN_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Throws a clear `HOST` error when a program the test needs is not installed. Tests call
 * this up front instead of skipping: in CI a missing tool must fail the run.
 *
 * @example
 * ```ts
 * requireTool("skopeo");
 * ```
 */
export function requireTool(name: string): void {
  if (findTool(name) === undefined) {
    throw new ImageModeError(
      "HOST",
      `required tool "${name}" is not installed (run scripts/setup, which installs the Debian packages the tests need)`,
      { op: "testkit.requireTool", data: { tool: name } },
    );
  }
}
