import { invalidArgument } from "@imagemode/core";
import { type GptTable, gptGeometry } from "./gpt.js";
import { seededU32, seededUuid } from "./guid.js";
import type { MbrTable } from "./mbr.js";
import { gptTypeGuid, gptTypeName, mbrTypeByte } from "./partition-types.js";

/** Filesystems a partition can be given by {@link writeDisk}. */
export type FilesystemKind = "vfat" | "ext4" | "xfs" | "swap" | "raw" | "none";

/** One partition as a user asks for it. */
export interface PartitionSpec {
  /** Key of the partition (used by `writeDisk` to find its content); unique. */
  name: string;
  /** `bios-boot`, `esp`, `xbootldr`, `linux`, `root-x86-64`, `root-aarch64`, `swap`, a GUID, or `0xNN` on MBR. */
  type: string;
  /** Bytes (rounded up to a sector), or `fill` for the rest of the disk (at most one). */
  size: number | "fill";
  /** GPT partition name (default: `name`). */
  label?: string;
  /** The filesystem that will be written into it (informational for the plan; `writeDisk` uses it as default). */
  fs?: FilesystemKind;
  /** Filesystem label. */
  fsLabel?: string;
  /** Filesystem UUID (default: derived from the seed). */
  fsUuid?: string;
  /** Unique partition GUID (default: derived from the seed). */
  guid?: string;
  /** Mount point, for display and for bootc-image-builder's rules. */
  mountpoint?: string;
  /** MBR boot indicator; on GPT, the legacy-BIOS-bootable attribute (bit 2). */
  bootable?: boolean;
}

/** What to plan. */
export interface LayoutSpec {
  /** Disk size in bytes (rounded up to the alignment). */
  size: number;
  table?: "gpt" | "mbr";
  sectorSize?: 512 | 4096;
  /** Partition start alignment in bytes (default 1 MiB). */
  alignment?: number;
  /** Seed for every GUID, UUID and id that is not given (default `"imagemode"`). */
  seed?: string;
  /** Disk GUID (GPT) — default from the seed. */
  diskGuid?: string;
  partitions: PartitionSpec[];
}

/** A planned partition: every number resolved. */
export interface PlannedPartition {
  /** 1-based partition number. */
  number: number;
  name: string;
  /** The type as given (a name or GUID). */
  type: string;
  /** GPT type GUID (GPT) or `0xNN` (MBR). */
  typeId: string;
  label: string;
  /** Byte offset of the first byte. */
  offset: number;
  /** Size in bytes. */
  size: number;
  startLba: number;
  /** Inclusive. */
  endLba: number;
  /** Unique partition GUID (GPT only; empty on MBR). */
  guid: string;
  fs: FilesystemKind;
  fsLabel?: string;
  /** Filesystem UUID (lower-case, as `blkid` prints it); for vfat the 8-hex volume id is its first 8 digits. */
  fsUuid: string;
  /** FAT volume id (`XXXX-XXXX`), derived from the seed. */
  fatVolumeId: number;
  mountpoint?: string;
  bootable: boolean;
}

/** A fully resolved disk layout: plain data, safe to print, serialize, and hand to `writeDisk`. */
export interface DiskLayout {
  table: "gpt" | "mbr";
  sectorSize: number;
  size: number;
  alignment: number;
  seed: string;
  /** GPT disk GUID (GPT) or the MBR disk signature as 8 hex digits. */
  diskId: string;
  partitions: PlannedPartition[];
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const op = "diskimage.layout";

const alignUp = (x: number, a: number) => Math.ceil(x / a) * a;
const alignDown = (x: number, a: number) => Math.floor(x / a) * a;

/**
 * Plans a disk: resolves types, aligns every start to `alignment`, gives `fill` the rest (its end
 * aligned down to `alignment`), derives GUIDs/UUIDs from the seed. Pure.
 */
export function planLayout(spec: LayoutSpec): DiskLayout {
  const table = spec.table ?? "gpt";
  const ss = spec.sectorSize ?? 512;
  if (ss !== 512 && ss !== 4096)
    throw invalidArgument(`sector size must be 512 or 4096, not ${ss}`, { op });
  const alignment = spec.alignment ?? MiB;
  if (!Number.isSafeInteger(alignment) || alignment < ss || alignment % ss !== 0)
    throw invalidArgument(`alignment ${alignment} must be a multiple of the ${ss}-byte sector`, {
      op,
    });
  if (!Number.isSafeInteger(spec.size) || spec.size <= 0)
    throw invalidArgument(`invalid disk size ${spec.size}`, { op });
  const size = alignUp(spec.size, alignment);
  const seed = spec.seed ?? "imagemode";
  const sectors = size / ss;
  let firstUsable: number;
  let lastUsable: number;
  if (table === "gpt") {
    const g = gptGeometry(ss, sectors);
    firstUsable = g.firstUsableLba * ss;
    lastUsable = (g.lastUsableLba + 1) * ss; // exclusive, bytes
  } else if (table === "mbr") {
    if (spec.partitions.length > 4)
      throw invalidArgument("an MBR table holds at most 4 primary partitions", { op });
    firstUsable = ss;
    lastUsable = size;
  } else {
    throw invalidArgument(`unknown partition table ${JSON.stringify(table)} (gpt or mbr)`, { op });
  }
  const names = new Set<string>();
  const fills = spec.partitions.filter((p) => p.size === "fill").length;
  if (fills > 1) throw invalidArgument("only one partition may have size fill", { op });
  // fixed sizes first, to know what fill gets
  let fixedTotal = 0;
  for (const p of spec.partitions) {
    if (!p.name || names.has(p.name))
      throw invalidArgument(`partition name ${JSON.stringify(p.name)} is empty or not unique`, {
        op,
      });
    names.add(p.name);
    if (p.size !== "fill") {
      if (!Number.isSafeInteger(p.size) || p.size <= 0)
        throw invalidArgument(`partition ${p.name}: invalid size ${p.size}`, {
          op,
          data: { name: p.name },
        });
      fixedTotal += alignUp(p.size, alignment);
    }
  }
  const out: PlannedPartition[] = [];
  let cursor = alignUp(firstUsable, alignment);
  for (let i = 0; i < spec.partitions.length; i++) {
    const p = spec.partitions[i]!;
    const offset = alignUp(cursor, alignment);
    let psize: number;
    if (p.size === "fill") {
      const restFixed = spec.partitions
        .slice(i + 1)
        .reduce((n, q) => n + (q.size === "fill" ? 0 : alignUp(q.size, alignment)), 0);
      psize = alignDown(lastUsable - restFixed, alignment) - offset;
      if (psize < alignment) {
        throw invalidArgument(
          `partition ${p.name}: no room left to fill (disk ${formatSize(size)}, fixed partitions ${formatSize(fixedTotal)})`,
          { op, data: { name: p.name } },
        );
      }
    } else {
      psize = alignUp(p.size, ss);
    }
    if (offset + psize > lastUsable) {
      throw invalidArgument(
        `partition ${p.name} (${formatSize(psize)} at ${formatSize(offset)}) does not fit on a ${formatSize(size)} disk`,
        { op, data: { name: p.name, size } },
      );
    }
    const typeId =
      table === "gpt"
        ? gptTypeGuid(p.type)
        : `0x${mbrTypeByte(p.type).toString(16).padStart(2, "0")}`;
    const label = p.label ?? p.name;
    if (table === "gpt" && label.length > 36)
      throw invalidArgument(`partition ${p.name}: GPT name longer than 36 characters`, { op });
    const planned: PlannedPartition = {
      number: i + 1,
      name: p.name,
      type: p.type,
      typeId,
      label,
      offset,
      size: psize,
      startLba: offset / ss,
      endLba: (offset + psize) / ss - 1,
      guid:
        table === "gpt" ? (p.guid?.toUpperCase() ?? seededUuid(seed, `partition:${p.name}`)) : "",
      fs: p.fs ?? (p.type === "bios-boot" ? "none" : "raw"),
      fsUuid: (p.fsUuid ?? seededUuid(seed, `filesystem:${p.name}`)).toLowerCase(),
      fatVolumeId: seededU32(seed, `fat-volume-id:${p.name}`),
      bootable: p.bootable ?? false,
    };
    if (p.fsLabel !== undefined) planned.fsLabel = p.fsLabel;
    if (p.mountpoint !== undefined) planned.mountpoint = p.mountpoint;
    out.push(planned);
    cursor = offset + psize;
  }
  const diskId =
    table === "gpt"
      ? (spec.diskGuid?.toUpperCase() ?? seededUuid(seed, "disk"))
      : seededU32(seed, "mbr-disk-id").toString(16).padStart(8, "0");
  return { table, sectorSize: ss, size, alignment, seed, diskId, partitions: out };
}

/** The GPT for a planned GPT layout. */
export function gptTableFor(layout: DiskLayout): GptTable {
  if (layout.table !== "gpt") throw invalidArgument("layout is not GPT", { op });
  const ss = layout.sectorSize;
  const g = gptGeometry(ss, layout.size / ss);
  return {
    sectorSize: ss,
    diskGuid: layout.diskId,
    firstUsableLba: g.firstUsableLba,
    lastUsableLba: g.lastUsableLba,
    alternateLba: g.backupHeaderLba,
    entryCount: 128,
    entrySize: 128,
    partitions: layout.partitions.map((p) => ({
      index: p.number,
      typeGuid: p.typeId,
      guid: p.guid,
      firstLba: p.startLba,
      lastLba: p.endLba,
      attributes: p.bootable ? 4n : 0n,
      name: p.label,
    })),
  };
}

/** The MBR for a planned MBR layout. */
export function mbrTableFor(layout: DiskLayout): MbrTable {
  if (layout.table !== "mbr") throw invalidArgument("layout is not MBR", { op });
  return {
    diskId: Number.parseInt(layout.diskId, 16),
    partitions: layout.partitions.map((p) => ({
      index: p.number,
      bootable: p.bootable,
      type: Number.parseInt(p.typeId.slice(2), 16),
      firstLba: p.startLba,
      sectors: p.endLba - p.startLba + 1,
    })),
  };
}

/** A `[[customizations.filesystem]]` entry of a blueprint: a mount point and its minimum size. */
export interface FilesystemMinsize {
  mountpoint: string;
  minsize: number;
}

/** Options of {@link defaultLayout}. */
export interface DefaultLayoutOptions {
  /** `x86_64` (default) has a BIOS boot partition; `aarch64` does not. */
  arch?: "x86_64" | "aarch64";
  /** Root filesystem (default `ext4`; bootc-image-builder also knows `xfs`). */
  rootfs?: "ext4" | "xfs";
  /** Size of the container image in bytes: root gets at least twice this (room for one update). */
  imageSize?: number;
  /** Requested disk size (default 10 GiB); grows when the partitions need more. */
  size?: number;
  /** Blueprint filesystem minimum sizes (`/` and `/boot` grow those partitions; others become extra partitions). */
  filesystems?: FilesystemMinsize[];
  /** Use the Discoverable Partitions root type instead of the generic Linux type for `/`. */
  dpsRoot?: boolean;
  seed?: string;
}

/**
 * bootc-image-builder's default table: GPT, 1 MiB alignment, 512-byte sectors, 128 entries —
 * BIOS boot 1 MiB (x86_64 only), ESP 501 MiB vfat `EFI-SYSTEM`, `/boot` 1 GiB (XBOOTLDR) `boot`,
 * root `root` filling a 10 GiB disk. Rules: root ≥ max(2 GiB, 2 × image size, `/` minsize);
 * the disk grows to fit.
 */
export function defaultLayout(options: DefaultLayoutOptions = {}): DiskLayout {
  const arch = options.arch ?? "x86_64";
  const rootfs = options.rootfs ?? "ext4";
  const fsMin = new Map<string, number>();
  for (const f of options.filesystems ?? []) {
    if (!f.mountpoint.startsWith("/"))
      throw invalidArgument(
        `filesystem mountpoint ${JSON.stringify(f.mountpoint)} must be absolute`,
        { op },
      );
    if (!Number.isSafeInteger(f.minsize) || f.minsize < 0)
      throw invalidArgument(`filesystem ${f.mountpoint}: invalid minsize ${f.minsize}`, { op });
    fsMin.set(f.mountpoint, Math.max(fsMin.get(f.mountpoint) ?? 0, f.minsize));
  }
  const rootMin = Math.max(2 * GiB, 2 * (options.imageSize ?? 0), fsMin.get("/") ?? 0);
  const bootSize = Math.max(GiB, fsMin.get("/boot") ?? 0);
  const parts: PartitionSpec[] = [];
  if (arch === "x86_64")
    parts.push({ name: "bios-boot", type: "bios-boot", size: MiB, label: "BIOS-BOOT", fs: "none" });
  parts.push({
    name: "esp",
    type: "esp",
    size: 501 * MiB,
    label: "EFI-SYSTEM",
    fs: "vfat",
    fsLabel: "EFI-SYSTEM",
    mountpoint: "/boot/efi",
  });
  parts.push({
    name: "boot",
    type: "xbootldr",
    size: bootSize,
    label: "boot",
    fs: rootfs,
    fsLabel: "boot",
    mountpoint: "/boot",
  });
  const extra = [...fsMin.entries()]
    .filter(([m]) => m !== "/" && m !== "/boot")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [m, min] of extra) {
    const name = m.slice(1).replace(/\//g, "-");
    parts.push({
      name,
      type: "linux",
      size: alignUp(min, MiB),
      label: name,
      fs: rootfs,
      fsLabel: name.slice(0, 12),
      mountpoint: m,
    });
  }
  const rootType = options.dpsRoot ? (arch === "x86_64" ? "root-x86-64" : "root-aarch64") : "linux";
  parts.push({
    name: "root",
    type: rootType,
    size: "fill",
    label: "root",
    fs: rootfs,
    fsLabel: "root",
    mountpoint: "/",
  });
  const fixed = parts.reduce((n, p) => n + (p.size === "fill" ? 0 : alignUp(p.size, MiB)), 0);
  const needed = MiB /* head */ + fixed + alignUp(rootMin, MiB) + MiB /* backup GPT */;
  const size = Math.max(options.size ?? 10 * GiB, alignUp(needed, MiB));
  const spec: LayoutSpec = {
    size,
    table: "gpt",
    sectorSize: 512,
    alignment: MiB,
    partitions: parts,
  };
  if (options.seed !== undefined) spec.seed = options.seed;
  return planLayout(spec);
}

/** Parses `10GiB`, `501MiB`, `1.5G`, `512K`, `4096` (bytes) into bytes (binary units). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$/i.exec(text);
  if (!m)
    throw invalidArgument(`invalid size ${JSON.stringify(text)} (e.g. 10GiB, 501MiB, 4096)`, {
      op,
    });
  const exp = " kmgtp".indexOf((m[2] || " ").toLowerCase());
  const v = Math.round(Number(m[1]) * 1024 ** exp);
  if (!Number.isSafeInteger(v) || v <= 0)
    throw invalidArgument(`invalid size ${JSON.stringify(text)}`, { op });
  return v;
}

/** A table a person can read: one line per partition (number, start, end, size, type, name, filesystem). */
export function formatLayout(layout: DiskLayout): string {
  const head = `${layout.table.toUpperCase()} disk, ${formatSize(layout.size)} (${layout.size} bytes), ${layout.sectorSize}-byte sectors, ${layout.table === "gpt" ? "GUID" : "id"} ${layout.diskId}`;
  const rows = [
    ["#", "start", "end", "size", "type", "name", "fs", "fs label", "fs uuid", "mount"],
  ];
  for (const p of layout.partitions) {
    const typeName = layout.table === "gpt" ? gptTypeName(p.typeId) : `${p.type} (${p.typeId})`;
    const fsUuid =
      p.fs === "vfat"
        ? fatVolumeIdText(p.fatVolumeId)
        : p.fs === "none" || p.fs === "raw"
          ? "-"
          : p.fsUuid;
    rows.push([
      String(p.number),
      String(p.startLba),
      String(p.endLba),
      formatSize(p.size),
      typeName,
      p.label,
      p.fs,
      p.fsLabel ?? "-",
      fsUuid,
      p.mountpoint ?? "-",
    ]);
  }
  return `${head}\n${formatRows(rows)}`;
}

/** A size in binary units, the way partitioning tools print it (`501 MiB`, `10 GiB`, `1.5 GiB`). */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, "");
  return `${text} ${units[i]}`;
}

/** `XXXX-XXXX`, the way `blkid` prints a FAT volume id. */
export function fatVolumeIdText(id: number): string {
  const h = (id >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return `${h.slice(0, 4)}-${h.slice(4)}`;
}

/** Left-aligned columns separated by two spaces. */
export function formatRows(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}
