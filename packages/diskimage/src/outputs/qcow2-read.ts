import type { FileHandle } from "node:fs/promises";
import { inflateRawSync } from "node:zlib";
import { parseError, unsupported } from "@imagemode/core";

/** Parsed fields of a qcow2 header that a reader needs. */
export interface Qcow2Header {
  version: number;
  clusterBits: number;
  size: number;
  l1Size: number;
  l1Offset: number;
  backingFile: boolean;
  encrypted: boolean;
}

/** Decodes a qcow2 header (qemu `docs/interop/qcow2.txt`, big-endian). */
export function decodeQcow2Header(b: Uint8Array): Qcow2Header {
  const h = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (h.length < 72 || h.toString("latin1", 0, 4) !== "QFI\xfb")
    throw parseError("not a qcow2 image (magic)", { op: "diskimage.qcow2" });
  const version = h.readUInt32BE(4);
  if (version !== 2 && version !== 3)
    throw parseError(`qcow2 version ${version} is not supported`, { op: "diskimage.qcow2" });
  return {
    version,
    clusterBits: h.readUInt32BE(20),
    size: Number(h.readBigUInt64BE(24)),
    l1Size: h.readUInt32BE(36),
    l1Offset: Number(h.readBigUInt64BE(40)),
    backingFile: h.readBigUInt64BE(8) !== 0n,
    encrypted: h.readUInt32BE(32) !== 0,
  };
}

/**
 * Reads guest bytes `[0, length)` of a qcow2 image (standard, zero and compressed clusters;
 * unallocated reads as zeros). For partition tables: `length` is small.
 */
export async function readQcow2Head(
  fh: FileHandle,
  length: number,
): Promise<{ header: Qcow2Header; data: Uint8Array }> {
  const hb = new Uint8Array(104);
  await fh.read(hb, 0, hb.length, 0);
  const header = decodeQcow2Header(hb);
  if (header.backingFile || header.encrypted)
    throw unsupported("qcow2 images with a backing file or encryption are not read here", {
      op: "diskimage.qcow2",
    });
  const cs = 2 ** header.clusterBits;
  const l2Entries = cs / 8;
  const n = Math.min(length, header.size);
  const out = new Uint8Array(n);
  const mask = (1n << 56n) - 1n;
  for (let c = 0; c * cs < n; c++) {
    const l1i = Math.floor(c / l2Entries);
    if (l1i >= header.l1Size) break;
    const l1e = Buffer.alloc(8);
    await fh.read(l1e, 0, 8, header.l1Offset + l1i * 8);
    const l2Off = Number(l1e.readBigUInt64BE(0) & mask & ~511n);
    if (l2Off === 0) continue;
    const l2e = Buffer.alloc(8);
    await fh.read(l2e, 0, 8, l2Off + (c % l2Entries) * 8);
    const e = l2e.readBigUInt64BE(0);
    const take = Math.min(cs, n - c * cs);
    if (e & (1n << 62n)) {
      const x = BigInt(62 - (header.clusterBits - 8));
      const off = Number(e & ((1n << x) - 1n));
      const sectors = Number((e >> x) & ((1n << (62n - x)) - 1n)) + 1;
      const z = Buffer.alloc(sectors * 512 - (off % 512));
      await fh.read(z, 0, z.length, off);
      const raw = inflateRawSync(z, {
        windowBits: 12,
        finishFlush: 2 /* Z_SYNC_FLUSH: trailing sector padding */,
      });
      out.set(raw.subarray(0, take), c * cs);
    } else if (e & 1n) {
      // zero cluster
    } else {
      const off = Number(e & mask & ~511n);
      if (off !== 0) await fh.read(out, c * cs, take, off);
    }
  }
  return { header, data: out };
}
