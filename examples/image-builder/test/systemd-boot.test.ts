/**
 * `--bootloader systemd-boot` and `--chown`, against the real tools: the build (as root, with
 * `--chown 65534:65534`: every output owned as asked) puts systemd-boot, `loader.conf`, the BLS
 * entry and the kernel on the ESP; mtools and debugfs extract the ESP and /boot from the raw disk
 * (unprivileged, no mounts), `bootctl list`/`status` (systemd 252) read them; OVMF boots the disk
 * into the deployment; SeaBIOS shows the disk's UEFI-only message. As uid 65534, `--chown 0:0`
 * is refused before any work with a clear error.
 */
import { execFile } from "node:child_process";
import { chmod, mkdir, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  bootDisk,
  buildFixtureImage,
  requireTool,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBuild } from "./run-build.js";

const pexec = promisify(execFile);
const pkg = resolve(import.meta.dirname, "..");

let work: TempDir;
let src: string;

const run = (args: string[], as?: number) => runBuild(work.path, args, as);

/** `bootctl list` and `status` on copies of two directories mounted as tmpfs (user+mount namespace). */
async function bootctl(esp: string, boot: string): Promise<{ list: string; status: string }> {
  const script = [
    "set -e",
    'w=$(mktemp -d); mkdir "$w/esp" "$w/boot"',
    'mount -t tmpfs none "$w/esp"; cp -r "$1/." "$w/esp/"',
    'mount -t tmpfs none "$w/boot"; cp -r "$2/." "$w/boot/"',
    "export SYSTEMD_RELAX_ESP_CHECKS=1 SYSTEMD_RELAX_XBOOTLDR_CHECKS=1",
    'bootctl --no-variables --esp-path="$w/esp" --boot-path="$w/boot" list --no-pager',
    "echo ====",
    'bootctl --no-variables --esp-path="$w/esp" --boot-path="$w/boot" status --no-pager',
    'umount "$w/esp" "$w/boot"; rmdir "$w/esp" "$w/boot" "$w"',
  ].join("\n");
  const { stdout } = await pexec("unshare", ["-Urm", "sh", "-c", script, "sh", esp, boot]);
  const [list = "", status = ""] = stdout.split("\n====\n");
  return { list, status };
}

beforeAll(async () => {
  for (const t of ["setpriv", "unshare", "bootctl", "mcopy", "debugfs", "qemu-system-x86_64"])
    requireTool(t);
  work = await tempDir("image-builder-sdboot-");
  await chmod(work.path, 0o755);
  await mkdir(join(work.path, "home"), { mode: 0o777 });
  await chmod(join(work.path, "home"), 0o777);
  // the CLI is bundled from the sources (CI does not build packages before testing)
  await pexec("pnpm", ["exec", "tsup"], { cwd: pkg });
  const fixture = await buildFixtureImage();
  src = join(work.path, "layout");
  await pexec("cp", ["-r", fixture.layoutDir, src]);
  await pexec("chmod", ["-R", "a+rwX", src]);
}, 300_000);

afterAll(async () => {
  await work?.cleanup();
});

describe("--chown", () => {
  it("as an unprivileged user, --chown to another user is refused before any work", async () => {
    const out = join(work.path, "out-denied");
    await mkdir(out, { mode: 0o777 });
    await chmod(out, 0o777);
    const r = await run(
      ["--type", "raw", "--chown", "0:0", "--output", out, `oci:${src}:v1`],
      65534,
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("cannot chown the output to 0:0: operation not permitted");
    expect(await readdir(out)).toEqual([]);
  });
});

describe("--bootloader systemd-boot", () => {
  it("builds (as root, --chown 65534:65534), bootctl reads the ESP, OVMF boots it, SeaBIOS says UEFI only", async () => {
    // in CI the tests run as root; as another user this part cannot chown to someone else
    expect(process.getuid?.(), "this test runs as root (CI does)").toBe(0);
    const out = join(work.path, "out-sdboot");
    const r = await run([
      ...["--type", "raw", "--bootloader", "systemd-boot", "--chown", "65534:65534"],
      ...["--output", out, "--cache", join(work.path, "home/cache"), "--progress", "none"],
      ...["--karg", "no_timer_check", `oci:${src}:v1`],
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const p of ["", "image", "image/disk.raw", "manifest-raw.json"]) {
      const st = await stat(join(out, p));
      expect([p, st.uid, st.gid]).toEqual([p, 65534, 65534]);
    }
    const disk = join(out, "image/disk.raw");
    const table = JSON.parse((await pexec("sfdisk", ["--json", disk])).stdout).partitiontable;
    const start = (name: string) =>
      512 *
      (table.partitions as { name: string; start: number }[]).find((p) => p.name === name)!.start;
    const esp = join(work.path, "esp");
    const boot = join(work.path, "boot");
    await mkdir(esp);
    await mkdir(boot);
    await pexec("mcopy", ["-s", "-n", "-i", `${disk}@@${start("EFI-SYSTEM")}`, "::/*", esp], {
      env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
    });
    await pexec("debugfs", ["-R", `rdump / ${boot}`, `${disk}?offset=${start("boot")}`]);
    await pexec("chmod", ["-R", "a+rX", esp, boot]);

    const { list, status } = await bootctl(esp, boot);
    // systemd-boot on the ESP, as its own path and as the removable-media fallback
    expect(status).toMatch(/\/EFI\/systemd\/systemd-bootx64\.efi \(systemd-boot \d+/);
    expect(status).toMatch(/\/EFI\/BOOT\/BOOTX64\.EFI \(systemd-boot \d+/);
    // the default entry is the ESP's (firmware reads no ext4: ostree's /boot copy is not booted)
    const def = /Default Boot Loader Entry:\n([\s\S]*)$/.exec(status)?.[1] ?? "";
    expect(def).toMatch(/source: \S+\/esp\/loader\/entries\/ostree-1-default\.conf/);
    const linux = /linux: (\S+)/.exec(def)?.[1] ?? "";
    const initrd = /initrd: (\S+)/.exec(def)?.[1] ?? "";
    expect(linux).toMatch(/^\/ostree\/default-[0-9a-f]{64}\/vmlinuz-/);
    for (const f of [linux, initrd]) expect((await stat(join(esp, f))).size).toBeGreaterThan(0);
    expect(def).toMatch(/options: root=UUID=\S+ rw .*ostree=\/ostree\/boot\.1\/default\//);
    expect(list).toMatch(/title: .*\(default\)/);

    const uefi = await bootDisk(disk, {
      firmware: "uefi",
      format: "raw",
      timeoutMs: 150_000,
      expect: "IMAGEMODE-DONE",
    });
    const deployment = /Deployment: (\S+)/.exec(r.stdout)?.[1];
    expect(uefi.log).toContain(`IMAGEMODE-OSTREE deployment=${deployment}`);
    expect(uefi.log).toContain("IMAGEMODE-VERSION_ID=1");
    expect(uefi.log).toMatch(/IMAGEMODE-CMDLINE=.*no_timer_check/);
    expect(uefi.log).toContain("IMAGEMODE-USR-RO=yes");

    const bios = await bootDisk(disk, {
      firmware: "bios",
      format: "raw",
      timeoutMs: 60_000,
      expect: "boots with UEFI only (systemd-boot), not BIOS.",
    });
    expect(bios.log).toContain(
      "imagemode: this disk boots with UEFI only (systemd-boot), not BIOS.",
    );
  }, 400_000);
});
