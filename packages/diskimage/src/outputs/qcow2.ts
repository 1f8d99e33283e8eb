import * as fsp from "node:fs/promises";
import { promisify } from "node:util";
import { deflateRaw } from "node:zlib";
import { type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import { QCOW2_COMPRESSED, QCOW2_COPIED, writeQcow2Tables } from "./qcow2-tables.js";
import { Appender, clusterRuns, isZero, RawReader, type RawSource } from "./source.js";

const deflateRawAsync = promisify(deflateRaw);

/** Options of {@link writeQcow2}. */
export interface Qcow2Options extends OpOptions {
  /** Compress data clusters with zlib (raw deflate, 4 KiB window, as qemu reads them). */
  compress?: boolean;
  /** log2 of the cluster size (default 16: 64 KiB). */
  clusterBits?: number;
  /** fsync the image before returning (default true; `writeDisk` renames it into place after). */
  durable?: boolean;
}

/** What {@link writeQcow2} wrote. */
export interface Qcow2Result {
  /** Guest clusters stored (all-zero clusters are left out). */
  dataClusters: number;
  compressedClusters: number;
  /** Size of the qcow2 file. */
  fileSize: number;
}

const COPIED = QCOW2_COPIED;
const COMPRESSED = QCOW2_COMPRESSED;
/** Clusters per synchronous read in the uncompressed copy loop. */
const SYNC_RUN = 32;

/**
 * Converts a raw disk into a qcow2 (version 3) image, streaming: the header cluster first, then
 * every non-zero guest cluster in guest order (compressed or not), then the L2 tables, the L1
 * table and the refcount structures, then the final header. Zero and never-written clusters are
 * left out (they read as zeros). Memory: one 2 MiB read buffer (a pool of eight 1 MiB ones when compressing) plus an L2 entry per stored cluster.
 * Layout facts from qemu's `docs/interop/qcow2.txt`: big-endian, refcount_order 4 (16-bit),
 * L2 entries with bit 63 "copied" for standard clusters, bit 62 and the sector count for
 * compressed ones.
 */
export async function writeQcow2(
  src: RawSource,
  outPath: string,
  options: Qcow2Options = {},
): Promise<Qcow2Result> {
  const { signal, onProgress } = options;
  const op = "diskimage.qcow2";
  const bits = options.clusterBits ?? 16;
  const cs = 2 ** bits;
  const x = 62 - (bits - 8); // compressed descriptor: offset in bits 0..x-1, sectors in x..61
  const reader = await RawReader.open(src);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(outPath, "w+");
    const out = new Appender(fh);
    out.pos = cs; // cluster 0: the header, written last
    // guest cluster → L2 entry (0 = unallocated)
    const l2 = new Map<number, bigint>();
    /** host clusters → refcount (data and compressed clusters; metadata added later) */
    const refcounts = new Map<number, number>();
    refcounts.set(0, 1);
    const total = src.extents.reduce((n, e) => n + e.length, 0);
    onProgress?.({ type: "start", task: "disk.qcow2", total });
    let dataClusters = 0;
    let compressedClusters = 0;
    let done = 0;
    // Compressed output: runs of up to 16 allocated clusters (1 MiB) are read into a pool of
    // eight buffers, six runs ahead, through the thread pool (deflate is the cost there).
    const RUN = 16;
    const READ_AHEAD = 6;
    if (!options.compress) {
      // Uncompressed: a plain synchronous loop (pread a run into one reused buffer, find its
      // zero clusters, pwritev the others straight from it), like qemu-img's own copy loop.
      // Measured against the pooled asynchronous pipeline it replaced (eight alternating rounds
      // on 1 GiB of data: median 0.55 s vs 0.66 s, byte-identical output): no thread-pool round
      // trips, one 2 MiB buffer instead of eight. The event loop gets a turn every 64 runs, so an
      // abort is seen.
      const buf = new Uint8Array(SYNC_RUN * cs);
      let n = 0;
      for (const [first, count] of clusterRuns(src.extents, cs, src.size, SYNC_RUN)) {
        if (++n % 64 === 0) await new Promise<void>((r) => setImmediate(r));
        throwIfAborted(signal, op);
        const bytes = Math.min(count * cs, src.size - first * cs);
        const run = reader.readSync(buf, first * cs, count * cs);
        done += bytes;
        onProgress?.({ type: "bytes", task: "disk.qcow2", done: Math.min(done, total), total });
        const parts: Uint8Array[] = [];
        let partsAt = -1;
        for (let k = 0; k < count; k++) {
          const data = run.subarray(k * cs, (k + 1) * cs);
          if (isZero(data)) continue;
          dataClusters++;
          const at = out.pos;
          if (parts.length === 0) partsAt = at;
          const lastPart = parts[parts.length - 1];
          if (lastPart && lastPart.byteOffset + lastPart.length === data.byteOffset)
            parts[parts.length - 1] = run.subarray(
              lastPart.byteOffset - run.byteOffset,
              (k + 1) * cs,
            );
          else parts.push(data);
          out.pos += cs;
          l2.set(first + k, COPIED | BigInt(at));
          refcounts.set(at / cs, 1);
        }
        if (parts.length > 0) out.writevAtSync(partsAt, parts);
      }
    } else {
      const pool: Uint8Array[] = Array.from(
        { length: READ_AHEAD + 2 },
        () => new Uint8Array(RUN * cs),
      );
      const waiters: (() => void)[] = [];
      const acquire = async (): Promise<Uint8Array> => {
        while (pool.length === 0) await new Promise<void>((r) => waiters.push(r));
        return pool.pop()!;
      };
      const release = (b: Uint8Array) => {
        pool.push(b);
        waiters.shift()?.();
      };
      const runs = [...clusterRuns(src.extents, cs, src.size, RUN)];
      const readRun = (i: number) => {
        const [first, count] = runs[i]!;
        const p = acquire().then(async (buf) => {
          try {
            return { buf, data: await reader.read(buf, first * cs, count * cs) };
          } catch (e) {
            release(buf);
            throw e;
          }
        });
        p.catch(() => {}); // awaited below
        return p;
      };
      const ahead: ReturnType<typeof readRun>[] = [];
      for (let i = 0; i < Math.min(READ_AHEAD, runs.length); i++) ahead.push(readRun(i));
      for (let i = 0; i < runs.length; i++) {
        throwIfAborted(signal, op);
        const [first, count] = runs[i]!;
        const bytes = Math.min(count * cs, src.size - first * cs);
        const { buf, data: run } = await ahead.shift()!;
        if (i + READ_AHEAD < runs.length) ahead.push(readRun(i + READ_AHEAD));
        if (bytes < count * cs) run.fill(0, bytes);
        done += bytes;
        onProgress?.({ type: "bytes", task: "disk.qcow2", done: Math.min(done, total), total });
        for (let k = 0; k < count; k++) {
          const c = first + k;
          const data = run.subarray(k * cs, (k + 1) * cs);
          if (isZero(data)) continue;
          dataClusters++;
          const z = await deflateRawAsync(data, { windowBits: 12, level: 6 });
          if (z.length < cs - 512) {
            // packed into the current host cluster, never crossing into the next one
            const room = cs - (out.pos % cs);
            if (z.length > room) out.pos = Math.ceil(out.pos / cs) * cs;
            const at = out.pos;
            out.pos += z.length;
            await out.writeAt(at, z);
            const sectors = Math.floor((at + z.length - 1) / 512) - Math.floor(at / 512);
            l2.set(c, COMPRESSED | (BigInt(sectors) << BigInt(x)) | BigInt(at));
            const host = Math.floor(at / cs);
            refcounts.set(host, (refcounts.get(host) ?? 0) + 1);
            compressedClusters++;
            continue;
          }
          // stored as is; written now, since the host position may be passed by packed ones
          out.pos = Math.ceil(out.pos / cs) * cs;
          const at = out.pos;
          out.pos += cs;
          await out.writeAt(at, data);
          l2.set(c, COPIED | BigInt(at));
          refcounts.set(at / cs, 1);
        }
        release(buf);
      }
      await Promise.all(ahead);
    }
    await reader.close();
    const fileSize = await writeQcow2Tables(fh, out, {
      size: src.size,
      bits,
      entry: (c) => l2.get(c),
      refcount: (c) => refcounts.get(c) ?? 0,
      durable: options.durable ?? true,
    });
    onProgress?.({ type: "done", task: "disk.qcow2", bytes: fileSize });
    return { dataClusters, compressedClusters, fileSize };
  } catch (e) {
    throw toImageModeError(e, op, { path: outPath });
  } finally {
    await fh?.close();
    await reader.close().catch(() => {});
  }
}
