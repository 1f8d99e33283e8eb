import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePart } from "../src/parts.js";
import { main } from "../src/program.js";

const pexec = promisify(execFile);
const env = {
  ...process.env,
  PATH: `${process.env.PATH}:/usr/sbin:/sbin`,
  MTOOLS_SKIP_CHECK: "1",
  LC_ALL: "C.UTF-8",
};
async function sh(cmd: string, args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    return { stdout: (await pexec(cmd, args, { env, maxBuffer: 32 << 20 })).stdout, code: 0 };
  } catch (e) {
    const x = e as { stdout?: string; code?: number | string };
    if (typeof x.code === "string") throw e;
    return { stdout: x.stdout ?? "", code: x.code ?? 1 };
  }
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
  });
  return { code, stdout, stderr };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagemode-disk-cli-"));
  await mkdir(join(dir, "esp/EFI/BOOT"), { recursive: true });
  await writeFile(join(dir, "esp/EFI/BOOT/BOOTX64.EFI"), Buffer.alloc(70_000, 7));
  await writeFile(join(dir, "esp/Long File Name.txt"), "hello\n");
  await mkdir(join(dir, "root/etc"), { recursive: true });
  await writeFile(join(dir, "root/etc/os-release"), "ID=test\n");
  await symlink("../etc/os-release", join(dir, "root/os-release"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("imagemode-disk create / show", () => {
  it("creates a qcow2 with a vfat ESP and an ext4 root; show reads the table back", async () => {
    const out = join(dir, "disk.qcow2");
    const r = await cli([
      "create",
      out,
      "--size",
      "160MiB",
      "--format",
      "qcow2",
      "--seed",
      "cli",
      "--part",
      `name=esp,type=esp,size=40MiB,fs=vfat,fslabel=EFI-SYSTEM,from=${join(dir, "esp")}`,
      "--part",
      `name=root,type=root-x86-64,size=fill,fs=ext4,from=${join(dir, "root")},owner=0:0`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/esp\s+EFI-SYSTEM|EFI-SYSTEM/);
    expect(r.stdout).toMatch(/wrote .*disk\.qcow2: qcow2/);
    expect(r.stderr).toMatch(/\[1\/2\] esp: vfat/);
    expect((await sh("qemu-img", ["check", out])).stdout).toMatch(/No errors were found/);
    const raw = join(dir, "disk.raw");
    expect((await sh("qemu-img", ["convert", "-O", "raw", out, raw])).code).toBe(0);
    expect((await sh("sgdisk", ["-v", raw])).stdout).toContain("No problems found");
    const show = await cli(["show", raw]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^GPT disk, 160 ?MiB/);
    expect(show.stdout).toMatch(/1\s+2048\s+83967\s+40 ?MiB\s+esp\s+esp/);
    expect(show.stdout).toMatch(/2\s+83968\s+.*root-x86-64\s+root/);
    const j = await cli(["show", raw, "--json"]);
    const t = JSON.parse(j.stdout);
    const sf = JSON.parse((await sh("sfdisk", ["--json", raw])).stdout).partitiontable;
    expect(t.diskId).toBe(sf.id);
    expect(
      t.partitions.map((p: { guid: string; startLba: number }) => [p.guid, p.startLba]),
    ).toEqual(sf.partitions.map((p: { uuid: string; start: number }) => [p.uuid, p.start]));
    // the ESP holds the files, by their long names
    const mdir = await sh("mdir", ["-i", `${raw}@@${1 << 20}`, "::/"]);
    expect(mdir.stdout).toContain("Long File Name.txt");
    // the ext4 root is clean and root-owned
    await sh("dd", [
      `if=${raw}`,
      `of=${join(dir, "root.img")}`,
      "bs=1M",
      "skip=41",
      "count=118",
      "status=none",
    ]);
    const fsck = await sh("e2fsck", ["-fn", join(dir, "root.img")]);
    expect(fsck.code, fsck.stdout).toBe(0);
    const stat = await sh("debugfs", ["-R", "stat /etc/os-release", join(dir, "root.img")]);
    expect(stat.stdout).toMatch(/User:\s+0\s+Group:\s+0/);
  });

  it("vhd and mbr: show reads a fixed vhd; --json result", async () => {
    const out = join(dir, "disk.vhd");
    const r = await cli([
      "create",
      out,
      "--size",
      "64MiB",
      "--format",
      "vhd",
      "--table",
      "mbr",
      "--json",
      "--part",
      `name=esp,type=esp,size=fill,fs=vfat,from=${join(dir, "esp")},bootable`,
      "--part",
      "name=swap,type=swap,size=16MiB,fs=swap",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.format).toBe("vhd");
    expect(res.fileSize).toBe(64 * 1024 * 1024 + 512);
    expect(
      r.stderr
        .trim()
        .split("\n")
        .every((l) => JSON.parse(l).type),
    ).toBe(true);
    const show = JSON.parse((await cli(["show", out, "--json"])).stdout);
    expect(show).toMatchObject({
      table: "mbr",
      size: 64 * 1024 * 1024,
      partitions: [
        { number: 1, typeName: "esp", bootable: true, startLba: 2048 },
        { number: 2, typeName: "swap" },
      ],
    });
    const info = JSON.parse(
      (await sh("qemu-img", ["info", "--output=json", "-f", "vpc", out])).stdout,
    );
    expect(info.format).toBe("vpc");
    expect(info["virtual-size"]).toBe(64 * 1024 * 1024);
  });

  it("vmdk (streamOptimized) and compressed qcow2 outputs pass qemu-img check", async () => {
    for (const [name, extra] of [
      ["disk.vmdk", ["--format", "vmdk"]],
      ["disk-z.qcow2", ["--format", "qcow2", "--compress"]],
    ] as const) {
      const out = join(dir, name);
      const r = await cli([
        "create",
        out,
        "--size",
        "48MiB",
        ...extra,
        "--part",
        `name=esp,type=esp,size=fill,fs=vfat,from=${join(dir, "esp")}`,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const c = await sh("qemu-img", ["check", out]);
      expect(c.stdout).toMatch(/No errors were found/);
    }
    const info = JSON.parse(
      (await sh("qemu-img", ["info", "--output=json", join(dir, "disk.vmdk")])).stdout,
    );
    expect(info["format-specific"].data["create-type"]).toBe("streamOptimized");
    expect(
      (
        await sh("qemu-img", ["compare", join(dir, "disk.vmdk"), join(dir, "disk-z.qcow2")])
      ).stdout.trim(),
    ).toBe("Images are identical.");
    // show reads the table from our vmdk, and from qemu-img's streamOptimized vmdk and dynamic vhd
    const ours = JSON.parse((await cli(["show", join(dir, "disk.vmdk"), "--json"])).stdout);
    expect(ours).toMatchObject({
      table: "gpt",
      size: 48 * 1024 * 1024,
      partitions: [{ number: 1, typeName: "esp", startLba: 2048 }],
    });
    const raw = join(dir, "vmdk-back.raw");
    expect((await sh("qemu-img", ["convert", "-O", "raw", join(dir, "disk.vmdk"), raw])).code).toBe(
      0,
    );
    for (const [name, args] of [
      ["qemu.vmdk", ["-O", "vmdk", "-o", "subformat=streamOptimized"]],
      ["qemu.vhd", ["-O", "vpc", "-o", "subformat=dynamic,force_size=on"]],
    ] as const) {
      const out = join(dir, name);
      expect((await sh("qemu-img", ["convert", "-f", "raw", ...args, raw, out])).code).toBe(0);
      const shown = await cli(["show", out]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toBe((await cli(["show", raw])).stdout);
      expect(JSON.parse((await cli(["show", out, "--json"])).stdout)).toEqual(ours);
    }
  });

  it("--preset bib --dry-run prints bootc-image-builder's default table", async () => {
    const r = await cli(["create", join(dir, "never.raw"), "--preset", "bib", "--dry-run"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^GPT disk, 10 ?GiB/);
    expect(r.stdout).toMatch(/bios-boot/);
    expect(r.stdout).toMatch(/esp\s+EFI-SYSTEM\s+vfat\s+EFI-SYSTEM/);
    expect(r.stdout).toMatch(/xbootldr\s+boot\s+ext4\s+boot/);
    const j = JSON.parse(
      (
        await cli([
          "create",
          join(dir, "never.raw"),
          "--preset",
          "bib",
          "--rootfs",
          "xfs",
          "--dry-run",
          "--json",
        ])
      ).stdout,
    );
    expect(j.layout.partitions.map((p: { size: number }) => p.size / 1048576)).toEqual([
      1, 501, 1024, 8712,
    ]);
    expect(j.layout.partitions[3].fs).toBe("xfs");
  });

  it("maps errors to exit codes", async () => {
    expect(
      (
        await cli([
          "create",
          join(dir, "x.raw"),
          "--size",
          "64MiB",
          "--part",
          "name=a,type=nope,size=1MiB",
        ])
      ).code,
    ).toBe(2);
    expect(
      (await cli(["create", join(dir, "x.raw"), "--size", "64MiB", "--part", "name=a,typo=esp"]))
        .code,
    ).toBe(2);
    expect(
      (
        await cli([
          "create",
          join(dir, "x.raw"),
          "--size",
          "4MiB",
          "--part",
          "name=a,type=esp,size=8MiB",
        ])
      ).code,
    ).toBe(2);
    expect(
      (
        await cli([
          "create",
          join(dir, "x.raw"),
          "--size",
          "64MiB",
          "--part",
          `name=a,type=esp,size=fill,fs=vfat,from=${join(dir, "missing")}`,
        ])
      ).code,
    ).toBe(2);
    const missing = await cli(["show", join(dir, "missing.raw"), "--json"]);
    expect(missing.code).toBe(3);
    expect(JSON.parse(missing.stdout).error.code).toBe("NOT_FOUND");
    expect((await cli(["bogus"])).code).toBe(2);
    expect(parsePart("name=r,type=linux,size=fill,owner=0:0,bootable")).toEqual({
      name: "r",
      type: "linux",
      size: "fill",
      owner: { uid: 0, gid: 0 },
      bootable: true,
    });
  });
});
