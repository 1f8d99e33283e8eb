import { invalidArgument } from "@imagemode/core";

/** FAT variant. */
export type FatType = 12 | 16 | 32;

/** Where everything of a FAT volume lies, in sectors. */
export interface FatGeometry {
  type: FatType;
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterSize: number;
  totalSectors: number;
  reservedSectors: number;
  numFats: number;
  /** Sectors per FAT. */
  fatSectors: number;
  /** Root directory entries (FAT12/16; 0 on FAT32). */
  rootEntries: number;
  rootDirSectors: number;
  /** First sector of the data region (cluster 2). */
  dataStart: number;
  /** Number of data clusters (clusters 2 .. clusterCount + 1). */
  clusterCount: number;
}

const MB = 1024 * 1024;

function clusterBytesFor(type: FatType, bytes: number): number {
  // Microsoft's DskTableFAT16 / DskTableFAT32 (fatgen103), expressed in bytes
  if (type === 32) {
    if (bytes <= 260 * MB) return 512;
    if (bytes <= 8192 * MB) return 4096;
    if (bytes <= 16384 * MB) return 8192;
    if (bytes <= 32768 * MB) return 16384;
    return 32768;
  }
  if (type === 16) {
    if (bytes <= 16 * MB) return 1024;
    if (bytes <= 128 * MB) return 2048;
    if (bytes <= 256 * MB) return 4096;
    if (bytes <= 512 * MB) return 8192;
    if (bytes <= 1024 * MB) return 16384;
    if (bytes <= 2048 * MB) return 32768;
    return 65536;
  }
  return 512;
}

/** True when `clusters` is a legal count for `type` (fatgen103: < 4085 is FAT12, < 65525 FAT16). */
export function clusterCountFits(type: FatType, clusters: number): boolean {
  if (type === 12) return clusters >= 1 && clusters < 4085;
  if (type === 16) return clusters >= 4085 && clusters < 65525;
  return clusters >= 65525 && clusters < 0x0ffffff5;
}

function layoutWith(type: FatType, totalSectors: number, bps: number, spc: number): FatGeometry {
  const reservedSectors = type === 32 ? 32 : 1;
  const numFats = 2;
  const rootEntries = type === 32 ? 0 : 512;
  const rootDirSectors = Math.ceil((rootEntries * 32) / bps);
  let fatSectors = 1;
  let clusterCount = 0;
  for (let i = 0; i < 64; i++) {
    const data = totalSectors - reservedSectors - numFats * fatSectors - rootDirSectors;
    clusterCount = Math.floor(data / spc);
    const bits = type === 12 ? 12 : type === 16 ? 16 : 32;
    const need = Math.ceil(Math.ceil(((clusterCount + 2) * bits) / 8) / bps);
    if (need <= fatSectors) break;
    fatSectors = need;
  }
  const dataStart = reservedSectors + numFats * fatSectors + rootDirSectors;
  clusterCount = Math.floor((totalSectors - dataStart) / spc);
  return {
    type,
    bytesPerSector: bps,
    sectorsPerCluster: spc,
    clusterSize: spc * bps,
    totalSectors,
    reservedSectors,
    numFats,
    fatSectors,
    rootEntries,
    rootDirSectors,
    dataStart,
    clusterCount,
  };
}

/**
 * Chooses FAT type and cluster size for a volume of `size` bytes: FAT32 from 66 600 sectors of
 * 512 bytes (≈ 32.5 MiB) up, FAT16 from 8 400, FAT12 below (fatgen103's thresholds), cluster
 * sizes from Microsoft's tables. `type` and `clusterSize` force a choice.
 */
export function fatGeometry(
  size: number,
  options: { type?: FatType; bytesPerSector?: number; clusterSize?: number } = {},
): FatGeometry {
  const bps = options.bytesPerSector ?? 512;
  if (![512, 1024, 2048, 4096].includes(bps))
    throw invalidArgument(`FAT bytes per sector must be 512–4096, not ${bps}`, {
      op: "diskimage.vfat",
    });
  const totalSectors = Math.floor(size / bps);
  if (totalSectors > 0xffffffff || totalSectors < 16)
    throw invalidArgument(
      `a ${size}-byte volume is outside FAT's range (16 sectors … 2^32 − 1 sectors)`,
      { op: "diskimage.vfat", data: { size } },
    );
  const s512 = size / 512;
  const type: FatType = options.type ?? (s512 > 66600 ? 32 : s512 > 8400 ? 16 : 12);
  const tryBytes: number[] = [];
  if (options.clusterSize) tryBytes.push(options.clusterSize);
  else {
    tryBytes.push(clusterBytesFor(type, size));
    for (let c = 512; c <= 65536; c *= 2) if (!tryBytes.includes(c)) tryBytes.push(c);
  }
  for (const cb of tryBytes) {
    if (cb < bps || cb % bps !== 0 || cb / bps > 128) continue;
    const g = layoutWith(type, totalSectors, bps, cb / bps);
    if (clusterCountFits(type, g.clusterCount)) return g;
  }
  throw invalidArgument(
    `a ${size}-byte volume cannot be FAT${type}${options.clusterSize ? ` with ${options.clusterSize}-byte clusters` : ""}`,
    { op: "diskimage.vfat", data: { size, type } },
  );
}

/** Options of {@link encodeBootSector}. */
export interface BootSectorFields {
  volumeId: number;
  /** 11 bytes, already padded. */
  label11: string;
  /** Sectors before the volume on its disk (the partition's first LBA). */
  hiddenSectors: number;
}

/** The boot sector with its BIOS parameter block (fatgen103 layout). */
export function encodeBootSector(g: FatGeometry, f: BootSectorFields): Uint8Array {
  const b = Buffer.alloc(g.bytesPerSector);
  b[0] = 0xeb;
  b[1] = g.type === 32 ? 0x58 : 0x3c;
  b[2] = 0x90;
  b.write("MSWIN4.1", 3, "latin1");
  b.writeUInt16LE(g.bytesPerSector, 11);
  b[13] = g.sectorsPerCluster;
  b.writeUInt16LE(g.reservedSectors, 14);
  b[16] = g.numFats;
  b.writeUInt16LE(g.rootEntries, 17);
  const small = g.type !== 32 && g.totalSectors < 0x10000;
  b.writeUInt16LE(small ? g.totalSectors : 0, 19);
  b[21] = 0xf8;
  b.writeUInt16LE(g.type === 32 ? 0 : g.fatSectors, 22);
  b.writeUInt16LE(63, 24);
  b.writeUInt16LE(255, 26);
  b.writeUInt32LE(f.hiddenSectors >>> 0, 28);
  b.writeUInt32LE(small ? 0 : g.totalSectors, 32);
  let o: number;
  if (g.type === 32) {
    b.writeUInt32LE(g.fatSectors, 36);
    b.writeUInt16LE(0, 40); // ExtFlags: FAT mirroring on
    b.writeUInt16LE(0, 42); // FSVer 0.0
    b.writeUInt32LE(2, 44); // root directory cluster
    b.writeUInt16LE(1, 48); // FSInfo sector
    b.writeUInt16LE(6, 50); // backup boot sector
    o = 64;
  } else {
    o = 36;
  }
  b[o] = 0x80; // drive number
  b[o + 2] = 0x29; // extended boot signature
  b.writeUInt32LE(f.volumeId >>> 0, o + 3);
  b.write(f.label11, o + 7, "latin1");
  b.write(g.type === 32 ? "FAT32   " : g.type === 16 ? "FAT16   " : "FAT12   ", o + 18, "latin1");
  b[510] = 0x55;
  b[511] = 0xaa;
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** The FAT32 FSInfo sector: free cluster count and the next free cluster hint. */
export function encodeFsInfo(
  bytesPerSector: number,
  freeCount: number,
  nextFree: number,
): Uint8Array {
  const b = Buffer.alloc(bytesPerSector);
  b.writeUInt32LE(0x41615252, 0);
  b.writeUInt32LE(0x61417272, 484);
  b.writeUInt32LE(freeCount >>> 0, 488);
  b.writeUInt32LE(nextFree >>> 0, 492);
  b.writeUInt32LE(0xaa550000, 508);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}
