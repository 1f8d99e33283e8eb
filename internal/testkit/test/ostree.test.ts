import { readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootKernel,
  buildFixtureImage,
  ostreeCli,
  requireTool,
  type TempDir,
  tempDir,
} from "../src/index.js";
import { run } from "../src/internal/exec.js";

const ROOT_UUID = "0b7c2d1e-4f5a-4b6c-9d8e-7f6a5b4c3d2e";

let work: TempDir;
beforeAll(async () => {
  requireTool("ostree");
  requireTool("mkfs.ext4");
  work = await tempDir("testkit-ostree-");
});
afterAll(async () => {
  await work?.cleanup(); // deployments are chattr +i: cleanup() clears that
});

describe("ostreeCli", () => {
  it("is available and reports its version", async () => {
    expect(ostreeCli.available()).toBe(true);
    const { stdout } = await ostreeCli.run(["--version"]);
    expect(stdout).toMatch(/Version: '?\d{4}\.\d+/);
  });

  it("surfaces a failing command as a HOST error with stderr", async () => {
    await expect(
      ostreeCli.run(["refs", `--repo=${join(work.path, "nope")}`]),
    ).rejects.toMatchObject({
      code: "HOST",
      message: expect.stringMatching(/nope/),
    });
  });

  it("admin as root runs without CAP_SYS_ADMIN (no FIFREEZE of the host fs)", async () => {
    if (process.getuid?.() !== 0) {
      // As a normal user there is no CAP_SYS_ADMIN to drop; admin runs ostree directly.
      const { stdout } = await ostreeCli.admin(["--help"]);
      expect(stdout).toContain("deploy");
      return;
    }
    // setpriv wraps the command; prove the bounding set really lacks cap_sys_admin (bit 21).
    const { stdout } = await run("setpriv", [
      "--bounding-set=-sys_admin",
      "--inh-caps=-sys_admin",
      "grep",
      "^CapBnd",
      "/proc/self/status",
    ]);
    const bnd = BigInt(`0x${stdout.split(/\s+/)[1]}`);
    expect(bnd & (1n << 21n)).toBe(0n);
  });

  it("deploys the fixture and the initramfs boots the deployment: ostree=, read-only /usr, writable /etc and /var", async () => {
    const image = await buildFixtureImage();
    const tree = join(work.path, "tree");
    await run("cp", ["-a", `${await image.rootfsDir("v1")}/.`, tree]);
    // ostree wants the image's /etc as /usr/etc
    await rename(join(tree, "etc"), join(tree, "usr/etc"));
    const sysroot = join(work.path, "sysroot");
    await run("mkdir", ["-p", sysroot]);
    await ostreeCli.admin(["init-fs", "--modern", sysroot]);
    const repo = join(sysroot, "ostree/repo");
    await ostreeCli.run([
      "commit",
      `--repo=${repo}`,
      "--branch=fixture/v1",
      `--tree=dir=${tree}`,
      "--no-xattrs",
      "--timestamp=2024-01-01T00:00:00Z",
    ]);
    await ostreeCli.admin(["os-init", "fixture", `--sysroot=${sysroot}`]);
    await ostreeCli.admin([
      "deploy",
      `--sysroot=${sysroot}`,
      "--os=fixture",
      `--karg=root=UUID=${ROOT_UUID}`,
      "--karg=rw",
      "--karg=console=ttyS0,115200",
      "fixture/v1",
    ]);
    const entries = join(sysroot, "boot/loader/entries");
    const [entry] = await readdir(entries);
    const bls = await readFile(join(entries, entry!), "utf8");
    const field = (k: string) => new RegExp(`^${k}\\s+(.*)$`, "m").exec(bls)?.[1] ?? "";
    const options = field("options");
    expect(options).toMatch(/ostree=\/ostree\/boot\.\d\/fixture\/[0-9a-f]{64}\/0/);

    const disk = join(work.path, "root.img");
    await run("truncate", ["-s", "256M", disk]);
    await run("mkfs.ext4", ["-q", "-F", "-U", ROOT_UUID, "-d", sysroot, disk]);
    const { log } = await bootKernel({
      kernel: join(sysroot, "boot", field("linux")),
      initrd: join(sysroot, "boot", field("initrd")),
      append: options,
      drives: [disk],
      timeoutMs: 120_000,
    });
    expect(log).toMatch(
      /^IMAGEMODE-OSTREE deployment=\/ostree\/deploy\/fixture\/deploy\/[0-9a-f]{64}\.0$/m,
    );
    expect(log).toContain("IMAGEMODE-INIT-OK");
    expect(log).toContain("IMAGEMODE-VERSION_ID=1");
    expect(log).toMatch(/^IMAGEMODE-CMDLINE=.*ostree=\/ostree\/boot\.\d\//m);
    expect(log).toMatch(/^IMAGEMODE-USER name=root uid=0 hash=locked keys=0$/m);
    expect(log).toContain("IMAGEMODE-USR-RO=yes");
    expect(log).toContain("IMAGEMODE-ETC-RW=yes");
    expect(log).toContain("IMAGEMODE-VAR-RW=yes");
    expect(log).toContain("IMAGEMODE-DONE");
  });
});
