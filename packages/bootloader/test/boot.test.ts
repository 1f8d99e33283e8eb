/**
 * Real boots under QEMU (TCG): BIOS GRUB (our boot.img/core.img placement, ostree-style
 * `grub/grub.cfg -> ../loader/grub.cfg`), GRUB EFI and systemd-boot under OVMF. Each boots the
 * fixture kernel; a non-default selection boots the other entry (its karg shows on "Command line:").
 * Four boots, two at a time (each 6–9 s on an idle machine under TCG).
 */
import { mkdir, readFile, symlink } from "node:fs/promises";
import * as path from "node:path";
import {
  bootDisk,
  buildFixtureImage,
  fixtureKernel,
  requireTool,
  tempDir,
} from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyBootSwap,
  createBlsEntry,
  findImageEfiBinaries,
  findImageGrub,
  grubBackend,
  makeGrubImage,
  type PlacedFile,
  placeFiles,
  planBiosGrubInstall,
  planBootSwap,
  renderGrubConfig,
  SYSTEMD_BOOT_EFI,
  setBlsValue,
  systemdBootBackend,
  withBootCounting,
} from "../src/index.js";
import { BIOS_BOOT, BOOT_UUID, buildDisk } from "./disk.js";

const opts = (which: string) => `console=ttyS0,115200 panic=-1 imagemode.entry=${which}`;
const entries = [
  createBlsEntry("imagemode-2.conf", {
    title: "imagemode two",
    version: "2",
    linux: "/k/vmlinuz",
    initrd: "/k/initramfs.img",
    options: opts("two"),
  }),
  createBlsEntry("imagemode-1.conf", {
    title: "imagemode one",
    version: "1",
    linux: "/k/vmlinuz",
    initrd: "/k/initramfs.img",
    options: opts("one"),
  }),
];

type Scenario = {
  name: string;
  firmware: "bios" | "uefi";
  expectEntry: "one" | "two";
  disk?: string;
};
const scenarios: Scenario[] = [
  { name: "bios-grub-default", firmware: "bios", expectEntry: "two" },
  { name: "bios-grub-saved-entry", firmware: "bios", expectEntry: "one" },
  { name: "efi-grub-next-entry", firmware: "uefi", expectEntry: "one" },
  { name: "sdboot-counted-set-default", firmware: "uefi", expectEntry: "one" },
  { name: "efi-grub-prebuilt-default", firmware: "uefi", expectEntry: "two" },
];
const results = new Map<string, { log: string; durationMs: number } | Error>();
let work: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  for (const t of [
    "qemu-system-x86_64",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mkfs.ext4",
    "grub-mkimage",
    "dd",
    "truncate",
  ])
    requireTool(t);
  work = await tempDir("bootloader-boot-");
  const [kernel, image] = await Promise.all([fixtureKernel(), buildFixtureImage()]);
  const imageRoot = await image.rootfsDir("v1");
  const grub = await findImageGrub(imageRoot);
  if (!grub.i386PcDir || !grub.bootImg || !grub.x86_64EfiDir)
    throw new Error("fixture image lacks GRUB modules");
  const kernelFiles = (partition: "esp" | "boot"): PlacedFile[] => [
    { kind: "file", partition, path: "k/vmlinuz", mode: 0o644, sourcePath: kernel.vmlinuz },
    { kind: "file", partition, path: "k/initramfs.img", mode: 0o644, sourcePath: kernel.initramfs },
  ];
  const dirs = async (name: string) => {
    const esp = path.join(work.path, name, "esp");
    const boot = path.join(work.path, name, "boot");
    await mkdir(esp, { recursive: true });
    await mkdir(boot, { recursive: true });
    return { esp, boot };
  };

  // (a) BIOS: ostree-style boot dir (loader.1 + atomic symlink), grub.cfg inside it.
  const coreImg = await makeGrubImage({
    format: "i386-pc",
    moduleDir: grub.i386PcDir,
    bootFsUuid: BOOT_UUID,
  });
  const bootImg = await readFile(grub.bootImg);
  for (const s of scenarios.filter((x) => x.firmware === "bios")) {
    const t = await dirs(s.name);
    // A first bootversion with stale entries, then the real switch: GRUB must follow
    // grub/grub.cfg -> ../loader/grub.cfg -> loader.0/grub.cfg, never the stale loader.1.
    const stale = entries.map((e) => setBlsValue(e, "options", opts("stale")));
    await applyBootSwap(
      t.boot,
      planBootSwap(0, stale, [
        {
          path: "grub.cfg",
          content: renderGrubConfig(stale, { bootFsUuid: BOOT_UUID, timeout: 0 }),
        },
      ]),
    );
    await applyBootSwap(
      t.boot,
      planBootSwap(1, entries, [
        {
          path: "grub.cfg",
          content: renderGrubConfig(entries, { bootFsUuid: BOOT_UUID, timeout: 0 }),
        },
      ]),
    );
    await mkdir(path.join(t.boot, "grub"));
    await symlink("../loader/grub.cfg", path.join(t.boot, "grub/grub.cfg"));
    await placeFiles(kernelFiles("boot"), t);
    if (s.expectEntry === "one")
      await grubBackend({ bootFsUuid: BOOT_UUID }).setDefault(t, "imagemode-1");
    s.disk = await buildDisk(
      work.path,
      s.name,
      t.esp,
      t.boot,
      planBiosGrubInstall({ bootImg, coreImg, partition: BIOS_BOOT }),
    );
  }
  // (b) GRUB EFI built from the image's x86_64-efi modules; one-shot next_entry.
  {
    const s = scenarios[2]!;
    const t = await dirs(s.name);
    const b = grubBackend({ bootFsUuid: BOOT_UUID, efi: { moduleDir: grub.x86_64EfiDir } });
    await b.apply(await b.plan({ entries, timeout: 0, files: kernelFiles("boot") }), t);
    await b.setDefault(t, "imagemode-1", { oneShot: true });
    s.disk = await buildDisk(work.path, s.name, t.esp, t.boot);
  }
  // (c) systemd-boot from the image, entries (boot-counted, +3) and kernels on the ESP; the
  // default moved to the older entry: loader.conf gets the glob `imagemode-1[.+]*conf`.
  {
    const s = scenarios[3]!;
    const t = await dirs(s.name);
    const b = systemdBootBackend({
      efiBinary: path.join(imageRoot, SYSTEMD_BOOT_EFI),
      loader: { editor: false },
    });
    await b.apply(
      await b.plan({
        entries: withBootCounting(entries, 3),
        timeout: 0,
        files: kernelFiles("esp"),
      }),
      t,
    );
    expect(await b.readDefault(t)).toBe("imagemode-2");
    await b.setDefault(t, "imagemode-1");
    expect(await readFile(path.join(t.esp, "loader/loader.conf"), "utf8")).toContain(
      "default imagemode-1[.+]*conf\n",
    );
    s.disk = await buildDisk(work.path, s.name, t.esp, t.boot);
  }
  // (b') the image's prebuilt GRUB EFI binary (Debian's monolithic grubx64.efi, prefix /EFI/debian)
  // with the EFI/debian/grub.cfg stub that finds /boot by UUID.
  {
    const s = scenarios[4]!;
    const t = await dirs(s.name);
    const binaries = await findImageEfiBinaries(imageRoot);
    expect(binaries).toMatchObject({
      layout: "loose",
      vendor: "debian",
      bootEntry: "EFI/debian/grubx64.efi",
    });
    const b = grubBackend({ bootFsUuid: BOOT_UUID, efi: { binaries: binaries! } });
    const plan = await b.plan({ entries, timeout: 0, files: kernelFiles("boot") });
    expect(plan.files.filter((f) => f.partition === "esp").map((f) => f.path)).toEqual([
      "EFI/debian/grubx64.efi",
      "EFI/BOOT/BOOTX64.EFI",
      "EFI/debian/grub.cfg",
    ]);
    await b.apply(plan, t);
    s.disk = await buildDisk(work.path, s.name, t.esp, t.boot);
  }
  // Boot two at a time.
  const queue = [...scenarios];
  const worker = async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      const disk = s.disk;
      if (!disk) continue;
      results.set(
        s.name,
        await bootDisk(disk, {
          firmware: s.firmware,
          expect: "IMAGEMODE-INITRAMFS-OK",
          timeoutMs: 90_000,
          logFile: path.join(work.path, `${s.name}.log`),
        }).catch((e: Error) => e),
      );
    }
  };
  await Promise.all([worker(), worker()]);
}, 280_000);

afterAll(async () => {
  if (work && !process.env.KEEP_BOOT_TEST) await work.cleanup();
});

describe("boots in QEMU", () => {
  for (const s of scenarios) {
    it(`${s.name}: boots entry "${s.expectEntry}" to IMAGEMODE-INITRAMFS-OK`, () => {
      const r = results.get(s.name);
      if (r instanceof Error || r === undefined) throw r ?? new Error("not booted");
      expect(r.log).toContain("IMAGEMODE-INITRAMFS-OK");
      console.log(`${s.name}: ${r.durationMs} ms`);
      const cmdline = /Command line: (.*)$/m.exec(r.log)?.[1] ?? "";
      expect(cmdline).toContain(`imagemode.entry=${s.expectEntry}`);
      expect(cmdline).not.toMatch(new RegExp(`imagemode\\.entry=(?!${s.expectEntry}\\b)`));
    });
  }
});
