/**
 * GRUB on BIOS without a loop device: `boot.img` goes into the MBR's boot code area, `core.img`
 * into the BIOS boot partition, and the sector pointers are patched the way `grub-bios-setup` does
 * when it embeds core.img (without its optional Reed-Solomon recovery codes).
 */
import * as os from "node:os";
import * as path from "node:path";
import { invalidArgument, type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import { type ExecFn, nodeExec } from "./exec.js";
import { type BootFs, nodeBootFs } from "./fs.js";
import type { RawWrite } from "./placement.js";

/** Offsets in boot.img (GRUB's `include/grub/i386/pc/boot.h`). */
export const BOOT_IMG = {
  BPB_START: 0x03,
  BPB_END: 0x5a,
  KERNEL_SECTOR: 0x5c,
  DRIVE_CHECK: 0x66,
  /** Start of the disk signature + partition table, which are kept from the disk's MBR. */
  WINDOWS_NT_MAGIC: 0x1b8,
  PART_END: 0x1fe,
} as const;
/** The first blocklist in core.img's first sector (diskboot.img): start u64, length u16, segment u16. */
export const DISKBOOT_BLOCKLIST = 0x200 - 12;

const SECTOR = 512;

/** Where core.img goes: the BIOS boot partition (GPT type `21686148-6449-6E6F-744E-656564454649`). */
export interface BiosBootPartition {
  startLba: number;
  sectors: number;
}

/** Inputs of {@link planBiosGrubInstall}. */
export interface BiosGrubInput {
  /** GRUB's `boot.img` (512 bytes). */
  bootImg: Uint8Array;
  /** A `core.img` built for i386-pc (`grub-mkimage -O i386-pc`). */
  coreImg: Uint8Array;
  partition: BiosBootPartition;
  /** The disk's current first sector; its BPB area is kept (as grub-bios-setup does). */
  existingMbr?: Uint8Array;
}

/**
 * Plans the two raw writes of a BIOS GRUB install:
 * - boot.img's first 440 bytes → LBA 0 (the partition table and disk signature stay), with the
 *   core.img LBA at 0x5C (u64 LE) and the drive check at 0x66 replaced by `90 90` (hard disk);
 * - core.img → the BIOS boot partition, its first blocklist (at 0x1F4) set to start = LBA + 1,
 *   length = sectors − 1.
 *
 * @throws ImageModeError `INVALID_ARGUMENT` when boot.img is not 512 bytes, core.img is not a
 *   whole number of sectors or does not fit the partition.
 */
export function planBiosGrubInstall(input: BiosGrubInput): RawWrite[] {
  const op = "grub.bios.plan";
  const { bootImg, partition } = input;
  if (bootImg.length !== SECTOR)
    throw invalidArgument(`boot.img must be 512 bytes, got ${bootImg.length}`, { op });
  if ((bootImg[510] ?? 0) !== 0x55 || (bootImg[511] ?? 0) !== 0xaa)
    throw invalidArgument("boot.img lacks the 55 AA boot signature", { op });
  if (
    !Number.isSafeInteger(partition.startLba) ||
    partition.startLba < 1 ||
    !Number.isSafeInteger(partition.sectors) ||
    partition.sectors < 1
  ) {
    throw invalidArgument("invalid BIOS boot partition", { op, data: { ...partition } });
  }
  const coreSectors = Math.ceil(input.coreImg.length / SECTOR);
  if (input.coreImg.length < SECTOR)
    throw invalidArgument("core.img is smaller than one sector", { op });
  if (coreSectors > partition.sectors) {
    throw invalidArgument(
      `core.img needs ${coreSectors} sectors, the BIOS boot partition has ${partition.sectors}`,
      { op, data: { coreSectors } },
    );
  }
  if (coreSectors - 1 > 0xffff)
    throw invalidArgument("core.img too large for one blocklist", { op });

  const boot = new Uint8Array(bootImg);
  if (input.existingMbr) {
    if (input.existingMbr.length < SECTOR)
      throw invalidArgument("existing MBR must be 512 bytes", { op });
    boot.set(input.existingMbr.subarray(BOOT_IMG.BPB_START, BOOT_IMG.BPB_END), BOOT_IMG.BPB_START);
  }
  const bv = new DataView(boot.buffer, boot.byteOffset, boot.byteLength);
  bv.setBigUint64(BOOT_IMG.KERNEL_SECTOR, BigInt(partition.startLba), true);
  boot[BOOT_IMG.DRIVE_CHECK] = 0x90;
  boot[BOOT_IMG.DRIVE_CHECK + 1] = 0x90;

  const core = new Uint8Array(coreSectors * SECTOR);
  core.set(input.coreImg);
  const cv = new DataView(core.buffer);
  cv.setBigUint64(DISKBOOT_BLOCKLIST, BigInt(partition.startLba + 1), true);
  cv.setUint16(DISKBOOT_BLOCKLIST + 8, coreSectors - 1, true);

  return [
    {
      description: "GRUB boot.img → MBR boot code",
      offset: 0,
      content: boot.subarray(0, BOOT_IMG.WINDOWS_NT_MAGIC),
      limit: 440,
    },
    {
      description: "GRUB core.img → BIOS boot partition",
      offset: partition.startLba * SECTOR,
      content: core,
      limit: partition.sectors * SECTOR,
    },
  ];
}

/** Modules embedded by default into a core.img / EFI image (those missing from the directory are skipped). */
export const DEFAULT_GRUB_MODULES = [
  "part_gpt",
  "part_msdos",
  "fat",
  "ext2",
  "xfs",
  "normal",
  "linux",
  "configfile",
  "search",
  "search_fs_uuid",
  "search_label",
  "echo",
  "serial",
  "terminal",
  "test",
  "loadenv",
  "gzio",
  "halt",
  "reboot",
  "sleep",
] as const;

/** Options for {@link makeGrubImage}. */
export interface MakeGrubImageOptions extends OpOptions {
  /** `i386-pc` (core.img) or `x86_64-efi` (an EFI application). */
  format: "i386-pc" | "x86_64-efi";
  /** GRUB's module directory for the format, e.g. `<image>/usr/lib/grub/i386-pc`. */
  moduleDir: string;
  /** The /boot filesystem UUID; the embedded config searches for it and sets `prefix=($root)<prefix>`. */
  bootFsUuid: string;
  /** Directory holding grub.cfg on that filesystem (default `/grub`). */
  prefix?: string;
  /** Modules to embed (default {@link DEFAULT_GRUB_MODULES}, plus `biosdisk` for i386-pc). */
  modules?: readonly string[];
  /** Host tool name (default `grub-mkimage`). */
  grubMkimage?: string;
  exec?: ExecFn;
  fs?: BootFs;
  /** Scratch directory (default `os.tmpdir()`). */
  tmpDir?: string;
}

/**
 * Builds a GRUB image with the host's `grub-mkimage` from a module directory (the image's
 * `usr/lib/grub/<format>`), with an embedded config that finds the /boot filesystem by UUID.
 * Returns the image bytes (≈150–300 KiB).
 */
export async function makeGrubImage(options: MakeGrubImageOptions): Promise<Uint8Array> {
  const op = "grub.mkimage";
  const fs = options.fs ?? nodeBootFs;
  const exec = options.exec ?? nodeExec;
  if (!/^[0-9A-Za-z-]+$/.test(options.bootFsUuid))
    throw invalidArgument(`invalid filesystem UUID ${JSON.stringify(options.bootFsUuid)}`, { op });
  const prefix = options.prefix ?? "/grub";
  if (!/^\/[A-Za-z0-9_./-]*$/.test(prefix))
    throw invalidArgument(`invalid GRUB prefix ${JSON.stringify(prefix)}`, { op });
  const available = new Set(
    (
      await fs
        .readdir(options.moduleDir)
        .catch((err) => Promise.reject(toImageModeError(err, op, { moduleDir: options.moduleDir })))
    ).map((n) => n.replace(/\.mod$/, "")),
  );
  const wanted = options.modules ?? [
    ...(options.format === "i386-pc" ? ["biosdisk"] : []),
    ...DEFAULT_GRUB_MODULES,
  ];
  const modules = wanted.filter((m) => available.has(m));
  throwIfAborted(options.signal, op);
  const work = await (await import("node:fs/promises")).mkdtemp(
    path.join(options.tmpDir ?? os.tmpdir(), "imagemode-grub-"),
  );
  try {
    const cfg = path.join(work, "early.cfg");
    await fs.writeFile(
      cfg,
      `search --no-floppy --fs-uuid --set=root ${options.bootFsUuid}\nset prefix=($root)${prefix}\n`,
    );
    const out = path.join(work, options.format === "i386-pc" ? "core.img" : "grubx64.efi");
    await exec(
      options.grubMkimage ?? "grub-mkimage",
      [
        "-O",
        options.format,
        "-d",
        options.moduleDir,
        "-o",
        out,
        "-c",
        cfg,
        "-p",
        prefix,
        ...modules,
      ],
      options.signal ? { signal: options.signal } : {},
    );
    return await fs.readFile(out);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** GRUB files found in an image tree. */
export interface ImageGrubFiles {
  /** `usr/lib/grub/i386-pc` when it exists. */
  i386PcDir: string | null;
  bootImg: string | null;
  /** A prebuilt core.img (rare: distributions build it at install time). */
  coreImg: string | null;
  /** `usr/lib/grub/x86_64-efi` when it exists. */
  x86_64EfiDir: string | null;
}

/** Looks for GRUB's BIOS and EFI module directories in an unpacked image (or the host, with root `/`). */
export async function findImageGrub(
  imageRoot: string,
  options: { fs?: BootFs } = {},
): Promise<ImageGrubFiles> {
  const fs = options.fs ?? nodeBootFs;
  const exists = async (p: string): Promise<boolean> =>
    fs.lstat(p).then(
      () => true,
      () => false,
    );
  const pc = path.join(imageRoot, "usr/lib/grub/i386-pc");
  const efi = path.join(imageRoot, "usr/lib/grub/x86_64-efi");
  const hasPc = await exists(pc);
  return {
    i386PcDir: hasPc ? pc : null,
    bootImg: hasPc && (await exists(path.join(pc, "boot.img"))) ? path.join(pc, "boot.img") : null,
    coreImg: hasPc && (await exists(path.join(pc, "core.img"))) ? path.join(pc, "core.img") : null,
    x86_64EfiDir: (await exists(efi)) ? efi : null,
  };
}
