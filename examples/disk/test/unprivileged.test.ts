/**
 * `imagemode-disk create` run as an unprivileged user (uid/gid 65534, no groups) on a tree of
 * root-owned and setuid files, with `owner=0:0`: the disk it writes is checked with sgdisk,
 * fsck.vfat, e2fsck/debugfs and xfs_repair/xfs_db. The test itself needs root to make the tree
 * root-owned and to switch users; locally it is skipped when not root, in CI it always runs.
 */
import { execFile } from "node:child_process";
import { chmod, chown, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { extractRange, requireTool, tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const pexec = promisify(execFile);
const NOBODY = 65534;
const PATH = `${process.env.PATH}:/usr/sbin:/sbin`;
const env = { ...process.env, PATH, MTOOLS_SKIP_CHECK: "1", LC_ALL: "C.UTF-8" };
const isRoot = process.getuid?.() === 0;
const mustRun = isRoot || !!process.env.CI;

async function sh(
  cmd: string,
  args: string[],
  cwd?: string,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await pexec(cmd, args, { env, maxBuffer: 32 << 20, ...(cwd ? { cwd } : {}) });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; code?: number | string };
    if (typeof x.code === "string") throw e; // a missing tool fails the test
    return { stdout: x.stdout ?? "", stderr: x.stderr ?? "", code: x.code ?? 1 };
  }
}

/** The bundle is ESM; its CommonJS dependencies (commander, cli-progress) need a `require`. */
const REQUIRE_SHIM =
  'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);';

let work: { path: string; cleanup(): Promise<void> } | undefined;
let cliJs = "";

beforeAll(async () => {
  if (!mustRun) return;
  for (const t of ["setpriv", "sgdisk", "fsck.vfat", "e2fsck", "debugfs", "xfs_repair", "xfs_db"])
    requireTool(t);
  if (!isRoot) throw new Error("this test needs root to hand a root-owned tree to uid 65534");
  work = await tempDir("disk-unpriv-");
  const dir = work.path;
  await chmod(dir, 0o755);
  // the source trees: root-owned, a setuid and a setgid binary, a directory of another owner
  const tree = join(dir, "tree");
  await mkdir(join(tree, "etc"), { recursive: true });
  await mkdir(join(tree, "usr/bin"), { recursive: true });
  await mkdir(join(tree, "var/home/alice"), { recursive: true });
  await writeFile(join(tree, "etc/os-release"), "ID=unpriv\n");
  await writeFile(join(tree, "usr/bin/su"), "#!/bin/sh\necho su\n");
  await chmod(join(tree, "usr/bin/su"), 0o4755);
  await writeFile(join(tree, "usr/bin/wall"), "wall\n");
  await chown(join(tree, "usr/bin/wall"), 0, 5);
  await chmod(join(tree, "usr/bin/wall"), 0o2755);
  await writeFile(join(tree, "var/home/alice/notes"), "alice\n");
  await chown(join(tree, "var/home/alice"), 1000, 1000);
  await chmod(join(tree, "var/home/alice"), 0o755);
  await chown(join(tree, "var/home/alice/notes"), 1000, 1000);
  const esp = join(dir, "esp");
  await mkdir(join(esp, "EFI/BOOT"), { recursive: true });
  await writeFile(join(esp, "EFI/BOOT/BOOTX64.EFI"), Buffer.alloc(50_000, 9));
  expect((await stat(join(tree, "usr/bin/su"))).uid).toBe(0);
  // where the unprivileged user writes
  await mkdir(join(dir, "out"));
  await chown(join(dir, "out"), NOBODY, NOBODY);
  // today's CLI, bundled (with the libraries' source) so the other user can run it
  const bin = join(dir, "bin");
  const config = join(dir, "tsup.config.mjs");
  await writeFile(
    config,
    `export default { entry: { "imagemode-disk": ${JSON.stringify(join(import.meta.dirname, "../src/cli.ts"))} }, outDir: ${JSON.stringify(bin)}, format: ["esm"], target: "node20", dts: false, splitting: false, silent: true, noExternal: [/.*/], banner: { js: ${JSON.stringify(REQUIRE_SHIM)} }, esbuildOptions(o) { o.conditions = ["@imagemode/source"]; } };\n`,
  );
  const b = await sh("pnpm", ["exec", "tsup", "--config", config], join(import.meta.dirname, ".."));
  expect(b.code, b.stderr).toBe(0);
  await chmod(bin, 0o755);
  const built = (await readdir(bin)).find((f) => /^imagemode-disk\.m?js$/.test(f));
  if (!built) throw new Error(`tsup wrote no CLI bundle into ${bin}`);
  cliJs = join(bin, built);
}, 120_000);

afterAll(async () => {
  await work?.cleanup();
});

/** Runs the CLI as uid/gid 65534 without supplementary groups. */
function asNobody(args: string[]) {
  return sh("setpriv", [
    "--reuid",
    `${NOBODY}`,
    "--regid",
    `${NOBODY}`,
    "--clear-groups",
    process.execPath,
    cliJs,
    ...args,
  ]);
}

interface Created {
  output: string;
  partitions: { name: string; fs: string; offset: number; size: number }[];
}

async function create(name: string, rootFs: "ext4" | "xfs"): Promise<Created> {
  const dir = (work as { path: string }).path;
  const out = join(dir, "out", name);
  const r = await asNobody([
    "create",
    out,
    "--size",
    rootFs === "xfs" ? "400MiB" : "200MiB",
    "--seed",
    "unpriv",
    "--json",
    "--part",
    `name=esp,type=esp,size=40MiB,fs=vfat,fslabel=EFI-SYSTEM,from=${join(dir, "esp")},owner=0:0`,
    "--part",
    `name=root,type=root-x86-64,size=fill,fs=${rootFs},fslabel=root,from=${join(dir, "tree")},owner=0:0`,
  ]);
  expect(r.code, r.stderr).toBe(0);
  // written by uid 65534, not by root
  expect((await stat(out)).uid).toBe(NOBODY);
  const res = JSON.parse(r.stdout) as Created;
  const v = await sh("sgdisk", ["-v", out]);
  expect(v.stdout).toContain("No problems found");
  const esp = res.partitions.find((p) => p.name === "esp")!;
  await extractRange(out, esp.offset, esp.size, join(dir, `${name}.esp`));
  const fsck = await sh("fsck.vfat", ["-n", join(dir, `${name}.esp`)]);
  expect(fsck.code, fsck.stdout).toBe(0);
  const mdir = await sh("mdir", ["-i", join(dir, `${name}.esp`), "-b", "::/EFI/BOOT"]);
  expect(mdir.stdout).toContain("BOOTX64.EFI");
  return res;
}

describe("imagemode-disk create as an unprivileged user (setpriv uid 65534)", () => {
  it.skipIf(!mustRun)(
    "vfat ESP + ext4 root from root-owned and setuid files, owner=0:0: sgdisk, fsck.vfat, e2fsck, debugfs agree",
    async () => {
      const dir = (work as { path: string }).path;
      const res = await create("ext4.raw", "ext4");
      const root = res.partitions.find((p) => p.name === "root")!;
      const img = join(dir, "ext4.root");
      await extractRange(res.output, root.offset, root.size, img);
      const fsck = await sh("e2fsck", ["-fn", img]);
      expect(fsck.code, fsck.stdout).toBe(0);
      const dump = await sh("dumpe2fs", ["-h", img]);
      expect(dump.stdout).toMatch(/features:.*has_journal/);
      const stat = async (p: string) =>
        (await sh("debugfs", ["-R", `stat ${p}`, img])).stdout.replace(/\s+/g, " ");
      expect(await stat("/usr/bin/su")).toMatch(/Mode: 04755 .*User: 0 Group: 0 /);
      expect(await stat("/usr/bin/wall")).toMatch(/Mode: 02755 .*User: 0 Group: 0 /);
      // owner=0:0 makes every owner root, the other user's directory included
      expect(await stat("/var/home/alice")).toMatch(/Mode: 0755 .*User: 0 Group: 0 /);
      expect(await stat("/etc/os-release")).toMatch(/Mode: 0644 .*User: 0 Group: 0 .*Size: 10 /);
      const cat = await sh("debugfs", ["-R", "cat /etc/os-release", img]);
      expect(cat.stdout).toBe("ID=unpriv\n");
    },
    120_000,
  );

  it.skipIf(!mustRun)(
    "vfat ESP + xfs root (mkfs.xfs -p protofile, run by that user): xfs_repair and xfs_db agree",
    async () => {
      const dir = (work as { path: string }).path;
      const res = await create("xfs.raw", "xfs");
      const root = res.partitions.find((p) => p.name === "root")!;
      const img = join(dir, "xfs.root");
      await extractRange(res.output, root.offset, root.size, img);
      const repair = await sh("xfs_repair", ["-n", "-f", img]);
      expect(repair.code, repair.stderr).toBe(0);
      const db = await sh("xfs_db", [
        "-r",
        "-c",
        "path /usr/bin/su",
        "-c",
        "print core.mode core.uid core.gid",
        "-c",
        "path /usr/bin/wall",
        "-c",
        "print core.mode core.uid core.gid",
        "-c",
        "path /var/home/alice",
        "-c",
        "print core.mode core.uid core.gid",
        img,
      ]);
      expect(db.code, db.stderr).toBe(0);
      const lines = db.stdout.replace(/\s+/g, " ");
      expect(lines).toMatch(
        /core.mode = 0104755 core.uid = 0 core.gid = 0 core.mode = 0102755 core.uid = 0 core.gid = 0 core.mode = 040755 core.uid = 0 core.gid = 0/,
      );
    },
    120_000,
  );
});
