import * as fsp from "node:fs/promises";
import { invalidArgument, type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import { isGuid } from "../guid.js";
import { Appender, RawReader, type RawSource } from "./source.js";

/** Options of {@link writeVhd}. */
export interface VhdOptions extends OpOptions {
  /** The footer's unique id (a GUID); default all zeros. Set it (e.g. from the layout seed) for a unique disk. */
  uniqueId?: string;
  /** Footer timestamp, seconds since 2000-01-01 UTC (default 0, for reproducible output). */
  timestamp?: number;
  /**
   * The footer's creator application (4 characters). Default `win `: readers such as qemu trust the
   * footer's current size (instead of the CHS geometry, which rounds down) only for a few known
   * creators, and Hyper-V's `win ` is the one Azure's own tooling writes.
   */
  creatorApp?: string;
  /** Require a virtual size that is a whole number of MiB (Azure's rule; default true). */
  requireMiBAligned?: boolean;
}

/** CHS geometry of the VHD specification's appendix ("CHS calculation"). */
export function vhdGeometry(size: number): {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
} {
  let total = Math.floor(size / 512);
  if (total > 65535 * 16 * 255) total = 65535 * 16 * 255;
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.floor((cth + 1023) / 1024);
    if (heads < 4) heads = 4;
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

/** The 512-byte footer of a fixed VHD (big-endian; checksum = one's complement of the byte sum). */
export function encodeVhdFooter(
  size: number,
  options: { uniqueId?: string; timestamp?: number; creatorApp?: string } = {},
): Uint8Array {
  const f = Buffer.alloc(512);
  f.write("conectix", 0, "latin1");
  f.writeUInt32BE(2, 8); // features: reserved bit always set
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(0xffffffffffffffffn, 16); // data offset: none for fixed disks
  f.writeUInt32BE((options.timestamp ?? 0) >>> 0, 24);
  f.write((options.creatorApp ?? "win ").padEnd(4, " ").slice(0, 4), 28, "latin1");
  f.writeUInt32BE(0x00010000, 32);
  f.write("Wi2k", 36, "latin1");
  f.writeBigUInt64BE(BigInt(size), 40);
  f.writeBigUInt64BE(BigInt(size), 48);
  const g = vhdGeometry(size);
  f.writeUInt16BE(g.cylinders, 56);
  f[58] = g.heads;
  f[59] = g.sectorsPerTrack;
  f.writeUInt32BE(2, 60); // fixed hard disk
  if (options.uniqueId && !isGuid(options.uniqueId))
    throw invalidArgument(`VHD unique id ${JSON.stringify(options.uniqueId)} is not a GUID`, {
      op: "diskimage.vhd",
    });
  if (options.uniqueId) f.set(Buffer.from(options.uniqueId.replace(/-/g, ""), "hex"), 68);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += f[i]!;
  f.writeUInt32BE(~sum >>> 0, 64);
  return new Uint8Array(f.buffer, f.byteOffset, 512);
}

/**
 * Writes a fixed VHD: the raw disk (sparse: only the written extents are copied, holes stay holes)
 * followed by the 512-byte footer. Azure requires the virtual size to be a whole number of MiB.
 */
export async function writeVhd(
  src: RawSource,
  outPath: string,
  options: VhdOptions = {},
): Promise<{ fileSize: number }> {
  const op = "diskimage.vhd";
  if ((options.requireMiBAligned ?? true) && src.size % (1024 * 1024) !== 0)
    throw invalidArgument(
      `VHD for Azure needs a size that is a whole number of MiB, not ${src.size}`,
      { op },
    );
  const reader = await RawReader.open(src);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(outPath, "w+");
    await fh.truncate(src.size + 512);
    const out = new Appender(fh);
    const chunk = new Uint8Array(1 << 20);
    const total = src.extents.reduce((n, e) => n + e.length, 0);
    options.onProgress?.({ type: "start", task: "disk.vhd", total });
    let done = 0;
    for (const e of src.extents) {
      for (let o = e.offset; o < e.offset + e.length; o += chunk.length) {
        throwIfAborted(options.signal, op);
        const n = Math.min(chunk.length, e.offset + e.length - o);
        await out.writeAt(o, await reader.read(chunk, o, n));
        done += n;
        options.onProgress?.({ type: "bytes", task: "disk.vhd", done, total });
      }
    }
    await out.writeAt(src.size, encodeVhdFooter(src.size, options));
    await fh.sync();
    options.onProgress?.({ type: "done", task: "disk.vhd", bytes: src.size + 512 });
    return { fileSize: src.size + 512 };
  } catch (e) {
    throw toImageModeError(e, op, { path: outPath });
  } finally {
    await fh?.close();
    await reader.close().catch(() => {});
  }
}
