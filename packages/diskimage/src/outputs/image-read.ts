/**
 * Reading the first bytes of the guest disk inside a streamOptimized VMDK or a dynamic VHD —
 * enough to decode its partition table. Pure lookups through each format's own index (the VMDK
 * grain directory and tables, the VHD block allocation table); nothing is converted.
 */
import type { FileHandle } from "node:fs/promises";
import { inflateSync } from "node:zlib";
import { parseError, unsupported } from "@imagemode/core";

const SECTOR = 512;
const op = "diskimage.read";

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(b, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return b;
}

/** Fields of a VMDK sparse extent header (VMware Virtual Disk Format 5.0, little-endian). */
export interface VmdkHeader {
  version: number;
  flags: number;
  /** Guest size in sectors. */
  capacity: number;
  grainSectors: number;
  gtEntries: number;
  /** Grain directory offset in sectors (`-1`: at the end, see the footer). */
  gdOffset: bigint;
  compressAlgorithm: number;
}

/** Decodes a VMDK sparse extent header (magic `KDMV`). */
export function decodeVmdkHeader(b: Uint8Array): VmdkHeader {
  const h = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (h.length < 79 || h.readUInt32LE(0) !== 0x564d444b)
    throw parseError("not a VMDK sparse extent (magic)", { op });
  return {
    version: h.readUInt32LE(4),
    flags: h.readUInt32LE(8),
    capacity: Number(h.readBigUInt64LE(12)),
    grainSectors: Number(h.readBigUInt64LE(20)),
    gtEntries: h.readUInt32LE(44),
    gdOffset: h.readBigUInt64LE(56),
    compressAlgorithm: h.readUInt16LE(77),
  };
}

const GD_AT_END = 0xffffffffffffffffn;

/**
 * Guest bytes `[0, length)` of a VMDK sparse extent — streamOptimized (compressed grains with
 * markers, the grain directory found through the footer) or plain monolithicSparse.
 */
export async function readVmdkHead(
  fh: FileHandle,
  fileSize: number,
  length: number,
): Promise<{ size: number; data: Uint8Array }> {
  let h = decodeVmdkHeader(await readAt(fh, 0, SECTOR));
  if (h.gdOffset === GD_AT_END) {
    // streamOptimized: the footer (a copy of the header with the real offset) is the second to
    // last sector, before the end-of-stream marker
    if (fileSize < 3 * SECTOR) throw parseError("VMDK too short for its footer", { op });
    h = decodeVmdkHeader(await readAt(fh, fileSize - 2 * SECTOR, SECTOR));
    if (h.gdOffset === GD_AT_END) throw parseError("VMDK footer has no grain directory", { op });
  }
  const compressed = (h.flags & 0x10000) !== 0;
  if (compressed && h.compressAlgorithm !== 1)
    throw unsupported(`VMDK compression ${h.compressAlgorithm} is not deflate`, { op });
  if (!Number.isSafeInteger(h.capacity) || h.grainSectors <= 0 || h.gtEntries <= 0)
    throw parseError("VMDK header fields out of range", { op });
  const size = h.capacity * SECTOR;
  const grainBytes = h.grainSectors * SECTOR;
  const n = Math.min(length, size);
  const out = new Uint8Array(n);
  const gd = Number(h.gdOffset) * SECTOR;
  for (let g = 0; g * grainBytes < n; g++) {
    const gdi = Math.floor(g / h.gtEntries);
    const gt = (await readAt(fh, gd + gdi * 4, 4)).readUInt32LE(0);
    if (gt === 0) continue;
    const grainSector = (await readAt(fh, gt * SECTOR + (g % h.gtEntries) * 4, 4)).readUInt32LE(0);
    if (grainSector <= 1) continue; // 0: unallocated, 1: zero grain
    const take = Math.min(grainBytes, n - g * grainBytes);
    if (!compressed) {
      out.set((await readAt(fh, grainSector * SECTOR, take)).subarray(0, take), g * grainBytes);
      continue;
    }
    // a compressed grain starts with its lba (u64) and the size (u32) of the zlib data after it
    const at = grainSector * SECTOR;
    const zLen = (await readAt(fh, at, 12)).readUInt32LE(8);
    const zAt = at + 12;
    if (zLen <= 0 || zLen > 2 * grainBytes + 1024)
      throw parseError("VMDK grain size is out of range", { op });
    const raw = inflateSync(await readAt(fh, zAt, zLen));
    out.set(raw.subarray(0, take), g * grainBytes);
  }
  return { size, data: out };
}

/** Fields of a VHD footer (Microsoft Virtual Hard Disk Image Format, big-endian). */
export interface VhdFooter {
  /** 2 fixed, 3 dynamic, 4 differencing. */
  diskType: number;
  /** Guest size in bytes. */
  currentSize: number;
  /** Offset of the dynamic disk header (dynamic/differencing). */
  dataOffset: number;
}

/** Decodes a VHD footer (cookie `conectix`). */
export function decodeVhdFooter(b: Uint8Array): VhdFooter {
  const h = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (h.length < 512 || h.toString("latin1", 0, 8) !== "conectix")
    throw parseError("not a VHD footer (cookie)", { op });
  return {
    diskType: h.readUInt32BE(60),
    currentSize: Number(h.readBigUInt64BE(48)),
    dataOffset: Number(h.readBigUInt64BE(16)),
  };
}

/** Guest bytes `[0, length)` of a dynamic VHD (its footer copy at offset 0). */
export async function readDynamicVhdHead(
  fh: FileHandle,
  length: number,
): Promise<{ size: number; data: Uint8Array }> {
  const foot = decodeVhdFooter(await readAt(fh, 0, SECTOR));
  if (foot.diskType === 4)
    throw unsupported("differencing VHDs (with a parent) are not read here", { op });
  if (foot.diskType !== 3)
    throw parseError(`VHD disk type ${foot.diskType} is not dynamic`, { op });
  const dh = await readAt(fh, foot.dataOffset, 1024);
  if (dh.toString("latin1", 0, 8) !== "cxsparse")
    throw parseError("VHD dynamic header cookie is not cxsparse", { op });
  const bat = Number(dh.readBigUInt64BE(16));
  const maxEntries = dh.readUInt32BE(28);
  const blockSize = dh.readUInt32BE(32);
  if (blockSize <= 0 || blockSize % SECTOR !== 0)
    throw parseError("VHD block size is invalid", { op });
  const bitmapBytes = Math.ceil(blockSize / SECTOR / 8 / SECTOR) * SECTOR;
  const size = foot.currentSize;
  const n = Math.min(length, size);
  const out = new Uint8Array(n);
  for (let b = 0; b * blockSize < n && b < maxEntries; b++) {
    const sector = (await readAt(fh, bat + b * 4, 4)).readUInt32BE(0);
    if (sector === 0xffffffff) continue;
    const take = Math.min(blockSize, n - b * blockSize);
    const bitmap = await readAt(fh, sector * SECTOR, bitmapBytes);
    const data = await readAt(fh, sector * SECTOR + bitmapBytes, take);
    // sectors whose bitmap bit (most significant first) is clear read as zeros
    for (let s = 0; s * SECTOR < take; s++)
      if (!(((bitmap[s >>> 3] as number) >> (7 - (s & 7))) & 1))
        data.fill(0, s * SECTOR, (s + 1) * SECTOR);
    out.set(data.subarray(0, take), b * blockSize);
  }
  return { size, data: out };
}
