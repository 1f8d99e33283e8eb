/**
 * GRUB on UEFI: the image's EFI binaries (bootupd layout, or shim + grub) copied to the ESP, with the
 * removable-media fallback `EFI/BOOT/BOOTX64.EFI`.
 */
import * as path from "node:path";
import { invalidArgument } from "@imagemode/core";
import { type BootFs, nodeBootFs } from "./fs.js";
import type { PlacedFile } from "./placement.js";

/** EFI binaries found in an image. */
export interface ImageEfiBinaries {
  /** `"bootupd"` (`usr/lib/bootupd/updates/EFI/…` copied as is) or `"loose"` (grub/shim found elsewhere). */
  layout: "bootupd" | "loose";
  /** Files to copy, paths relative to the ESP root (`EFI/fedora/grubx64.efi`). */
  files: { path: string; sourcePath: string }[];
  /** Vendor directory name (`fedora`, `debian`, `centos`). */
  vendor: string;
  /** ESP path of the binary the fallback should start (shim if present, else grub). */
  bootEntry: string;
}

const LOOSE_GRUB = [
  "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
  "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi",
  "boot/efi/EFI/BOOT/grubx64.efi",
];
const LOOSE_SHIM = ["usr/lib/shim/shimx64.efi.signed", "usr/lib/shim/shimx64.efi"];

async function walk(
  fs: BootFs,
  dir: string,
  rel: string,
  out: { path: string; sourcePath: string }[],
): Promise<void> {
  for (const name of (await fs.readdir(dir)).sort()) {
    const p = path.join(dir, name);
    const st = await fs.lstat(p);
    if (st.isDirectory()) await walk(fs, p, `${rel}/${name}`, out);
    else if (st.isFile()) out.push({ path: `${rel}/${name}`, sourcePath: p });
  }
}

/**
 * Finds the EFI binaries of an unpacked image: the bootupd payload `usr/lib/bootupd/updates/EFI/`
 * (every file, vendor = the directory holding `grubx64.efi`), else a loose `grubx64.efi` (Debian's
 * signed or monolithic image) with `shimx64.efi` if present; its vendor directory is the prefix
 * embedded in the binary (`/EFI/debian` → `debian`, see {@link readGrubEfiPrefix}). `null` when the image has none (then
 * build one with {@link makeGrubImage}).
 */
export async function findImageEfiBinaries(
  imageRoot: string,
  options: { fs?: BootFs; vendor?: string } = {},
): Promise<ImageEfiBinaries | null> {
  const fs = options.fs ?? nodeBootFs;
  const exists = async (p: string): Promise<boolean> =>
    fs.lstat(p).then(
      (s) => s.isFile() || s.isDirectory(),
      () => false,
    );
  const bootupd = path.join(imageRoot, "usr/lib/bootupd/updates/EFI");
  if (await exists(bootupd)) {
    const files: { path: string; sourcePath: string }[] = [];
    await walk(fs, bootupd, "EFI", files);
    const grub = files.find((f) => /^EFI\/(?!BOOT\/)[^/]+\/grubx64\.efi$/i.test(f.path));
    const vendor = grub ? (grub.path.split("/")[1] ?? "BOOT") : (options.vendor ?? "BOOT");
    const shim = files.find(
      (f) => f.path.toLowerCase() === `efi/${vendor.toLowerCase()}/shimx64.efi`,
    );
    const entry = shim ?? grub ?? files.find((f) => /^EFI\/BOOT\/BOOTX64\.EFI$/i.test(f.path));
    if (!entry)
      throw invalidArgument("bootupd payload has no grubx64.efi, shimx64.efi or BOOTX64.EFI", {
        op: "grub.efi.find",
        data: { imageRoot },
      });
    return { layout: "bootupd", files, vendor, bootEntry: entry.path };
  }
  let grub: string | undefined;
  for (const p of LOOSE_GRUB)
    if (await exists(path.join(imageRoot, p))) grub = grub ?? path.join(imageRoot, p);
  if (!grub) return null;
  const vendor = options.vendor ?? (await readGrubEfiPrefix(grub)) ?? "BOOT";
  let shim: string | undefined;
  for (const p of LOOSE_SHIM)
    if (await exists(path.join(imageRoot, p))) shim = shim ?? path.join(imageRoot, p);
  const files = [{ path: `EFI/${vendor}/grubx64.efi`, sourcePath: grub }];
  if (shim) files.push({ path: `EFI/${vendor}/shimx64.efi`, sourcePath: shim });
  return {
    layout: "loose",
    files,
    vendor,
    bootEntry: shim ? `EFI/${vendor}/shimx64.efi` : `EFI/${vendor}/grubx64.efi`,
  };
}

/**
 * The `/EFI/<vendor>` prefix embedded in a prebuilt GRUB EFI image (`grub-mkimage -p`), found by a
 * bounded streaming scan for the NUL-terminated string; `null` when there is none. A prebuilt GRUB
 * reads `$prefix/grub.cfg` from the ESP, so its `grub.cfg` stub must go to that directory.
 */
export async function readGrubEfiPrefix(efiPath: string): Promise<string | null> {
  const { createReadStream } = await import("node:fs");
  const re = /\/EFI\/([A-Za-z0-9._-]{1,32})\0/;
  let tail = "";
  for await (const chunk of createReadStream(efiPath, { highWaterMark: 1 << 16 })) {
    const text = tail + (chunk as Buffer).toString("latin1");
    const m = re.exec(text);
    if (m?.[1]) return m[1];
    tail = text.slice(-40);
  }
  return null;
}

/** Inputs of {@link planGrubEfiFiles}. */
export interface GrubEfiInput {
  /** Binaries from {@link findImageEfiBinaries}, or a GRUB EFI image built with {@link makeGrubImage}. */
  binaries: ImageEfiBinaries | { grubImage: Uint8Array; vendor?: string };
  /**
   * /boot filesystem UUID: writes `EFI/<vendor>/grub.cfg` that finds it and loads
   * `($root)<prefix>/grub.cfg` (what prebuilt distribution GRUBs read first).
   */
  bootFsUuid?: string;
  /** Directory of the real grub.cfg on /boot (default `/grub`; Fedora uses `/grub2`). */
  prefix?: string;
}

/** The ESP files of a GRUB UEFI install, including `EFI/BOOT/BOOTX64.EFI`. */
export function planGrubEfiFiles(input: GrubEfiInput): PlacedFile[] {
  const out: PlacedFile[] = [];
  let vendor: string;
  if ("grubImage" in input.binaries) {
    vendor = input.binaries.vendor ?? "imagemode";
    out.push({
      kind: "file",
      partition: "esp",
      path: `EFI/${vendor}/grubx64.efi`,
      mode: 0o644,
      content: input.binaries.grubImage,
    });
    out.push({
      kind: "file",
      partition: "esp",
      path: "EFI/BOOT/BOOTX64.EFI",
      mode: 0o644,
      content: input.binaries.grubImage,
    });
  } else {
    const b = input.binaries;
    vendor = b.vendor;
    for (const f of b.files)
      out.push({
        kind: "file",
        partition: "esp",
        path: f.path,
        mode: 0o644,
        sourcePath: f.sourcePath,
      });
    const hasFallback = b.files.some((f) => f.path.toUpperCase() === "EFI/BOOT/BOOTX64.EFI");
    const entry = b.files.find((f) => f.path === b.bootEntry);
    if (!hasFallback && entry) {
      out.push({
        kind: "file",
        partition: "esp",
        path: "EFI/BOOT/BOOTX64.EFI",
        mode: 0o644,
        sourcePath: entry.sourcePath,
      });
      // shim started as BOOTX64.EFI loads grubx64.efi from its own directory.
      const grub = b.files.find((f) => f.path === `EFI/${vendor}/grubx64.efi`);
      if (grub && entry !== grub)
        out.push({
          kind: "file",
          partition: "esp",
          path: "EFI/BOOT/grubx64.efi",
          mode: 0o644,
          sourcePath: grub.sourcePath,
        });
    }
  }
  if (input.bootFsUuid !== undefined) {
    if (!/^[0-9A-Za-z-]+$/.test(input.bootFsUuid))
      throw invalidArgument(`invalid filesystem UUID ${JSON.stringify(input.bootFsUuid)}`, {
        op: "grub.efi.plan",
      });
    const prefix = input.prefix ?? "/grub";
    // `root` too, so a menu rendered without its own `search` (a later deployment's
    // loader.N/grub.cfg) still finds the kernels on /boot
    const stub = `search --no-floppy --fs-uuid --set=dev ${input.bootFsUuid}\nset root=$dev\nset prefix=($dev)${prefix}\nexport prefix\nconfigfile $prefix/grub.cfg\n`;
    out.push({
      kind: "file",
      partition: "esp",
      path: `EFI/${vendor}/grub.cfg`,
      mode: 0o644,
      content: stub,
    });
  }
  return out;
}
