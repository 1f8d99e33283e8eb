import { readSync, writeSync, writevSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as fsp from "node:fs/promises";
import { invalidArgument, toImageModeError } from "@imagemode/core";
import type { Extent } from "../block-sink.js";

/**
 * A raw disk to convert: a (sparse) file, its virtual size, and the byte ranges that may hold
 * data (from the sink that wrote it). Ranges outside `extents` are zeros and are never read.
 */
export interface RawSource {
  path: string;
  size: number;
  extents: readonly Extent[];
}

/** The clusters of `cluster` bytes that overlap an extent, ascending, each listed once. */
export function* allocatedClusters(
  extents: readonly Extent[],
  cluster: number,
  size: number,
): Generator<number> {
  let last = -1;
  for (const e of extents) {
    if (e.length <= 0) continue;
    const first = Math.floor(e.offset / cluster);
    const end = Math.min(Math.ceil((e.offset + e.length) / cluster), Math.ceil(size / cluster));
    for (let c = Math.max(first, last + 1); c < end; c++) {
      yield c;
      last = c;
    }
  }
}

/** Reads clusters of a raw file (zero-filled past its end). */
export class RawReader {
  #fh: FileHandle;
  readonly size: number;
  private constructor(fh: FileHandle, size: number) {
    this.#fh = fh;
    this.size = size;
  }
  static async open(src: RawSource): Promise<RawReader> {
    if (!Number.isSafeInteger(src.size) || src.size <= 0)
      throw invalidArgument(`invalid disk size ${src.size}`, { op: "diskimage.convert" });
    try {
      return new RawReader(await fsp.open(src.path, "r"), src.size);
    } catch (e) {
      throw toImageModeError(e, "diskimage.convert", { path: src.path });
    }
  }
  /** Reads `length` bytes at `offset` into `buf` (zeros beyond the file's end). */
  async read(buf: Uint8Array, offset: number, length: number): Promise<Uint8Array> {
    const out = buf.subarray(0, length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.#fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done < length) out.fill(0, done);
    return out;
  }
  /** {@link read}, synchronously (for the conversion's copy loop: no thread-pool round trip). */
  readSync(buf: Uint8Array, offset: number, length: number): Uint8Array {
    const out = buf.subarray(0, length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.#fh.fd, out, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    if (done < length) out.fill(0, done);
    return out;
  }
  async close(): Promise<void> {
    await this.#fh.close();
  }
}

const ZEROS = new Uint8Array(1 << 16);

/** True when every byte is zero (compared natively, 64 KiB at a time). */
export function isZero(data: Uint8Array): boolean {
  for (let o = 0; o < data.length; o += ZEROS.length) {
    const n = Math.min(ZEROS.length, data.length - o);
    if (Buffer.compare(data.subarray(o, o + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Runs of consecutive allocated clusters, at most `max` long: `[first, count]`. */
export function* clusterRuns(
  extents: readonly Extent[],
  cluster: number,
  size: number,
  max: number,
): Generator<[number, number]> {
  let first = -1;
  let count = 0;
  for (const c of allocatedClusters(extents, cluster, size)) {
    if (count > 0 && c === first + count && count < max) {
      count++;
      continue;
    }
    if (count > 0) yield [first, count];
    first = c;
    count = 1;
  }
  if (count > 0) yield [first, count];
}

/** Sequential writer that tracks its position (appends at `pos`). */
export class Appender {
  #fh: FileHandle;
  pos = 0;
  constructor(fh: FileHandle) {
    this.#fh = fh;
  }
  async append(data: Uint8Array): Promise<number> {
    const at = this.pos;
    await this.writeAt(at, data);
    this.pos += data.length;
    return at;
  }
  /** Writes `parts` back to back at `offset` with one `pwritev` (no copy). */
  async writevAt(offset: number, parts: Uint8Array[]): Promise<void> {
    let total = 0;
    for (const p of parts) total += p.length;
    const { bytesWritten } = await this.#fh.writev(parts, offset);
    if (bytesWritten < total) {
      // a short write (rare): the rest one part at a time
      let skip = bytesWritten;
      let at = offset + bytesWritten;
      for (const p of parts) {
        if (skip >= p.length) {
          skip -= p.length;
          continue;
        }
        const rest = p.subarray(skip);
        skip = 0;
        await this.writeAt(at, rest);
        at += rest.length;
      }
    }
  }
  /** {@link writevAt}, synchronously. */
  writevAtSync(offset: number, parts: Uint8Array[]): void {
    let total = 0;
    for (const p of parts) total += p.length;
    let written = writevSync(this.#fh.fd, parts, offset);
    if (written < total) {
      // a short write (rare): the rest one part at a time
      let at = offset;
      for (const p of parts) {
        if (written >= p.length) {
          written -= p.length;
          at += p.length;
          continue;
        }
        let done = written;
        written = 0;
        while (done < p.length) done += writeSync(this.#fh.fd, p, done, p.length - done, at + done);
        at += p.length;
      }
    }
  }
  async writeAt(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }
}
