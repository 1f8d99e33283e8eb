/**
 * The journey a user lives, end to end and unprivileged: the fixture OS image is pushed to a TLS +
 * htpasswd registry; `imagemode-build` runs AS uid 65534 (setpriv) with a blueprint adding
 * `cloud-user` and a kernel argument; `qemu-img check` judges the qcow2; the disk boots under
 * UEFI (OVMF → the image's GRUB EFI) and BIOS (SeaBIOS → GRUB boot.img/core.img) into the
 * ostree deployment, and the fixture's /sbin/init reports what the VM sees.
 */
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  bootDisk,
  buildFixtureImage,
  pushFixture,
  type Registry,
  requireTool,
  startRegistry,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBuild } from "./run-build.js";

const pexec = promisify(execFile);
const pkg = resolve(import.meta.dirname, "..");
const SSH_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm cloud@example";
const CONFIG = `[[customizations.user]]
name = "cloud-user"
password = "imagemode-secret"
key = "${SSH_KEY}"
groups = ["wheel"]

[customizations.kernel]
append = "imagemode.blueprint=yes"
`;

let work: TempDir;
let reg: Registry;
let refs: { v1: string; v2: string };
let build: { code: number; stdout: string; stderr: string };
let out: string;
const boots = new Map<string, Promise<{ log: string; durationMs: number }>>();

/** Runs the CLI as the unprivileged user 65534 (nobody). */
const asNobody = (args: string[]) => runBuild(work.path, args, 65534);

beforeAll(async () => {
  for (const t of [
    "setpriv",
    "qemu-img",
    "qemu-system-x86_64",
    "skopeo",
    "docker-registry",
    "grub-mkimage",
  ])
    requireTool(t);
  work = await tempDir("image-builder-journey-");
  await chmod(work.path, 0o755);
  // the CLI is bundled from the sources (CI does not build packages before testing)
  await pexec("pnpm", ["exec", "tsup"], { cwd: pkg });
  reg = await startRegistry({ tls: true, auth: "htpasswd" });
  refs = await pushFixture(reg, "imagemode/os");
  const shared = join(work.path, "shared");
  await mkdir(join(shared, "certs"), { recursive: true });
  await mkdir(join(work.path, "home"), { mode: 0o777 });
  await chmod(join(work.path, "home"), 0o777);
  await copyFile(reg.caFile as string, join(shared, "certs/ca.crt"));
  const auth = Buffer.from(`${reg.username}:${reg.password}`).toString("base64");
  await writeFile(join(shared, "auth.json"), JSON.stringify({ auths: { [reg.host]: { auth } } }));
  await writeFile(join(shared, "config.toml"), CONFIG);
  for (const f of ["certs/ca.crt", "auth.json", "config.toml"]) await chmod(join(shared, f), 0o644);
  out = join(work.path, "out");
  await mkdir(out, { mode: 0o777 });
  await chmod(out, 0o777);
  build = await asNobody([
    "--type",
    "qcow2",
    "--rootfs",
    "ext4",
    "--config",
    join(shared, "config.toml"),
    "--output",
    out,
    "--cache",
    join(work.path, "home/cache"),
    "--authfile",
    join(shared, "auth.json"),
    "--cert-dir",
    join(shared, "certs"),
    "--karg",
    "no_timer_check",
    `docker://${refs.v1}`,
  ]);
  if (build.code === 0) {
    const disk = join(out, "qcow2/disk.qcow2");
    for (const firmware of ["uefi", "bios"] as const)
      boots.set(
        firmware,
        bootDisk(disk, { firmware, timeoutMs: 150_000, expect: "IMAGEMODE-DONE" }),
      );
    // both boots run side by side; errors surface in the tests
    for (const b of boots.values()) b.catch(() => {});
  }
}, 300_000);

afterAll(async () => {
  await Promise.allSettled([...boots.values()]);
  await reg?.stop();
  await work?.cleanup();
});

describe("imagemode-build, unprivileged, from a TLS + htpasswd registry", () => {
  it("builds qcow2/disk.qcow2 and manifest-qcow2.json as uid 65534; qemu-img check passes", async () => {
    expect(build.code, build.stderr).toBe(0);
    expect(build.stdout).toMatch(/GPT disk/);
    expect(build.stdout).toMatch(/EFI-SYSTEM\s+vfat\s+EFI-SYSTEM/);
    expect(build.stdout).toMatch(/boot\s+ext4\s+boot/);
    expect(build.stdout).toMatch(/root\s+ext4\s+root/);
    expect(build.stdout).toContain("Users: cloud-user");
    const disk = join(out, "qcow2/disk.qcow2");
    const { stdout } = await pexec("qemu-img", ["check", disk]);
    expect(stdout).toContain("No errors were found on the image.");
    const manifest = JSON.parse(await readFile(join(out, "manifest-qcow2.json"), "utf8"));
    expect(manifest.disk.path).toBe("qcow2/disk.qcow2");
    expect(manifest.kargs).toContain("imagemode.blueprint=yes");
    const info = JSON.parse((await pexec("qemu-img", ["info", "--output=json", disk])).stdout);
    expect(info.format).toBe("qcow2");
  });

  for (const firmware of ["uefi", "bios"] as const) {
    it(`boots under ${firmware === "uefi" ? "UEFI (OVMF)" : "BIOS (SeaBIOS)"} into the v1 deployment with cloud-user`, async () => {
      expect(build.code, build.stderr).toBe(0);
      const { log } = await (boots.get(firmware) as Promise<{ log: string }>);
      const deployment = /Deployment: (\S+)/.exec(build.stdout)?.[1];
      expect(log).toContain(`IMAGEMODE-OSTREE deployment=${deployment}`);
      expect(log).toContain("IMAGEMODE-INIT-OK");
      expect(log).toContain("IMAGEMODE-VERSION_ID=1");
      expect(log).toMatch(
        /IMAGEMODE-CMDLINE=.*root=UUID=[0-9a-f-]+ rw console=tty0 console=ttyS0 imagemode\.blueprint=yes no_timer_check/,
      );
      expect(log).toMatch(/IMAGEMODE-USER name=cloud-user uid=\d+ hash=\$6\$\S* keys=1/);
      expect(log).toContain("IMAGEMODE-USR-RO=yes");
      expect(log).toContain("IMAGEMODE-ETC-RW=yes");
      expect(log).toContain("IMAGEMODE-VAR-RW=yes");
      expect(log).toContain("IMAGEMODE-DONE");
    }, 200_000);
  }

  it("raw, vmdk and vhd with an xfs root from an oci: layout, as uid 65534; qemu-img and sgdisk accept them, the xfs root boots", async () => {
    const fixture = await buildFixtureImage();
    const src = join(work.path, "layout");
    await pexec("cp", ["-r", fixture.layoutDir, src]);
    await pexec("chmod", ["-R", "a+rwX", src]);
    const out2 = join(work.path, "out-xfs");
    await mkdir(out2, { mode: 0o777 });
    await chmod(out2, 0o777);
    const r = await asNobody([
      ...["--type", "raw", "--type", "vmdk", "--type", "vhd", "--rootfs", "xfs", "--size", "3GiB"],
      ...["--output", out2, "--cache", join(work.path, "home/cache"), "--progress", "jsonl"],
      ...["--karg", "no_timer_check"],
      `oci:${src}:v1`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/root\s+xfs\s+root/);
    // --progress jsonl: one JSON object per line on stderr
    const events = r.stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string });
    expect(events.some((e) => e.type === "step")).toBe(true);
    const vmdk = await pexec("qemu-img", ["check", join(out2, "vmdk/disk.vmdk")]);
    expect(vmdk.stdout).toContain("No errors were found on the image.");
    for (const [file, format] of [
      ["image/disk.raw", "raw"],
      ["vpc/disk.vhd", "vpc"],
      ["vmdk/disk.vmdk", "vmdk"],
    ] as const) {
      const manifest = JSON.parse(await readFile(join(out2, "manifest-raw.json"), "utf8"));
      const info = JSON.parse(
        (await pexec("qemu-img", ["info", "-f", format, "--output=json", join(out2, file)])).stdout,
      );
      expect(info.format).toBe(format);
      // --size is a minimum: bootc-image-builder's table needs 1 MiB + 501 MiB + 1 GiB + 2 GiB
      expect(info["virtual-size"]).toBe(manifest.disk.size);
      expect(info["virtual-size"]).toBeGreaterThanOrEqual(3 * 1024 ** 3);
    }
    const sg = await pexec("sgdisk", ["-v", join(out2, "image/disk.raw")]);
    expect(sg.stdout).toContain("No problems found");
    const repair = await pexec("sh", [
      "-c",
      `qemu-img convert -f vpc -O raw ${join(out2, "vpc/disk.vhd")} ${join(work.path, "vhd.raw")} && cmp ${join(work.path, "vhd.raw")} ${join(out2, "image/disk.raw")} && echo same`,
    ]);
    expect(repair.stdout).toContain("same");
    for (const t of ["raw", "vmdk", "vhd"])
      expect(JSON.parse(await readFile(join(out2, `manifest-${t}.json`), "utf8")).rootfs).toBe(
        "xfs",
      );
    // the xfs root (and xfs /boot, read by GRUB) boots into the deployment
    const { log } = await bootDisk(join(out2, "image/disk.raw"), {
      firmware: "uefi",
      format: "raw",
      timeoutMs: 150_000,
      expect: "IMAGEMODE-DONE",
    });
    expect(log).toMatch(
      /IMAGEMODE-OSTREE deployment=\/ostree\/deploy\/default\/deploy\/[0-9a-f]{64}\.0/,
    );
    expect(log).toContain("IMAGEMODE-VERSION_ID=1");
    expect(log).toContain("IMAGEMODE-USR-RO=yes");
    expect(log).toContain("IMAGEMODE-DONE");
  }, 400_000);

  it("refuses an image without containers.bootc / ostree.bootable with bootc-image-builder's message", async () => {
    const src = join(work.path, "layout");
    await pexec("umoci", [
      "config",
      "--image",
      `${src}:v1`,
      "--tag",
      "plain",
      "--clear=config.labels",
    ]);
    await pexec("chmod", ["-R", "a+rwX", src]);
    const out3 = join(work.path, "out-plain");
    await mkdir(out3, { mode: 0o777 });
    await chmod(out3, 0o777);
    const r = await asNobody([
      "--output",
      out3,
      "--cache",
      join(work.path, "home/cache"),
      `oci:${src}:plain`,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`image oci:${src}:plain is not a bootc image`);
    expect(await pexec("ls", ["-A", out3]).then((x) => x.stdout.trim())).toBe("");
  }, 60_000);
});
