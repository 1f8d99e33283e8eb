import type { FileHandle } from "node:fs/promises";
import type { Appender } from "./source.js";

/** L2 entry flag of a standard cluster with refcount 1 ("copied"). */
export const QCOW2_COPIED = 1n << 63n;
/** L2 entry flag of a compressed cluster. */
export const QCOW2_COMPRESSED = 1n << 62n;

/** What {@link writeQcow2Tables} needs to know about the data part of a qcow2 being finished. */
export interface Qcow2Data {
  /** Virtual size of the disk. */
  size: number;
  /** log2 of the cluster size. */
  bits: number;
  /** The L2 entry of a guest cluster (undefined or 0n: unallocated, reads as zeros). */
  entry(guestCluster: number): bigint | undefined;
  /** The refcount of a host cluster below `out.pos` (the header cluster 0 included). */
  refcount(hostCluster: number): number;
  /** fsync the file at the end. */
  durable: boolean;
}

/**
 * Finishes a qcow2 (version 3) whose header cluster (0) is still to be written and whose data
 * clusters lie below `out.pos`: appends the L2 tables (only those with an entry), the L1 table,
 * the refcount table and blocks (sized to cover themselves), then writes the header, truncates to
 * the last metadata cluster and (when `durable`) fsyncs. Returns the file size.
 * Layout facts from qemu's `docs/interop/qcow2.txt`: big-endian, refcount_order 4 (16-bit
 * refcounts), header length 112 (with the compression-type byte: zlib).
 */
export async function writeQcow2Tables(
  fh: FileHandle,
  out: Appender,
  data: Qcow2Data,
): Promise<number> {
  const { bits, size } = data;
  const cs = 2 ** bits;
  const l2Entries = cs / 8;
  const guestClusters = Math.ceil(size / cs);
  const l1Size = Math.ceil(guestClusters / l2Entries);
  out.pos = Math.ceil(out.pos / cs) * cs;
  const dataEnd = out.pos / cs;
  // L2 tables
  const l1 = Buffer.alloc(Math.max(8, l1Size * 8));
  const l2Table = Buffer.alloc(cs);
  for (let t = 0; t < l1Size; t++) {
    let any = false;
    l2Table.fill(0);
    for (let i = 0; i < l2Entries; i++) {
      const e = data.entry(t * l2Entries + i);
      if (e) {
        l2Table.writeBigUInt64BE(e, i * 8);
        any = true;
      }
    }
    if (!any) continue;
    const at = await out.append(l2Table);
    l1.writeBigUInt64BE(QCOW2_COPIED | BigInt(at), t * 8);
  }
  // L1 table
  const l1Clusters = Math.ceil(l1.length / cs);
  const l1Offset = out.pos;
  const l1Padded = Buffer.alloc(l1Clusters * cs);
  l1.copy(l1Padded);
  await out.append(l1Padded);
  // refcount blocks and table, sized to cover themselves; every cluster from dataEnd on is
  // metadata with refcount 1
  const rbEntries = cs / 2;
  const firstMeta = out.pos / cs;
  let rbCount = 0;
  let rtClusters = 0;
  for (;;) {
    const totalClusters = firstMeta + rtClusters + rbCount;
    const needRb = Math.ceil(totalClusters / rbEntries);
    const needRt = Math.ceil((needRb * 8) / cs);
    if (needRb === rbCount && needRt === rtClusters) break;
    rbCount = needRb;
    rtClusters = needRt;
  }
  const totalClusters = firstMeta + rtClusters + rbCount;
  const rtOffset = firstMeta * cs;
  const rbOffset = rtOffset + rtClusters * cs;
  const rt = Buffer.alloc(rtClusters * cs);
  for (let i = 0; i < rbCount; i++) rt.writeBigUInt64BE(BigInt(rbOffset + i * cs), i * 8);
  await out.writeAt(rtOffset, rt);
  const rb = Buffer.alloc(cs);
  for (let b = 0; b < rbCount; b++) {
    rb.fill(0);
    for (let i = 0; i < rbEntries; i++) {
      const c = b * rbEntries + i;
      const r = c < dataEnd ? data.refcount(c) : c < totalClusters ? 1 : 0;
      if (r) rb.writeUInt16BE(r, i * 2);
    }
    await out.writeAt(rbOffset + b * cs, rb);
  }
  const fileSize = rbOffset + rbCount * cs;
  // header
  const h = Buffer.alloc(cs);
  h.write("QFI\xfb", 0, "latin1");
  h.writeUInt32BE(3, 4);
  h.writeUInt32BE(bits, 20);
  h.writeBigUInt64BE(BigInt(size), 24);
  h.writeUInt32BE(l1Size, 36);
  h.writeBigUInt64BE(BigInt(l1Offset), 40);
  h.writeBigUInt64BE(BigInt(rtOffset), 48);
  h.writeUInt32BE(rtClusters, 56);
  h.writeUInt32BE(4, 96); // refcount_order: 16-bit refcounts
  h.writeUInt32BE(112, 100); // header_length (with compression_type + padding)
  h[104] = 0; // compression type zlib; header extensions end at 112 (zeros)
  await out.writeAt(0, h);
  await fh.truncate(fileSize);
  if (data.durable) await fh.sync();
  return fileSize;
}
