import * as fsp from "node:fs/promises";
import { basename } from "node:path";
import { promisify } from "node:util";
import { deflate } from "node:zlib";
import { type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import { Appender, allocatedClusters, isZero, RawReader, type RawSource } from "./source.js";

const deflateAsync = promisify(deflate);

/** Options of {@link writeVmdk}. */
export interface VmdkOptions extends OpOptions {
  /** Content ID in the descriptor (default derived from the size; set it for reproducible output). */
  cid?: number;
  /** `ddb.adapterType` (default `lsilogic`). */
  adapterType?: "ide" | "lsilogic" | "buslogic" | "pvscsi";
}

/** What {@link writeVmdk} wrote. */
export interface VmdkResult {
  grains: number;
  fileSize: number;
}

const SECTOR = 512;
const GRAIN_SECTORS = 128; // 64 KiB grains
const GT_ENTRIES = 512;
const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;

function header(
  capacity: number,
  gdOffset: bigint,
  descriptorSectors: number,
  overhead: number,
  flagsCompressed = true,
): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.writeUInt32LE(0x564d444b, 0); // "KDMV"
  h.writeUInt32LE(3, 4);
  h.writeUInt32LE(0x1 | (flagsCompressed ? 0x10000 | 0x20000 : 0), 8); // newline test, compressed grains, markers
  h.writeBigUInt64LE(BigInt(capacity), 12);
  h.writeBigUInt64LE(BigInt(GRAIN_SECTORS), 20);
  h.writeBigUInt64LE(1n, 28); // descriptor at sector 1
  h.writeBigUInt64LE(BigInt(descriptorSectors), 36);
  h.writeUInt32LE(GT_ENTRIES, 44);
  h.writeBigUInt64LE(0n, 48); // no redundant grain directory
  h.writeBigUInt64LE(gdOffset, 56);
  h.writeBigUInt64LE(BigInt(overhead), 64);
  h[72] = 0;
  h[73] = 0x0a;
  h[74] = 0x20;
  h[75] = 0x0d;
  h[76] = 0x0a;
  h.writeUInt16LE(1, 77); // deflate
  return h;
}

function marker(value: number, type: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(value), 0);
  m.writeUInt32LE(0, 8);
  m.writeUInt32LE(type, 12);
  return m;
}

function padSector(b: Buffer): Buffer {
  const n = Math.ceil(b.length / SECTOR) * SECTOR;
  if (n === b.length) return b;
  const p = Buffer.alloc(n);
  b.copy(p);
  return p;
}

/**
 * Converts a raw disk into a streamOptimized VMDK (VMware Virtual Disk Format 5.0, "stream-optimized
 * compressed sparse extent"): header with the grain directory "at end", embedded descriptor,
 * zlib-compressed grains with grain markers in guest order, then grain tables, grain directory,
 * footer and end-of-stream marker. All-zero grains are left out. Streamed, one grain in memory.
 */
export async function writeVmdk(
  src: RawSource,
  outPath: string,
  options: VmdkOptions = {},
): Promise<VmdkResult> {
  const { signal, onProgress } = options;
  const op = "diskimage.vmdk";
  const grainBytes = GRAIN_SECTORS * SECTOR;
  const capacity = Math.ceil(src.size / grainBytes) * GRAIN_SECTORS;
  const grainCount = capacity / GRAIN_SECTORS;
  const gtCount = Math.ceil(grainCount / GT_ENTRIES);
  const cid = (options.cid ?? (src.size / SECTOR) % 0xfffffffe) >>> 0;
  const cyl = Math.min(16383, Math.floor(capacity / (16 * 63)));
  const descriptor = [
    "# Disk DescriptorFile",
    "version=1",
    `CID=${cid.toString(16).padStart(8, "0")}`,
    "parentCID=ffffffff",
    'createType="streamOptimized"',
    "",
    "# Extent description",
    `RW ${capacity} SPARSE "${basename(outPath)}"`,
    "",
    "# The Disk Data Base",
    "#DDB",
    "",
    'ddb.virtualHWVersion = "4"',
    `ddb.geometry.cylinders = "${cyl}"`,
    'ddb.geometry.heads = "16"',
    'ddb.geometry.sectors = "63"',
    `ddb.adapterType = "${options.adapterType ?? "lsilogic"}"`,
    "",
  ].join("\n");
  const descBytes = padSector(Buffer.from(descriptor, "latin1"));
  const descriptorSectors = Math.max(20, descBytes.length / SECTOR);
  const overhead = Math.ceil((1 + descriptorSectors) / GRAIN_SECTORS) * GRAIN_SECTORS;
  const reader = await RawReader.open(src);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(outPath, "w+");
    const out = new Appender(fh);
    await out.append(header(capacity, 0xffffffffffffffffn, descriptorSectors, overhead));
    await out.append(descBytes);
    out.pos = overhead * SECTOR;
    const gt = new Uint32Array(gtCount * GT_ENTRIES);
    const buf = new Uint8Array(grainBytes);
    const total = src.extents.reduce((n, e) => n + e.length, 0);
    onProgress?.({ type: "start", task: "disk.vmdk", total });
    let grains = 0;
    let done = 0;
    for (const g of allocatedClusters(src.extents, grainBytes, src.size)) {
      throwIfAborted(signal, op);
      const data = await reader.read(buf, g * grainBytes, grainBytes);
      done += grainBytes;
      onProgress?.({ type: "bytes", task: "disk.vmdk", done: Math.min(done, total), total });
      if (isZero(data)) continue;
      const z = await deflateAsync(data);
      const rec = Buffer.alloc(12 + z.length);
      rec.writeBigUInt64LE(BigInt(g * GRAIN_SECTORS), 0);
      rec.writeUInt32LE(z.length, 8);
      z.copy(rec, 12);
      const at = await out.append(padSector(rec));
      gt[g] = at / SECTOR;
      grains++;
    }
    await reader.close();
    // grain tables (all of them), each after a GT marker
    const gd = Buffer.alloc(gtCount * 4);
    const gtSectors = (GT_ENTRIES * 4) / SECTOR;
    for (let t = 0; t < gtCount; t++) {
      await out.append(marker(gtSectors, MARKER_GT));
      const table = Buffer.from(gt.buffer, t * GT_ENTRIES * 4, GT_ENTRIES * 4);
      const at = await out.append(Buffer.from(table));
      gd.writeUInt32LE(at / SECTOR, t * 4);
    }
    const gdPadded = padSector(gd);
    await out.append(marker(gdPadded.length / SECTOR, MARKER_GD));
    const gdOffset = (await out.append(gdPadded)) / SECTOR;
    await out.append(marker(1, MARKER_FOOTER));
    await out.append(header(capacity, BigInt(gdOffset), descriptorSectors, overhead));
    await out.append(marker(0, MARKER_EOS));
    await fh.truncate(out.pos);
    await fh.sync();
    onProgress?.({ type: "done", task: "disk.vmdk", bytes: out.pos });
    return { grains, fileSize: out.pos };
  } catch (e) {
    throw toImageModeError(e, op, { path: outPath });
  } finally {
    await fh?.close();
    await reader.close().catch(() => {});
  }
}
