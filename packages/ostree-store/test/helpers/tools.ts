import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const HELPERS = dirname(fileURLToPath(import.meta.url));

/** True when a binary is on PATH. In CI a missing tool fails the test instead of skipping it. */
export function haveTool(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.CI) throw new Error(`required tool ${name} is not installed`);
    return false;
  }
}

export function makeTemp(prefix = "imagemode-ostree-import-"): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; input?: Uint8Array } = {},
): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    stdio: ["pipe", "pipe", "pipe"],
    ...opts,
  });
}

/** Python's tarfile listing of an archive (an independent tar implementation). */
export interface OracleEntry {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  link?: string;
  xattrs: [string, string][];
  sha256?: string;
}
export function oracleList(tarPath: string): OracleEntry[] {
  return JSON.parse(run("python3", [join(HELPERS, "tar-oracle.py"), tarPath])) as OracleEntry[];
}

export function makeHostileTars(dir: string, symlinkTarget?: string): void {
  run("python3", [join(HELPERS, "make-tars.py"), dir, ...(symlinkTarget ? [symlinkTarget] : [])]);
}
