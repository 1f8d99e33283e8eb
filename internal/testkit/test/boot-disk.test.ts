import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootDisk, buildFixtureImage, requireTool, type TempDir, tempDir } from "../src/index.js";
import { run } from "../src/internal/exec.js";

const ROOT_UUID = "6a1f3c2e-8b4d-4e5f-9a7b-0c1d2e3f4a5b";
const MiB = 1024 * 1024;

let work: TempDir;
beforeAll(async () => {
  for (const t of ["sfdisk", "mkfs.vfat", "mmd", "mcopy", "mkfs.ext4", "dd"]) requireTool(t);
  work = await tempDir("testkit-disk-");
});
afterAll(async () => {
  await work?.cleanup();
});

/**
 * A GPT disk built from plain files, no loop devices: p1 ESP (FAT32, systemd-boot from the
 * fixture's own payload + one BLS entry + kernel/initramfs), p2 ext4 made with `mkfs.ext4 -d`
 * from the fixture rootfs.
 */
async function makeDisk(rootfs: string, kver: string, path: string): Promise<void> {
  const espMiB = 64;
  const rootMiB = 160;
  await run("truncate", ["-s", `${1 + espMiB + rootMiB + 1}M`, path]);
  await run("sfdisk", ["-q", path], {
    input: [
      "label: gpt",
      "unit: sectors",
      `start=2048, size=${espMiB * 2048}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"`,
      `start=${2048 + espMiB * 2048}, size=${rootMiB * 2048}, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"`,
      "",
    ].join("\n"),
  });
  const esp = join(work.path, "esp.img");
  await run("mkfs.vfat", ["-F", "32", "-n", "ESP", "-C", esp, String(espMiB * 1024)]);
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
  await run(
    "mmd",
    ["-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries", "::/fixture"],
    { env },
  );
  const mod = join(rootfs, "usr/lib/modules", kver);
  await writeFile(
    join(work.path, "loader.conf"),
    "timeout 0\ndefault fixture.conf\neditor no\nconsole-mode keep\n",
  );
  await writeFile(
    join(work.path, "fixture.conf"),
    `title imagemode fixture\nversion ${kver}\nlinux /fixture/vmlinuz\ninitrd /fixture/initramfs.img\noptions root=UUID=${ROOT_UUID} rw console=ttyS0,115200 panic=-1\n`,
  );
  for (const [src, dst] of [
    [join(rootfs, "usr/lib/systemd/boot/efi/systemd-bootx64.efi"), "::/EFI/BOOT/BOOTX64.EFI"],
    [join(mod, "vmlinuz"), "::/fixture/vmlinuz"],
    [join(mod, "initramfs.img"), "::/fixture/initramfs.img"],
    [join(work.path, "loader.conf"), "::/loader/loader.conf"],
    [join(work.path, "fixture.conf"), "::/loader/entries/fixture.conf"],
  ] as const) {
    await run("mcopy", ["-i", esp, src, dst], { env });
  }
  const root = join(work.path, "root.img");
  await run("truncate", ["-s", `${rootMiB}M`, root]);
  await run("mkfs.ext4", ["-q", "-F", "-L", "root", "-U", ROOT_UUID, "-d", rootfs, root]);
  for (const [img, offset] of [
    [esp, 1 * MiB],
    [root, (1 + espMiB) * MiB],
  ] as const) {
    await run("dd", [
      `if=${img}`,
      `of=${path}`,
      "bs=1M",
      `seek=${offset}`,
      "oflag=seek_bytes",
      "conv=notrunc,sparse",
      "status=none",
    ]);
  }
}

describe.concurrent("bootDisk", () => {
  it("boots a GPT disk under UEFI: OVMF → systemd-boot → BLS → initramfs → fixture /sbin/init", async () => {
    const image = await buildFixtureImage();
    // A private copy of v2 with a user who has a password and two keys, and a job hook.
    const rootfs = join(work.path, "rootfs");
    await run("cp", ["-a", `${await image.rootfsDir("v2")}/.`, rootfs]);
    const hash = (
      await run("openssl", ["passwd", "-6", "-salt", "saltsalt", "secret"])
    ).stdout.trim();
    await appendFile(
      join(rootfs, "etc/passwd"),
      "alice:x:1000:1000:Alice:/var/home/alice:/bin/sh\n",
    );
    await appendFile(join(rootfs, "etc/shadow"), `alice:${hash}:19723:0:99999:7:::\n`);
    await mkdir(join(rootfs, "var/home/alice/.ssh"), { recursive: true });
    await writeFile(
      join(rootfs, "var/home/alice/.ssh/authorized_keys"),
      "# keys\nssh-ed25519 AAAA one\n\nssh-ed25519 BBBB two\n",
    );
    await writeFile(join(rootfs, "usr/lib/imagemode/job.sh"), 'echo "job says hi"\nexit 3\n');
    const disk = join(work.path, "disk.raw");
    await makeDisk(rootfs, image.kver, disk);
    const { log, durationMs } = await bootDisk(disk, { firmware: "uefi", timeoutMs: 150_000 });
    expect(log).toContain(`IMAGEMODE-INITRAMFS-OK kernel=${image.kver}`);
    // systemd-boot passed the BLS entry's initrd to the kernel
    expect(log).toMatch(/Command line: initrd=\\fixture\\initramfs\.img root=UUID=/);
    expect(log).toContain("IMAGEMODE-INIT-OK");
    expect(log).toContain("IMAGEMODE-VERSION_ID=2");
    expect(log).toContain(
      `IMAGEMODE-CMDLINE=initrd=\\fixture\\initramfs.img root=UUID=${ROOT_UUID}`,
    );
    expect(log).toMatch(/^IMAGEMODE-USER name=root uid=0 hash=locked keys=0$/m);
    expect(log).toMatch(/^IMAGEMODE-USER name=nobody uid=65534 hash=locked keys=0$/m);
    expect(log).toContain(`IMAGEMODE-USER name=alice uid=1000 hash=${hash.slice(0, 16)} keys=2\n`);
    // no ostree= karg: the root fs itself is the root, /usr writable
    expect(log).toContain("IMAGEMODE-USR-RO=no");
    expect(log).toContain("IMAGEMODE-ETC-RW=yes");
    expect(log).toContain("IMAGEMODE-VAR-RW=yes");
    const order = [
      "IMAGEMODE-JOB-START\n",
      "job says hi\n",
      "IMAGEMODE-JOB-EXIT=3\n",
      "IMAGEMODE-DONE\n",
    ].map((m) => log.indexOf(m));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(durationMs).toBeLessThan(150_000);
  });

  it("rejects with the console tail when the marker never shows", async () => {
    const blank = join(work.path, "blank.raw");
    await run("truncate", ["-s", "8M", blank]);
    await expect(
      bootDisk(blank, { firmware: "bios", timeoutMs: 5000, expect: "IMAGEMODE-INIT-OK" }),
    ).rejects.toMatchObject({
      code: "HOST",
      message: expect.stringMatching(/SeaBIOS|Booting from/),
    });
  });
});
