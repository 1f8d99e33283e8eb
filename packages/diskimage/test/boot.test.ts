import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type FileTree, readHostDirectory, type TreeEntry, treeFromEntries } from "@imagemode/core";
import {
  bootDisk,
  buildFixtureImage,
  fixtureKernel,
  requireTool,
  type TempDir,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planLayout } from "../src/layout.js";
import { writeDisk } from "../src/write-disk.js";

const MiB = 1 << 20;
let work: TempDir;
let image: Awaited<ReturnType<typeof buildFixtureImage>>;
let rootfs: string;
let kernel: Awaited<ReturnType<typeof fixtureKernel>>;
beforeAll(async () => {
  for (const t of ["qemu-system-x86_64", "qemu-img", "mkfs.xfs"]) requireTool(t);
  work = await tempDir("diskimage-boot-");
  // built once and cached on disk by the testkit (slow only on a cold cache)
  image = await buildFixtureImage();
  rootfs = await image.rootfsDir("v1");
  kernel = await fixtureKernel();
});
afterAll(async () => {
  await work?.cleanup();
});

function file(path: string, data: Uint8Array): TreeEntry {
  return {
    path,
    type: "file",
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1700000000,
    size: data.length,
    content: async () =>
      (async function* () {
        yield data;
      })(),
  };
}
function dir(path: string): TreeEntry {
  return { path, type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: 1700000000 };
}

/** The ESP, written by hand (the bootloader package is not a dependency of this one): systemd-boot + one BLS entry. */
async function espTree(
  rootfs: string,
  kver: string,
  vmlinuz: string,
  initramfs: string,
  rootUuid: string,
): Promise<FileTree> {
  const enc = (s: string) => new TextEncoder().encode(s);
  return treeFromEntries([
    dir("EFI"),
    dir("EFI/BOOT"),
    file(
      "EFI/BOOT/BOOTX64.EFI",
      await readFile(join(rootfs, "usr/lib/systemd/boot/efi/systemd-bootx64.efi")),
    ),
    dir("fixture"),
    file("fixture/initramfs.img", await readFile(initramfs)),
    file("fixture/vmlinuz", await readFile(vmlinuz)),
    dir("loader"),
    dir("loader/entries"),
    file(
      "loader/entries/fixture.conf",
      enc(
        `title imagemode fixture\nversion ${kver}\nlinux /fixture/vmlinuz\ninitrd /fixture/initramfs.img\noptions root=UUID=${rootUuid} rw console=ttyS0,115200 panic=-1\n`,
      ),
    ),
    file(
      "loader/loader.conf",
      enc("timeout 0\ndefault fixture.conf\neditor no\nconsole-mode keep\n"),
    ),
  ]);
}

describe("a disk from writeDisk boots", () => {
  // one boot (≈30 s under TCG): our ext4 root in our qcow2; xfs roots are checked with xfs_repair in write-disk.test.ts
  for (const [rootFs, format] of [["ext4", "qcow2"]] as ["ext4" | "xfs", "raw" | "qcow2"][]) {
    it(`UEFI: our GPT + our vfat ESP (systemd-boot, BLS) + ${rootFs} root, ${format} → fixture init`, async () => {
      const k = kernel;
      const layout = planLayout({
        size: (rootFs === "xfs" ? 420 : 256) * MiB,
        seed: `boot-${rootFs}`,
        partitions: [
          { name: "esp", type: "esp", size: 64 * MiB, fs: "vfat", fsLabel: "EFI-SYSTEM" },
          { name: "root", type: "root-x86-64", size: "fill", fs: rootFs, fsLabel: "root" },
        ],
      });
      const root = layout.partitions[1]!;
      const disk = join(work.path, `disk-${rootFs}.${format}`);
      await writeDisk(
        layout,
        {
          esp: {
            fs: "vfat",
            tree: await espTree(rootfs, image.kver, k.vmlinuz, k.initramfs, root.fsUuid),
          },
          root: {
            fs: rootFs,
            tree: readHostDirectory(rootfs, { owner: { uid: 0, gid: 0 }, includeRoot: true }),
          },
        },
        { output: disk, format, tmpDir: work.path },
      );
      const { log } = await bootDisk(disk, { firmware: "uefi", format, timeoutMs: 150_000 });
      expect(log).toContain(`IMAGEMODE-INITRAMFS-OK kernel=${image.kver}`);
      expect(log).toMatch(/Command line: initrd=\\fixture\\initramfs\.img root=UUID=/);
      expect(log).toContain(`root=UUID=${root.fsUuid}`);
      expect(log).toContain("IMAGEMODE-INIT-OK");
      expect(log).toContain("IMAGEMODE-VERSION_ID=1");
      expect(log).toContain("IMAGEMODE-DONE");
    }, 240_000);
  }
});
