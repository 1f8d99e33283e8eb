import { invalidArgument, parseError } from "@imagemode/core";

/** One primary partition of an MBR (DOS) partition table. */
export interface MbrPartition {
  /** 1..4. */
  index: number;
  /** Boot indicator (0x80). */
  bootable: boolean;
  /** Partition type byte (0x83 Linux, 0xEF ESP, 0xEE GPT protective, …). */
  type: number;
  firstLba: number;
  sectors: number;
}

/** An MBR partition table. */
export interface MbrTable {
  /** The 32-bit disk signature at byte 440 (`label-id` in sfdisk). */
  diskId: number;
  partitions: MbrPartition[];
}

/** CHS address for an LBA with the conventional 255-head, 63-sector geometry, clamped to 1023/254/63. */
function chs(lba: number): [number, number, number] {
  const c = Math.floor(lba / (255 * 63));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / 63) % 255;
  const s = (lba % 63) + 1;
  return [h, ((c >> 2) & 0xc0) | s, c & 0xff];
}

/** Encodes sector 0 (512 bytes used, zero-padded to `sectorSize`) holding an MBR table. */
export function encodeMbr(table: MbrTable, sectorSize = 512, bootCode?: Uint8Array): Uint8Array {
  const b = Buffer.alloc(sectorSize);
  if (bootCode) b.set(bootCode.subarray(0, 440), 0);
  b.writeUInt32LE(table.diskId >>> 0, 440);
  for (const p of table.partitions) {
    if (p.index < 1 || p.index > 4)
      throw invalidArgument(`MBR partition index ${p.index} outside 1..4`, { op: "diskimage.mbr" });
    if (p.firstLba > 0xffffffff || p.sectors > 0xffffffff || p.firstLba + p.sectors > 0x100000000) {
      throw invalidArgument(`MBR partition ${p.index} does not fit in 32-bit LBAs (use GPT)`, {
        op: "diskimage.mbr",
      });
    }
    const o = 446 + (p.index - 1) * 16;
    b[o] = p.bootable ? 0x80 : 0;
    b.set(chs(p.firstLba), o + 1);
    b[o + 4] = p.type;
    b.set(chs(p.firstLba + p.sectors - 1), o + 5);
    b.writeUInt32LE(p.firstLba, o + 8);
    b.writeUInt32LE(p.sectors, o + 12);
  }
  b[510] = 0x55;
  b[511] = 0xaa;
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Decodes an MBR from sector 0 (checks the 0x55AA signature); returns the used entries. */
export function decodeMbr(sector: Uint8Array): MbrTable {
  const b = Buffer.from(sector.buffer, sector.byteOffset, sector.byteLength);
  if (b.length < 512 || b[510] !== 0x55 || b[511] !== 0xaa)
    throw parseError("no MBR signature (0x55AA)", { op: "diskimage.mbr" });
  const partitions: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    const type = b[o + 4]!;
    if (type === 0) continue;
    partitions.push({
      index: i + 1,
      bootable: b[o] === 0x80,
      type,
      firstLba: b.readUInt32LE(o + 8),
      sectors: b.readUInt32LE(o + 12),
    });
  }
  return { diskId: b.readUInt32LE(440), partitions };
}

/** The protective MBR of a GPT disk: one 0xEE partition from LBA 1 covering the disk (capped at 2^32−1). */
export function encodeProtectiveMbr(sectorSize: number, diskSectors: number): Uint8Array {
  const b = Buffer.from(encodeMbr({ diskId: 0, partitions: [] }, sectorSize));
  const o = 446;
  b[o] = 0;
  b[o + 1] = 0x00;
  b[o + 2] = 0x02;
  b[o + 3] = 0x00;
  b[o + 4] = 0xee;
  b.set(chs(diskSectors - 1), o + 5);
  b.writeUInt32LE(1, o + 8);
  b.writeUInt32LE(Math.min(diskSectors - 1, 0xffffffff), o + 12);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}
