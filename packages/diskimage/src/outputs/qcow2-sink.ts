import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { invalidArgument, type OpOptions, toImageModeError } from "@imagemode/core";
import { type BlockSink, ExtentMap } from "../block-sink.js";
import type { Qcow2Result } from "./qcow2.js";
import { QCOW2_COPIED, writeQcow2Tables } from "./qcow2-tables.js";
import { Appender, isZero } from "./source.js";

/** Options of {@link Qcow2BlockSink.create}. */
export interface Qcow2SinkOptions {
  /** log2 of the cluster size (default 16: 64 KiB; 9–21). */
  clusterBits?: number;
}

/** Options of {@link Qcow2BlockSink.finish}. */
export interface Qcow2FinishOptions extends OpOptions {
  /** fsync the image before returning (default true). */
  durable?: boolean;
}

const op = "diskimage.qcow2";

/**
 * A {@link BlockSink} that writes a qcow2 (version 3) image directly — no raw staging file, no
 * conversion pass. A guest cluster gets a host cluster when data first lands in it: host clusters
 * are appended in the order of first writes (qcow2 allows any order), the part of a new cluster
 * not yet written stays a hole of the host file (reads as zeros), and later writes to the cluster
 * (overwrites included) go to the same host cluster. All-zero data over clusters never written
 * allocates nothing, so zero clusters are left out as the converter leaves them out. The guest
 * cluster → host cluster map is one `Uint32Array` (4 bytes a guest cluster: 640 KiB for a 10 GiB
 * disk). {@link Qcow2BlockSink.finish} appends the L2 tables, the L1 table and the refcount
 * structures, writes the header (the same one `writeQcow2` writes: 16-bit refcounts, zlib
 * compression type), truncates and fsyncs. Host cluster 0 (the header) stays a hole until then,
 * so an unfinished file is not a valid image; write it to a temporary name and rename it after
 * `finish`.
 */
export class Qcow2BlockSink implements BlockSink {
  /** Ranges that hold data, exactly as a `FileBlockSink` given the same writes records them. */
  readonly written = new ExtentMap();
  /** The image file being written. */
  readonly path: string;
  /** Virtual size of the disk. */
  readonly size: number;
  #fh: FileHandle | undefined;
  #bits: number;
  #cs: number;
  /** guest cluster → host cluster (0: unallocated; host cluster 0 is the header) */
  #map: Uint32Array;
  /** next host cluster to allocate */
  #next = 1;
  #dataClusters = 0;

  private constructor(path: string, size: number, bits: number, fh: FileHandle) {
    this.path = path;
    this.size = size;
    this.#bits = bits;
    this.#cs = 2 ** bits;
    this.#map = new Uint32Array(Math.ceil(size / this.#cs));
    this.#fh = fh;
  }

  /** Creates (or truncates) `path` for a qcow2 image of virtual size `size`. */
  static async create(
    path: string,
    size: number,
    options: Qcow2SinkOptions = {},
  ): Promise<Qcow2BlockSink> {
    const bits = options.clusterBits ?? 16;
    if (!Number.isInteger(bits) || bits < 9 || bits > 21)
      throw invalidArgument(`invalid qcow2 cluster bits ${bits} (9–21)`, { op });
    if (!Number.isSafeInteger(size) || size <= 0 || Math.ceil(size / 2 ** bits) >= 2 ** 31)
      throw invalidArgument(`invalid disk size ${size}`, { op, data: { size } });
    try {
      const fh = await fsp.open(path, "w+");
      // sized for every guest cluster up front, so data writes never extend the file (the last
      // truncate of finish() sets the real size; measured: slightly faster fsync than appending)
      await fh.truncate((Math.ceil(size / 2 ** bits) + 1) * 2 ** bits);
      return new Qcow2BlockSink(path, size, bits, fh);
    } catch (e) {
      throw toImageModeError(e, op, { path });
    }
  }

  /** Guest clusters that have a host cluster so far. */
  get dataClusters(): number {
    return this.#dataClusters;
  }

  /**
   * Writes `data` at guest byte `offset`: into the host clusters of the guest clusters it
   * touches, allocating (appending) one for a guest cluster that gets non-zero data for the first
   * time. Zeros over never-written ranges are skipped.
   */
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > this.size) {
      throw invalidArgument(
        `write of ${data.length} bytes at ${offset} is outside the ${this.size}-byte disk`,
        { op: "diskimage.sink", data: { offset, length: data.length } },
      );
    }
    if (data.length === 0) return;
    const fh = this.#fh;
    if (!fh) throw invalidArgument("sink is closed", { op: "diskimage.sink" });
    const cs = this.#cs;
    const map = this.#map;
    const end = offset + data.length;
    // a range never written reads as zeros: zeros there need no host cluster and no write
    const overlap = this.written.overlaps(offset, data.length);
    let nonZero = false;
    // host runs to write, [hostOffset, dataStart, dataEnd], allocated synchronously (before any
    // await) so that concurrent writes never get the same host cluster
    const runs: number[] = [];
    let pos = offset;
    while (pos < end) {
      const c = Math.floor(pos / cs);
      const pieceEnd = Math.min(end, (c + 1) * cs);
      const piece = data.subarray(pos - offset, pieceEnd - offset);
      let host = map[c]!;
      if (host === 0) {
        if (isZero(piece)) {
          pos = pieceEnd;
          continue;
        }
        nonZero = true;
        host = this.#next++;
        map[c] = host;
        this.#dataClusters++;
      } else if (!overlap && !nonZero) {
        // an allocated cluster, but this range of it was never written: zeros are already there
        if (isZero(piece)) {
          pos = pieceEnd;
          continue;
        }
        nonZero = true;
      }
      const at = host * cs + (pos - c * cs);
      const n = runs.length;
      if (
        n > 0 &&
        runs[n - 3]! + (runs[n - 1]! - runs[n - 2]!) === at &&
        runs[n - 1] === pos - offset
      )
        runs[n - 1] = pieceEnd - offset;
      else runs.push(at, pos - offset, pieceEnd - offset);
      pos = pieceEnd;
    }
    if (!overlap && !nonZero) return;
    try {
      for (let i = 0; i < runs.length; i += 3) {
        const at = runs[i]!;
        const chunk = data.subarray(runs[i + 1]!, runs[i + 2]!);
        let done = 0;
        while (done < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, at + done);
          done += bytesWritten;
        }
      }
    } catch (e) {
      throw toImageModeError(e, "diskimage.sink", { path: this.path });
    }
    this.written.add(offset, data.length);
  }

  /**
   * Writes the L2 tables, the L1 table, the refcount structures and the header, truncates, fsyncs
   * (unless `durable: false`) and closes the file. Progress: `disk.qcow2` start/done.
   */
  async finish(options: Qcow2FinishOptions = {}): Promise<Qcow2Result> {
    const fh = this.#fh;
    if (!fh) throw invalidArgument("sink is closed", { op });
    const { onProgress } = options;
    const cs = this.#cs;
    const map = this.#map;
    const next = this.#next;
    onProgress?.({ type: "start", task: "disk.qcow2", description: "qcow2 tables" });
    try {
      const out = new Appender(fh);
      out.pos = next * cs;
      const fileSize = await writeQcow2Tables(fh, out, {
        size: this.size,
        bits: this.#bits,
        entry: (c) => {
          const h = map[c];
          return h ? QCOW2_COPIED | BigInt(h * cs) : undefined;
        },
        refcount: (c) => (c < next ? 1 : 0),
        durable: options.durable ?? true,
      });
      this.#fh = undefined;
      await fh.close();
      onProgress?.({ type: "done", task: "disk.qcow2", bytes: fileSize });
      return { dataClusters: this.#dataClusters, compressedClusters: 0, fileSize };
    } catch (e) {
      throw toImageModeError(e, op, { path: this.path });
    }
  }

  /** Closes the file without finishing it (after a failure; the caller removes it). */
  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}
