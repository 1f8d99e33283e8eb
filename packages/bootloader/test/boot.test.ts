/**
 * Real boots under QEMU (TCG), one per bootloader path, each selecting the NON-default entry so a
 * pass proves both that the bootloader works and that the selection mechanism works:
 *  (a) SeaBIOS → GRUB placed by planBiosGrubInstall (boot.img in the MBR, core.img built by
 *      grub-mkimage from the image's i386-pc modules) → grub/grub.cfg -> ../loader/grub.cfg of a
 *      /boot switched twice with applyBootSwap → grubenv `saved_entry`;
 *  (b) OVMF → the image's prebuilt GRUB EFI (Debian's monolithic grubx64.efi) → the ESP stub
 *      EFI/debian/grub.cfg → /boot/grub/grub.cfg → grubenv `next_entry` (one-shot);
 *  (c) OVMF → the image's systemd-boot → boot-counted entries (+3), default moved with setDefault
 *      (loader.conf glob); booted without -snapshot so systemd-boot's counter rename is checked.
 * The chosen entry's `imagemode.entry=` shows on the kernel's "Command line:". Three boots, two at
 * a time (6–9 s each on an idle machine).
 */
import { copyFile, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
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
  countBootAttempt,
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
import { BIOS_BOOT, BOOT_UUID, buildDisk, ESP_OFFSET } from "./disk.js";
import { run } from "./helpers.js";

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/**
 * A UEFI boot *without* `-snapshot` (testkit's bootDisk always discards writes), so systemd-boot's
 * boot-counter rename lands in the image. The fixture initramfs powers off by itself (no root=).
 */
async function bootWritable(
  disk: string,
  logFile: string,
): Promise<{ log: string; durationMs: number }> {
  const vars = `${disk}.vars.fd`;
  await copyFile(OVMF_VARS, vars);
  const started = Date.now();
  const qemu = [
    "qemu-system-x86_64",
    "-machine",
    "q35",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-smp",
    "1",
    "-m",
    "512",
    "-nographic",
    "-no-reboot",
    "-nic",
    "none",
  ];
  const drives = [
    "-drive",
    `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    "-drive",
    `if=pflash,format=raw,unit=1,file=${vars}`,
    "-drive",
    `if=virtio,format=raw,file=${disk}`,
  ];
  const { stdout } = await run("timeout", ["-k", "5", "150", ...qemu, ...drives], {
    maxBuffer: 64 << 20,
  });
  const log = stdout.replaceAll("\r", "");
  await writeFile(logFile, log);
  return { log, durationMs: Date.now() - started };
}

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

type Scenario = { firmware: "bios" | "uefi"; disk: string; writable?: boolean };
const disks = new Map<string, Scenario>();
const results = new Map<string, { log: string; durationMs: number } | Error>();
let work: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  for (const t of [
    "qemu-system-x86_64",
    "timeout",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mdir",
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
  if (!grub.i386PcDir || !grub.bootImg) throw new Error("fixture image lacks GRUB i386-pc modules");
  const kernelFiles = (partition: "esp" | "boot"): PlacedFile[] => [
    { kind: "file", partition, path: "k/vmlinuz", mode: 0o644, sourcePath: kernel.vmlinuz },
    { kind: "file", partition, path: "k/initramfs.img", mode: 0o644, sourcePath: kernel.initramfs },
  ];
  const dirs = async (name: string) => {
    const t = { esp: path.join(work.path, name, "esp"), boot: path.join(work.path, name, "boot") };
    await mkdir(t.esp, { recursive: true });
    await mkdir(t.boot, { recursive: true });
    return t;
  };

  // (a) BIOS GRUB. A first bootversion with stale entries, then the real switch: GRUB must follow
  // grub/grub.cfg -> ../loader/grub.cfg -> loader.0/grub.cfg, never the stale loader.1.
  {
    const t = await dirs("bios-grub");
    const cfg = (es: typeof entries) => [
      { path: "grub.cfg", content: renderGrubConfig(es, { bootFsUuid: BOOT_UUID, timeout: 0 }) },
    ];
    const stale = entries.map((e) => setBlsValue(e, "options", opts("stale")));
    await applyBootSwap(t.boot, planBootSwap(0, stale, cfg(stale)));
    await applyBootSwap(t.boot, planBootSwap(1, entries, cfg(entries)));
    await mkdir(path.join(t.boot, "grub"));
    await symlink("../loader/grub.cfg", path.join(t.boot, "grub/grub.cfg"));
    await placeFiles(kernelFiles("boot"), t);
    await grubBackend({ bootFsUuid: BOOT_UUID }).setDefault(t, "imagemode-1");
    const coreImg = await makeGrubImage({
      format: "i386-pc",
      moduleDir: grub.i386PcDir,
      bootFsUuid: BOOT_UUID,
    });
    const raw = planBiosGrubInstall({
      bootImg: await readFile(grub.bootImg),
      coreImg,
      partition: BIOS_BOOT,
    });
    disks.set("bios-grub-saved-entry", {
      firmware: "bios",
      disk: await buildDisk(work.path, "bios-grub", t.esp, t.boot, raw),
    });
  }
  // (b) The image's prebuilt GRUB EFI and the ESP stub; one-shot next_entry.
  {
    const t = await dirs("efi-grub");
    const binaries = await findImageEfiBinaries(imageRoot);
    expect(binaries).toMatchObject({
      layout: "loose",
      vendor: "debian",
      bootEntry: "EFI/debian/grubx64.efi",
    });
    if (!binaries) throw new Error("no EFI binaries");
    const b = grubBackend({ bootFsUuid: BOOT_UUID, efi: { binaries } });
    const plan = await b.plan({ entries, timeout: 0, files: kernelFiles("boot") });
    expect(plan.files.filter((f) => f.partition === "esp").map((f) => f.path)).toEqual([
      "EFI/debian/grubx64.efi",
      "EFI/BOOT/BOOTX64.EFI",
      "EFI/debian/grub.cfg",
    ]);
    await b.apply(plan, t);
    expect(await b.readDefault(t)).toBe("imagemode-2");
    await b.setDefault(t, "imagemode-1", { oneShot: true });
    disks.set("efi-grub-next-entry", {
      firmware: "uefi",
      disk: await buildDisk(work.path, "efi-grub", t.esp, t.boot),
    });
  }
  // (c) systemd-boot, boot-counted entries and kernels on the ESP, default moved to the older entry.
  {
    const t = await dirs("sdboot");
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
    disks.set("sdboot-set-default", {
      firmware: "uefi",
      disk: await buildDisk(work.path, "sdboot", t.esp, t.boot),
      writable: true,
    });
  }

  const queue = [...disks];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [name, s] = next;
      const logFile = path.join(work.path, `${name}.log`);
      const boot = s.writable
        ? bootWritable(s.disk, logFile)
        : bootDisk(s.disk, {
            firmware: s.firmware,
            expect: "IMAGEMODE-INITRAMFS-OK",
            timeoutMs: 150_000,
            logFile,
          });
      results.set(name, await boot.catch((e: Error) => e));
    }
  };
  await Promise.all([worker(), worker()]);
}, 290_000);

afterAll(async () => {
  if (work && !process.env.KEEP_BOOT_TEST) await work.cleanup();
});

describe("boots in QEMU", () => {
  for (const name of ["bios-grub-saved-entry", "efi-grub-next-entry", "sdboot-set-default"]) {
    it(`${name}: boots the selected non-default entry to IMAGEMODE-INITRAMFS-OK`, () => {
      const r = results.get(name);
      if (r instanceof Error || r === undefined) throw r ?? new Error("not booted");
      expect(r.log).toContain("IMAGEMODE-INITRAMFS-OK");
      const cmdline = /Command line: (.*)$/m.exec(r.log)?.[1] ?? "";
      expect(cmdline).toContain("imagemode.entry=one");
      expect(cmdline).not.toMatch(/imagemode\.entry=(?!one\b)/);
    });
  }
  it("systemd-boot renamed the booted entry as countBootAttempt says (+3 → +2-1), the other untouched", async () => {
    const s = disks.get("sdboot-set-default");
    if (
      !s ||
      !(results.get("sdboot-set-default") && !(results.get("sdboot-set-default") instanceof Error))
    )
      throw new Error("boot failed");
    const { stdout } = await run(
      "mdir",
      ["-b", "-i", `${s.disk}@@${ESP_OFFSET}`, "::/loader/entries"],
      { env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } },
    );
    const names = stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => path.basename(l))
      .sort();
    expect(names).toEqual([countBootAttempt("imagemode-1+3.conf"), "imagemode-2+3.conf"].sort());
    expect(names).toContain("imagemode-1+2-1.conf");
  });
});
