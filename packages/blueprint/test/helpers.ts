import { execFile } from "node:child_process";
import { chmod, copyFile, lchown, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { requireTool } from "@imagemode/testkit";
import { parseColonFile, toPasswdEntry } from "../src/index.js";

const execFileP = promisify(execFile);

export const ACCOUNT_FILES = ["passwd", "group", "shadow", "gshadow", "login.defs"] as const;

/** Runs a command; returns exit code, stdout and stderr (never throws on a non-zero exit). */
export async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  requireTool(cmd);
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { encoding: "utf8" });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === "number" ? err.code : -1,
      stdout: err.stdout ?? "",
      stderr: err.stderr ?? "",
    };
  }
}

/** Runs a shadow-utils tool with `-R root`; as a normal user inside `unshare -r` (chroot needs CAP_SYS_CHROOT). */
export function asRootIn(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  if (process.getuid?.() === 0) return run(cmd, args);
  requireTool(cmd);
  return run("unshare", ["-r", cmd, ...args]);
}

/**
 * Makes an image-like root from an `/etc` that holds real account files: the files are copied
 * (modes kept), and the homes and shells the entries name exist, as they would in the image.
 */
export async function makeRoot(
  root: string,
  etcSource: string,
  extraShells: string[] = [],
): Promise<void> {
  await mkdir(join(root, "etc"), { recursive: true });
  for (const f of ACCOUNT_FILES) {
    const src = join(etcSource, f);
    const dst = join(root, "etc", f);
    await copyFile(src, dst);
    const st = await stat(src);
    await chmod(dst, st.mode & 0o7777);
    if (process.getuid?.() === 0) await lchown(dst, st.uid, st.gid);
  }
  const passwd = parseColonFile(await readFile(join(root, "etc/passwd"), "utf8"));
  const shells = new Set(extraShells);
  for (const l of passwd.lines) {
    if (l.kind !== "entry") continue;
    const e = toPasswdEntry(l.fields);
    if (!e) continue;
    if (e.home && e.home !== "/nonexistent") await mkdir(join(root, e.home), { recursive: true });
    if (e.shell) shells.add(e.shell);
  }
  for (const s of shells) {
    await mkdir(dirname(join(root, s)), { recursive: true });
    await writeFile(join(root, s), "#!/bin/sh\n", { mode: 0o755 });
  }
}
