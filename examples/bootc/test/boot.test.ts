/**
 * Boots what imagemode-bootc wrote: the sysroot (installed v1, switched to v2 with --apply, then
 * rolled back; imported with --allow-nonusr, as the fixture's /sbin -> usr/sbin is top-level) is packed into an ext4 image with `mkfs.ext4 -d` and the default BLS entry's
 * kernel, initramfs and options are booted in QEMU; the fixture's initramfs resolves `ostree=`
 * and the OS reports its VERSION_ID.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  bootKernel,
  buildFixtureImage,
  requireTool,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, expect, it } from "vitest";
import { main } from "../src/program.js";

const ROOT_UUID = "6e0f9d4c-7b3a-4c55-9a51-2f1c0de0b007";
let tmp: TempDir;
let layout: string;
let root: string;

async function bootc(args: string[]): Promise<number> {
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  const saved = process.exitCode;
  try {
    return await main(["--sysroot", root, "--progress", "none", ...args]);
  } finally {
    process.stdout.write = write;
    process.exitCode = saved;
  }
}

/** Boots the default entry of the sysroot; returns the console log. */
async function bootDefault(name: string): Promise<string> {
  const entries = join(root, "boot/loader/entries");
  const names = (await readdir(entries)).sort();
  const bls = await readFile(join(entries, names[names.length - 1]!), "utf8");
  const field = (k: string) => new RegExp(`^${k}\\s+(.*)$`, "m").exec(bls)?.[1] ?? "";
  const disk = join(tmp.path, `${name}.img`);
  execFileSync("truncate", ["-s", "512M", disk]);
  execFileSync("mkfs.ext4", ["-q", "-F", "-U", ROOT_UUID, "-d", root, disk]);
  const { log } = await bootKernel({
    kernel: join(root, "boot", field("linux")),
    initrd: join(root, "boot", field("initrd")),
    append: field("options"),
    drives: [disk],
    timeoutMs: 180_000,
  });
  return log;
}

beforeAll(async () => {
  requireTool("mkfs.ext4");
  tmp = await tempDir("bootc-boot-");
  const fixture = await buildFixtureImage();
  layout = join(tmp.path, "layout");
  execFileSync("cp", ["-a", fixture.layoutDir, layout]);
  root = join(tmp.path, "sysroot");
  await mkdir(root);
}, 600_000);
afterAll(async () => {
  await tmp?.cleanup();
});

it("boots the upgraded deployment, then the rolled-back one", async () => {
  expect(
    await bootc([
      "install",
      "--image",
      `oci:${layout}:v1`,
      "--karg",
      `root=UUID=${ROOT_UUID}`,
      "--karg",
      "rw",
      "--karg",
      "console=ttyS0,115200",
      "--stateroot",
      "fixture",
      "--allow-nonusr",
    ]),
  ).toBe(0);
  expect(await bootc(["switch", `oci:${layout}:v2`, "--apply", "--allow-nonusr"])).toBe(0);
  let log = await bootDefault("v2");
  expect(log).toMatch(
    /^IMAGEMODE-OSTREE deployment=\/ostree\/deploy\/fixture\/deploy\/[0-9a-f]{64}\.0$/m,
  );
  expect(log).toContain("IMAGEMODE-VERSION_ID=2");
  expect(log).toContain("IMAGEMODE-USR-RO=yes");
  expect(log).toContain("IMAGEMODE-ETC-RW=yes");
  expect(log).toContain("IMAGEMODE-VAR-RW=yes");
  expect(log).toContain("IMAGEMODE-DONE");

  expect(await bootc(["rollback"])).toBe(0);
  log = await bootDefault("rollback");
  expect(log).toContain("IMAGEMODE-VERSION_ID=1");
  expect(log).toContain("IMAGEMODE-DONE");
}, 600_000);
