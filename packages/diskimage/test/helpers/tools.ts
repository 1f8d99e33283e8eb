import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const pexec = promisify(execFile);

/** Runs a host tool; resolves stdout/stderr and the exit code (never throws on a non-zero exit). */
export async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await pexec(cmd, args, { maxBuffer: 64 << 20, env: { ...process.env, ...env } });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; code?: number | string };
    if (typeof x.code === "string") throw e; // ENOENT: tool missing — fails the test (also in CI)
    return { stdout: x.stdout ?? "", stderr: x.stderr ?? "", code: x.code ?? 1 };
  }
}

/** A temp dir removed afterwards. */
export async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "diskimage-test-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The sbin directories are not always on a normal user's PATH. */
export const SBIN_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`;
export const sbinEnv = { PATH: SBIN_PATH };
