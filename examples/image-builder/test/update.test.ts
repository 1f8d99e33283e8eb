/**
 * The grown-up fixture (Node.js + a bundled imagemode-bootc + the job hook) built into a disk
 * by imagemode-build (uid 65534), booted with a job disk holding v2 as an OCI layout — the
 * air-gapped update path: inside the VM, `imagemode-bootc switch oci:/mnt/job/os:v2` and
 * `finalize-staged` (what the systemd unit runs at shutdown) work on the sysroot we built.
 */
import { execFile } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import {
  bootDisk,
  buildNodeFixtureImage,
  type NodeFixtureImage,
  requireTool,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBuild } from "./run-build.js";

const pexec = promisify(execFile);
const pkg = resolve(import.meta.dirname, "..");

let work: TempDir;
let fixture: NodeFixtureImage;
let build: { code: number; stdout: string; stderr: string };
let disk: string;

/** Runs the CLI as the unprivileged user 65534 (nobody). */
const asNobody = (args: string[]) => runBuild(work.path, args, 65534);

/** A job disk: an ext4 image (mkfs.ext4 -d, no root needed) with run.sh and optional files. */
async function jobDisk(name: string, script: string, extra?: (dir: string) => Promise<void>) {
  const dir = join(work.path, `${name}-dir`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "run.sh"), script);
  if (extra) await extra(dir);
  const img = join(work.path, `${name}.img`);
  await pexec("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    "job",
    "-E",
    "root_owner=0:0",
    "-d",
    dir,
    img,
    "256M",
  ]);
  return img;
}

beforeAll(async () => {
  for (const t of [
    "setpriv",
    "qemu-img",
    "qemu-system-x86_64",
    "skopeo",
    "umoci",
    "mkfs.ext4",
    "ldd",
  ])
    requireTool(t);
  work = await tempDir("image-builder-update-");
  await chmod(work.path, 0o755);
  await mkdir(join(work.path, "home"), { mode: 0o777 });
  await chmod(join(work.path, "home"), 0o777);
  await pexec("pnpm", ["exec", "tsup"], { cwd: pkg });
  fixture = await buildNodeFixtureImage();
  const src = join(work.path, "layout");
  await pexec("cp", ["-r", fixture.layoutDir, src]);
  await pexec("chmod", ["-R", "a+rwX", src]);
  const out = join(work.path, "out");
  await mkdir(out, { mode: 0o777 });
  await chmod(out, 0o777);
  build = await asNobody([
    ...["--type", "qcow2", "--output", out, "--cache", join(work.path, "home/cache")],
    ...["--karg", "no_timer_check", "--progress", "none", `oci:${src}:v1`],
  ]);
  disk = join(out, "qcow2/disk.qcow2");
}, 300_000);

afterAll(async () => {
  await work?.cleanup();
});

describe("the grown-up fixture updates itself from a job disk", () => {
  it("switch oci:/mnt/job/os:v2 inside the VM: one layer needed, queued for next boot; finalize-staged writes the new boot entries", async () => {
    expect(build.code, build.stderr).toBe(0);
    const job = await jobDisk(
      "switch",
      [
        "echo kept > /etc/imagemode-survivor",
        "echo kept > /var/imagemode-survivor",
        'mount "$(findfs LABEL=boot)" /sysroot/boot || echo IMAGEMODE-JOB-NO-BOOT',
        'echo "IMAGEMODE-NODE=$(node --version)"',
        "imagemode-bootc status --format json | tr -d '\\n'; echo",
        "imagemode-bootc switch oci:/mnt/job/os:v2",
        'echo "IMAGEMODE-SWITCH-RC=$?"',
        "imagemode-bootc finalize-staged",
        'echo "IMAGEMODE-FINALIZE-RC=$?"',
        'echo "IMAGEMODE-ENTRIES=$(ls /sysroot/boot/loader/entries | tr "\\n" " ")"',
        "umount /sysroot/boot",
        "",
      ].join("\n"),
      async (dir) => {
        await pexec("skopeo", [
          "copy",
          "-q",
          `oci:${fixture.layoutDir}:v2`,
          `oci:${join(dir, "os")}:v2`,
        ]);
      },
    );
    const { log } = await bootDisk(disk, {
      firmware: "uefi",
      extraDrives: [job],
      persist: true,
      timeoutMs: 400_000,
      expect: "IMAGEMODE-DONE",
    });
    expect(log).toContain("IMAGEMODE-VERSION_ID=1");
    expect(log).toMatch(/IMAGEMODE-NODE=v\d+\./);
    expect(log).toMatch(/layers already present: \d+; layers needed: 1 \(/);
    expect(log).toContain("Queued for next boot");
    expect(log).toContain("IMAGEMODE-SWITCH-RC=0");
    expect(log).toContain("IMAGEMODE-FINALIZE-RC=0");
    const entries = /IMAGEMODE-ENTRIES=(.*)/.exec(log)?.[1]?.trim().split(/\s+/) ?? [];
    expect(entries).toHaveLength(2);
    // bootc status inside the VM, before the switch: v1 booted from the deployment we built
    const status = JSON.parse(/^\{\s*"apiVersion".*$/m.exec(log)?.[0] ?? "{}");
    expect(status.kind).toBe("BootcHost");
    expect(status.status.booted.image.version).toBe("1");
    expect(status.status.booted.image.imageDigest).toBe(fixture.manifestDigests.v1);
    expect(status.status.staged).toBeNull();
  }, 600_000);

  it("boots v2 next (status: v2 booted, v1 rollback; /etc and /var kept), then rollback boots v1", async () => {
    expect(build.code, build.stderr).toBe(0);
    const job = await jobDisk(
      "after",
      [
        'mount "$(findfs LABEL=boot)" /sysroot/boot || echo IMAGEMODE-JOB-NO-BOOT',
        "imagemode-bootc status --format json | tr -d '\\n'; echo",
        'echo "IMAGEMODE-ETC-KEPT=$(cat /etc/imagemode-survivor)"',
        'echo "IMAGEMODE-VAR-KEPT=$(cat /var/imagemode-survivor)"',
        "imagemode-bootc rollback",
        'echo "IMAGEMODE-ROLLBACK-RC=$?"',
        "umount /sysroot/boot",
        "",
      ].join("\n"),
    );
    const second = await bootDisk(disk, {
      firmware: "bios",
      extraDrives: [job],
      persist: true,
      timeoutMs: 400_000,
      expect: "IMAGEMODE-DONE",
    });
    expect(second.log).toContain("IMAGEMODE-VERSION_ID=2");
    const status = JSON.parse(/^\{\s*"apiVersion".*$/m.exec(second.log)?.[0] ?? "{}");
    expect(status.status.booted.image.version).toBe("2");
    expect(status.status.booted.image.imageDigest).toBe(fixture.manifestDigests.v2);
    expect(status.status.rollback.image.version).toBe("1");
    expect(status.status.rollback.image.imageDigest).toBe(fixture.manifestDigests.v1);
    expect(second.log).toContain("IMAGEMODE-ETC-KEPT=kept");
    expect(second.log).toContain("IMAGEMODE-VAR-KEPT=kept");
    expect(second.log).toContain("IMAGEMODE-ROLLBACK-RC=0");

    const third = await bootDisk(disk, {
      firmware: "uefi",
      persist: true,
      timeoutMs: 300_000,
      expect: "IMAGEMODE-DONE",
    });
    expect(third.log).toContain("IMAGEMODE-VERSION_ID=1");
  }, 700_000);
});
